//! The catalog: the running system's description of itself.
//!
//! One data model ([`Catalog`]) serves every view: JSON (`coordinator signals --json`, the HTTP
//! API), the CLI tables, the flow graph (Mermaid or Graphviz dot) and the generated Markdown in
//! `docs/signals.md`. Entries are sorted by name so that every rendering is stable.

mod render;

use rustc_hash::FxHashMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::extension::Declarations;
use crate::wiring::Wiring;

pub use render::{GraphFormat, GraphFormatError};

/// Every enabled extension, signal, handler, filter and step, and how they are wired.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Catalog {
    /// Every extension compiled into the binary, enabled or not.
    pub extensions: Vec<ExtensionEntry>,
    /// Signals declared by enabled extensions.
    pub signals: Vec<SignalEntry>,
    /// Handlers declared by enabled extensions.
    pub handlers: Vec<HandlerEntry>,
    /// Filters declared by enabled extensions.
    pub filters: Vec<FilterEntry>,
    /// Filter steps declared by enabled extensions.
    pub steps: Vec<StepEntry>,
    /// Background tasks declared by enabled extensions.
    #[serde(default)]
    pub tasks: Vec<TaskEntry>,
}

/// An extension.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ExtensionEntry {
    /// Its name.
    pub name: String,
    /// What it is for.
    pub doc: String,
    /// Whether the configuration enables it.
    pub enabled: bool,
}

/// A signal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SignalEntry {
    /// `<extension>.<event>`.
    pub name: String,
    /// What it means.
    pub doc: String,
    /// The extension that declares (and sends) it.
    pub extension: String,
    /// The Rust type of its payload.
    pub payload_type: String,
    /// The JSON schema of its payload.
    pub payload_schema: serde_json::Value,
    /// The handlers it is delivered to, in configuration order.
    pub handlers: Vec<String>,
    /// Whether it is durable: each delivery is stored and run as a task (`deliver:<handler>`).
    #[serde(default)]
    pub durable: bool,
}

/// How a handler's deliveries of durable signals run: as tasks, with these settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DeliveryEntry {
    /// The delivery task's name (`deliver:<handler>`).
    pub task: String,
    /// The queue deliveries run on.
    pub queue: String,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The wait after the first failure, in milliseconds.
    pub initial_backoff_ms: u64,
    /// The longest wait between attempts, in milliseconds.
    pub max_backoff_ms: u64,
}

/// A handler.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HandlerEntry {
    /// `<extension>.<verb_noun>`.
    pub name: String,
    /// What it does.
    pub doc: String,
    /// The extension that declares it.
    pub extension: String,
    /// The Rust type of the payload it takes.
    pub payload_type: String,
    /// The signals it is connected to.
    pub signals: Vec<String>,
    /// Its timeout, in milliseconds.
    pub timeout_ms: u64,
    /// The tasks it enqueues.
    #[serde(default)]
    pub enqueues: Vec<String>,
    /// The signals it sends.
    #[serde(default)]
    pub sends: Vec<String>,
    /// When a durable signal is delivered to it: how those deliveries run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryEntry>,
}

/// A background task, with the settings in force (its declaration's, overridden by
/// `[tasks."<name>"]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskEntry {
    /// `<extension>.<imperative>`.
    pub name: String,
    /// What it does.
    pub doc: String,
    /// The extension that declares it.
    pub extension: String,
    /// The Rust type of its payload.
    pub payload_type: String,
    /// The JSON schema of its payload.
    pub payload_schema: serde_json::Value,
    /// The queue it runs on.
    pub queue: String,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The wait after the first failure, in milliseconds.
    pub initial_backoff_ms: u64,
    /// The longest wait between attempts, in milliseconds.
    pub max_backoff_ms: u64,
    /// How long one attempt may run, in milliseconds.
    pub timeout_ms: u64,
    /// The handlers and tasks that enqueue it.
    pub enqueued_by: Vec<String>,
    /// The tasks it enqueues.
    pub enqueues: Vec<String>,
    /// The signals it sends.
    pub sends: Vec<String>,
}

/// A filter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FilterEntry {
    /// `<extension>.<thing>_requested`.
    pub name: String,
    /// What it answers.
    pub doc: String,
    /// The extension that declares (and runs) it.
    pub extension: String,
    /// The Rust type of its data.
    pub data_type: String,
    /// The JSON schema of its data.
    pub data_schema: serde_json::Value,
    /// Its steps, in order.
    pub pipeline: Vec<String>,
    /// Each step's timeout, in milliseconds.
    pub step_timeout_ms: u64,
}

/// A filter step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StepEntry {
    /// `<extension>.<verb_noun>`.
    pub name: String,
    /// What it does.
    pub doc: String,
    /// The extension that declares it.
    pub extension: String,
    /// The Rust type of the data it takes.
    pub data_type: String,
    /// The filters whose pipelines include it.
    pub filters: Vec<String>,
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Catalog {
    pub(crate) fn build(decls: &Declarations, wiring: &Wiring, config: &Config) -> Self {
        let enabled = |ext: &str| wiring.enabled.contains(ext);
        let mut extensions: Vec<ExtensionEntry> = decls
            .extensions
            .iter()
            .map(|e| ExtensionEntry {
                name: e.name.to_owned(),
                doc: e.doc.to_owned(),
                enabled: enabled(e.name),
            })
            .collect();
        extensions.sort_by(|a, b| a.name.cmp(&b.name));

        let mut signals: Vec<SignalEntry> = decls
            .signals
            .iter()
            .filter(|d| enabled(d.extension))
            .map(|d| SignalEntry {
                name: d.name.to_owned(),
                doc: d.doc.to_owned(),
                extension: d.extension.to_owned(),
                payload_type: d.payload.name.to_owned(),
                payload_schema: (d.payload.schema)(),
                handlers: wiring
                    .signals
                    .get(d.name)
                    .map(|s| s.handlers.iter().map(|h| h.name.to_owned()).collect())
                    .unwrap_or_default(),
                durable: wiring.signals.get(d.name).is_some_and(|s| s.durable),
            })
            .collect();
        signals.sort_by(|a, b| a.name.cmp(&b.name));

        let mut signals_of: FxHashMap<&str, Vec<String>> = FxHashMap::default();
        for s in &signals {
            for h in &s.handlers {
                signals_of.entry(h).or_default().push(s.name.clone());
            }
        }
        let mut handlers: Vec<HandlerEntry> = decls
            .handlers
            .iter()
            .filter(|d| enabled(d.extension))
            .map(|d| HandlerEntry {
                name: d.name.to_owned(),
                doc: d.doc.to_owned(),
                extension: d.extension.to_owned(),
                payload_type: d.payload.name.to_owned(),
                signals: signals_of.remove(d.name).unwrap_or_default(),
                enqueues: d.enqueues.iter().map(|t| (*t).to_owned()).collect(),
                sends: d.sends.iter().map(|t| (*t).to_owned()).collect(),
                timeout_ms: millis(
                    config
                        .handlers
                        .get(d.name)
                        .and_then(|h| h.timeout)
                        .map_or(config.timeouts.handler.0, |t| t.0),
                ),
                delivery: {
                    let task = crate::dispatch::delivery_task(d.name);
                    wiring.tasks.get(task.as_str()).map(|t| DeliveryEntry {
                        task,
                        queue: t.queue.clone(),
                        max_attempts: t.retry.max_attempts,
                        initial_backoff_ms: millis(t.retry.initial_backoff),
                        max_backoff_ms: millis(t.retry.max_backoff),
                    })
                },
            })
            .collect();
        handlers.sort_by(|a, b| a.name.cmp(&b.name));

        let mut filters: Vec<FilterEntry> = decls
            .filters
            .iter()
            .filter(|d| enabled(d.extension))
            .map(|d| {
                let slot = wiring.filters.get(d.name);
                FilterEntry {
                    name: d.name.to_owned(),
                    doc: d.doc.to_owned(),
                    extension: d.extension.to_owned(),
                    data_type: d.data.name.to_owned(),
                    data_schema: (d.data.schema)(),
                    pipeline: slot
                        .map(|s| s.steps.iter().map(|st| st.name.to_owned()).collect())
                        .unwrap_or_default(),
                    step_timeout_ms: millis(
                        slot.map_or(config.timeouts.step.0, |s| s.step_timeout),
                    ),
                }
            })
            .collect();
        filters.sort_by(|a, b| a.name.cmp(&b.name));

        let mut filters_of: FxHashMap<&str, Vec<String>> = FxHashMap::default();
        for f in &filters {
            for s in &f.pipeline {
                filters_of.entry(s).or_default().push(f.name.clone());
            }
        }
        let mut steps: Vec<StepEntry> = decls
            .steps
            .iter()
            .filter(|d| enabled(d.extension))
            .map(|d| StepEntry {
                name: d.name.to_owned(),
                doc: d.doc.to_owned(),
                extension: d.extension.to_owned(),
                data_type: d.data.name.to_owned(),
                filters: filters_of.remove(d.name).unwrap_or_default(),
            })
            .collect();
        steps.sort_by(|a, b| a.name.cmp(&b.name));

        let enqueued_by = |task: &str| -> Vec<String> {
            let mut by: Vec<String> = decls
                .handlers
                .iter()
                .filter(|h| enabled(h.extension) && h.enqueues.contains(&task))
                .map(|h| h.name.to_owned())
                .chain(
                    decls
                        .tasks
                        .iter()
                        .filter(|t| enabled(t.extension) && t.enqueues.contains(&task))
                        .map(|t| t.name.to_owned()),
                )
                .collect();
            by.sort();
            by
        };
        let mut tasks: Vec<TaskEntry> = decls
            .tasks
            .iter()
            .filter(|d| enabled(d.extension))
            .map(|d| {
                let settings = wiring.tasks.get(d.name).map_or_else(
                    || {
                        (
                            d.defaults.retry,
                            d.defaults.timeout,
                            d.defaults.queue.to_owned(),
                        )
                    },
                    |t| (t.retry, t.timeout, t.queue.clone()),
                );
                TaskEntry {
                    name: d.name.to_owned(),
                    doc: d.doc.to_owned(),
                    extension: d.extension.to_owned(),
                    payload_type: d.payload.name.to_owned(),
                    payload_schema: (d.payload.schema)(),
                    queue: settings.2,
                    max_attempts: settings.0.max_attempts,
                    initial_backoff_ms: millis(settings.0.initial_backoff),
                    max_backoff_ms: millis(settings.0.max_backoff),
                    timeout_ms: millis(settings.1),
                    enqueued_by: enqueued_by(d.name),
                    enqueues: d.enqueues.iter().map(|t| (*t).to_owned()).collect(),
                    sends: d.sends.iter().map(|t| (*t).to_owned()).collect(),
                }
            })
            .collect();
        tasks.sort_by(|a, b| a.name.cmp(&b.name));

        Catalog {
            extensions,
            signals,
            handlers,
            filters,
            steps,
            tasks,
        }
    }

    /// A signal by name.
    pub fn signal(&self, name: &str) -> Option<&SignalEntry> {
        self.signals.iter().find(|s| s.name == name)
    }

    /// The signal whose name is closest to `name`, if it is close enough to be a plausible typo
    /// (for "did you mean" suggestions).
    ///
    /// ```
    /// # use coordinator::catalog::Catalog;
    /// # let catalog = Catalog { extensions: vec![], signals: vec![], handlers: vec![],
    /// #                         filters: vec![], steps: vec![], tasks: vec![] };
    /// assert_eq!(catalog.closest_signal("demo.order_plcaed"), None); // no signals at all
    /// ```
    pub fn closest_signal(&self, name: &str) -> Option<&str> {
        crate::names::did_you_mean(name, self.signals.iter().map(|s| s.name.as_str()))
    }

    /// A filter by name.
    pub fn filter(&self, name: &str) -> Option<&FilterEntry> {
        self.filters.iter().find(|f| f.name == name)
    }

    /// A task by name.
    pub fn task(&self, name: &str) -> Option<&TaskEntry> {
        self.tasks.iter().find(|t| t.name == name)
    }

    /// A handler by name.
    pub fn handler(&self, name: &str) -> Option<&HandlerEntry> {
        self.handlers.iter().find(|h| h.name == name)
    }
}
