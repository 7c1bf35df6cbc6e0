//! What running migrations shares across backends: reading what was applied, and applying one
//! planned migration inside the backend's transaction. How concurrent processes are kept apart
//! (an advisory lock, a write lock) is each backend's own (`migrate.rs` in each).

use coordinator::id::now_ms;
use coordinator::store::StoreError;
use coordinator::store::migrate::{Planned, Recorded};

use crate::conn::SqlConn;
use crate::sql::{Arg, ms_to_db};

/// The rows of `coordinator_migrations` (which must exist).
pub async fn read_recorded<C: SqlConn>(conn: &mut C) -> Result<Vec<Recorded>, StoreError> {
    let sql = conn.sql("SELECT extension, version, checksum FROM coordinator_migrations");
    conn.fetch("read applied migrations", &sql, &|row| {
        Ok(Recorded {
            extension: row.text("extension")?,
            version: u32::try_from(row.int("version")?).unwrap_or(u32::MAX),
            checksum: row.text("checksum")?,
        })
    })
    .await
}

/// The checksum recorded for `p`, if it was applied (read under the caller's lock).
pub async fn recorded_checksum<C: SqlConn>(
    conn: &mut C,
    p: &Planned,
) -> Result<Option<String>, StoreError> {
    let mut sql = conn.sql("SELECT checksum FROM coordinator_migrations WHERE extension = ");
    sql.bind(Arg::Text(p.extension.to_owned()))
        .push(" AND version = ")
        .bind(Arg::Int(i64::from(p.version)));
    Ok(conn
        .fetch("read applied migrations", &sql, &|row| row.text("checksum"))
        .await?
        .pop())
}

/// Runs `p`'s SQL on `conn` (in the transaction the caller commits) and records it.
pub async fn apply<C: SqlConn>(conn: &mut C, p: &Planned) -> Result<(), StoreError> {
    let backend = conn.dialect().backend();
    conn.execute_script(p.sql)
        .await
        .map_err(|source| StoreError::MigrationFailed {
            extension: p.extension.to_owned(),
            version: p.version,
            name: p.name.to_owned(),
            backend,
            source: source.into(),
        })?;
    let mut sql = conn.sql(
        "INSERT INTO coordinator_migrations (extension, version, name, checksum, applied_at_ms) \
         VALUES (",
    );
    sql.bind(Arg::Text(p.extension.to_owned()))
        .push(", ")
        .bind(Arg::Int(i64::from(p.version)))
        .push(", ")
        .bind(Arg::Text(p.name.to_owned()))
        .push(", ")
        .bind(Arg::Text(p.checksum.clone()))
        .push(", ")
        .bind(Arg::Int(ms_to_db(now_ms())))
        .push(")");
    conn.execute("record an applied migration", &sql).await?;
    tracing::info!(
        backend,
        extension = p.extension,
        version = p.version,
        name = p.name,
        "applied migration"
    );
    Ok(())
}
