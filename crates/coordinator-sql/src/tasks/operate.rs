//! What operators do to tasks (retry, cancel) and what retention deletes.

use coordinator::id::{id_floor_after, now_ms};
use coordinator::store::StoreError;
use coordinator::task::TaskState;
use uuid::Uuid;

use crate::conn::{SqlConn, corrupt};
use crate::sql::{Arg, ms_to_db};

/// Queues a dead or cancelled task again, to run now, with its attempts reset to 0. Refuses a
/// task in any other state, and one whose unique key another pending task now holds.
pub async fn retry_task<C: SqlConn>(conn: &mut C, id: Uuid) -> Result<(), StoreError> {
    const ACTION: &str = "retry a task";
    let now = ms_to_db(now_ms());
    let mut sql = conn.sql(
        "UPDATE coordinator_tasks SET state = 'queued', attempts = 0, lease_owner = NULL, \
         lease_until_ms = NULL, finished_at_ms = NULL, result = NULL, run_at_ms = ",
    );
    sql.bind(Arg::Int(now))
        .push(", updated_at_ms = ")
        .bind(Arg::Int(now))
        .push(" WHERE state IN ('dead', 'cancelled') AND id = ")
        .bind(Arg::Id(id));
    match conn.execute_raw(&sql).await {
        Ok(1) => Ok(()),
        Ok(_) => Err(state_error(conn, id, "retry", "dead or cancelled", "retried").await),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(duplicate_error(conn, id).await)
        }
        Err(e) => Err(StoreError::database(conn.dialect().backend(), ACTION)(e)),
    }
}

/// Cancels a queued, retrying or running task. Refuses a task that has already finished.
pub async fn cancel_task<C: SqlConn>(conn: &mut C, id: Uuid) -> Result<(), StoreError> {
    const ACTION: &str = "cancel a task";
    let now = ms_to_db(now_ms());
    let mut sql = conn.sql(
        "UPDATE coordinator_tasks SET state = 'cancelled', lease_owner = NULL, \
         lease_until_ms = NULL, finished_at_ms = ",
    );
    sql.bind(Arg::Int(now))
        .push(", updated_at_ms = ")
        .bind(Arg::Int(now))
        .push(" WHERE state IN ('queued', 'retrying', 'running') AND id = ")
        .bind(Arg::Id(id));
    if conn.execute(ACTION, &sql).await? == 1 {
        Ok(())
    } else {
        Err(state_error(
            conn,
            id,
            "cancel",
            "queued, retrying or running",
            "cancelled",
        )
        .await)
    }
}

/// How many finished tasks one transaction of [`purge_finished_chunk`] deletes at most.
pub const PURGE_CHUNK: u64 = 1000;

/// Deletes up to [`PURGE_CHUNK`] succeeded and cancelled tasks that finished before
/// `finished_before_ms`, with their attempts, on `conn` (in a transaction); returns how many.
pub async fn purge_finished_chunk<C: SqlConn>(
    conn: &mut C,
    finished_before_ms: u64,
) -> Result<u64, StoreError> {
    const ACTION: &str = "purge finished tasks";
    // A task finishes after it is created, and ids begin with their creation time: only ids
    // below the cutoff's can qualify, which the primary key finds without a scan.
    let mut sql = conn.sql("SELECT id FROM coordinator_tasks WHERE id < ");
    sql.bind(Arg::Id(id_floor_after(finished_before_ms)))
        .push(" AND state IN ('succeeded', 'cancelled') AND finished_at_ms < ")
        .bind(Arg::Int(ms_to_db(finished_before_ms)))
        .push(" ORDER BY id LIMIT ")
        .bind(Arg::Int(PURGE_CHUNK as i64));
    let ids = conn.fetch(ACTION, &sql, &|row| row.id("id")).await?;
    if ids.is_empty() {
        return Ok(0);
    }
    let mut attempts = conn.sql("DELETE FROM coordinator_task_attempts WHERE task_id IN ");
    attempts.bind_list(ids.iter().map(|id| Arg::Id(*id)));
    conn.execute(ACTION, &attempts).await?;
    let mut tasks = conn.sql("DELETE FROM coordinator_tasks WHERE id IN ");
    tasks.bind_list(ids.iter().map(|id| Arg::Id(*id)));
    conn.execute(ACTION, &tasks).await
}

/// Why `action` cannot be done to task `id`: it does not exist, or it is in another state.
async fn state_error<C: SqlConn>(
    conn: &mut C,
    id: Uuid,
    action: &'static str,
    allowed: &'static str,
    done: &'static str,
) -> StoreError {
    let mut sql = conn.sql("SELECT state FROM coordinator_tasks WHERE id = ");
    sql.bind(Arg::Id(id));
    let found = conn
        .fetch("read a task", &sql, &|row| {
            row.text("state")?
                .parse::<TaskState>()
                .map_err(|e| corrupt(&id.to_string(), e))
        })
        .await;
    match found {
        Ok(found) => match found.first() {
            Some(state) => StoreError::TaskState {
                action,
                id,
                state: *state,
                allowed,
                done,
            },
            None => StoreError::TaskNotFound { action, id },
        },
        Err(e) => e,
    }
}

/// Why task `id` cannot be retried: another pending task holds its unique key.
async fn duplicate_error<C: SqlConn>(conn: &mut C, id: Uuid) -> StoreError {
    let mut sql = conn.sql(
        "SELECT p.id AS id, p.task AS task, p.unique_key AS unique_key \
         FROM coordinator_tasks t JOIN coordinator_tasks p \
         ON p.task = t.task AND p.unique_key = t.unique_key AND p.id <> t.id \
         WHERE p.state IN ('queued', 'retrying', 'running') AND t.id = ",
    );
    sql.bind(Arg::Id(id));
    let found = conn
        .fetch("read a task", &sql, &|row| {
            Ok((
                row.id("id")?,
                row.text("task")?,
                row.opt_text("unique_key")?.unwrap_or_default(),
            ))
        })
        .await;
    match found {
        Ok(mut found) => match found.pop() {
            Some((pending, task, unique_key)) => StoreError::DuplicatePendingTask {
                id,
                task,
                unique_key,
                pending,
            },
            // The other task finished meanwhile: the caller may simply try again.
            None => StoreError::database(conn.dialect().backend(), "retry a task")(
                "another task held the same unique key a moment ago; try again",
            ),
        },
        Err(e) => e,
    }
}
