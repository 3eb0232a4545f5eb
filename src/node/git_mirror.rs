//! Git mirrors (issue 16): a git repository — a bare one on a path, or a remote any git host
//! serves over `git://` or plain `http://` — holds the chain as **segments**: each commit on
//! the branch `cod/<cod id>` adds one file `<cod id>/NNNNNNNN.archive`, a chain archive of the
//! records the earlier segments lacked. So the history is append-only, each segment is small
//! and imports alone, and hosting the chain costs a git host nothing special.
//!
//! A node keeps a bare clone of its own (`mirrors/git-<hash of the URL>.git` in its data
//! directory), fetches the branch, and pushes a new segment on top of what it fetched, never
//! forcing: when another writer got there first, the push is refused as not a fast-forward,
//! and the node fetches again and writes what is still missing (see `mirror.rs`).
//! Blocking: callers run it off the async threads.

use git2::{ErrorCode, FetchOptions, PushOptions, RemoteCallbacks, Repository};
use std::path::{Path, PathBuf};

/// Most segments a branch may have before a node stops reading it (a mirror past this is
/// not one any cod writes).
pub const MAX_SEGMENTS: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git mirror {url}: {error}")]
    Git { url: String, error: git2::Error },
    #[error("git mirror {url}: {0}", url = .1)]
    Bound(String, String),
}

/// One git mirror of one cod.
pub struct GitMirror {
    url: String,
    local: PathBuf,
    /// The tree's directory and the branch's name both carry the cod id.
    dir: String,
    branch: String,
}

/// What a fetch found: the branch's tip (`None`: no segment yet) and its segments, in order.
pub struct Fetched {
    pub tip: Option<git2::Oid>,
    pub segments: Vec<Vec<u8>>,
}

impl GitMirror {
    /// `url`: a path to a bare repository, or a `file://`, `git://` or `http://` URL.
    /// `cache`: the directory that holds this node's clones.
    pub fn new(url: &str, cod: &crate::ids::CodId, cache: &Path) -> Self {
        let digest = crate::ids::RecordHash::of(url.as_bytes()).to_string();
        Self {
            url: url.to_string(),
            local: cache.join(format!("git-{}.git", &digest[..16])),
            dir: cod.to_string(),
            branch: format!("refs/heads/cod/{cod}"),
        }
    }

    fn err(&self, error: git2::Error) -> GitError {
        GitError::Git {
            url: self.url.clone(),
            error,
        }
    }

    fn repo(&self) -> Result<Repository, GitError> {
        match Repository::open_bare(&self.local) {
            Ok(r) => Ok(r),
            Err(_) => Repository::init_bare(&self.local).map_err(|e| self.err(e)),
        }
    }

    /// The local name the fetched branch is kept under.
    fn tracking(&self) -> String {
        self.branch.replacen("refs/heads/", "refs/mirror/", 1)
    }

    /// Fetches the branch and reads its segments (at most `max_bytes` in all).
    pub fn fetch(&self, max_bytes: u64) -> Result<Fetched, GitError> {
        let repo = self.repo()?;
        let mut remote = repo.remote_anonymous(&self.url).map_err(|e| self.err(e))?;
        let spec = format!("+{}:{}", self.branch, self.tracking());
        let mut opts = FetchOptions::new();
        opts.download_tags(git2::AutotagOption::None);
        remote
            .fetch(&[spec.as_str()], Some(&mut opts), None)
            .map_err(|e| self.err(e))?;
        // A branch the remote does not have is no error: the mirror is empty.
        let tip = match repo.find_reference(&self.tracking()) {
            Ok(r) => r.target(),
            Err(e) if e.code() == ErrorCode::NotFound => None,
            Err(e) => return Err(self.err(e)),
        };
        let Some(tip) = tip else {
            return Ok(Fetched {
                tip: None,
                segments: Vec::new(),
            });
        };
        let tree = repo
            .find_commit(tip)
            .and_then(|c| c.tree())
            .map_err(|e| self.err(e))?;
        let Some(entry) = tree.get_name(&self.dir) else {
            return Ok(Fetched {
                tip: Some(tip),
                segments: Vec::new(),
            });
        };
        let sub = repo.find_tree(entry.id()).map_err(|e| self.err(e))?;
        if sub.len() > MAX_SEGMENTS {
            return Err(GitError::Bound(
                format!("more than {MAX_SEGMENTS} segments"),
                self.url.clone(),
            ));
        }
        // Tree entries come sorted by name: NNNNNNNN.archive in the order they were added.
        let mut segments = Vec::new();
        let mut total = 0u64;
        for e in sub.iter() {
            let blob = repo.find_blob(e.id()).map_err(|e| self.err(e))?;
            total = total.saturating_add(blob.size() as u64);
            if total > max_bytes {
                return Err(GitError::Bound(
                    format!("segments larger than {max_bytes} bytes in all"),
                    self.url.clone(),
                ));
            }
            segments.push(blob.content().to_vec());
        }
        Ok(Fetched {
            tip: Some(tip),
            segments,
        })
    }

    /// Commits `segment` on top of `parent` (what [`GitMirror::fetch`] found) and pushes it.
    /// `Ok(false)`: the remote moved meanwhile (not a fast-forward) — fetch again.
    pub fn push_segment(
        &self,
        parent: Option<git2::Oid>,
        segment: &[u8],
        records: usize,
    ) -> Result<bool, GitError> {
        let repo = self.repo()?;
        let e = |err| self.err(err);
        let parent = parent.map(|p| repo.find_commit(p)).transpose().map_err(e)?;
        let root = parent.as_ref().map(|c| c.tree()).transpose().map_err(e)?;
        let sub = root
            .as_ref()
            .and_then(|t| t.get_name(&self.dir))
            .map(|entry| repo.find_tree(entry.id()))
            .transpose()
            .map_err(e)?;
        let n = sub.as_ref().map_or(0, |t| t.len());
        let blob = repo.blob(segment).map_err(e)?;
        let mut sub_builder = repo.treebuilder(sub.as_ref()).map_err(e)?;
        sub_builder
            .insert(format!("{n:08}.archive"), blob, 0o100644)
            .map_err(e)?;
        let sub_id = sub_builder.write().map_err(e)?;
        let mut root_builder = repo.treebuilder(root.as_ref()).map_err(e)?;
        root_builder
            .insert(&self.dir, sub_id, 0o040000)
            .map_err(e)?;
        let tree = repo
            .find_tree(root_builder.write().map_err(e)?)
            .map_err(e)?;
        let sig = git2::Signature::now("cod", "cod@localhost").map_err(e)?;
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        let commit = repo
            .commit(
                None,
                &sig,
                &sig,
                &format!("segment {n}: {records} records"),
                &tree,
                &parents,
            )
            .map_err(e)?;
        repo.reference(&self.branch, commit, true, "cod mirror segment")
            .map_err(e)?;
        let mut rejected: Option<String> = None;
        let result = {
            let mut callbacks = RemoteCallbacks::new();
            callbacks.push_update_reference(|_, status| {
                rejected = status.map(str::to_string);
                Ok(())
            });
            let mut opts = PushOptions::new();
            opts.remote_callbacks(callbacks);
            let mut remote = repo.remote_anonymous(&self.url).map_err(e)?;
            let spec = format!("{0}:{0}", self.branch);
            remote.push(&[spec.as_str()], Some(&mut opts))
        };
        match result {
            Err(err) if err.code() == ErrorCode::NotFastForward => Ok(false),
            Err(err) => Err(self.err(err)),
            Ok(()) => Ok(rejected.is_none()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cod() -> crate::ids::CodId {
        "0123456789abcdef0123456789abcdef01234567".parse().unwrap()
    }

    #[test]
    fn writers_append_segments_and_a_stale_one_is_told_to_fetch_again() {
        let d = tempfile::tempdir().unwrap();
        let remote = d.path().join("remote.git");
        Repository::init_bare(&remote).unwrap();
        let url = remote.to_str().unwrap();
        let a = GitMirror::new(url, &cod(), &d.path().join("a"));
        let b = GitMirror::new(url, &cod(), &d.path().join("b"));
        let empty = a.fetch(1 << 20).unwrap();
        assert!(empty.tip.is_none() && empty.segments.is_empty());
        assert!(a.push_segment(None, b"first", 1).unwrap());
        // b fetched nothing yet: its push on no parent is not a fast-forward.
        assert!(!b.push_segment(None, b"stale", 1).unwrap());
        let seen = b.fetch(1 << 20).unwrap();
        assert_eq!(seen.segments, [b"first".to_vec()]);
        assert!(b.push_segment(seen.tip, b"second", 1).unwrap());
        let both = a.fetch(1 << 20).unwrap();
        assert_eq!(both.segments, [b"first".to_vec(), b"second".to_vec()]);
        assert!(matches!(a.fetch(5), Err(GitError::Bound(..))), "bounded");
    }
}
