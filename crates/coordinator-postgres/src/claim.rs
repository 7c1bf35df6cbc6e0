//! Claiming on PostgreSQL: one statement, rows locked as they are read with `FOR UPDATE SKIP
//! LOCKED`, so that any number of workers in any number of processes claim without waiting for
//! each other and never get the same task.

use coordinator::store::StoreError;
use coordinator::task::{ClaimedTask, LOST_CHAIN, LOST_LAST_CHAIN};
use coordinator_sql::tasks::claim::{
    ACTION, CLAIMED_COLUMNS, Claim, claimed_from_row, log_reaped, log_recovered, push_due,
    push_exhausted, push_expired, push_queues,
};
use coordinator_sql::{Arg, SqlConn, ms_to_db};
use uuid::Uuid;

use crate::conn::Conn;

/// Claims tasks on `conn`.
pub(crate) async fn claim(
    conn: &mut Conn,
    claim: Claim<'_>,
) -> Result<Vec<ClaimedTask>, StoreError> {
    let (worker_id, queues, limit) = (claim.worker, claim.queues, claim.limit);
    let times = claim.times();
    let (now, lease_until) = (times.now, times.lease_until_ms);

    // Running tasks whose lease expired on their last attempt die here: the task first, then
    // its attempt, in the same order as claiming locks them.
    let mut sql = conn.sql(
        "WITH dead AS (UPDATE coordinator_tasks SET state = 'dead', lease_owner = NULL, \
         lease_until_ms = NULL, last_error = ",
    );
    sql.bind(Arg::Text(LOST_LAST_CHAIN.to_owned()))
        .push(", updated_at_ms = ")
        .bind(Arg::Int(now))
        .push(", finished_at_ms = ")
        .bind(Arg::Int(now))
        .push(" WHERE id IN (SELECT id FROM coordinator_tasks");
    push_exhausted(&mut sql, now);
    push_queues(&mut sql, queues);
    sql.push(
        " FOR UPDATE SKIP LOCKED) RETURNING id, attempts) \
         UPDATE coordinator_task_attempts a SET status = 'lost', finished_at_ms = ",
    )
    .bind(Arg::Int(now))
    .push(", error_chain = ")
    .bind(Arg::Text(LOST_CHAIN.to_owned()))
    .push(
        " FROM dead WHERE a.task_id = dead.id AND a.attempt = dead.attempts \
         AND a.finished_at_ms IS NULL RETURNING a.task_id AS id",
    );
    let reaped: Vec<Uuid> = conn.fetch(ACTION, &sql, &|row| row.id("id")).await?;
    log_reaped(&reaped);

    // Running tasks whose lease expired come first, then due tasks, each read through its own
    // partial index in claim order; rows are locked as they are read, so no more than `limit`.
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut sql = conn.sql("WITH expired AS (SELECT id, state AS was FROM coordinator_tasks");
    push_expired(&mut sql, now);
    push_queues(&mut sql, queues);
    sql.push(" ORDER BY lease_until_ms LIMIT ")
        .bind(Arg::Int(limit))
        .push(" FOR UPDATE SKIP LOCKED), due AS (SELECT id, state AS was FROM coordinator_tasks");
    push_due(&mut sql, now);
    push_queues(&mut sql, queues);
    sql.push(" ORDER BY run_at_ms, id LIMIT ")
        .bind(Arg::Int(limit))
        .push(
            " FOR UPDATE SKIP LOCKED), \
             candidates AS (SELECT id, was FROM expired UNION ALL SELECT id, was FROM due LIMIT ",
        )
        .bind(Arg::Int(limit))
        .push(
            "), \
             claimed AS (UPDATE coordinator_tasks t SET state = 'running', \
             attempts = t.attempts + 1, lease_owner = ",
        )
        .bind(Arg::Text(worker_id.to_owned()))
        .push(", lease_until_ms = ")
        .bind(Arg::Int(ms_to_db(lease_until)))
        .push(", updated_at_ms = ")
        .bind(Arg::Int(now))
        .push(
            " FROM candidates c WHERE t.id = c.id RETURNING t.id, t.task, t.queue, t.payload, \
             t.attempts, t.max_attempts, t.origin_dispatch, c.was), \
             lost AS (UPDATE coordinator_task_attempts a SET status = 'lost', finished_at_ms = ",
        )
        .bind(Arg::Int(now))
        .push(", error_chain = ")
        .bind(Arg::Text(LOST_CHAIN.to_owned()))
        .push(
            " FROM claimed c WHERE c.was = 'running' AND a.task_id = c.id \
             AND a.attempt = c.attempts - 1 AND a.finished_at_ms IS NULL), \
             started AS (INSERT INTO coordinator_task_attempts \
             (task_id, attempt, worker, started_at_ms, status) SELECT id, attempts, ",
        )
        .bind(Arg::Text(worker_id.to_owned()))
        .push(", ")
        .bind(Arg::Int(now))
        .push(", 'running' FROM claimed) ")
        .push(&format!("SELECT {CLAIMED_COLUMNS}, was FROM claimed"));
    let claimed = conn
        .fetch(ACTION, &sql, &|row| claimed_from_row(row, lease_until))
        .await?;
    let recovered: Vec<Uuid> = claimed
        .iter()
        .filter(|(_, was_running)| *was_running)
        .map(|(task, _)| task.id)
        .collect();
    log_recovered(&recovered);
    Ok(claimed.into_iter().map(|(task, _)| task).collect())
}
