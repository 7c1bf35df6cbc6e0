//! Reading task rows back.

use coordinator::store::StoreError;
use coordinator::task::{StoredTask, TaskAttempt};
use uuid::Uuid;

use crate::conn::{RowRead, corrupt};

/// The columns of a task row, in the order [`task_from_row`] reads them by name.
pub const TASK_COLUMNS: &str = "id, task, queue, payload, state, attempts, max_attempts, \
run_at_ms, lease_owner, lease_until_ms, unique_key, origin_dispatch, result, last_error, \
created_at_ms, updated_at_ms, finished_at_ms";

pub(crate) fn to_u64(id: &str, column: &str, v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| corrupt(id, format!("{column} is negative ({v})")))
}

pub(crate) fn to_u32(id: &str, column: &str, v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| corrupt(id, format!("{column} is out of range ({v})")))
}

fn chain_from(id: &str, column: &str, text: Option<String>) -> Result<Vec<String>, StoreError> {
    match text {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| corrupt(id, format!("{column} is not a JSON list of strings: {e}"))),
    }
}

/// A task row of [`TASK_COLUMNS`], without its history.
pub fn task_from_row(row: &dyn RowRead) -> Result<StoredTask, StoreError> {
    let id = row.id("id")?;
    let sid = id.to_string();
    let s = sid.as_str();
    let payload = row.text("payload")?;
    Ok(StoredTask {
        id,
        task: row.text("task")?,
        queue: row.text("queue")?,
        payload: serde_json::from_str(&payload)
            .map_err(|e| corrupt(s, format!("its payload is not JSON: {e}")))?,
        state: row.text("state")?.parse().map_err(|e| corrupt(s, e))?,
        attempts: to_u32(s, "attempts", row.int("attempts")?)?,
        max_attempts: to_u32(s, "max_attempts", row.int("max_attempts")?)?,
        run_at_ms: to_u64(s, "run_at_ms", row.int("run_at_ms")?)?,
        lease_owner: row.opt_text("lease_owner")?,
        lease_until_ms: row
            .opt_int("lease_until_ms")?
            .map(|v| to_u64(s, "lease_until_ms", v))
            .transpose()?,
        unique_key: row.opt_text("unique_key")?,
        origin_dispatch: row.opt_id("origin_dispatch")?,
        result: row.opt_text("result")?,
        last_error: chain_from(s, "last_error", row.opt_text("last_error")?)?,
        created_at_ms: to_u64(s, "created_at_ms", row.int("created_at_ms")?)?,
        updated_at_ms: to_u64(s, "updated_at_ms", row.int("updated_at_ms")?)?,
        finished_at_ms: row
            .opt_int("finished_at_ms")?
            .map(|v| to_u64(s, "finished_at_ms", v))
            .transpose()?,
        history: Vec::new(),
    })
}

/// One row of `coordinator_task_attempts` of task `id`.
pub fn attempt_from_row(id: Uuid, row: &dyn RowRead) -> Result<TaskAttempt, StoreError> {
    let sid = id.to_string();
    let s = sid.as_str();
    Ok(TaskAttempt {
        attempt: to_u32(s, "attempt", row.int("attempt")?)?,
        worker: row.text("worker")?,
        started_at_ms: to_u64(s, "started_at_ms", row.int("started_at_ms")?)?,
        finished_at_ms: row
            .opt_int("finished_at_ms")?
            .map(|v| to_u64(s, "finished_at_ms", v))
            .transpose()?,
        status: row.text("status")?.parse().map_err(|e| corrupt(s, e))?,
        error_chain: chain_from(s, "error_chain", row.opt_text("error_chain")?)?,
    })
}
