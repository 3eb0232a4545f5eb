//! cod: a toolkit for running a decentralized, anonymous collaboration network.
//!
//! Code map (see `docs/ARCHITECTURE.md` for the whole picture):
//!
//! - pure core, no I/O: [`ids`], [`keys`], [`config`], [`package`], [`ledger`],
//!   [`signature_requests`], [`stem`], [`torrents`], [`transport`], [`views`]
//! - edges: [`clock`], [`fsutil`], [`keyfile`], [`store`], [`nodedir`], [`deploy`]
//! - the command line: [`cli`] (clap definitions) and [`cmd`] (what each command does)
//!
//! Without the default feature `node`, only what decodes and checks data is built — no
//! daemon, command line or RocksDB: the fuzz targets (`fuzz/`) build that way.

pub mod api;
pub mod archive;
pub mod bencode;
pub mod chain;
#[cfg(feature = "node")]
pub mod cli;
pub mod clock;
#[cfg(feature = "node")]
pub mod cmd;
pub mod config;
pub mod control;
#[cfg(feature = "node")]
pub mod deploy;
pub mod fsutil;
pub mod ids;
#[cfg(feature = "node")]
pub mod keyfile;
pub mod keys;
pub mod ledger;
pub mod lock;
#[cfg(feature = "node")]
pub mod node;
#[cfg(feature = "node")]
pub mod nodedir;
pub mod package;
pub mod seeder;
#[cfg(feature = "node")]
pub mod service;
pub mod signature_requests;
pub mod stem;
pub mod store;
pub mod torrents;
pub mod transport;
#[cfg(feature = "node")]
pub mod tui;
pub mod views;

/// Runs the `cod` command line: parses arguments, runs the command, and turns an error into
/// a message on stderr and an exit code.
#[cfg(feature = "node")]
pub fn run() -> std::process::ExitCode {
    use clap::Parser;
    use std::process::ExitCode;
    // A shell asking what to offer at TAB (`cod completions SHELL` wrote the script that
    // asks): answer and exit.
    clap_complete::CompleteEnv::with_factory(<cli::Cli as clap::CommandFactory>::command)
        .var(cli::COMPLETE_VAR)
        .bin("cod")
        .completer("cod")
        .complete();
    let cli = cli::Cli::parse();
    match cli::dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
