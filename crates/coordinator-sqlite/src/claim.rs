//! Claiming on SQLite: a write transaction on the one writer, so claimers never race.
//!
//! Tasks whose worker died on their last attempt are made dead first; then expired leases
//! (the oldest work) and due tasks are read through their partial indexes, in claim order,
//! and claimed in one `UPDATE … RETURNING`, their attempts recorded.

use coordinator::store::StoreError;
use coordinator::task::{ClaimedTask, LOST_CHAIN, LOST_LAST_CHAIN};
use coordinator_sql::tasks::claim::{
    ACTION, CLAIMED_COLUMNS, Claim, claimed_from_row, log_reaped, log_recovered, push_attempts,
    push_due, push_exhausted, push_expired, push_queues,
};
use coordinator_sql::{Arg, SqlConn, ms_to_db};
use uuid::Uuid;

use crate::writer::Tx;

/// Claims tasks in the transaction `tx`.
pub(crate) async fn claim(tx: &mut Tx, claim: Claim<'_>) -> Result<Vec<ClaimedTask>, StoreError> {
    let (worker_id, queues, limit) = (claim.worker, claim.queues, claim.limit);
    let times = claim.times();
    let (now, lease_until) = (times.now, times.lease_until_ms);
    reap_exhausted(tx, queues, now).await?;

    // Running tasks whose lease expired come first (they are the oldest), then due tasks, each
    // read through its own partial index in claim order. INDEXED BY: without statistics SQLite
    // would read these through the index on state and sort the whole backlog.
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut sql = tx.sql("SELECT id FROM coordinator_tasks INDEXED BY coordinator_tasks_leases");
    push_expired(&mut sql, now);
    push_queues(&mut sql, queues);
    sql.push(" ORDER BY lease_until_ms LIMIT ")
        .bind(Arg::Int(limit));
    let expired: Vec<Uuid> = tx.fetch(ACTION, &sql, &|row| row.id("id")).await?;
    let mut candidates = expired.clone();
    let room = limit - i64::try_from(expired.len()).unwrap_or(limit);
    if room > 0 {
        let mut sql = tx.sql("SELECT id FROM coordinator_tasks INDEXED BY coordinator_tasks_ready");
        push_due(&mut sql, now);
        push_queues(&mut sql, queues);
        sql.push(" ORDER BY run_at_ms, id LIMIT ")
            .bind(Arg::Int(room));
        candidates.extend(tx.fetch(ACTION, &sql, &|row| row.id("id")).await?);
    }
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    if !expired.is_empty() {
        let mut lost =
            tx.sql("UPDATE coordinator_task_attempts SET status = 'lost', finished_at_ms = ");
        lost.bind(Arg::Int(now))
            .push(", error_chain = ")
            .bind(Arg::Text(LOST_CHAIN.to_owned()))
            .push(
                " WHERE finished_at_ms IS NULL AND (task_id, attempt) IN \
                 (SELECT id, attempts FROM coordinator_tasks WHERE id IN ",
            )
            .bind_list(expired.iter().map(|id| Arg::Id(*id)))
            .push(")");
        tx.execute(ACTION, &lost).await?;
    }
    let mut sql = tx.sql(
        "UPDATE coordinator_tasks SET state = 'running', attempts = attempts + 1, lease_owner = ",
    );
    sql.bind(Arg::Text(worker_id.to_owned()))
        .push(", lease_until_ms = ")
        .bind(Arg::Int(ms_to_db(lease_until)))
        .push(", updated_at_ms = ")
        .bind(Arg::Int(now))
        .push(" WHERE id IN ")
        .bind_list(candidates.iter().map(|id| Arg::Id(*id)))
        .push(&format!(" RETURNING {CLAIMED_COLUMNS}, 'x' AS was"));
    let claimed = tx
        .fetch(ACTION, &sql, &|row| claimed_from_row(row, lease_until))
        .await?;
    if claimed.is_empty() {
        return Ok(Vec::new());
    }
    let mut started = tx.sql(
        "INSERT INTO coordinator_task_attempts (task_id, attempt, worker, started_at_ms, status) \
         VALUES ",
    );
    for (i, (task, _)) in claimed.iter().enumerate() {
        started
            .push(if i == 0 { "(" } else { ", (" })
            .bind(Arg::Id(task.id))
            .push(", ")
            .bind(Arg::Int(i64::from(task.attempt)))
            .push(", ")
            .bind(Arg::Text(worker_id.to_owned()))
            .push(", ")
            .bind(Arg::Int(now))
            .push(", 'running')");
    }
    tx.execute(ACTION, &started).await?;
    log_recovered(&expired);
    Ok(claimed.into_iter().map(|(task, _)| task).collect())
}

/// Makes dead the running tasks whose lease expired on their last attempt.
async fn reap_exhausted(tx: &mut Tx, queues: &[String], now: i64) -> Result<(), StoreError> {
    let mut sql =
        tx.sql("SELECT id, attempts FROM coordinator_tasks INDEXED BY coordinator_tasks_leases");
    push_exhausted(&mut sql, now);
    push_queues(&mut sql, queues);
    let exhausted = tx
        .fetch(ACTION, &sql, &|row| {
            Ok((row.id("id")?, row.int("attempts")?))
        })
        .await?;
    if exhausted.is_empty() {
        return Ok(());
    }
    let mut attempts =
        tx.sql("UPDATE coordinator_task_attempts SET status = 'lost', finished_at_ms = ");
    attempts
        .bind(Arg::Int(now))
        .push(", error_chain = ")
        .bind(Arg::Text(LOST_CHAIN.to_owned()))
        .push(" WHERE finished_at_ms IS NULL AND (");
    push_attempts(&mut attempts, exhausted.iter().copied());
    attempts.push(")");
    tx.execute(ACTION, &attempts).await?;
    let mut dead = tx.sql(
        "UPDATE coordinator_tasks SET state = 'dead', lease_owner = NULL, \
         lease_until_ms = NULL, last_error = ",
    );
    dead.bind(Arg::Text(LOST_LAST_CHAIN.to_owned()))
        .push(", updated_at_ms = ")
        .bind(Arg::Int(now))
        .push(", finished_at_ms = ")
        .bind(Arg::Int(now))
        .push(" WHERE id IN ")
        .bind_list(exhausted.iter().map(|(id, _)| Arg::Id(*id)));
    tx.execute(ACTION, &dead).await?;
    log_reaped(&exhausted.iter().map(|(id, _)| *id).collect::<Vec<_>>());
    Ok(())
}
