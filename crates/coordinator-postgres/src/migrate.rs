//! Migrating a PostgreSQL database: the whole run under an advisory lock, so that processes
//! starting together apply each version once.

use coordinator::store::StoreError;
use coordinator::store::migrate::{
    AppliedMigration, Planned, Recorded, pending, warn_if_out_of_order,
};
use coordinator_sql::SqlConn;
use coordinator_sql::migrate::{apply, read_recorded};
use coordinator_sql::schema::CREATE_MIGRATIONS_TABLE;
use sqlx::{Connection, PgConnection, PgPool};

use crate::NAME;
use crate::conn::{Conn, Detached};

/// The first key of the advisory lock held while migrating ("coor"); the second is a hash of the
/// current schema, so that coordinators in different schemas of one database do not wait for
/// each other.
const MIGRATION_LOCK: i32 = 0x636f_6f72;

/// Applies what `plan` holds and the database lacks.
pub(crate) async fn apply_migrations(
    pool: &PgPool,
    plan: &[Planned],
) -> Result<Vec<AppliedMigration>, StoreError> {
    let err = |action| StoreError::database(NAME, action);
    let mut conn = pool.acquire().await.map_err(err("start migrating"))?;
    // The advisory lock belongs to this session: closing the connection afterwards releases it
    // even if this future is dropped half-way or the unlock below fails.
    conn.close_on_drop();
    sqlx::query("SELECT pg_advisory_lock($1, hashtext(coalesce(current_schema(), '')))")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(err("take the migration lock"))?;
    let result = apply_locked(&mut conn, plan).await;
    let _ = sqlx::query("SELECT pg_advisory_unlock($1, hashtext(coalesce(current_schema(), '')))")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await;
    result
}

async fn apply_locked(
    conn: &mut PgConnection,
    plan: &[Planned],
) -> Result<Vec<AppliedMigration>, StoreError> {
    let err = |action| StoreError::database(NAME, action);
    // Checked first rather than CREATE TABLE IF NOT EXISTS, which logs a notice on every start.
    if !table_exists(conn)
        .await
        .map_err(err("read applied migrations"))?
    {
        Detached(conn)
            .execute_script(CREATE_MIGRATIONS_TABLE)
            .await
            .map_err(err("create the coordinator_migrations table"))?;
    }
    let recorded = read_recorded(&mut Detached(conn)).await?;
    // Under the lock, so what is pending cannot change until we are done.
    let mut applied = Vec::new();
    for p in pending(plan, &recorded)? {
        warn_if_out_of_order(p, &recorded);
        let mut tx = conn.begin().await.map_err(err("begin a migration"))?;
        apply(&mut Detached(&mut tx), p).await?;
        tx.commit().await.map_err(err("commit a migration"))?;
        applied.push(p.applied());
    }
    Ok(applied)
}

async fn table_exists(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    // Resolved through the search_path, as the unqualified names in migrations are.
    sqlx::query_scalar::<_, bool>("SELECT to_regclass('coordinator_migrations') IS NOT NULL")
        .fetch_one(conn)
        .await
}

/// The migrations recorded in the database (none when it has no table for them yet).
pub(crate) async fn recorded_migrations(pool: &PgPool) -> Result<Vec<Recorded>, StoreError> {
    let err = StoreError::database(NAME, "read applied migrations");
    let mut conn = Conn(pool.acquire().await.map_err(err)?);
    if !table_exists(&mut conn.0).await.map_err(err)? {
        return Ok(Vec::new());
    }
    read_recorded(&mut conn).await
}
