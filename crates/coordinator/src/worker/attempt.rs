//! One attempt: run isolated under its timeout, its outcome decided, recorded and logged.

use std::sync::Arc;
use std::time::Duration;

use tracing::{Span, debug, debug_span, error, field, info, warn};

use crate::config::ConfigDuration;
use crate::context::{Context, Runtime};
use crate::dispatch::Sender;
use crate::guard::{Guard, Guarded};
use crate::id::{now_ms, random_unit};
use crate::store::{Store, StoreError};
use crate::task::{AttemptStatus, ClaimedTask, TaskContext, TaskError, TaskOutcome};
use crate::wiring::TaskKind;

/// Runs one claimed attempt, isolated, and decides what to record.
pub(crate) async fn run_attempt(runtime: &Arc<Runtime>, claimed: &ClaimedTask) -> TaskOutcome {
    let Some(wired) = runtime.wiring.tasks.get(claimed.task.as_str()) else {
        return TaskOutcome::Dead {
            status: AttemptStatus::Error,
            chain: vec![format!(
                "task \"{}\" is unknown to this worker: no enabled extension of this binary \
                 declares it; run a binary with the extension that declares it enabled, then \
                 retry the task",
                claimed.task
            )],
        };
    };
    // A delivery runs its handler, which sends as itself; a task sends as the task.
    let sender = match wired.kind {
        TaskKind::Task => Sender::Task(wired.name),
        TaskKind::Delivery => Sender::Handler(wired.name),
    };
    let context = TaskContext {
        id: claimed.id,
        attempt: claimed.attempt,
        max_attempts: claimed.max_attempts,
        task: wired.name,
        context: Context::new(Arc::clone(runtime), sender, wired.extension)
            .caused_by(claimed.origin_dispatch),
    };
    let call = Arc::clone(&wired.call);
    let payload = claimed.payload.clone();
    // The call itself (which reads the payload) happens on the first poll, inside the guard.
    let attempt = Box::pin(async move {
        match call.call(context, &payload) {
            Ok(fut) => Ok(fut.await),
            Err(unreadable) => Err(unreadable),
        }
    });
    let retry = |status, chain: Vec<String>, wait: Option<Duration>| {
        if claimed.attempt >= claimed.max_attempts {
            return TaskOutcome::Dead { status, chain };
        }
        let wait = wait.unwrap_or_else(|| wired.retry.backoff(claimed.attempt, random_unit()));
        TaskOutcome::Retry {
            at_ms: now_ms().saturating_add(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)),
            status,
            chain,
        }
    };
    match Guard::new(attempt, wired.timeout).await {
        Guarded::Finished(Ok(Ok(summary))) => TaskOutcome::Succeeded(summary.into_string()),
        Guarded::Finished(Ok(Err(TaskError::Retry(e)))) => {
            retry(AttemptStatus::Error, e.chain(), None)
        }
        Guarded::Finished(Ok(Err(TaskError::RetryAfter(after, e)))) => {
            retry(AttemptStatus::Error, e.chain(), Some(after))
        }
        // Not counted (released), whatever attempt this was.
        Guarded::Finished(Ok(Err(TaskError::Postpone(after, e)))) => TaskOutcome::Retry {
            at_ms: now_ms().saturating_add(u64::try_from(after.as_millis()).unwrap_or(u64::MAX)),
            status: AttemptStatus::Released,
            chain: e.chain(),
        },
        Guarded::Finished(Ok(Err(TaskError::Abort(e)))) => TaskOutcome::Dead {
            status: AttemptStatus::Error,
            chain: e.chain(),
        },
        Guarded::Finished(Err(unreadable)) => TaskOutcome::Dead {
            status: AttemptStatus::Error,
            chain: vec![format!(
                "{unreadable}; the payload was stored by a version with another payload type: \
                 enqueue the task again with a valid payload"
            )],
        },
        Guarded::Panicked { message, location } => retry(
            AttemptStatus::Panicked,
            vec![format!(
                "panicked at {}: {message}",
                location.as_deref().unwrap_or("an unknown location")
            )],
            None,
        ),
        Guarded::TimedOut => retry(
            AttemptStatus::TimedOut,
            vec![format!(
                "timed out after {} and was abandoned; raise [{}.\"{}\"] timeout if it needs \
                 longer",
                ConfigDuration(wired.timeout),
                match wired.kind {
                    TaskKind::Task => "tasks",
                    TaskKind::Delivery => "handlers",
                },
                wired.name
            )],
            None,
        ),
    }
}

/// Records an attempt's outcome, fenced by the lease. `Ok(false)`: the lease was lost or the
/// task cancelled, and the outcome was discarded.
pub(crate) async fn record(
    store: &Store,
    worker_id: &str,
    task: &ClaimedTask,
    outcome: &TaskOutcome,
) -> Result<bool, StoreError> {
    store
        .record_outcome(task.id, worker_id, task.attempt, outcome)
        .await
}

/// Logs a recorded outcome (in the task's span) and returns the status observers get.
pub(crate) fn log_recorded(
    task: &ClaimedTask,
    outcome: &TaskOutcome,
    applied: bool,
    duration: Duration,
) -> &'static str {
    let duration_us = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
    let (name, id, attempt) = (task.task.as_str(), task.id, task.attempt);
    if !applied {
        warn!(task = name, task_id = %id, attempt, duration_us,
            outcome = outcome.state().as_str(),
            "task outcome discarded: the task was cancelled, or its lease was lost and another \
             worker claimed it");
        return "lost";
    }
    match outcome {
        TaskOutcome::Succeeded(result) => {
            debug!(task = name, task_id = %id, attempt, duration_us, result = result.as_deref(),
                "task succeeded");
        }
        TaskOutcome::Retry {
            at_ms,
            status: AttemptStatus::Released,
            chain,
        } => {
            let retry_in_ms = at_ms.saturating_sub(now_ms());
            info!(task = name, task_id = %id, attempt, duration_us, retry_in_ms,
                reason = %chain.join(": "),
                "task postponed; this attempt is not counted");
            return "postponed";
        }
        TaskOutcome::Retry {
            at_ms,
            status,
            chain,
        } => {
            let retry_in_ms = at_ms.saturating_sub(now_ms());
            warn!(task = name, task_id = %id, attempt, max_attempts = task.max_attempts,
                duration_us, status = %status, retry_in_ms, error = %chain.join(": "),
                "task attempt failed; it will be retried");
        }
        TaskOutcome::Dead { status, chain } => {
            error!(task = name, task_id = %id, attempt, max_attempts = task.max_attempts,
                duration_us, status = %status, error = %chain.join(": "),
                origin_dispatch = ?task.origin_dispatch,
                "task is dead: no more attempts; retry it once the cause is fixed");
        }
    }
    outcome.state().as_str()
}

/// The span one attempt runs in.
pub(crate) fn task_span(task: &ClaimedTask) -> Span {
    let span = debug_span!("task", task = task.task.as_str(), task_id = %task.id,
        attempt = task.attempt, origin_dispatch = field::Empty);
    if let Some(origin) = task.origin_dispatch {
        span.record("origin_dispatch", field::display(origin));
    }
    span
}
