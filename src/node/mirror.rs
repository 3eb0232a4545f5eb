//! Archive mirrors (node.ini `[archive] mirrors`): places that hold a copy of the chain so it
//! outlives every node. A mirror holds one file, `<cod id>.archive` (the chain archive
//! format): in a directory it is written atomically; at an `http(s)://` URL it is sent with
//! PUT and read with GET. The node rewrites it after records applied (at most once per sync
//! interval), reads it at start, and again whenever it has no peers.

use super::Shared;
use crate::lock::Locked;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const MAX: u64 = crate::archive::MAX_MIRROR_BYTES;

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
        return shared.shutdown.cancelled().await;
    }
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(30))
        .timeout(Duration::from_secs(600))
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
        let view = shared.view();
        let (applied, store) = (view.state().applied_count(), view.store().clone());
        // Read from one moment of the store (the view's), off the async threads.
        let archive = if applied == written_applied {
            None
        } else {
            let cod = shared.params.cod;
            shared
                .tasks
                .spawn_blocking(move || {
                    crate::chain::export_to(&cod, store.as_ref(), Vec::new())
                        .map(|(bytes, _)| bytes)
                })
                .await
                .ok()
        };
        if let Some(archive) = archive {
            let bytes = match archive {
                Ok(b) => b,
                Err(e) => {
                    shared.log("warn", format!("mirror: cannot read the store: {e}"));
                    continue;
                }
            };
            for m in &list {
                if let Err(e) = write(m, &bytes, &http).await {
                    shared.log("warn", format!("mirror: {e}"));
                }
            }
            written_applied = applied;
            drop(bytes);
            super::release_memory();
        }
        // No peers for a while: the mirror may know more than this node.
        idle_rounds = if shared.peers.locked().confirmed().is_empty() {
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

/// Reads a mirror's archive, at most [`MAX`] bytes of it.
async fn read(m: &Mirror, http: &reqwest::Client) -> Result<Option<Vec<u8>>, String> {
    match m {
        Mirror::Dir(path) => {
            let file = match std::fs::File::open(path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(format!("{}: {e}", path.display())),
            };
            let mut b = Vec::new();
            std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX + 1), &mut b)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if b.len() as u64 > MAX {
                return Err(format!("{}: larger than {MAX} bytes", path.display()));
            }
            Ok(Some(b))
        }
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
            if resp.content_length().is_some_and(|n| n > MAX) {
                return Err(format!("{url}: larger than {MAX} bytes"));
            }
            let mut resp = resp;
            let mut b = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| format!("{url}: {e}"))? {
                if (b.len() + chunk.len()) as u64 > MAX {
                    return Err(format!("{url}: larger than {MAX} bytes"));
                }
                b.extend_from_slice(&chunk);
            }
            Ok(Some(b))
        }
    }
}

/// Imports every mirror's archive (records already held are skipped).
async fn restore(shared: &Arc<Shared>, list: &[Mirror], http: &reqwest::Client) {
    for m in list {
        match read(m, http).await {
            Ok(Some(bytes)) => {
                let s = shared.clone();
                let result = shared
                    .tasks
                    .spawn_blocking(move || {
                        s.import_archive(std::io::Cursor::new(bytes))
                            .map(|r| r.applied.count)
                            .map_err(|(e, _)| e)
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
