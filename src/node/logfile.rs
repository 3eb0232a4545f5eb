//! The daemon's log file (`cod node start`, or `cod node run --log-file`): appended to,
//! rotated by size (node.ini `[log] max_size`, `keep`: `node.log` → `node.log.1` → … →
//! `node.log.KEEP`, the oldest dropped), and reopened on SIGHUP, so that logrotate may move
//! it instead. Events are written whole: a rotation never splits a line.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

/// The file the daemon logs to, if it logs to one (set once, by [`LogFile::install`]).
static INSTALLED: OnceLock<&'static LogFile> = OnceLock::new();

pub struct LogFile {
    path: PathBuf,
    /// Rotate before a line would take the file past this many bytes (0: never).
    max_bytes: u64,
    /// Rotated files kept.
    keep: u32,
    /// Also point this process's stdout and stderr at the file (panics, early errors): the
    /// daemon's.
    take_stderr: bool,
    open: Mutex<Open>,
    reopen: AtomicBool,
}

struct Open {
    file: File,
    len: u64,
}

impl LogFile {
    pub fn open(
        path: &Path,
        max_bytes: u64,
        keep: u32,
        take_stderr: bool,
    ) -> std::io::Result<Self> {
        let open = Self::open_file(path, take_stderr)?;
        Ok(Self {
            path: path.to_path_buf(),
            max_bytes,
            keep: keep.max(1),
            take_stderr,
            open: Mutex::new(open),
            reopen: AtomicBool::new(false),
        })
    }

    /// Makes `file` the daemon's log file for the rest of the process (SIGHUP reopens it:
    /// [`reopen_installed`]), and gives the writer to hand the log subscriber.
    pub fn install(file: LogFile) -> &'static LogFile {
        let file: &'static LogFile = Box::leak(Box::new(file));
        let _ = INSTALLED.set(file);
        file
    }

    fn open_file(path: &Path, take_stderr: bool) -> std::io::Result<Open> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        if take_stderr {
            use std::os::fd::AsRawFd;
            // SAFETY: dup2 on valid descriptors; fds 1 and 2 are this process's stdout and stderr.
            unsafe {
                libc::dup2(file.as_raw_fd(), 1);
                libc::dup2(file.as_raw_fd(), 2);
            }
        }
        let len = file.metadata()?.len();
        Ok(Open { file, len })
    }

    /// The path of the `n`th rotated file (`node.log.1`, …).
    fn rotated(&self, n: u32) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        name.into()
    }

    fn rotate(&self) -> std::io::Result<()> {
        for n in (1..self.keep).rev() {
            match std::fs::rename(self.rotated(n), self.rotated(n + 1)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        std::fs::rename(&self.path, self.rotated(1))
    }

    /// Writes one whole event: after reopening the file if SIGHUP asked, and rotating it if
    /// the event would take it past the size.
    fn write_event(&self, event: &[u8]) -> std::io::Result<()> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if self.reopen.swap(false, Ordering::SeqCst) {
            match Self::open_file(&self.path, self.take_stderr) {
                Ok(o) => *open = o,
                // (The old file, until a later line can open the new one.)
                Err(_) => self.reopen.store(true, Ordering::SeqCst),
            }
        }
        let len = event.len() as u64;
        if self.max_bytes > 0 && open.len > 0 && open.len.saturating_add(len) > self.max_bytes {
            // A rotation that fails leaves the line in the current file: kept, not lost.
            if self.rotate().is_ok() {
                *open = Self::open_file(&self.path, self.take_stderr)?;
            }
        }
        open.file.write_all(event)?;
        open.len = open.len.saturating_add(len);
        Ok(())
    }
}

/// The daemon's log filter, which `cod config reload` may change (unless `COD_LOG` set it).
static FILTER: OnceLock<(
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>,
    bool,
)> = OnceLock::new();

/// Keeps the handle that changes the daemon's log filter; `from_env`: `COD_LOG` set it, and
/// it stays.
pub fn install_filter(
    handle: tracing_subscriber::reload::Handle<
        tracing_subscriber::EnvFilter,
        tracing_subscriber::Registry,
    >,
    from_env: bool,
) {
    let _ = FILTER.set((handle, from_env));
}

/// Sets the daemon's log filter to `directives` (node.ini `[log] level`): whether it did
/// (not when `COD_LOG` set the filter, or in a process that installed none).
pub fn set_level(directives: &str) -> Result<bool, LevelError> {
    let Some((handle, from_env)) = FILTER.get() else {
        return Ok(false);
    };
    if *from_env {
        return Ok(false);
    }
    let filter = tracing_subscriber::EnvFilter::try_new(directives)?;
    handle.reload(filter)?;
    Ok(true)
}

/// Why [`set_level`] could not set the filter.
#[derive(Debug, thiserror::Error)]
pub enum LevelError {
    #[error("{0}")]
    Directives(#[from] tracing_subscriber::filter::ParseError),
    #[error("the log filter cannot be changed: {0}")]
    Reload(#[from] tracing_subscriber::reload::Error),
}

/// SIGHUP: the installed log file is reopened before its next line (logrotate moved it).
/// Whether the daemon logs to a file at all.
pub fn reopen_installed() -> bool {
    INSTALLED.get().is_some_and(|f| {
        f.reopen.store(true, Ordering::SeqCst);
        true
    })
}

/// One event being formatted; written whole when dropped.
pub struct Event<'a> {
    file: &'a LogFile,
    bytes: Vec<u8>,
}

impl Write for Event<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Event<'_> {
    fn drop(&mut self) {
        if !self.bytes.is_empty() {
            // Nowhere left to say it failed (stderr may be this very file).
            let _ = self.file.write_event(&self.bytes);
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for &'static LogFile {
    type Writer = Event<'static>;

    fn make_writer(&'a self) -> Self::Writer {
        Event {
            file: self,
            bytes: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(f: &LogFile, line: &str) {
        let mut e = Event {
            file: f,
            bytes: Vec::new(),
        };
        e.write_all(line.as_bytes()).unwrap();
    }

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_default()
    }

    #[test]
    fn rotates_by_size_keeping_whole_lines_and_the_newest_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.log");
        let f = LogFile::open(&path, 100, 2, false).unwrap();
        for i in 0..12 {
            log(&f, &format!("line {i:02} {}\n", "x".repeat(20)));
        }
        // 29-byte lines, 3 to a file: lines 9–11 here, 6–8 in .1, 3–5 in .2; 0–2 dropped.
        assert!(read(&path).starts_with("line 09") && read(&path).contains("line 11"));
        assert!(read(&dir.path().join("node.log.1")).starts_with("line 06"));
        assert!(read(&dir.path().join("node.log.2")).starts_with("line 03"));
        assert!(!dir.path().join("node.log.3").exists(), "two kept");
        for p in ["node.log", "node.log.1", "node.log.2"] {
            let text = read(&dir.path().join(p));
            assert!(text.len() <= 100, "{p}: {} bytes", text.len());
            assert!(text.lines().all(|l| l.len() == 28), "{p}: whole lines");
        }
        // A line larger than the limit still goes, alone in its file.
        log(&f, &format!("{}\n", "y".repeat(150)));
        assert_eq!(read(&path).len(), 151);
        // 0: never rotated.
        let never = dir.path().join("never.log");
        let f = LogFile::open(&never, 0, 5, false).unwrap();
        for _ in 0..50 {
            log(&f, "0123456789\n");
        }
        assert_eq!(read(&never).len(), 550);
        assert!(!dir.path().join("never.log.1").exists());
    }

    #[test]
    fn a_moved_file_is_reopened_when_asked_and_not_before() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.log");
        let f = LogFile::open(&path, 0, 5, false).unwrap();
        log(&f, "before\n");
        // logrotate's way: move the file, then signal.
        let moved = dir.path().join("node.log-20261204");
        std::fs::rename(&path, &moved).unwrap();
        log(&f, "still into the moved file\n");
        assert_eq!(read(&moved), "before\nstill into the moved file\n");
        assert!(!path.exists());
        f.reopen.store(true, Ordering::SeqCst);
        log(&f, "after\n");
        assert_eq!(read(&path), "after\n");
        assert_eq!(read(&moved), "before\nstill into the moved file\n");
    }
}
