//! Composing a coordinator: [`CoordinatorBuilder`] collects extensions and the configuration,
//! validates the wiring (every problem at once) and builds a [`Coordinator`], the handle on the
//! running whole.

use std::cell::OnceCell;
use std::fmt;
use std::sync::Arc;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::context::{Context, NO_EXTENSION, Runtime};
use crate::dispatch::{DispatchObserver, Sender};
use crate::extension::{Declarations, Extension, ExtensionDecl};
use crate::http::{Mounts, Route};
use crate::migration::Migration;
use crate::store::Store;
use crate::task::StoredTask;
use crate::wiring::{self, Validation, WiringWarning};

/// A running set of extensions with validated wiring. Cheap to clone (it is shared).
///
/// Build one with [`Coordinator::builder`]; send signals and run filters through a [`Context`].
#[derive(Clone)]
pub struct Coordinator {
    pub(crate) runtime: Arc<Runtime>,
}

impl fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut enabled: Vec<_> = self.runtime.wiring.enabled.iter().collect();
        enabled.sort();
        f.debug_struct("Coordinator")
            .field("enabled", &enabled)
            .field("signals", &self.runtime.wiring.signals.len())
            .field("filters", &self.runtime.wiring.filters.len())
            .finish()
    }
}

impl Coordinator {
    /// Starts composing a coordinator from extensions and a configuration.
    pub fn builder() -> CoordinatorBuilder {
        CoordinatorBuilder::default()
    }

    /// A context that sends as `extension` (for an extension's routes and start-up code, tests
    /// and tools), with that extension's state. Handlers and steps get theirs from the framework.
    pub fn context(&self, extension: &'static str) -> Context {
        let index = self
            .runtime
            .decls
            .extensions
            .iter()
            .position(|e| e.name == extension)
            .unwrap_or(NO_EXTENSION);
        Context::new(
            Arc::clone(&self.runtime),
            Sender::Extension(extension),
            index,
        )
    }

    /// The store tasks are enqueued in and run from, if the coordinator was given one
    /// ([`CoordinatorBuilder::store`]).
    pub fn store(&self) -> Option<&Store> {
        self.runtime.store.as_ref()
    }

    /// A stored task's payload as it may be shown (in the HTTP API, the admin UI): every
    /// [`Personal`](crate::Personal) field replaced by `"[redacted]"`. A payload this
    /// coordinator cannot read (an unknown task, a payload that no longer fits its type) is
    /// replaced whole.
    pub fn redact_task_payload(&self, task: &StoredTask) -> serde_json::Value {
        self.runtime
            .wiring
            .tasks
            .get(task.task.as_str())
            .and_then(|wired| wired.call.redact(&task.payload))
            .unwrap_or_else(|| serde_json::Value::String(crate::payload::REDACTED.to_owned()))
    }

    /// The self-description of every enabled extension, signal, handler, filter and step.
    pub fn catalog(&self) -> Catalog {
        Catalog::build(
            &self.runtime.decls,
            &self.runtime.wiring,
            &self.runtime.config,
        )
    }

    /// The configuration the coordinator was built from.
    pub fn config(&self) -> &Config {
        &self.runtime.config
    }

    /// The warnings found when the wiring was validated.
    pub fn warnings(&self) -> &[WiringWarning] {
        &self.runtime.warnings
    }

    /// The HTTP routes of each enabled extension, for the host to mount where
    /// [`Coordinator::mount_of`] says (validation has checked that they do not collide).
    pub fn routes(&self) -> Vec<(&'static str, Vec<Route>)> {
        self.enabled_extensions()
            .filter(|e| !e.routes.is_empty())
            .map(|e| (e.name, e.routes.clone()))
            .collect()
    }

    /// Where `extension`'s routes are served: its mount, or `/api/<extension>`.
    pub fn mount_of(&self, extension: &str) -> String {
        self.runtime.mounts.mount_of(extension)
    }

    /// The migrations of every enabled extension, in declaration order.
    pub fn migrations(&self) -> Vec<Migration> {
        self.enabled_extensions()
            .flat_map(|e| e.migrations.iter().cloned())
            .collect()
    }

    fn enabled_extensions(&self) -> impl Iterator<Item = &ExtensionDecl> {
        self.runtime
            .decls
            .extensions
            .iter()
            .filter(|e| self.runtime.wiring.enabled.contains(e.name))
    }
}

/// Collects extensions and the configuration, then validates and builds a [`Coordinator`].
///
/// The binary lists its extensions explicitly (each behind a Cargo feature); configuration
/// decides which of them run.
#[derive(Default)]
pub struct CoordinatorBuilder {
    extensions: Vec<Arc<dyn Extension>>,
    config: Config,
    observers: Vec<Arc<dyn DispatchObserver>>,
    store: Option<Store>,
    mounts: Mounts,
    /// What the extensions declared, once collected (by `validate`, kept for `build`).
    decls: OnceCell<Declarations>,
}

impl CoordinatorBuilder {
    /// Adds an extension.
    pub fn extension(mut self, extension: impl Extension) -> Self {
        self.extensions.push(Arc::new(extension));
        self.decls.take();
        self
    }

    /// Adds boxed extensions.
    pub fn extensions(mut self, extensions: impl IntoIterator<Item = Box<dyn Extension>>) -> Self {
        self.extensions
            .extend(extensions.into_iter().map(Arc::<dyn Extension>::from));
        self.decls.take();
        self
    }

    /// Adds extensions shared with other builders (a host that builds more than one
    /// coordinator from one list, such as the server's commands).
    pub fn shared_extensions(
        mut self,
        extensions: impl IntoIterator<Item = Arc<dyn Extension>>,
    ) -> Self {
        self.extensions.extend(extensions);
        self.decls.take();
        self
    }

    /// Sets the configuration (the default has no wiring).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self.decls.take();
        self
    }

    /// Adds an observer that receives every dispatch report (the dispatch log, metrics).
    pub fn observe(mut self, observer: Arc<dyn DispatchObserver>) -> Self {
        self.observers.push(observer);
        self
    }

    /// Gives the coordinator its store (migrated), where [`Context::enqueue`] puts tasks and
    /// workers find them. Without one, enqueueing fails with
    /// [`EnqueueError::NoStore`](crate::task::EnqueueError::NoStore).
    pub fn store(mut self, store: Store) -> Self {
        self.store = Some(store);
        self
    }

    /// Where the host serves the extensions' routes, and the paths it keeps for itself: checked
    /// at validation (mounts may not overlap each other or those paths).
    pub fn mounts(mut self, mounts: Mounts) -> Self {
        self.mounts = mounts;
        self
    }

    /// Validates the configuration against the extensions' declarations without building:
    /// every error and warning. The declarations collected here (each extension's `build`
    /// runs once) are kept for [`build`](CoordinatorBuilder::build).
    pub fn validate(&self) -> Validation {
        wiring::compile(self.declarations(), &self.config, &self.mounts).0
    }

    /// Validates and builds. Refuses with every problem if any error remains.
    pub fn build(mut self) -> Result<Coordinator, BuildError> {
        self.declarations();
        let decls = self.decls.take().expect("collected above");
        let (validation, wiring) = wiring::compile(&decls, &self.config, &self.mounts);
        let Some(wiring) = wiring else {
            return Err(BuildError { validation });
        };
        Ok(Coordinator {
            runtime: Arc::new(Runtime {
                store: self.store,
                observers: self.observers.into_boxed_slice(),
                decls,
                wiring,
                config: self.config,
                warnings: validation.warnings,
                mounts: self.mounts,
            }),
        })
    }

    fn declarations(&self) -> &Declarations {
        self.decls.get_or_init(|| {
            Declarations::collect(self.extensions.iter().map(|e| &**e), &self.config)
        })
    }
}

/// The coordinator could not be built: the configuration has errors, all listed here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} problem(s) in the configuration; the coordinator cannot start until all are fixed:\n{validation}", validation.errors.len())]
pub struct BuildError {
    /// Every error and warning.
    pub validation: Validation,
}
