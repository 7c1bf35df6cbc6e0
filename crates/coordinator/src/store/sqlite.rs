//! The SQLite backend: a local file in WAL mode, the embedded default.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Connection, Row, Sqlite, SqliteConnection, SqlitePool};
use uuid::Uuid;

use super::dispatches::{self, Arg, Sql};
use super::migrate::{self, Planned, Recorded};
use super::{AppliedMigration, Backend, StoreError, StoredDispatch, now_ms, redact_url};

const BACKEND: Backend = Backend::Sqlite;

/// How long a connection waits for another's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The pools of one SQLite database: readers, and one writer.
///
/// SQLite lets one connection write at a time. Connections that race for the write lock wait
/// in SQLite's busy handler, which sleeps in steps of up to 100 ms: under load that is where
/// the time goes. Every write of the coordinator therefore goes through `write`, a pool of one
/// connection, where writers queue in order and are handed the connection as soon as it is
/// free; reads use `read` and never wait for a writer (WAL).
#[derive(Clone, Debug)]
pub(super) struct SqlitePools {
    pub(super) read: SqlitePool,
    pub(super) write: SqlitePool,
}

impl SqlitePools {
    pub(super) async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

pub(super) async fn connect(url: &str, max_connections: u32) -> Result<SqlitePools, StoreError> {
    let options = options(url)?;
    let connect_error = |source| StoreError::Connect {
        backend: BACKEND,
        url: redact_url(url),
        source,
    };
    // The writer first: it creates the file and sets WAL mode before readers open it.
    let write = writer_options()
        .connect_with(options.clone())
        .await
        .map_err(connect_error)?;
    if in_memory(url) {
        // An in-memory database shares its data through SQLite's shared cache, whose locks
        // fail instead of waiting: one connection does everything.
        return Ok(SqlitePools {
            read: write.clone(),
            write,
        });
    }
    let read = SqlitePoolOptions::new()
        .max_connections(max_connections)
        .connect_with(options)
        .await
        .map_err(connect_error)?;
    Ok(SqlitePools { read, write })
}

/// Pools that open their first connection when first used. They must be created within a Tokio
/// runtime, which runs their maintenance.
pub(super) fn connect_lazy(url: &str, max_connections: u32) -> Result<SqlitePools, StoreError> {
    let options = options(url)?;
    let write = writer_options().connect_lazy_with(options.clone());
    if in_memory(url) {
        return Ok(SqlitePools {
            read: write.clone(),
            write,
        });
    }
    Ok(SqlitePools {
        read: SqlitePoolOptions::new()
            .max_connections(max_connections)
            .connect_lazy_with(options),
        write,
    })
}

/// Whether `url` names an in-memory database (`sqlite::memory:`, `mode=memory`).
fn in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// The writer pool: one connection; a writer waits for it as long as it would have waited for
/// SQLite's write lock.
fn writer_options() -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .acquire_timeout(BUSY_TIMEOUT)
}

/// The connection options of `url`, with its folder created.
fn options(url: &str) -> Result<SqliteConnectOptions, StoreError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|source| StoreError::InvalidUrl {
            backend: BACKEND,
            url: redact_url(url),
            source,
        })?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
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
    pool: &SqlitePool,
    action: &'static str,
    statements: &[Sql],
) -> Result<Vec<u64>, StoreError> {
    let err = StoreError::db(BACKEND, action);
    let mut tx = pool.begin().await.map_err(&err)?;
    let mut affected = Vec::with_capacity(statements.len());
    for sql in statements {
        let done = query(sql)
            .persistent(false)
            .execute(&mut *tx)
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
    pool: &SqlitePool,
    plan: &[Planned],
) -> Result<Vec<AppliedMigration>, StoreError> {
    let err = |action| StoreError::db(BACKEND, action);
    let mut conn = pool.acquire().await.map_err(err("start migrating"))?;
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
