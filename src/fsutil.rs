//! Small filesystem helpers shared by the edges: every file cod writes goes through
//! [`write_atomic`], so a crash never leaves a half-written file behind.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} already exists; cod never overwrites it (move it away first)")]
    Exists(PathBuf),
}

pub fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> FsError + '_ {
    move |source| FsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory, fsynced and
/// renamed into place, created with `mode`. With `overwrite == false` an existing file is
/// an error and stays untouched.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32, overwrite: bool) -> Result<(), FsError> {
    if !overwrite && path.exists() {
        return Err(FsError::Exists(path.to_path_buf()));
    }
    let mut tmp = temp_beside(path, mode)?;
    tmp.write_all(bytes).map_err(io_err(path))?;
    persist(tmp, path, overwrite)
}

/// A new temporary file in `path`'s directory, created with `mode`, to be written and then
/// [`persist`]ed as `path` (it is removed if dropped before).
pub fn temp_beside(path: &Path, mode: u32) -> Result<tempfile::NamedTempFile, FsError> {
    let dir = parent(path);
    tempfile::Builder::new()
        .prefix(".cod-tmp-")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(io_err(dir))
}

/// Syncs `tmp` (from [`temp_beside`]) and renames it to `path`, durably; with `overwrite
/// == false` an existing file is an error and stays untouched.
pub fn persist(tmp: tempfile::NamedTempFile, path: &Path, overwrite: bool) -> Result<(), FsError> {
    tmp.as_file().sync_all().map_err(io_err(path))?;
    if overwrite {
        tmp.persist(path).map_err(|e| io_err(path)(e.error))?;
    } else {
        tmp.persist_noclobber(path).map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                FsError::Exists(path.to_path_buf())
            } else {
                io_err(path)(e.error)
            }
        })?;
    }
    sync_dir(parent(path))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes a rename or file creation in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<(), FsError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

pub fn read(path: &Path) -> Result<Vec<u8>, FsError> {
    std::fs::read(path).map_err(io_err(path))
}

pub fn read_to_string(path: &Path) -> Result<String, FsError> {
    std::fs::read_to_string(path).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_refuses_to_clobber_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_atomic(&p, b"one", 0o600, false).unwrap();
        assert!(matches!(
            write_atomic(&p, b"two", 0o600, false),
            Err(FsError::Exists(_))
        ));
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        write_atomic(&p, b"two", 0o644, true).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary files left behind");
    }
}
