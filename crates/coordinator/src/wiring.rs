//! Wiring: the validated mapping of signals to handlers and filters to steps, compiled from the
//! configuration in one pass that collects every problem before refusing.
//!
//! Validation is pure (no I/O). It runs in time linear in the size of the configuration and the
//! declarations; suggestions ("did you mean") are computed only for names that are wrong.

use std::any::TypeId;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::config::Config;
use crate::extension::{Declarations, DeclaredAt, Kind};
use crate::filter::ErasedStep;
use crate::handler::ErasedHandler;
use crate::http::CORE_PATHS;
use crate::names;
use crate::task::{ErasedTask, RetryPolicy};

/// A problem that stops the coordinator from starting. Each message says what is wrong, where,
/// and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WiringError {
    /// `[extensions] enabled` names an extension this binary does not have.
    #[error(
        "[extensions] enabled: unknown extension \"{name}\"{hint}; this binary has: {available}"
    )]
    UnknownExtension {
        /// The name as configured.
        name: String,
        /// A "did you mean" suggestion, or empty.
        hint: String,
        /// The extensions compiled in.
        available: String,
    },
    /// `[extensions] enabled` names an extension twice.
    #[error("[extensions] enabled: extension \"{name}\" is listed twice; remove one")]
    ExtensionListedTwice {
        /// The extension.
        name: String,
    },
    /// Two extensions compiled into the binary have the same name.
    #[error(
        "extension name \"{name}\" is claimed by two extensions ({first} and {second}); give each extension a unique name"
    )]
    DuplicateExtension {
        /// The name.
        name: String,
        /// The first extension's Rust type.
        first: String,
        /// The second extension's Rust type.
        second: String,
    },
    /// An extension name is not snake_case.
    #[error("extension name \"{name}\" ({type_name}) is not snake_case; name it \"{suggestion}\"")]
    InvalidExtensionName {
        /// The name.
        name: String,
        /// The extension's Rust type.
        type_name: String,
        /// A valid spelling.
        suggestion: String,
    },
    /// A declared name does not follow `<extension>.<snake_case>`.
    #[error(
        "{kind} \"{name}\" declared by extension \"{extension}\" at {at} is not a valid name: {problem}"
    )]
    InvalidName {
        /// What was declared.
        kind: Kind,
        /// The name.
        name: String,
        /// The declaring extension.
        extension: String,
        /// Where it was declared (`file:line:column`).
        at: String,
        /// What is wrong with it and a valid spelling.
        problem: String,
    },
    /// Two declarations (in one or two extensions) claim the same name.
    #[error(
        "{kind} \"{name}\" is declared twice: by extension \"{first}\" at {first_at} and by extension \"{second}\" at {second_at}; rename one of them"
    )]
    DuplicateName {
        /// What was declared.
        kind: Kind,
        /// The name.
        name: String,
        /// The first declaring extension.
        first: String,
        /// Where the first declaration is.
        first_at: String,
        /// The second declaring extension.
        second: String,
        /// Where the second declaration is.
        second_at: String,
    },
    /// The configuration names a signal, handler, filter or step that no extension declares.
    #[error("{at}: unknown {kind} \"{name}\"{hint}")]
    Unknown {
        /// Where in the configuration.
        at: String,
        /// What the name should refer to.
        kind: Kind,
        /// The name as configured.
        name: String,
        /// A "did you mean" suggestion, or empty.
        hint: String,
    },
    /// The configuration names something declared by an extension that is not enabled.
    #[error(
        "{at}: {kind} \"{name}\" belongs to extension \"{extension}\", which is not enabled; add \"{extension}\" to [extensions] enabled, or remove it here"
    )]
    NotEnabled {
        /// Where in the configuration.
        at: String,
        /// What the name refers to.
        kind: Kind,
        /// The name.
        name: String,
        /// The extension that declares it.
        extension: String,
    },
    /// A signal is configured with an empty handler list, or a filter with an empty pipeline.
    #[error(
        "{at}: the {what} is empty; list at least one {item}, or remove the entry (a {owner} with no entry {consequence})"
    )]
    Empty {
        /// Where in the configuration.
        at: String,
        /// "handler list" or "pipeline".
        what: &'static str,
        /// "handler" or "step".
        item: &'static str,
        /// "signal" or "filter".
        owner: &'static str,
        /// What having no entry means.
        consequence: &'static str,
    },
    /// A handler's payload type differs from its signal's, or a step's data type from its filter's.
    #[error(
        "{at}: {kind} \"{name}\" takes `{its_type}` but {target_kind} \"{target}\" carries `{target_type}`; connect it to a {target_kind} that carries `{its_type}`{suggestion}"
    )]
    TypeMismatch {
        /// Where in the configuration.
        at: String,
        /// Handler or step.
        kind: Kind,
        /// The handler or step.
        name: String,
        /// The type it takes.
        its_type: String,
        /// Signal or filter.
        target_kind: Kind,
        /// The signal or filter.
        target: String,
        /// The type it carries.
        target_type: String,
        /// A matching signal or filter, or empty.
        suggestion: String,
    },
    /// A handler is listed twice for one signal, or a step twice in one pipeline.
    #[error("{at}: {kind} \"{name}\" is listed twice (also item {first}); remove the duplicate")]
    ListedTwice {
        /// Where in the configuration.
        at: String,
        /// Handler or step.
        kind: Kind,
        /// The name.
        name: String,
        /// The 1-based position of its first mention.
        first: usize,
    },
    /// A timeout is zero.
    #[error("{at}: a timeout of zero would fail every run; use a positive duration such as \"5s\"")]
    ZeroTimeout {
        /// Where in the configuration.
        at: String,
    },
    /// An extension's `[extension.<name>]` table does not fit its settings type.
    #[error("[extension.{extension}]: invalid settings: {message}")]
    InvalidSettings {
        /// The extension.
        extension: String,
        /// What is wrong, from the settings type's point of view.
        message: String,
    },
    /// An `[extension.<name>]` table names no enabled extension that takes settings.
    #[error("[extension.{name}]: {problem}")]
    StraySettings {
        /// The table's name.
        name: String,
        /// Why it cannot be used, and the fix.
        problem: String,
    },
    /// Two routes of an extension collide, or one cannot be mounted.
    #[error("extension \"{extension}\": route {route} cannot be mounted: {problem}")]
    RouteCollision {
        /// The extension.
        extension: String,
        /// The route (`POST /api/demo/orders`).
        route: String,
        /// What it collides with, and the fix.
        problem: String,
    },
    /// A migration's version is zero or repeated.
    #[error("extension \"{extension}\": migration {version} (\"{name}\") {problem}")]
    InvalidMigration {
        /// The extension.
        extension: String,
        /// Its version.
        version: u32,
        /// Its name.
        name: String,
        /// What is wrong, and the fix.
        problem: String,
    },
    /// A problem found by a component outside the wiring (the server, the store) and reported
    /// with the others.
    #[error("{at}: {message}")]
    Setting {
        /// Where in the configuration.
        at: String,
        /// What is wrong, and the fix.
        message: String,
    },
}

/// Something worth knowing that does not stop the coordinator from starting
/// (`coordinator check --deny-warnings` makes it an error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WiringWarning {
    /// A declared signal has no `[signals]` entry, so nothing receives it.
    #[error(
        "signal \"{signal}\" (declared by extension \"{extension}\") has no [signals] entry, so no handler receives it; add `\"{signal}\" = [...]` to [signals] if something should"
    )]
    UnwiredSignal {
        /// The signal.
        signal: String,
        /// The declaring extension.
        extension: String,
    },
    /// A declared handler is connected to no signal.
    #[error(
        "handler \"{handler}\" (declared by extension \"{extension}\") is not connected to any signal, so it never runs"
    )]
    UnusedHandler {
        /// The handler.
        handler: String,
        /// The declaring extension.
        extension: String,
    },
    /// A declared filter has no pipeline, so it returns its input unchanged.
    #[error(
        "filter \"{filter}\" (declared by extension \"{extension}\") has no [filters.\"{filter}\"] pipeline, so it returns its input unchanged"
    )]
    UnwiredFilter {
        /// The filter.
        filter: String,
        /// The declaring extension.
        extension: String,
    },
    /// `[worker] queues` names a queue no task runs on.
    #[error(
        "[worker] queues: no task runs on queue \"{queue}\", so this worker will never find work there"
    )]
    IdleQueue {
        /// The queue.
        queue: String,
    },
    /// A declared step is in no pipeline.
    #[error(
        "step \"{step}\" (declared by extension \"{extension}\") is in no filter's pipeline, so it never runs"
    )]
    UnusedStep {
        /// The step.
        step: String,
        /// The declaring extension.
        extension: String,
    },
}

/// The outcome of validating a configuration against the declarations: every error and warning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validation {
    /// Problems that stop the coordinator from starting.
    pub errors: Vec<WiringError>,
    /// Things worth knowing.
    pub warnings: Vec<WiringWarning>,
}

impl Validation {
    /// No errors.
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }
}

impl fmt::Display for Validation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.errors {
            writeln!(f, "error: {e}")?;
        }
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}

pub(crate) struct WiredHandler {
    pub(crate) name: &'static str,
    pub(crate) timeout: Duration,
    pub(crate) call: Arc<dyn ErasedHandler>,
}

pub(crate) struct SignalSlot {
    pub(crate) payload: TypeId,
    pub(crate) handlers: Box<[WiredHandler]>,
}

pub(crate) struct WiredStep {
    pub(crate) name: &'static str,
    pub(crate) call: Arc<dyn ErasedStep>,
}

pub(crate) struct FilterSlot {
    pub(crate) data: TypeId,
    pub(crate) step_timeout: Duration,
    pub(crate) steps: Box<[WiredStep]>,
}

/// A declared task with the settings in force.
pub(crate) struct WiredTask {
    pub(crate) name: &'static str,
    pub(crate) payload: TypeId,
    pub(crate) payload_name: &'static str,
    pub(crate) retry: RetryPolicy,
    pub(crate) timeout: Duration,
    pub(crate) queue: String,
    pub(crate) call: Arc<dyn ErasedTask>,
}

/// The compiled wiring of enabled extensions: what `send_robust`, `run_filter`, `enqueue` and
/// the workers look up.
#[derive(Default)]
pub(crate) struct Wiring {
    pub(crate) enabled: FxHashSet<&'static str>,
    pub(crate) signals: FxHashMap<&'static str, SignalSlot>,
    pub(crate) filters: FxHashMap<&'static str, FilterSlot>,
    pub(crate) tasks: FxHashMap<&'static str, WiredTask>,
}

fn at_str(at: DeclaredAt) -> String {
    format!("{}:{}", at.file(), at.line())
}

/// One kind of declaration, indexed by name for the checks below.
struct Index {
    kind: Kind,
    /// Enabled declarations by name (the first, if a name is declared twice).
    enabled: FxHashMap<&'static str, usize>,
    /// Names declared by disabled extensions, with the extension.
    disabled: FxHashMap<&'static str, &'static str>,
    names: Vec<&'static str>,
}

impl Index {
    /// Adds (name, extension, declared at) for each declaration, checking names and duplicates.
    fn build(
        kind: Kind,
        decls: impl Iterator<Item = (&'static str, &'static str, DeclaredAt)>,
        enabled: &FxHashSet<&'static str>,
        errors: &mut Vec<WiringError>,
    ) -> Self {
        let mut index = Index {
            kind,
            enabled: FxHashMap::default(),
            disabled: FxHashMap::default(),
            names: Vec::new(),
        };
        let mut first_at: FxHashMap<&'static str, (&'static str, DeclaredAt)> =
            FxHashMap::default();
        for (i, (name, extension, at)) in decls.enumerate() {
            if !enabled.contains(extension) {
                index.disabled.entry(name).or_insert(extension);
                continue;
            }
            if let Some(problem) = names::dotted_name_problem(name, extension) {
                errors.push(WiringError::InvalidName {
                    kind,
                    name: name.to_owned(),
                    extension: extension.to_owned(),
                    at: at_str(at),
                    problem,
                });
            }
            match first_at.get(name) {
                Some((first, first_decl_at)) => errors.push(WiringError::DuplicateName {
                    kind,
                    name: name.to_owned(),
                    first: (*first).to_owned(),
                    first_at: at_str(first_decl_at),
                    second: extension.to_owned(),
                    second_at: at_str(at),
                }),
                None => {
                    first_at.insert(name, (extension, at));
                    index.enabled.insert(name, i);
                    index.names.push(name);
                }
            }
        }
        index
    }

    /// Looks up a configured name, recording an error if it is unknown or not enabled.
    fn resolve(
        &self,
        at: impl FnOnce() -> String,
        name: &str,
        errors: &mut Vec<WiringError>,
    ) -> Option<usize> {
        if let Some(i) = self.enabled.get(name) {
            return Some(*i);
        }
        let at = at();
        if let Some(extension) = self.disabled.get(name) {
            errors.push(WiringError::NotEnabled {
                at,
                kind: self.kind,
                name: name.to_owned(),
                extension: (*extension).to_owned(),
            });
        } else {
            errors.push(WiringError::Unknown {
                at,
                kind: self.kind,
                name: name.to_owned(),
                hint: names::hint(name, self.names.iter().copied()),
            });
        }
        None
    }
}

/// Settings tables, routes and migrations of the enabled extensions.
fn check_extension_parts(
    decls: &Declarations,
    config: &Config,
    enabled: &FxHashSet<&'static str>,
    errors: &mut Vec<WiringError>,
) {
    for name in config.extension.keys() {
        let problem = match decls.extensions.iter().find(|e| e.name == name) {
            None => Some(format!(
                "there is no extension \"{name}\"{}; remove this table",
                names::hint(name, decls.extensions.iter().map(|e| e.name))
            )),
            Some(e) if !enabled.contains(e.name) => Some(format!(
                "extension \"{name}\" is not enabled; add it to [extensions] enabled or remove this table"
            )),
            Some(e) if e.settings_schema.is_none() => Some(format!(
                "extension \"{name}\" takes no settings; remove this table"
            )),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            errors.push(WiringError::StraySettings {
                name: name.clone(),
                problem,
            });
        }
    }
    check_mounts(decls, config, enabled, errors);
    for ext in decls.extensions.iter().filter(|e| enabled.contains(e.name)) {
        if let Some(message) = &ext.settings_error {
            errors.push(WiringError::InvalidSettings {
                extension: ext.name.to_owned(),
                message: message.clone(),
            });
        }
        check_routes(ext, config, errors);
        let mut versions: FxHashMap<u32, &str> = FxHashMap::default();
        for m in &ext.migrations {
            let problem = if m.version == 0 {
                Some("has version 0; versions start at 1".to_owned())
            } else {
                versions.insert(m.version, m.name).map(|other| {
                    format!(
                        "reuses the version of migration \"{other}\"; give it the next free version"
                    )
                })
            };
            if let Some(problem) = problem {
                errors.push(WiringError::InvalidMigration {
                    extension: ext.name.to_owned(),
                    version: m.version,
                    name: m.name.to_owned(),
                    problem,
                });
            }
        }
    }
}

/// Resolves each enabled task's settings: its declaration, overridden by `[tasks."<name>"]`.
fn compile_tasks(
    decls: &Declarations,
    config: &Config,
    tasks: &Index,
    errors: &mut Vec<WiringError>,
) -> FxHashMap<&'static str, WiredTask> {
    for name in config.tasks.keys() {
        tasks.resolve(|| format!("[tasks.\"{name}\"]"), name, errors);
    }
    let mut wired = FxHashMap::default();
    for name in &tasks.names {
        let d = &decls.tasks[tasks.enabled[name]];
        let o = config.tasks.get(d.name).cloned().unwrap_or_default();
        let retry = RetryPolicy {
            max_attempts: o.max_attempts.unwrap_or(d.defaults.retry.max_attempts),
            initial_backoff: o
                .initial_backoff
                .map_or(d.defaults.retry.initial_backoff, |t| t.0),
            max_backoff: o.max_backoff.map_or(d.defaults.retry.max_backoff, |t| t.0),
        };
        let timeout = o.timeout.map_or(d.defaults.timeout, |t| t.0);
        let queue = o.queue.unwrap_or_else(|| d.defaults.queue.to_owned());
        let at = if config.tasks.contains_key(d.name) {
            format!("[tasks.\"{}\"]", d.name)
        } else {
            format!("task \"{}\" declared at {}", d.name, at_str(d.at))
        };
        let mut problem = |message: String| {
            errors.push(WiringError::Setting {
                at: at.clone(),
                message,
            });
        };
        if retry.max_attempts == 0 {
            problem("max_attempts is 0, so the task would never run; use 1 or more".to_owned());
        }
        if retry.initial_backoff > retry.max_backoff {
            problem(format!(
                "initial_backoff ({}) is longer than max_backoff ({}); make max_backoff at least initial_backoff",
                crate::config::ConfigDuration(retry.initial_backoff),
                crate::config::ConfigDuration(retry.max_backoff)
            ));
        }
        if timeout.is_zero() {
            problem("a timeout of zero would fail every attempt; use a positive duration such as \"30s\"".to_owned());
        }
        if !names::is_snake_case(&queue) {
            problem(format!(
                "queue \"{queue}\" is not a snake_case name; write \"{}\"",
                names::to_snake_case(&queue)
            ));
        }
        wired.insert(
            d.name,
            WiredTask {
                name: d.name,
                payload: d.payload.id,
                payload_name: d.payload.name,
                retry,
                timeout,
                queue,
                call: Arc::clone(&d.call),
            },
        );
    }
    wired
}

/// The tasks and signals that handlers and tasks say they enqueue and send must exist.
fn check_relations(
    decls: &Declarations,
    signals: &Index,
    tasks: &Index,
    enabled: &FxHashSet<&'static str>,
    errors: &mut Vec<WiringError>,
) {
    let who = decls
        .handlers
        .iter()
        .filter(|h| enabled.contains(h.extension))
        .map(|h| (Kind::Handler, h.name, h.at, &h.enqueues, &h.sends))
        .chain(
            decls
                .tasks
                .iter()
                .filter(|t| enabled.contains(t.extension))
                .map(|t| (Kind::Task, t.name, t.at, &t.enqueues, &t.sends)),
        );
    for (kind, name, at, enqueues, sends) in who {
        let at = || format!("{kind} \"{name}\" declared at {}", at_str(at));
        for task in enqueues.iter() {
            tasks.resolve(at, task, errors);
        }
        for signal in sends.iter() {
            signals.resolve(at, signal, errors);
        }
    }
}

/// `[worker]`: sensible numbers, and queues that some task uses.
fn check_worker(
    config: &Config,
    tasks: &FxHashMap<&'static str, WiredTask>,
    errors: &mut Vec<WiringError>,
    warnings: &mut Vec<WiringWarning>,
) {
    let w = &config.worker;
    if w.concurrency == 0 {
        errors.push(WiringError::Setting {
            at: "[worker] concurrency".to_owned(),
            message: "0 would run no task; use 1 or more".to_owned(),
        });
    }
    for (key, d) in [("lease", w.lease), ("poll_interval", w.poll_interval)] {
        if d.0.is_zero() {
            errors.push(WiringError::ZeroTimeout {
                at: format!("[worker] {key}"),
            });
        }
    }
    for queue in &w.queues {
        if !tasks.values().any(|t| &t.queue == queue) {
            warnings.push(WiringWarning::IdleQueue {
                queue: queue.clone(),
            });
        }
    }
}

/// Whether `a` and `b` overlap as URL prefixes (one equals the other or contains it at a `/`).
fn paths_overlap(a: &str, b: &str) -> bool {
    let nested = |outer: &str, inner: &str| {
        inner == outer
            || inner
                .strip_prefix(outer)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    nested(a, b) || nested(b, a)
}

/// `[server.mounts]`: each names an enabled extension with routes, and no two mounts (nor a
/// mount and a core path) overlap.
fn check_mounts(
    decls: &Declarations,
    config: &Config,
    enabled: &FxHashSet<&'static str>,
    errors: &mut Vec<WiringError>,
) {
    let mut push = |name: &str, problem: String| {
        errors.push(WiringError::Setting {
            at: format!("[server.mounts] {name}"),
            message: problem,
        });
    };
    for (name, mount) in &config.server.mounts {
        match decls.extensions.iter().find(|e| e.name == name) {
            None => push(
                name,
                format!(
                    "there is no extension \"{name}\"{}",
                    names::hint(name, decls.extensions.iter().map(|e| e.name))
                ),
            ),
            Some(e) if !enabled.contains(e.name) => {
                push(name, format!("extension \"{name}\" is not enabled"));
            }
            Some(e) if e.routes.is_empty() => {
                push(name, format!("extension \"{name}\" has no routes to mount"));
            }
            Some(_) => {}
        }
        if !mount.starts_with('/')
            || mount.ends_with('/')
            || mount.contains("//")
            || mount.contains(['{', '}', '*'])
        {
            push(
                name,
                format!(
                    "\"{mount}\" is not a mount path; write it like \"/lms\" (a leading slash, no trailing slash, no parameters)"
                ),
            );
        }
    }
    let mounted: Vec<(&str, String)> = decls
        .extensions
        .iter()
        .filter(|e| enabled.contains(e.name) && !e.routes.is_empty())
        .map(|e| (e.name, config.server.mount_of(e.name)))
        .collect();
    for (i, (name, mount)) in mounted.iter().enumerate() {
        if let Some(core) = CORE_PATHS.iter().find(|core| paths_overlap(core, mount)) {
            errors.push(WiringError::RouteCollision {
                extension: (*name).to_owned(),
                route: format!("prefix {mount}"),
                problem: format!("it overlaps {core}, which the server serves; mount the extension elsewhere with [server.mounts] (or rename it)"),
            });
        }
        for (other, other_mount) in &mounted[..i] {
            if paths_overlap(mount, other_mount) {
                errors.push(WiringError::RouteCollision {
                    extension: (*name).to_owned(),
                    route: format!("prefix {mount}"),
                    problem: format!("it overlaps the mount {other_mount} of extension \"{other}\"; give one of them another path in [server.mounts]"),
                });
            }
        }
    }
}

fn check_routes(
    ext: &crate::extension::ExtensionDecl,
    config: &Config,
    errors: &mut Vec<WiringError>,
) {
    if ext.routes.is_empty() {
        return;
    }
    let mount = config.server.mount_of(ext.name);
    let mut push = |route: &crate::http::Route, problem: String| {
        errors.push(WiringError::RouteCollision {
            extension: ext.name.to_owned(),
            route: format!("{} {mount}{}", route.method, route.path),
            problem,
        });
    };
    let mut seen: FxHashSet<(&axum::http::Method, &str)> = FxHashSet::default();
    let mut mountable = true;
    for route in &ext.routes {
        if !route.path.starts_with('/') {
            push(
                route,
                format!("the path must start with \"/\"; write \"/{}\"", route.path),
            );
            mountable = false;
        } else if !seen.insert((&route.method, route.path)) {
            push(route, "it is declared twice; remove one".to_owned());
            mountable = false;
        }
    }
    if !mountable {
        return;
    }
    // axum refuses (by panicking) paths that conflict in other ways, such as `/orders/{id}`
    // beside `/orders/{number}`; build the extension's router here to report that too. One
    // build when all is well; route by route only to find the culprit when it is not.
    let build = |routes: &[crate::http::Route]| {
        crate::guard::catch_quietly(|| {
            routes.iter().fold(axum::Router::new(), |r, route| {
                r.route(route.path, route.router.clone())
            })
        })
    };
    if build(&ext.routes).is_ok() {
        return;
    }
    for (i, route) in ext.routes.iter().enumerate() {
        if let Err(message) = build(&ext.routes[..=i]) {
            push(route, format!("{message}; change one of the paths"));
            return;
        }
    }
}

/// Validates `config` against `decls` and, when there is no error, compiles the wiring.
pub(crate) fn compile(decls: &Declarations, config: &Config) -> (Validation, Option<Wiring>) {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();

    // Extensions: unique, well-named, and the enabled ones exist.
    let mut by_name: FxHashMap<&'static str, &'static str> = FxHashMap::default();
    for ext in &decls.extensions {
        if !names::is_snake_case(ext.name) {
            errors.push(WiringError::InvalidExtensionName {
                name: ext.name.to_owned(),
                type_name: ext.type_name.to_owned(),
                suggestion: names::to_snake_case(ext.name),
            });
        }
        if let Some(first) = by_name.insert(ext.name, ext.type_name) {
            errors.push(WiringError::DuplicateExtension {
                name: ext.name.to_owned(),
                first: first.to_owned(),
                second: ext.type_name.to_owned(),
            });
        }
    }
    let mut enabled: FxHashSet<&'static str> = FxHashSet::default();
    match &config.extensions.enabled {
        None => enabled.extend(decls.extensions.iter().map(|e| e.name)),
        Some(list) => {
            for name in list {
                match decls.extensions.iter().find(|e| e.name == name) {
                    Some(ext) => {
                        if !enabled.insert(ext.name) {
                            errors.push(WiringError::ExtensionListedTwice { name: name.clone() });
                        }
                    }
                    None => {
                        let mut available: Vec<&str> =
                            decls.extensions.iter().map(|e| e.name).collect();
                        available.sort_unstable();
                        errors.push(WiringError::UnknownExtension {
                            name: name.clone(),
                            hint: names::hint(name, available.iter().copied()),
                            available: if available.is_empty() {
                                "(none)".to_owned()
                            } else {
                                available.join(", ")
                            },
                        });
                    }
                }
            }
        }
    }

    check_extension_parts(decls, config, &enabled, &mut errors);

    let signals = Index::build(
        Kind::Signal,
        decls.signals.iter().map(|d| (d.name, d.extension, d.at)),
        &enabled,
        &mut errors,
    );
    let handlers = Index::build(
        Kind::Handler,
        decls.handlers.iter().map(|d| (d.name, d.extension, d.at)),
        &enabled,
        &mut errors,
    );
    let filters = Index::build(
        Kind::Filter,
        decls.filters.iter().map(|d| (d.name, d.extension, d.at)),
        &enabled,
        &mut errors,
    );
    let steps = Index::build(
        Kind::Step,
        decls.steps.iter().map(|d| (d.name, d.extension, d.at)),
        &enabled,
        &mut errors,
    );
    let tasks = Index::build(
        Kind::Task,
        decls.tasks.iter().map(|d| (d.name, d.extension, d.at)),
        &enabled,
        &mut errors,
    );
    let wired_tasks = compile_tasks(decls, config, &tasks, &mut errors);
    check_relations(decls, &signals, &tasks, &enabled, &mut errors);
    check_worker(config, &wired_tasks, &mut errors, &mut warnings);

    // Per-handler settings.
    let mut handler_timeout: FxHashMap<usize, Duration> = FxHashMap::default();
    let default_handler_timeout = config.timeouts.handler.0;
    if default_handler_timeout.is_zero() {
        errors.push(WiringError::ZeroTimeout {
            at: "[timeouts] handler".to_owned(),
        });
    }
    if config.timeouts.step.0.is_zero() {
        errors.push(WiringError::ZeroTimeout {
            at: "[timeouts] step".to_owned(),
        });
    }
    for (name, hc) in &config.handlers {
        let at = || format!("[handlers.\"{name}\"]");
        if let Some(i) = handlers.resolve(at, name, &mut errors) {
            if let Some(t) = hc.timeout {
                if t.0.is_zero() {
                    errors.push(WiringError::ZeroTimeout {
                        at: format!("[handlers.\"{name}\"] timeout"),
                    });
                }
                handler_timeout.insert(i, t.0);
            }
        }
    }

    // Signals to handlers.
    let mut wired_signals: FxHashMap<&'static str, SignalSlot> = FxHashMap::default();
    let mut connected_handlers: FxHashSet<usize> = FxHashSet::default();
    let mut signal_by_type: Option<FxHashMap<TypeId, &'static str>> = None;
    for (signal_name, list) in &config.signals {
        let at = || format!("[signals] \"{signal_name}\"");
        let signal = signals
            .resolve(at, signal_name, &mut errors)
            .map(|i| &decls.signals[i]);
        if list.is_empty() {
            errors.push(WiringError::Empty {
                at: at(),
                what: "handler list",
                item: "handler",
                owner: "signal",
                consequence: "simply has no handlers",
            });
        }
        let mut seen: FxHashMap<&str, usize> = FxHashMap::default();
        let mut wired = Vec::with_capacity(list.len());
        for (pos, handler_name) in list.iter().enumerate() {
            let item_at = || format!("[signals] \"{signal_name}\" item {}", pos + 1);
            if let Some(first) = seen.insert(handler_name, pos + 1) {
                errors.push(WiringError::ListedTwice {
                    at: item_at(),
                    kind: Kind::Handler,
                    name: handler_name.clone(),
                    first,
                });
                continue;
            }
            let Some(hi) = handlers.resolve(item_at, handler_name, &mut errors) else {
                continue;
            };
            let handler = &decls.handlers[hi];
            connected_handlers.insert(hi);
            let Some(signal) = signal else { continue };
            if handler.payload.id != signal.payload.id {
                let by_type = signal_by_type.get_or_insert_with(|| {
                    let mut m = FxHashMap::default();
                    for name in &signals.names {
                        let d = &decls.signals[signals.enabled[name]];
                        m.entry(d.payload.id).or_insert(d.name);
                    }
                    m
                });
                errors.push(WiringError::TypeMismatch {
                    at: item_at(),
                    kind: Kind::Handler,
                    name: handler_name.clone(),
                    its_type: handler.payload.name.to_owned(),
                    target_kind: Kind::Signal,
                    target: signal_name.clone(),
                    target_type: signal.payload.name.to_owned(),
                    suggestion: by_type
                        .get(&handler.payload.id)
                        .map(|s| format!(" (such as \"{s}\")"))
                        .unwrap_or_default(),
                });
                continue;
            }
            wired.push(WiredHandler {
                name: handler.name,
                timeout: handler_timeout
                    .get(&hi)
                    .copied()
                    .unwrap_or(default_handler_timeout),
                call: Arc::clone(&handler.call),
            });
        }
        if let Some(signal) = signal {
            wired_signals.insert(
                signal.name,
                SignalSlot {
                    payload: signal.payload.id,
                    handlers: wired.into_boxed_slice(),
                },
            );
        }
    }

    // Filters to steps.
    let mut wired_filters: FxHashMap<&'static str, FilterSlot> = FxHashMap::default();
    let mut used_steps: FxHashSet<usize> = FxHashSet::default();
    let mut filter_by_type: Option<FxHashMap<TypeId, &'static str>> = None;
    for (filter_name, fc) in &config.filters {
        let at = || format!("[filters.\"{filter_name}\"] pipeline");
        let filter = filters
            .resolve(at, filter_name, &mut errors)
            .map(|i| &decls.filters[i]);
        if fc.pipeline.is_empty() {
            errors.push(WiringError::Empty {
                at: at(),
                what: "pipeline",
                item: "step",
                owner: "filter",
                consequence: "returns its input unchanged",
            });
        }
        let step_timeout = fc.step_timeout.map_or(config.timeouts.step.0, |t| t.0);
        if step_timeout.is_zero() {
            errors.push(WiringError::ZeroTimeout {
                at: format!("[filters.\"{filter_name}\"] step_timeout"),
            });
        }
        let mut seen: FxHashMap<&str, usize> = FxHashMap::default();
        let mut wired = Vec::with_capacity(fc.pipeline.len());
        for (pos, step_name) in fc.pipeline.iter().enumerate() {
            let item_at = || format!("[filters.\"{filter_name}\"] pipeline item {}", pos + 1);
            if let Some(first) = seen.insert(step_name, pos + 1) {
                errors.push(WiringError::ListedTwice {
                    at: item_at(),
                    kind: Kind::Step,
                    name: step_name.clone(),
                    first,
                });
                continue;
            }
            let Some(si) = steps.resolve(item_at, step_name, &mut errors) else {
                continue;
            };
            used_steps.insert(si);
            let step = &decls.steps[si];
            let Some(filter) = filter else { continue };
            if step.data.id != filter.data.id {
                let by_type = filter_by_type.get_or_insert_with(|| {
                    let mut m = FxHashMap::default();
                    for name in &filters.names {
                        let d = &decls.filters[filters.enabled[name]];
                        m.entry(d.data.id).or_insert(d.name);
                    }
                    m
                });
                errors.push(WiringError::TypeMismatch {
                    at: item_at(),
                    kind: Kind::Step,
                    name: step_name.clone(),
                    its_type: step.data.name.to_owned(),
                    target_kind: Kind::Filter,
                    target: filter_name.clone(),
                    target_type: filter.data.name.to_owned(),
                    suggestion: by_type
                        .get(&step.data.id)
                        .map(|f| format!(" (such as \"{f}\")"))
                        .unwrap_or_default(),
                });
                continue;
            }
            wired.push(WiredStep {
                name: step.name,
                call: Arc::clone(&step.call),
            });
        }
        if let Some(filter) = filter {
            wired_filters.insert(
                filter.name,
                FilterSlot {
                    data: filter.data.id,
                    step_timeout,
                    steps: wired.into_boxed_slice(),
                },
            );
        }
    }

    // Declared but not wired: allowed, with a warning; they still get (empty) slots so that
    // sending such a signal or running such a filter is valid and does nothing.
    for name in &signals.names {
        let d = &decls.signals[signals.enabled[name]];
        wired_signals.entry(d.name).or_insert_with(|| {
            warnings.push(WiringWarning::UnwiredSignal {
                signal: d.name.to_owned(),
                extension: d.extension.to_owned(),
            });
            SignalSlot {
                payload: d.payload.id,
                handlers: Box::new([]),
            }
        });
    }
    for name in &handlers.names {
        let i = handlers.enabled[name];
        if !connected_handlers.contains(&i) {
            let d = &decls.handlers[i];
            warnings.push(WiringWarning::UnusedHandler {
                handler: d.name.to_owned(),
                extension: d.extension.to_owned(),
            });
        }
    }
    for name in &filters.names {
        let d = &decls.filters[filters.enabled[name]];
        wired_filters.entry(d.name).or_insert_with(|| {
            warnings.push(WiringWarning::UnwiredFilter {
                filter: d.name.to_owned(),
                extension: d.extension.to_owned(),
            });
            FilterSlot {
                data: d.data.id,
                step_timeout: config.timeouts.step.0,
                steps: Box::new([]),
            }
        });
    }
    for name in &steps.names {
        let i = steps.enabled[name];
        if !used_steps.contains(&i) {
            let d = &decls.steps[i];
            warnings.push(WiringWarning::UnusedStep {
                step: d.name.to_owned(),
                extension: d.extension.to_owned(),
            });
        }
    }

    let validation = Validation { errors, warnings };
    let wiring = validation.is_valid().then(|| Wiring {
        enabled,
        signals: wired_signals,
        filters: wired_filters,
        tasks: wired_tasks,
    });
    (validation, wiring)
}
