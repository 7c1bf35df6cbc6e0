//! The coordinator: extensions plus validated wiring, and the contexts through which code sends
//! signals and runs filters.

use std::any::TypeId;
use std::fmt;
use std::sync::Arc;

use tokio::time::Instant;
use tracing::{Instrument, debug, debug_span, error};

use crate::catalog::Catalog;
use crate::config::Config;
use crate::dispatch::{self, DispatchObserver, DispatchReport, Sender};
use crate::extension::{Declarations, Extension};
use crate::filter::{AnyData, Filter, FilterError, FilterRun, Flow};
use crate::guard::{Guard, Guarded};
use crate::http::Route;
use crate::migration::Migration;
use crate::payload::Payload;
use crate::signal::Signal;
use crate::wiring::{self, Validation, Wiring, WiringWarning};

/// A running set of extensions with validated wiring. Cheap to clone (it is shared).
///
/// Build one with [`Coordinator::builder`]; send signals and run filters through a [`Context`].
#[derive(Clone)]
pub struct Coordinator {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) observers: Box<[Arc<dyn DispatchObserver>]>,
    pub(crate) decls: Declarations,
    pub(crate) wiring: Wiring,
    pub(crate) config: Config,
    pub(crate) warnings: Vec<WiringWarning>,
}

impl fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut enabled: Vec<_> = self.inner.wiring.enabled.iter().collect();
        enabled.sort();
        f.debug_struct("Coordinator")
            .field("enabled", &enabled)
            .field("signals", &self.inner.wiring.signals.len())
            .field("filters", &self.inner.wiring.filters.len())
            .finish()
    }
}

impl Coordinator {
    /// Starts composing a coordinator from extensions and a configuration.
    pub fn builder() -> CoordinatorBuilder {
        CoordinatorBuilder::default()
    }

    /// A context that sends as `extension` (for an extension's routes and start-up code, tests
    /// and tools). Handlers and steps get theirs from the framework.
    pub fn context(&self, extension: &'static str) -> Context {
        Context::new(Arc::clone(&self.inner), Sender::Extension(extension))
    }

    /// The self-description of every enabled extension, signal, handler, filter and step.
    pub fn catalog(&self) -> Catalog {
        Catalog::build(&self.inner.decls, &self.inner.wiring, &self.inner.config)
    }

    /// The configuration the coordinator was built from.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The warnings found when the wiring was validated.
    pub fn warnings(&self) -> &[WiringWarning] {
        &self.inner.warnings
    }

    /// The HTTP routes of each enabled extension, for the server to mount under
    /// `/api/<extension>/` (validation has checked that they do not collide).
    pub fn routes(&self) -> Vec<(&'static str, Vec<Route>)> {
        self.enabled_extensions()
            .filter(|e| !e.routes.is_empty())
            .map(|e| (e.name, e.routes.clone()))
            .collect()
    }

    /// The migrations of every enabled extension, in declaration order.
    pub fn migrations(&self) -> Vec<Migration> {
        self.enabled_extensions()
            .flat_map(|e| e.migrations.iter().cloned())
            .collect()
    }

    fn enabled_extensions(&self) -> impl Iterator<Item = &crate::extension::ExtensionDecl> {
        self.inner
            .decls
            .extensions
            .iter()
            .filter(|e| self.inner.wiring.enabled.contains(e.name))
    }
}

/// Collects extensions and the configuration, then validates and builds a [`Coordinator`].
///
/// The binary lists its extensions explicitly (each behind a Cargo feature); configuration
/// decides which of them run.
#[derive(Default)]
pub struct CoordinatorBuilder {
    extensions: Vec<Box<dyn Extension>>,
    config: Config,
    observers: Vec<Arc<dyn DispatchObserver>>,
}

impl CoordinatorBuilder {
    /// Adds an extension.
    pub fn extension(mut self, extension: impl Extension) -> Self {
        self.extensions.push(Box::new(extension));
        self
    }

    /// Adds boxed extensions.
    pub fn extensions(mut self, extensions: impl IntoIterator<Item = Box<dyn Extension>>) -> Self {
        self.extensions.extend(extensions);
        self
    }

    /// Sets the configuration (the default has no wiring).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Adds an observer that receives every dispatch report (the dispatch log, metrics).
    pub fn observe(mut self, observer: Arc<dyn DispatchObserver>) -> Self {
        self.observers.push(observer);
        self
    }

    /// Validates the configuration against the extensions' declarations without building:
    /// every error and warning.
    pub fn validate(&self) -> Validation {
        let decls =
            Declarations::collect(self.extensions.iter().map(|e| &**e), &self.config.extension);
        wiring::compile(&decls, &self.config).0
    }

    /// Validates and builds. Refuses with every problem if any error remains.
    pub fn build(self) -> Result<Coordinator, BuildError> {
        let decls =
            Declarations::collect(self.extensions.iter().map(|e| &**e), &self.config.extension);
        let (validation, wiring) = wiring::compile(&decls, &self.config);
        let Some(wiring) = wiring else {
            return Err(BuildError { validation });
        };
        Ok(Coordinator {
            inner: Arc::new(Inner {
                observers: self.observers.into_boxed_slice(),
                decls,
                wiring,
                config: self.config,
                warnings: validation.warnings,
            }),
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

/// Who is acting, within a coordinator: the handle through which code sends signals and runs
/// filters. The sender is known from the context, never spelt by the caller.
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
    sender: Sender,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("sender", &self.sender)
            .finish()
    }
}

impl Context {
    pub(crate) fn new(inner: Arc<Inner>, sender: Sender) -> Self {
        Self { inner, sender }
    }

    /// Who this context sends as.
    pub fn sender(&self) -> Sender {
        self.sender
    }

    /// A handle on the whole coordinator.
    pub fn coordinator(&self) -> Coordinator {
        Coordinator {
            inner: Arc::clone(&self.inner),
        }
    }

    /// Sends `signal` to every handler the configuration connects to it, and returns how each
    /// run ended. This is the only way to send: no handler's failure, panic or slowness stops
    /// the others, and none is hidden from the report.
    pub async fn send_robust<P: Payload>(&self, signal: &Signal<P>, payload: P) -> DispatchReport {
        dispatch::send_robust(&self.inner, self.sender, signal, payload).await
    }

    /// Runs `filter`'s pipeline on `data`: the final data, or an error naming the step that failed.
    pub async fn run_filter<D: Payload>(
        &self,
        filter: &Filter<D>,
        data: D,
    ) -> Result<FilterRun<D>, FilterError> {
        let name = filter.name();
        let not_declared = || FilterError::NotDeclared {
            filter: name,
            data_type: std::any::type_name::<D>(),
        };
        let slot = match self.inner.wiring.filters.get(name) {
            Some(slot) if slot.data == TypeId::of::<D>() => slot,
            _ => return Err(not_declared()),
        };
        let span = debug_span!("filter", filter = name, sender = %self.sender);
        async {
            let mut data: AnyData = Box::new(data);
            let mut steps = Vec::with_capacity(slot.steps.len());
            let mut halted_by = None;
            for step in &slot.steps {
                let started = Instant::now();
                let context = Context::new(Arc::clone(&self.inner), Sender::Step(step.name));
                let guarded = Guard::new(step.call.call(context, data), started + slot.step_timeout)
                    .instrument(debug_span!("step", step = step.name))
                    .await;
                let elapsed = started.elapsed();
                let duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
                steps.push((step.name, elapsed));
                let failure = match guarded {
                    Guarded::Finished(Ok(Flow::Continue(d))) => {
                        debug!(filter = name, step = step.name, duration_us, "step passed the data on");
                        data = d;
                        continue;
                    }
                    Guarded::Finished(Ok(Flow::Halt(d))) => {
                        debug!(filter = name, step = step.name, duration_us, "step halted the pipeline");
                        data = d;
                        halted_by = Some(step.name);
                        break;
                    }
                    Guarded::Finished(Err(e)) => FilterError::StepFailed {
                        filter: name,
                        step: step.name,
                        chain: e.chain(),
                    },
                    Guarded::Panicked { message, location } => FilterError::StepPanicked {
                        filter: name,
                        step: step.name,
                        message,
                        location,
                    },
                    Guarded::TimedOut => FilterError::StepTimedOut {
                        filter: name,
                        step: step.name,
                        timeout: slot.step_timeout,
                    },
                };
                error!(filter = name, step = step.name, sender = %self.sender, duration_us, error = %failure, "filter step failed");
                return Err(failure);
            }
            let data = *data.downcast::<D>().map_err(|_| not_declared())?;
            Ok(FilterRun {
                data,
                halted_by,
                steps,
            })
        }
        .instrument(span)
        .await
    }
}
