//! cod: a toolkit for running a decentralized, anonymous collaboration network.
//!
//! Code map (see `docs/ARCHITECTURE.md` for the whole picture):
//!
//! - pure core, no I/O: [`ids`], [`keys`], [`config`], [`package`]
//! - edges: [`fsutil`], [`keyfile`], [`store`], [`nodedir`], [`deploy`]
//! - the command line: [`cli`] (clap definitions) and [`cmd`] (what each command does)

pub mod api;
pub mod archive;
pub mod chain;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod control;
pub mod deploy;
pub mod fsutil;
pub mod ids;
pub mod keyfile;
pub mod keys;
pub mod ledger;
pub mod node;
pub mod nodedir;
pub mod package;
pub mod seeder;
pub mod store;
pub mod tui;
pub mod views;

use clap::Parser;
use std::process::ExitCode;

/// Runs the `cod` command line: parses arguments, runs the command, and turns an error into
/// a message on stderr and an exit code.
pub fn run() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli::dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
