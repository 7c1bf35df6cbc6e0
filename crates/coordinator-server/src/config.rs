//! Loading the configuration: the file named by `--config` or `COORDINATOR_CONFIG`, else the
//! embedded default, with the `COORDINATOR__*` environment overrides applied.

use std::path::Path;

use anyhow::bail;
use coordinator::config::{ConfigSource, ENV_PREFIX};

use crate::settings::AppConfig;

/// The configuration used when no file is named, compiled into the binary.
pub const DEFAULT_CONFIG: &str = include_str!("../../../config/default.toml");

/// How messages name the embedded default configuration.
pub const DEFAULT_ORIGIN: &str = "embedded default (config/default.toml)";

/// The configuration a binary uses when no file is named: its text and how messages name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Embedded {
    /// How messages name it (`embedded default (config/default.toml)`).
    pub origin: &'static str,
    /// The TOML text.
    pub text: &'static str,
}

/// The bundled binary's embedded default: [`DEFAULT_CONFIG`].
pub const BUNDLED: Embedded = Embedded {
    origin: DEFAULT_ORIGIN,
    text: DEFAULT_CONFIG,
};

/// A configuration and where it came from.
#[derive(Debug)]
pub struct Loaded {
    /// The configuration, overrides applied.
    pub config: AppConfig,
    /// Where it came from, for messages: the file or the embedded default, and the overriding
    /// environment variables if any are set.
    pub origin: String,
}

/// Loads the configuration from `path` (or `default`, the embedded default) and the process
/// environment.
pub fn load(path: Option<&Path>, default: Embedded) -> anyhow::Result<Loaded> {
    load_with(path, default, overrides()?)
}

/// Loads the configuration from `path` (or `default`) with the overrides in `env`.
fn load_with(
    path: Option<&Path>,
    default: Embedded,
    env: Vec<(String, String)>,
) -> anyhow::Result<Loaded> {
    let mut names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    let base = path.map_or_else(|| default.origin.to_owned(), |p| p.display().to_string());
    let origin = if names.is_empty() {
        base
    } else {
        format!("{base} with overrides from {}", names.join(", "))
    };
    let source = match path {
        Some(path) => ConfigSource::read(path, env)?,
        None => ConfigSource::new(default.origin, default.text, env),
    };
    let config = AppConfig::read(&source)?;
    Ok(Loaded { config, origin })
}

/// The `COORDINATOR__*` variables of the process environment.
fn overrides() -> anyhow::Result<Vec<(String, String)>> {
    let mut vars = Vec::new();
    for (key, value) in std::env::vars_os() {
        if !key.to_string_lossy().starts_with(ENV_PREFIX) {
            continue;
        }
        match (key.into_string(), value.into_string()) {
            (Ok(key), Ok(value)) => vars.push((key, value)),
            (Ok(key), Err(_)) => bail!(
                "environment variable {key} is not valid UTF-8; set it to a UTF-8 value or unset it"
            ),
            (Err(key), _) => bail!(
                "environment variable {} has a name that is not valid UTF-8; unset it",
                key.to_string_lossy()
            ),
        }
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_default_parses() {
        let loaded = load_with(None, BUNDLED, Vec::new()).unwrap();
        assert_eq!(loaded.origin, DEFAULT_ORIGIN);
        assert_eq!(loaded.config.server.bind, "127.0.0.1:8140");
    }

    #[test]
    fn the_origin_names_the_overriding_variables() {
        let loaded = load_with(
            None,
            BUNDLED,
            vec![
                ("COORDINATOR__TIMEOUTS__STEP".to_owned(), "2s".to_owned()),
                (
                    "COORDINATOR__SERVER__BIND".to_owned(),
                    "0.0.0.0:1".to_owned(),
                ),
            ],
        )
        .unwrap();
        assert_eq!(
            loaded.origin,
            "embedded default (config/default.toml) with overrides from COORDINATOR__SERVER__BIND, COORDINATOR__TIMEOUTS__STEP"
        );
        assert_eq!(loaded.config.server.bind, "0.0.0.0:1");
    }

    #[test]
    fn a_missing_file_is_named_in_the_error() {
        let e = load_with(
            Some(Path::new("/no/such/coordinator.toml")),
            BUNDLED,
            Vec::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("/no/such/coordinator.toml"), "{e}");
    }
}
