//! What workers write while they hold tasks: lease renewals, outcomes, and tasks given back.

use coordinator::id::now_ms;
use coordinator::store::StoreError;
use coordinator::task::{AttemptStatus, TaskOutcome};
use uuid::Uuid;

use super::claim::push_attempts;
use crate::conn::SqlConn;
use crate::sql::{Arg, Dialect, Sql, ms_to_db};

/// The name of recording outcomes in errors.
pub const RECORD: &str = "record task outcomes";
/// The name of giving tasks back in errors.
pub const RELEASE: &str = "release tasks";
/// The name of renewing leases in errors.
pub const RENEW: &str = "renew task leases";

/// Extends the leases `worker_id` holds on `ids` (not empty) until `until_ms`; returns the ids
/// it still held.
pub async fn renew_leases<C: SqlConn>(
    conn: &mut C,
    worker_id: &str,
    ids: &[Uuid],
    until_ms: u64,
) -> Result<Vec<Uuid>, StoreError> {
    let mut sql = conn.sql("UPDATE coordinator_tasks SET lease_until_ms = ");
    sql.bind(Arg::Int(ms_to_db(until_ms)))
        .push(" WHERE state = 'running' AND lease_owner = ")
        .bind(Arg::Text(worker_id.to_owned()))
        .push(" AND id IN ")
        .bind_list(ids.iter().map(|id| Arg::Id(*id)))
        .push(" RETURNING id");
    conn.fetch(RENEW, &sql, &|row| row.id("id")).await
}

/// Records the outcomes (not empty) of attempts `worker_id` ran, on `conn`, which is in a
/// transaction; returns, for each, whether the task was changed (fenced by worker and attempt).
pub async fn record_outcomes<C: SqlConn>(
    conn: &mut C,
    worker_id: &str,
    outcomes: &[(Uuid, u32, &TaskOutcome)],
) -> Result<Vec<bool>, StoreError> {
    let now = ms_to_db(now_ms());
    let succeeded: Vec<(Uuid, u32, Option<String>)> = outcomes
        .iter()
        .filter_map(|(id, attempt, outcome)| match outcome {
            TaskOutcome::Succeeded(result) => Some((*id, *attempt, result.clone())),
            _ => None,
        })
        .collect();
    // Successes (nearly all outcomes) in two statements, whatever their number.
    let mut done = Vec::new();
    if !succeeded.is_empty() {
        let (tasks, attempts) = successes_sql(conn.dialect(), now, worker_id, &succeeded);
        done = conn.fetch(RECORD, &tasks, &|row| row.id("id")).await?;
        conn.execute(RECORD, &attempts).await?;
    }
    let mut applied = Vec::with_capacity(outcomes.len());
    for (id, attempt, outcome) in outcomes {
        if matches!(outcome, TaskOutcome::Succeeded(_)) {
            applied.push(done.contains(id));
            continue;
        }
        let (task, finished) = outcome_sql(conn.dialect(), now, *id, worker_id, *attempt, outcome);
        applied.push(conn.execute(RECORD, &task).await? == 1);
        conn.execute(RECORD, &finished).await?;
    }
    Ok(applied)
}

/// Gives back the tasks `worker_id` holds among `ids` (not empty), on `conn`, which is in a
/// transaction: queued again now, their attempt recorded as `released` and not counted.
pub async fn release_tasks<C: SqlConn>(
    conn: &mut C,
    worker_id: &str,
    ids: &[Uuid],
) -> Result<u64, StoreError> {
    let now = ms_to_db(now_ms());
    let mut sql = conn.sql(
        "UPDATE coordinator_tasks SET state = 'queued', attempts = attempts - 1, \
         lease_owner = NULL, lease_until_ms = NULL, run_at_ms = ",
    );
    sql.bind(Arg::Int(now))
        .push(", updated_at_ms = ")
        .bind(Arg::Int(now))
        .push(" WHERE state = 'running' AND lease_owner = ")
        .bind(Arg::Text(worker_id.to_owned()))
        .push(" AND id IN ")
        .bind_list(ids.iter().map(|id| Arg::Id(*id)))
        .push(" RETURNING id, attempts");
    let released = conn
        .fetch(RELEASE, &sql, &|row| {
            Ok((row.id("id")?, row.int("attempts")?))
        })
        .await?;
    if released.is_empty() {
        return Ok(0);
    }
    let mut attempts =
        conn.sql("UPDATE coordinator_task_attempts SET status = 'released', finished_at_ms = ");
    attempts
        .bind(Arg::Int(now))
        .push(" WHERE finished_at_ms IS NULL AND worker = ")
        .bind(Arg::Text(worker_id.to_owned()))
        .push(" AND (");
    push_attempts(
        &mut attempts,
        released.iter().map(|(id, remaining)| (*id, remaining + 1)),
    );
    attempts.push(")");
    conn.execute(RELEASE, &attempts).await?;
    Ok(released.len() as u64)
}

/// `WHERE` the task is still running under this worker and attempt.
fn push_fence(sql: &mut Sql, id: Uuid, worker_id: &str, attempt: u32) {
    sql.push(" WHERE id = ")
        .bind(Arg::Id(id))
        .push(" AND state = 'running' AND lease_owner = ")
        .bind(Arg::Text(worker_id.to_owned()))
        .push(" AND attempts = ")
        .bind(Arg::Int(i64::from(attempt)));
}

/// The fenced update of the tasks whose attempts succeeded, `(id, attempt, result)`, returning
/// the ids it changed, and the end of those attempts' records.
fn successes_sql(
    dialect: Dialect,
    now: i64,
    worker_id: &str,
    succeeded: &[(Uuid, u32, Option<String>)],
) -> (Sql, Sql) {
    let values = |sql: &mut Sql, with_result: bool| {
        sql.push(if with_result {
            "WITH v (id, attempt, result) AS (VALUES "
        } else {
            "WITH v (id, attempt) AS (VALUES "
        });
        for (i, (id, attempt, result)) in succeeded.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" })
                .bind(Arg::Id(*id))
                .push(", ")
                .bind(Arg::Int(i64::from(*attempt)));
            if with_result {
                sql.push(", ").bind(Arg::OptText(result.clone()));
            }
            sql.push(")");
        }
        sql.push(") ");
    };
    let mut tasks = Sql::new(dialect, "");
    values(&mut tasks, true);
    tasks
        .push(
            "UPDATE coordinator_tasks SET state = 'succeeded', lease_owner = NULL, \
             lease_until_ms = NULL, result = v.result, updated_at_ms = ",
        )
        .bind(Arg::Int(now))
        .push(", finished_at_ms = ")
        .bind(Arg::Int(now))
        .push(
            " FROM v WHERE coordinator_tasks.id = v.id AND coordinator_tasks.state = 'running' \
             AND coordinator_tasks.attempts = v.attempt AND coordinator_tasks.lease_owner = ",
        )
        .bind(Arg::Text(worker_id.to_owned()))
        .push(" RETURNING coordinator_tasks.id AS id");
    let mut attempts = Sql::new(dialect, "");
    values(&mut attempts, false);
    attempts
        .push("UPDATE coordinator_task_attempts SET status = 'ok', finished_at_ms = ")
        .bind(Arg::Int(now))
        .push(
            " FROM v WHERE coordinator_task_attempts.task_id = v.id \
             AND coordinator_task_attempts.attempt = v.attempt \
             AND coordinator_task_attempts.finished_at_ms IS NULL \
             AND coordinator_task_attempts.worker = ",
        )
        .bind(Arg::Text(worker_id.to_owned()));
    (tasks, attempts)
}

/// The fenced update of a task for an attempt's outcome, and the end of that attempt's
/// record (one marked lost already stays lost).
fn outcome_sql(
    dialect: Dialect,
    now: i64,
    id: Uuid,
    worker_id: &str,
    attempt: u32,
    outcome: &TaskOutcome,
) -> (Sql, Sql) {
    let mut task = Sql::new(
        dialect,
        "UPDATE coordinator_tasks SET lease_owner = NULL, lease_until_ms = NULL, updated_at_ms = ",
    );
    task.bind(Arg::Int(now));
    let (status, chain) = match outcome {
        TaskOutcome::Succeeded(result) => {
            task.push(", state = 'succeeded', result = ")
                .bind(Arg::OptText(result.clone()))
                .push(", finished_at_ms = ")
                .bind(Arg::Int(now));
            (AttemptStatus::Ok, None)
        }
        TaskOutcome::Retry {
            at_ms,
            status,
            chain,
        } => {
            let chain = serde_json::to_string(chain).unwrap_or_else(|_| "[]".to_owned());
            task.push(", state = 'retrying', run_at_ms = ")
                .bind(Arg::Int(ms_to_db(*at_ms)));
            // Postponed (`TaskError::Postpone`): given back, not counted as an attempt.
            if *status == AttemptStatus::Released {
                task.push(", attempts = attempts - 1");
            }
            task.push(", last_error = ").bind(Arg::Text(chain.clone()));
            (*status, Some(chain))
        }
        TaskOutcome::Dead { status, chain } => {
            let chain = serde_json::to_string(chain).unwrap_or_else(|_| "[]".to_owned());
            task.push(", state = 'dead', finished_at_ms = ")
                .bind(Arg::Int(now))
                .push(", last_error = ")
                .bind(Arg::Text(chain.clone()));
            (*status, Some(chain))
        }
    };
    push_fence(&mut task, id, worker_id, attempt);
    let mut finished = Sql::new(dialect, "UPDATE coordinator_task_attempts SET status = ");
    finished
        .bind(Arg::Text(status.as_str().to_owned()))
        .push(", finished_at_ms = ")
        .bind(Arg::Int(now))
        .push(", error_chain = ")
        .bind(Arg::OptText(chain))
        .push(" WHERE finished_at_ms IS NULL AND task_id = ")
        .bind(Arg::Id(id))
        .push(" AND attempt = ")
        .bind(Arg::Int(i64::from(attempt)))
        .push(" AND worker = ")
        .bind(Arg::Text(worker_id.to_owned()));
    (task, finished)
}
