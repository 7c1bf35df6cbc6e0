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
//! | [`TaskError::Postpone`] | `retrying` after the given wait, the attempt `released` and not counted |
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
use tracing::{info, warn};

use crate::config::{ConfigDuration, WorkerConfig};
use crate::coordinator::Coordinator;
use crate::id::{new_id, now_ms};
use crate::store::Store;
use crate::task::TaskOutcome;

mod attempt;
mod health;
mod held;

pub(crate) use attempt::{log_recorded, record, run_attempt, task_span};
pub use health::{UNHEALTHY_AFTER, WorkerHealth};
use held::Loop;

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
                match state
                    .call(store.claim_tasks(&id, &config.queues, free, lease))
                    .await
                {
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
