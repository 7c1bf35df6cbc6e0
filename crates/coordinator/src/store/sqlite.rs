//! The SQLite backend: a local file in WAL mode, the embedded default.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection, Row, Sqlite, SqliteConnection, SqlitePool, TransactionManager as _};
use tokio::sync::{Mutex, OwnedMappedMutexGuard, OwnedMutexGuard};
use uuid::Uuid;

use super::dispatches::{self, Arg, Sql};
use super::migrate::{self, Planned, Recorded};
use super::{AppliedMigration, Backend, StoreError, StoredDispatch, now_ms, redact_url};

const BACKEND: Backend = Backend::Sqlite;

/// How long a connection waits for another's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The connections of one SQLite database: a pool of readers, and one writer.
///
/// SQLite lets one connection write at a time. Connections that race for the write lock wait
/// in SQLite's busy handler, which sleeps in steps of up to 100 ms: under load that is where
/// the time goes. Every write of the coordinator therefore goes through `write`, one
/// connection behind a fair async lock, where writers queue in order and get the connection as
/// soon as it is free; reads use `read` and never wait for a writer (WAL). See
/// `docs/decisions/0009-sqlite-single-writer.md`.
#[derive(Clone, Debug)]
pub(super) struct SqlitePools {
    pub(super) read: SqlitePool,
    pub(super) write: Writer,
}

impl SqlitePools {
    pub(super) async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

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
    fn new(options: SqliteConnectOptions) -> Self {
        Self {
            options: Arc::new(options),
            conn: Arc::new(Mutex::new(None)),
            closed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Waits for the writer connection (first come, first served), up to the busy timeout.
    pub(super) async fn lock(&self, action: &'static str) -> Result<WriteGuard, StoreError> {
        let err = StoreError::db(BACKEND, action);
        let mut guard = tokio::time::timeout(BUSY_TIMEOUT, Arc::clone(&self.conn).lock_owned())
            .await
            .map_err(|_| StoreError::WriterBusy {
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

    async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Some(conn) = self.conn.lock().await.take() {
            let _ = conn.close().await;
        }
    }

    /// Begins a write transaction on the writer (`BEGIN IMMEDIATE`).
    pub(super) async fn begin(&self, action: &'static str) -> Result<SqliteTx, StoreError> {
        SqliteTx::begin_on(self.lock(action).await?, action).await
    }
}

/// A write transaction on the writer connection; rolled back if dropped before it commits.
pub(crate) struct SqliteTx {
    conn: WriteGuard,
    open: bool,
}

impl SqliteTx {
    /// Begins a write transaction (`BEGIN IMMEDIATE`) on the writer, already held.
    pub(super) async fn begin_on(
        mut conn: WriteGuard,
        action: &'static str,
    ) -> Result<SqliteTx, StoreError> {
        <Sqlite as sqlx::Database>::TransactionManager::begin(
            &mut conn,
            Some("BEGIN IMMEDIATE".into()),
        )
        .await
        .map_err(StoreError::db(BACKEND, action))?;
        Ok(SqliteTx { conn, open: true })
    }

    pub(super) fn conn(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }

    pub(super) async fn commit(mut self) -> Result<(), sqlx::Error> {
        <Sqlite as sqlx::Database>::TransactionManager::commit(&mut self.conn).await?;
        self.open = false;
        Ok(())
    }

    pub(super) async fn rollback(mut self) -> Result<(), sqlx::Error> {
        <Sqlite as sqlx::Database>::TransactionManager::rollback(&mut self.conn).await?;
        self.open = false;
        Ok(())
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if self.open {
            // Queued on the connection's thread before anything the next holder sends.
            <Sqlite as sqlx::Database>::TransactionManager::start_rollback(&mut self.conn);
        }
    }
}

pub(super) async fn connect(url: &str, max_connections: u32) -> Result<SqlitePools, StoreError> {
    let pools = connect_lazy(url, max_connections)?;
    // Open the writer first: it creates the file and sets WAL mode before readers open it.
    let opened = pools.write.lock("open the database").await;
    if let Err(StoreError::Database { source, .. }) = opened {
        return Err(StoreError::Connect {
            backend: BACKEND,
            url: redact_url(url),
            source,
        });
    }
    drop(opened?);
    pools
        .read
        .acquire()
        .await
        .map_err(|source| StoreError::Connect {
            backend: BACKEND,
            url: redact_url(url),
            source,
        })?;
    Ok(pools)
}

/// Connections opened when first used. They must be created within a Tokio runtime, which
/// runs the pool's maintenance.
pub(super) fn connect_lazy(url: &str, max_connections: u32) -> Result<SqlitePools, StoreError> {
    if in_memory(url) {
        return Err(StoreError::InvalidUrl {
            backend: BACKEND,
            url: redact_url(url),
            source: sqlx::Error::Configuration(
                "an in-memory database loses every task and dispatch report when the process \
                 stops, and cannot be shared by the coordinator's reader and writer connections"
                    .into(),
            ),
        });
    }
    let options = options(url)?;
    let read = super::pool_options::<Sqlite>()
        .max_connections(max_connections)
        .connect_lazy_with(options.clone());
    // Only the writer sets WAL mode (it persists in the file): a reader that switched the
    // journal mode while the writer was creating the file could fail with "database is locked".
    let mut writer_options = options.journal_mode(SqliteJournalMode::Wal);
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        // Checkpoints move to a reader connection in the background: the writer's commits no
        // longer pay for copying the WAL into the database now and then.
        writer_options = writer_options.pragma("wal_autocheckpoint", "0");
        runtime.spawn(checkpoint_in_background(read.clone()));
    }
    Ok(SqlitePools {
        read,
        write: Writer::new(writer_options),
    })
}

/// How often the background checkpointer copies the WAL into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Copies what the WAL holds into the database, every [`CHECKPOINT_EVERY`], until the pool is
/// closed.
///
/// By default the connection whose commit makes the WAL pass 1,000 pages runs the checkpoint
/// itself, inside that commit: with one writer, that was one write in a few hundred waiting
/// milliseconds (the task benchmark's enqueue p99 of 4 ms). A `PASSIVE` checkpoint on another
/// connection runs beside the writer without blocking it; the WAL starts over from its
/// beginning once a checkpoint has caught up.
async fn checkpoint_in_background(read: SqlitePool) {
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + CHECKPOINT_EVERY,
        CHECKPOINT_EVERY,
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if read.is_closed() {
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&read)
            .await
        {
            if read.is_closed() {
                return;
            }
            tracing::debug!(error = %e, "background WAL checkpoint failed; trying again");
        }
    }
}

/// Whether `url` names an in-memory database (`sqlite::memory:`, `mode=memory`).
fn in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// The connection options of `url` (a reader's), with its folder created.
fn options(url: &str) -> Result<SqliteConnectOptions, StoreError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|source| StoreError::InvalidUrl {
            backend: BACKEND,
            url: redact_url(url),
            source,
        })?
        .create_if_missing(true)
        .busy_timeout(BUSY_TIMEOUT)
        .synchronous(SqliteSynchronous::Normal);
    // An in-memory database's "file name" has no folder, so nothing is created for it.
    if let Some(folder) = options
        .get_filename()
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(folder).map_err(|source| StoreError::CreateDir {
            path: folder.display().to_string(),
            source,
        })?;
    }
    Ok(options)
}

/// `sql` with its arguments bound (ids as their hyphenated text, which sorts like the UUID).
pub(super) fn query(sql: &Sql) -> sqlx::query::Query<'_, Sqlite, SqliteArguments<'_>> {
    let mut q = sqlx::query(&sql.text);
    for arg in &sql.args {
        q = match arg {
            Arg::Text(s) => q.bind(s.as_str()),
            Arg::Int(i) => q.bind(*i),
            Arg::Id(id) => q.bind(id.hyphenated().to_string()),
            Arg::OptText(s) => q.bind(s.as_deref()),
            Arg::OptId(id) => q.bind(id.map(|id| id.hyphenated().to_string())),
        };
    }
    q
}

pub(super) async fn ping(pool: &SqlitePool) -> Result<(), StoreError> {
    sqlx::query("SELECT 1")
        .execute(pool)
        .await
        .map_err(StoreError::db(BACKEND, "answer a ping"))?;
    Ok(())
}

/// Runs the statements in one transaction; returns the rows each affected.
pub(super) async fn execute_in_transaction(
    writer: &Writer,
    action: &'static str,
    statements: &[Sql],
) -> Result<Vec<u64>, StoreError> {
    let err = StoreError::db(BACKEND, action);
    let mut tx = writer.begin(action).await?;
    let mut affected = Vec::with_capacity(statements.len());
    for sql in statements {
        let done = query(sql)
            .persistent(false)
            .execute(tx.conn())
            .await
            .map_err(&err)?;
        affected.push(done.rows_affected());
    }
    tx.commit().await.map_err(&err)?;
    Ok(affected)
}

pub(super) async fn fetch_dispatches(
    pool: &SqlitePool,
    sql: &Sql,
) -> Result<Vec<StoredDispatch>, StoreError> {
    let rows = query(sql)
        .fetch_all(pool)
        .await
        .map_err(StoreError::db(BACKEND, "read dispatch reports"))?;
    rows.iter().map(dispatch_from_row).collect()
}

fn dispatch_from_row(row: &SqliteRow) -> Result<StoredDispatch, StoreError> {
    let columns = || -> Result<_, sqlx::Error> {
        Ok((
            row.try_get::<String, _>(0)?,
            row.try_get::<String, _>(1)?,
            row.try_get::<String, _>(2)?,
            row.try_get::<i64, _>(3)?,
            row.try_get::<String, _>(4)?,
            row.try_get::<String, _>(5)?,
        ))
    };
    let (id, signal, sender, sent_at_ms, status, handlers) =
        columns().map_err(StoreError::db(BACKEND, "read dispatch reports"))?;
    let id = Uuid::parse_str(&id).map_err(|e| StoreError::Corrupt {
        id: id.clone(),
        reason: format!("its id is not a UUID: {e}"),
    })?;
    dispatches::from_row(id, signal, sender, sent_at_ms, &status, &handlers)
}

async fn read_recorded(conn: &mut SqliteConnection) -> Result<Vec<Recorded>, sqlx::Error> {
    let rows = sqlx::query("SELECT extension, version, checksum FROM coordinator_migrations")
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|row| {
            Ok(Recorded {
                extension: row.try_get(0)?,
                version: u32::try_from(row.try_get::<i64, _>(1)?).unwrap_or(u32::MAX),
                checksum: row.try_get(2)?,
            })
        })
        .collect()
}

pub(super) async fn recorded_migrations(pool: &SqlitePool) -> Result<Vec<Recorded>, StoreError> {
    let err = StoreError::db(BACKEND, "read applied migrations");
    let mut conn = pool.acquire().await.map_err(&err)?;
    let exists = sqlx::query(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'coordinator_migrations'",
    )
    .fetch_optional(&mut *conn)
    .await
    .map_err(&err)?
    .is_some();
    if !exists {
        return Ok(Vec::new());
    }
    read_recorded(&mut conn).await.map_err(err)
}

pub(super) async fn migrate(
    writer: &Writer,
    plan: &[Planned],
) -> Result<Vec<AppliedMigration>, StoreError> {
    let err = |action| StoreError::db(BACKEND, action);
    let mut conn = writer.lock("start migrating").await?;
    sqlx::raw_sql(migrate::CREATE_MIGRATIONS_TABLE)
        .execute(&mut *conn)
        .await
        .map_err(err("create the coordinator_migrations table"))?;
    let recorded = read_recorded(&mut conn)
        .await
        .map_err(err("read applied migrations"))?;
    // Refuse before applying anything if an applied migration was edited.
    let pending = migrate::pending(plan, &recorded)?;
    let mut applied = Vec::new();
    for p in pending {
        // IMMEDIATE takes the write lock now: another process migrating the same file waits
        // (busy timeout), and what it applied meanwhile is seen by the check below.
        let mut tx = conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(err("lock the database for a migration"))?;
        let existing: Option<String> = sqlx::query_scalar(
            "SELECT checksum FROM coordinator_migrations WHERE extension = ? AND version = ?",
        )
        .bind(p.extension)
        .bind(i64::from(p.version))
        .fetch_optional(&mut *tx)
        .await
        .map_err(err("read applied migrations"))?;
        if let Some(existing) = existing {
            migrate::check_unchanged(p, &existing)?;
            tx.rollback().await.map_err(err("end a migration"))?;
            continue;
        }
        migrate::warn_if_out_of_order(p, &recorded);
        sqlx::raw_sql(p.sql)
            .execute(&mut *tx)
            .await
            .map_err(|source| StoreError::MigrationFailed {
                extension: p.extension.to_owned(),
                version: p.version,
                name: p.name.to_owned(),
                backend: BACKEND,
                source,
            })?;
        sqlx::query(
            "INSERT INTO coordinator_migrations (extension, version, name, checksum, applied_at_ms) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(p.extension)
        .bind(i64::from(p.version))
        .bind(p.name)
        .bind(&p.checksum)
        .bind(dispatches::ms_to_db(now_ms()))
        .execute(&mut *tx)
        .await
        .map_err(err("record an applied migration"))?;
        tx.commit().await.map_err(err("commit a migration"))?;
        tracing::info!(
            backend = %BACKEND,
            extension = p.extension,
            version = p.version,
            name = p.name,
            "applied migration"
        );
        applied.push(AppliedMigration {
            extension: p.extension.to_owned(),
            version: p.version,
            name: p.name.to_owned(),
        });
    }
    Ok(applied)
}
