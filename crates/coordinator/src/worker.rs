//! The worker: runs durable tasks from the store.
//!
//! A [`Worker`] claims due tasks in batches, up to `[worker] concurrency` running plus
//! `[worker] prefetch` waiting for a slot, and runs each on a Tokio task of its own, isolated
//! like a handler: a panic is caught with its location, an attempt that outlives the task's
//! timeout is abandoned. While it holds tasks it renews their leases (every third of the lease),
//! then records the outcomes of those that finished, in one transaction, each fenced by its
//! lease:
//!
//! | the attempt | what is recorded |
//! | --- | --- |
//! | returned `Ok` | `succeeded`, with its summary |
//! | [`TaskError::Retry`], a panic, a timeout | `retrying` after the policy's backoff, or `dead` when no attempt is left |
//! | [`TaskError::RetryAfter`] | `retrying` after the given wait (still bounded by the attempts) |
//! | [`TaskError::Abort`], a payload that no longer reads, a task this binary does not know | `dead` at once |
//!
//! When the store is unreachable the worker logs a WARN and backs off (up to 5 s); the outcomes
//! of finished tasks are kept and recorded once it answers again, and nothing is run twice while
//! the worker holds the lease. When the shutdown future resolves it stops claiming, lets running
//! tasks finish within `[worker] shutdown_grace`, and gives the others back to the queue.
//!
//! Every attempt runs in a DEBUG `task` span (`task`, `task_id`, `attempt`, `origin_dispatch`).
//! A failure that will be retried logs a WARN; a dead task an ERROR with the whole error chain.
//! The task's [`TaskContext`] sends signals as [`Sender::Task`] with the task's origin dispatch
//! as their cause, so one event can be followed through handlers, tasks and the signals they send.
//!
//! ```
//! use coordinator::config::WorkerConfig;
//! use coordinator::prelude::*;
//! use coordinator::task::TaskState;
//! use coordinator::worker::Worker;
//! use coordinator::Coordinator;
//!
//! #[derive(Debug, Serialize, Deserialize, JsonSchema)]
//! pub struct Receipt { pub order: String }
//! static SEND_RECEIPT: Task<Receipt> = Task::new("shop.send_receipt", "Emails a receipt.");
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! # let dir = tempfile::tempdir().unwrap();
//! let store = coordinator_sqlite::connect(&format!("sqlite://{}/c.db", dir.path().display()), 4)
//!     .await
//!     .unwrap();
//! store.migrate(&[]).await.unwrap();
//! let shop = coordinator::testing::extension("shop", |ext| {
//!     ext.task(&SEND_RECEIPT, |_: TaskContext, r: Receipt| async move {
//!         Ok::<_, TaskError>(format!("sent for {}", r.order))
//!     });
//! });
//! let coordinator = Coordinator::builder().extension(shop).store(store.clone()).build().unwrap();
//! let id = coordinator
//!     .context("shop")
//!     .enqueue(&SEND_RECEIPT, Receipt { order: "EDX-1".into() })
//!     .await
//!     .unwrap();
//!
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let worker = Worker::new(coordinator, WorkerConfig::default());
//! let running = tokio::spawn(worker.run(async move { let _ = stopped.await; }));
//! while store.get_task(id).await.unwrap().unwrap().state != TaskState::Succeeded {
//!     tokio::time::sleep(std::time::Duration::from_millis(10)).await;
//! }
//! let _ = stop.send(());
//! running.await.unwrap();
//! # });
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{Instrument, Span, debug, debug_span, error, field, info, warn};
use uuid::Uuid;

use crate::config::{ConfigDuration, WorkerConfig};
use crate::context::{Context, Runtime};
use crate::coordinator::Coordinator;
use crate::dispatch::Sender;
use crate::guard::{Guard, Guarded};
use crate::id::{new_id, now_ms, random_unit};
use crate::store::{Store, StoreError};
use crate::task::{AttemptStatus, ClaimedTask, TaskContext, TaskError, TaskOutcome};
use crate::wiring::TaskKind;

/// Receives the end of every task attempt a worker records (for metrics).
///
/// It is called on the worker's loop: it must not block or wait.
pub trait TaskObserver: Send + Sync + 'static {
    /// Attempt `attempt` of a task named `task` on `queue` ended after `duration`. `status` is
    /// what was recorded: `succeeded`, `retrying`, `dead`, `released` (given back on shutdown)
    /// or `lost` (the outcome was discarded: the lease had been lost or the task cancelled).
    fn task_finished(
        &self,
        task: &str,
        queue: &str,
        status: &str,
        attempt: u32,
        duration: Duration,
    );
}

/// Runs durable tasks from the coordinator's store. See the [module docs](self).
pub struct Worker {
    coordinator: Coordinator,
    store: Store,
    config: WorkerConfig,
    id: String,
    observers: Vec<Arc<dyn TaskObserver>>,
    health: WorkerHealth,
}

/// How a running worker is doing, for readiness probes: shared with the worker, cheap to
/// clone and to read.
#[derive(Clone, Debug, Default)]
pub struct WorkerHealth(Arc<HealthState>);

#[derive(Debug, Default)]
struct HealthState {
    /// Since when (ms since the Unix epoch) the store has not answered the worker; 0 when it
    /// does.
    failing_since_ms: std::sync::atomic::AtomicU64,
    /// Since when outcomes have been waiting to be recorded; 0 when none waits.
    unrecorded_since_ms: std::sync::atomic::AtomicU64,
}

/// How long the store may fail the worker, or outcomes wait, before the worker is not ready.
pub const UNHEALTHY_AFTER: Duration = Duration::from_secs(10);

impl WorkerHealth {
    /// `Ok` while the worker reaches the store and records what it runs; otherwise what has
    /// gone wrong, and for how long (readiness answers 503 with it).
    pub fn check(&self) -> Result<(), String> {
        use std::sync::atomic::Ordering::Relaxed;
        let now = now_ms();
        let limit = u64::try_from(UNHEALTHY_AFTER.as_millis()).unwrap_or(u64::MAX);
        let since = |at: u64| {
            (at != 0)
                .then(|| now.saturating_sub(at))
                .filter(|d| *d >= limit)
        };
        if let Some(ms) = since(self.0.failing_since_ms.load(Relaxed)) {
            return Err(format!(
                "the task worker has not reached the store for {} s",
                ms / 1000
            ));
        }
        if let Some(ms) = since(self.0.unrecorded_since_ms.load(Relaxed)) {
            return Err(format!(
                "the task worker has not been able to record finished tasks for {} s",
                ms / 1000
            ));
        }
        Ok(())
    }

    fn answered(&self) {
        self.0
            .failing_since_ms
            .store(0, std::sync::atomic::Ordering::Relaxed);
    }

    fn failed(&self) {
        let _ = self.0.failing_since_ms.compare_exchange(
            0,
            now_ms(),
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// An outcome was recorded; `all` when none waits any more.
    fn recorded(&self, all: bool) {
        let at = if all { 0 } else { now_ms() };
        self.0
            .unrecorded_since_ms
            .store(at, std::sync::atomic::Ordering::Relaxed);
    }

    /// An outcome is waiting to be recorded.
    fn waiting(&self) {
        let _ = self.0.unrecorded_since_ms.compare_exchange(
            0,
            now_ms(),
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.id)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The longest wait between two tries while the store does not answer.
const MAX_STORE_BACKOFF: Duration = Duration::from_secs(5);
/// The first wait after the store failed to answer.
const FIRST_STORE_BACKOFF: Duration = Duration::from_millis(100);
/// After a task is enqueued in this process, how long the worker waits for others before it
/// claims (one claim for a burst of enqueues).
const ENQUEUE_COALESCE: Duration = Duration::from_millis(2);
/// The most outcomes recorded in one transaction.
const RECORD_BATCH: usize = 256;
/// How often a worker deletes the finished tasks and inbox entries past their retention (also
/// once when it starts).
const PURGE_EVERY: Duration = Duration::from_secs(3600);

impl Worker {
    /// A worker for `coordinator`'s tasks, on its store, configured by `config` (usually
    /// `coordinator.config().worker`). Its id, recorded as the lease owner of what it runs, is
    /// unique to this worker: host, process and a random part.
    ///
    /// # Panics
    /// If the coordinator has no store ([`CoordinatorBuilder::store`](crate::CoordinatorBuilder::store)).
    #[track_caller]
    pub fn new(coordinator: Coordinator, config: WorkerConfig) -> Self {
        let Some(store) = coordinator.store().cloned() else {
            panic!(
                "Worker::new: the coordinator has no store, so there are no tasks to run; build it \
                 with CoordinatorBuilder::store"
            )
        };
        let host = std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "worker".to_owned());
        let (random, _) = new_id();
        let id = format!(
            "{host}-{}-{}",
            std::process::id(),
            &random.simple().to_string()[24..]
        );
        Self {
            coordinator,
            store,
            config,
            id,
            observers: Vec::new(),
            health: WorkerHealth::default(),
        }
    }

    /// This worker's health, to check while it runs (readiness).
    pub fn health(&self) -> WorkerHealth {
        self.health.clone()
    }

    /// Reports this worker's health to `health` (made before the worker, for a server that
    /// answers readiness from the start).
    pub fn with_health(mut self, health: WorkerHealth) -> Self {
        self.health = health;
        self
    }

    /// Adds an observer of every recorded attempt (metrics).
    pub fn observe(mut self, observer: Arc<dyn TaskObserver>) -> Self {
        self.observers.push(observer);
        self
    }

    /// This worker's id: the lease owner recorded on the tasks it runs.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Runs tasks until `shutdown` resolves, then stops claiming, lets running tasks finish
    /// within `shutdown_grace`, gives the rest back to the queue, and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Worker {
            coordinator,
            store,
            config,
            id,
            observers,
            health,
        } = self;
        let runtime = Arc::clone(&coordinator.runtime);
        let concurrency = config.concurrency.max(1);
        // Tasks held at most: running, waiting for a slot, or waiting to be recorded.
        let capacity = concurrency + config.prefetch;
        let lease = config.lease.0.max(Duration::from_millis(30));
        let renew_every = lease / 3;
        let poll = config.poll_interval.0.max(Duration::from_millis(1));
        info!(
            worker = %id,
            concurrency,
            prefetch = config.prefetch,
            queues = ?config.queues,
            lease = %ConfigDuration(lease),
            "worker started"
        );

        let mut state = Loop {
            store: &store,
            id: &id,
            observers: &observers,
            held: HashMap::new(),
            waiting: VecDeque::new(),
            by_tokio_id: HashMap::new(),
            unrecorded: VecDeque::new(),
            backoff: None,
            store_ready_at: Instant::now(),
            health,
        };
        let mut running: JoinSet<TaskOutcome> = JoinSet::new();
        let mut next_claim = Instant::now();
        let mut renew_at = Instant::now() + renew_every;
        let mut grace_until: Option<Instant> = None;
        let mut shutdown = std::pin::pin!(shutdown);
        let purger = tokio::spawn(purge_past_retention(
            store.clone(),
            config.retention.0,
            config.inbox_retention.0,
        ));

        loop {
            // Start what waits for a slot, then record what finished (oldest first, while the
            // store answers): the tasks run while their predecessors' outcomes are written.
            // (Nothing waits once shutdown began: the waiting tasks were given back.)
            state.start_waiting(&runtime, &mut running, concurrency);
            state.record_pending().await;

            if let Some(deadline) = grace_until {
                if running.is_empty() && state.unrecorded.is_empty() {
                    break;
                }
                if Instant::now() >= deadline {
                    state.give_back(&mut running).await;
                    break;
                }
            }

            // Claim up to the capacity (held tasks include those waiting to be recorded), in
            // batches: at once when nothing waits for a slot, else once half the room is free.
            let now = Instant::now();
            let free = capacity.saturating_sub(state.held.len());
            let worth_it = state.waiting.is_empty() || free * 2 >= capacity;
            if grace_until.is_none()
                && free > 0
                && worth_it
                && now >= next_claim
                && now >= state.store_ready_at
            {
                match store.claim_tasks(&id, &config.queues, free, lease).await {
                    Ok(claimed) => {
                        state.store_answered();
                        if state.held.is_empty() {
                            // Fresh leases: the first renewal is due a third of a lease from now.
                            renew_at = Instant::now() + renew_every;
                        }
                        next_claim = if claimed.len() == free {
                            Instant::now()
                        } else {
                            Instant::now() + poll
                        };
                        for task in claimed {
                            state.claimed(task);
                        }
                        state.start_waiting(&runtime, &mut running, concurrency);
                    }
                    Err(e) => state.store_failed("claim tasks", &e),
                }
            }

            // Renew the leases of what is held, except those already lost.
            if Instant::now() >= renew_at {
                renew_at = Instant::now() + renew_every;
                if let Err(e) = state.renew(lease).await {
                    state.store_failed("renew task leases", &e);
                    renew_at =
                        Instant::now() + renew_every.min(state.backoff.unwrap_or(renew_every));
                }
            }

            // Sleep until something is due: a task finishing, a renewal, a claim, a retry of the
            // store, the end of the grace period, or the shutdown signal.
            let mut wake = Instant::now() + Duration::from_secs(3600);
            if !state.held.is_empty() {
                wake = wake.min(renew_at);
            }
            if grace_until.is_none() && state.held.len() < capacity && state.waiting.is_empty() {
                wake = wake.min(next_claim.max(state.store_ready_at));
            }
            if !state.unrecorded.is_empty() {
                wake = wake.min(state.store_ready_at);
            }
            if let Some(deadline) = grace_until {
                wake = wake.min(deadline);
            }
            tokio::select! {
                biased;
                () = &mut shutdown, if grace_until.is_none() => {
                    let grace = config.shutdown_grace.0;
                    info!(worker = %id, running = running.len(), grace = %ConfigDuration(grace),
                        "worker stopping: no more claims; waiting for running tasks");
                    grace_until = Some(Instant::now() + grace);
                    state.release_waiting().await;
                }
                Some(joined) = running.join_next_with_id(), if !running.is_empty() => {
                    state.joined(joined);
                    // Take every other attempt that has finished too: recorded in one go.
                    while let Some(joined) = running.try_join_next_with_id() {
                        state.joined(joined);
                    }
                }
                () = store.enqueued(), if grace_until.is_none() && state.held.len() < capacity => {
                    // A task was enqueued in this process: claim soon, gathering those that
                    // follow it closely into the same claim.
                    next_claim = next_claim.min(Instant::now() + ENQUEUE_COALESCE);
                }
                () = tokio::time::sleep_until(wake) => {}
            }
        }
        purger.abort();
        info!(worker = %id, "worker stopped");
    }
}

/// Deletes the finished tasks and the inbox entries past their retention (`[worker] retention`,
/// `inbox_retention`; zero keeps everything), now and every [`PURGE_EVERY`].
async fn purge_past_retention(store: Store, retention: Duration, inbox_retention: Duration) {
    let mut tick = tokio::time::interval(PURGE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let cutoff = |keep: Duration| {
        now_ms().saturating_sub(u64::try_from(keep.as_millis()).unwrap_or(u64::MAX))
    };
    loop {
        tick.tick().await;
        if !retention.is_zero() {
            match store.purge_finished_tasks(cutoff(retention)).await {
                Ok(0) => {}
                Ok(purged) => info!(purged, retention = %ConfigDuration(retention),
                    "deleted the succeeded and cancelled tasks past the retention"),
                Err(e) => warn!(error = %e,
                    "cannot delete the finished tasks past the retention; trying again in an hour"),
            }
        }
        if !inbox_retention.is_zero() {
            match store.purge_inbox(cutoff(inbox_retention)).await {
                Ok(0) => {}
                Ok(purged) => info!(purged, retention = %ConfigDuration(inbox_retention),
                    "forgot the inbox entries past the retention"),
                Err(e) => warn!(error = %e,
                    "cannot purge the inbox past the retention; trying again in an hour"),
            }
        }
    }
}

/// Runs one claimed attempt, isolated, and decides what to record.
pub(crate) async fn run_attempt(runtime: &Arc<Runtime>, claimed: &ClaimedTask) -> TaskOutcome {
    let Some(wired) = runtime.wiring.tasks.get(claimed.task.as_str()) else {
        return TaskOutcome::Dead {
            status: AttemptStatus::Error,
            chain: vec![format!(
                "task \"{}\" is unknown to this worker: no enabled extension of this binary \
                 declares it; run a binary with the extension that declares it enabled, then \
                 retry the task",
                claimed.task
            )],
        };
    };
    // A delivery runs its handler, which sends as itself; a task sends as the task.
    let sender = match wired.kind {
        TaskKind::Task => Sender::Task(wired.name),
        TaskKind::Delivery => Sender::Handler(wired.name),
    };
    let context = TaskContext {
        id: claimed.id,
        attempt: claimed.attempt,
        max_attempts: claimed.max_attempts,
        task: wired.name,
        context: Context::new(Arc::clone(runtime), sender, wired.extension)
            .caused_by(claimed.origin_dispatch),
    };
    let call = Arc::clone(&wired.call);
    let payload = claimed.payload.clone();
    // The call itself (which reads the payload) happens on the first poll, inside the guard.
    let attempt = Box::pin(async move {
        match call.call(context, &payload) {
            Ok(fut) => Ok(fut.await),
            Err(unreadable) => Err(unreadable),
        }
    });
    let retry = |status, chain: Vec<String>, wait: Option<Duration>| {
        if claimed.attempt >= claimed.max_attempts {
            return TaskOutcome::Dead { status, chain };
        }
        let wait = wait.unwrap_or_else(|| wired.retry.backoff(claimed.attempt, random_unit()));
        TaskOutcome::Retry {
            at_ms: now_ms().saturating_add(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)),
            status,
            chain,
        }
    };
    match Guard::new(attempt, wired.timeout).await {
        Guarded::Finished(Ok(Ok(summary))) => TaskOutcome::Succeeded(summary.into_string()),
        Guarded::Finished(Ok(Err(TaskError::Retry(e)))) => {
            retry(AttemptStatus::Error, e.chain(), None)
        }
        Guarded::Finished(Ok(Err(TaskError::RetryAfter(after, e)))) => {
            retry(AttemptStatus::Error, e.chain(), Some(after))
        }
        Guarded::Finished(Ok(Err(TaskError::Abort(e)))) => TaskOutcome::Dead {
            status: AttemptStatus::Error,
            chain: e.chain(),
        },
        Guarded::Finished(Err(unreadable)) => TaskOutcome::Dead {
            status: AttemptStatus::Error,
            chain: vec![format!(
                "{unreadable}; the payload was stored by a version with another payload type: \
                 enqueue the task again with a valid payload"
            )],
        },
        Guarded::Panicked { message, location } => retry(
            AttemptStatus::Panicked,
            vec![format!(
                "panicked at {}: {message}",
                location.as_deref().unwrap_or("an unknown location")
            )],
            None,
        ),
        Guarded::TimedOut => retry(
            AttemptStatus::TimedOut,
            vec![format!(
                "timed out after {} and was abandoned; raise [{}.\"{}\"] timeout if it needs \
                 longer",
                ConfigDuration(wired.timeout),
                match wired.kind {
                    TaskKind::Task => "tasks",
                    TaskKind::Delivery => "handlers",
                },
                wired.name
            )],
            None,
        ),
    }
}

/// Records an attempt's outcome, fenced by the lease. `Ok(false)`: the lease was lost or the
/// task cancelled, and the outcome was discarded.
pub(crate) async fn record(
    store: &Store,
    worker_id: &str,
    task: &ClaimedTask,
    outcome: &TaskOutcome,
) -> Result<bool, StoreError> {
    store
        .record_outcome(task.id, worker_id, task.attempt, outcome)
        .await
}

/// Logs a recorded outcome (in the task's span) and returns the status observers get.
pub(crate) fn log_recorded(
    task: &ClaimedTask,
    outcome: &TaskOutcome,
    applied: bool,
    duration: Duration,
) -> &'static str {
    let duration_us = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
    let (name, id, attempt) = (task.task.as_str(), task.id, task.attempt);
    if !applied {
        warn!(task = name, task_id = %id, attempt, duration_us,
            outcome = outcome.state().as_str(),
            "task outcome discarded: the task was cancelled, or its lease was lost and another \
             worker claimed it");
        return "lost";
    }
    match outcome {
        TaskOutcome::Succeeded(result) => {
            debug!(task = name, task_id = %id, attempt, duration_us, result = result.as_deref(),
                "task succeeded");
        }
        TaskOutcome::Retry {
            at_ms,
            status,
            chain,
        } => {
            let retry_in_ms = at_ms.saturating_sub(now_ms());
            warn!(task = name, task_id = %id, attempt, max_attempts = task.max_attempts,
                duration_us, status = %status, retry_in_ms, error = %chain.join(": "),
                "task attempt failed; it will be retried");
        }
        TaskOutcome::Dead { status, chain } => {
            error!(task = name, task_id = %id, attempt, max_attempts = task.max_attempts,
                duration_us, status = %status, error = %chain.join(": "),
                origin_dispatch = ?task.origin_dispatch,
                "task is dead: no more attempts; retry it once the cause is fixed");
        }
    }
    outcome.state().as_str()
}

/// The span one attempt runs in.
pub(crate) fn task_span(task: &ClaimedTask) -> Span {
    let span = debug_span!("task", task = task.task.as_str(), task_id = %task.id,
        attempt = task.attempt, origin_dispatch = field::Empty);
    if let Some(origin) = task.origin_dispatch {
        span.record("origin_dispatch", field::display(origin));
    }
    span
}

/// A task whose lease this worker holds: running, or finished and waiting to be recorded.
struct Held {
    task: ClaimedTask,
    started: Instant,
    span: Span,
    /// The lease is gone (cancelled, or claimed by another worker): no more renewals.
    lost: bool,
}

/// A finished attempt waiting to be recorded.
struct Unrecorded {
    id: Uuid,
    outcome: TaskOutcome,
    duration: Duration,
}

/// The worker loop's state.
struct Loop<'a> {
    store: &'a Store,
    id: &'a str,
    observers: &'a [Arc<dyn TaskObserver>],
    held: HashMap<Uuid, Held>,
    /// Held tasks claimed ahead, waiting for a slot, oldest first.
    waiting: VecDeque<Uuid>,
    by_tokio_id: HashMap<tokio::task::Id, Uuid>,
    unrecorded: VecDeque<Unrecorded>,
    /// The current wait after the store failed, if it is failing.
    backoff: Option<Duration>,
    /// No store call before this.
    store_ready_at: Instant,
    health: WorkerHealth,
}

impl Loop<'_> {
    /// Takes a claimed task: it waits for a slot ([`Loop::start_waiting`]).
    fn claimed(&mut self, task: ClaimedTask) {
        // Our own lease expired (the store was out of reach for longer than the lease) and we
        // claimed the task again while its first run goes on (or waits): that run now works
        // for the new attempt, rather than running the task twice.
        if let Some(held) = self.held.get_mut(&task.id) {
            held.span.in_scope(|| {
                warn!(task = task.task.as_str(), task_id = %task.id, attempt = task.attempt,
                    "claimed again a task this worker still holds (its lease had expired); the \
                     run in progress continues as the new attempt");
            });
            held.span = task_span(&task);
            held.task = task;
            held.lost = false;
            return;
        }
        self.waiting.push_back(task.id);
        self.held.insert(
            task.id,
            Held {
                span: task_span(&task),
                task,
                started: Instant::now(),
                lost: false,
            },
        );
    }

    /// Starts waiting tasks while fewer than `concurrency` run.
    fn start_waiting(
        &mut self,
        runtime: &Arc<Runtime>,
        running: &mut JoinSet<TaskOutcome>,
        concurrency: usize,
    ) {
        while running.len() < concurrency {
            let Some(id) = self.waiting.pop_front() else {
                return;
            };
            let Some(held) = self.held.get_mut(&id) else {
                continue;
            };
            held.started = Instant::now();
            let (runtime, claimed) = (Arc::clone(runtime), held.task.clone());
            let handle = running.spawn(
                async move { run_attempt(&runtime, &claimed).await }.instrument(held.span.clone()),
            );
            self.by_tokio_id.insert(handle.id(), id);
        }
    }

    /// On shutdown: gives the tasks that wait for a slot back to the queue at once.
    async fn release_waiting(&mut self) {
        let ids: Vec<Uuid> = self.waiting.drain(..).collect();
        if ids.is_empty() {
            return;
        }
        match self.store.release_tasks(self.id, &ids).await {
            Ok(n) => info!(worker = %self.id, released = n,
                "gave back the tasks claimed ahead that had not started"),
            Err(e) => warn!(worker = %self.id, error = %e, tasks = ids.len(),
                "could not give back the tasks claimed ahead: another worker runs them once \
                 their leases expire"),
        }
        for id in &ids {
            if let Some(held) = self.held.remove(id) {
                self.observe(&held.task, "released", Duration::ZERO);
            }
        }
    }

    fn joined(&mut self, joined: Result<(tokio::task::Id, TaskOutcome), tokio::task::JoinError>) {
        let (tokio_id, outcome) = match joined {
            Ok((tokio_id, outcome)) => (tokio_id, outcome),
            // The guard catches the task's own panics; this is the runner failing around it.
            Err(e) => {
                let outcome = TaskOutcome::Retry {
                    at_ms: now_ms(),
                    status: AttemptStatus::Panicked,
                    chain: vec![format!("the worker's runner of this attempt failed: {e}")],
                };
                (e.id(), outcome)
            }
        };
        let Some(id) = self.by_tokio_id.remove(&tokio_id) else {
            return;
        };
        let Some(held) = self.held.get(&id) else {
            return;
        };
        self.unrecorded.push_back(Unrecorded {
            id,
            outcome,
            duration: held.started.elapsed(),
        });
        self.health.waiting();
    }

    /// Records what finished, oldest first, in batches of one transaction each, while the
    /// store answers.
    async fn record_pending(&mut self) {
        while !self.unrecorded.is_empty() && Instant::now() >= self.store_ready_at {
            // Outcomes of tasks no longer held (given back at shutdown) are dropped.
            let held = &self.held;
            self.unrecorded.retain(|u| held.contains_key(&u.id));
            let n = self.unrecorded.len().min(RECORD_BATCH);
            if n == 0 {
                return;
            }
            let batch: Vec<(Uuid, u32, &TaskOutcome)> = self
                .unrecorded
                .iter()
                .take(n)
                .map(|u| (u.id, self.held[&u.id].task.attempt, &u.outcome))
                .collect();
            match self.store.record_outcomes(self.id, &batch).await {
                Ok(applied) => {
                    self.store_answered();
                    for applied in applied {
                        self.recorded(applied);
                    }
                }
                // The database refused one of them for what it holds: each on its own, so
                // that the others are recorded and only that one is dealt with.
                Err(e) if e.is_rejected() => {
                    self.store_answered();
                    for _ in 0..n {
                        if !self.record_alone().await {
                            return;
                        }
                    }
                }
                Err(e) => {
                    self.store_failed("record task outcomes", &e);
                    return;
                }
            }
        }
    }

    /// The oldest unrecorded outcome was recorded (`applied`: it changed the task).
    fn recorded(&mut self, applied: bool) {
        let done = self.unrecorded.pop_front().expect("recorded in order");
        let held = self.held.remove(&done.id).expect("held while unrecorded");
        let status = held
            .span
            .in_scope(|| log_recorded(&held.task, &done.outcome, applied, done.duration));
        self.observe(&held.task, status, done.duration);
        self.health.recorded(self.unrecorded.is_empty());
    }

    /// Records the oldest unrecorded outcome on its own. One the database refuses is recorded
    /// as the task's death, with the database's reason in its chain (the store is asked once
    /// more); if even that is refused, it is dropped and logged: the task's lease expires and
    /// its attempts run out like a lost worker's, while every other outcome goes on being
    /// recorded. Returns `false` when the store did not answer (try later).
    async fn record_alone(&mut self) -> bool {
        let Some(front) = self.unrecorded.front() else {
            return true;
        };
        let (id, attempt) = (front.id, self.held[&front.id].task.attempt);
        let first = self
            .store
            .record_outcome(id, self.id, attempt, &front.outcome)
            .await;
        let refused = match first {
            Ok(applied) => {
                self.recorded(applied);
                return true;
            }
            Err(e) if e.is_rejected() => e,
            Err(e) => {
                self.store_failed("record task outcomes", &e);
                return false;
            }
        };
        let mut chain = front.outcome.chain().to_vec();
        chain.push(format!(
            "the attempt's outcome could not be stored, so the task is dead: {refused}"
        ));
        let dead = TaskOutcome::Dead {
            status: front.outcome.attempt_status(),
            chain,
        };
        match self.store.record_outcome(id, self.id, attempt, &dead).await {
            Ok(applied) => {
                self.unrecorded.front_mut().expect("front above").outcome = dead;
                self.recorded(applied);
                true
            }
            Err(e) if e.is_rejected() => {
                let done = self.unrecorded.pop_front().expect("front above");
                if let Some(held) = self.held.remove(&done.id) {
                    held.span.in_scope(|| {
                        error!(task = held.task.task.as_str(), task_id = %done.id, attempt,
                            error = %e, "task outcome cannot be stored in any form; it is \
                            dropped, and the task runs again once its lease expires (until its \
                            attempts run out)");
                    });
                    self.observe(&held.task, "lost", done.duration);
                }
                self.health.recorded(self.unrecorded.is_empty());
                true
            }
            Err(e) => {
                self.store_failed("record task outcomes", &e);
                false
            }
        }
    }

    async fn renew(&mut self, lease: Duration) -> Result<(), StoreError> {
        let ids: Vec<Uuid> = self
            .held
            .iter()
            .filter(|(_, h)| !h.lost)
            .map(|(id, _)| *id)
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let renewed = self.store.renew_leases(self.id, &ids, lease).await?;
        self.store_answered();
        if renewed.len() < ids.len() {
            for id in ids.iter().filter(|id| !renewed.contains(id)) {
                if let Some(held) = self.held.get_mut(id) {
                    held.lost = true;
                    held.span.in_scope(|| {
                        warn!(task = held.task.task.as_str(), task_id = %id,
                            attempt = held.task.attempt,
                            "lost the lease of a running task (it was cancelled, or the lease \
                             expired and another worker claimed it); its outcome will be \
                             discarded");
                    });
                }
            }
        }
        Ok(())
    }

    /// At the end of the grace period: abandons what still runs and gives it back to the
    /// queue; makes a last try at recording what finished.
    async fn give_back(&mut self, running: &mut JoinSet<TaskOutcome>) {
        running.abort_all();
        // An attempt may have finished just before the abort: its outcome is kept.
        while let Some(joined) = running.join_next_with_id().await {
            if !matches!(&joined, Err(e) if e.is_cancelled()) {
                self.joined(joined);
            }
        }
        let finished: Vec<Uuid> = self.unrecorded.iter().map(|u| u.id).collect();
        let unfinished: Vec<Uuid> = self
            .held
            .keys()
            .filter(|id| !finished.contains(id))
            .copied()
            .collect();
        if !unfinished.is_empty() {
            let mut released = None;
            for wait in [
                Duration::ZERO,
                Duration::from_millis(200),
                Duration::from_secs(1),
            ] {
                tokio::time::sleep(wait).await;
                match self.store.release_tasks(self.id, &unfinished).await {
                    Ok(n) => {
                        released = Some(n);
                        break;
                    }
                    Err(e) => warn!(worker = %self.id, error = %e,
                        "could not give unfinished tasks back to the queue; trying again"),
                }
            }
            match released {
                Some(n) => info!(worker = %self.id, released = n,
                    "gave back the tasks still running at the end of the shutdown grace period"),
                None => warn!(worker = %self.id, tasks = unfinished.len(),
                    "could not give back the tasks still running at shutdown: another worker \
                     runs them once their leases expire"),
            }
            for id in &unfinished {
                if let Some(held) = self.held.remove(id) {
                    self.observe(&held.task, "released", held.started.elapsed());
                }
            }
        }
        self.store_ready_at = Instant::now();
        self.record_pending().await;
        if !self.unrecorded.is_empty() {
            warn!(worker = %self.id, tasks = self.unrecorded.len(),
                "stopping with task outcomes the store did not take: those tasks run again once \
                 their leases expire (tasks must be idempotent)");
        }
    }

    fn observe(&self, task: &ClaimedTask, status: &str, duration: Duration) {
        for observer in self.observers {
            observer.task_finished(&task.task, &task.queue, status, task.attempt, duration);
        }
    }

    fn store_answered(&mut self) {
        self.health.answered();
        if self.backoff.take().is_some() {
            info!(worker = %self.id, "the store answers again");
        }
    }

    fn store_failed(&mut self, action: &str, e: &StoreError) {
        self.health.failed();
        let wait = self
            .backoff
            .map_or(FIRST_STORE_BACKOFF, |b| (b * 2).min(MAX_STORE_BACKOFF));
        self.backoff = Some(wait);
        self.store_ready_at = Instant::now() + wait;
        warn!(worker = %self.id, error = %e, retry_in_ms = wait.as_millis() as u64,
            "worker could not {action}; backing off (finished outcomes are kept and recorded \
             when the store answers)");
    }
}
