//! `coordinator`: the Commerce Coordinator's command line, with the bundled extensions.
//!
//! `serve` runs the HTTP server (with an embedded task worker); `worker` runs tasks only; `tasks`
//! inspects and operates the task queue; `migrate` brings the database up to date; `check`
//! validates the configuration; `signals`, `graph` and `docs` print the catalog. Exit status:
//! 0 success, 1 invalid or unreadable configuration or a failed command, 2 usage error.
//!
//! A binary with extensions of your own is the same three lines: see [`coordinator_server::App`].

use std::process::ExitCode;

fn main() -> ExitCode {
    coordinator_server::App::new()
        .extensions(coordinator_server::bundled())
        .run()
}

/// mimalloc: per-thread heaps, where glibc's arenas made the server's threads wait on each
/// other's allocations (a binary of your own may do the same).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
