//! Logging: `tracing` events as lines on standard error, so that standard output carries only a
//! command's result.

use std::io::IsTerminal;

use crate::settings::{LogConfig, LogFormat};
use anyhow::{Context as _, anyhow};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber: level from `RUST_LOG` when set, else from `[log] level`;
/// human-readable or JSON lines from `[log] format`.
pub fn init(log: &LogConfig, origin: &str) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directive) if !directive.trim().is_empty() => EnvFilter::try_new(&directive)
            .with_context(|| {
                format!(
                    "RUST_LOG={directive:?} is not a valid tracing filter; set it to e.g. \"info\" or \"warn,coordinator=debug\", or unset it to use [log] level"
                )
            })?,
        _ => EnvFilter::try_new(&log.level).with_context(|| {
            format!(
                "{origin}: [log] level = {:?} is not a valid tracing filter; use e.g. \"info\" or \"warn,coordinator=debug\"",
                log.level
            )
        })?,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match log.format {
        LogFormat::Pretty => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().try_init(),
    }
    .map_err(|e| anyhow!("cannot install the log subscriber: {e}"))
}
