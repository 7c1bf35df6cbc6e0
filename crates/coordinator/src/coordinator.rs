//! The coordinator: extensions plus validated wiring, and the contexts through which code sends
//! signals and runs filters.

use std::any::TypeId;
use std::fmt;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use std::time::Instant;
use tracing::{Instrument, debug, debug_span, error};
use uuid::Uuid;

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
use crate::store::{Store, StoreTx};
use crate::task::{EnqueueError, EnqueueOptions, NewTask, StoredTask, Task};
use crate::wiring::{self, Validation, Wiring, WiringWarning};

/// A running set of extensions with validated wiring. Cheap to clone (it is shared).
///
/// Build one with [`Coordinator::builder`]; send signals and run filters through a [`Context`].
#[derive(Clone)]
pub struct Coordinator {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Option<Store>,
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

    /// The store tasks are enqueued in and run from, if the coordinator was given one
    /// ([`CoordinatorBuilder::store`]).
    pub fn store(&self) -> Option<&Store> {
        self.inner.store.as_ref()
    }

    /// A stored task's payload as it may be shown (in the HTTP API, the admin UI): every
    /// [`Personal`](crate::Personal) field replaced by `"[redacted]"`. A payload this
    /// coordinator cannot read (an unknown task, a payload that no longer fits its type) is
    /// replaced whole.
    pub fn redact_task_payload(&self, task: &StoredTask) -> serde_json::Value {
        self.inner
            .wiring
            .tasks
            .get(task.task.as_str())
            .and_then(|wired| wired.call.redact(&task.payload))
            .unwrap_or_else(|| serde_json::Value::String(crate::payload::REDACTED.to_owned()))
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
    store: Option<Store>,
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

    /// Gives the coordinator its store (migrated), where [`Context::enqueue`] puts tasks and
    /// workers find them. Without one, enqueueing fails with [`EnqueueError::NoStore`].
    pub fn store(mut self, store: Store) -> Self {
        self.store = Some(store);
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
                store: self.store,
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

/// Who is acting, within a coordinator: the handle through which code sends signals, runs
/// filters and enqueues tasks. The sender is known from the context, never spelt by the caller,
/// and so is the cause: the dispatch that led here, which tasks enqueued from this context
/// record as their origin.
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
    sender: Sender,
    cause: Option<Uuid>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("sender", &self.sender)
            .field("cause", &self.cause)
            .finish()
    }
}

impl Context {
    pub(crate) fn new(inner: Arc<Inner>, sender: Sender) -> Self {
        Self {
            inner,
            sender,
            cause: None,
        }
    }

    /// The same context with `cause` as the dispatch that led here.
    pub(crate) fn caused_by(mut self, cause: Option<Uuid>) -> Self {
        self.cause = cause;
        self
    }

    /// Who this context sends as.
    pub fn sender(&self) -> Sender {
        self.sender
    }

    /// The dispatch that led here: in a handler, the dispatch that delivered the event; in a
    /// task, the dispatch its chain started from; `None` in an extension's own context.
    pub fn cause(&self) -> Option<Uuid> {
        self.cause
    }

    /// Enqueues `task` with `payload`, to run now, and returns the task's id (a handler may
    /// return it: the dispatch report then shows it). Its queue and attempts are those
    /// configured for the task; its origin is this context's [`cause`](Context::cause).
    ///
    /// ```
    /// use coordinator::prelude::*;
    /// use coordinator::testing::TestCoordinator;
    ///
    /// #[derive(Debug, Serialize, Deserialize, JsonSchema)]
    /// pub struct Refund { pub order: String }
    /// static REFUND: Task<Refund> = Task::new("shop.refund", "Refunds an order at the PSP.");
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let shop = coordinator::testing::extension("shop", |ext| {
    ///     ext.task(&REFUND, |_: TaskContext, r: Refund| async move {
    ///         Ok::<_, TaskError>(format!("refunded {}", r.order))
    ///     });
    /// });
    /// let t = TestCoordinator::builder().extension(shop).with_store(coordinator_sqlite::testing::temporary()).build();
    /// let id = t.context().enqueue(&REFUND, Refund { order: "EDX-1".into() }).await.unwrap();
    /// let runs = t.run_tasks().await;
    /// assert_eq!((runs[0].id, runs[0].status), (id, "succeeded"));
    /// # });
    /// ```
    pub async fn enqueue<P: Payload>(
        &self,
        task: &Task<P>,
        payload: P,
    ) -> Result<Uuid, EnqueueError> {
        self.enqueue_with(task, payload, EnqueueOptions::default())
            .await
    }

    /// Enqueues `task` with `payload` as [`enqueue`](Context::enqueue) does, delayed or
    /// deduplicated as `options` say.
    pub async fn enqueue_with<P: Payload>(
        &self,
        task: &Task<P>,
        payload: P,
        options: EnqueueOptions,
    ) -> Result<Uuid, EnqueueError> {
        let new = self.new_task(task, &payload, options)?;
        let Some(store) = &self.inner.store else {
            return Err(EnqueueError::NoStore { task: task.name() });
        };
        let id = store
            .enqueue_task(&new)
            .await
            .map_err(|source| EnqueueError::Store {
                task: task.name(),
                source,
            })?;
        self.enqueued(&new, id);
        Ok(id)
    }

    /// Enqueues `task` within the transaction `tx`: the task exists if and only if `tx` commits.
    /// Record the incoming event ([`StoreTx::record_intake`]) and enqueue its work in one
    /// transaction, and a redelivered event cannot enqueue its work twice.
    pub async fn enqueue_in<P: Payload>(
        &self,
        tx: &mut StoreTx,
        task: &Task<P>,
        payload: P,
        options: EnqueueOptions,
    ) -> Result<Uuid, EnqueueError> {
        let new = self.new_task(task, &payload, options)?;
        let id = tx
            .enqueue_task(&new)
            .await
            .map_err(|source| EnqueueError::Store {
                task: task.name(),
                source,
            })?;
        self.enqueued(&new, id);
        Ok(id)
    }

    fn new_task<P: Payload>(
        &self,
        task: &Task<P>,
        payload: &P,
        options: EnqueueOptions,
    ) -> Result<NewTask, EnqueueError> {
        let name = task.name();
        let wired = match self.inner.wiring.tasks.get(name) {
            Some(wired) if wired.payload == TypeId::of::<P>() => wired,
            Some(wired) => {
                return Err(EnqueueError::PayloadMismatch {
                    task: name,
                    declared: wired.payload_name,
                    given: std::any::type_name::<P>(),
                });
            }
            None => return Err(EnqueueError::NotDeclared { task: name }),
        };
        let payload = serde_json::to_string(payload)
            .map_err(|source| EnqueueError::Payload { task: name, source })?;
        let run_at_ms = match options.run_at {
            Some(at) => at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            None => crate::id::now_ms(),
        };
        Ok(NewTask {
            task: name.to_owned(),
            queue: wired.queue.clone(),
            payload,
            max_attempts: wired.retry.max_attempts,
            run_at_ms,
            unique_key: options.unique_key,
            origin_dispatch: self.cause,
        })
    }

    fn enqueued(&self, task: &NewTask, id: Uuid) {
        debug!(
            task = task.task,
            task_id = %id,
            queue = task.queue,
            run_at_ms = task.run_at_ms,
            sender = %self.sender,
            cause = ?self.cause,
            "task enqueued"
        );
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
        dispatch::send_robust(&self.inner, self.sender, self.cause, signal, payload).await
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
                let context = Context::new(Arc::clone(&self.inner), Sender::Step(step.name))
                    .caused_by(self.cause);
                let guarded = Guard::new(step.call.call(context, data), slot.step_timeout)
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
