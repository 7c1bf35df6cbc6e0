//! The server's own settings (`[server]`, `[auth]`, `[log]`) and the binary's whole
//! configuration, [`AppConfig`]: the framework's [`Config`] with these sections beside it.
//!
//! The framework reads its sections; these are the binary's, declared here and read from the
//! same file and the same `COORDINATOR__*` overrides ([`ConfigSource`]).

use std::collections::BTreeMap;
use std::ops::Deref;
use std::time::Duration;

use coordinator::Config;
use coordinator::config::{ConfigDuration, ConfigError, ConfigSource, Secret};
use coordinator::http::Mounts;
use serde::{Deserialize, Serialize};

/// The top-level sections the server reads (the framework reads the others).
pub const SECTIONS: &[&str] = &["server", "auth", "log"];

/// The paths the server itself serves; no extension may be mounted on or under them.
pub const CORE_PATHS: &[&str] = &[
    "/health",
    "/ready",
    "/metrics",
    "/api/v1",
    "/api/openapi.json",
];

/// The binary's whole configuration: the framework's [`Config`] (reached through `Deref`:
/// `config.worker`, `config.storage`) and the server's own sections.
///
/// ```
/// use coordinator_server::settings::AppConfig;
///
/// let config = AppConfig::from_toml("[server]\nbind = \"0.0.0.0:8140\"\n[worker]\nconcurrency = 2\n").unwrap();
/// assert_eq!(config.server.bind, "0.0.0.0:8140");
/// assert_eq!(config.worker.concurrency, 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppConfig {
    /// The framework's sections.
    pub framework: Config,
    /// `[server]`: the HTTP server.
    pub server: ServerConfig,
    /// `[auth]`: who may call `/api/v1/*` and the extension routes that require it.
    pub auth: AuthConfig,
    /// `[log]`: what the process logs and how.
    pub log: LogConfig,
}

impl Deref for AppConfig {
    type Target = Config;

    fn deref(&self) -> &Config {
        &self.framework
    }
}

impl AppConfig {
    /// Reads the framework's and the server's sections from `source`, reporting every problem
    /// of every section at once; any other section is refused.
    pub fn read(source: &ConfigSource) -> Result<Self, ConfigError> {
        let (framework, (server, auth, log)) = source.framework_and(SECTIONS, |sections| {
            (
                sections.section("server"),
                sections.section("auth"),
                sections.section("log"),
            )
        })?;
        Ok(Self {
            framework,
            server,
            auth,
            log,
        })
    }

    /// Parses TOML text, without environment overrides (for tests and tools).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Self::read(&ConfigSource::new("configuration", text, Vec::new()))
    }

    /// Where the extensions' routes are mounted: `[server.mounts]`, beside the core paths.
    pub fn mounts(&self) -> Mounts {
        Mounts {
            custom: self.server.mounts.clone(),
            configured_at: "[server.mounts]",
            reserved: CORE_PATHS.to_vec(),
        }
    }
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The address the HTTP server listens on. Default `"127.0.0.1:8140"`.
    pub bind: String,
    /// How long one request may take before it is answered with 503. Default `"30s"`.
    pub request_timeout: ConfigDuration,
    /// The largest request body accepted, in bytes. Default 1 MiB.
    pub body_limit_bytes: usize,
    /// On SIGTERM or SIGINT, how long in-flight requests may take to finish. Default `"30s"`.
    pub shutdown_grace: ConfigDuration,
    /// How long a connection may go without sending a complete request head: idle between
    /// requests, or sending one slowly. It is then closed. Default `"15s"` (keep it above a
    /// load balancer's idle timeout when one keeps connections open to the server).
    pub idle_timeout: ConfigDuration,
    /// How long a request's body may take to arrive once its head has; a slower one is
    /// answered 408. Default `"10s"`.
    pub body_timeout: ConfigDuration,
    /// The most connections open at once; more wait in the listen queue until one closes.
    /// Default 1024.
    pub max_connections: usize,
    /// Where each extension's routes are served, by extension name, instead of the default
    /// `/api/<extension>` (to keep the URLs an existing client already calls, say
    /// `demo = "/lms"`). Mounts may not overlap each other or the core paths ([`CORE_PATHS`]).
    pub mounts: BTreeMap<String, String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8140".to_owned(),
            request_timeout: ConfigDuration(Duration::from_secs(30)),
            body_limit_bytes: 1024 * 1024,
            shutdown_grace: ConfigDuration(Duration::from_secs(30)),
            idle_timeout: ConfigDuration(Duration::from_secs(15)),
            body_timeout: ConfigDuration(Duration::from_secs(10)),
            max_connections: 1024,
            mounts: BTreeMap::new(),
        }
    }
}

/// `[auth]`. With nothing configured, `/api/v1/*` refuses every request with a 401 that says
/// how to configure credentials.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Static API tokens accepted as `Authorization: Bearer <token>`. Set them from the
    /// environment: `COORDINATOR__AUTH__API_TOKENS='["..."]'`.
    pub api_tokens: Vec<Secret>,
    /// JSON Web Tokens accepted as `Authorization: Bearer <jwt>`.
    pub jwt: Option<JwtConfig>,
}

/// `[auth.jwt]`: exactly one of `hs256_secret` and `rs256_public_key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// The shared secret of HS256 tokens (from the environment:
    /// `COORDINATOR__AUTH__JWT__HS256_SECRET`).
    pub hs256_secret: Option<Secret>,
    /// The PEM public key that verifies RS256 tokens.
    pub rs256_public_key: Option<String>,
    /// The required `iss` claim.
    pub issuer: Option<String>,
    /// The required `aud` claim.
    pub audience: Option<String>,
    /// A scope every token must grant (in its space-separated `scope` claim or its `scp`
    /// claim), or the request is refused with 403. Default: none required.
    pub required_scope: Option<String>,
    /// Clock skew tolerated when checking `exp` and `nbf`. Default `"30s"`.
    #[serde(default = "default_leeway")]
    pub leeway: ConfigDuration,
}

fn default_leeway() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(30))
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter directive: `"info"`, `"warn,coordinator=debug"`. Default `"info"`.
    /// The `RUST_LOG` environment variable, when set, takes precedence.
    pub level: String,
    /// `"pretty"` (for people) or `"json"` (for log collectors). Default `"pretty"`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Pretty,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}
