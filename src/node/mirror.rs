//! Archive mirrors (node.ini `[archive] mirrors`): places that hold a copy of the chain so it
//! outlives every node. A mirror holds one file, `<cod id>.archive` (the chain archive
//! format): in a directory it is written atomically; at an `http(s)://` URL it is sent with
//! PUT and read with GET. The node rewrites it after records applied (at most once per sync
//! interval), reads it at start, and again whenever it has no peers.

use super::Shared;
use crate::api::client::ApiClient;
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
    let http = &shared.api;
    restore(&shared, &list, http).await;
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
                if let Err(e) = write(m, &bytes, http).await {
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
            restore(&shared, &list, http).await;
            idle_rounds = 0;
        }
    }
}

/// Why a mirror could not be written or read.
#[derive(Debug, thiserror::Error)]
enum MirrorError {
    #[error(transparent)]
    Fs(#[from] crate::fsutil::FsError),
    #[error(transparent)]
    Http(#[from] crate::api::client::ApiError),
    #[error("{0}: larger than {MAX} bytes")]
    TooLarge(PathBuf),
}

async fn write(m: &Mirror, bytes: &[u8], http: &ApiClient) -> Result<(), MirrorError> {
    match m {
        Mirror::Dir(path) => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(crate::fsutil::io_err(parent))?;
            }
            Ok(crate::fsutil::write_atomic(path, bytes, 0o644, true)?)
        }
        Mirror::Http(url) => Ok(http.put_file(url, bytes.to_vec()).await?),
    }
}

/// Reads a mirror's archive, at most [`MAX`] bytes of it.
async fn read(m: &Mirror, http: &ApiClient) -> Result<Option<Vec<u8>>, MirrorError> {
    match m {
        Mirror::Dir(path) => {
            let file = match std::fs::File::open(path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(crate::fsutil::io_err(path)(e).into()),
            };
            let mut b = Vec::new();
            std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX + 1), &mut b)
                .map_err(crate::fsutil::io_err(path))?;
            if b.len() as u64 > MAX {
                return Err(MirrorError::TooLarge(path.clone()));
            }
            Ok(Some(b))
        }
        Mirror::Http(url) => Ok(http.get_file(url, MAX).await?),
    }
}

/// Imports every mirror's archive (records already held are skipped).
async fn restore(shared: &Arc<Shared>, list: &[Mirror], http: &ApiClient) {
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
