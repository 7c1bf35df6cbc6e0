//! Adding a task to the queue.

use coordinator::dispatch_log::DurableDispatch;
use coordinator::id::{new_id, now_ms};
use coordinator::store::StoreError;
use coordinator::task::NewTask;
use uuid::Uuid;

use crate::conn::SqlConn;
use crate::sql::{Arg, ms_to_db};

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

/// Inserts a durable dispatch on `conn` (in a transaction): each delivery as a task with its
/// id, then the dispatch in the log.
pub async fn insert_dispatch<C: SqlConn>(
    conn: &mut C,
    durable: &DurableDispatch,
) -> Result<(), StoreError> {
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
    crate::dispatches::insert_dispatches(conn, std::slice::from_ref(&durable.dispatch)).await
}

/// One INSERT of `task` with `id`; 0 rows when a pending task holds its unique key.
async fn insert_row<C: SqlConn>(conn: &mut C, id: Uuid, task: &NewTask) -> Result<u64, StoreError> {
    let now = ms_to_db(now_ms());
    let mut sql = conn.sql(
        "INSERT INTO coordinator_tasks (id, task, queue, payload, state, attempts, \
         max_attempts, run_at_ms, unique_key, origin_dispatch, created_at_ms, updated_at_ms) \
         VALUES (",
    );
    sql.bind(Arg::Id(id))
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
        .push(") ON CONFLICT DO NOTHING");
    conn.execute(ACTION, &sql).await
}
