//! The dispatch log's queries: batches of reports written, pages read back, old reports purged.

use coordinator::dispatch_log::{
    DispatchPage, DispatchQuery, DispatchStatus, StoredDispatch, StoredHandlerRun,
};
use coordinator::id::id_floor_after;
use coordinator::store::StoreError;
use uuid::Uuid;

use crate::conn::{RowRead, SqlConn};
use crate::sql::{Arg, Dialect, Sql, ms_to_db};

const COLUMNS: &str = "d.id, d.signal, d.sender, d.sent_at_ms, d.status, d.handlers";

/// The name of reading the log in errors.
const READ: &str = "read dispatch reports";

/// Rows per multi-row INSERT: well under both backends' limits on bound parameters.
const ROWS_PER_INSERT: usize = 1000;

/// Stores `batch` on `conn` (in a transaction), with multi-row inserts: the dispatches, then
/// their runs. A dispatch already stored is left as it is, so a retried batch is harmless.
pub async fn insert_dispatches<C: SqlConn>(
    conn: &mut C,
    batch: &[StoredDispatch],
) -> Result<(), StoreError> {
    const ACTION: &str = "store dispatch reports";
    for sql in insert_sql(conn.dialect(), batch)? {
        conn.execute(ACTION, &sql).await?;
    }
    Ok(())
}

/// One page of dispatches matching `query`, newest first.
pub async fn list_dispatches<C: SqlConn>(
    conn: &mut C,
    query: &DispatchQuery,
) -> Result<DispatchPage, StoreError> {
    let (sql, limit) = list_sql(conn.dialect(), query);
    let items = conn.fetch(READ, &sql, &dispatch_from_row).await?;
    Ok(DispatchPage::from_items(items, limit))
}

/// One dispatch by id.
pub async fn get_dispatch<C: SqlConn>(
    conn: &mut C,
    id: Uuid,
) -> Result<Option<StoredDispatch>, StoreError> {
    let mut sql = conn.sql(&format!(
        "SELECT {COLUMNS} FROM coordinator_dispatches d WHERE d.id = "
    ));
    sql.bind(Arg::Id(id));
    Ok(conn.fetch(READ, &sql, &dispatch_from_row).await?.pop())
}

/// Deletes the dispatches sent before `older_than_ms` (their runs first), on `conn` (in a
/// transaction); returns how many dispatches.
///
/// A dispatch's age is read from its id, a UUIDv7 made with its `sent_at_ms` (one range of
/// the primary key, with no index on the time to write on every dispatch).
pub async fn purge_dispatches<C: SqlConn>(
    conn: &mut C,
    older_than_ms: u64,
) -> Result<u64, StoreError> {
    const ACTION: &str = "purge old dispatch reports";
    let Some(last_ms) = older_than_ms.checked_sub(1) else {
        return Ok(0);
    };
    let floor = Arg::Id(id_floor_after(last_ms));
    let mut runs = conn.sql("DELETE FROM coordinator_dispatch_runs WHERE dispatch_id < ");
    runs.bind(floor.clone());
    conn.execute(ACTION, &runs).await?;
    let mut dispatches = conn.sql("DELETE FROM coordinator_dispatches WHERE id < ");
    dispatches.bind(floor);
    conn.execute(ACTION, &dispatches).await
}

/// The list query and the page size it asks for.
fn list_sql(dialect: Dialect, query: &DispatchQuery) -> (Sql, u32) {
    let limit = query.effective_limit();
    let mut sql = Sql::new(
        dialect,
        &format!("SELECT {COLUMNS} FROM coordinator_dispatches d"),
    );
    // With a handler, the runs table drives the query through its (handler, dispatch_id) index,
    // and its primary key (dispatch_id, handler) means one row per dispatch.
    let id_column = if let Some(handler) = &query.handler {
        sql.push(" JOIN coordinator_dispatch_runs r ON r.dispatch_id = d.id AND r.handler = ")
            .bind(Arg::Text(handler.clone()));
        match query.status {
            Some(DispatchStatus::Ok) => sql.push(" AND r.status IN ('ok', 'queued')"),
            Some(DispatchStatus::Failed) => sql.push(" AND r.status NOT IN ('ok', 'queued')"),
            None => &mut sql,
        };
        "r.dispatch_id"
    } else {
        "d.id"
    };
    sql.push(" WHERE 1 = 1");
    if let Some(signal) = &query.signal {
        sql.push(" AND d.signal = ").bind(Arg::Text(signal.clone()));
    }
    if let (Some(status), None) = (query.status, &query.handler) {
        sql.push(" AND d.status = ")
            .bind(Arg::Text(status.as_str().to_owned()));
    }
    if let Some(since) = query.since_ms {
        sql.push(" AND d.sent_at_ms >= ")
            .bind(Arg::Int(ms_to_db(since)));
        // The same bound on the id (a UUIDv7 of `sent_at_ms`): a range of the index read.
        if let Some(before_since) = since.checked_sub(1) {
            sql.push(&format!(" AND {id_column} >= "))
                .bind(Arg::Id(id_floor_after(before_since)));
        }
    }
    if let Some(before) = query.before {
        sql.push(&format!(" AND {id_column} < "))
            .bind(Arg::Id(before));
    }
    sql.push(&format!(" ORDER BY {id_column} DESC LIMIT "))
        .bind(Arg::Int(i64::from(limit)));
    (sql, limit)
}

/// The multi-row INSERTs of a batch: the dispatches first, then their runs.
fn insert_sql(dialect: Dialect, batch: &[StoredDispatch]) -> Result<Vec<Sql>, StoreError> {
    let mut statements = Vec::new();
    for chunk in batch.chunks(ROWS_PER_INSERT) {
        let mut sql = Sql::new(
            dialect,
            "INSERT INTO coordinator_dispatches (id, signal, sender, sent_at_ms, status, handlers) VALUES ",
        );
        for (i, d) in chunk.iter().enumerate() {
            let handlers = serde_json::to_string(&d.handlers).map_err(|e| StoreError::Corrupt {
                id: d.id.to_string(),
                reason: format!("its handler runs do not serialize: {e}"),
            })?;
            sql.push(if i == 0 { "(" } else { ", (" })
                .bind(Arg::Id(d.id))
                .push(", ")
                .bind(Arg::Text(d.signal.clone()))
                .push(", ")
                .bind(Arg::Text(d.sender.clone()))
                .push(", ")
                .bind(Arg::Int(ms_to_db(d.sent_at_ms)))
                .push(", ")
                .bind(Arg::Text(d.status.as_str().to_owned()))
                .push(", ")
                .bind(Arg::Text(handlers))
                .push(")");
        }
        sql.push(" ON CONFLICT DO NOTHING");
        statements.push(sql.unprepared());
    }
    let runs: Vec<(Uuid, &StoredHandlerRun)> = batch
        .iter()
        .flat_map(|d| d.handlers.iter().map(move |h| (d.id, h)))
        .collect();
    for chunk in runs.chunks(ROWS_PER_INSERT) {
        let mut sql = Sql::new(
            dialect,
            "INSERT INTO coordinator_dispatch_runs (dispatch_id, handler, status) VALUES ",
        );
        for (i, (id, run)) in chunk.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" })
                .bind(Arg::Id(*id))
                .push(", ")
                .bind(Arg::Text(run.handler.clone()))
                .push(", ")
                .bind(Arg::Text(run.status.clone()))
                .push(")");
        }
        sql.push(" ON CONFLICT DO NOTHING");
        statements.push(sql.unprepared());
    }
    Ok(statements)
}

/// A stored dispatch from its row; any column that cannot be read makes it corrupt.
fn dispatch_from_row(row: &dyn RowRead) -> Result<StoredDispatch, StoreError> {
    let as_dispatch = |e: StoreError| match e {
        StoreError::CorruptTask { id, reason } => StoreError::Corrupt { id, reason },
        other => other,
    };
    let id = row.id("id").map_err(as_dispatch)?;
    let corrupt = |reason: String| StoreError::Corrupt {
        id: id.to_string(),
        reason,
    };
    let column = |e: StoreError| match e {
        StoreError::CorruptTask { reason, .. } => corrupt(reason),
        other => other,
    };
    let sent_at_ms = row.int("sent_at_ms").map_err(column)?;
    Ok(StoredDispatch {
        id,
        signal: row.text("signal").map_err(column)?,
        sender: row.text("sender").map_err(column)?,
        sent_at_ms: u64::try_from(sent_at_ms)
            .map_err(|_| corrupt(format!("negative sent_at_ms {sent_at_ms}")))?,
        status: row
            .text("status")
            .map_err(column)?
            .parse()
            .map_err(corrupt)?,
        handlers: serde_json::from_str(&row.text("handlers").map_err(column)?)
            .map_err(|e| corrupt(format!("its handlers column is not the expected JSON: {e}")))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_sql_numbers_postgres_placeholders() {
        let q = DispatchQuery {
            signal: Some("a.b".into()),
            handler: Some("a.h".into()),
            status: Some(DispatchStatus::Failed),
            since_ms: Some(5),
            before: Some(Uuid::nil()),
            limit: 10,
        };
        let (sql, limit) = list_sql(Dialect::Postgres, &q);
        assert_eq!(limit, 10);
        // The time bound twice: on `sent_at_ms`, and on the id for the index's range.
        assert_eq!(sql.args.len(), 6);
        assert!(
            sql.text
                .contains("d.sent_at_ms >= $3 AND r.dispatch_id >= $4"),
            "{}",
            sql.text
        );
        assert!(sql.text.contains("r.handler = $1"), "{}", sql.text);
        assert!(
            sql.text.contains("r.status NOT IN ('ok', 'queued')"),
            "{}",
            sql.text
        );
        assert!(
            sql.text.ends_with("ORDER BY r.dispatch_id DESC LIMIT $6"),
            "{}",
            sql.text
        );
        let (lite, _) = list_sql(Dialect::Sqlite, &q);
        assert!(!lite.text.contains('$'), "{}", lite.text);
    }

    #[test]
    fn large_batches_are_split_into_inserts_of_a_thousand_rows() {
        let batch: Vec<StoredDispatch> = (0..2500)
            .map(|i| StoredDispatch {
                id: Uuid::from_u128(i),
                signal: "a.b".into(),
                sender: "extension:a".into(),
                sent_at_ms: 1,
                status: DispatchStatus::Ok,
                handlers: Vec::new(),
            })
            .collect();
        assert_eq!(insert_sql(Dialect::Sqlite, &batch).unwrap().len(), 3);
    }
}
