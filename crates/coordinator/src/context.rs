//! The [`Context`]: who is acting, within a running coordinator, and the one handle through
//! which code sends signals, runs filters, enqueues tasks and reaches its extension's state.
//!
//! Each operation is carried out beside the concept it belongs to: sending in
//! [`dispatch`](crate::dispatch), filters in [`filter`](crate::filter) (`run.rs`), enqueueing in
//! [`task`](crate::task) (`enqueue.rs`). The [`Runtime`] they share is built by
//! [`CoordinatorBuilder`](crate::CoordinatorBuilder).

use std::fmt;
use std::sync::Arc;

use uuid::Uuid;

use crate::config::Config;
use crate::dispatch::{self, DispatchObserver, DispatchReport, SendError, Sender};
use crate::extension::Declarations;
use crate::filter::{self, Filter, FilterError, FilterRun};
use crate::http::route::Mounts;
use crate::payload::Payload;
use crate::signal::Signal;
use crate::store::{Store, StoreTx};
use crate::task::{self, EnqueueError, EnqueueOptions, Received, Task};
use crate::wiring::{Wiring, WiringWarning};

/// A running coordinator: the extensions' declarations, the compiled wiring and what runs it.
/// Shared (behind an `Arc`) by the [`Coordinator`](crate::Coordinator) handle and every
/// [`Context`].
pub(crate) struct Runtime {
    pub(crate) store: Option<Store>,
    pub(crate) observers: Box<[Arc<dyn DispatchObserver>]>,
    pub(crate) decls: Declarations,
    pub(crate) wiring: Wiring,
    pub(crate) config: Config,
    pub(crate) warnings: Vec<WiringWarning>,
    pub(crate) mounts: Mounts,
}

/// No extension: a context made for a name no extension has (it reaches no state).
pub(crate) const NO_EXTENSION: usize = usize::MAX;

/// Who is acting, within a coordinator: the handle through which code sends signals, runs
/// filters and enqueues tasks. The sender is known from the context, never spelt by the caller,
/// and so is the cause: the dispatch that led here, which tasks enqueued from this context
/// record as their origin.
#[derive(Clone)]
pub struct Context {
    pub(crate) runtime: Arc<Runtime>,
    sender: Sender,
    cause: Option<Uuid>,
    /// The index of the acting extension in the declarations, for its state.
    extension: usize,
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
    pub(crate) fn new(runtime: Arc<Runtime>, sender: Sender, extension: usize) -> Self {
        Self {
            runtime,
            sender,
            cause: None,
            extension,
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

    /// A handle on the whole coordinator.
    pub fn coordinator(&self) -> crate::coordinator::Coordinator {
        crate::coordinator::Coordinator {
            runtime: Arc::clone(&self.runtime),
        }
    }

    /// A clone of the state of type `T` that the acting extension registered with
    /// [`ExtensionBuilder::state`](crate::ExtensionBuilder::state); `None` if it registered
    /// none. Functions take it as a [`State<T>`](crate::State) argument instead.
    pub fn state<T: Clone + 'static>(&self) -> Option<T> {
        self.runtime
            .decls
            .extensions
            .get(self.extension)
            .and_then(|e| e.state.get::<T>())
            .cloned()
    }

    /// Sends `signal` to every handler the configuration connects to it, and returns how each
    /// run ended: no handler's failure, panic or slowness stops the others, and none is hidden
    /// from the report.
    ///
    /// A durable signal runs no handler now: its dispatch and one delivery per handler are
    /// stored in one transaction, and the report's runs are `queued` (or each an error naming
    /// why nothing could be stored). A route answers 2xx only when
    /// [`DispatchReport::accepted`] says the work is done or stored.
    pub async fn send_robust<P: Payload>(&self, signal: &Signal<P>, payload: P) -> DispatchReport {
        dispatch::send_robust(&self.runtime, self.sender, self.cause, signal, payload).await
    }

    /// Sends the durable `signal` within the transaction `tx`: the dispatch and one delivery
    /// per connected handler are stored if and only if `tx` commits, together with the
    /// caller's own writes in it (an inbox entry, say). No handler runs now: once committed,
    /// the workers run each delivery, retried on its own. The report's runs are `queued`, with
    /// their delivery task ids.
    ///
    /// A signal that is not durable is refused ([`SendError::NotDurable`]): its handlers would
    /// run before the transaction commits.
    ///
    /// ```
    /// use coordinator::prelude::*;
    /// use coordinator::testing::TestCoordinator;
    ///
    /// #[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
    /// pub struct Paid { pub order: String }
    /// static PAID: Signal<Paid> = Signal::new("shop.paid", "An order was paid.").durable();
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let shop = coordinator::testing::extension("shop", |ext| {
    ///     ext.signal(&PAID).handler("shop.ship", "Ships it.", |e: Event<Paid>| async move {
    ///         Ok::<_, HandlerError>(format!("shipped {}", e.order))
    ///     });
    /// });
    /// let t = TestCoordinator::builder()
    ///     .extension(shop)
    ///     .wiring("[signals]\n\"shop.paid\" = [\"shop.ship\"]\n")
    ///     .with_store(coordinator_sqlite::testing::temporary())
    ///     .build();
    /// let ctx = t.context();
    /// let mut tx = t.store().begin().await.unwrap();
    /// assert!(tx.record_intake("psp", "evt_1").await.unwrap());
    /// let report = ctx.send_in(&mut tx, &PAID, Paid { order: "EDX-1".into() }).await.unwrap();
    /// assert_eq!(report.handlers[0].outcome.status(), "queued");
    /// tx.commit().await.unwrap();
    /// let runs = t.run_tasks().await;
    /// assert_eq!((runs[0].task.as_str(), runs[0].status), ("deliver:shop.ship", "succeeded"));
    /// # });
    /// ```
    pub async fn send_in<P: Payload>(
        &self,
        tx: &mut StoreTx,
        signal: &Signal<P>,
        payload: P,
    ) -> Result<DispatchReport, SendError> {
        let report = dispatch::durable::send_in(self, tx, signal, payload).await?;
        for observer in &self.runtime.observers {
            observer.dispatched(&report);
        }
        Ok(report)
    }

    /// Sends the durable `signal` once per external event: records `external_id` from
    /// `source` (a webhook's event id, an order number) in the inbox and stores the dispatch
    /// and its deliveries, in one transaction, so that the work is durable when this returns.
    /// `None` when the event was received before: nothing is sent again.
    ///
    /// This is [`send_in`](Context::send_in) with the inbox, in one call that the store can
    /// write together with concurrent ones (on SQLite, in one commit).
    ///
    /// ```
    /// use coordinator::prelude::*;
    /// use coordinator::testing::TestCoordinator;
    ///
    /// #[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
    /// pub struct Paid { pub order: String }
    /// static PAID: Signal<Paid> = Signal::new("shop.paid", "An order was paid.").durable();
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let shop = coordinator::testing::extension("shop", |ext| {
    ///     ext.signal(&PAID).handler("shop.ship", "Ships it.", |e: Event<Paid>| async move {
    ///         Ok::<_, HandlerError>(format!("shipped {}", e.order))
    ///     });
    /// });
    /// let t = TestCoordinator::builder()
    ///     .extension(shop)
    ///     .wiring("[signals]\n\"shop.paid\" = [\"shop.ship\"]\n")
    ///     .with_store(coordinator_sqlite::testing::temporary())
    ///     .build();
    /// let ctx = t.context();
    /// let paid = || Paid { order: "EDX-1".into() };
    /// assert!(ctx.send_once("shop", "EDX-1", &PAID, paid()).await.unwrap().is_some());
    /// assert!(ctx.send_once("shop", "EDX-1", &PAID, paid()).await.unwrap().is_none());
    /// assert_eq!(t.run_tasks().await.len(), 1);
    /// # });
    /// ```
    pub async fn send_once<P: Payload>(
        &self,
        source: &str,
        external_id: &str,
        signal: &Signal<P>,
        payload: P,
    ) -> Result<Option<DispatchReport>, SendError> {
        let report =
            dispatch::durable::send_once(self, source, external_id, signal, payload).await?;
        if let Some(report) = &report {
            for observer in &self.runtime.observers {
                observer.dispatched(report);
            }
        }
        Ok(report)
    }

    /// Whether `signal` is durable in this coordinator's wiring (declared so, or made so by
    /// `[signals."<name>"] durable = true`): then it can be sent with
    /// [`send_in`](Context::send_in), and [`send_robust`](Context::send_robust) stores its
    /// deliveries instead of running its handlers.
    pub fn is_durable<P: Payload>(&self, signal: &Signal<P>) -> bool {
        self.runtime
            .wiring
            .signals
            .get(signal.name())
            .is_some_and(|slot| slot.durable)
    }

    /// Runs `filter`'s pipeline on `data`: the final data, or an error naming the step that failed.
    pub async fn run_filter<D: Payload>(
        &self,
        filter: &Filter<D>,
        data: D,
    ) -> Result<FilterRun<D>, FilterError> {
        filter::run::run_filter(self, filter, data).await
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
    /// let t = TestCoordinator::builder()
    ///     .extension(shop)
    ///     .with_store(coordinator_sqlite::testing::temporary())
    ///     .build();
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
        task::enqueue::enqueue(self, task, payload, options).await
    }

    /// Enqueues `task` within the transaction `tx`: the task exists if and only if `tx` commits.
    /// Record the incoming event ([`StoreTx::record_intake`]) and enqueue its work in one
    /// transaction, and a redelivered event cannot enqueue its work twice (or, in one call:
    /// [`Context::receive_once`]).
    pub async fn enqueue_in<P: Payload>(
        &self,
        tx: &mut StoreTx,
        task: &Task<P>,
        payload: P,
        options: EnqueueOptions,
    ) -> Result<Uuid, EnqueueError> {
        task::enqueue::enqueue_in(self, tx, task, payload, options).await
    }

    /// Receives the external event `external_id` from `source` (a webhook's event id) once:
    /// records it in the inbox and enqueues `task` with `payload` in one transaction, so that
    /// its work is durable when this returns. A redelivery of an event already received
    /// enqueues nothing and answers [`Received::Again`].
    ///
    /// ```
    /// use coordinator::prelude::*;
    /// use coordinator::testing::TestCoordinator;
    ///
    /// #[derive(Debug, Serialize, Deserialize, JsonSchema)]
    /// pub struct Refunded { pub charge: String }
    /// static RECORD_REFUND: Task<Refunded> = Task::new("shop.record_refund", "Records a refund.");
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let shop = coordinator::testing::extension("shop", |ext| {
    ///     ext.task(&RECORD_REFUND, |_: TaskContext, _: Refunded| async { Ok::<_, TaskError>(()) });
    /// });
    /// let t = TestCoordinator::builder()
    ///     .extension(shop)
    ///     .with_store(coordinator_sqlite::testing::temporary())
    ///     .build();
    /// let ctx = t.context();
    /// let event = || Refunded { charge: "ch_1".into() };
    /// let first = ctx.receive_once("stripe", "evt_1", &RECORD_REFUND, event()).await.unwrap();
    /// assert!(matches!(first, Received::First(_)));
    /// let again = ctx.receive_once("stripe", "evt_1", &RECORD_REFUND, event()).await.unwrap();
    /// assert_eq!(again, Received::Again);
    /// # });
    /// ```
    pub async fn receive_once<P: Payload>(
        &self,
        source: &str,
        external_id: &str,
        task: &Task<P>,
        payload: P,
    ) -> Result<Received, EnqueueError> {
        task::enqueue::receive_once(self, source, external_id, task, payload).await
    }
}
