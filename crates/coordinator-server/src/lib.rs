//! The `coordinator` binary as a library: compose a binary of your own over the extensions you
//! choose ([`App`]), or use the pieces the server is made of (tests build the same router the
//! binary serves and call it without a socket).
//!
//! - [`App`] and [`bundled`]: the entry point, `App::new().extensions(bundled()).run()`.
//! - [`cli`] and [`commands`]: what `coordinator` accepts and runs (`check`, `signals`, `graph`,
//!   `docs`, `migrate`, `serve`, `worker`, `tasks`).
//! - [`config`] and [`settings`]: loading the configuration; the server's own sections
//!   (`[server]`, `[auth]`, `[log]`) beside the framework's.
//! - [`storage`]: the backend named by `[storage] url` (Cargo features `sqlite`, `postgres`).
//! - [`queue`]: `coordinator tasks` output, the task queue as text.
//! - [`checks`]: the server's own configuration checks, reported with the wiring's.
//! - [`http`]: the router (`/health`, `/ready`, `/metrics`, `/api/openapi.json`, `/api/v1/*`
//!   and every extension's routes) and its middleware, auth, metrics and OpenAPI document.
//! - [`server`]: `coordinator serve`, `coordinator worker` and `coordinator migrate`: store,
//!   migrations, dispatch log writer, task worker, listener, graceful shutdown.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use coordinator_server::settings::AppConfig;
//! use coordinator_server::{bundled, http, server, storage};
//!
//! let config = AppConfig::from_toml("[extensions]\nenabled = []\n")?;
//! // Validate first (no I/O), then connect the store and build over it.
//! let validated = server::validate(config, bundled()).map_err(|v| v.to_string())?;
//! let store = storage::connect(&validated.config().storage).await?;
//! let prepared = validated.prepare(store.clone()).map_err(|v| v.to_string())?;
//! store.migrate(&prepared.coordinator.migrations()).await?;
//! let router = http::router(prepared.state());
//! # let _ = router; Ok(()) }
//! ```

mod app;
pub mod checks;
pub mod cli;
pub mod commands;
pub mod config;
pub mod extensions;
pub mod http;
pub mod listener;
pub mod logging;
pub mod queue;
pub mod server;
pub mod settings;
pub mod storage;

pub use app::App;
pub use extensions::bundled;
