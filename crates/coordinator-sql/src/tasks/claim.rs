//! What claiming shares across backends: the conditions of due and expired tasks, the claimed
//! rows, and the logs of tasks recovered from a stopped worker.

use coordinator::id::now_ms;
use coordinator::store::StoreError;
use coordinator::task::ClaimedTask;
use uuid::Uuid;

use super::rows::to_u32;
use crate::conn::RowRead;
use crate::sql::{Arg, Sql, ms_to_db};

/// The name of the claim in errors.
pub const ACTION: &str = "claim tasks";

/// One claim: who claims, from which queues (every queue when empty), how many at most, and
/// for how long.
#[derive(Clone, Copy, Debug)]
pub struct Claim<'a> {
    /// The worker that will hold the leases.
    pub worker: &'a str,
    /// The queues to claim from; empty for every queue.
    pub queues: &'a [String],
    /// The most tasks to claim.
    pub limit: usize,
    /// How long the leases last, in milliseconds.
    pub lease_ms: u64,
}

impl Claim<'_> {
    /// Now, and when the leases end: read once the claim holds its connection, so that the
    /// wait for it does not shorten the leases.
    pub fn times(&self) -> ClaimTimes {
        ClaimTimes::new(self.lease_ms)
    }
}

/// The times a claim writes: now, and when the leases it takes end.
#[derive(Clone, Copy, Debug)]
pub struct ClaimTimes {
    /// Now, as stored.
    pub now: i64,
    /// When the leases end, in milliseconds since the Unix epoch.
    pub lease_until_ms: u64,
}

impl ClaimTimes {
    /// Now, and leases of `lease_ms` from now.
    pub fn new(lease_ms: u64) -> Self {
        let now = now_ms();
        Self {
            now: ms_to_db(now),
            lease_until_ms: now.saturating_add(lease_ms),
        }
    }
}

/// Appends `(task_id = ? AND attempt = ?) OR …` for each `(task, attempt)` (not empty).
pub fn push_attempts(sql: &mut Sql, attempts: impl IntoIterator<Item = (Uuid, i64)>) {
    for (i, (id, attempt)) in attempts.into_iter().enumerate() {
        if i > 0 {
            sql.push(" OR ");
        }
        sql.push("(task_id = ")
            .bind(Arg::Id(id))
            .push(" AND attempt = ")
            .bind(Arg::Int(attempt))
            .push(")");
    }
}

/// Appends ` AND queue IN (…)` unless `queues` is empty (every queue).
pub fn push_queues(sql: &mut Sql, queues: &[String]) {
    if !queues.is_empty() {
        sql.push(" AND queue IN ")
            .bind_list(queues.iter().map(|q| Arg::Text(q.clone())));
    }
}

/// The condition of a queued or retrying task whose time has come (the partial index
/// `coordinator_tasks_ready` holds exactly these tasks, in claim order).
pub fn push_due(sql: &mut Sql, now: i64) {
    sql.push(" WHERE state IN ('queued', 'retrying') AND run_at_ms <= ")
        .bind(Arg::Int(now));
}

/// The condition of a running task whose lease expired with attempts left (through the partial
/// index `coordinator_tasks_leases`).
pub fn push_expired(sql: &mut Sql, now: i64) {
    sql.push(" WHERE state = 'running' AND lease_until_ms <= ")
        .bind(Arg::Int(now))
        .push(" AND attempts < max_attempts");
}

/// The condition of a running task whose lease expired on its last allowed attempt.
pub fn push_exhausted(sql: &mut Sql, now: i64) {
    sql.push(" WHERE state = 'running' AND lease_until_ms <= ")
        .bind(Arg::Int(now))
        .push(" AND attempts >= max_attempts");
}

/// The columns a claim returns (and a `was` column: the state before the claim).
pub const CLAIMED_COLUMNS: &str =
    "id, task, queue, payload, attempts, max_attempts, origin_dispatch";

/// A claimed task, and whether it was running (its lease had expired) before the claim.
pub fn claimed_from_row(
    row: &dyn RowRead,
    lease_until_ms: u64,
) -> Result<(ClaimedTask, bool), StoreError> {
    let id = row.id("id")?;
    let sid = id.to_string();
    let s = sid.as_str();
    Ok((
        ClaimedTask {
            id,
            task: row.text("task")?,
            queue: row.text("queue")?,
            payload: row.text("payload")?,
            attempt: to_u32(s, "attempts", row.int("attempts")?)?,
            max_attempts: to_u32(s, "max_attempts", row.int("max_attempts")?)?,
            origin_dispatch: row.opt_id("origin_dispatch")?,
            lease_until_ms,
        },
        row.text("was")? == "running",
    ))
}

/// Logs the tasks made dead because the worker of their last attempt stopped renewing.
pub fn log_reaped(reaped: &[Uuid]) {
    for id in reaped {
        tracing::error!(
            task_id = %id,
            "task is dead: the worker running its last attempt stopped renewing the lease; \
             retry it once the cause is fixed"
        );
    }
}

/// Logs the running tasks claimed again because their worker stopped renewing.
pub fn log_recovered(ids: &[Uuid]) {
    for id in ids {
        tracing::warn!(
            task_id = %id,
            "claimed a running task whose worker stopped renewing its lease; its attempt is \
             recorded as lost and it runs again"
        );
    }
}
