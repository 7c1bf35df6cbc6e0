//! The `coordinator` binary as a library: the command line, the HTTP server and the pieces the
//! server is made of, so that tests can build the same router the binary serves and call it
//! without a socket.
//!
//! - [`cli`] and [`commands`]: what `coordinator` accepts and runs (`check`, `signals`, `graph`,
//!   `docs`, `migrate`, `serve`, `worker`, `tasks`).
//! - [`queue`]: `coordinator tasks` output, the task queue as text.
//! - [`checks`]: the server's own configuration checks, reported with the wiring's.
//! - [`http`]: the router (`/health`, `/ready`, `/metrics`, `/api/openapi.json`, `/api/v1/*`
//!   and every extension's routes) and its middleware, auth, metrics and OpenAPI document.
//! - [`server`]: `coordinator serve`, `coordinator worker` and `coordinator migrate`: store,
//!   migrations, dispatch log writer, task worker, listener, graceful shutdown.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use coordinator::Config;

//! use coordinator_server::{extensions, http, server};
//!
//! let config = Config::from_toml("[extensions]\nenabled = []\n")?;
//! // Validate first (no I/O), then connect the store and build over it.
//! let validated = server::validate(config, extensions::all()).map_err(|v| v.to_string())?;
//! let store = coordinator_server::storage::connect(&validated.config().storage).await?;
//! let prepared = validated.prepare(store.clone()).map_err(|v| v.to_string())?;
//! store.migrate(&prepared.coordinator.migrations()).await?;
//! let router = http::router(prepared.state());
//! # let _ = router; Ok(()) }
//! ```

pub mod checks;
pub mod cli;
pub mod commands;
pub mod config;
pub mod extensions;
pub mod http;
pub mod logging;
pub mod queue;
pub mod server;
pub mod storage;
