//! Configuration: one TOML file, every key overridable by an environment variable.
//!
//! The file holds the wiring (`[signals]`, `[filters]`), which extensions are enabled, timeouts,
//! the worker, storage and dispatch log settings, each extension's settings, and the sections
//! of the host application (the `coordinator` binary's `[server]`, `[auth]` and `[log]`, which
//! it defines and reads itself: [`ConfigSource`]). Loading only parses and type-checks; whether
//! the names in it exist is decided by wiring validation ([`crate::wiring`]), which reports every
//! problem at once.
//!
//! Environment variables named `COORDINATOR__<SECTION>__<KEY>` override keys: `__` separates
//! levels and names are lower-cased, so `COORDINATOR__SERVER__BIND=0.0.0.0:8140` sets
//! `server.bind`. In the name-keyed tables (`signals`, `handlers`, `filters`) the two levels after
//! the table are the dotted name: `COORDINATOR__SIGNALS__DEMO__ORDER_PLACED='["demo.enroll_learner"]'`
//! sets `signals."demo.order_placed"`. Values are read as TOML when they parse as a TOML value
//! (arrays, numbers, booleans, quoted strings) and as a plain string otherwise.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod source;

pub(crate) use source::read_extension_settings;
pub use source::{ConfigSource, FRAMEWORK_SECTIONS, SectionReader};

/// The prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "COORDINATOR__";

/// The whole configuration. Every section is optional; the defaults are those documented on each
/// field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// `[extensions]`: which of the compiled-in extensions run.
    #[serde(default)]
    pub extensions: ExtensionsConfig,
    /// `[timeouts]`: default time limits of handlers and filter steps.
    #[serde(default)]
    pub timeouts: TimeoutsConfig,
    /// `[signals]`: signal name to the handlers it is delivered to, and whether it is durable.
    #[serde(default)]
    pub signals: BTreeMap<String, SignalConfig>,
    /// `[handlers."<name>"]`: per-handler settings.
    #[serde(default)]
    pub handlers: BTreeMap<String, HandlerConfig>,
    /// `[filters."<name>"]`: each filter's pipeline of steps.
    #[serde(default)]
    pub filters: BTreeMap<String, FilterConfig>,
    /// `[tasks."<name>"]`: per-task overrides of the retry policy, timeout and queue.
    #[serde(default)]
    pub tasks: BTreeMap<String, TaskConfig>,
    /// `[worker]`: the workers that run tasks.
    #[serde(default)]
    pub worker: WorkerConfig,
    /// `[storage]`: where the coordinator keeps its data.
    #[serde(default)]
    pub storage: StorageConfig,
    /// `[dispatch_log]`: the record of every dispatch.
    #[serde(default)]
    pub dispatch_log: DispatchLogConfig,
    /// `[extension.<name>]`: each extension's own settings, read by the extension's settings type.
    #[serde(default)]
    pub extension: BTreeMap<String, toml::Table>,
    /// The sections the framework does not read, while parsing: the host application's own
    /// (`[server]`, `[auth]` and `[log]` of the `coordinator` binary), which it reads itself
    /// with [`ConfigSource::sections`]. [`ConfigSource::framework`] refuses a section that
    /// neither names, then drops them: they may hold secrets the framework must not keep.
    #[serde(flatten, skip_serializing)]
    pub(crate) host: toml::Table,
    /// Overrides of `[extension.<name>]` keys whose text reads as a scalar other than a string
    /// (paths below `extension`, and the text): a setting that is a string gets the text.
    #[serde(skip)]
    pub(crate) string_overrides: Vec<(Vec<String>, String)>,
}

/// `[extensions]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtensionsConfig {
    /// The extensions that run, by name. When absent, every extension compiled into the binary runs.
    pub enabled: Option<Vec<String>>,
}

/// `[timeouts]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutsConfig {
    /// How long a handler may run before it is abandoned and recorded as timed out. Default `"5s"`.
    pub handler: ConfigDuration,
    /// How long a filter step may run before the filter fails. Default `"5s"`.
    pub step: ConfigDuration,
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        Self {
            handler: ConfigDuration(Duration::from_secs(5)),
            step: ConfigDuration(Duration::from_secs(5)),
        }
    }
}

/// One entry of `[signals]`: the handlers a signal is delivered to, in order, and whether its
/// deliveries are durable.
///
/// Written as a list (`"demo.refunded" = ["demo.revoke_seat"]`) for a signal whose handlers run
/// while it is sent, or as a table for a durable one, whose deliveries are stored (with the
/// sender's own writes, when it sends in a transaction) and run by the workers, each retried on
/// its own:
///
/// ```toml
/// [signals."demo.order_placed"]
/// durable = true
/// handlers = ["demo.enroll_learner", "demo.record_order"]
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignalConfig {
    /// The handlers, in order.
    pub handlers: Vec<String>,
    /// Whether each delivery is stored and run from storage (see `docs/signals.md`).
    pub durable: bool,
}

impl SignalConfig {
    /// A signal delivered to `handlers` while it is sent.
    pub fn to<S: Into<String>>(handlers: impl IntoIterator<Item = S>) -> Self {
        Self {
            handlers: handlers.into_iter().map(Into::into).collect(),
            durable: false,
        }
    }

    /// The same signal, durable.
    pub fn durable(mut self) -> Self {
        self.durable = true;
        self
    }
}

impl Serialize for SignalConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        if !self.durable {
            return self.handlers.serialize(s);
        }
        let mut table = s.serialize_struct("SignalConfig", 2)?;
        table.serialize_field("durable", &true)?;
        table.serialize_field("handlers", &self.handlers)?;
        table.end()
    }
}

impl<'de> Deserialize<'de> for SignalConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// The table form, checked field by field.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            handlers: Vec<String>,
            #[serde(default)]
            durable: bool,
        }
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = SignalConfig;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a list of handler names, or a table with `handlers` (a list) and \
                     `durable` (true or false)",
                )
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<Self::Value, A::Error> {
                let handlers =
                    Vec::<String>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
                Ok(SignalConfig {
                    handlers,
                    durable: false,
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                let t = Table::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(SignalConfig {
                    handlers: t.handlers,
                    durable: t.durable,
                })
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `[handlers."<name>"]`: the handler's timeout, and how its deliveries of durable signals are
/// retried and queued (those settings mean nothing for a handler of non-durable signals only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandlerConfig {
    /// This handler's timeout, instead of `[timeouts] handler`.
    pub timeout: Option<ConfigDuration>,
    /// Durable deliveries: attempts in all, the first included. Default 5.
    pub max_attempts: Option<u32>,
    /// Durable deliveries: the wait after the first failure. Default `"1s"`.
    pub initial_backoff: Option<ConfigDuration>,
    /// Durable deliveries: the longest wait between attempts. Default `"5m"`.
    pub max_backoff: Option<ConfigDuration>,
    /// Durable deliveries: the queue they run on. Default `default`.
    pub queue: Option<String>,
}

impl HandlerConfig {
    /// Whether any setting of durable deliveries is given.
    pub fn has_delivery_settings(&self) -> bool {
        self.max_attempts.is_some()
            || self.initial_backoff.is_some()
            || self.max_backoff.is_some()
            || self.queue.is_some()
    }
}

/// `[filters."<name>"]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// The steps the data passes through, in order.
    pub pipeline: Vec<String>,
    /// The timeout of each step of this filter, instead of `[timeouts] step`.
    pub step_timeout: Option<ConfigDuration>,
}

/// `[tasks."<name>"]`: each key overrides the task's declaration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    /// Attempts in all, the first included.
    pub max_attempts: Option<u32>,
    /// The wait after the first failure.
    pub initial_backoff: Option<ConfigDuration>,
    /// The longest wait between attempts.
    pub max_backoff: Option<ConfigDuration>,
    /// How long one attempt may run.
    pub timeout: Option<ConfigDuration>,
    /// The queue the task runs on.
    pub queue: Option<String>,
}

/// `[worker]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Whether `coordinator serve` runs a worker in its own process. Default `true`; turn it
    /// off when separate `coordinator worker` processes run the tasks.
    pub embedded: bool,
    /// How many tasks one worker runs at once. Default 8.
    pub concurrency: usize,
    /// How many tasks a worker claims ahead, beyond those it runs: they wait in the worker
    /// (leased to it) for a free slot. Claiming in larger batches costs fewer database commits
    /// per task; a task claimed ahead cannot be taken by another worker until it runs or its
    /// worker stops. 0 claims only for free slots. Default 24.
    pub prefetch: usize,
    /// The queues this worker serves; empty means every queue. Default empty.
    pub queues: Vec<String>,
    /// How long a claimed task stays leased to its worker without renewal; a task whose worker
    /// died is claimed again once its lease expires. Default `"30s"`.
    pub lease: ConfigDuration,
    /// How long an idle worker waits before looking for tasks again. Default `"100ms"`.
    pub poll_interval: ConfigDuration,
    /// On shutdown, how long running tasks may take to finish before they are released for
    /// another worker. Default `"30s"`.
    pub shutdown_grace: ConfigDuration,
    /// How long succeeded and cancelled tasks (with their attempts) are kept after they
    /// finished; workers delete older ones when they start and every hour. Dead tasks are kept
    /// until an operator retries or cancels them. `"0s"` keeps everything. Default `"7d"`.
    pub retention: ConfigDuration,
    /// How long the inbox remembers an event it received (to answer a redelivery as a
    /// duplicate); keep it longer than your providers redeliver (Stripe: 3 days). `"0s"` keeps
    /// everything. Default `"30d"`.
    pub inbox_retention: ConfigDuration,
    /// Where `coordinator worker` serves `/health`, `/ready` and `/metrics` (its task
    /// durations and outcomes, and the queue depth), e.g. `"0.0.0.0:8141"`. Default unset: no
    /// HTTP. `coordinator serve` ignores it (its own server has these routes).
    pub bind: Option<String>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            embedded: true,
            concurrency: 8,
            prefetch: 24,
            queues: Vec::new(),
            lease: ConfigDuration(Duration::from_secs(30)),
            poll_interval: ConfigDuration(Duration::from_millis(100)),
            shutdown_grace: ConfigDuration(Duration::from_secs(30)),
            retention: ConfigDuration(Duration::from_secs(7 * 86_400)),
            inbox_retention: ConfigDuration(Duration::from_secs(30 * 86_400)),
            bind: None,
        }
    }
}

/// `[storage]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `sqlite://<path>` (the embedded default: a file in a local data folder, created on
    /// start) or `postgres://user@host:port/database`. Default `"sqlite://coordinator-data/coordinator.db"`.
    pub url: Secret,
    /// The most connections the pool opens. Default 8.
    pub max_connections: u32,
    /// How long opening the database may take at start-up before the process gives up with
    /// an error. Default `"10s"`.
    pub connect_timeout: ConfigDuration,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            url: Secret::new("sqlite://coordinator-data/coordinator.db"),
            max_connections: 8,
            connect_timeout: ConfigDuration(Duration::from_secs(10)),
        }
    }
}

/// `[dispatch_log]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DispatchLogConfig {
    /// Whether dispatch reports are stored. Default `true`.
    pub enabled: bool,
    /// How many reports may wait in memory for the writer. When full, new reports are counted
    /// and logged as dropped; sending never waits. Default 10000.
    pub buffer: usize,
    /// The most reports written in one batch. Default 500.
    pub batch_size: usize,
    /// The longest a report waits before its batch is written. Default `"100ms"`.
    pub flush_interval: ConfigDuration,
    /// How long reports are kept. Default `"7d"`.
    pub retention: ConfigDuration,
}

impl Default for DispatchLogConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            buffer: 10_000,
            batch_size: 500,
            flush_interval: ConfigDuration(Duration::from_millis(100)),
            retention: ConfigDuration(Duration::from_secs(7 * 86_400)),
        }
    }
}

/// A secret (a token, a password, a URL with credentials): readable by the code that needs it,
/// printed as `[secret]` everywhere else (`Debug`, `Display`, and when the configuration is
/// written out).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl<'de> Deserialize<'de> for Secret {
    /// A secret is text. Anything else is refused with a message that does not show it.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a secret, written as a quoted string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Secret, E> {
                Ok(Secret(v))
            }
        }
        deserializer.deserialize_str(Text).map_err(|_: D::Error| {
            serde::de::Error::custom(
                "a secret must be a quoted string (its value is not shown); quote it, or set it \
                     from the environment",
            )
        })
    }
}

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the code that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[secret]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[secret]")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("[secret]")
    }
}

/// A duration written as a number and a unit: `"250ms"`, `"5s"`, `"2m"`, `"1h"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigDuration(pub Duration);

impl FromStr for ConfigDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let bad = || {
            format!(
                "invalid duration \"{s}\": write a whole number and a unit (ms, s, m, h or d), e.g. \"250ms\" or \"5s\""
            )
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        let d = match unit.trim() {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "d" => Duration::from_secs(n.saturating_mul(86_400)),
            _ => return Err(bad()),
        };
        Ok(Self(d))
    }
}

impl fmt::Display for ConfigDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms % 86_400_000 == 0 && ms > 0 {
            write!(f, "{}d", ms / 86_400_000)
        } else if ms % 3_600_000 == 0 && ms > 0 {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms % 60_000 == 0 && ms > 0 {
            write!(f, "{}m", ms / 60_000)
        } else if ms % 1000 == 0 {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl Serialize for ConfigDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error(
        "cannot read the configuration file {path}: {source}; pass an existing file with --config or COORDINATOR_CONFIG, or neither to use the embedded default"
    )]
    Read {
        /// The path given.
        path: String,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The text is not valid TOML, or a key or value is not what the configuration expects.
    #[error("{origin}: {message}")]
    Invalid {
        /// The file (or `embedded default`), and the overriding variables if any were set.
        origin: String,
        /// What is wrong and where.
        message: String,
    },
    /// An overriding environment variable has an unusable name.
    #[error("environment variable {var}: {message}")]
    Env {
        /// The variable.
        var: String,
        /// What is wrong with it.
        message: String,
    },
}

impl Config {
    /// Parses a configuration from TOML text, without environment overrides or host sections.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Self::parse("configuration", text, std::iter::empty())
    }

    /// Reads `path` and applies the `COORDINATOR__*` overrides from `env` (no host sections).
    pub fn from_file(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        ConfigSource::read(path, env)?.framework(&[])
    }

    /// Parses `text` (read from `origin`, a name for messages) and applies the `COORDINATOR__*`
    /// overrides found in `env`. Every top-level section must be the framework's.
    pub fn parse(
        origin: &str,
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        ConfigSource::new(origin, text, env).framework(&[])
    }

    /// The configuration as TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn an_empty_file_gives_the_defaults() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(
            c.storage.url.expose(),
            "sqlite://coordinator-data/coordinator.db"
        );
        assert_eq!(c.timeouts.handler.0, Duration::from_secs(5));
    }

    #[test]
    fn environment_overrides_any_key() {
        let c = Config::parse(
            "test.toml",
            "[worker]\nconcurrency = 1\n",
            env(&[
                ("COORDINATOR__WORKER__CONCURRENCY", "9"),
                ("COORDINATOR__TIMEOUTS__HANDLER", "250ms"),
                ("COORDINATOR__EXTENSIONS__ENABLED", "[\"demo\"]"),
                (
                    "COORDINATOR__SIGNALS__DEMO__ORDER_PLACED",
                    "[\"demo.enroll_learner\"]",
                ),
                (
                    "COORDINATOR__FILTERS__DEMO__X_REQUESTED__PIPELINE",
                    "[\"demo.a\"]",
                ),
                ("COORDINATOR_CONFIG", "ignored.toml"),
                ("PATH", "/usr/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(c.worker.concurrency, 9);
        assert_eq!(c.timeouts.handler.0, Duration::from_millis(250));
        assert_eq!(c.extensions.enabled, Some(vec!["demo".to_owned()]));
        assert_eq!(
            c.signals["demo.order_placed"],
            SignalConfig::to(["demo.enroll_learner"])
        );
        assert_eq!(c.filters["demo.x_requested"].pipeline, ["demo.a"]);
    }

    #[test]
    fn unknown_keys_are_refused_with_their_location() {
        let e = Config::from_toml("[worker]\nconcurency = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `concurency`"), "{e}");
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn a_misspelt_override_names_the_variable() {
        let e = Config::parse("f.toml", "", env(&[("COORDINATOR__SERVR__BIND", "x")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("COORDINATOR__SERVR__BIND"), "{e}");
        assert!(e.contains("unknown section `servr`"), "{e}");
    }

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(
            "5s".parse::<ConfigDuration>().unwrap().0,
            Duration::from_secs(5)
        );
        assert_eq!("2m".parse::<ConfigDuration>().unwrap().to_string(), "2m");
        assert_eq!(
            "1500ms".parse::<ConfigDuration>().unwrap().to_string(),
            "1500ms"
        );
        let e = Config::from_toml("[timeouts]\nhandler = \"5\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid duration \"5\""), "{e}");
    }

    #[test]
    fn secrets_never_print() {
        let c = Config::parse(
            "t",
            "",
            env(&[("COORDINATOR__STORAGE__URL", "postgres://app:s3cr3t@db/cc")]),
        )
        .unwrap();
        assert_eq!(c.storage.url.expose(), "postgres://app:s3cr3t@db/cc");
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert!(!c.to_toml().contains("s3cr3t"));
    }

    #[test]
    fn config_round_trips_through_toml() {
        let c = Config::parse(
            "t",
            "[signals]\n\"a.b\" = [\"a.c\"]\n[filters.\"a.d_requested\"]\npipeline = [\"a.e\"]\nstep_timeout = \"1s\"\n",
            [],
        )
        .unwrap();
        let back = Config::from_toml(&c.to_toml()).unwrap();
        assert_eq!((back.signals, back.filters), (c.signals, c.filters));
    }

    #[test]
    fn a_signal_is_a_list_or_a_durable_table() {
        let c = Config::from_toml(
            "[signals]\n\"a.b\" = [\"a.c\"]\n[signals.\"a.d\"]\ndurable = true\nhandlers = [\"a.e\", \"a.f\"]\n",
        )
        .unwrap();
        assert_eq!(c.signals["a.b"], SignalConfig::to(["a.c"]));
        assert_eq!(c.signals["a.d"], SignalConfig::to(["a.e", "a.f"]).durable());
        let back = Config::from_toml(&c.to_toml()).unwrap();
        assert_eq!(back.signals, c.signals);
        let e = Config::from_toml("[signals.\"a.d\"]\ndurable = true\nhandler = [\"a.e\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `handler`"), "{e}");
        let e = Config::from_toml("[signals]\n\"a.b\" = \"a.c\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("a list of handler names, or a table"), "{e}");
    }
}
