//! `coordinator`: the Commerce Coordinator's command line.
//!
//! `check` validates the configuration; `signals`, `graph` and `docs` print the catalog. Exit
//! status: 0 success, 1 invalid or unreadable configuration or a failed command, 2 usage error.

mod cli;
mod commands;
mod config;
mod extensions;
mod logging;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    // Usage errors exit with status 2 here, from clap.
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(commands::EXIT_FAILURE)
        }
    }
}
