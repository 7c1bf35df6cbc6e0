//! `coordinator`: the Commerce Coordinator's command line.
//!
//! `serve` runs the HTTP server (with an embedded task worker); `worker` runs tasks only; `tasks`
//! inspects and operates the task queue; `migrate` brings the database up to date; `check`
//! validates the configuration; `signals`, `graph` and `docs` print the catalog. Exit status:
//! 0 success, 1 invalid or unreadable configuration or a failed command, 2 usage error.

use std::process::ExitCode;

use clap::Parser as _;
use coordinator_server::{cli, commands};

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
