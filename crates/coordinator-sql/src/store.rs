//! [`SqlStore`]: every storage trait of the core, written once over a [`SqlDriver`].

use std::any::Any;
use std::time::Duration;

use async_trait::async_trait;
use coordinator::dispatch_log::{DispatchPage, DispatchQuery, DurableDispatch, StoredDispatch};
use coordinator::id::now_ms;
use coordinator::migration::Migration;
use coordinator::store::migrate::{AppliedMigration, Planned, Recorded};
use coordinator::store::{Backend, DispatchLogStore, Inbox, StoreError, TaskQueue, Transaction};
use coordinator::task::{
    ClaimedTask, NewTask, StoredTask, TaskCount, TaskOutcome, TaskPage, TaskQuery,
};
use uuid::Uuid;

use crate::conn::SqlConn;
use crate::driver::SqlDriver;
use crate::tasks::claim::Claim;
use crate::tasks::{enqueue, listing, operate, outcomes};
use crate::{dispatches, inbox, schema};

/// A store on a SQL database: the core's [`Backend`] over the driver `D`.
#[derive(Debug)]
pub struct SqlStore<D> {
    driver: D,
}

impl<D: SqlDriver> SqlStore<D> {
    /// A store over `driver`.
    pub fn new(driver: D) -> Self {
        Self { driver }
    }

    /// The driver, for the backend's own API.
    pub fn driver(&self) -> &D {
        &self.driver
    }
}

/// Runs `$body` (a future using the transaction `$tx`) in a write transaction of the driver `D`
/// and commits it if the body succeeds.
macro_rules! in_tx {
    ($store:expr, $action:expr, |$tx:ident| $body:expr) => {{
        let mut $tx = $store.driver.begin($action).await?;
        let out = $body.await?;
        commit::<D>($tx).await?;
        Ok(out)
    }};
}

#[async_trait]
impl<D: SqlDriver> TaskQueue for SqlStore<D> {
    async fn enqueue_task(&self, task: &NewTask) -> Result<Uuid, StoreError> {
        self.driver.enqueue(task).await
    }

    async fn enqueue_dispatch(&self, dispatch: &DurableDispatch) -> Result<bool, StoreError> {
        self.driver.enqueue_dispatch(dispatch).await
    }

    async fn claim_tasks(
        &self,
        worker: &str,
        queues: &[String],
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<ClaimedTask>, StoreError> {
        let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
        let claim = Claim {
            worker,
            queues,
            limit,
            lease_ms,
        };
        self.driver.claim(claim).await
    }

    async fn renew_leases(
        &self,
        worker: &str,
        ids: &[Uuid],
        lease: Duration,
    ) -> Result<Vec<Uuid>, StoreError> {
        let until = now_ms().saturating_add(u64::try_from(lease.as_millis()).unwrap_or(u64::MAX));
        let mut conn = self.driver.write(outcomes::RENEW).await?;
        outcomes::renew_leases(&mut conn, worker, ids, until).await
    }

    async fn record_outcomes(
        &self,
        worker: &str,
        outcomes: &[(Uuid, u32, &TaskOutcome)],
    ) -> Result<Vec<bool>, StoreError> {
        in_tx!(self, outcomes::RECORD, |tx| outcomes::record_outcomes(
            &mut tx, worker, outcomes
        ))
    }

    async fn release_tasks(&self, worker: &str, ids: &[Uuid]) -> Result<u64, StoreError> {
        in_tx!(self, outcomes::RELEASE, |tx| outcomes::release_tasks(
            &mut tx, worker, ids
        ))
    }

    async fn retry_task(&self, id: Uuid) -> Result<(), StoreError> {
        let mut conn = self.driver.write("retry a task").await?;
        operate::retry_task(&mut conn, id).await
    }

    async fn cancel_task(&self, id: Uuid) -> Result<(), StoreError> {
        let mut conn = self.driver.write("cancel a task").await?;
        operate::cancel_task(&mut conn, id).await
    }

    async fn get_task(&self, id: Uuid) -> Result<Option<StoredTask>, StoreError> {
        let mut conn = self.driver.read("read a task").await?;
        listing::get_task(&mut conn, id).await
    }

    async fn list_tasks(&self, query: &TaskQuery) -> Result<TaskPage, StoreError> {
        let mut conn = self.driver.read("list tasks").await?;
        listing::list_tasks(&mut conn, query).await
    }

    async fn task_counts(&self) -> Result<Vec<TaskCount>, StoreError> {
        let mut conn = self.driver.read("count tasks").await?;
        listing::task_counts(&mut conn).await
    }

    async fn purge_finished_tasks(&self, finished_before_ms: u64) -> Result<u64, StoreError> {
        let mut purged = 0;
        loop {
            let mut tx = self.driver.begin("purge finished tasks").await?;
            let n = operate::purge_finished_chunk(&mut tx, finished_before_ms).await?;
            commit::<D>(tx).await?;
            purged += n;
            if n < operate::PURGE_CHUNK {
                return Ok(purged);
            }
        }
    }
}

#[async_trait]
impl<D: SqlDriver> DispatchLogStore for SqlStore<D> {
    async fn insert_dispatches(&self, batch: &[StoredDispatch]) -> Result<(), StoreError> {
        in_tx!(self, "store dispatch reports", |tx| {
            dispatches::insert_dispatches(&mut tx, batch)
        })
    }

    async fn list_dispatches(&self, query: &DispatchQuery) -> Result<DispatchPage, StoreError> {
        let mut conn = self.driver.read("read dispatch reports").await?;
        dispatches::list_dispatches(&mut conn, query).await
    }

    async fn get_dispatch(&self, id: Uuid) -> Result<Option<StoredDispatch>, StoreError> {
        let mut conn = self.driver.read("read dispatch reports").await?;
        dispatches::get_dispatch(&mut conn, id).await
    }

    async fn purge_dispatches(&self, older_than_ms: u64) -> Result<u64, StoreError> {
        in_tx!(self, "purge old dispatch reports", |tx| {
            dispatches::purge_dispatches(&mut tx, older_than_ms)
        })
    }
}

#[async_trait]
impl<D: SqlDriver> Inbox for SqlStore<D> {
    async fn purge_inbox(&self, received_before_ms: u64) -> Result<u64, StoreError> {
        let mut conn = self.driver.write("purge the inbox").await?;
        inbox::purge_inbox(&mut conn, received_before_ms).await
    }
}

#[async_trait]
impl<D: SqlDriver> Backend for SqlStore<D> {
    fn name(&self) -> &'static str {
        D::DIALECT.backend()
    }

    fn framework_migrations(&self) -> Vec<Migration> {
        schema::framework_migrations(D::DIALECT)
    }

    async fn apply_migrations(
        &self,
        plan: &[Planned],
    ) -> Result<Vec<AppliedMigration>, StoreError> {
        self.driver.apply_migrations(plan).await
    }

    async fn recorded_migrations(&self) -> Result<Vec<Recorded>, StoreError> {
        self.driver.recorded_migrations().await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.driver.read("answer a ping").await?;
        let sql = conn.sql("SELECT 1");
        conn.execute("answer a ping", &sql).await.map(|_| ())
    }

    async fn begin(&self) -> Result<Box<dyn Transaction>, StoreError> {
        let tx = self.driver.begin("begin a transaction").await?;
        Ok(Box::new(SqlTx::<D> { tx }))
    }

    async fn close(&self) {
        self.driver.close().await;
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A transaction of a [`SqlStore`].
struct SqlTx<D: SqlDriver> {
    tx: D::Tx,
}

#[async_trait]
impl<D: SqlDriver> Transaction for SqlTx<D> {
    async fn enqueue_task(&mut self, task: &NewTask) -> Result<Uuid, StoreError> {
        enqueue::insert_task(&mut self.tx, task).await
    }

    async fn enqueue_dispatch(&mut self, dispatch: &DurableDispatch) -> Result<bool, StoreError> {
        enqueue::insert_dispatch(&mut self.tx, dispatch).await
    }

    async fn record_intake(&mut self, source: &str, external_id: &str) -> Result<bool, StoreError> {
        inbox::record_intake(&mut self.tx, source, external_id).await
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        commit::<D>(self.tx).await
    }

    async fn rollback(self: Box<Self>) -> Result<(), StoreError> {
        D::rollback(self.tx).await.map_err(StoreError::database(
            D::DIALECT.backend(),
            "roll back a transaction",
        ))
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        &mut self.tx
    }
}

/// Commits `tx`, naming the failure.
pub(crate) async fn commit<D: SqlDriver>(tx: D::Tx) -> Result<(), StoreError> {
    D::commit(tx).await.map_err(StoreError::database(
        D::DIALECT.backend(),
        "commit a transaction",
    ))
}
