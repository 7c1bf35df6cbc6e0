//! Migrating a SQLite database: each migration under the write lock, checked again there, so
//! that two processes migrating one file apply each version once.

use coordinator::store::StoreError;
use coordinator::store::migrate::{
    AppliedMigration, Planned, Recorded, check_unchanged, pending, warn_if_out_of_order,
};
use coordinator_sql::SqlConn;
use coordinator_sql::migrate::{apply, read_recorded, recorded_checksum};
use coordinator_sql::schema::CREATE_MIGRATIONS_TABLE;

use crate::NAME;
use crate::conn::Conn;
use crate::connect::Pools;
use crate::writer::Tx;

/// Applies what `plan` holds and the database lacks.
pub(crate) async fn apply_migrations(
    pools: &Pools,
    plan: &[Planned],
) -> Result<Vec<AppliedMigration>, StoreError> {
    let mut conn = Conn::write(pools.write.lock("start migrating").await?);
    conn.execute_script(CREATE_MIGRATIONS_TABLE)
        .await
        .map_err(StoreError::database(
            NAME,
            "create the coordinator_migrations table",
        ))?;
    let recorded = read_recorded(&mut conn).await?;
    // Refuse before applying anything if an applied migration was edited.
    let todo = pending(plan, &recorded)?;
    let mut writer = conn.into_writer().expect("locked the writer above");
    let mut applied = Vec::new();
    for p in todo {
        // IMMEDIATE takes the write lock now: another process migrating the same file waits
        // (busy timeout), and what it applied meanwhile is seen by the check below.
        let mut tx = Tx::begin_on(writer, "lock the database for a migration").await?;
        if let Some(existing) = recorded_checksum(&mut tx, p).await? {
            check_unchanged(p, &existing)?;
            writer = end(tx, false).await?;
            continue;
        }
        warn_if_out_of_order(p, &recorded);
        apply(&mut tx, p).await?;
        writer = end(tx, true).await?;
        applied.push(p.applied());
    }
    Ok(applied)
}

/// Commits (or rolls back) a migration's transaction and takes the writer back for the next.
async fn end(tx: Tx, commit: bool) -> Result<crate::writer::WriteGuard, StoreError> {
    let (action, result) = if commit {
        ("commit a migration", tx.finish(true).await)
    } else {
        ("end a migration", tx.finish(false).await)
    };
    result.map_err(StoreError::database(NAME, action))
}

/// The migrations recorded in the database (none when it has no table for them yet).
pub(crate) async fn recorded_migrations(pools: &Pools) -> Result<Vec<Recorded>, StoreError> {
    let mut conn = Conn::read(
        pools
            .read
            .acquire()
            .await
            .map_err(StoreError::database(NAME, "read applied migrations"))?,
    );
    let sql = conn.sql(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'coordinator_migrations'",
    );
    if conn
        .fetch("read applied migrations", &sql, &|row| row.text("name"))
        .await?
        .is_empty()
    {
        return Ok(Vec::new());
    }
    read_recorded(&mut conn).await
}
