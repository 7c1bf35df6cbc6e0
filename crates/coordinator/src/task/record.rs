//! What the queue stores about tasks: the records backends write and read, the same on every
//! backend.
//!
//! A task is `queued` (or `retrying`, after a failure) until its `run_at` comes; a worker then
//! claims it, which makes it `running` under a lease (the worker's id and a deadline) and counts
//! an attempt. The worker renews the lease while the task runs and finally records the outcome
//! ([`TaskOutcome`]): `succeeded`, `retrying` (at a later `run_at`) or `dead`. Recording is
//! *fenced*: it only changes a task still running under the same worker and attempt, so a
//! worker that lost its lease (it was too slow to renew, the task was cancelled) cannot
//! overwrite what happened since. A running task whose lease expired is claimed again by any
//! worker, and the expired attempt is recorded as `lost`. See
//! `docs/decisions/0008-durable-tasks.md`.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::id::now_ms;

/// A task to add to the queue ([`Store::enqueue_task`](crate::store::Store::enqueue_task), [`StoreTx::enqueue_task`](crate::store::StoreTx::enqueue_task)).
///
/// Extensions enqueue through [`Context::enqueue`](crate::Context::enqueue), which fills this in
/// from the task's declaration and configuration; build one directly in tools and tests.
///
/// ```
/// use coordinator::task::NewTask;
///
/// let task = NewTask {
///     queue: "lms".into(),
///     unique_key: Some("order-EDX-1".into()),
///     ..NewTask::new("lms.enroll_in_course", r#"{"order":"EDX-1"}"#)
/// };
/// assert_eq!(task.max_attempts, 5);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTask {
    /// The task's name (`lms.enroll_in_course`).
    pub task: String,
    /// The queue it runs on.
    pub queue: String,
    /// The payload, as JSON text.
    pub payload: String,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Run no earlier than this, in milliseconds since the Unix epoch.
    pub run_at_ms: u64,
    /// While a task of the same name and key is queued, retrying or running, enqueueing returns
    /// that task's id instead of adding one.
    pub unique_key: Option<String>,
    /// With `unique_key`: a task of the same name and key that succeeded (and has not been
    /// deleted by `[worker] retention` yet) counts too, and its id is returned: the key is an
    /// idempotency key, and the work is done once however often it is enqueued.
    pub once: bool,
    /// The dispatch whose handler (or whose chain of tasks) enqueued it, to follow events.
    pub origin_dispatch: Option<Uuid>,
}

impl NewTask {
    /// A task on the `default` queue, due now, with the default 5 attempts.
    pub fn new(task: impl Into<String>, payload_json: impl Into<String>) -> Self {
        Self {
            task: task.into(),
            queue: "default".to_owned(),
            payload: payload_json.into(),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            run_at_ms: now_ms(),
            unique_key: None,
            once: false,
            origin_dispatch: None,
        }
    }
}

/// Where a task is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Waiting for its `run_at` and a worker.
    Queued,
    /// Claimed by a worker, which holds its lease.
    Running,
    /// Finished: an attempt succeeded.
    Succeeded,
    /// An attempt failed; waiting for its `run_at` to be attempted again.
    Retrying,
    /// Given up: attempts exhausted or a permanent failure. An operator may retry it.
    Dead,
    /// Cancelled by an operator. It may be retried.
    Cancelled,
}

impl TaskState {
    /// Every state, in life order.
    pub const ALL: [TaskState; 6] = [
        TaskState::Queued,
        TaskState::Running,
        TaskState::Succeeded,
        TaskState::Retrying,
        TaskState::Dead,
        TaskState::Cancelled,
    ];

    /// `queued`, `running`, `succeeded`, `retrying`, `dead` or `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Succeeded => "succeeded",
            TaskState::Retrying => "retrying",
            TaskState::Dead => "dead",
            TaskState::Cancelled => "cancelled",
        }
    }

    /// Whether the task will still run (queued, retrying or running).
    pub fn is_pending(self) -> bool {
        matches!(
            self,
            TaskState::Queued | TaskState::Retrying | TaskState::Running
        )
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown task state \"{s}\": write queued, running, succeeded, retrying, dead \
                     or cancelled"
                )
            })
    }
}

/// How one attempt of a task ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptStatus {
    /// It has not ended yet.
    Running,
    /// It succeeded.
    Ok,
    /// It returned an error (or its payload could not be read, or its task is unknown).
    Error,
    /// It panicked.
    Panicked,
    /// It did not finish within the task's timeout.
    TimedOut,
    /// Its worker shut down before it finished and gave it back; it does not count as an attempt.
    Released,
    /// Its worker stopped renewing the lease (it crashed or lost the database), so another
    /// worker claimed the task again.
    Lost,
}

impl AttemptStatus {
    const ALL: [AttemptStatus; 7] = [
        AttemptStatus::Running,
        AttemptStatus::Ok,
        AttemptStatus::Error,
        AttemptStatus::Panicked,
        AttemptStatus::TimedOut,
        AttemptStatus::Released,
        AttemptStatus::Lost,
    ];

    /// `running`, `ok`, `error`, `panicked`, `timed_out`, `released` or `lost`.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptStatus::Running => "running",
            AttemptStatus::Ok => "ok",
            AttemptStatus::Error => "error",
            AttemptStatus::Panicked => "panicked",
            AttemptStatus::TimedOut => "timed_out",
            AttemptStatus::Released => "released",
            AttemptStatus::Lost => "lost",
        }
    }
}

impl fmt::Display for AttemptStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AttemptStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AttemptStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| format!("unknown attempt status \"{s}\""))
    }
}

/// A task a worker has claimed: it now holds the lease until `lease_until_ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedTask {
    /// The task's id.
    pub id: Uuid,
    /// The task's name.
    pub task: String,
    /// Its queue.
    pub queue: String,
    /// The payload, as JSON text.
    pub payload: String,
    /// The number of this attempt, from 1: pass it back when recording the outcome.
    pub attempt: u32,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The dispatch that caused it, if any.
    pub origin_dispatch: Option<Uuid>,
    /// When the lease ends unless renewed, in milliseconds since the Unix epoch.
    pub lease_until_ms: u64,
}

/// A stored task, with its history of attempts when read with [`Store::get_task`](crate::store::Store::get_task).
///
/// The payload may hold personal data: show it through
/// [`Coordinator::redact_task_payload`](crate::Coordinator::redact_task_payload).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StoredTask {
    /// The task's id (a UUIDv7: ids sort by time).
    #[schemars(with = "String", extend("format" = "uuid"))]
    pub id: Uuid,
    /// The task's name (`lms.enroll_in_course`).
    pub task: String,
    /// The queue it runs on.
    pub queue: String,
    /// The payload.
    pub payload: serde_json::Value,
    /// Where it is in its life.
    pub state: TaskState,
    /// Attempts made so far (reset to 0 when an operator retries it).
    pub attempts: u32,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// When it runs next (or ran last), in milliseconds since the Unix epoch.
    pub run_at_ms: u64,
    /// The worker holding its lease, while running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_owner: Option<String>,
    /// When that lease ends unless renewed, in milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until_ms: Option<u64>,
    /// Its deduplication key, if enqueued with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_key: Option<String>,
    /// The dispatch that caused it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>", extend("format" = "uuid"))]
    pub origin_dispatch: Option<Uuid>,
    /// The summary its successful attempt returned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// The error chain of the last failed attempt, outermost first (kept when it is retried).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_error: Vec<String>,
    /// When it was enqueued, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// When it last changed state, in milliseconds since the Unix epoch.
    pub updated_at_ms: u64,
    /// When it succeeded, died or was cancelled, in milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<u64>,
    /// Every attempt, oldest first ([`Store::get_task`](crate::store::Store::get_task) only; empty in lists).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<TaskAttempt>,
}

/// One attempt of a task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TaskAttempt {
    /// Its number, from 1 (numbers start again after an operator's retry).
    pub attempt: u32,
    /// The worker that ran it.
    pub worker: String,
    /// When it was claimed, in milliseconds since the Unix epoch.
    pub started_at_ms: u64,
    /// When it ended, in milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<u64>,
    /// How it ended.
    pub status: AttemptStatus,
    /// When it failed: the error and its causes, outermost first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_chain: Vec<String>,
}

/// Which stored tasks to list: every filter given must match. Newest first.
///
/// ```
/// use coordinator::task::{TaskQuery, TaskState};
///
/// let dead = TaskQuery { state: Some(TaskState::Dead), ..TaskQuery::default() };
/// assert_eq!(dead.limit, 50);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct TaskQuery {
    /// Only tasks in this state.
    pub state: Option<TaskState>,
    /// Only tasks on this queue.
    pub queue: Option<String>,
    /// Only tasks of this name.
    pub task: Option<String>,
    /// Only tasks older than this one: pass the previous page's `next_before`.
    #[schemars(with = "Option<String>", extend("format" = "uuid"))]
    pub before: Option<Uuid>,
    /// The most tasks returned, 1 to 500 (values outside are clamped). Default 50.
    pub limit: u32,
}

impl TaskQuery {
    /// The default page size.
    pub const DEFAULT_LIMIT: u32 = 50;
    /// The largest page size.
    pub const MAX_LIMIT: u32 = 500;

    /// The page size used: `limit` clamped to 1..=500.
    pub fn effective_limit(&self) -> u32 {
        self.limit.clamp(1, Self::MAX_LIMIT)
    }
}

impl Default for TaskQuery {
    fn default() -> Self {
        Self {
            state: None,
            queue: None,
            task: None,
            before: None,
            limit: Self::DEFAULT_LIMIT,
        }
    }
}

/// One page of stored tasks, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskPage {
    /// The tasks (without their history: read one with [`Store::get_task`](crate::store::Store::get_task) for it).
    pub items: Vec<StoredTask>,
    /// When the page is full, the id to pass as `before` for the next (older) page.
    #[schemars(with = "Option<String>", extend("format" = "uuid"))]
    pub next_before: Option<Uuid>,
}

impl TaskPage {
    /// The page made of the rows a list query returned, when it asked for `limit` of them: a
    /// full page points at the next one.
    pub fn from_items(items: Vec<StoredTask>, limit: u32) -> Self {
        let full = items.len() >= limit as usize;
        TaskPage {
            next_before: if full {
                items.last().map(|t| t.id)
            } else {
                None
            },
            items,
        }
    }
}

/// How many tasks of one queue are in one state (for queue-depth metrics).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TaskCount {
    /// The queue.
    pub queue: String,
    /// The state.
    pub state: TaskState,
    /// How many tasks.
    pub count: u64,
}

/// How an attempt ended, as the worker records it ([`TaskQueue::record_outcomes`](crate::store::TaskQueue::record_outcomes)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskOutcome {
    /// It succeeded, with this summary.
    Succeeded(Option<String>),
    /// It failed; retry at this time (milliseconds since the Unix epoch).
    Retry {
        /// When to attempt it again.
        at_ms: u64,
        /// How the attempt ended (error, panicked, timed out).
        status: AttemptStatus,
        /// The error and its causes, outermost first.
        chain: Vec<String>,
    },
    /// It failed for good: the task is dead.
    Dead {
        /// How the attempt ended.
        status: AttemptStatus,
        /// The error and its causes, outermost first.
        chain: Vec<String>,
    },
}

impl TaskOutcome {
    /// The task's state once this is recorded: `succeeded`, `retrying` or `dead`.
    pub fn state(&self) -> TaskState {
        match self {
            TaskOutcome::Succeeded(_) => TaskState::Succeeded,
            TaskOutcome::Retry { .. } => TaskState::Retrying,
            TaskOutcome::Dead { .. } => TaskState::Dead,
        }
    }

    /// How the attempt ended.
    pub fn attempt_status(&self) -> AttemptStatus {
        match self {
            TaskOutcome::Succeeded(_) => AttemptStatus::Ok,
            TaskOutcome::Retry { status, .. } | TaskOutcome::Dead { status, .. } => *status,
        }
    }

    /// The error chain, outermost first (empty on success).
    pub fn chain(&self) -> &[String] {
        match self {
            TaskOutcome::Succeeded(_) => &[],
            TaskOutcome::Retry { chain, .. } | TaskOutcome::Dead { chain, .. } => chain,
        }
    }
}

/// How many attempts a task has unless its policy says otherwise (the first included).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// The error chain recorded on an attempt whose lease expired.
pub const LOST_CHAIN: &str = "[\"the worker running this attempt stopped renewing its lease (it \
stopped, crashed or lost the database); the task was claimed again\"]";

/// The error chain recorded on a task whose last attempt's lease expired.
pub const LOST_LAST_CHAIN: &str = "[\"the worker running the last attempt stopped renewing its \
lease (it stopped, crashed or lost the database) and no attempts are left\"]";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_statuses_round_trip_through_text() {
        for state in TaskState::ALL {
            assert_eq!(state.as_str().parse::<TaskState>(), Ok(state));
            assert_eq!(
                serde_json::to_value(state).unwrap(),
                serde_json::Value::from(state.as_str())
            );
        }
        for status in AttemptStatus::ALL {
            assert_eq!(status.as_str().parse::<AttemptStatus>(), Ok(status));
        }
        let e = "done".parse::<TaskState>().unwrap_err();
        assert!(e.contains("queued, running"), "{e}");
        assert!(TaskState::Retrying.is_pending() && !TaskState::Dead.is_pending());
    }

    #[test]
    fn the_lost_chains_are_json_lists() {
        for chain in [LOST_CHAIN, LOST_LAST_CHAIN] {
            let parsed: Vec<String> = serde_json::from_str(chain).unwrap();
            assert_eq!(parsed.len(), 1);
        }
    }

    #[test]
    fn outcomes_name_the_state_they_record() {
        assert_eq!(TaskOutcome::Succeeded(None).state(), TaskState::Succeeded);
        let retry = TaskOutcome::Retry {
            at_ms: 0,
            status: AttemptStatus::Error,
            chain: vec!["x".into()],
        };
        assert_eq!(
            (retry.state(), retry.chain(), retry.attempt_status()),
            (
                TaskState::Retrying,
                &["x".to_owned()][..],
                AttemptStatus::Error
            )
        );
    }

    #[test]
    fn task_query_limits_are_clamped_and_schemas_use_uuid_strings() {
        assert_eq!(
            TaskQuery {
                limit: 0,
                ..TaskQuery::default()
            }
            .effective_limit(),
            1
        );
        assert_eq!(
            TaskQuery {
                limit: 9999,
                ..TaskQuery::default()
            }
            .effective_limit(),
            500
        );
        let parsed: TaskQuery = serde_json::from_str(r#"{"state":"dead"}"#).unwrap();
        assert_eq!((parsed.state, parsed.limit), (Some(TaskState::Dead), 50));
        let schema = serde_json::to_value(schemars::schema_for!(StoredTask)).unwrap();
        assert_eq!(schema["properties"]["id"]["format"], "uuid", "{schema}");
    }
}
