//! What the framework needs from a database, as traits: the seam between the core and the
//! storage backends.
//!
//! A backend crate (`coordinator-sqlite`, `coordinator-postgres`) implements [`Backend`] (with
//! its parts [`TaskQueue`], [`DispatchLogStore`] and [`Inbox`]) and [`Transaction`]; the core
//! reaches it only through a [`Store`](super::Store), never by name. Calls go through trait
//! objects: each costs one boxed future, next to a database round trip of tens of
//! microseconds at least (see `docs/decisions/0010-storage-behind-traits.md`).

use std::any::Any;
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use super::StoreError;
use super::migrate::{AppliedMigration, Planned, Recorded};
use crate::dispatch_log::record::{DispatchPage, DispatchQuery, DurableDispatch, StoredDispatch};
use crate::migration::Migration;
use crate::task::record::{
    ClaimedTask, NewTask, StoredTask, TaskCount, TaskOutcome, TaskPage, TaskQuery,
};

/// The durable task queue: enqueue, claim under leases, record outcomes, operate.
///
/// The contract every backend keeps (the storage suite in `crates/coordinator/tests/tasks.rs`
/// checks it on each): concurrent claimers never get the same task; recording is fenced by
/// (worker, attempt); a unique key is held by at most one pending task; every attempt is
/// recorded with its outcome.
#[async_trait]
pub trait TaskQueue: Send + Sync {
    /// Adds a task and returns its id; with a `unique_key` held by a pending task of the same
    /// name, returns that task's id instead. Committed when it returns.
    async fn enqueue_task(&self, task: &NewTask) -> Result<Uuid, StoreError>;

    /// Stores a durable dispatch in one transaction: its intake key in the inbox (if it has
    /// one), each delivery enqueued as a task with the id given, and the dispatch in the log.
    /// Committed when it returns; on an error nothing of it is stored. `false`: the intake key
    /// was recorded before, and nothing was stored.
    async fn enqueue_dispatch(&self, dispatch: &DurableDispatch) -> Result<bool, StoreError>;

    /// Claims up to `limit` due tasks of `queues` (every queue when empty) for `worker`, each
    /// `running` under a lease until now + `lease`, its attempt counted and recorded. Running
    /// tasks whose lease expired are claimed again (their attempt recorded as `lost`), or made
    /// dead when it was their last attempt.
    async fn claim_tasks(
        &self,
        worker: &str,
        queues: &[String],
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<ClaimedTask>, StoreError>;

    /// Extends `worker`'s leases on `ids` to now + `lease`; returns the ids it still held.
    async fn renew_leases(
        &self,
        worker: &str,
        ids: &[Uuid],
        lease: Duration,
    ) -> Result<Vec<Uuid>, StoreError>;

    /// Records the outcomes `(task id, attempt, outcome)` of attempts `worker` ran, in one
    /// transaction, each fenced by (worker, attempt); returns, for each, whether the task was
    /// changed.
    async fn record_outcomes(
        &self,
        worker: &str,
        outcomes: &[(Uuid, u32, &TaskOutcome)],
    ) -> Result<Vec<bool>, StoreError>;

    /// Gives back the tasks `worker` holds among `ids`: queued again at once, the attempt
    /// recorded as `released` and not counted. Returns how many.
    async fn release_tasks(&self, worker: &str, ids: &[Uuid]) -> Result<u64, StoreError>;

    /// Queues a dead or cancelled task again with its attempts reset.
    async fn retry_task(&self, id: Uuid) -> Result<(), StoreError>;

    /// Cancels a queued, retrying or running task.
    async fn cancel_task(&self, id: Uuid) -> Result<(), StoreError>;

    /// One task with its attempts.
    async fn get_task(&self, id: Uuid) -> Result<Option<StoredTask>, StoreError>;

    /// One page of tasks, newest first.
    async fn list_tasks(&self, query: &TaskQuery) -> Result<TaskPage, StoreError>;

    /// How many tasks each queue has in each state.
    async fn task_counts(&self) -> Result<Vec<TaskCount>, StoreError>;

    /// Deletes the succeeded and cancelled tasks finished before `finished_before_ms`.
    async fn purge_finished_tasks(&self, finished_before_ms: u64) -> Result<u64, StoreError>;
}

/// The dispatch log: where dispatch reports are written in batches, and read back.
#[async_trait]
pub trait DispatchLogStore: Send + Sync {
    /// Stores a batch in one transaction; a dispatch already stored is left as it is.
    async fn insert_dispatches(&self, batch: &[StoredDispatch]) -> Result<(), StoreError>;

    /// One page of dispatches matching `query`, newest first.
    async fn list_dispatches(&self, query: &DispatchQuery) -> Result<DispatchPage, StoreError>;

    /// One dispatch by id.
    async fn get_dispatch(&self, id: Uuid) -> Result<Option<StoredDispatch>, StoreError>;

    /// Deletes the dispatches sent before `older_than_ms`; returns how many.
    async fn purge_dispatches(&self, older_than_ms: u64) -> Result<u64, StoreError>;
}

/// The inbox of received event ids (written in a [`Transaction`] with
/// [`Transaction::record_intake`]).
#[async_trait]
pub trait Inbox: Send + Sync {
    /// Forgets the entries received before `received_before_ms`; returns how many.
    async fn purge_inbox(&self, received_before_ms: u64) -> Result<u64, StoreError>;
}

/// A transaction on a backend: record an incoming event and enqueue its work together.
///
/// Dropping it without [`commit`](Transaction::commit) rolls it back.
#[async_trait]
pub trait Transaction: Send {
    /// Enqueues a task as part of this transaction (see [`TaskQueue::enqueue_task`]).
    async fn enqueue_task(&mut self, task: &NewTask) -> Result<Uuid, StoreError>;

    /// Stores a durable dispatch as part of this transaction (see
    /// [`TaskQueue::enqueue_dispatch`]).
    async fn enqueue_dispatch(&mut self, dispatch: &DurableDispatch) -> Result<bool, StoreError>;

    /// Records that the event `external_id` from `source` was received: `true` the first
    /// time, `false` when it already was (concurrent transactions recording the same key wait
    /// for each other; one gets `true`).
    async fn record_intake(&mut self, source: &str, external_id: &str) -> Result<bool, StoreError>;

    /// Commits everything done in it.
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;

    /// Undoes everything done in it.
    async fn rollback(self: Box<Self>) -> Result<(), StoreError>;

    /// The backend's own transaction type, for an extension's own queries in it (see the
    /// backend crate's documentation).
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// A storage backend: everything the framework keeps, on one database.
#[async_trait]
pub trait Backend: TaskQueue + DispatchLogStore + Inbox + Send + Sync + 'static {
    /// The backend's name, as `[storage] url` schemes and migrations name it (`sqlite`,
    /// `postgresql`).
    fn name(&self) -> &'static str;

    /// The framework's own migrations (the tables of the task queue, the inbox and the
    /// dispatch log), in this backend's SQL, recorded under the extension `coordinator`.
    fn framework_migrations(&self) -> Vec<Migration>;

    /// Applies the planned migrations not applied yet, each once and in its own transaction,
    /// safely against other processes migrating the same database; returns those applied.
    async fn apply_migrations(&self, plan: &[Planned])
    -> Result<Vec<AppliedMigration>, StoreError>;

    /// The migrations the database recorded as applied (none when it has no table for them).
    async fn recorded_migrations(&self) -> Result<Vec<Recorded>, StoreError>;

    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Begins a transaction.
    async fn begin(&self) -> Result<Box<dyn Transaction>, StoreError>;

    /// Closes every connection, waiting for those in use to be returned.
    async fn close(&self);

    /// The backend itself, for its own API (its connection pool, say).
    fn as_any(&self) -> &dyn Any;
}
