//! What validation reports: errors that stop the coordinator from starting, and warnings.

use std::fmt;

use crate::extension::Kind;

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
    /// A handler, step or task takes a `State<T>` its extension does not register.
    #[error(
        "{kind} \"{name}\" declared at {at} takes State<{type_name}>, which extension \"{extension}\" does not register; call `ext.state(...)` with a {type_name} in its build"
    )]
    MissingState {
        /// Handler, step or task.
        kind: Kind,
        /// Its name.
        name: String,
        /// Where it was declared.
        at: String,
        /// The state type.
        type_name: String,
        /// Its extension.
        extension: String,
    },
    /// An extension registers two values of one state type.
    #[error(
        "extension \"{extension}\" registers state of type {type_name} twice; register each type once (wrap values in distinct types)"
    )]
    StateTwice {
        /// The extension.
        extension: String,
        /// The state type.
        type_name: String,
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
    /// `[handlers."<name>"]` sets how deliveries are retried or queued, but the handler
    /// receives no durable signal, so it has no deliveries.
    #[error(
        "[handlers.\"{handler}\"] sets max_attempts, initial_backoff, max_backoff or queue, which apply only to deliveries of durable signals, and no durable signal is delivered to it; remove them, or make one of its signals durable"
    )]
    UnusedDeliverySettings {
        /// The handler.
        handler: String,
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
