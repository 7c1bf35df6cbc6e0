//! Adding a task to the queue.

use coordinator::dispatch_log::DurableDispatch;
use coordinator::id::{new_id, now_ms};
use coordinator::store::StoreError;
use coordinator::task::NewTask;
use uuid::Uuid;

use crate::conn::SqlConn;
use crate::sql::{Arg, Sql, ms_to_db};

/// The name of an enqueue in errors.
pub const ACTION: &str = "enqueue a task";

/// Inserts `task` on `conn` (committed with it) and returns its id; with a unique key held by
/// a pending task of the same name, returns that task's id instead.
pub async fn insert_task<C: SqlConn>(conn: &mut C, task: &NewTask) -> Result<Uuid, StoreError> {
    if let (Some(key), true) = (&task.unique_key, task.once) {
        // An idempotency key: a task that holds it and succeeded counts as well as a pending
        // one (the index coordinator_tasks_keys finds it).
        let mut sql = conn.sql("SELECT id FROM coordinator_tasks WHERE task = ");
        sql.bind(Arg::Text(task.task.clone()))
            .push(" AND unique_key = ")
            .bind(Arg::Text(key.clone()))
            .push(
                " AND state IN ('queued', 'retrying', 'running', 'succeeded') ORDER BY id LIMIT 1",
            );
        if let Some(existing) = conn.fetch(ACTION, &sql, &|row| row.id("id")).await?.pop() {
            return Ok(existing);
        }
    }
    // A pending task holding the unique key may finish between the insert and the look-up;
    // then the insert is simply tried again.
    for _ in 0..5 {
        let (id, _) = new_id();
        if insert_row(conn, id, task).await? == 1 {
            return Ok(id);
        }
        if let Some(key) = &task.unique_key {
            let mut sql = conn.sql("SELECT id FROM coordinator_tasks WHERE task = ");
            sql.bind(Arg::Text(task.task.clone()))
                .push(" AND unique_key = ")
                .bind(Arg::Text(key.clone()))
                .push(" AND state IN ('queued', 'retrying', 'running')");
            if let Some(existing) = conn.fetch(ACTION, &sql, &|row| row.id("id")).await?.pop() {
                return Ok(existing);
            }
        }
    }
    Err(StoreError::database(conn.dialect().backend(), ACTION)(
        format!(
            "task \"{}\" could not be inserted after 5 tries: its unique key kept changing hands",
            task.task
        ),
    ))
}

/// The name of storing a durable dispatch in errors.
pub const DISPATCH_ACTION: &str = "store a durable dispatch";

/// Inserts a durable dispatch on `conn` (in a transaction): its intake key, each delivery as
/// a task with its id, then the dispatch in the log. `false` (and nothing inserted) when the
/// intake key was recorded before.
pub async fn insert_dispatch<C: SqlConn>(
    conn: &mut C,
    durable: &DurableDispatch,
) -> Result<bool, StoreError> {
    if let Some((source, external_id)) = &durable.intake {
        if !crate::inbox::record_intake(conn, source, external_id).await? {
            return Ok(false);
        }
    }
    for (id, task) in &durable.deliveries {
        if insert_row(conn, *id, task).await? != 1 {
            return Err(StoreError::database(
                conn.dialect().backend(),
                DISPATCH_ACTION,
            )(format!(
                "delivery {id} of dispatch {} is stored already",
                durable.dispatch.id
            )));
        }
    }
    crate::dispatches::insert_dispatches(conn, std::slice::from_ref(&durable.dispatch)).await?;
    Ok(true)
}

/// The start of an INSERT of tasks, before its rows ([`push_row`]).
const INSERT_TASKS: &str = "INSERT INTO coordinator_tasks (id, task, queue, payload, state, \
    attempts, max_attempts, run_at_ms, unique_key, origin_dispatch, created_at_ms, updated_at_ms) \
    VALUES ";

/// Appends the row `(…)` of `task` with `id`, queued now, to an INSERT of tasks.
fn push_row(sql: &mut Sql, id: Uuid, task: &NewTask, now: i64) {
    sql.push("(")
        .bind(Arg::Id(id))
        .push(", ")
        .bind(Arg::Text(task.task.clone()))
        .push(", ")
        .bind(Arg::Text(task.queue.clone()))
        .push(", ")
        .bind(Arg::Text(task.payload.clone()))
        .push(", 'queued', 0, ")
        .bind(Arg::Int(i64::from(task.max_attempts)))
        .push(", ")
        .bind(Arg::Int(ms_to_db(task.run_at_ms)))
        .push(", ")
        .bind(Arg::OptText(task.unique_key.clone()))
        .push(", ")
        .bind(Arg::OptId(task.origin_dispatch))
        .push(", ")
        .bind(Arg::Int(now))
        .push(", ")
        .bind(Arg::Int(now))
        .push(")");
}

/// One INSERT of `task` with `id`; 0 rows when a pending task holds its unique key.
async fn insert_row<C: SqlConn>(conn: &mut C, id: Uuid, task: &NewTask) -> Result<u64, StoreError> {
    let mut sql = conn.sql(INSERT_TASKS);
    push_row(&mut sql, id, task, ms_to_db(now_ms()));
    sql.push(" ON CONFLICT DO NOTHING");
    conn.execute(ACTION, &sql).await
}

/// Rows per multi-row INSERT of a batch: well under both backends' limits on bound parameters
/// (12 per task row).
const ROWS_PER_INSERT: usize = 500;

/// Inserts many durable dispatches on `conn` (in one transaction) with a few multi-row
/// statements: the intake keys (`RETURNING` says which are new), the deliveries of the
/// dispatches whose key is new (or that have none), then those dispatches. Returns, for each,
/// whether it was stored (`false`: its intake key was recorded before, or by an earlier
/// dispatch of the same batch). What a group write of a backend with one writer uses, so that
/// a batch of concurrent sends costs a handful of statements instead of several each.
pub async fn insert_dispatch_batch<C: SqlConn>(
    conn: &mut C,
    batch: &[&DurableDispatch],
) -> Result<Vec<bool>, StoreError> {
    use std::collections::HashSet;
    let backend = conn.dialect().backend();
    let now = ms_to_db(now_ms());
    // The intake keys, each once: which of them the inbox did not have.
    let mut keys: Vec<(&str, &str)> = Vec::new();
    let mut seen: HashSet<(&str, &str)> = HashSet::new();
    for d in batch {
        if let Some((source, id)) = &d.intake {
            if seen.insert((source.as_str(), id.as_str())) {
                keys.push((source.as_str(), id.as_str()));
            }
        }
    }
    let mut new_keys: HashSet<(String, String)> = HashSet::new();
    for chunk in keys.chunks(ROWS_PER_INSERT) {
        let mut sql =
            conn.sql("INSERT INTO coordinator_inbox (source, external_id, received_at_ms) VALUES ");
        for (i, (source, id)) in chunk.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" })
                .bind(Arg::Text((*source).to_owned()))
                .push(", ")
                .bind(Arg::Text((*id).to_owned()))
                .push(", ")
                .bind(Arg::Int(now))
                .push(")");
        }
        sql.push(" ON CONFLICT DO NOTHING RETURNING source, external_id");
        let rows = conn
            .fetch("record intake keys", &sql.unprepared(), &|row| {
                Ok((row.text("source")?, row.text("external_id")?))
            })
            .await?;
        new_keys.extend(rows);
    }
    // Which dispatches are stored: no key, or the first with a new key.
    let mut stored = Vec::with_capacity(batch.len());
    for d in batch {
        stored.push(match &d.intake {
            None => true,
            Some(key) => new_keys.remove(key),
        });
    }
    let kept: Vec<&DurableDispatch> = batch
        .iter()
        .zip(&stored)
        .filter(|(_, s)| **s)
        .map(|(d, _)| *d)
        .collect();
    let rows: Vec<(Uuid, &NewTask)> = kept
        .iter()
        .flat_map(|d| d.deliveries.iter().map(|(id, t)| (*id, t)))
        .collect();
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut sql = conn.sql(INSERT_TASKS);
        for (i, (id, task)) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            push_row(&mut sql, *id, task, now);
        }
        let inserted = conn.execute(DISPATCH_ACTION, &sql.unprepared()).await?;
        if inserted != chunk.len() as u64 {
            return Err(StoreError::database(backend, DISPATCH_ACTION)(format!(
                "{inserted} of {} deliveries inserted",
                chunk.len()
            )));
        }
    }
    let dispatches: Vec<_> = kept.iter().map(|d| d.dispatch.clone()).collect();
    crate::dispatches::insert_dispatches(conn, &dispatches).await?;
    Ok(stored)
}
