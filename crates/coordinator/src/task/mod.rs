//! Durable background tasks: declarations, retry policies, and what a task run returns.
//!
//! Handlers should do little themselves: they enqueue a task (with [`Context::enqueue`]) that
//! calls the slow or unreliable service, with a timeout, retries with exponential backoff and
//! jitter, and a dead state an operator can inspect and retry. Tasks are stored durably, so a
//! crash loses none; a worker that dies mid-task loses its lease and another worker runs it.
//!
//! Tasks run at least once: a worker can die after a task's effect and before recording it, and
//! the task then runs again. Write tasks to be idempotent. The queue is in the
//! [`Store`](crate::Store), the [`Worker`](crate::Worker) runs it, and
//! [`TestCoordinator::run_tasks`](crate::testing::TestCoordinator::run_tasks) runs it in tests;
//! see `docs/decisions/0008-durable-tasks.md`.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use uuid::Uuid;

pub(crate) mod delivery;
pub(crate) mod enqueue;
pub(crate) mod record;

pub use enqueue::Received;

pub use record::{
    AttemptStatus, ClaimedTask, LOST_CHAIN, LOST_LAST_CHAIN, NewTask, StoredTask, TaskAttempt,
    TaskCount, TaskOutcome, TaskPage, TaskQuery, TaskState,
};

use crate::context::Context;
use crate::handler::{BoxFuture, HandlerError, Summary};
use crate::payload::Payload;
use crate::state::{FromContext, Requirement};

/// A durable background task whose payload is `P`.
///
/// Declare it as a `static` with an imperative name (`lms.enroll_in_course`), then register it
/// with [`ExtensionBuilder::task`](crate::ExtensionBuilder::task) together with the function that
/// runs it. The retry policy, timeout and queue set here are defaults an operator can override in
/// `[tasks."<name>"]`.
///
/// ```
/// use std::time::Duration;
/// use coordinator::prelude::*;
/// use coordinator::task::RetryPolicy;
///
/// #[derive(Debug, Serialize, Deserialize, JsonSchema)]
/// pub struct EnrollInCourse { pub lms_user_id: u64, pub course_run_key: String }
///
/// pub static ENROLL_IN_COURSE: Task<EnrollInCourse> = Task::new(
///     "lms.enroll_in_course",
///     "Enrolls a learner in a course run through the LMS enrollment API.",
/// )
/// .retry(RetryPolicy::exponential(8, Duration::from_secs(2), Duration::from_secs(600)))
/// .timeout(Duration::from_secs(30))
/// .queue("lms");
/// assert_eq!(ENROLL_IN_COURSE.defaults().queue, "lms");
/// ```
pub struct Task<P> {
    name: &'static str,
    doc: &'static str,
    defaults: TaskSettings,
    payload: PhantomData<fn() -> P>,
}

/// A task's retry policy, timeout and queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TaskSettings {
    /// How attempts are retried.
    pub retry: RetryPolicy,
    /// How long one attempt may run before it is abandoned and counted as failed.
    #[serde(serialize_with = "millis", rename = "timeout_ms")]
    pub timeout: Duration,
    /// The queue it is enqueued on; workers serve the queues they are configured for.
    pub queue: &'static str,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How many times a task is attempted, and how long to wait between attempts.
///
/// The wait before attempt `n + 1` is `initial_backoff * 2^(n - 1)`, capped at `max_backoff`,
/// of which a random half is kept ("equal jitter"), so that tasks failing together do not retry
/// together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 means never retried).
    pub max_attempts: u32,
    /// The wait after the first failure.
    #[serde(serialize_with = "millis", rename = "initial_backoff_ms")]
    pub initial_backoff: Duration,
    /// The longest wait between attempts.
    #[serde(serialize_with = "millis", rename = "max_backoff_ms")]
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// The default: 5 attempts, waits from 1 s doubling up to 5 min.
    pub const DEFAULT: Self = Self::exponential(
        record::DEFAULT_MAX_ATTEMPTS,
        Duration::from_secs(1),
        Duration::from_secs(300),
    );

    /// `max_attempts` attempts with exponential backoff from `initial` up to `max`.
    pub const fn exponential(max_attempts: u32, initial: Duration, max: Duration) -> Self {
        Self {
            max_attempts,
            initial_backoff: initial,
            max_backoff: max,
        }
    }

    /// A single attempt: a failure is final.
    pub const fn never() -> Self {
        Self::exponential(1, Duration::ZERO, Duration::ZERO)
    }

    /// The wait after failed attempt number `attempt` (from 1), given `unit`, a random number in
    /// `[0, 1)`.
    pub fn backoff(&self, attempt: u32, unit: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(32);
        let full = self
            .initial_backoff
            .saturating_mul(1u32 << exp.min(31))
            .min(self.max_backoff);
        let half = full / 2;
        half + half.mul_f64(unit.clamp(0.0, 1.0))
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl<P: Payload> Task<P> {
    /// Defines a task with the default retry policy ([`RetryPolicy::DEFAULT`]), a 60 s timeout,
    /// on the `default` queue.
    pub const fn new(name: &'static str, doc: &'static str) -> Self {
        Self {
            name,
            doc,
            defaults: TaskSettings {
                retry: RetryPolicy::DEFAULT,
                timeout: Duration::from_secs(60),
                queue: "default",
            },
            payload: PhantomData,
        }
    }

    /// Sets the default retry policy.
    pub const fn retry(mut self, policy: RetryPolicy) -> Self {
        self.defaults.retry = policy;
        self
    }

    /// Sets the default timeout of one attempt.
    pub const fn timeout(mut self, timeout: Duration) -> Self {
        self.defaults.timeout = timeout;
        self
    }

    /// Sets the default queue.
    pub const fn queue(mut self, queue: &'static str) -> Self {
        self.defaults.queue = queue;
        self
    }

    /// The task's full name.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// What the task does.
    pub const fn doc(&self) -> &'static str {
        self.doc
    }

    /// The settings declared in code (configuration may override them).
    pub const fn defaults(&self) -> TaskSettings {
        self.defaults
    }
}

impl<P> fmt::Debug for Task<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("name", &self.name)
            .field("payload", &std::any::type_name::<P>())
            .field("defaults", &self.defaults)
            .finish()
    }
}

/// Why a task attempt failed, and what should happen next.
///
/// `?` on any error gives [`TaskError::Retry`]: most failures of a remote service are transient.
pub enum TaskError {
    /// Transient: try again after the policy's backoff (or give up when attempts are exhausted).
    Retry(HandlerError),
    /// Transient, and the service said when to come back (a `Retry-After` header).
    RetryAfter(Duration, HandlerError),
    /// Permanent (the request is invalid, the resource is gone): no more attempts, the task is dead.
    Abort(HandlerError),
    /// Not run: something it needs is known to be unavailable (an external service's circuit
    /// breaker is open). Run again after the wait, and this attempt is not counted: a task
    /// waits out an outage instead of spending its attempts on it.
    Postpone(Duration, HandlerError),
}

impl TaskError {
    /// A permanent failure.
    pub fn abort(error: impl Into<HandlerError>) -> Self {
        Self::Abort(error.into())
    }

    /// A transient failure to retry after `after`.
    pub fn retry_after(after: Duration, error: impl Into<HandlerError>) -> Self {
        Self::RetryAfter(after, error.into())
    }

    /// Not run now: run again after `after`, without counting this attempt.
    pub fn postpone(after: Duration, error: impl Into<HandlerError>) -> Self {
        Self::Postpone(after, error.into())
    }

    /// The error behind the decision.
    pub fn error(&self) -> &HandlerError {
        match self {
            TaskError::Retry(e)
            | TaskError::RetryAfter(_, e)
            | TaskError::Abort(e)
            | TaskError::Postpone(_, e) => e,
        }
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for TaskError {
    fn from(error: E) -> Self {
        Self::Retry(error.into())
    }
}

impl From<HandlerError> for TaskError {
    fn from(error: HandlerError) -> Self {
        Self::Retry(error)
    }
}

impl fmt::Debug for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Retry(e) => write!(f, "Retry({e:?})"),
            TaskError::RetryAfter(d, e) => write!(f, "RetryAfter({d:?}, {e:?})"),
            TaskError::Abort(e) => write!(f, "Abort({e:?})"),
            TaskError::Postpone(d, e) => write!(f, "Postpone({d:?}, {e:?})"),
        }
    }
}

/// What a task run returns.
pub type TaskResult = Result<Summary, TaskError>;

/// One attempt of a task: its id and attempt number, and a [`Context`] that sends signals and
/// enqueues tasks as this task (its sender is [`Sender::Task`](crate::Sender::Task), and its
/// cause the dispatch that led to the task, so that the chain of events can be followed).
#[derive(Clone, Debug)]
pub struct TaskContext {
    pub(crate) id: Uuid,
    pub(crate) attempt: u32,
    pub(crate) max_attempts: u32,
    pub(crate) task: &'static str,
    pub(crate) context: Context,
}

impl TaskContext {
    /// The task's id.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// This attempt's number, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Attempts in all, the first included: this is the last when `attempt() == max_attempts()`.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The task's name.
    pub fn task(&self) -> &'static str {
        self.task
    }

    /// The dispatch that led to this task (through a handler that enqueued it, or a chain of
    /// tasks), if any.
    pub fn origin_dispatch(&self) -> Option<Uuid> {
        self.context.cause()
    }

    /// A context whose sender is this task.
    pub fn context(&self) -> &Context {
        &self.context
    }
}

/// When and how to enqueue a task.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnqueueOptions {
    /// Run no earlier than this (delayed tasks). Default: now.
    pub run_at: Option<SystemTime>,
    /// A deduplication key: while a task of the same name and key is queued, retrying or
    /// running, enqueueing again returns that task's id instead of adding one.
    pub unique_key: Option<String>,
    /// With `unique_key`, a task of that name and key that succeeded counts too (until the
    /// retention deletes it): see [`EnqueueOptions::once`].
    pub once: bool,
}

impl EnqueueOptions {
    /// Run after `delay`.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.run_at = Some(SystemTime::now() + delay);
        self
    }

    /// Run no earlier than `at`.
    pub fn at(mut self, at: SystemTime) -> Self {
        self.run_at = Some(at);
        self
    }

    /// Deduplicate on `key` while a task of the same name and key is pending: once it has
    /// finished, the key can be used again (a periodic job, say).
    pub fn unique(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self.once = false;
        self
    }

    /// Do the work of `key` once: enqueueing again returns the id of the task of the same name
    /// and key that is pending or has succeeded (until `[worker] retention` deletes it). Use it
    /// for work that must not be repeated when the code that enqueues it runs again, as a
    /// task's or a durable delivery's code does after a crash (an enrollment, a refund).
    pub fn once(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self.once = true;
        self
    }
}

/// Why a task could not be enqueued. Each message says what to change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnqueueError {
    /// No enabled extension declares the task.
    #[error(
        "cannot enqueue task \"{task}\": no enabled extension declares it; declare it with \
         `ExtensionBuilder::task` in its extension's `build`, and check that the extension is in \
         [extensions] enabled"
    )]
    NotDeclared {
        /// The task.
        task: &'static str,
    },
    /// The task is declared with another payload type than the one given.
    #[error(
        "cannot enqueue task \"{task}\" with a `{given}`: it is declared with payload `{declared}`; \
         enqueue it through the `Task` static its extension registers"
    )]
    PayloadMismatch {
        /// The task.
        task: &'static str,
        /// The payload type it is declared with.
        declared: &'static str,
        /// The payload type given.
        given: &'static str,
    },
    /// The coordinator was built without a store, so tasks have nowhere to go.
    #[error(
        "cannot enqueue task \"{task}\": the coordinator has no store; build it with \
         `CoordinatorBuilder::store` (in tests, `TestCoordinator::builder().with_store(coordinator_sqlite::testing::temporary())`)"
    )]
    NoStore {
        /// The task.
        task: &'static str,
    },
    /// The payload could not be serialized to JSON.
    #[error(
        "cannot enqueue task \"{task}\": its payload does not serialize to JSON ({source}); \
         check the payload type's `Serialize` implementation (maps need string keys)"
    )]
    Payload {
        /// The task.
        task: &'static str,
        /// The serializer's error.
        source: serde_json::Error,
    },
    /// An external event's source or id cannot be a key of the inbox (empty, too long, or with
    /// a control character): the caller sent something malformed.
    #[error(
        "the event's {what} {value} cannot be received: {problem}; send a printable {what} of \
         1 to {max} characters",
        max = MAX_INTAKE_KEY
    )]
    InvalidIntakeKey {
        /// `source` or `id`.
        what: &'static str,
        /// The value, escaped so that it prints on one line.
        value: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The store refused or failed.
    #[error("cannot enqueue task \"{task}\": {source}")]
    Store {
        /// The task.
        task: &'static str,
        /// The store's error.
        source: crate::store::StoreError,
    },
}

/// The longest source or id of an external event the inbox takes, in characters.
pub const MAX_INTAKE_KEY: usize = 255;

/// Refuses a source or id of an external event that cannot be an inbox key.
pub(crate) fn check_intake_key(what: &'static str, value: &str) -> Result<(), EnqueueError> {
    match crate::names::key_problem(value, MAX_INTAKE_KEY) {
        None => Ok(()),
        Some(problem) => Err(EnqueueError::InvalidIntakeKey {
            what,
            value: crate::names::quoted(value),
            problem,
        }),
    }
}

/// A task with its payload type erased: it deserializes the stored JSON payload and runs.
#[doc(hidden)]
pub trait ErasedTask: Send + Sync {
    /// Runs one attempt on the stored payload, or says why the payload cannot be read.
    fn call(&self, context: TaskContext, payload: &str) -> Result<BoxFuture<TaskResult>, String>;

    /// The payload with its personal data redacted, or `None` if it is not a valid payload.
    fn redact(&self, payload: &serde_json::Value) -> Option<serde_json::Value>;
}

/// A function that can run attempts of a task of `P`: `async fn(TaskContext, P, ...) ->
/// Result<O, E>`, where each further argument is a [`FromContext`] (a
/// [`State<T>`](crate::State) of the extension), `O` converts into a [`Summary`] and `E` into a
/// [`TaskError`] (any error converts into a retryable one). `Args` is inferred.
pub trait IntoTask<P, Args>: Send + Sync + Sized + 'static {
    /// The state types it takes, checked at start-up.
    #[doc(hidden)]
    fn requirements() -> Vec<Requirement>;

    /// The task function with its types erased.
    #[doc(hidden)]
    fn into_erased(self) -> Arc<dyn ErasedTask>;
}

struct TypedTask<P, F, Args> {
    f: F,
    types: PhantomData<fn(P, Args)>,
}

macro_rules! task_arity {
    ($($arg:ident),*) => {
        impl<P, F, Fut, O, E, $($arg,)*> IntoTask<P, ($($arg,)*)> for F
        where
            P: Payload,
            F: Fn(TaskContext, P, $($arg,)*) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = Result<O, E>> + Send + 'static,
            O: Into<Summary>,
            E: Into<TaskError>,
            $($arg: FromContext,)*
        {
            fn requirements() -> Vec<Requirement> {
                let all: &[Option<Requirement>] = &[$($arg::requirement(),)*];
                all.iter().flatten().copied().collect()
            }

            fn into_erased(self) -> Arc<dyn ErasedTask> {
                Arc::new(TypedTask::<P, F, ($($arg,)*)> { f: self, types: PhantomData })
            }
        }

        impl<P, F, Fut, O, E, $($arg,)*> ErasedTask for TypedTask<P, F, ($($arg,)*)>
        where
            P: Payload,
            F: Fn(TaskContext, P, $($arg,)*) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = Result<O, E>> + Send + 'static,
            O: Into<Summary>,
            E: Into<TaskError>,
            $($arg: FromContext,)*
        {
            #[allow(non_snake_case)]
            fn call(
                &self,
                context: TaskContext,
                payload: &str,
            ) -> Result<BoxFuture<TaskResult>, String> {
                let payload: P = serde_json::from_str(payload).map_err(|e| {
                    format!(
                        "the stored payload is not a valid {}: {e}",
                        std::any::type_name::<P>()
                    )
                })?;
                let taken = Ok::<_, HandlerError>(()).and_then(|()| {
                    Ok(($($arg::from_context(context.context())?,)*))
                });
                let ($($arg,)*) = match taken {
                    Ok(taken) => taken,
                    Err(e) => return Ok(Box::pin(std::future::ready(Err(TaskError::Abort(e))))),
                };
                let fut = (self.f)(context, payload, $($arg,)*);
                Ok(Box::pin(async move {
                    fut.await.map(Into::into).map_err(Into::into)
                }))
            }

            fn redact(&self, payload: &serde_json::Value) -> Option<serde_json::Value> {
                P::deserialize(payload)
                    .ok()
                    .map(|p| crate::payload::redacted_json(&p))
            }
        }
    };
}

task_arity!();
task_arity!(A1);
task_arity!(A1, A2);
task_arity!(A1, A2, A3);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_equal_jitter() {
        let p = RetryPolicy::exponential(10, Duration::from_secs(1), Duration::from_secs(10));
        assert_eq!(p.backoff(1, 0.0), Duration::from_millis(500));
        assert_eq!(p.backoff(1, 1.0), Duration::from_secs(1));
        assert_eq!(p.backoff(3, 1.0), Duration::from_secs(4));
        assert_eq!(p.backoff(9, 1.0), Duration::from_secs(10), "capped");
        assert_eq!(
            p.backoff(200, 0.5),
            Duration::from_millis(7500),
            "no overflow"
        );
    }

    #[test]
    fn errors_retry_unless_told_otherwise() {
        let e: TaskError = std::io::Error::other("503 from the LMS").into();
        assert!(matches!(e, TaskError::Retry(_)));
        assert!(matches!(
            TaskError::abort(std::io::Error::other("404")),
            TaskError::Abort(_)
        ));
    }
}
