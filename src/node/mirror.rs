//! Archive mirrors (node.ini `[archive] mirrors`): places that hold a copy of the chain so it
//! outlives every node. A mirror holds one file, `<cod id>.archive` (the chain archive
//! format): in a directory it is written atomically; at an `http(s)://` URL it is sent with
//! PUT and read with GET. The node rewrites it after records applied (at most once per sync
//! interval), reads it at start, and again whenever it has no peers.

use super::Shared;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

enum Mirror {
    Dir(PathBuf),
    Http(String),
}

fn mirrors(shared: &Shared) -> Vec<Mirror> {
    let file = format!("{}.archive", shared.params.cod);
    shared
        .config
        .mirrors
        .iter()
        .map(|m| {
            if m.starts_with("http://") || m.starts_with("https://") {
                Mirror::Http(format!("{m}/{file}"))
            } else {
                Mirror::Dir(
                    shared
                        .dir
                        .resolve(std::path::Path::new(m))
                        .join(file.clone()),
                )
            }
        })
        .collect()
}

pub async fn run(shared: Arc<Shared>) {
    let list = mirrors(&shared);
    if list.is_empty() {
        return;
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("HTTP client builds");
    restore(&shared, &list, &http).await;
    let mut written_applied = usize::MAX;
    let mut idle_rounds = 0u32;
    loop {
        let wait = Duration::from_secs(shared.config.sync_interval.max(2));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.mirror_now.notified() => tokio::time::sleep(Duration::from_millis(300)).await,
            _ = shared.shutdown.cancelled() => return,
        }
        let (applied, archive) = {
            let chain = shared.chain.lock().expect("chain lock");
            let n = chain.ledger().state().applied_count();
            (
                n,
                (n != written_applied).then(|| crate::chain::export(chain.ledger())),
            )
        };
        if let Some(bytes) = archive {
            for m in &list {
                if let Err(e) = write(m, &bytes, &http).await {
                    shared.log("warn", format!("mirror: {e}"));
                }
            }
            written_applied = applied;
        }
        // No peers for a while: the mirror may know more than this node.
        idle_rounds = if shared
            .peers
            .lock()
            .expect("peers lock")
            .confirmed()
            .is_empty()
        {
            idle_rounds + 1
        } else {
            0
        };
        if idle_rounds >= 3 {
            restore(&shared, &list, &http).await;
            idle_rounds = 0;
        }
    }
}

async fn write(m: &Mirror, bytes: &[u8], http: &reqwest::Client) -> Result<(), String> {
    match m {
        Mirror::Dir(path) => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("{}: {e}", parent.display()))?;
            }
            crate::fsutil::write_atomic(path, bytes, 0o644, true).map_err(|e| e.to_string())
        }
        Mirror::Http(url) => {
            let resp = http
                .put(url)
                .body(bytes.to_vec())
                .send()
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            if resp.status().is_success() {
                Ok(())
            } else {
                Err(format!("{url}: HTTP {}", resp.status()))
            }
        }
    }
}

async fn read(m: &Mirror, http: &reqwest::Client) -> Result<Option<Vec<u8>>, String> {
    match m {
        Mirror::Dir(path) => match std::fs::read(path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        },
        Mirror::Http(url) => {
            let resp = http
                .get(url)
                .send()
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            if resp.status() == reqwest::StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if !resp.status().is_success() {
                return Err(format!("{url}: HTTP {}", resp.status()));
            }
            resp.bytes()
                .await
                .map(|b| Some(b.to_vec()))
                .map_err(|e| format!("{url}: {e}"))
        }
    }
}

/// Imports every mirror's archive (records already held are skipped).
async fn restore(shared: &Arc<Shared>, list: &[Mirror], http: &reqwest::Client) {
    for m in list {
        match read(m, http).await {
            Ok(Some(bytes)) => {
                let s = shared.clone();
                let result = tokio::task::spawn_blocking(move || {
                    let mut chain = s.chain.lock().expect("chain lock");
                    let before = chain.ledger().state().applied_count();
                    crate::chain::import(&mut chain, &bytes).map(|_| {
                        chain
                            .ledger()
                            .state()
                            .applied_count()
                            .saturating_sub(before)
                    })
                })
                .await;
                match result {
                    Ok(Ok(n)) if n > 0 => {
                        shared.log(
                            "info",
                            format!("restored {n} records from an archive mirror"),
                        );
                        shared.mirror_now.notify_one();
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => shared.log("warn", format!("mirror archive refused: {e}")),
                    Err(e) => shared.log("warn", format!("mirror: {e}")),
                }
            }
            Ok(None) => {}
            Err(e) => shared.log("warn", format!("mirror: {e}")),
        }
    }
}
