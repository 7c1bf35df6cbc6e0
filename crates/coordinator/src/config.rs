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

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

/// A configuration file and its environment overrides, from which the framework reads its
/// [`Config`] and the host application its own sections.
///
/// Every problem is reported at once: each section is read on its own, so an error in one does
/// not hide an error in another, and each points at its line (when no override is set). A
/// value set by an environment variable is read as TOML where the setting is a number, a list
/// or a flag, and as the text given where the setting is a string, whatever it looks like
/// (`0x7f3a9b` stays `"0x7f3a9b"`); and no message shows a value an override set.
///
/// ```
/// use coordinator::config::ConfigSource;
///
/// #[derive(Debug, Default, serde::Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct Server { bind: Option<String> }
///
/// let source = ConfigSource::new("app.toml", "[server]\nbind = \"0.0.0.0:1\"\n", Vec::new());
/// let config = source.framework(&["server"]).unwrap();
/// let server: Server = source.section("server").unwrap();
/// assert_eq!(server.bind.as_deref(), Some("0.0.0.0:1"));
/// assert!(!format!("{config:?}").contains("0.0.0.0:1"), "the framework keeps none of it");
/// assert!(source.framework(&[]).unwrap_err().to_string().contains("unknown section `server`"));
/// ```
#[derive(Debug, Clone)]
pub struct ConfigSource {
    origin: String,
    text: String,
    overrides: Vec<(String, String)>,
}

/// An environment override as applied: the key it set, the text given, and
/// whether that text read as a TOML scalar other than a string (a setting that is a string
/// then gets the text as given).
#[derive(Debug, Clone)]
struct Applied {
    path: Vec<String>,
    raw: String,
    read_as_scalar: bool,
}

/// The document the sections are read from: the text itself (errors then point at a line), or
/// the table with the overrides applied.
enum Document<'t> {
    Text(&'t str, toml::Spanned<toml::de::DeTable<'t>>),
    Merged(toml::Table, Vec<Applied>),
}

impl ConfigSource {
    /// `text`, read from `origin` (a name for messages), with the `COORDINATOR__*` variables of
    /// `env` (others are ignored).
    pub fn new(origin: &str, text: &str, env: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut overrides: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        overrides.sort();
        Self {
            origin: origin.to_owned(),
            text: text.to_owned(),
            overrides,
        }
    }

    /// Reads the file at `path`, with the overrides of `env`.
    pub fn read(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self::new(&path.display().to_string(), &text, env))
    }

    /// The framework's configuration. Top-level sections other than the framework's must be
    /// among `host_sections` (the host application reads them with
    /// [`ConfigSource::section`]); any other is refused, naming the variable that set it if one
    /// did. Every problem of every section is reported in one error.
    pub fn framework(&self, host_sections: &[&str]) -> Result<Config, ConfigError> {
        self.framework_and(host_sections, |_| ())
            .map(|(config, ())| config)
    }

    /// The framework's configuration and the host's sections (`host_sections`, each read by
    /// `read_host` through a [`SectionReader`]), with every problem of both in one error.
    pub fn framework_and<H>(
        &self,
        host_sections: &[&str],
        read_host: impl FnOnce(&mut SectionReader<'_>) -> H,
    ) -> Result<(Config, H), ConfigError> {
        let doc = self.document()?;
        let mut problems = Vec::new();
        for unknown in doc.keys().into_iter().filter(|k| {
            !FRAMEWORK_SECTIONS.contains(&k.as_str()) && !host_sections.contains(&k.as_str())
        }) {
            problems.push(self.unknown_section(&unknown, host_sections));
        }
        macro_rules! section {
            ($name:literal) => {
                self.read_section(&doc, $name).unwrap_or_else(|problem| {
                    problems.push(problem);
                    Default::default()
                })
            };
        }
        let mut config = Config {
            extensions: section!("extensions"),
            timeouts: section!("timeouts"),
            signals: section!("signals"),
            handlers: section!("handlers"),
            filters: section!("filters"),
            tasks: section!("tasks"),
            worker: section!("worker"),
            storage: section!("storage"),
            dispatch_log: section!("dispatch_log"),
            extension: section!("extension"),
            host: toml::Table::new(),
            string_overrides: Vec::new(),
        };
        if let Document::Merged(_, applied) = &doc {
            // Extension settings are read by the extensions (at build): they get the same
            // treatment of overridden text there.
            config.string_overrides = applied
                .iter()
                .filter(|a| a.read_as_scalar && a.path.first().is_some_and(|s| s == "extension"))
                .map(|a| (a.path[1..].to_vec(), a.raw.clone()))
                .collect();
        }
        let mut reader = SectionReader {
            source: self,
            doc: &doc,
            problems,
        };
        let host = read_host(&mut reader);
        self.finish(reader.problems)?;
        Ok((config, host))
    }

    /// One of the host application's sections, as `T` (its default when the section is
    /// absent). Errors point at their line when no override is set.
    pub fn section<T: DeserializeOwned + Default>(&self, name: &str) -> Result<T, ConfigError> {
        let doc = self.document()?;
        let result = self.read_section(&doc, name);
        result.map_err(|problem| self.invalid(vec![problem]))
    }

    /// Where the configuration came from, and the overriding variables if any are set.
    pub fn origin_with_overrides(&self) -> String {
        if self.overrides.is_empty() {
            return self.origin.clone();
        }
        let names: Vec<&str> = self.overrides.iter().map(|(k, _)| k.as_str()).collect();
        format!("{} with overrides from {}", self.origin, names.join(", "))
    }

    fn finish(&self, problems: Vec<String>) -> Result<(), ConfigError> {
        if problems.is_empty() {
            Ok(())
        } else {
            Err(self.invalid(problems))
        }
    }

    fn invalid(&self, problems: Vec<String>) -> ConfigError {
        let message = match problems.as_slice() {
            [one] => one.clone(),
            many => format!(
                "{} problems:\n{}",
                many.len(),
                many.iter()
                    .map(|p| format!("  - {}", p.replace('\n', "\n    ")))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        };
        ConfigError::Invalid {
            origin: self.origin_with_overrides(),
            message: self.scrub(&message),
        }
    }

    /// `message` without any value an override set (it may be a secret).
    fn scrub(&self, message: &str) -> String {
        let mut message = message.to_owned();
        for (var, value) in &self.overrides {
            if value.len() >= 3 {
                message = message.replace(value.as_str(), &format!("(the value of {var})"));
            }
        }
        message
    }

    fn document(&self) -> Result<Document<'_>, ConfigError> {
        if self.overrides.is_empty() {
            let doc = toml::de::DeTable::parse(&self.text)
                .map_err(|e| self.invalid(vec![located(&self.text, e.message(), e.span())]))?;
            return Ok(Document::Text(&self.text, doc));
        }
        let mut table: toml::Table =
            toml::from_str(&self.text).map_err(|e| ConfigError::Invalid {
                origin: self.origin.clone(),
                message: located(&self.text, e.message(), e.span()),
            })?;
        let mut applied = Vec::with_capacity(self.overrides.len());
        for (var, value) in &self.overrides {
            applied.push(apply_override(&mut table, var, value)?);
        }
        Ok(Document::Merged(table, applied))
    }

    fn unknown_section(&self, unknown: &str, host_sections: &[&str]) -> String {
        let mut expected: Vec<&str> = FRAMEWORK_SECTIONS.to_vec();
        expected.extend(host_sections);
        let set_by = self
            .overrides
            .iter()
            .find(|(var, _)| {
                var[ENV_PREFIX.len()..]
                    .split("__")
                    .next()
                    .is_some_and(|first| first.eq_ignore_ascii_case(unknown))
            })
            .map(|(var, _)| format!(" (set by {var})"))
            .unwrap_or_default();
        format!(
            "unknown section `{unknown}`{set_by}; the sections are {}{}",
            expected
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", "),
            crate::names::hint(unknown, expected.iter().copied()),
        )
    }

    /// Section `name` of `doc` as a `T` (its default when absent), or the problem, located.
    fn read_section<T: DeserializeOwned + Default>(
        &self,
        doc: &Document<'_>,
        name: &str,
    ) -> Result<T, String> {
        match doc {
            Document::Text(text, table) => {
                let Some((_, value)) = table.get_ref().iter().find(|(k, _)| k.get_ref() == name)
                else {
                    return Ok(T::default());
                };
                T::deserialize(toml::de::ValueDeserializer::from(value.clone()))
                    .map_err(|e| format!("[{name}] {}", located(text, e.message(), e.span())))
            }
            Document::Merged(table, applied) => {
                let Some(value) = table.get(name) else {
                    return Ok(T::default());
                };
                let mut value = value.clone();
                read_overridden(&mut value, name, applied).map_err(|e| format!("[{name}] {e}"))
            }
        }
    }
}

impl Document<'_> {
    /// The top-level keys.
    fn keys(&self) -> Vec<String> {
        match self {
            Document::Text(_, table) => table
                .get_ref()
                .iter()
                .map(|(k, _)| k.get_ref().to_string())
                .collect(),
            Document::Merged(table, _) => table.keys().cloned().collect(),
        }
    }
}

/// Reads the host's sections for [`ConfigSource::framework_and`], collecting their problems
/// with the framework's.
pub struct SectionReader<'s> {
    source: &'s ConfigSource,
    doc: &'s Document<'s>,
    problems: Vec<String>,
}

impl SectionReader<'_> {
    /// Section `name` as a `T` (its default when absent, or when it has a problem, which is
    /// reported with every other).
    pub fn section<T: DeserializeOwned + Default>(&mut self, name: &str) -> T {
        self.source
            .read_section(self.doc, name)
            .unwrap_or_else(|problem| {
                self.problems.push(problem);
                T::default()
            })
    }
}

/// `value` (a section set from the merged table, `path` its key) as a `T`; a setting that is
/// a string and that an override set to text that reads as another scalar gets the text as
/// given, and it is read again.
fn read_overridden<T: DeserializeOwned>(
    value: &mut toml::Value,
    section: &str,
    applied: &[Applied],
) -> Result<T, String> {
    for _ in 0..=applied.len() {
        match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(read) => return Ok(read),
            Err(e) => {
                let mut at: Vec<String> = vec![section.to_owned()];
                at.extend(e.path().iter().filter_map(|segment| match segment {
                    serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                    _ => None,
                }));
                let Some(overridden) = applied.iter().find(|a| a.read_as_scalar && a.path == at)
                else {
                    let mut path = e.path().to_string();
                    let inner = e.into_inner().to_string();
                    // An unknown field's path ends with it, which the message names already.
                    if inner.starts_with("unknown field") {
                        path = path
                            .rsplit_once('.')
                            .map_or(String::new(), |(p, _)| p.to_owned());
                    }
                    return Err(if path == "." || path.is_empty() {
                        inner
                    } else {
                        format!("{path}: {inner}")
                    });
                };
                set_path(
                    value,
                    &overridden.path[1..],
                    toml::Value::String(overridden.raw.clone()),
                );
            }
        }
    }
    Err("the overrides could not be read".to_owned())
}

/// Sets `path` (keys below `value`) to `new`.
fn set_path(value: &mut toml::Value, path: &[String], new: toml::Value) {
    let mut cur = value;
    for key in path {
        let Some(next) = cur.as_table_mut().and_then(|t| t.get_mut(key)) else {
            return;
        };
        cur = next;
    }
    *cur = new;
}

/// Extension settings (`[extension.<name>]`, `table`) as a `T`, with the overrides of
/// `string_overrides` (paths below `extension`) read as given where `T` wants a string.
pub(crate) fn read_extension_settings<T: DeserializeOwned>(
    extension: &str,
    table: toml::Table,
    string_overrides: &[(Vec<String>, String)],
) -> Result<T, String> {
    let applied: Vec<Applied> = string_overrides
        .iter()
        .filter(|(path, _)| path.first().is_some_and(|e| e == extension))
        .map(|(path, raw)| Applied {
            path: path.clone(),
            raw: raw.clone(),
            read_as_scalar: true,
        })
        .collect();
    let mut value = toml::Value::Table(table);
    read_overridden(&mut value, extension, &applied).map_err(|e| {
        // No message shows a value an override set.
        applied.iter().filter(|a| a.raw.len() >= 3).fold(e, |e, a| {
            e.replace(a.raw.as_str(), "(a value set by the environment)")
        })
    })
}

/// `message` with the line and column where `span` starts in `text`.
fn located(text: &str, message: &str, span: Option<std::ops::Range<usize>>) -> String {
    let message = message.trim_end();
    let Some(span) = span else {
        return message.to_owned();
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("at line {line}, column {column}: {message}")
}

/// The framework's top-level sections.
pub const FRAMEWORK_SECTIONS: &[&str] = &[
    "extensions",
    "timeouts",
    "signals",
    "handlers",
    "filters",
    "tasks",
    "worker",
    "storage",
    "dispatch_log",
    "extension",
];

/// Tables whose keys are dotted `<extension>.<name>` names.
const NAME_KEYED: &[&str] = &["signals", "handlers", "filters", "tasks"];

fn apply_override(table: &mut toml::Table, var: &str, value: &str) -> Result<Applied, ConfigError> {
    let err = |message: String| ConfigError::Env {
        var: var.to_owned(),
        message,
    };
    let rest = &var[ENV_PREFIX.len()..];
    let mut segments: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
    if segments.iter().any(String::is_empty) {
        return Err(err(format!(
            "empty key segment; write {ENV_PREFIX}<SECTION>__<KEY>, e.g. {ENV_PREFIX}SERVER__BIND"
        )));
    }
    if NAME_KEYED.contains(&segments[0].as_str()) {
        if segments.len() < 3 {
            return Err(err(format!(
                "a {} entry is named <extension>.<name>; write {ENV_PREFIX}{}__<EXTENSION>__<NAME>",
                segments[0],
                segments[0].to_ascii_uppercase()
            )));
        }
        let name = format!("{}.{}", segments[1], segments[2]);
        segments.splice(1..3, [name]);
    }
    let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()));
    let read_as_scalar = matches!(
        parsed,
        toml::Value::Integer(_)
            | toml::Value::Float(_)
            | toml::Value::Boolean(_)
            | toml::Value::Datetime(_)
    );
    let (last, parents) = segments.split_last().expect("at least one segment");
    let mut cur = table;
    for (depth, seg) in parents.iter().enumerate() {
        let entry = cur
            .entry(seg.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry.as_table_mut().ok_or_else(|| {
            err(format!(
                "{} is not a table, so it has no key \"{}\"",
                segments[..=depth].join("."),
                segments[depth + 1]
            ))
        })?;
    }
    cur.insert(last.clone(), parsed);
    Ok(Applied {
        path: segments,
        raw: value.to_owned(),
        read_as_scalar,
    })
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

#[cfg(test)]
mod host_tests {
    use super::*;

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Server {
        bind: Option<String>,
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn host_sections_are_the_hosts_and_others_are_refused_with_a_hint() {
        let source = ConfigSource::new("f.toml", "[server]\nbind = \"x\"\n[sever]\n", Vec::new());
        let e = source.framework(&["server"]).unwrap_err().to_string();
        assert!(e.starts_with("f.toml: unknown section `sever`"), "{e}");
        assert!(e.contains("did you mean \"server\""), "{e}");
        let ok = ConfigSource::new("f.toml", "[server]\nbind = \"x\"\n", Vec::new());
        assert!(ok.framework(&["server"]).is_ok());
        let server: Server = ok.section("server").unwrap();
        assert_eq!(server.bind.as_deref(), Some("x"));
    }

    #[test]
    fn the_framework_sections_are_the_fields_of_config() {
        let value = toml::Value::try_from(Config::default()).unwrap();
        let mut fields: Vec<&str> = value
            .as_table()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut listed = FRAMEWORK_SECTIONS.to_vec();
        fields.sort_unstable();
        listed.sort_unstable();
        assert_eq!(fields, listed);
    }

    #[test]
    fn a_host_sections_errors_point_at_their_line() {
        let source = ConfigSource::new("f.toml", "[worker]\n[server]\nbnid = \"x\"\n", Vec::new());
        let e = source.section::<Server>("server").unwrap_err().to_string();
        assert!(e.contains("unknown field `bnid`"), "{e}");
        assert!(e.contains("line 3"), "{e}");
    }

    #[test]
    fn every_problem_of_every_section_is_reported_at_once_with_its_line() {
        let text = "[worker]\nconcurency = 1\n[timeouts]\nhandler = \"5\"\n[nope]\n";
        let e = ConfigSource::new("f.toml", text, Vec::new())
            .framework(&[])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("f.toml: 3 problems:"), "{e}");
        assert!(e.contains("unknown section `nope`"), "{e}");
        assert!(
            e.contains("[worker] at line 2, column 1: unknown field `concurency`"),
            "{e}"
        );
        assert!(
            e.contains("[timeouts] at line 4, column 11: invalid duration \"5\""),
            "{e}"
        );
    }

    #[test]
    fn overridden_text_stays_text_where_a_setting_is_a_string() {
        for digits in ["98765432109876", "0x7f3a9b", "31415926535", "true", "1.5"] {
            let config = ConfigSource::new(
                "f.toml",
                "",
                env(&[
                    ("COORDINATOR__STORAGE__URL", digits),
                    ("COORDINATOR__WORKER__CONCURRENCY", "3"),
                    ("COORDINATOR__WORKER__QUEUES", "[\"lms\"]"),
                ]),
            )
            .framework(&[])
            .unwrap_or_else(|e| panic!("{digits}: {e}"));
            assert_eq!(config.storage.url.expose(), digits);
            assert_eq!(config.worker.concurrency, 3, "numbers stay numbers");
            assert_eq!(config.worker.queues, ["lms"], "lists stay lists");
        }
    }

    #[test]
    fn no_message_shows_a_secret() {
        // A number where a secret goes, in a file: refused without the value.
        let e = ConfigSource::new("f.toml", "[storage]\nurl = 123456789\n", Vec::new())
            .framework(&[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("a secret must be a quoted string"), "{e}");
        assert!(!e.contains("123456789"), "{e}");
        // A wrong value set by the environment: the message names the variable, not the value.
        let e = ConfigSource::new(
            "f.toml",
            "",
            env(&[("COORDINATOR__WORKER__CONCURRENCY", "hunter2-secret")]),
        )
        .framework(&[])
        .unwrap_err()
        .to_string();
        assert!(!e.contains("hunter2-secret"), "{e}");
        assert!(
            e.contains("(the value of COORDINATOR__WORKER__CONCURRENCY)"),
            "{e}"
        );
    }
}
