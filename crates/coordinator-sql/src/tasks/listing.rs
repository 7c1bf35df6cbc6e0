//! Reading the queue: pages of tasks, one task with its attempts, counts by queue and state.

use coordinator::store::StoreError;
use coordinator::task::{StoredTask, TaskCount, TaskPage, TaskQuery};
use uuid::Uuid;

use super::rows::{TASK_COLUMNS, attempt_from_row, task_from_row};
use crate::conn::{SqlConn, corrupt};
use crate::sql::Arg;

/// One page of tasks matching `query`, newest first (without their history).
pub async fn list_tasks<C: SqlConn>(
    conn: &mut C,
    query: &TaskQuery,
) -> Result<TaskPage, StoreError> {
    const ACTION: &str = "list tasks";
    let limit = query.effective_limit();
    let mut sql = conn.sql(&format!(
        "SELECT {TASK_COLUMNS} FROM coordinator_tasks WHERE 1 = 1"
    ));
    if let Some(state) = query.state {
        sql.push(" AND state = ")
            .bind(Arg::Text(state.as_str().to_owned()));
    }
    if let Some(queue) = &query.queue {
        sql.push(" AND queue = ").bind(Arg::Text(queue.clone()));
    }
    if let Some(task) = &query.task {
        sql.push(" AND task = ").bind(Arg::Text(task.clone()));
    }
    if let Some(before) = query.before {
        sql.push(" AND id < ").bind(Arg::Id(before));
    }
    sql.push(" ORDER BY id DESC LIMIT ")
        .bind(Arg::Int(i64::from(limit)));
    let items = conn.fetch(ACTION, &sql, &task_from_row).await?;
    Ok(TaskPage::from_items(items, limit))
}

/// One task, by id, with every attempt.
pub async fn get_task<C: SqlConn>(
    conn: &mut C,
    id: Uuid,
) -> Result<Option<StoredTask>, StoreError> {
    const ACTION: &str = "read a task";
    let mut sql = conn.sql(&format!(
        "SELECT {TASK_COLUMNS} FROM coordinator_tasks WHERE id = "
    ));
    sql.bind(Arg::Id(id));
    let Some(mut task) = conn.fetch(ACTION, &sql, &task_from_row).await?.pop() else {
        return Ok(None);
    };
    let mut sql = conn.sql(
        "SELECT attempt, worker, started_at_ms, finished_at_ms, status, error_chain \
         FROM coordinator_task_attempts WHERE task_id = ",
    );
    sql.bind(Arg::Id(id)).push(" ORDER BY id");
    task.history = conn
        .fetch(ACTION, &sql, &|row| attempt_from_row(id, row))
        .await?;
    Ok(Some(task))
}

/// How many tasks each queue has in each state (states with none are left out), by queue then
/// state.
pub async fn task_counts<C: SqlConn>(conn: &mut C) -> Result<Vec<TaskCount>, StoreError> {
    const ACTION: &str = "count tasks";
    let sql = conn.sql(
        "SELECT queue, state, COUNT(*) AS n FROM coordinator_tasks GROUP BY queue, state \
         ORDER BY queue, state",
    );
    conn.fetch(ACTION, &sql, &|row| {
        let state = row.text("state")?;
        Ok(TaskCount {
            queue: row.text("queue")?,
            state: state.parse().map_err(|e| corrupt("(count)", e))?,
            count: u64::try_from(row.int("n")?).unwrap_or(0),
        })
    })
    .await
}
