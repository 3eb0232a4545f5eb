//! What each command does: reads inputs, calls the core, prints results. Human output goes
//! to stdout, progress and notices to stderr; with `--json`, stdout carries exactly one JSON
//! document whose keys are stable.

pub mod backend;
pub mod chain;
pub mod complete;
pub mod deploy;
pub mod fetch;
pub mod install;
pub mod keys;
pub mod node;
pub mod pack;
pub mod sign;
pub mod upgrade;
pub mod wallet;

use crate::control::ErrorKind;
use crate::control::client::ClientError;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// A command's failure: a message for the person and an exit code for the script.
#[derive(Debug)]
pub struct CmdError {
    pub code: u8,
    pub error: anyhow::Error,
}

/// Exit codes: one table for every command (README "Exit codes").
pub const EXIT_FAILURE: u8 = 1;
/// The command line, or what it names, is not usable.
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_NO_DAEMON: u8 = 3;
/// The ledger's or the signers' rules refused it (a transfer, a proposal, a signature).
pub const EXIT_REFUSED: u8 = 4;
/// It names something the node does not hold (a signature request).
pub const EXIT_NOT_FOUND: u8 = 5;

/// The exit code of a command whose request the daemon answered with an error of `kind`.
pub fn exit_code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::BadRequest => EXIT_USAGE,
        ErrorKind::NotFound => EXIT_NOT_FOUND,
        ErrorKind::Refused | ErrorKind::SeqTaken => EXIT_REFUSED,
        ErrorKind::Internal => EXIT_FAILURE,
    }
}

impl CmdError {
    pub fn msg(message: impl std::fmt::Display) -> Self {
        Self {
            code: EXIT_FAILURE,
            error: anyhow::anyhow!("{message}"),
        }
    }

    /// The command line is not usable (exit code 2).
    pub fn usage(message: impl std::fmt::Display) -> Self {
        Self {
            code: EXIT_USAGE,
            error: anyhow::anyhow!("{message}"),
        }
    }

    pub fn exit_code(&self) -> u8 {
        self.code
    }
}

impl std::fmt::Display for CmdError {
    /// The error and its causes, `: `-separated — but a cause whose words its error already
    /// says (as in `#[error("{path}: {source}")]`) is not said twice.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut said = self.error.to_string();
        f.write_str(&said)?;
        for cause in self.error.chain().skip(1) {
            let text = cause.to_string();
            if !said.contains(&text) {
                write!(f, ": {text}")?;
            }
            said = text;
        }
        Ok(())
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for CmdError {
    /// Exits 1, but for the daemon's answers: by their kind ([`exit_code`]).
    fn from(e: E) -> Self {
        let code = match (&e as &dyn std::any::Any).downcast_ref::<ClientError>() {
            Some(ClientError::Daemon { kind, .. }) => exit_code(*kind),
            Some(ClientError::NotRunning(_)) => EXIT_NO_DAEMON,
            _ => EXIT_FAILURE,
        };
        Self {
            code,
            error: e.into(),
        }
    }
}

pub type CmdResult = Result<(), CmdError>;

/// Where results go.
pub struct Output {
    json: bool,
}

impl Output {
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    /// Prints the human view, or the JSON document with `--json`.
    pub fn emit(&self, human: impl std::fmt::Display, json: impl serde::Serialize) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&json).expect("views serialize")
            );
        } else {
            print!("{human}");
        }
    }

    /// A notice for the person (stderr), suppressed with `--json`.
    pub fn note(&self, msg: impl std::fmt::Display) {
        if !self.json {
            eprintln!("{msg}");
        }
    }
}

pub use crate::views::prefix;

/// `cod man`: the man pages, generated from the command-line definitions — cod.1 on stdout,
/// or cod.1 and one page per subcommand (`cod-node-run.1`, …) written into `dir`.
pub fn man(out: &Output, dir: Option<&std::path::Path>) -> CmdResult {
    let cmd = <crate::cli::Cli as clap::CommandFactory>::command();
    let Some(dir) = dir else {
        clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
        return Ok(());
    };
    std::fs::create_dir_all(dir)?;
    clap_mangen::generate_to(cmd, dir)?;
    let mut pages: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("cod") && n.ends_with(".1"))
        .collect();
    pages.sort();
    out.emit(
        format!("{} man pages in {}\n", pages.len(), dir.display()),
        serde_json::json!({"dir": dir, "pages": pages}),
    );
    Ok(())
}

/// `ITEM=QTY` for a backing item of com.ini and a whole quantity of at least `min` (an
/// attested stock may be 0; work done and products delivered are not).
pub fn item_quantity(
    com: &crate::config::ComConfig,
    text: &str,
    min: u64,
) -> Result<(String, u64), CmdError> {
    let (item, qty) = text
        .split_once('=')
        .ok_or_else(|| CmdError::usage(format!("{text:?} is not ITEM=QTY")))?;
    if !com.backing.contains_key(item) {
        return Err(CmdError::usage(format!(
            "com.ini has no backing item {item:?} (it has: {})",
            com.backing.keys().cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    match qty.parse::<u64>() {
        Ok(q) if q >= min => Ok((item.to_string(), q)),
        _ => Err(CmdError::usage(format!(
            "{qty:?} is not a whole quantity of at least {min}"
        ))),
    }
}

/// A byte progress bar on stderr when it is a terminal, invisible otherwise.
pub fn progress_bar(total: u64, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{path}: {source}")]
    struct WithSource {
        path: &'static str,
        source: std::io::Error,
    }

    #[test]
    fn a_reason_is_said_once() {
        let e = CmdError::from(WithSource {
            path: "/n/pass",
            source: std::io::Error::other("permission denied"),
        });
        assert_eq!(e.to_string(), "/n/pass: permission denied");
        let wrapped = CmdError {
            code: 1,
            error: anyhow::Error::new(std::io::Error::other("disk full")).context("writing x"),
        };
        assert_eq!(wrapped.to_string(), "writing x: disk full");
    }

    #[test]
    fn the_daemons_answers_exit_by_their_kind() {
        let kinds = [
            (ErrorKind::BadRequest, EXIT_USAGE),
            (ErrorKind::NotFound, EXIT_NOT_FOUND),
            (ErrorKind::Refused, EXIT_REFUSED),
            (ErrorKind::SeqTaken, EXIT_REFUSED),
            (ErrorKind::Internal, EXIT_FAILURE),
        ];
        for (kind, code) in kinds {
            let e = CmdError::from(ClientError::Daemon {
                kind,
                message: "m".into(),
            });
            assert_eq!(e.exit_code(), code, "{kind:?}");
            assert_eq!(e.to_string(), "m");
        }
        let gone = CmdError::from(ClientError::NotRunning("/n/cod.sock".into()));
        assert_eq!(gone.exit_code(), EXIT_NO_DAEMON);
        let other = CmdError::from(std::io::Error::other("x"));
        assert_eq!(other.exit_code(), EXIT_FAILURE);
    }
}
