//! Storage: what the framework needs from a database ([`Backend`] and its parts, traits), and
//! the handles through which the framework and extensions use one ([`Store`], [`StoreTx`]).
//!
//! The core never names a backend. Each backend is a crate of its own that implements the
//! traits and makes a [`Store`]: `coordinator-sqlite` (the embedded default: a local file) and
//! `coordinator-postgres` (for many processes on many machines). A store keeps the dispatch
//! log, the durable task queue and the inbox, and runs versioned migrations (the framework's
//! own, then each extension's: [`Store::migrate`]). See
//! `docs/decisions/0010-storage-behind-traits.md` for why it is shaped this way.
//!
//! ```
//! use coordinator::dispatch_log::DispatchQuery;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let url = format!("sqlite://{}/data/coordinator.db", dir.path().display());
//! let store = coordinator_sqlite::connect(&url, 2).await.unwrap();
//! assert_eq!(store.backend(), "sqlite");
//! let applied = store.migrate(&[]).await.unwrap();
//! assert_eq!(applied[0].extension, "coordinator");
//! assert!(store.list_dispatches(&DispatchQuery::default()).await.unwrap().items.is_empty());
//! store.close().await;
//! # });
//! ```

mod backend;
mod error;
pub mod migrate;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use uuid::Uuid;

use crate::dispatch_log::record::{DispatchPage, DispatchQuery, DurableDispatch, StoredDispatch};
use crate::migration::Migration;

use crate::task::record::{
    ClaimedTask, NewTask, StoredTask, TaskCount, TaskOutcome, TaskPage, TaskQuery,
};
pub use migrate::{AppliedMigration, PendingMigration};

pub use backend::{Backend, DispatchLogStore, Inbox, TaskQueue, Transaction};
pub use error::{BoxError, StoreError};

/// The coordinator's database, whatever the backend. Cheap to clone (clones share the
/// backend's connections).
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
    /// Woken when this process enqueues a task, so that its workers claim it at once.
    enqueued: Arc<Notify>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// A store on `backend` (backend crates make one with their `connect`).
    pub fn new(backend: impl Backend) -> Store {
        Store {
            backend: Arc::new(backend),
            enqueued: Arc::new(Notify::new()),
        }
    }

    /// The backend's name: `sqlite`, `postgresql`.
    pub fn backend(&self) -> &'static str {
        self.backend.name()
    }

    /// The backend itself, when it is a `B`, for its own API (see the backend crate).
    pub fn backend_as<B: Backend>(&self) -> Option<&B> {
        self.backend.as_any().downcast_ref::<B>()
    }

    /// Applies the framework's own migrations, then `migrations` (extensions in the order they
    /// first appear, each extension's versions ascending), each version once and each in its own
    /// transaction, and records them in `coordinator_migrations`. Returns those it applied (none
    /// when the database is up to date).
    ///
    /// Refuses, before applying anything, if a migration that was applied has different SQL
    /// now. Concurrent processes migrate safely (each backend keeps them apart its own way).
    pub async fn migrate(
        &self,
        migrations: &[Migration],
    ) -> Result<Vec<AppliedMigration>, StoreError> {
        let plan = self.plan(migrations)?;
        self.backend.apply_migrations(&plan).await
    }

    /// The migrations [`Store::migrate`] would apply, in order, without applying any. Refuses,
    /// like `migrate`, if an applied migration was edited.
    pub async fn pending_migrations(
        &self,
        migrations: &[Migration],
    ) -> Result<Vec<PendingMigration>, StoreError> {
        let plan = self.plan(migrations)?;
        let recorded = self.backend.recorded_migrations().await?;
        migrate::pending_report(&plan, &recorded)
    }

    fn plan(&self, migrations: &[Migration]) -> Result<Vec<migrate::Planned>, StoreError> {
        migrate::plan(
            self.backend.name(),
            &self.backend.framework_migrations(),
            migrations,
        )
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.backend.ping().await
    }

    /// Closes every connection, waiting for those in use to be returned. Clones are closed too.
    pub async fn close(&self) {
        self.backend.close().await;
    }

    // -- The dispatch log ----------------------------------------------------------------------

    /// Stores dispatch reports, in one transaction. A dispatch whose id is already stored is
    /// left as it is, so retrying a batch is safe.
    pub async fn insert_dispatches(&self, batch: &[StoredDispatch]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.backend.insert_dispatches(batch).await
    }

    /// One page of stored dispatches matching `query`, newest first. Pass the page's
    /// `next_before` as the next query's `before` to read on.
    pub async fn list_dispatches(&self, query: &DispatchQuery) -> Result<DispatchPage, StoreError> {
        self.backend.list_dispatches(query).await
    }

    /// One stored dispatch, by id.
    pub async fn get_dispatch(&self, id: Uuid) -> Result<Option<StoredDispatch>, StoreError> {
        self.backend.get_dispatch(id).await
    }

    /// Deletes the dispatches sent before `older_than_ms` (milliseconds since the Unix epoch)
    /// and returns how many there were.
    pub async fn purge_dispatches(&self, older_than_ms: u64) -> Result<u64, StoreError> {
        self.backend.purge_dispatches(older_than_ms).await
    }

    // -- The task queue ------------------------------------------------------------------------

    /// Adds a task to the queue and returns its id. With a `unique_key`, while a task of the
    /// same name and key is queued, retrying or running, returns that task's id instead. The
    /// task is committed when this returns, and this process's workers are woken.
    pub async fn enqueue_task(&self, task: &NewTask) -> Result<Uuid, StoreError> {
        let id = self.backend.enqueue_task(task).await?;
        self.notify_enqueued();
        Ok(id)
    }

    /// Stores a durable dispatch and its deliveries in one transaction (what sending a durable
    /// signal does; see [`Context::send_robust`](crate::Context::send_robust)), with its
    /// intake key if it has one, and wakes this process's workers. `false`: the intake key was
    /// recorded before, and nothing was stored.
    pub async fn enqueue_dispatch(&self, dispatch: &DurableDispatch) -> Result<bool, StoreError> {
        let stored = self.backend.enqueue_dispatch(dispatch).await?;
        if stored {
            self.notify_enqueued();
        }
        Ok(stored)
    }

    /// Begins a transaction, to record an incoming event and enqueue its work together.
    ///
    /// Keep it short: on SQLite it holds the one writer connection until it ends, so make
    /// every write until then through it.
    pub async fn begin(&self) -> Result<StoreTx, StoreError> {
        Ok(StoreTx {
            tx: self.backend.begin().await?,
            backend: self.backend.name(),
            wake: Arc::clone(&self.enqueued),
            enqueued: false,
        })
    }

    /// Claims up to `limit` tasks for `worker_id` from `queues` (every queue when empty): queued
    /// or retrying tasks whose `run_at` has come, and running tasks whose lease has expired (their
    /// expired attempt is recorded as `lost`). Each claimed task is `running` under a lease until
    /// now + `lease`, and its attempt is counted and recorded.
    ///
    /// Concurrent claimers never get the same task. A running task whose lease expired on its
    /// last allowed attempt is not claimed again but made dead.
    pub async fn claim_tasks(
        &self,
        worker_id: &str,
        queues: &[String],
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<ClaimedTask>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.backend
            .claim_tasks(worker_id, queues, limit, lease)
            .await
    }

    /// Extends the leases `worker_id` holds on `ids` to now + `lease`. Returns the ids it still
    /// held (a task missing from the answer was cancelled, or its lease expired and another
    /// worker claimed it).
    pub async fn renew_leases(
        &self,
        worker_id: &str,
        ids: &[Uuid],
        lease: Duration,
    ) -> Result<Vec<Uuid>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.backend.renew_leases(worker_id, ids, lease).await
    }

    /// Records that attempt `attempt` of task `id` succeeded, with the summary it returned.
    ///
    /// Fenced: it changes the task only if it is still running under `worker_id` and this
    /// attempt, and returns whether it did. `false` means the lease was lost (another worker
    /// claimed the task) or the task was cancelled; the result is then discarded.
    pub async fn complete_task(
        &self,
        id: Uuid,
        worker_id: &str,
        attempt: u32,
        result: Option<&str>,
    ) -> Result<bool, StoreError> {
        let outcome = TaskOutcome::Succeeded(result.map(str::to_owned));
        self.record_outcome(id, worker_id, attempt, &outcome).await
    }

    /// Records that attempt `attempt` of task `id` failed with the error `chain` (outermost
    /// first) and how (`status`: error, panicked or timed out). With `retry_at_ms` the task is
    /// retried then; without, it is dead.
    ///
    /// Fenced like [`Store::complete_task`]: returns whether the task was changed.
    pub async fn fail_task(
        &self,
        id: Uuid,
        worker_id: &str,
        attempt: u32,
        chain: &[String],
        retry_at_ms: Option<u64>,
        status: crate::task::record::AttemptStatus,
    ) -> Result<bool, StoreError> {
        let chain = chain.to_vec();
        let outcome = match retry_at_ms {
            Some(at_ms) => TaskOutcome::Retry {
                at_ms,
                status,
                chain,
            },
            None => TaskOutcome::Dead { status, chain },
        };
        self.record_outcome(id, worker_id, attempt, &outcome).await
    }

    /// Records one attempt's outcome, fenced like [`Store::complete_task`].
    pub async fn record_outcome(
        &self,
        id: Uuid,
        worker_id: &str,
        attempt: u32,
        outcome: &TaskOutcome,
    ) -> Result<bool, StoreError> {
        let applied = self
            .record_outcomes(worker_id, &[(id, attempt, outcome)])
            .await?;
        Ok(applied.first().copied().unwrap_or(false))
    }

    /// Records the outcomes of attempts `worker_id` ran, `(task id, attempt, outcome)`, in one
    /// transaction, each fenced like [`Store::complete_task`]; returns, for each, whether the
    /// task was changed. Whether or not it was, the attempt's record gets its real outcome (a
    /// cancelled task's history shows how its last attempt ended).
    pub async fn record_outcomes(
        &self,
        worker_id: &str,
        outcomes: &[(Uuid, u32, &TaskOutcome)],
    ) -> Result<Vec<bool>, StoreError> {
        if outcomes.is_empty() {
            return Ok(Vec::new());
        }
        self.backend.record_outcomes(worker_id, outcomes).await
    }

    /// Gives back the tasks `worker_id` holds among `ids` (a worker shutting down before they
    /// finished): they are queued again at once, and the attempt is recorded as `released` and
    /// not counted. Returns how many were given back.
    pub async fn release_tasks(&self, worker_id: &str, ids: &[Uuid]) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        self.backend.release_tasks(worker_id, ids).await
    }

    /// Deletes the succeeded and cancelled tasks that finished before `finished_before_ms`
    /// (milliseconds since the Unix epoch), with their attempts; returns how many. Queued,
    /// running, retrying and dead tasks are never deleted.
    pub async fn purge_finished_tasks(&self, finished_before_ms: u64) -> Result<u64, StoreError> {
        self.backend.purge_finished_tasks(finished_before_ms).await
    }

    /// Forgets the inbox entries received before `received_before_ms` (milliseconds since the
    /// Unix epoch); returns how many. A redelivery of a forgotten event would be taken as new.
    pub async fn purge_inbox(&self, received_before_ms: u64) -> Result<u64, StoreError> {
        self.backend.purge_inbox(received_before_ms).await
    }

    /// One page of stored tasks matching `query`, newest first (without their history). Pass the
    /// page's `next_before` as the next query's `before` to read on.
    pub async fn list_tasks(&self, query: &TaskQuery) -> Result<TaskPage, StoreError> {
        self.backend.list_tasks(query).await
    }

    /// One stored task, by id, with every attempt.
    pub async fn get_task(&self, id: Uuid) -> Result<Option<StoredTask>, StoreError> {
        self.backend.get_task(id).await
    }

    /// Queues a dead or cancelled task again, to run now, with its attempts reset to 0 (its
    /// history is kept). Refuses a task in any other state, and one whose unique key another
    /// pending task now holds.
    pub async fn retry_task(&self, id: Uuid) -> Result<(), StoreError> {
        self.backend.retry_task(id).await
    }

    /// Cancels a queued, retrying or running task: it will not run again. A running attempt is
    /// left to finish, but its outcome is not recorded on the task (its worker's recording is
    /// fenced out). Refuses a task that has already finished.
    pub async fn cancel_task(&self, id: Uuid) -> Result<(), StoreError> {
        self.backend.cancel_task(id).await
    }

    /// How many tasks each queue has in each state (states with none are left out), by queue
    /// then state.
    pub async fn task_counts(&self) -> Result<Vec<TaskCount>, StoreError> {
        self.backend.task_counts().await
    }

    /// Wakes a worker of this process waiting for tasks (after a task was enqueued here).
    pub(crate) fn notify_enqueued(&self) {
        self.enqueued.notify_one();
    }

    /// Resolves when a task was enqueued in this process since the last call (or now, if one
    /// was enqueued before it was awaited).
    pub(crate) async fn enqueued(&self) {
        self.enqueued.notified().await;
    }
}

/// A transaction on the store, to record an incoming event and enqueue its work together: both
/// are committed, or neither.
///
/// Dropping it without [`commit`](StoreTx::commit) rolls it back. Keep it short.
///
/// ```
/// use coordinator::task::{NewTask, TaskQuery};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// # let dir = tempfile::tempdir().unwrap();
/// # let store = coordinator_sqlite::connect(&format!("sqlite://{}/c.db", dir.path().display()), 2)
/// #     .await.unwrap();
/// # store.migrate(&[]).await.unwrap();
/// // A webhook delivered twice enqueues its work once.
/// for _ in 0..2 {
///     let mut tx = store.begin().await.unwrap();
///     if tx.record_intake("stripe", "evt_123").await.unwrap() {
///         tx.enqueue_task(&NewTask::new("shop.refund", "{}")).await.unwrap();
///     }
///     tx.commit().await.unwrap();
/// }
/// assert_eq!(store.list_tasks(&TaskQuery::default()).await.unwrap().items.len(), 1);
/// # });
/// ```
pub struct StoreTx {
    tx: Box<dyn Transaction>,
    backend: &'static str,
    /// Wakes the workers of this process once committed, if a task was enqueued in it.
    wake: Arc<Notify>,
    enqueued: bool,
}

impl fmt::Debug for StoreTx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreTx")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl StoreTx {
    /// Which backend this transaction is on (`sqlite`, `postgresql`).
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// Enqueues a task as part of this transaction; see [`Store::enqueue_task`].
    pub async fn enqueue_task(&mut self, task: &NewTask) -> Result<Uuid, StoreError> {
        let id = self.tx.enqueue_task(task).await?;
        self.enqueued = true;
        Ok(id)
    }

    /// Stores a durable dispatch and its deliveries as part of this transaction (what
    /// [`Context::send_in`](crate::Context::send_in) does).
    pub async fn enqueue_dispatch(
        &mut self,
        dispatch: &DurableDispatch,
    ) -> Result<bool, StoreError> {
        let stored = self.tx.enqueue_dispatch(dispatch).await?;
        self.enqueued |= stored;
        Ok(stored)
    }

    /// Records that the event `external_id` from `source` (a webhook's event id, a message id)
    /// was received. Returns `true` the first time, `false` when it was already recorded: then
    /// the event is a redelivery and its work must not be enqueued again.
    ///
    /// Concurrent transactions recording the same key wait for each other; exactly one of them
    /// gets `true` (if it commits).
    pub async fn record_intake(
        &mut self,
        source: &str,
        external_id: &str,
    ) -> Result<bool, StoreError> {
        self.tx.record_intake(source, external_id).await
    }

    /// The backend's own transaction, when it is a `T`, for an extension's own queries in it
    /// (see the backend crate for its transaction type).
    pub fn backend_tx<T: 'static>(&mut self) -> Option<&mut T> {
        self.tx.as_any_mut().downcast_mut::<T>()
    }

    /// Commits everything done in the transaction.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        if self.enqueued {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Undoes everything done in the transaction.
    pub async fn rollback(self) -> Result<(), StoreError> {
        self.tx.rollback().await
    }
}

/// `url` without its password and query (either may hold a secret), for messages.
///
/// ```
/// use coordinator::store::redact_url;
/// assert_eq!(redact_url("postgres://app:s3cret@db:5432/cc?sslmode=require"), "postgres://app:***@db:5432/cc");
/// ```
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.split(['?', '#']).next().unwrap_or_default().to_owned();
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    format!("{scheme}://{authority}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_urls_keep_no_password() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db.internal:5432/cc?sslmode=require&password=x"),
            "postgres://app:***@db.internal:5432/cc"
        );
        assert_eq!(
            redact_url("postgresql://app@db/cc"),
            "postgresql://app@db/cc"
        );
        assert_eq!(
            redact_url("sqlite://data/c.db?mode=rwc"),
            "sqlite://data/c.db"
        );
        assert_eq!(redact_url("postgres://h"), "postgres://h");
    }
}
