//! The one writer connection, and write transactions on it.
//!
//! SQLite lets one connection write at a time. Connections that race for the write lock wait
//! in SQLite's busy handler, which sleeps in steps of up to 100 ms: under load that is where
//! the time goes. Every write of the coordinator therefore goes through one connection behind
//! a fair async lock, where writers queue in order and get the connection as soon as it is
//! free; reads use a pool of readers and never wait for a writer (WAL). See
//! `docs/decisions/0009-sqlite-single-writer.md`.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use coordinator::store::StoreError;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, Sqlite, SqliteConnection, TransactionManager as _};
use tokio::sync::{Mutex, OwnedMappedMutexGuard, OwnedMutexGuard};

use crate::NAME;

/// How long a connection waits for another's write lock before failing.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The one writer connection, opened when first used and kept (no pool: a pool pings a
/// connection each time it is returned, a round trip to SQLite's thread per write).
#[derive(Clone)]
pub(crate) struct Writer {
    options: Arc<SqliteConnectOptions>,
    conn: Arc<Mutex<Option<SqliteConnection>>>,
    /// Set by `close`: no connection is opened again.
    closed: Arc<AtomicBool>,
}

impl fmt::Debug for Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

/// The writer connection, held until dropped.
pub(crate) type WriteGuard = OwnedMappedMutexGuard<Option<SqliteConnection>, SqliteConnection>;

impl Writer {
    pub(crate) fn new(options: SqliteConnectOptions) -> Self {
        Self {
            options: Arc::new(options),
            conn: Arc::new(Mutex::new(None)),
            closed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Waits for the writer connection (first come, first served), up to the busy timeout.
    pub(crate) async fn lock(&self, action: &'static str) -> Result<WriteGuard, StoreError> {
        let err = StoreError::database(NAME, action);
        let mut guard = tokio::time::timeout(BUSY_TIMEOUT, Arc::clone(&self.conn).lock_owned())
            .await
            .map_err(|_| StoreError::WriterBusy {
                backend: NAME,
                action,
                waited_ms: u64::try_from(BUSY_TIMEOUT.as_millis()).unwrap_or(u64::MAX),
            })?;
        if self.closed.load(Ordering::Acquire) {
            return Err(err(sqlx::Error::PoolClosed));
        }
        if guard.is_none() {
            *guard = Some(
                SqliteConnection::connect_with(&self.options)
                    .await
                    .map_err(err)?,
            );
        }
        Ok(OwnedMutexGuard::map(guard, |conn| {
            conn.as_mut().expect("opened above")
        }))
    }

    pub(crate) async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Some(conn) = self.conn.lock().await.take() {
            let _ = conn.close().await;
        }
    }

    /// Begins a write transaction on the writer (`BEGIN IMMEDIATE`).
    pub(crate) async fn begin(&self, action: &'static str) -> Result<Tx, StoreError> {
        Tx::begin_on(self.lock(action).await?, action).await
    }
}

/// A write transaction on the coordinator's writer connection; rolled back if dropped before
/// it commits.
///
/// An extension's own queries in a [`StoreTx`](coordinator::store::StoreTx) run on its
/// connection: `tx.backend_tx::<coordinator_sqlite::Tx>().map(|tx| tx.connection())`.
pub struct Tx {
    /// The writer, while the transaction is open.
    conn: Option<WriteGuard>,
}

impl fmt::Debug for Tx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tx")
            .field("open", &self.conn.is_some())
            .finish()
    }
}

impl Tx {
    /// Begins a write transaction (`BEGIN IMMEDIATE`) on the writer, already held.
    ///
    /// The `BEGIN` runs to its end on a task of its own, even if the caller stops waiting
    /// (a handler abandoned at its timeout while SQLite waited for another process's lock):
    /// sqlx rolls back a `BEGIN` whose caller left while SQLite was still answering it, but
    /// not one whose caller left just after (sqlx then checks the transaction with one more
    /// round trip). That transaction would stay open on the writer with no one to end it:
    /// every later `BEGIN` refused, the worker thread of the connection stopped, and the
    /// database's write lock held until the process exits. Here a transaction begun for a
    /// caller who left is dropped, which queues its rollback before the writer is free again.
    pub(crate) async fn begin_on(conn: WriteGuard, action: &'static str) -> Result<Tx, StoreError> {
        let (began, beginning) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut conn = conn;
            let result = <Sqlite as sqlx::Database>::TransactionManager::begin(
                &mut conn,
                Some("BEGIN IMMEDIATE".into()),
            )
            .await
            .map(|()| Tx { conn: Some(conn) });
            // Not taken (the caller left): the `Tx` is dropped here, and rolled back.
            let _ = began.send(result);
        });
        match beginning.await {
            Ok(result) => result.map_err(StoreError::database(NAME, action)),
            Err(_) => Err(StoreError::database(NAME, action)(
                "the task beginning the transaction stopped before it answered (the runtime is \
                 shutting down)",
            )),
        }
    }

    /// The connection this transaction runs on.
    pub fn connection(&mut self) -> &mut SqliteConnection {
        self.conn
            .as_mut()
            .expect("a transaction is open until it ends")
    }

    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.finish(true).await.map(drop)
    }

    pub(crate) async fn rollback(self) -> Result<(), sqlx::Error> {
        self.finish(false).await.map(drop)
    }

    /// Commits (or rolls back) and gives the writer back, for the next transaction.
    ///
    /// The guard stays in the transaction until the database has answered: if this future is
    /// dropped half-way (a request cut off by its timeout), `Drop` still queues the rollback
    /// sqlx expects, so the writer never stays inside a transaction.
    pub(crate) async fn finish(mut self, commit: bool) -> Result<WriteGuard, sqlx::Error> {
        let conn = self.connection();
        if commit {
            <Sqlite as sqlx::Database>::TransactionManager::commit(conn).await?;
        } else {
            <Sqlite as sqlx::Database>::TransactionManager::rollback(conn).await?;
        }
        Ok(self
            .conn
            .take()
            .expect("a transaction is open until it ends"))
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if let Some(conn) = &mut self.conn {
            // Queued on the connection's thread before anything the next holder sends.
            <Sqlite as sqlx::Database>::TransactionManager::start_rollback(conn);
        }
    }
}
