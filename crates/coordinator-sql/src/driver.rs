//! What each SQL backend provides: its connections and transactions, and the operations that
//! differ by database (enqueue, claim, migrate). [`SqlStore`](crate::SqlStore) builds every
//! store trait of the core on top.

use std::future::Future;

use coordinator::dispatch_log::DurableDispatch;
use coordinator::store::StoreError;
use coordinator::store::migrate::{AppliedMigration, Planned, Recorded};
use coordinator::task::{ClaimedTask, NewTask};
use uuid::Uuid;

use crate::conn::SqlConn;
use crate::sql::Dialect;
use crate::tasks::claim::Claim;

/// A SQL database driver: the part of a backend that is its own.
pub trait SqlDriver: Send + Sync + 'static {
    /// The dialect of its SQL.
    const DIALECT: Dialect;

    /// A connection for reads, or for writes committed statement by statement.
    type Conn: SqlConn;

    /// An open transaction (rolled back if dropped).
    type Tx: SqlConn + 'static;

    /// A connection for reads (`action` names it in errors).
    fn read(
        &self,
        action: &'static str,
    ) -> impl Future<Output = Result<Self::Conn, StoreError>> + Send;

    /// A connection for writes outside a transaction.
    fn write(
        &self,
        action: &'static str,
    ) -> impl Future<Output = Result<Self::Conn, StoreError>> + Send;

    /// Begins a write transaction.
    fn begin(
        &self,
        action: &'static str,
    ) -> impl Future<Output = Result<Self::Tx, StoreError>> + Send;

    /// Commits `tx`.
    fn commit(tx: Self::Tx) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// Rolls `tx` back.
    fn rollback(tx: Self::Tx) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// Adds a task on its own (see `TaskQueue::enqueue_task`): each backend batches or keeps
    /// connections its own way.
    fn enqueue(&self, task: &NewTask) -> impl Future<Output = Result<Uuid, StoreError>> + Send;

    /// Stores a durable dispatch in one transaction (see `TaskQueue::enqueue_dispatch`);
    /// `false` when its intake key was recorded before.
    fn enqueue_dispatch(
        &self,
        dispatch: &DurableDispatch,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Claims tasks (see `TaskQueue::claim_tasks`).
    fn claim(
        &self,
        claim: Claim<'_>,
    ) -> impl Future<Output = Result<Vec<ClaimedTask>, StoreError>> + Send;

    /// Applies the planned migrations not applied yet, keeping concurrent processes apart.
    fn apply_migrations(
        &self,
        plan: &[Planned],
    ) -> impl Future<Output = Result<Vec<AppliedMigration>, StoreError>> + Send;

    /// The migrations the database recorded (none when it has no table for them).
    fn recorded_migrations(&self)
    -> impl Future<Output = Result<Vec<Recorded>, StoreError>> + Send;

    /// Closes every connection.
    fn close(&self) -> impl Future<Output = ()> + Send;
}
