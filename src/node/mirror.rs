//! Archive mirrors (cod.ini's and node.ini's `[archive] mirrors`): places that hold a copy of
//! the chain so it outlives every node. A mirror holds one file, `<cod id>.archive` (the chain
//! archive format): in a directory it is written atomically; at an `http(s)://` URL it is sent
//! with PUT and read with GET. The node reads it at start, and again whenever it has no peers.
//! After records applied (at most once per sync interval), and every few rounds anyway, it
//! **merges**: it reads the mirror's archive, imports what it lacks (verified like any
//! archive), and writes back what it then holds — only if the mirror lacks some of it. So a
//! node that is behind never replaces a fuller archive with a poorer one, and writers that
//! race converge: each round, each writes until the mirror holds all it holds. A directory's
//! merge holds a lock file beside the archive (`<cod id>.archive.lock`) for the whole read,
//! import and write, so writers on one file system never race at all.

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
    Git(Arc<super::git_mirror::GitMirror>),
}

/// A round in which nothing was applied still checks the mirrors every this many rounds
/// (another writer may have left out what this node holds).
const CHECK_EVERY: u32 = 5;

/// What the mirror list is made from: node.ini's `[archive] mirrors` and
/// `package_mirrors`, as last (re)loaded — a reload changes them while the node runs.
#[derive(Clone, PartialEq, Eq)]
struct Source {
    mirrors: Vec<String>,
    package_mirrors: bool,
}

impl Source {
    fn loaded(shared: &Shared) -> Self {
        let c = shared.loaded.locked();
        Self {
            mirrors: c.mirrors.clone(),
            package_mirrors: c.package_mirrors,
        }
    }
}

/// node.ini's mirrors, then the package's (unless node.ini says `package_mirrors = false`),
/// each once.
fn mirrors(shared: &Shared, source: &Source) -> Vec<Mirror> {
    let file = format!("{}.archive", shared.params.cod);
    let mut names = source.mirrors.clone();
    if source.package_mirrors {
        match shared.dir.cod_config() {
            Ok(cod) => names.extend(cod.mirrors),
            Err(e) => shared.log("warn", format!("mirror: cannot read cod.ini: {e}")),
        }
    }
    let mut seen = std::collections::HashSet::new();
    names.retain(|m| seen.insert(m.clone()));
    if shared.config.proxy.is_some() {
        // (node.ini's own were refused when it was read.)
        names.retain(|m| {
            let around = crate::config::node::git_remote(m);
            if around {
                shared.log(
                    "warn",
                    format!("mirror {m} not used: git would connect around the proxy"),
                );
            }
            !around
        });
    }
    let cache = shared.dir.data_dir(&shared.config).join("mirrors");
    names
        .iter()
        .map(|m| {
            if let Some(git) = m.strip_prefix("git+") {
                // A relative repository path is the node directory's, as a directory's is.
                let url = if git.starts_with("./") {
                    shared
                        .dir
                        .resolve(std::path::Path::new(git))
                        .display()
                        .to_string()
                } else {
                    git.to_string()
                };
                Mirror::Git(Arc::new(super::git_mirror::GitMirror::new(
                    &url,
                    &shared.params.cod,
                    &cache,
                )))
            } else if m.starts_with("http://") || m.starts_with("https://") {
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

/// [`mirrors`], read off the async threads (it reads cod.ini).
async fn mirrors_off_thread(shared: &Arc<Shared>, source: &Source) -> Vec<Mirror> {
    let (s, src) = (shared.clone(), source.clone());
    shared
        .tasks
        .spawn_blocking(move || mirrors(&s, &src))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

pub async fn run(shared: Arc<Shared>) {
    let http = &shared.api;
    let mut source = Source::loaded(&shared);
    let mut list = mirrors_off_thread(&shared, &source).await;
    restore(&shared, &list, http).await;
    let mut merged_applied = usize::MAX;
    let (mut idle_rounds, mut rounds) = (0u32, 0u32);
    loop {
        let wait = Duration::from_secs(shared.config.sync_interval.max(2));
        match super::pause(&shared.shutdown, wait, Some(&shared.mirror_now)).await {
            super::Paused::Stopped => return,
            // (What else asks meanwhile is written in the same round.)
            super::Paused::Woken => tokio::time::sleep(Duration::from_millis(300)).await,
            super::Paused::Elapsed => {}
        }
        // A reload that changed the mirrors: the new list from now on, restored from first.
        let now = Source::loaded(&shared);
        if now != source {
            source = now;
            list = mirrors_off_thread(&shared, &source).await;
            shared.log(
                "info",
                format!(
                    "mirrors: node.ini now names {}; {} in use",
                    if source.mirrors.is_empty() {
                        "none".to_string()
                    } else {
                        source.mirrors.join(", ")
                    },
                    list.len()
                ),
            );
            restore(&shared, &list, http).await;
            merged_applied = usize::MAX;
        }
        rounds = rounds.wrapping_add(1);
        // What mirrors are given: the chain as peers see it (without records made here that
        // are still on their stems), so the round after they come back writes them.
        let applied = shared.public_view().state().applied_count();
        if !list.is_empty() && (applied != merged_applied || rounds.is_multiple_of(CHECK_EVERY)) {
            for m in &list {
                if let Err(e) = merge(&shared, m, http).await {
                    shared.log("warn", format!("mirror: {e}"));
                }
            }
            merged_applied = shared.public_view().state().applied_count();
            super::release_memory();
        }
        // No peers for a while: the mirror may know more than this node.
        idle_rounds = if shared.peers.locked().confirmed().is_empty() {
            idle_rounds + 1
        } else {
            0
        };
        if idle_rounds >= 3 && !list.is_empty() {
            restore(&shared, &list, http).await;
            idle_rounds = 0;
        }
    }
}

/// Merges this node's records into a mirror: imports what the mirror holds that this node
/// lacks, then writes what the node holds if the mirror lacks any of it (see the module).
async fn merge(shared: &Arc<Shared>, m: &Mirror, http: &ApiClient) -> Result<(), MirrorError> {
    match m {
        Mirror::Dir(path) => {
            let (s, path) = (shared.clone(), path.clone());
            shared
                .tasks
                .spawn_blocking(move || {
                    let _lock = lock(&path)?;
                    let theirs = read_file(&path)?;
                    let ours = absorb(&s, theirs.as_deref())?;
                    match ours {
                        Some(bytes) => write_dir(&path, &bytes),
                        None => Ok(()),
                    }
                })
                .await
                .map_err(|e| MirrorError::Task(e.to_string()))?
        }
        Mirror::Git(git) => {
            let (s, git) = (shared.clone(), git.clone());
            shared
                .tasks
                .spawn_blocking(move || merge_git(&s, &git))
                .await
                .map_err(|e| MirrorError::Task(e.to_string()))?
        }
        Mirror::Http(url) => {
            let theirs = http.get_file(url, MAX).await?;
            let s = shared.clone();
            let ours = shared
                .tasks
                .spawn_blocking(move || absorb(&s, theirs.as_deref()))
                .await
                .map_err(|e| MirrorError::Task(e.to_string()))??;
            if let Some(bytes) = ours {
                http.put_file(url, bytes).await?;
            }
            Ok(())
        }
    }
}

/// Imports a mirror's archive (`theirs`, if it has one) and returns the archive this node
/// then holds, if the mirror lacks any of its records (`None`: nothing to write). An archive
/// that does not import (damaged, or holding a forged record — no record of this cod) is
/// replaced.
fn absorb(shared: &Shared, theirs: Option<&[u8]>) -> Result<Option<Vec<u8>>, MirrorError> {
    let mut held = std::collections::HashSet::new();
    if let Some(bytes) = theirs {
        import(shared, bytes, "an archive mirror");
        held.extend(crate::archive::record_lines(bytes));
    }
    let store = shared.public_view().store().clone();
    let (ours, _) = crate::chain::export_to(&shared.params.cod, store.as_ref(), Vec::new())
        .map_err(|e| MirrorError::Store(e.to_string()))?;
    let lacking = crate::archive::record_lines(&ours).any(|line| !held.contains(line));
    Ok(lacking.then_some(ours))
}

/// A git mirror's merge: fetch its segments, import them, and push one segment of what the
/// mirror lacks on top of what was fetched; when another writer pushed first, fetch and try
/// again (three times a round; the next round goes on).
fn merge_git(shared: &Shared, git: &super::git_mirror::GitMirror) -> Result<(), MirrorError> {
    for _ in 0..3 {
        let fetched = git.fetch(MAX)?;
        let mut held = std::collections::HashSet::new();
        for segment in &fetched.segments {
            import(shared, segment, "an archive mirror");
            held.extend(crate::archive::record_lines(segment).map(<[u8]>::to_vec));
        }
        let store = shared.public_view().store().clone();
        let (ours, _) = crate::chain::export_to(&shared.params.cod, store.as_ref(), Vec::new())
            .map_err(|e| MirrorError::Store(e.to_string()))?;
        let mut segment = crate::archive::Writer::new(Vec::new(), &shared.params.cod)
            .map_err(|e| MirrorError::Store(e.to_string()))?;
        let mut lacking = 0;
        for line in crate::archive::record_lines(&ours).filter(|l| !held.contains(*l)) {
            segment
                .push(line)
                .map_err(|e| MirrorError::Store(e.to_string()))?;
            lacking += 1;
        }
        if lacking == 0 {
            return Ok(());
        }
        let (bytes, _) = segment
            .finish()
            .map_err(|e| MirrorError::Store(e.to_string()))?;
        if git.push_segment(fetched.tip, &bytes, lacking)? {
            return Ok(());
        }
    }
    Ok(())
}

/// Imports an archive read from `source` (blocking), verified like any other; announces what
/// it applied. Returns whether the archive was taken (false: it was refused, and logged).
pub(super) fn import(shared: &Shared, bytes: &[u8], source: &str) -> bool {
    match shared.import_archive(std::io::Cursor::new(bytes), super::ArchiveFrom::Network) {
        Ok(r) => {
            if r.applied.count > 0 {
                shared.log(
                    "info",
                    format!("merged {} records from {source}", r.applied.count),
                );
                shared.announce_applied(r.applied.announced(), false);
            }
            true
        }
        Err((e, _)) => {
            shared.log("warn", format!("archive from {source} refused: {e}"));
            false
        }
    }
}

/// Holds `<archive>.lock` beside a directory mirror's archive (an advisory `flock`) until
/// dropped.
fn lock(path: &std::path::Path) -> Result<nix::fcntl::Flock<std::fs::File>, MirrorError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(crate::fsutil::io_err(parent))?;
    }
    let lock_path = path.with_extension("archive.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(crate::fsutil::io_err(&lock_path))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| crate::fsutil::io_err(&lock_path)(std::io::Error::from(e)).into())
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
    #[error("cannot read the store: {0}")]
    Store(String),
    #[error("{0}")]
    Task(String),
    #[error(transparent)]
    Git(#[from] super::git_mirror::GitError),
}

fn write_dir(path: &std::path::Path, bytes: &[u8]) -> Result<(), MirrorError> {
    Ok(crate::fsutil::write_atomic(path, bytes, 0o644, true)?)
}

/// A directory mirror's archive, at most [`MAX`] bytes of it (`None`: there is none yet).
fn read_file(path: &std::path::Path) -> Result<Option<Vec<u8>>, MirrorError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(crate::fsutil::io_err(path)(e).into()),
    };
    let mut b = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX + 1), &mut b)
        .map_err(crate::fsutil::io_err(path))?;
    if b.len() as u64 > MAX {
        return Err(MirrorError::TooLarge(path.to_path_buf()));
    }
    Ok(Some(b))
}

/// Reads a mirror's archives (a git mirror's segments; another's one file), at most [`MAX`]
/// bytes in all.
async fn read(
    shared: &Arc<Shared>,
    m: &Mirror,
    http: &ApiClient,
) -> Result<Vec<Vec<u8>>, MirrorError> {
    match m {
        Mirror::Dir(path) => Ok(read_file(path)?.into_iter().collect()),
        Mirror::Http(url) => Ok(http.get_file(url, MAX).await?.into_iter().collect()),
        Mirror::Git(git) => {
            let git = git.clone();
            let fetched = shared
                .tasks
                .spawn_blocking(move || git.fetch(MAX))
                .await
                .map_err(|e| MirrorError::Task(e.to_string()))??;
            Ok(fetched.segments)
        }
    }
}

/// Imports every mirror's archives (records already held are skipped).
async fn restore(shared: &Arc<Shared>, list: &[Mirror], http: &ApiClient) {
    for m in list {
        match read(shared, m, http).await {
            Ok(archives) => {
                let s = shared.clone();
                let before = shared.view().state().applied_count();
                let result = shared
                    .tasks
                    .spawn_blocking(move || {
                        for bytes in &archives {
                            import(&s, bytes, "an archive mirror");
                        }
                    })
                    .await;
                if let Err(e) = result {
                    shared.log("warn", format!("mirror: {e}"));
                }
                let n = shared.view().state().applied_count().saturating_sub(before);
                if n > 0 {
                    shared.log(
                        "info",
                        format!("restored {n} records from an archive mirror"),
                    );
                    shared.mirror_now.notify_one();
                }
            }
            Err(e) => shared.log("warn", format!("mirror: {e}")),
        }
    }
}
