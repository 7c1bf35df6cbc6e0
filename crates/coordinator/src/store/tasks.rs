//! Durable tasks in the store: the queue that workers claim from under leases, the record of
//! every attempt, and the inbox that makes intake idempotent.
//!
//! A task is `queued` (or `retrying`, after a failure) until its `run_at` comes; a worker then
//! claims it, which makes it `running` under a lease (the worker's id and a deadline) and counts
//! an attempt. The worker renews the lease while the task runs and finally records the outcome:
//! `succeeded`, `retrying` (at a later `run_at`) or `dead`. Recording is *fenced*: it only
//! changes a task still running under the same worker and attempt, so a worker that lost its
//! lease (it was too slow to renew, the task was cancelled) cannot overwrite what happened since.
//! A running task whose lease expired is claimed again by any worker, and the expired attempt is
//! recorded as `lost`. See `docs/decisions/0008-durable-tasks.md`.
//!
//! ```
//! use std::time::Duration;
//! use coordinator::config::{Secret, StorageConfig};
//! use coordinator::store::{NewTask, Store, TaskState};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let store = Store::connect(&StorageConfig {
//!     url: Secret::new(format!("sqlite://{}/c.db", dir.path().display())),
//!     max_connections: 2,
//! })
//! .await
//! .unwrap();
//! store.migrate(&[]).await.unwrap();
//!
//! let id = store.enqueue_task(&NewTask::new("lms.enroll_in_course", r#"{"user":7}"#)).await.unwrap();
//! let claimed = store.claim_tasks("worker-1", &[], 10, Duration::from_secs(30)).await.unwrap();
//! assert_eq!((claimed[0].id, claimed[0].attempt), (id, 1));
//! assert!(store.complete_task(id, "worker-1", 1, Some("enrolled")).await.unwrap());
//! let task = store.get_task(id).await.unwrap().unwrap();
//! assert_eq!(task.state, TaskState::Succeeded);
//! assert_eq!(task.history.len(), 1);
//! # });
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{PgConnection, Postgres, Row, SqliteConnection};
use tokio::sync::{Notify, oneshot};
use uuid::Uuid;

use super::dispatches::{Arg, Sql, ms_to_db};
use super::{Backend, Pool, Store, StoreError, now_ms, postgres, sqlite};
use crate::dispatch::new_id;
use crate::worker::Decision;

// ---------------------------------------------------------------------------------------------
// The public types

/// A task to add to the queue ([`Store::enqueue_task`], [`StoreTx::enqueue_task`]).
///
/// Extensions enqueue through [`Context::enqueue`](crate::Context::enqueue), which fills this in
/// from the task's declaration and configuration; build one directly in tools and tests.
///
/// ```
/// use coordinator::store::NewTask;
///
/// let task = NewTask {
///     queue: "lms".into(),
///     unique_key: Some("order-EDX-1".into()),
///     ..NewTask::new("lms.enroll_in_course", r#"{"order":"EDX-1"}"#)
/// };
/// assert_eq!(task.max_attempts, 5);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTask {
    /// The task's name (`lms.enroll_in_course`).
    pub task: String,
    /// The queue it runs on.
    pub queue: String,
    /// The payload, as JSON text.
    pub payload: String,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Run no earlier than this, in milliseconds since the Unix epoch.
    pub run_at_ms: u64,
    /// While a task of the same name and key is queued, retrying or running, enqueueing returns
    /// that task's id instead of adding one.
    pub unique_key: Option<String>,
    /// The dispatch whose handler (or whose chain of tasks) enqueued it, to follow events.
    pub origin_dispatch: Option<Uuid>,
}

impl NewTask {
    /// A task on the `default` queue, due now, with the default 5 attempts.
    pub fn new(task: impl Into<String>, payload_json: impl Into<String>) -> Self {
        Self {
            task: task.into(),
            queue: "default".to_owned(),
            payload: payload_json.into(),
            max_attempts: crate::task::RetryPolicy::DEFAULT.max_attempts,
            run_at_ms: now_ms(),
            unique_key: None,
            origin_dispatch: None,
        }
    }
}

/// Where a task is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Waiting for its `run_at` and a worker.
    Queued,
    /// Claimed by a worker, which holds its lease.
    Running,
    /// Finished: an attempt succeeded.
    Succeeded,
    /// An attempt failed; waiting for its `run_at` to be attempted again.
    Retrying,
    /// Given up: attempts exhausted or a permanent failure. An operator may retry it.
    Dead,
    /// Cancelled by an operator. It may be retried.
    Cancelled,
}

impl TaskState {
    /// Every state, in life order.
    pub const ALL: [TaskState; 6] = [
        TaskState::Queued,
        TaskState::Running,
        TaskState::Succeeded,
        TaskState::Retrying,
        TaskState::Dead,
        TaskState::Cancelled,
    ];

    /// `queued`, `running`, `succeeded`, `retrying`, `dead` or `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Succeeded => "succeeded",
            TaskState::Retrying => "retrying",
            TaskState::Dead => "dead",
            TaskState::Cancelled => "cancelled",
        }
    }

    /// Whether the task will still run (queued, retrying or running).
    pub fn is_pending(self) -> bool {
        matches!(
            self,
            TaskState::Queued | TaskState::Retrying | TaskState::Running
        )
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown task state \"{s}\": write queued, running, succeeded, retrying, dead \
                     or cancelled"
                )
            })
    }
}

/// How one attempt of a task ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptStatus {
    /// It has not ended yet.
    Running,
    /// It succeeded.
    Ok,
    /// It returned an error (or its payload could not be read, or its task is unknown).
    Error,
    /// It panicked.
    Panicked,
    /// It did not finish within the task's timeout.
    TimedOut,
    /// Its worker shut down before it finished and gave it back; it does not count as an attempt.
    Released,
    /// Its worker stopped renewing the lease (it crashed or lost the database), so another
    /// worker claimed the task again.
    Lost,
}

impl AttemptStatus {
    const ALL: [AttemptStatus; 7] = [
        AttemptStatus::Running,
        AttemptStatus::Ok,
        AttemptStatus::Error,
        AttemptStatus::Panicked,
        AttemptStatus::TimedOut,
        AttemptStatus::Released,
        AttemptStatus::Lost,
    ];

    /// `running`, `ok`, `error`, `panicked`, `timed_out`, `released` or `lost`.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptStatus::Running => "running",
            AttemptStatus::Ok => "ok",
            AttemptStatus::Error => "error",
            AttemptStatus::Panicked => "panicked",
            AttemptStatus::TimedOut => "timed_out",
            AttemptStatus::Released => "released",
            AttemptStatus::Lost => "lost",
        }
    }
}

impl fmt::Display for AttemptStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AttemptStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AttemptStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| format!("unknown attempt status \"{s}\""))
    }
}

/// A task a worker has claimed: it now holds the lease until `lease_until_ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedTask {
    /// The task's id.
    pub id: Uuid,
    /// The task's name.
    pub task: String,
    /// Its queue.
    pub queue: String,
    /// The payload, as JSON text.
    pub payload: String,
    /// The number of this attempt, from 1: pass it back when recording the outcome.
    pub attempt: u32,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The dispatch that caused it, if any.
    pub origin_dispatch: Option<Uuid>,
    /// When the lease ends unless renewed, in milliseconds since the Unix epoch.
    pub lease_until_ms: u64,
}

/// A stored task, with its history of attempts when read with [`Store::get_task`].
///
/// The payload may hold personal data: show it through
/// [`Coordinator::redact_task_payload`](crate::Coordinator::redact_task_payload).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StoredTask {
    /// The task's id (a UUIDv7: ids sort by time).
    #[schemars(with = "String", extend("format" = "uuid"))]
    pub id: Uuid,
    /// The task's name (`lms.enroll_in_course`).
    pub task: String,
    /// The queue it runs on.
    pub queue: String,
    /// The payload.
    pub payload: serde_json::Value,
    /// Where it is in its life.
    pub state: TaskState,
    /// Attempts made so far (reset to 0 when an operator retries it).
    pub attempts: u32,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// When it runs next (or ran last), in milliseconds since the Unix epoch.
    pub run_at_ms: u64,
    /// The worker holding its lease, while running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_owner: Option<String>,
    /// When that lease ends unless renewed, in milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until_ms: Option<u64>,
    /// Its deduplication key, if enqueued with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_key: Option<String>,
    /// The dispatch that caused it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>", extend("format" = "uuid"))]
    pub origin_dispatch: Option<Uuid>,
    /// The summary its successful attempt returned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// The error chain of the last failed attempt, outermost first (kept when it is retried).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_error: Vec<String>,
    /// When it was enqueued, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// When it last changed state, in milliseconds since the Unix epoch.
    pub updated_at_ms: u64,
    /// When it succeeded, died or was cancelled, in milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<u64>,
    /// Every attempt, oldest first ([`Store::get_task`] only; empty in lists).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<TaskAttempt>,
}

/// One attempt of a task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TaskAttempt {
    /// Its number, from 1 (numbers start again after an operator's retry).
    pub attempt: u32,
    /// The worker that ran it.
    pub worker: String,
    /// When it was claimed, in milliseconds since the Unix epoch.
    pub started_at_ms: u64,
    /// When it ended, in milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<u64>,
    /// How it ended.
    pub status: AttemptStatus,
    /// When it failed: the error and its causes, outermost first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_chain: Vec<String>,
}

/// Which stored tasks to list: every filter given must match. Newest first.
///
/// ```
/// use coordinator::store::{TaskQuery, TaskState};
///
/// let dead = TaskQuery { state: Some(TaskState::Dead), ..TaskQuery::default() };
/// assert_eq!(dead.limit, 50);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct TaskQuery {
    /// Only tasks in this state.
    pub state: Option<TaskState>,
    /// Only tasks on this queue.
    pub queue: Option<String>,
    /// Only tasks of this name.
    pub task: Option<String>,
    /// Only tasks older than this one: pass the previous page's `next_before`.
    #[schemars(with = "Option<String>", extend("format" = "uuid"))]
    pub before: Option<Uuid>,
    /// The most tasks returned, 1 to 500 (values outside are clamped). Default 50.
    pub limit: u32,
}

impl TaskQuery {
    /// The default page size.
    pub const DEFAULT_LIMIT: u32 = 50;
    /// The largest page size.
    pub const MAX_LIMIT: u32 = 500;

    /// The page size used: `limit` clamped to 1..=500.
    pub fn effective_limit(&self) -> u32 {
        self.limit.clamp(1, Self::MAX_LIMIT)
    }
}

impl Default for TaskQuery {
    fn default() -> Self {
        Self {
            state: None,
            queue: None,
            task: None,
            before: None,
            limit: Self::DEFAULT_LIMIT,
        }
    }
}

/// One page of stored tasks, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskPage {
    /// The tasks (without their history: read one with [`Store::get_task`] for it).
    pub items: Vec<StoredTask>,
    /// When the page is full, the id to pass as `before` for the next (older) page.
    #[schemars(with = "Option<String>", extend("format" = "uuid"))]
    pub next_before: Option<Uuid>,
}

/// How many tasks of one queue are in one state (for queue-depth metrics).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TaskCount {
    /// The queue.
    pub queue: String,
    /// The state.
    pub state: TaskState,
    /// How many tasks.
    pub count: u64,
}

/// Enqueues waiting for the next group write on SQLite ([`Store::enqueue_task`]).
#[derive(Default)]
pub(crate) struct PendingEnqueues {
    tasks: Vec<(NewTask, oneshot::Sender<Result<Uuid, StoreError>>)>,
    /// A write has been started and has not taken the queue yet.
    write_started: bool,
    /// An enqueue waits for the writer on its own (the next ones queue).
    waiting_alone: bool,
}

/// Clears `waiting_alone` once the lone enqueue has the writer (or was dropped waiting).
struct WaitingAlone<'a>(&'a std::sync::Mutex<PendingEnqueues>);

impl Drop for WaitingAlone<'_> {
    fn drop(&mut self) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .waiting_alone = false;
    }
}

// ---------------------------------------------------------------------------------------------
// Transactions

/// A transaction on the store, to record an incoming event and enqueue its work together: both
/// are committed, or neither.
///
/// On SQLite it takes the write lock when it begins (`BEGIN IMMEDIATE`), so concurrent writers
/// wait for each other (up to the 5 s busy timeout) instead of deadlocking when they upgrade.
/// Keep it short. Dropping it without [`commit`](StoreTx::commit) rolls it back.
///
/// ```
/// use coordinator::config::{Secret, StorageConfig};
/// use coordinator::store::{NewTask, Store, TaskQuery};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// # let dir = tempfile::tempdir().unwrap();
/// # let store = Store::connect(&StorageConfig {
/// #     url: Secret::new(format!("sqlite://{}/c.db", dir.path().display())),
/// #     max_connections: 2,
/// # }).await.unwrap();
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
    tx: Tx,
    /// Wakes the workers of this process once committed, if a task was enqueued in it.
    wake: Arc<Notify>,
    enqueued: bool,
}

enum Tx {
    Sqlite(sqlite::SqliteTx),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl fmt::Debug for StoreTx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreTx")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl StoreTx {
    /// Which database this transaction is on.
    pub fn backend(&self) -> Backend {
        match self.tx {
            Tx::Sqlite(_) => Backend::Sqlite,
            Tx::Postgres(_) => Backend::Postgres,
        }
    }

    fn conn(&mut self) -> Conn<'_> {
        match &mut self.tx {
            Tx::Sqlite(tx) => Conn::Sqlite(tx.conn()),
            Tx::Postgres(tx) => Conn::Postgres(tx),
        }
    }

    /// Enqueues a task as part of this transaction; see [`Store::enqueue_task`].
    pub async fn enqueue_task(&mut self, task: &NewTask) -> Result<Uuid, StoreError> {
        let id = insert_task(&mut self.conn(), task).await?;
        self.enqueued = true;
        Ok(id)
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
        let mut conn = self.conn();
        let mut sql = conn
            .sql("INSERT INTO coordinator_inbox (source, external_id, received_at_ms) VALUES (");
        sql.bind(Arg::Text(source.to_owned()))
            .push(", ")
            .bind(Arg::Text(external_id.to_owned()))
            .push(", ")
            .bind(Arg::Int(ms_to_db(now_ms())))
            .push(") ON CONFLICT DO NOTHING");
        Ok(conn.execute("record an intake key", &sql).await? == 1)
    }

    /// The SQLite connection of this transaction, for an extension's own queries in it.
    pub fn sqlite(&mut self) -> Option<&mut SqliteConnection> {
        match &mut self.tx {
            Tx::Sqlite(tx) => Some(tx.conn()),
            Tx::Postgres(_) => None,
        }
    }

    /// The PostgreSQL connection of this transaction, for an extension's own queries in it.
    pub fn postgres(&mut self) -> Option<&mut PgConnection> {
        match &mut self.tx {
            Tx::Postgres(tx) => Some(&mut **tx),
            Tx::Sqlite(_) => None,
        }
    }

    /// Commits everything done in the transaction.
    pub async fn commit(self) -> Result<(), StoreError> {
        let backend = self.backend();
        let err = StoreError::db(backend, "commit a transaction");
        match self.tx {
            Tx::Sqlite(tx) => tx.commit().await.map_err(err)?,
            Tx::Postgres(tx) => tx.commit().await.map_err(err)?,
        }
        if self.enqueued {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Undoes everything done in the transaction.
    pub async fn rollback(self) -> Result<(), StoreError> {
        let backend = self.backend();
        let err = StoreError::db(backend, "roll back a transaction");
        match self.tx {
            Tx::Sqlite(tx) => tx.rollback().await.map_err(err),
            Tx::Postgres(tx) => tx.rollback().await.map_err(err),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The store's task operations

/// The error chain recorded on an attempt whose lease expired.
const LOST_CHAIN: &str = "[\"the worker running this attempt stopped renewing its lease (it \
stopped, crashed or lost the database); the task was claimed again\"]";

/// The error chain recorded on a task whose last attempt's lease expired.
const LOST_LAST_CHAIN: &str = "[\"the worker running the last attempt stopped renewing its lease \
(it stopped, crashed or lost the database) and no attempts are left\"]";

impl Store {
    /// Adds a task to the queue and returns its id. With a `unique_key`, while a task of the
    /// same name and key is queued, retrying or running, returns that task's id instead.
    ///
    /// It is one statement, committed on its own (a second one reads the pending task's id
    /// when the key is taken).
    ///
    /// On SQLite, enqueues made at the same time from many tasks (handlers of concurrent
    /// requests) are written together, in one transaction on the writer: whoever finds no
    /// write of enqueues pending starts one, which waits for the writer and then takes every
    /// enqueue queued by then. Each caller still gets its own id (or error) once the
    /// transaction has committed.
    pub async fn enqueue_task(&self, task: &NewTask) -> Result<Uuid, StoreError> {
        let id = match &self.pool {
            Pool::Sqlite(pools) => self.enqueue_together(pools, task).await?,
            Pool::Postgres(pool) => self.enqueue_postgres(pool, task).await?,
        };
        self.notify_enqueued();
        Ok(id)
    }

    /// Writes `task` itself when no other enqueue waits for the writer, else queues it for the
    /// next group write of enqueues; returns its id.
    async fn enqueue_together(
        &self,
        pools: &sqlite::SqlitePools,
        task: &NewTask,
    ) -> Result<Uuid, StoreError> {
        const ACTION: &str = "enqueue a task";
        let (done, id) = oneshot::channel();
        let start = {
            let mut pending = self.enqueues.lock().unwrap_or_else(|e| e.into_inner());
            if pending.write_started || pending.waiting_alone {
                pending.tasks.push((task.clone(), done));
                Some(!std::mem::replace(&mut pending.write_started, true))
            } else {
                pending.waiting_alone = true;
                None
            }
        };
        let Some(start) = start else {
            // The one-at-a-time case (a single producer): it waits for the writer itself, and
            // whoever comes meanwhile queues for a group write behind it.
            let alone = WaitingAlone(&self.enqueues);
            let writer = pools.write.lock(ACTION).await;
            drop(alone);
            let mut writer = writer?;
            return insert_task(&mut Conn::Sqlite(&mut writer), task).await;
        };
        if start {
            // A task of its own: the write happens even if this caller's future is dropped,
            // so no enqueue it carries is lost halfway.
            let store = self.clone();
            tokio::spawn(async move { store.write_enqueues().await });
        }
        id.await.unwrap_or_else(|_| {
            Err(StoreError::db(Backend::Sqlite, ACTION)(
                sqlx::Error::Protocol(
                    "the write of this enqueue stopped before it answered (the runtime is \
                     shutting down); the task may or may not be stored"
                        .to_owned(),
                ),
            ))
        })
    }

    /// Inserts `task` on a connection kept for enqueues when it is free (a pooled connection is
    /// pinged each time it is returned: a round trip per enqueue), else on a pooled one, so
    /// that concurrent enqueues still share PostgreSQL's WAL flushes. The kept connection is
    /// taken out of the pool (`detach`), so the store may hold `max_connections` + 1.
    async fn enqueue_postgres(
        &self,
        pool: &sqlx::PgPool,
        task: &NewTask,
    ) -> Result<Uuid, StoreError> {
        const ACTION: &str = "enqueue a task";
        let Ok(mut kept) = self.pg_enqueuer.try_lock() else {
            return self
                .with_write_conn(ACTION, async |conn| insert_task(conn, task).await)
                .await;
        };
        // Like the pool: a connection idle for a while is checked before use (the server or a
        // proxy may have closed it), and replaced if it does not answer.
        let stale = match kept.as_mut() {
            Some((conn, used)) if used.elapsed() >= super::PING_IDLE_AFTER => {
                sqlx::Connection::ping(conn).await.is_err()
            }
            _ => false,
        };
        if stale {
            *kept = None;
        }
        let (conn, used) = match kept.as_mut() {
            Some(kept) => kept,
            None => {
                let conn = pool
                    .acquire()
                    .await
                    .map_err(StoreError::db(Backend::Postgres, ACTION))?;
                kept.insert((conn.detach(), std::time::Instant::now()))
            }
        };
        let result = insert_task(&mut Conn::Postgres(conn), task).await;
        *used = std::time::Instant::now();
        if result.is_err() {
            // The connection may be broken: the next enqueue opens another.
            *kept = None;
        }
        result
    }

    /// Writes the queued enqueues in one transaction on the SQLite writer.
    async fn write_enqueues(&self) {
        const ACTION: &str = "enqueue a task";
        let Pool::Sqlite(pools) = &self.pool else {
            return;
        };
        let writer = pools.write.lock(ACTION).await;
        // Everything queued while waiting for the writer goes in this write.
        let batch = {
            let mut pending = self.enqueues.lock().unwrap_or_else(|e| e.into_inner());
            pending.write_started = false;
            std::mem::take(&mut pending.tasks)
        };
        if batch.is_empty() {
            return;
        }
        let writer = match writer {
            Ok(writer) => writer,
            Err(e) => {
                for (_, done) in batch {
                    let _ = done.send(Err(e.replicate(ACTION)));
                }
                return;
            }
        };
        let mut ids = Vec::with_capacity(batch.len());
        let written: Result<(), StoreError> = async {
            let mut tx = sqlite::SqliteTx::begin_on(writer, ACTION).await?;
            for (task, _) in &batch {
                ids.push(insert_task(&mut Conn::Sqlite(tx.conn()), task).await?);
            }
            tx.commit()
                .await
                .map_err(StoreError::db(Backend::Sqlite, ACTION))
        }
        .await;
        match written {
            Ok(()) => {
                for ((_, done), id) in batch.into_iter().zip(ids) {
                    let _ = done.send(Ok(id));
                }
            }
            // One of them failed and the transaction was rolled back: each on its own, so
            // that only the one at fault gets the error.
            Err(_) => {
                for (task, done) in batch {
                    let one = self
                        .with_write_conn(ACTION, async |conn| insert_task(conn, &task).await)
                        .await;
                    let _ = done.send(one);
                }
            }
        }
        self.notify_enqueued();
    }

    /// Begins a transaction, to record an incoming event and enqueue its work together.
    ///
    /// On SQLite it holds the coordinator's one writer connection until it ends: keep it short,
    /// and make every write until then through it.
    pub async fn begin(&self) -> Result<StoreTx, StoreError> {
        let err = StoreError::db(self.backend(), "begin a transaction");
        let tx = match &self.pool {
            Pool::Sqlite(pools) => Tx::Sqlite(pools.write.begin("begin a transaction").await?),
            Pool::Postgres(pool) => Tx::Postgres(pool.begin().await.map_err(err)?),
        };
        Ok(StoreTx {
            tx,
            wake: Arc::clone(&self.enqueued),
            enqueued: false,
        })
    }

    /// Claims up to `limit` tasks for `worker_id` from `queues` (every queue when empty): queued
    /// or retrying tasks whose `run_at` has come, and running tasks whose lease has expired (their
    /// expired attempt is recorded as `lost`). Each claimed task is `running` under a lease until
    /// now + `lease`, and its attempt is counted and recorded.
    ///
    /// Concurrent claimers never get the same task: PostgreSQL claims in one statement with
    /// `FOR UPDATE SKIP LOCKED`, SQLite in one write transaction. A running task whose lease
    /// expired on its last allowed attempt is not claimed again but made dead.
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
        let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
        match &self.pool {
            Pool::Sqlite(pools) => {
                let err = StoreError::db(Backend::Sqlite, "claim tasks");
                let mut tx = pools.write.begin("claim tasks").await?;
                let claimed = claim_sqlite(
                    &mut Conn::Sqlite(tx.conn()),
                    worker_id,
                    queues,
                    limit,
                    lease_ms,
                )
                .await?;
                tx.commit().await.map_err(err)?;
                Ok(claimed)
            }
            Pool::Postgres(pool) => {
                let err = StoreError::db(Backend::Postgres, "claim tasks");
                let mut conn = pool.acquire().await.map_err(err)?;
                claim_postgres(
                    &mut Conn::Postgres(&mut conn),
                    worker_id,
                    queues,
                    limit,
                    lease_ms,
                )
                .await
            }
        }
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
        let until = now_ms().saturating_add(u64::try_from(lease.as_millis()).unwrap_or(u64::MAX));
        self.with_write_conn("renew task leases", async |conn| {
            let mut sql = conn.sql("UPDATE coordinator_tasks SET lease_until_ms = ");
            sql.bind(Arg::Int(ms_to_db(until)))
                .push(" WHERE state = 'running' AND lease_owner = ")
                .bind(Arg::Text(worker_id.to_owned()))
                .push(" AND id IN ")
                .bind_list(ids.iter().map(|id| Arg::Id(*id)))
                .push(" RETURNING id");
            conn.fetch("renew task leases", &sql, |row| row.id("id"))
                .await
        })
        .await
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
        let decision = Decision::Succeeded(result.map(str::to_owned));
        let applied = self
            .record_outcomes(worker_id, &[(id, attempt, &decision)])
            .await?;
        Ok(applied.first().copied().unwrap_or(false))
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
        status: AttemptStatus,
    ) -> Result<bool, StoreError> {
        let chain = chain.to_vec();
        let decision = match retry_at_ms {
            Some(at_ms) => Decision::Retry {
                at_ms,
                status,
                chain,
            },
            None => Decision::Dead { status, chain },
        };
        let applied = self
            .record_outcomes(worker_id, &[(id, attempt, &decision)])
            .await?;
        Ok(applied.first().copied().unwrap_or(false))
    }

    /// Records the outcomes of attempts `worker_id` ran, `(task id, attempt, outcome)`, in one
    /// transaction, each fenced like [`Store::complete_task`]; returns, for each, whether the
    /// task was changed. Whether or not it was, the attempt's record gets its real outcome (a
    /// cancelled task's history shows how its last attempt ended).
    pub(crate) async fn record_outcomes(
        &self,
        worker_id: &str,
        outcomes: &[(Uuid, u32, &Decision)],
    ) -> Result<Vec<bool>, StoreError> {
        const ACTION: &str = "record task outcomes";
        if outcomes.is_empty() {
            return Ok(Vec::new());
        }
        let now = ms_to_db(now_ms());
        let succeeded: Vec<(Uuid, u32, Option<String>)> = outcomes
            .iter()
            .filter_map(|(id, attempt, decision)| match decision {
                Decision::Succeeded(result) => Some((*id, *attempt, result.clone())),
                _ => None,
            })
            .collect();
        self.with_tx(ACTION, async |conn| {
            // Successes (nearly all outcomes) in two statements, whatever their number.
            let mut done = Vec::new();
            if !succeeded.is_empty() {
                let (tasks, attempts) = successes_sql(conn.backend(), now, worker_id, &succeeded);
                done = conn.fetch(ACTION, &tasks, |row| row.id("id")).await?;
                conn.execute(ACTION, &attempts).await?;
            }
            let mut applied = Vec::with_capacity(outcomes.len());
            for (id, attempt, decision) in outcomes {
                if matches!(decision, Decision::Succeeded(_)) {
                    applied.push(done.contains(id));
                    continue;
                }
                let (task, finished) =
                    outcome_sql(conn.backend(), now, *id, worker_id, *attempt, decision);
                applied.push(conn.execute(ACTION, &task).await? == 1);
                conn.execute(ACTION, &finished).await?;
            }
            Ok(applied)
        })
        .await
    }

    /// Gives back the tasks `worker_id` holds among `ids` (a worker shutting down before they
    /// finished): they are queued again at once, and the attempt is recorded as `released` and
    /// not counted. Returns how many were given back.
    pub async fn release_tasks(&self, worker_id: &str, ids: &[Uuid]) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        const ACTION: &str = "release tasks";
        let now = ms_to_db(now_ms());
        self.with_tx(ACTION, async |conn| {
            let mut sql = conn.sql(
                "UPDATE coordinator_tasks SET state = 'queued', attempts = attempts - 1, \
                 lease_owner = NULL, lease_until_ms = NULL, run_at_ms = ",
            );
            sql.bind(Arg::Int(now))
                .push(", updated_at_ms = ")
                .bind(Arg::Int(now))
                .push(" WHERE state = 'running' AND lease_owner = ")
                .bind(Arg::Text(worker_id.to_owned()))
                .push(" AND id IN ")
                .bind_list(ids.iter().map(|id| Arg::Id(*id)))
                .push(" RETURNING id, attempts");
            let released = conn
                .fetch(ACTION, &sql, |row| {
                    Ok((row.id("id")?, row.int("attempts")?))
                })
                .await?;
            if released.is_empty() {
                return Ok(0);
            }
            let mut attempts = conn
                .sql("UPDATE coordinator_task_attempts SET status = 'released', finished_at_ms = ");
            attempts
                .bind(Arg::Int(now))
                .push(" WHERE finished_at_ms IS NULL AND worker = ")
                .bind(Arg::Text(worker_id.to_owned()))
                .push(" AND (");
            for (i, (id, remaining)) in released.iter().enumerate() {
                if i > 0 {
                    attempts.push(" OR ");
                }
                attempts
                    .push("(task_id = ")
                    .bind(Arg::Id(*id))
                    .push(" AND attempt = ")
                    .bind(Arg::Int(remaining + 1))
                    .push(")");
            }
            attempts.push(")");
            conn.execute(ACTION, &attempts).await?;
            Ok(released.len() as u64)
        })
        .await
    }

    /// Deletes the succeeded and cancelled tasks that finished before `finished_before_ms`
    /// (milliseconds since the Unix epoch), with their attempts, a thousand per transaction;
    /// returns how many. Queued, running, retrying and dead tasks are never deleted.
    pub async fn purge_finished_tasks(&self, finished_before_ms: u64) -> Result<u64, StoreError> {
        const ACTION: &str = "purge finished tasks";
        const CHUNK: i64 = 1000;
        let cutoff = ms_to_db(finished_before_ms);
        // A task finishes after it is created, and ids begin with their creation time: only
        // ids below the cutoff's can qualify, which the primary key finds without a scan.
        let mut below = [0u8; 16];
        below[..6].copy_from_slice(&finished_before_ms.saturating_add(1).to_be_bytes()[2..]);
        let below = Uuid::from_bytes(below);
        let mut purged = 0;
        loop {
            let n = self
                .with_tx(ACTION, async |conn| {
                    let mut sql = conn.sql("SELECT id FROM coordinator_tasks WHERE id < ");
                    sql.bind(Arg::Id(below))
                        .push(" AND state IN ('succeeded', 'cancelled') AND finished_at_ms < ")
                        .bind(Arg::Int(cutoff))
                        .push(" ORDER BY id LIMIT ")
                        .bind(Arg::Int(CHUNK));
                    let ids = conn.fetch(ACTION, &sql, |row| row.id("id")).await?;
                    if ids.is_empty() {
                        return Ok(0);
                    }
                    let mut attempts =
                        conn.sql("DELETE FROM coordinator_task_attempts WHERE task_id IN ");
                    attempts.bind_list(ids.iter().map(|id| Arg::Id(*id)));
                    conn.execute(ACTION, &attempts).await?;
                    let mut tasks = conn.sql("DELETE FROM coordinator_tasks WHERE id IN ");
                    tasks.bind_list(ids.iter().map(|id| Arg::Id(*id)));
                    conn.execute(ACTION, &tasks).await
                })
                .await?;
            purged += n;
            if n < CHUNK as u64 {
                return Ok(purged);
            }
        }
    }

    /// Forgets the inbox entries received before `received_before_ms` (milliseconds since the
    /// Unix epoch); returns how many. A redelivery of a forgotten event would be taken as new.
    pub async fn purge_inbox(&self, received_before_ms: u64) -> Result<u64, StoreError> {
        const ACTION: &str = "purge the inbox";
        self.with_write_conn(ACTION, async |conn| {
            let mut sql = conn.sql("DELETE FROM coordinator_inbox WHERE received_at_ms < ");
            sql.bind(Arg::Int(ms_to_db(received_before_ms)));
            conn.execute(ACTION, &sql).await
        })
        .await
    }

    /// One page of stored tasks matching `query`, newest first (without their history). Pass the
    /// page's `next_before` as the next query's `before` to read on.
    pub async fn list_tasks(&self, query: &TaskQuery) -> Result<TaskPage, StoreError> {
        let limit = query.effective_limit();
        let mut sql = Sql::new(
            self.backend(),
            &format!("SELECT {TASK_COLUMNS} FROM coordinator_tasks WHERE 1 = 1"),
        );
        if let Some(state) = query.state {
            sql.push(" AND state = ")
                .bind(Arg::Text(state.as_str().to_owned()));
        }
        if let Some(queue) = &query.queue {
            sql.push(" AND queue = ").bind(Arg::Text(queue.clone()));
        }
        if let Some(task) = &query.task {
            sql.push(" AND task = ").bind(Arg::Text(task.clone()));
        }
        if let Some(before) = query.before {
            sql.push(" AND id < ").bind(Arg::Id(before));
        }
        sql.push(" ORDER BY id DESC LIMIT ")
            .bind(Arg::Int(i64::from(limit)));
        let items = self
            .with_conn("list tasks", async |conn| {
                conn.fetch("list tasks", &sql, task_from_row).await
            })
            .await?;
        let full = items.len() >= limit as usize;
        Ok(TaskPage {
            next_before: if full {
                items.last().map(|t| t.id)
            } else {
                None
            },
            items,
        })
    }

    /// One stored task, by id, with every attempt.
    pub async fn get_task(&self, id: Uuid) -> Result<Option<StoredTask>, StoreError> {
        const ACTION: &str = "read a task";
        self.with_conn(ACTION, async |conn| {
            let mut sql = conn.sql(&format!(
                "SELECT {TASK_COLUMNS} FROM coordinator_tasks WHERE id = "
            ));
            sql.bind(Arg::Id(id));
            let Some(mut task) = conn.fetch(ACTION, &sql, task_from_row).await?.pop() else {
                return Ok(None);
            };
            let mut sql = conn.sql(
                "SELECT attempt, worker, started_at_ms, finished_at_ms, status, error_chain \
                 FROM coordinator_task_attempts WHERE task_id = ",
            );
            sql.bind(Arg::Id(id)).push(" ORDER BY id");
            task.history = conn
                .fetch(ACTION, &sql, |row| attempt_from_row(id, row))
                .await?;
            Ok(Some(task))
        })
        .await
    }

    /// Queues a dead or cancelled task again, to run now, with its attempts reset to 0 (its
    /// history is kept). Refuses a task in any other state, and one whose unique key another
    /// pending task now holds.
    pub async fn retry_task(&self, id: Uuid) -> Result<(), StoreError> {
        const ACTION: &str = "retry a task";
        let now = ms_to_db(now_ms());
        self.with_write_conn(ACTION, async |conn| {
            let mut sql = conn.sql(
                "UPDATE coordinator_tasks SET state = 'queued', attempts = 0, lease_owner = NULL, \
                 lease_until_ms = NULL, finished_at_ms = NULL, result = NULL, run_at_ms = ",
            );
            sql.bind(Arg::Int(now))
                .push(", updated_at_ms = ")
                .bind(Arg::Int(now))
                .push(" WHERE state IN ('dead', 'cancelled') AND id = ")
                .bind(Arg::Id(id));
            match conn.execute_raw(&sql).await {
                Ok(1) => Ok(()),
                Ok(_) => Err(state_error(conn, id, "retry", "dead or cancelled", "retried").await),
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    Err(duplicate_error(conn, id).await)
                }
                Err(e) => Err(StoreError::db(conn.backend(), ACTION)(e)),
            }
        })
        .await
    }

    /// Cancels a queued, retrying or running task: it will not run again. A running attempt is
    /// left to finish, but its outcome is not recorded on the task (its worker's recording is
    /// fenced out). Refuses a task that has already finished.
    pub async fn cancel_task(&self, id: Uuid) -> Result<(), StoreError> {
        const ACTION: &str = "cancel a task";
        let now = ms_to_db(now_ms());
        self.with_write_conn(ACTION, async |conn| {
            let mut sql = conn.sql(
                "UPDATE coordinator_tasks SET state = 'cancelled', lease_owner = NULL, \
                 lease_until_ms = NULL, finished_at_ms = ",
            );
            sql.bind(Arg::Int(now))
                .push(", updated_at_ms = ")
                .bind(Arg::Int(now))
                .push(" WHERE state IN ('queued', 'retrying', 'running') AND id = ")
                .bind(Arg::Id(id));
            if conn.execute(ACTION, &sql).await? == 1 {
                Ok(())
            } else {
                Err(state_error(
                    conn,
                    id,
                    "cancel",
                    "queued, retrying or running",
                    "cancelled",
                )
                .await)
            }
        })
        .await
    }

    /// How many tasks each queue has in each state (states with none are left out), by queue
    /// then state.
    pub async fn task_counts(&self) -> Result<Vec<TaskCount>, StoreError> {
        const ACTION: &str = "count tasks";
        let sql = Sql::new(
            self.backend(),
            "SELECT queue, state, COUNT(*) AS n FROM coordinator_tasks GROUP BY queue, state \
             ORDER BY queue, state",
        );
        self.with_conn(ACTION, async |conn| {
            conn.fetch(ACTION, &sql, |row| {
                let state = row.text("state")?;
                Ok(TaskCount {
                    queue: row.text("queue")?,
                    state: state.parse().map_err(|e| corrupt("(count)", e))?,
                    count: u64::try_from(row.int("n")?).unwrap_or(0),
                })
            })
            .await
        })
        .await
    }

    /// Runs `f` on a pooled connection, for reads.
    async fn with_conn<T>(
        &self,
        action: &'static str,
        f: impl AsyncFnOnce(&mut Conn<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.on_conn(false, action, f).await
    }

    /// Runs `f` on a connection that may write (each statement commits on its own): on SQLite
    /// the one writer.
    async fn with_write_conn<T>(
        &self,
        action: &'static str,
        f: impl AsyncFnOnce(&mut Conn<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.on_conn(true, action, f).await
    }

    async fn on_conn<T>(
        &self,
        write: bool,
        action: &'static str,
        f: impl AsyncFnOnce(&mut Conn<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let err = StoreError::db(self.backend(), action);
        match &self.pool {
            Pool::Sqlite(pools) if write => {
                let mut conn = pools.write.lock(action).await?;
                f(&mut Conn::Sqlite(&mut conn)).await
            }
            Pool::Sqlite(pools) => {
                let mut conn = pools.read.acquire().await.map_err(err)?;
                f(&mut Conn::Sqlite(&mut conn)).await
            }
            Pool::Postgres(pool) => {
                let mut conn = pool.acquire().await.map_err(err)?;
                f(&mut Conn::Postgres(&mut conn)).await
            }
        }
    }

    /// Runs `f` in a write transaction and commits it if `f` succeeds.
    async fn with_tx<T>(
        &self,
        action: &'static str,
        f: impl AsyncFnOnce(&mut Conn<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let err = StoreError::db(self.backend(), action);
        let mut tx = self.begin().await?;
        let out = f(&mut tx.conn()).await?;
        match tx.tx {
            Tx::Sqlite(tx) => tx.commit().await.map_err(err)?,
            Tx::Postgres(tx) => tx.commit().await.map_err(err)?,
        }
        Ok(out)
    }
}

/// The columns of a task row, in the order [`task_from_row`] reads them by name.
const TASK_COLUMNS: &str = "id, task, queue, payload, state, attempts, max_attempts, run_at_ms, \
lease_owner, lease_until_ms, unique_key, origin_dispatch, result, last_error, created_at_ms, \
updated_at_ms, finished_at_ms";

/// `WHERE` the task is still running under this worker and attempt.
fn push_fence(sql: &mut Sql, id: Uuid, worker_id: &str, attempt: u32) {
    sql.push(" WHERE id = ")
        .bind(Arg::Id(id))
        .push(" AND state = 'running' AND lease_owner = ")
        .bind(Arg::Text(worker_id.to_owned()))
        .push(" AND attempts = ")
        .bind(Arg::Int(i64::from(attempt)));
}

/// The fenced update of the tasks whose attempts succeeded, `(id, attempt, result)`, returning
/// the ids it changed, and the end of those attempts' records.
fn successes_sql(
    backend: Backend,
    now: i64,
    worker_id: &str,
    succeeded: &[(Uuid, u32, Option<String>)],
) -> (Sql, Sql) {
    let values = |sql: &mut Sql, with_result: bool| {
        sql.push(if with_result {
            "WITH v (id, attempt, result) AS (VALUES "
        } else {
            "WITH v (id, attempt) AS (VALUES "
        });
        for (i, (id, attempt, result)) in succeeded.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" })
                .bind(Arg::Id(*id))
                .push(", ")
                .bind(Arg::Int(i64::from(*attempt)));
            if with_result {
                sql.push(", ").bind(Arg::OptText(result.clone()));
            }
            sql.push(")");
        }
        sql.push(") ");
    };
    let mut tasks = Sql::new(backend, "");
    values(&mut tasks, true);
    tasks
        .push(
            "UPDATE coordinator_tasks SET state = 'succeeded', lease_owner = NULL, \
             lease_until_ms = NULL, result = v.result, updated_at_ms = ",
        )
        .bind(Arg::Int(now))
        .push(", finished_at_ms = ")
        .bind(Arg::Int(now))
        .push(
            " FROM v WHERE coordinator_tasks.id = v.id AND coordinator_tasks.state = 'running' \
             AND coordinator_tasks.attempts = v.attempt AND coordinator_tasks.lease_owner = ",
        )
        .bind(Arg::Text(worker_id.to_owned()))
        .push(" RETURNING coordinator_tasks.id AS id");
    let mut attempts = Sql::new(backend, "");
    values(&mut attempts, false);
    attempts
        .push("UPDATE coordinator_task_attempts SET status = 'ok', finished_at_ms = ")
        .bind(Arg::Int(now))
        .push(
            " FROM v WHERE coordinator_task_attempts.task_id = v.id \
             AND coordinator_task_attempts.attempt = v.attempt \
             AND coordinator_task_attempts.finished_at_ms IS NULL \
             AND coordinator_task_attempts.worker = ",
        )
        .bind(Arg::Text(worker_id.to_owned()));
    (tasks, attempts)
}

/// The fenced update of a task for an attempt's outcome, and the end of that attempt's
/// record (one marked lost already stays lost).
fn outcome_sql(
    backend: Backend,
    now: i64,
    id: Uuid,
    worker_id: &str,
    attempt: u32,
    decision: &Decision,
) -> (Sql, Sql) {
    let mut task = Sql::new(
        backend,
        "UPDATE coordinator_tasks SET lease_owner = NULL, lease_until_ms = NULL, updated_at_ms = ",
    );
    task.bind(Arg::Int(now));
    let (status, chain) = match decision {
        Decision::Succeeded(result) => {
            task.push(", state = 'succeeded', result = ")
                .bind(Arg::OptText(result.clone()))
                .push(", finished_at_ms = ")
                .bind(Arg::Int(now));
            (AttemptStatus::Ok, None)
        }
        Decision::Retry {
            at_ms,
            status,
            chain,
        } => {
            let chain = serde_json::to_string(chain).unwrap_or_else(|_| "[]".to_owned());
            task.push(", state = 'retrying', run_at_ms = ")
                .bind(Arg::Int(ms_to_db(*at_ms)))
                .push(", last_error = ")
                .bind(Arg::Text(chain.clone()));
            (*status, Some(chain))
        }
        Decision::Dead { status, chain } => {
            let chain = serde_json::to_string(chain).unwrap_or_else(|_| "[]".to_owned());
            task.push(", state = 'dead', finished_at_ms = ")
                .bind(Arg::Int(now))
                .push(", last_error = ")
                .bind(Arg::Text(chain.clone()));
            (*status, Some(chain))
        }
    };
    push_fence(&mut task, id, worker_id, attempt);
    let mut finished = Sql::new(backend, "UPDATE coordinator_task_attempts SET status = ");
    finished
        .bind(Arg::Text(status.as_str().to_owned()))
        .push(", finished_at_ms = ")
        .bind(Arg::Int(now))
        .push(", error_chain = ")
        .bind(Arg::OptText(chain))
        .push(" WHERE finished_at_ms IS NULL AND task_id = ")
        .bind(Arg::Id(id))
        .push(" AND attempt = ")
        .bind(Arg::Int(i64::from(attempt)))
        .push(" AND worker = ")
        .bind(Arg::Text(worker_id.to_owned()));
    (task, finished)
}

/// Appends ` AND queue IN (…)` unless `queues` is empty (every queue).
fn push_queues(sql: &mut Sql, queues: &[String]) {
    if !queues.is_empty() {
        sql.push(" AND queue IN ")
            .bind_list(queues.iter().map(|q| Arg::Text(q.clone())));
    }
}

/// The condition of a queued or retrying task whose time has come (the partial index
/// `coordinator_tasks_ready` holds exactly these tasks, in claim order).
fn push_due(sql: &mut Sql, now: i64) {
    sql.push(" WHERE state IN ('queued', 'retrying') AND run_at_ms <= ")
        .bind(Arg::Int(now));
}

/// The condition of a running task whose lease expired with attempts left (through the partial
/// index `coordinator_tasks_leases`).
fn push_expired(sql: &mut Sql, now: i64) {
    sql.push(" WHERE state = 'running' AND lease_until_ms <= ")
        .bind(Arg::Int(now))
        .push(" AND attempts < max_attempts");
}

/// The condition of a running task whose lease expired on its last allowed attempt.
fn push_exhausted(sql: &mut Sql, now: i64) {
    sql.push(" WHERE state = 'running' AND lease_until_ms <= ")
        .bind(Arg::Int(now))
        .push(" AND attempts >= max_attempts");
}

fn log_reaped(reaped: &[Uuid]) {
    for id in reaped {
        tracing::error!(
            task_id = %id,
            "task is dead: the worker running its last attempt stopped renewing the lease; \
             retry it once the cause is fixed"
        );
    }
}

async fn insert_task(conn: &mut Conn<'_>, task: &NewTask) -> Result<Uuid, StoreError> {
    const ACTION: &str = "enqueue a task";
    let now = ms_to_db(now_ms());
    // A pending task holding the unique key may finish between the insert and the look-up;
    // then the insert is simply tried again.
    for _ in 0..5 {
        let (id, _) = new_id();
        let mut sql = conn.sql(
            "INSERT INTO coordinator_tasks (id, task, queue, payload, state, attempts, \
             max_attempts, run_at_ms, unique_key, origin_dispatch, created_at_ms, updated_at_ms) \
             VALUES (",
        );
        sql.bind(Arg::Id(id))
            .push(", ")
            .bind(Arg::Text(task.task.clone()))
            .push(", ")
            .bind(Arg::Text(task.queue.clone()))
            .push(", ")
            .bind(Arg::Text(task.payload.clone()))
            .push(", 'queued', 0, ")
            .bind(Arg::Int(i64::from(task.max_attempts)))
            .push(", ")
            .bind(Arg::Int(ms_to_db(task.run_at_ms)))
            .push(", ")
            .bind(Arg::OptText(task.unique_key.clone()))
            .push(", ")
            .bind(Arg::OptId(task.origin_dispatch))
            .push(", ")
            .bind(Arg::Int(now))
            .push(", ")
            .bind(Arg::Int(now))
            .push(") ON CONFLICT DO NOTHING");
        if conn.execute(ACTION, &sql).await? == 1 {
            return Ok(id);
        }
        if let Some(key) = &task.unique_key {
            let mut sql = conn.sql("SELECT id FROM coordinator_tasks WHERE task = ");
            sql.bind(Arg::Text(task.task.clone()))
                .push(" AND unique_key = ")
                .bind(Arg::Text(key.clone()))
                .push(" AND state IN ('queued', 'retrying', 'running')");
            if let Some(existing) = conn.fetch(ACTION, &sql, |row| row.id("id")).await?.pop() {
                return Ok(existing);
            }
        }
    }
    Err(StoreError::db(conn.backend(), ACTION)(
        sqlx::Error::Protocol(format!(
            "task \"{}\" could not be inserted after 5 tries: its unique key kept changing hands",
            task.task
        )),
    ))
}

async fn claim_sqlite(
    conn: &mut Conn<'_>,
    worker_id: &str,
    queues: &[String],
    limit: usize,
    lease_ms: u64,
) -> Result<Vec<ClaimedTask>, StoreError> {
    const ACTION: &str = "claim tasks";
    let now_u = now_ms();
    let now = ms_to_db(now_u);
    let lease_until = now_u.saturating_add(lease_ms);

    // Running tasks whose lease expired on their last attempt die here.
    // INDEXED BY: without statistics SQLite would read these through the index on state and
    // sort the whole backlog.
    let mut sql =
        conn.sql("SELECT id, attempts FROM coordinator_tasks INDEXED BY coordinator_tasks_leases");
    push_exhausted(&mut sql, now);
    push_queues(&mut sql, queues);
    let exhausted = conn
        .fetch(ACTION, &sql, |row| {
            Ok((row.id("id")?, row.int("attempts")?))
        })
        .await?;
    if !exhausted.is_empty() {
        let mut attempts =
            conn.sql("UPDATE coordinator_task_attempts SET status = 'lost', finished_at_ms = ");
        attempts
            .bind(Arg::Int(now))
            .push(", error_chain = ")
            .bind(Arg::Text(LOST_CHAIN.to_owned()))
            .push(" WHERE finished_at_ms IS NULL AND (");
        for (i, (id, attempt)) in exhausted.iter().enumerate() {
            if i > 0 {
                attempts.push(" OR ");
            }
            attempts
                .push("(task_id = ")
                .bind(Arg::Id(*id))
                .push(" AND attempt = ")
                .bind(Arg::Int(*attempt))
                .push(")");
        }
        attempts.push(")");
        conn.execute(ACTION, &attempts).await?;
        let mut dead = conn.sql(
            "UPDATE coordinator_tasks SET state = 'dead', lease_owner = NULL, \
             lease_until_ms = NULL, last_error = ",
        );
        dead.bind(Arg::Text(LOST_LAST_CHAIN.to_owned()))
            .push(", updated_at_ms = ")
            .bind(Arg::Int(now))
            .push(", finished_at_ms = ")
            .bind(Arg::Int(now))
            .push(" WHERE id IN ")
            .bind_list(exhausted.iter().map(|(id, _)| Arg::Id(*id)));
        conn.execute(ACTION, &dead).await?;
        log_reaped(&exhausted.iter().map(|(id, _)| *id).collect::<Vec<_>>());
    }

    // Running tasks whose lease expired come first (they are the oldest), then due tasks, each
    // read through its own partial index in claim order.
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut sql = conn.sql("SELECT id FROM coordinator_tasks INDEXED BY coordinator_tasks_leases");
    push_expired(&mut sql, now);
    push_queues(&mut sql, queues);
    sql.push(" ORDER BY lease_until_ms LIMIT ")
        .bind(Arg::Int(limit));
    let expired = conn.fetch(ACTION, &sql, |row| row.id("id")).await?;
    let mut candidates = expired.clone();
    let room = limit - i64::try_from(expired.len()).unwrap_or(limit);
    if room > 0 {
        let mut sql =
            conn.sql("SELECT id FROM coordinator_tasks INDEXED BY coordinator_tasks_ready");
        push_due(&mut sql, now);
        push_queues(&mut sql, queues);
        sql.push(" ORDER BY run_at_ms, id LIMIT ")
            .bind(Arg::Int(room));
        candidates.extend(conn.fetch(ACTION, &sql, |row| row.id("id")).await?);
    }
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    if !expired.is_empty() {
        let mut lost =
            conn.sql("UPDATE coordinator_task_attempts SET status = 'lost', finished_at_ms = ");
        lost.bind(Arg::Int(now))
            .push(", error_chain = ")
            .bind(Arg::Text(LOST_CHAIN.to_owned()))
            .push(
                " WHERE finished_at_ms IS NULL AND (task_id, attempt) IN \
                 (SELECT id, attempts FROM coordinator_tasks WHERE id IN ",
            )
            .bind_list(expired.iter().map(|id| Arg::Id(*id)))
            .push(")");
        conn.execute(ACTION, &lost).await?;
    }
    let mut sql = conn.sql(
        "UPDATE coordinator_tasks SET state = 'running', attempts = attempts + 1, lease_owner = ",
    );
    sql.bind(Arg::Text(worker_id.to_owned()))
        .push(", lease_until_ms = ")
        .bind(Arg::Int(ms_to_db(lease_until)))
        .push(", updated_at_ms = ")
        .bind(Arg::Int(now))
        .push(" WHERE id IN ")
        .bind_list(candidates.iter().map(|id| Arg::Id(*id)))
        .push(
            " RETURNING id, task, queue, payload, attempts, max_attempts, origin_dispatch, \
             'x' AS was",
        );
    let claimed = conn
        .fetch(ACTION, &sql, |row| claimed_from_row(row, lease_until))
        .await?;
    if claimed.is_empty() {
        return Ok(Vec::new());
    }
    let mut started = conn.sql(
        "INSERT INTO coordinator_task_attempts (task_id, attempt, worker, started_at_ms, status) \
         VALUES ",
    );
    for (i, (task, _)) in claimed.iter().enumerate() {
        started
            .push(if i == 0 { "(" } else { ", (" })
            .bind(Arg::Id(task.id))
            .push(", ")
            .bind(Arg::Int(i64::from(task.attempt)))
            .push(", ")
            .bind(Arg::Text(worker_id.to_owned()))
            .push(", ")
            .bind(Arg::Int(now))
            .push(", 'running')");
    }
    conn.execute(ACTION, &started).await?;
    log_recovered(&expired);
    Ok(claimed.into_iter().map(|(task, _)| task).collect())
}

async fn claim_postgres(
    conn: &mut Conn<'_>,
    worker_id: &str,
    queues: &[String],
    limit: usize,
    lease_ms: u64,
) -> Result<Vec<ClaimedTask>, StoreError> {
    const ACTION: &str = "claim tasks";
    let now_u = now_ms();
    let now = ms_to_db(now_u);
    let lease_until = now_u.saturating_add(lease_ms);

    // Running tasks whose lease expired on their last attempt die here: the task first, then
    // its attempt, in the same order as claiming locks them.
    let mut sql = conn.sql(
        "WITH dead AS (UPDATE coordinator_tasks SET state = 'dead', lease_owner = NULL, \
         lease_until_ms = NULL, last_error = ",
    );
    sql.bind(Arg::Text(LOST_LAST_CHAIN.to_owned()))
        .push(", updated_at_ms = ")
        .bind(Arg::Int(now))
        .push(", finished_at_ms = ")
        .bind(Arg::Int(now))
        .push(" WHERE id IN (SELECT id FROM coordinator_tasks");
    push_exhausted(&mut sql, now);
    push_queues(&mut sql, queues);
    sql.push(
        " FOR UPDATE SKIP LOCKED) RETURNING id, attempts) \
         UPDATE coordinator_task_attempts a SET status = 'lost', finished_at_ms = ",
    )
    .bind(Arg::Int(now))
    .push(", error_chain = ")
    .bind(Arg::Text(LOST_CHAIN.to_owned()))
    .push(
        " FROM dead WHERE a.task_id = dead.id AND a.attempt = dead.attempts \
         AND a.finished_at_ms IS NULL RETURNING a.task_id AS id",
    );
    let reaped = conn.fetch(ACTION, &sql, |row| row.id("id")).await?;
    log_reaped(&reaped);

    // Running tasks whose lease expired come first, then due tasks, each read through its own
    // partial index in claim order; rows are locked as they are read, so no more than `limit`.
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut sql = conn.sql("WITH expired AS (SELECT id, state AS was FROM coordinator_tasks");
    push_expired(&mut sql, now);
    push_queues(&mut sql, queues);
    sql.push(" ORDER BY lease_until_ms LIMIT ")
        .bind(Arg::Int(limit))
        .push(" FOR UPDATE SKIP LOCKED), due AS (SELECT id, state AS was FROM coordinator_tasks");
    push_due(&mut sql, now);
    push_queues(&mut sql, queues);
    sql.push(" ORDER BY run_at_ms, id LIMIT ")
        .bind(Arg::Int(limit))
        .push(
            " FOR UPDATE SKIP LOCKED), \
             candidates AS (SELECT id, was FROM expired UNION ALL SELECT id, was FROM due LIMIT ",
        )
        .bind(Arg::Int(limit))
        .push(
            "), \
             claimed AS (UPDATE coordinator_tasks t SET state = 'running', \
             attempts = t.attempts + 1, lease_owner = ",
        )
        .bind(Arg::Text(worker_id.to_owned()))
        .push(", lease_until_ms = ")
        .bind(Arg::Int(ms_to_db(lease_until)))
        .push(", updated_at_ms = ")
        .bind(Arg::Int(now))
        .push(
            " FROM candidates c WHERE t.id = c.id RETURNING t.id, t.task, t.queue, t.payload, \
             t.attempts, t.max_attempts, t.origin_dispatch, c.was), \
             lost AS (UPDATE coordinator_task_attempts a SET status = 'lost', finished_at_ms = ",
        )
        .bind(Arg::Int(now))
        .push(", error_chain = ")
        .bind(Arg::Text(LOST_CHAIN.to_owned()))
        .push(
            " FROM claimed c WHERE c.was = 'running' AND a.task_id = c.id \
             AND a.attempt = c.attempts - 1 AND a.finished_at_ms IS NULL), \
             started AS (INSERT INTO coordinator_task_attempts \
             (task_id, attempt, worker, started_at_ms, status) SELECT id, attempts, ",
        )
        .bind(Arg::Text(worker_id.to_owned()))
        .push(", ")
        .bind(Arg::Int(now))
        .push(
            ", 'running' FROM claimed) \
             SELECT id, task, queue, payload, attempts, max_attempts, origin_dispatch, was \
             FROM claimed",
        );
    let claimed = conn
        .fetch(ACTION, &sql, |row| claimed_from_row(row, lease_until))
        .await?;
    let recovered: Vec<Uuid> = claimed
        .iter()
        .filter(|(_, was_running)| *was_running)
        .map(|(task, _)| task.id)
        .collect();
    log_recovered(&recovered);
    Ok(claimed.into_iter().map(|(task, _)| task).collect())
}

fn log_recovered(ids: &[Uuid]) {
    for id in ids {
        tracing::warn!(
            task_id = %id,
            "claimed a running task whose worker stopped renewing its lease; its attempt is \
             recorded as lost and it runs again"
        );
    }
}

async fn state_error(
    conn: &mut Conn<'_>,
    id: Uuid,
    action: &'static str,
    allowed: &'static str,
    done: &'static str,
) -> StoreError {
    let mut sql = conn.sql("SELECT state FROM coordinator_tasks WHERE id = ");
    sql.bind(Arg::Id(id));
    match conn
        .fetch("read a task", &sql, |row| {
            row.text("state")?
                .parse::<TaskState>()
                .map_err(|e| corrupt(&id.to_string(), e))
        })
        .await
    {
        Ok(found) => match found.first() {
            Some(state) => StoreError::TaskState {
                action,
                id,
                state: *state,
                allowed,
                done,
            },
            None => StoreError::TaskNotFound { action, id },
        },
        Err(e) => e,
    }
}

async fn duplicate_error(conn: &mut Conn<'_>, id: Uuid) -> StoreError {
    let mut sql = conn.sql(
        "SELECT p.id AS id, p.task AS task, p.unique_key AS unique_key \
         FROM coordinator_tasks t JOIN coordinator_tasks p \
         ON p.task = t.task AND p.unique_key = t.unique_key AND p.id <> t.id \
         WHERE p.state IN ('queued', 'retrying', 'running') AND t.id = ",
    );
    sql.bind(Arg::Id(id));
    match conn
        .fetch("read a task", &sql, |row| {
            Ok((
                row.id("id")?,
                row.text("task")?,
                row.opt_text("unique_key")?.unwrap_or_default(),
            ))
        })
        .await
    {
        Ok(mut found) => match found.pop() {
            Some((pending, task, unique_key)) => StoreError::DuplicatePendingTask {
                id,
                task,
                unique_key,
                pending,
            },
            // The other task finished meanwhile: the caller may simply try again.
            None => StoreError::db(conn.backend(), "retry a task")(sqlx::Error::Protocol(
                "another task held the same unique key a moment ago; try again".to_owned(),
            )),
        },
        Err(e) => e,
    }
}

// ---------------------------------------------------------------------------------------------
// Rows

fn corrupt(id: &str, reason: impl Into<String>) -> StoreError {
    StoreError::CorruptTask {
        id: id.to_owned(),
        reason: reason.into(),
    }
}

fn to_u64(id: &str, column: &str, v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| corrupt(id, format!("{column} is negative ({v})")))
}

fn to_u32(id: &str, column: &str, v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| corrupt(id, format!("{column} is out of range ({v})")))
}

fn chain_from(id: &str, column: &str, text: Option<String>) -> Result<Vec<String>, StoreError> {
    match text {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| corrupt(id, format!("{column} is not a JSON list of strings: {e}"))),
    }
}

fn task_from_row(row: &dyn RowRead) -> Result<StoredTask, StoreError> {
    let id = row.id("id")?;
    let sid = id.to_string();
    let s = sid.as_str();
    let payload = row.text("payload")?;
    Ok(StoredTask {
        id,
        task: row.text("task")?,
        queue: row.text("queue")?,
        payload: serde_json::from_str(&payload)
            .map_err(|e| corrupt(s, format!("its payload is not JSON: {e}")))?,
        state: row.text("state")?.parse().map_err(|e| corrupt(s, e))?,
        attempts: to_u32(s, "attempts", row.int("attempts")?)?,
        max_attempts: to_u32(s, "max_attempts", row.int("max_attempts")?)?,
        run_at_ms: to_u64(s, "run_at_ms", row.int("run_at_ms")?)?,
        lease_owner: row.opt_text("lease_owner")?,
        lease_until_ms: row
            .opt_int("lease_until_ms")?
            .map(|v| to_u64(s, "lease_until_ms", v))
            .transpose()?,
        unique_key: row.opt_text("unique_key")?,
        origin_dispatch: row.opt_id("origin_dispatch")?,
        result: row.opt_text("result")?,
        last_error: chain_from(s, "last_error", row.opt_text("last_error")?)?,
        created_at_ms: to_u64(s, "created_at_ms", row.int("created_at_ms")?)?,
        updated_at_ms: to_u64(s, "updated_at_ms", row.int("updated_at_ms")?)?,
        finished_at_ms: row
            .opt_int("finished_at_ms")?
            .map(|v| to_u64(s, "finished_at_ms", v))
            .transpose()?,
        history: Vec::new(),
    })
}

fn attempt_from_row(id: Uuid, row: &dyn RowRead) -> Result<TaskAttempt, StoreError> {
    let sid = id.to_string();
    let s = sid.as_str();
    Ok(TaskAttempt {
        attempt: to_u32(s, "attempt", row.int("attempt")?)?,
        worker: row.text("worker")?,
        started_at_ms: to_u64(s, "started_at_ms", row.int("started_at_ms")?)?,
        finished_at_ms: row
            .opt_int("finished_at_ms")?
            .map(|v| to_u64(s, "finished_at_ms", v))
            .transpose()?,
        status: row.text("status")?.parse().map_err(|e| corrupt(s, e))?,
        error_chain: chain_from(s, "error_chain", row.opt_text("error_chain")?)?,
    })
}

/// A claimed task, and whether it was running (its lease had expired) before the claim.
fn claimed_from_row(
    row: &dyn RowRead,
    lease_until_ms: u64,
) -> Result<(ClaimedTask, bool), StoreError> {
    let id = row.id("id")?;
    let sid = id.to_string();
    let s = sid.as_str();
    Ok((
        ClaimedTask {
            id,
            task: row.text("task")?,
            queue: row.text("queue")?,
            payload: row.text("payload")?,
            attempt: to_u32(s, "attempts", row.int("attempts")?)?,
            max_attempts: to_u32(s, "max_attempts", row.int("max_attempts")?)?,
            origin_dispatch: row.opt_id("origin_dispatch")?,
            lease_until_ms,
        },
        row.text("was")? == "running",
    ))
}

/// Reads the columns of a row of either backend by name (ids are TEXT on SQLite, UUID on
/// PostgreSQL; integers are BIGINT or INTEGER).
trait RowRead {
    fn text(&self, column: &str) -> Result<String, StoreError>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError>;
    fn int(&self, column: &str) -> Result<i64, StoreError>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError>;
    fn id(&self, column: &str) -> Result<Uuid, StoreError>;
    fn opt_id(&self, column: &str) -> Result<Option<Uuid>, StoreError>;
}

fn column_error(column: &str, e: sqlx::Error) -> StoreError {
    corrupt("(unknown)", format!("column {column}: {e}"))
}

fn parse_id(column: &str, text: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(text).map_err(|e| corrupt(text, format!("{column} is not a UUID: {e}")))
}

impl RowRead for SqliteRow {
    fn text(&self, column: &str) -> Result<String, StoreError> {
        self.try_get(column).map_err(|e| column_error(column, e))
    }
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        self.try_get(column).map_err(|e| column_error(column, e))
    }
    fn int(&self, column: &str) -> Result<i64, StoreError> {
        self.try_get(column).map_err(|e| column_error(column, e))
    }
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        self.try_get(column).map_err(|e| column_error(column, e))
    }
    fn id(&self, column: &str) -> Result<Uuid, StoreError> {
        parse_id(column, &self.text(column)?)
    }
    fn opt_id(&self, column: &str) -> Result<Option<Uuid>, StoreError> {
        self.opt_text(column)?
            .map(|text| parse_id(column, &text))
            .transpose()
    }
}

impl RowRead for PgRow {
    fn text(&self, column: &str) -> Result<String, StoreError> {
        self.try_get(column).map_err(|e| column_error(column, e))
    }
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        self.try_get(column).map_err(|e| column_error(column, e))
    }
    fn int(&self, column: &str) -> Result<i64, StoreError> {
        self.try_get::<i64, _>(column)
            .or_else(|_| self.try_get::<i32, _>(column).map(i64::from))
            .map_err(|e| column_error(column, e))
    }
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        self.try_get::<Option<i64>, _>(column)
            .or_else(|_| {
                self.try_get::<Option<i32>, _>(column)
                    .map(|v| v.map(i64::from))
            })
            .map_err(|e| column_error(column, e))
    }
    fn id(&self, column: &str) -> Result<Uuid, StoreError> {
        self.try_get(column).map_err(|e| column_error(column, e))
    }
    fn opt_id(&self, column: &str) -> Result<Option<Uuid>, StoreError> {
        self.try_get(column).map_err(|e| column_error(column, e))
    }
}

/// A connection of either backend (pooled, or a transaction's), on which the task operations
/// are written once.
enum Conn<'c> {
    Sqlite(&'c mut SqliteConnection),
    Postgres(&'c mut PgConnection),
}

impl Conn<'_> {
    fn backend(&self) -> Backend {
        match self {
            Conn::Sqlite(_) => Backend::Sqlite,
            Conn::Postgres(_) => Backend::Postgres,
        }
    }

    fn sql(&self, text: &str) -> Sql {
        Sql::new(self.backend(), text)
    }

    async fn execute_raw(&mut self, sql: &Sql) -> Result<u64, sqlx::Error> {
        match self {
            Conn::Sqlite(c) => sqlite::query(sql)
                .execute(&mut **c)
                .await
                .map(|done| done.rows_affected()),
            Conn::Postgres(c) => postgres::query(sql)
                .execute(&mut **c)
                .await
                .map(|done| done.rows_affected()),
        }
    }

    async fn execute(&mut self, action: &'static str, sql: &Sql) -> Result<u64, StoreError> {
        let backend = self.backend();
        self.execute_raw(sql)
            .await
            .map_err(StoreError::db(backend, action))
    }

    async fn fetch<T>(
        &mut self,
        action: &'static str,
        sql: &Sql,
        map: impl Fn(&dyn RowRead) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let backend = self.backend();
        let err = StoreError::db(backend, action);
        match self {
            Conn::Sqlite(c) => {
                let rows = sqlite::query(sql).fetch_all(&mut **c).await.map_err(err)?;
                rows.iter().map(|row| map(row)).collect()
            }
            Conn::Postgres(c) => {
                let rows = postgres::query(sql)
                    .fetch_all(&mut **c)
                    .await
                    .map_err(err)?;
                rows.iter().map(|row| map(row)).collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_statuses_round_trip_through_text() {
        for state in TaskState::ALL {
            assert_eq!(state.as_str().parse::<TaskState>(), Ok(state));
            assert_eq!(
                serde_json::to_value(state).unwrap(),
                serde_json::Value::from(state.as_str())
            );
        }
        for status in AttemptStatus::ALL {
            assert_eq!(status.as_str().parse::<AttemptStatus>(), Ok(status));
        }
        let e = "done".parse::<TaskState>().unwrap_err();
        assert!(e.contains("queued, running"), "{e}");
        assert!(TaskState::Retrying.is_pending() && !TaskState::Dead.is_pending());
    }

    #[test]
    fn the_lost_chains_are_json_lists() {
        for chain in [LOST_CHAIN, LOST_LAST_CHAIN] {
            let parsed: Vec<String> = serde_json::from_str(chain).unwrap();
            assert_eq!(parsed.len(), 1);
        }
    }

    #[test]
    fn task_query_limits_are_clamped_and_schemas_use_uuid_strings() {
        assert_eq!(
            TaskQuery {
                limit: 0,
                ..TaskQuery::default()
            }
            .effective_limit(),
            1
        );
        assert_eq!(
            TaskQuery {
                limit: 9999,
                ..TaskQuery::default()
            }
            .effective_limit(),
            500
        );
        let parsed: TaskQuery = serde_json::from_str(r#"{"state":"dead"}"#).unwrap();
        assert_eq!((parsed.state, parsed.limit), (Some(TaskState::Dead), 50));
        let schema = serde_json::to_value(schemars::schema_for!(StoredTask)).unwrap();
        assert_eq!(schema["properties"]["id"]["format"], "uuid", "{schema}");
    }
}
