//! Wiring: the validated mapping of signals to handlers and filters to steps, compiled from the
//! configuration by named passes that collect every problem before refusing.
//!
//! Each pass is a file: [`names`] (which extensions run; every declared name valid and
//! claimed once), [`extensions`] (settings tables, state, migrations), [`routes`] (mounts and
//! routes), [`tasks`] (policies and `[worker]`), [`relations`] (what handlers and tasks say
//! they enqueue, send and take exists), [`signals`] and [`filters`] (the connections
//! themselves). Validation is pure (no I/O) and linear in the size of the configuration and
//! the declarations; suggestions ("did you mean") are computed only for names that are wrong.

mod errors;
mod extensions;
mod filters;
mod names;
mod relations;
mod routes;
mod signals;
mod tasks;

use std::any::TypeId;
use std::sync::Arc;
use std::time::Duration;

use rustc_hash::{FxHashMap, FxHashSet};

pub use errors::{Validation, WiringError, WiringWarning};

use crate::config::Config;
use crate::extension::Declarations;
use crate::filter::ErasedStep;
use crate::handler::ErasedHandler;
use crate::http::route::Mounts;
use crate::task::{ErasedTask, RetryPolicy};

/// Validates `config` against `decls` and, when there is no error, compiles the wiring.
pub(crate) fn compile(
    decls: &Declarations,
    config: &Config,
    mounts: &Mounts,
) -> (Validation, Option<Wiring>) {
    let mut v = Validation::default();
    let enabled = names::enabled_extensions(decls, config, &mut v.errors);
    extensions::check_settings_tables(decls, config, &enabled, &mut v.errors);
    routes::check(decls, mounts, &enabled, &mut v.errors);
    extensions::check_parts(decls, &enabled, &mut v.errors);
    let names = names::Names::index(decls, &enabled, &mut v.errors);
    let mut tasks = tasks::compile(decls, config, &names.tasks, &mut v.errors);
    relations::check(decls, &names, &enabled, &mut v.errors);
    relations::check_state(decls, &enabled, &mut v.errors);
    let signals = signals::compile(decls, config, &names, &mut tasks, &mut v);
    tasks::check_worker(config, &tasks, &mut v.errors, &mut v.warnings);
    let filters = filters::compile(decls, config, &names, &mut v);
    let wiring = v.is_valid().then(|| Wiring {
        enabled,
        signals,
        filters,
        tasks,
    });
    (v, wiring)
}

/// The compiled wiring of enabled extensions: what `send_robust`, `run_filter`, `enqueue` and
/// the workers look up.
#[derive(Default)]
pub(crate) struct Wiring {
    pub(crate) enabled: FxHashSet<&'static str>,
    pub(crate) signals: FxHashMap<&'static str, SignalSlot>,
    pub(crate) filters: FxHashMap<&'static str, FilterSlot>,
    /// The tasks by name, and the deliveries of durable signals by their task names
    /// (`deliver:<handler>`).
    pub(crate) tasks: FxHashMap<Box<str>, WiredTask>,
}

/// A handler connected to a signal, with its timeout.
pub(crate) struct WiredHandler {
    pub(crate) name: &'static str,
    /// Its extension (the index in the declarations), for its state.
    pub(crate) extension: usize,
    pub(crate) timeout: Duration,
    pub(crate) call: Arc<dyn ErasedHandler>,
    /// For a durable signal: how its deliveries to this handler are enqueued.
    pub(crate) delivery: Option<DeliveryTarget>,
}

/// Where and how a durable signal's delivery to one handler is enqueued.
pub(crate) struct DeliveryTarget {
    /// The delivery task's name: `deliver:<handler>`.
    pub(crate) task: Box<str>,
    pub(crate) queue: String,
    pub(crate) max_attempts: u32,
}

/// An enabled signal: its payload type and its handlers, in configuration order.
pub(crate) struct SignalSlot {
    pub(crate) payload: TypeId,
    pub(crate) handlers: Box<[WiredHandler]>,
    /// Whether its deliveries are stored and run as tasks.
    pub(crate) durable: bool,
}

/// What a wired task runs: a declared task, or a handler's deliveries of durable signals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TaskKind {
    Task,
    Delivery,
}

/// A step in a filter's pipeline.
pub(crate) struct WiredStep {
    pub(crate) name: &'static str,
    pub(crate) extension: usize,
    pub(crate) call: Arc<dyn ErasedStep>,
}

/// An enabled filter: its data type, its steps in order and their timeout.
pub(crate) struct FilterSlot {
    pub(crate) data: TypeId,
    pub(crate) step_timeout: Duration,
    pub(crate) steps: Box<[WiredStep]>,
}

/// A declared task (or a handler's deliveries) with the settings in force.
pub(crate) struct WiredTask {
    /// The task's name; for deliveries, the handler's.
    pub(crate) name: &'static str,
    pub(crate) kind: TaskKind,
    pub(crate) extension: usize,
    pub(crate) payload: TypeId,
    pub(crate) payload_name: &'static str,
    pub(crate) retry: RetryPolicy,
    pub(crate) timeout: Duration,
    pub(crate) queue: String,
    pub(crate) call: Arc<dyn ErasedTask>,
}
