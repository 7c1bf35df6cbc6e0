//! Extensions, the unit of modularity, and the builder through which they declare what they bring.

use std::panic::Location;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::config::Config;
use crate::filter::{ErasedStep, Filter, IntoStep};
use crate::handler::{ErasedHandler, IntoHandler, TypeInfo};
use crate::http::route::Route;
use crate::migration::Migration;
use crate::payload::Payload;
use crate::signal::Signal;
use crate::state::{Requirement, StateMap};
use crate::task::{ErasedTask, IntoTask, Task, TaskSettings};

/// An extension: one crate's contribution to the coordinator.
///
/// From [`build`](Extension::build) it declares, through the [`ExtensionBuilder`], the signals it
/// sends, the handlers it offers, its filters and filter steps. It connects nothing: which
/// handler receives which signal is the configuration's business.
///
/// ```
/// use coordinator::prelude::*;
///
/// struct AuditExtension;
///
/// impl Extension for AuditExtension {
///     fn name(&self) -> &'static str { "audit" }
///     fn doc(&self) -> &'static str { "Keeps an audit trail of commerce events." }
///     fn build(&self, ext: &mut ExtensionBuilder<'_>) {
///         ext.handler("audit.record_event", "Writes the event to the audit trail.",
///             |event: Event<serde_json::Value>| async move { Ok::<_, HandlerError>(()) });
///     }
/// }
/// ```
pub trait Extension: Send + Sync + 'static {
    /// The extension's short snake_case name (`stripe`, `lms`): the prefix of everything it declares.
    fn name(&self) -> &'static str;

    /// What the extension is for, for the catalog.
    fn doc(&self) -> &'static str {
        ""
    }

    /// Declares what the extension brings.
    fn build(&self, ext: &mut ExtensionBuilder<'_>);

    /// The Rust type, to tell extensions apart in error messages.
    #[doc(hidden)]
    fn type_name(&self) -> &'static str {
        std::any::type_name::<Self>()
    }
}

/// What kind of thing a name refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A signal.
    Signal,
    /// A handler.
    Handler,
    /// A filter.
    Filter,
    /// A filter step.
    Step,
    /// A background task.
    Task,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Signal => "signal",
            Kind::Handler => "handler",
            Kind::Filter => "filter",
            Kind::Step => "step",
            Kind::Task => "task",
        })
    }
}

/// Where something was declared, for error messages.
pub(crate) type DeclaredAt = &'static Location<'static>;

pub(crate) struct SignalDecl {
    pub(crate) name: &'static str,
    pub(crate) doc: &'static str,
    pub(crate) extension: &'static str,
    pub(crate) payload: TypeInfo,
    /// Declared durable ([`Signal::durable`]).
    pub(crate) durable: bool,
    pub(crate) at: DeclaredAt,
}

pub(crate) struct HandlerDecl {
    pub(crate) name: &'static str,
    pub(crate) doc: &'static str,
    pub(crate) extension: &'static str,
    /// The index of its extension in [`Declarations::extensions`].
    pub(crate) extension_index: usize,
    /// The state types it takes.
    pub(crate) requires: Vec<Requirement>,
    pub(crate) payload: TypeInfo,
    pub(crate) call: Arc<dyn ErasedHandler>,
    pub(crate) at: DeclaredAt,
    /// The tasks it enqueues (declared with `enqueues`), for the catalog.
    pub(crate) enqueues: Vec<&'static str>,
    /// The signals it sends (declared with `sends`), for the catalog.
    pub(crate) sends: Vec<&'static str>,
}

pub(crate) struct TaskDecl {
    pub(crate) name: &'static str,
    pub(crate) doc: &'static str,
    pub(crate) extension: &'static str,
    pub(crate) extension_index: usize,
    pub(crate) requires: Vec<Requirement>,
    pub(crate) payload: TypeInfo,
    pub(crate) defaults: TaskSettings,
    pub(crate) call: Arc<dyn ErasedTask>,
    pub(crate) at: DeclaredAt,
    pub(crate) enqueues: Vec<&'static str>,
    pub(crate) sends: Vec<&'static str>,
}

pub(crate) struct FilterDecl {
    pub(crate) name: &'static str,
    pub(crate) doc: &'static str,
    pub(crate) extension: &'static str,
    pub(crate) data: TypeInfo,
    pub(crate) at: DeclaredAt,
}

pub(crate) struct StepDecl {
    pub(crate) name: &'static str,
    pub(crate) doc: &'static str,
    pub(crate) extension: &'static str,
    pub(crate) extension_index: usize,
    pub(crate) requires: Vec<Requirement>,
    pub(crate) data: TypeInfo,
    pub(crate) call: Arc<dyn ErasedStep>,
    pub(crate) at: DeclaredAt,
}

/// One extension as the coordinator knows it.
pub(crate) struct ExtensionDecl {
    pub(crate) name: &'static str,
    pub(crate) doc: &'static str,
    pub(crate) type_name: &'static str,
    /// The JSON schema of its settings, if it declared a settings type.
    pub(crate) settings_schema: Option<fn() -> serde_json::Value>,
    /// Why its `[extension.<name>]` table could not be read, if it could not.
    pub(crate) settings_error: Option<String>,
    /// Problems the extension found in its settings ([`ExtensionBuilder::settings_problem`]).
    pub(crate) settings_problems: Vec<String>,
    pub(crate) routes: Vec<Route>,
    pub(crate) migrations: Vec<Migration>,
    /// Its shared state, by type ([`ExtensionBuilder::state`]).
    pub(crate) state: StateMap,
    /// State types it registered twice (a programmer error, reported at start-up).
    pub(crate) state_twice: Vec<&'static str>,
}

/// Everything every extension compiled into the binary declared, enabled or not.
#[derive(Default)]
pub(crate) struct Declarations {
    pub(crate) extensions: Vec<ExtensionDecl>,
    pub(crate) signals: Vec<SignalDecl>,
    pub(crate) handlers: Vec<HandlerDecl>,
    pub(crate) filters: Vec<FilterDecl>,
    pub(crate) steps: Vec<StepDecl>,
    pub(crate) tasks: Vec<TaskDecl>,
}

impl Declarations {
    /// Runs every extension's `build`, giving each its `[extension.<name>]` settings table.
    pub(crate) fn collect<'a>(
        extensions: impl IntoIterator<Item = &'a dyn Extension>,
        config: &'a Config,
    ) -> Self {
        let mut decls = Self::default();
        for extension in extensions {
            decls.extensions.push(ExtensionDecl {
                name: extension.name(),
                doc: extension.doc(),
                type_name: extension.type_name(),
                settings_schema: None,
                settings_error: None,
                settings_problems: Vec::new(),
                routes: Vec::new(),
                migrations: Vec::new(),
                state: StateMap::default(),
                state_twice: Vec::new(),
            });
            let current = decls.extensions.len() - 1;
            extension.build(&mut ExtensionBuilder {
                extension: extension.name(),
                current,
                settings: config.extension.get(extension.name()),
                string_overrides: &config.string_overrides,
                decls: &mut decls,
                last: None,
            });
        }
        decls
    }
}

/// Passed to [`Extension::build`]: the one place where an extension declares what it brings.
///
/// Every method returns the builder, so declarations chain. Names are checked at start-up, not
/// here, so that every problem is reported at once.
pub struct ExtensionBuilder<'a> {
    extension: &'static str,
    /// The index of this extension in `decls.extensions`.
    current: usize,
    settings: Option<&'a toml::Table>,
    /// Environment overrides of extension settings whose text must stay text.
    string_overrides: &'a [(Vec<String>, String)],
    decls: &'a mut Declarations,
    /// The handler or task declared last, which `enqueues` and `sends` describe.
    last: Option<Last>,
}

#[derive(Clone, Copy)]
enum Last {
    Handler(usize),
    Task(usize),
}

impl ExtensionBuilder<'_> {
    /// The name of the extension being built.
    pub fn extension_name(&self) -> &'static str {
        self.extension
    }

    /// Declares a signal that this extension sends.
    #[track_caller]
    pub fn signal<P: Payload>(&mut self, signal: &'static Signal<P>) -> &mut Self {
        self.decls.signals.push(SignalDecl {
            name: signal.name(),
            doc: signal.doc(),
            extension: self.extension,
            payload: TypeInfo::of::<P>(),
            durable: signal.is_durable(),
            at: Location::caller(),
        });
        self
    }

    /// Shares `value` with this extension's handlers, filter steps, tasks and routes, which
    /// take it as a [`State<T>`](crate::State) argument (one value per type).
    pub fn state<T: Clone + Send + Sync + 'static>(&mut self, value: T) -> &mut Self {
        let ext = &mut self.decls.extensions[self.current];
        if let Some(name) = ext.state.insert(value) {
            ext.state_twice.push(name);
        }
        self
    }

    /// Declares a handler: an async function of an [`Event`](crate::Event) carrying the payload
    /// type `P`, and of any [`State<T>`](crate::State) of this extension.
    ///
    /// It returns `Result<O, E>` where `O` converts into a [`Summary`](crate::Summary) (`()`, a
    /// `String`, a task id) and `E` into a [`HandlerError`](crate::HandlerError) (any
    /// `std::error::Error`). Configuration connects it to signals carrying `P`.
    #[track_caller]
    pub fn handler<P, Args, F>(&mut self, name: &'static str, doc: &'static str, f: F) -> &mut Self
    where
        P: Payload,
        F: IntoHandler<P, Args>,
    {
        self.decls.handlers.push(HandlerDecl {
            name,
            doc,
            extension: self.extension,
            extension_index: self.current,
            requires: F::requirements(),
            payload: TypeInfo::of::<P>(),
            call: f.into_erased(),
            at: Location::caller(),
            enqueues: Vec::new(),
            sends: Vec::new(),
        });
        self.last = Some(Last::Handler(self.decls.handlers.len() - 1));
        self
    }

    /// Declares a durable background task and the async function that runs one attempt of it:
    /// `async fn(TaskContext, P, ...) -> Result<O, E>`, where the further arguments are
    /// [`State<T>`](crate::State)s of this extension, `O` converts into a
    /// [`Summary`](crate::Summary) and `E` into a [`TaskError`](crate::task::TaskError) (any
    /// error converts into a retryable one).
    #[track_caller]
    pub fn task<P, Args, F>(&mut self, task: &'static Task<P>, f: F) -> &mut Self
    where
        P: Payload,
        F: IntoTask<P, Args>,
    {
        self.decls.tasks.push(TaskDecl {
            name: task.name(),
            doc: task.doc(),
            extension: self.extension,
            extension_index: self.current,
            requires: F::requirements(),
            payload: TypeInfo::of::<P>(),
            defaults: task.defaults(),
            call: f.into_erased(),
            at: Location::caller(),
            enqueues: Vec::new(),
            sends: Vec::new(),
        });
        self.last = Some(Last::Task(self.decls.tasks.len() - 1));
        self
    }

    /// Documents that the handler or task declared just before enqueues `task` (for the
    /// catalog and the flow graph).
    ///
    /// # Panics
    /// If no handler or task was declared before it in this `build`.
    #[track_caller]
    pub fn enqueues<P: Payload>(&mut self, task: &'static Task<P>) -> &mut Self {
        match self.last {
            Some(Last::Handler(i)) => self.decls.handlers[i].enqueues.push(task.name()),
            Some(Last::Task(i)) => self.decls.tasks[i].enqueues.push(task.name()),
            None => panic!(
                "`enqueues` describes the handler or task declared just before it; declare one first"
            ),
        }
        self
    }

    /// Documents that the handler or task declared just before sends `signal` (for the catalog
    /// and the flow graph).
    ///
    /// # Panics
    /// If no handler or task was declared before it in this `build`.
    #[track_caller]
    pub fn sends<P: Payload>(&mut self, signal: &'static Signal<P>) -> &mut Self {
        match self.last {
            Some(Last::Handler(i)) => self.decls.handlers[i].sends.push(signal.name()),
            Some(Last::Task(i)) => self.decls.tasks[i].sends.push(signal.name()),
            None => panic!(
                "`sends` describes the handler or task declared just before it; declare one first"
            ),
        }
        self
    }

    /// Reads this extension's typed settings from the `[extension.<name>]` table of the
    /// configuration (an absent table reads as empty, so fields with serde defaults apply).
    ///
    /// If the table does not fit `T`, the problem is reported at start-up with every other one
    /// (the coordinator does not start) and `T::default()` is returned so that `build` can go on.
    /// Share them with the functions that need them with [`ExtensionBuilder::state`].
    pub fn settings<T>(&mut self) -> T
    where
        T: DeserializeOwned + schemars::JsonSchema + Default,
    {
        let ext = &mut self.decls.extensions[self.current];
        ext.settings_schema = Some(crate::payload::schema_of::<T>);
        let table = self.settings.cloned().unwrap_or_default();
        match crate::config::read_extension_settings(self.extension, table, self.string_overrides) {
            Ok(settings) => settings,
            Err(e) => {
                ext.settings_error = Some(e.trim_end().to_owned());
                T::default()
            }
        }
    }

    /// Reports a problem with the extension's settings that reading them could not see (a
    /// setting that is required, a URL that is not one): the coordinator refuses to start,
    /// listing it with every other problem, when the extension is enabled. Say what to set and
    /// where (`set [extension.lms] url (COORDINATOR__EXTENSION__LMS__URL)`).
    pub fn settings_problem(&mut self, problem: impl Into<String>) -> &mut Self {
        self.decls.extensions[self.current]
            .settings_problems
            .push(problem.into());
        self
    }

    /// Declares an HTTP route, served at `/api/<extension><path>`.
    pub fn route(&mut self, route: Route) -> &mut Self {
        self.decls.extensions[self.current].routes.push(route);
        self
    }

    /// Declares a database migration of this extension's own tables. Name tables
    /// `<extension>_<table>` so that extensions never collide.
    pub fn migration(&mut self, migration: Migration) -> &mut Self {
        self.decls.extensions[self.current]
            .migrations
            .push(Migration {
                extension: self.extension,
                ..migration
            });
        self
    }

    /// Declares a filter that this extension runs.
    #[track_caller]
    pub fn filter<D: Payload>(&mut self, filter: &'static Filter<D>) -> &mut Self {
        self.decls.filters.push(FilterDecl {
            name: filter.name(),
            doc: filter.doc(),
            extension: self.extension,
            data: TypeInfo::of::<D>(),
            at: Location::caller(),
        });
        self
    }

    /// Declares a filter step: an async function of a [`Context`](crate::Context), the data `D`
    /// and any [`State<T>`](crate::State) of this extension, returning the data to pass on or
    /// halt with. Configuration puts it in the pipelines of filters of `D`.
    #[track_caller]
    pub fn step<D, Args, F>(&mut self, name: &'static str, doc: &'static str, f: F) -> &mut Self
    where
        D: Payload,
        F: IntoStep<D, Args>,
    {
        self.decls.steps.push(StepDecl {
            name,
            doc,
            extension: self.extension,
            extension_index: self.current,
            requires: F::requirements(),
            data: TypeInfo::of::<D>(),
            call: f.into_erased(),
            at: Location::caller(),
        });
        self
    }
}
