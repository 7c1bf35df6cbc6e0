//! The coordinator's SQLite backend: a local file, the embedded default.
//!
//! The file is opened in WAL mode with `synchronous=NORMAL`: a pool of `max_connections`
//! readers, and one writer through which every write of the coordinator queues
//! (`docs/decisions/0009-sqlite-single-writer.md`). Concurrent enqueues are written together;
//! claims are write transactions on the writer. Everything else is the shared SQL of
//! `coordinator-sql`.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let store = coordinator_sqlite::connect(&format!("sqlite://{}/c.db", dir.path().display()), 4)
//!     .await
//!     .unwrap();
//! assert_eq!(store.backend(), "sqlite");
//! store.migrate(&[]).await.unwrap();
//! assert!(coordinator_sqlite::read_pool(&store).is_some());
//! # });
//! ```

mod claim;
mod conn;
mod connect;
mod enqueue;
mod migrate;
pub mod testing;
mod writer;

use std::sync::{Arc, Mutex};

use coordinator::dispatch_log::DurableDispatch;
use coordinator::store::migrate::{AppliedMigration, Planned, Recorded};
use coordinator::store::{Store, StoreError};
use coordinator::task::{ClaimedTask, NewTask};
use coordinator_sql::tasks::claim::Claim;
use coordinator_sql::{Dialect, SqlDriver, SqlStore};
use sqlx::SqlitePool;
use uuid::Uuid;

pub use writer::Tx;

use crate::conn::Conn;
use crate::connect::{Create, Pools};

/// The backend's name, as `[storage] url` schemes and migrations name it.
pub const NAME: &str = Dialect::Sqlite.backend();

/// A store on a SQLite database.
pub type SqliteStore = SqlStore<SqliteDriver>;

/// Opens the SQLite database `url` names (`sqlite://<path>`; the folder and the file are
/// created if missing) with `max_connections` readers and one writer. Errors never show the
/// URL's credentials; an in-memory database is refused (it would lose every task).
pub async fn connect(url: &str, max_connections: u32) -> Result<Store, StoreError> {
    let pools = connect::open(url, max_connections, Create::IfMissing).await?;
    Ok(Store::new(SqliteStore::new(SqliteDriver::new(pools))))
}

/// Like [`connect`], for a database that must exist already (commands that only read or
/// operate it): a missing file is an error, not an empty database created.
pub async fn connect_existing(url: &str, max_connections: u32) -> Result<Store, StoreError> {
    let pools = connect::open(url, max_connections, Create::Never).await?;
    Ok(Store::new(SqliteStore::new(SqliteDriver::new(pools))))
}

/// Like [`connect`], but every connection opens when first used: for code that cannot wait
/// (a test harness built in synchronous code). It must be called within a Tokio runtime.
pub fn connect_lazy(url: &str, max_connections: u32) -> Result<Store, StoreError> {
    Ok(Store::new(SqliteStore::new(SqliteDriver::new(
        connect::open_lazy(url, max_connections)?,
    ))))
}

/// The pool of readers of `store`, when it is a SQLite store, for an extension's own queries.
///
/// The coordinator makes its own writes on one connection of its own, so a write on this pool
/// waits for SQLite's write lock (up to the 5 s busy timeout) while the coordinator writes;
/// write in a [`StoreTx`](coordinator::store::StoreTx) instead (its [`Tx`]), which queues with
/// the coordinator's writes.
pub fn read_pool(store: &Store) -> Option<&SqlitePool> {
    store
        .backend_as::<SqliteStore>()
        .map(|s| &s.driver().pools.read)
}

/// The SQLite driver: a pool of readers, the writer, and the enqueues waiting to be written
/// together.
#[derive(Clone)]
pub struct SqliteDriver {
    pools: Pools,
    pending: Arc<Mutex<enqueue::Pending>>,
}

impl std::fmt::Debug for SqliteDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteDriver").finish_non_exhaustive()
    }
}

impl SqliteDriver {
    fn new(pools: Pools) -> Self {
        Self {
            pools,
            pending: Arc::default(),
        }
    }
}

impl SqlDriver for SqliteDriver {
    const DIALECT: Dialect = Dialect::Sqlite;
    type Conn = Conn;
    type Tx = Tx;

    async fn read(&self, action: &'static str) -> Result<Conn, StoreError> {
        let conn = self
            .pools
            .read
            .acquire()
            .await
            .map_err(StoreError::database(NAME, action))?;
        Ok(Conn::read(conn))
    }

    async fn write(&self, action: &'static str) -> Result<Conn, StoreError> {
        Ok(Conn::write(self.pools.write.lock(action).await?))
    }

    async fn begin(&self, action: &'static str) -> Result<Tx, StoreError> {
        self.pools.write.begin(action).await
    }

    async fn commit(tx: Tx) -> Result<(), sqlx::Error> {
        tx.commit().await
    }

    async fn rollback(tx: Tx) -> Result<(), sqlx::Error> {
        tx.rollback().await
    }

    async fn enqueue(&self, task: &NewTask) -> Result<Uuid, StoreError> {
        let write = enqueue::Write::Task(task.clone());
        Ok(enqueue::enqueue(&self.pools, &self.pending, write)
            .await?
            .expect("a task enqueue gives an id"))
    }

    async fn enqueue_dispatch(&self, dispatch: &DurableDispatch) -> Result<bool, StoreError> {
        let write = enqueue::Write::Dispatch(dispatch.clone());
        Ok(enqueue::enqueue(&self.pools, &self.pending, write)
            .await?
            .is_some())
    }

    async fn claim(&self, claim: Claim<'_>) -> Result<Vec<ClaimedTask>, StoreError> {
        let mut tx = self
            .pools
            .write
            .begin(coordinator_sql::tasks::claim::ACTION)
            .await?;
        let claimed = claim::claim(&mut tx, claim).await?;
        tx.commit()
            .await
            .map_err(StoreError::database(NAME, "commit a claim"))?;
        Ok(claimed)
    }

    async fn apply_migrations(
        &self,
        plan: &[Planned],
    ) -> Result<Vec<AppliedMigration>, StoreError> {
        migrate::apply_migrations(&self.pools, plan).await
    }

    async fn recorded_migrations(&self) -> Result<Vec<Recorded>, StoreError> {
        migrate::recorded_migrations(&self.pools).await
    }

    async fn close(&self) {
        self.pools.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_folder_that_cannot_be_created_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-folder");
        std::fs::write(&file, "").unwrap();
        let e = connect(&format!("sqlite://{}/sub/c.db", file.display()), 1)
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::CreateDir { .. }), "{e:?}");
        assert!(e.to_string().contains("not-a-folder/sub"), "{e}");
    }

    #[tokio::test]
    async fn an_in_memory_database_is_refused_with_the_reason() {
        for url in ["sqlite::memory:", "sqlite://x.db?mode=memory"] {
            let e = connect(url, 1).await.unwrap_err();
            assert!(matches!(e, StoreError::InvalidUrl { .. }), "{e:?}");
            assert!(
                e.to_string()
                    .contains("in-memory database loses every task"),
                "{e}"
            );
        }
    }

    /// The queries that replaced the dropped indexes (migration `coordinator/5`) read a range
    /// of a primary key, not the whole table: the purge of old dispatches and a `since` listing.
    #[tokio::test]
    async fn dispatches_by_time_are_found_by_their_ids_without_a_scan() {
        use sqlx::{Connection, Row};
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/c.db", dir.path().display());
        let store = connect(&url, 1).await.unwrap();
        store.migrate(&[]).await.unwrap();
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let id = "01a22949-1bc7-7000-949e-12625a75accd";
        for sql in [
            format!("DELETE FROM coordinator_dispatch_runs WHERE dispatch_id < '{id}'"),
            format!("DELETE FROM coordinator_dispatches WHERE id < '{id}'"),
            format!(
                "SELECT d.id FROM coordinator_dispatches d WHERE 1 = 1 AND d.sent_at_ms >= 5 \
                 AND d.id >= '{id}' ORDER BY d.id DESC LIMIT 50"
            ),
        ] {
            let plan: Vec<String> = sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
                .fetch_all(&mut conn)
                .await
                .unwrap()
                .iter()
                .map(|row| row.get::<String, _>("detail"))
                .collect();
            assert!(
                plan.iter().all(|step| !step.starts_with("SCAN")),
                "{sql}: {plan:?}"
            );
        }
        store.close().await;
    }
}
