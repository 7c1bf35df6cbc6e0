//! The PostgreSQL backend, for many processes on many machines.

use std::str::FromStr;

use sqlx::postgres::{PgArguments, PgConnectOptions, PgRow};
use sqlx::{Connection, PgConnection, PgPool, Postgres, Row};
use uuid::Uuid;

use super::dispatches::{self, Arg, Sql};
use super::migrate::{self, Planned, Recorded};
use super::{AppliedMigration, Backend, StoreError, StoredDispatch, now_ms, redact_url};

const BACKEND: Backend = Backend::Postgres;

/// The first key of the advisory lock held while migrating ("coor"); the second is a hash of the
/// current schema, so that coordinators in different schemas of one database do not wait for
/// each other.
const MIGRATION_LOCK: i32 = 0x636f_6f72;

pub(super) async fn connect(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    let options = PgConnectOptions::from_str(url).map_err(|source| StoreError::InvalidUrl {
        backend: BACKEND,
        url: redact_url(url),
        source,
    })?;
    let connect_error = |source| StoreError::Connect {
        backend: BACKEND,
        url: redact_url(url),
        source,
    };
    // One direct connection first: it fails at once when the server is down or refuses us,
    // where the pool would keep retrying until its acquire timeout.
    PgConnection::connect_with(&options)
        .await
        .map_err(connect_error)?
        .close()
        .await
        .map_err(connect_error)?;
    Ok(super::pool_options::<Postgres>()
        .max_connections(max_connections)
        .connect_lazy_with(options))
}

/// `sql` with its arguments bound.
pub(super) fn query(sql: &Sql) -> sqlx::query::Query<'_, Postgres, PgArguments> {
    let mut q = sqlx::query(&sql.text);
    for arg in &sql.args {
        q = match arg {
            Arg::Text(s) => q.bind(s.as_str()),
            Arg::Int(i) => q.bind(*i),
            Arg::Id(id) => q.bind(*id),
            Arg::OptText(s) => q.bind(s.as_deref()),
            Arg::OptId(id) => q.bind(*id),
        };
    }
    q
}

pub(super) async fn ping(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::query("SELECT 1")
        .execute(pool)
        .await
        .map_err(StoreError::db(BACKEND, "answer a ping"))?;
    Ok(())
}

/// Runs the statements in one transaction; returns the rows each affected.
pub(super) async fn execute_in_transaction(
    pool: &PgPool,
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
    pool: &PgPool,
    sql: &Sql,
) -> Result<Vec<StoredDispatch>, StoreError> {
    let rows = query(sql)
        .fetch_all(pool)
        .await
        .map_err(StoreError::db(BACKEND, "read dispatch reports"))?;
    rows.iter().map(dispatch_from_row).collect()
}

fn dispatch_from_row(row: &PgRow) -> Result<StoredDispatch, StoreError> {
    let columns = || -> Result<_, sqlx::Error> {
        Ok((
            row.try_get::<Uuid, _>(0)?,
            row.try_get::<String, _>(1)?,
            row.try_get::<String, _>(2)?,
            row.try_get::<i64, _>(3)?,
            row.try_get::<String, _>(4)?,
            row.try_get::<String, _>(5)?,
        ))
    };
    let (id, signal, sender, sent_at_ms, status, handlers) =
        columns().map_err(StoreError::db(BACKEND, "read dispatch reports"))?;
    dispatches::from_row(id, signal, sender, sent_at_ms, &status, &handlers)
}

async fn migrations_table_exists(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    // Resolved through the search_path, as the unqualified names in migrations are.
    sqlx::query_scalar::<_, bool>("SELECT to_regclass('coordinator_migrations') IS NOT NULL")
        .fetch_one(conn)
        .await
}

async fn read_recorded(conn: &mut PgConnection) -> Result<Vec<Recorded>, sqlx::Error> {
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

pub(super) async fn recorded_migrations(pool: &PgPool) -> Result<Vec<Recorded>, StoreError> {
    let err = StoreError::db(BACKEND, "read applied migrations");
    let mut conn = pool.acquire().await.map_err(&err)?;
    if !migrations_table_exists(&mut conn).await.map_err(&err)? {
        return Ok(Vec::new());
    }
    read_recorded(&mut conn).await.map_err(err)
}

pub(super) async fn migrate(
    pool: &PgPool,
    plan: &[Planned],
) -> Result<Vec<AppliedMigration>, StoreError> {
    let err = |action| StoreError::db(BACKEND, action);
    let mut conn = pool.acquire().await.map_err(err("start migrating"))?;
    // The advisory lock belongs to this session: closing the connection afterwards releases it
    // even if this future is dropped half-way or the unlock below fails.
    conn.close_on_drop();
    sqlx::query("SELECT pg_advisory_lock($1, hashtext(coalesce(current_schema(), '')))")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(err("take the migration lock"))?;
    let result = migrate_locked(&mut conn, plan).await;
    let _ = sqlx::query("SELECT pg_advisory_unlock($1, hashtext(coalesce(current_schema(), '')))")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await;
    result
}

async fn migrate_locked(
    conn: &mut PgConnection,
    plan: &[Planned],
) -> Result<Vec<AppliedMigration>, StoreError> {
    let err = |action| StoreError::db(BACKEND, action);
    // Checked first rather than CREATE TABLE IF NOT EXISTS, which logs a notice on every start.
    if !migrations_table_exists(conn)
        .await
        .map_err(err("read applied migrations"))?
    {
        sqlx::raw_sql(migrate::CREATE_MIGRATIONS_TABLE)
            .execute(&mut *conn)
            .await
            .map_err(err("create the coordinator_migrations table"))?;
    }
    let recorded = read_recorded(conn)
        .await
        .map_err(err("read applied migrations"))?;
    // Under the lock, so what is pending cannot change until we are done.
    let pending = migrate::pending(plan, &recorded)?;
    let mut applied = Vec::new();
    for p in pending {
        migrate::warn_if_out_of_order(p, &recorded);
        let mut tx = conn.begin().await.map_err(err("begin a migration"))?;
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
             VALUES ($1, $2, $3, $4, $5)",
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
