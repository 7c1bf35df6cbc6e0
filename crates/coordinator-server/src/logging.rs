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
        // Values from outside (an order number, an error's text) may hold a newline or an
        // escape sequence: written raw, they could forge a log line or repaint the terminal.
        LogFormat::Pretty => builder
            .fmt_fields(escaping_fields())
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        // JSON escapes every control character already.
        LogFormat::Json => builder.json().try_init(),
    }
    .map_err(|e| anyhow!("cannot install the log subscriber: {e}"))
}

/// The fields of a human-readable line as `name=value`, space separated (the message alone),
/// every control character in them escaped (`\n`, `\u{1b}`), so that one event is one line.
pub fn escaping_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + 'static {
    use tracing_subscriber::field::MakeExt;
    tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
        let raw = format!("{value:?}");
        let text = escape_controls(&raw);
        if field.name() == "message" {
            write!(writer, "{text}")
        } else {
            write!(writer, "{field}={text}")
        }
    })
    .delimited(" ")
}

/// `text` with each control character written as its escape.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    std::borrow::Cow::Owned(escaped)
}

/// What is wrong with a `[log] level`, if anything: a directive that is neither a level nor
/// `target=level` (`warning` would enable a target named "warning" and silence everything else).
pub fn level_problem(level: &str) -> Option<String> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    let is_level = |l: &str| LEVELS.contains(&l.trim().to_ascii_lowercase().as_str());
    for directive in level.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let bad = match directive.split_once('=') {
            Some((_, l)) => (!is_level(l)).then(|| l.trim().to_owned()),
            None if directive.contains(['[', ':']) => None,
            None => (!is_level(directive)).then(|| directive.to_owned()),
        };
        if let Some(bad) = bad {
            return Some(format!(
                "\"{bad}\" is not a log level; write one of off, error, warn, info, debug or \
                 trace, or <target>=<level> (e.g. \"warn,coordinator=debug\")"
            ));
        }
    }
    EnvFilter::try_new(level).err().map(|e| {
        format!("is not a valid filter ({e}); write e.g. \"info\" or \"warn,coordinator=debug\"")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_targets_pass_and_a_typo_does_not() {
        for ok in [
            "info",
            "WARN",
            "warn,coordinator=debug",
            "coordinator::worker=trace",
            "off",
        ] {
            assert_eq!(level_problem(ok), None, "{ok}");
        }
        let e = level_problem("warning").unwrap();
        assert!(e.starts_with("\"warning\" is not a log level"), "{e}");
        assert!(level_problem("info,coordinator=loud").is_some());
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape_controls("EDX-1"), "EDX-1");
        assert_eq!(
            escape_controls("EDX-1\n2026-11-29T00:00:00Z ERROR forged\u{1b}[31m"),
            "EDX-1\\n2026-11-29T00:00:00Z ERROR forged\\u{1b}[31m"
        );
    }
}
