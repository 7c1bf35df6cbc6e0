//! Why a call to an external service failed, classified for the task policy.
//!
//! | error | what happens to the task that made the call |
//! | --- | --- |
//! | [`CallError::Transient`] (timeout, connection, 5xx, 429) | retried by its policy, after the service's `Retry-After` when it gave one |
//! | [`CallError::Open`] (the service's breaker is open) | postponed to the end of the cool-down, the attempt not counted |
//! | [`CallError::Rejected`] (another 4xx) | dead at once, with the service's own message |
//! | [`CallError::Decode`] (a body that is not what was expected) | dead at once, naming the field |
//! | [`CallError::Request`] (a call that cannot be built) | dead at once |
//!
//! No variant holds a header, a token or a body beyond the service's error message (cut to
//! [`MESSAGE_LIMIT`] characters).

use std::time::Duration;

use coordinator::task::TaskError;

/// The longest part of a service's error message kept in an error.
pub const MESSAGE_LIMIT: usize = 300;

/// What kind of transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransientKind {
    /// No answer within the call's timeout.
    Timeout,
    /// The connection could not be made or broke.
    Connection,
    /// The service answered 5xx.
    ServerError,
    /// The service answered 429: too many requests.
    TooManyRequests,
}

impl TransientKind {
    /// A short label (`timeout`, `connection`, `server_error`, `too_many_requests`).
    pub fn as_str(self) -> &'static str {
        match self {
            TransientKind::Timeout => "timeout",
            TransientKind::Connection => "connection",
            TransientKind::ServerError => "server_error",
            TransientKind::TooManyRequests => "too_many_requests",
        }
    }
}

/// A failed call to an external service.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The service may succeed later: retry.
    #[error("{service}: {method} {route} failed ({kind}){status}: {message}", kind = kind.as_str(), status = status.map(|s| format!(", status {s}")).unwrap_or_default())]
    Transient {
        /// The service's name.
        service: &'static str,
        /// The HTTP method.
        method: &'static str,
        /// The route template called.
        route: &'static str,
        /// What failed.
        kind: TransientKind,
        /// The status, when the service answered.
        status: Option<u16>,
        /// When the service said to come back (`Retry-After`).
        retry_after: Option<Duration>,
        /// The service's message, or the transport error.
        message: String,
    },
    /// The service refused the request (a 4xx other than 429): the same request will be
    /// refused again.
    #[error("{service}: {method} {route} was refused with status {status}: {message}")]
    Rejected {
        /// The service's name.
        service: &'static str,
        /// The HTTP method.
        method: &'static str,
        /// The route template called.
        route: &'static str,
        /// The status (400-499 but 429).
        status: u16,
        /// The service's own error message, as it wrote it (cut to [`MESSAGE_LIMIT`]).
        message: String,
        /// The error code the service gave, if any (`ConcurrentModification`, `invalid_request`).
        code: Option<String>,
    },
    /// Calls to the service are suspended after repeated failures.
    #[error(
        "{service}: not called, its circuit breaker is open after repeated failures; the next \
         call is allowed in {} ms",
        retry_in.as_millis()
    )]
    Open {
        /// The service's name.
        service: &'static str,
        /// When the next call is allowed.
        retry_in: Duration,
    },
    /// The answer did not have the expected shape.
    #[error("{service}: the answer to {method} {route} could not be read at `{path}`: {message}")]
    Decode {
        /// The service's name.
        service: &'static str,
        /// The HTTP method.
        method: &'static str,
        /// The route template called.
        route: &'static str,
        /// Where in the body (`results[0].lineItems`), `.` for the whole body.
        path: String,
        /// What was wrong there.
        message: String,
    },
    /// The request could not be built (a bad URL in configuration, a body that does not
    /// serialize).
    #[error("{service}: {method} {route} could not be sent: {message}")]
    Request {
        /// The service's name.
        service: &'static str,
        /// The HTTP method.
        method: &'static str,
        /// The route template called.
        route: &'static str,
        /// What was wrong.
        message: String,
    },
}

impl CallError {
    /// Whether a later attempt may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, CallError::Transient { .. } | CallError::Open { .. })
    }

    /// The status the service answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            CallError::Transient { status, .. } => *status,
            CallError::Rejected { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The error code the service gave with a refusal (`ConcurrentModification`).
    pub fn code(&self) -> Option<&str> {
        match self {
            CallError::Rejected { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// How long to wait before trying again, when known.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CallError::Transient { retry_after, .. } => *retry_after,
            CallError::Open { retry_in, .. } => Some(*retry_in),
            _ => None,
        }
    }
}

impl CallError {
    /// What the task that made the call should do: transient failures are retried (after the
    /// service's `Retry-After` when it gave one), a call not made because the breaker is open
    /// is postponed to the end of the cool-down without counting the attempt; refusals, undecodable answers and
    /// unbuildable requests are permanent (the task is dead at once).
    ///
    /// `?` alone would make every error a retry (`TaskError` converts any error so); use
    /// [`ForTask::for_task`] on a call's result instead.
    pub fn into_task_error(self) -> TaskError {
        if let CallError::Open { retry_in, .. } = self {
            // Not called at all: the task waits for the cool-down without spending an attempt.
            return TaskError::postpone(retry_in, self);
        }
        if self.is_transient() {
            match self.retry_after() {
                Some(after) => TaskError::retry_after(after, self),
                None => TaskError::Retry(self.into()),
            }
        } else {
            TaskError::abort(self)
        }
    }
}

/// A call's result as a task's: `client.send(call).await.for_task()?`.
pub trait ForTask<T> {
    /// The result with its error classified for the task policy
    /// ([`CallError::into_task_error`]).
    fn for_task(self) -> Result<T, TaskError>;
}

impl<T> ForTask<T> for Result<T, CallError> {
    fn for_task(self) -> Result<T, TaskError> {
        self.map_err(CallError::into_task_error)
    }
}

/// `text` cut to [`MESSAGE_LIMIT`] characters, on a character boundary.
pub(crate) fn clip(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(MESSAGE_LIMIT) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transient(retry_after: Option<Duration>) -> CallError {
        CallError::Transient {
            service: "lms",
            method: "POST",
            route: "/api/enrollment/v1/enrollment",
            kind: TransientKind::ServerError,
            status: Some(503),
            retry_after,
            message: "upstream down".into(),
        }
    }

    #[test]
    fn transient_errors_retry_and_refusals_abort() {
        assert!(matches!(
            transient(None).into_task_error(),
            TaskError::Retry(_)
        ));
        assert!(matches!(
            transient(Some(Duration::from_secs(7))).into_task_error(),
            TaskError::RetryAfter(d, _) if d == Duration::from_secs(7)
        ));
        let open = CallError::Open {
            service: "lms",
            retry_in: Duration::from_secs(3),
        };
        assert!(
            matches!(open.into_task_error(), TaskError::Postpone(d, _) if d == Duration::from_secs(3))
        );
        let refused = CallError::Rejected {
            service: "lms",
            method: "POST",
            route: "/x",
            status: 400,
            message: "course mode is expired".into(),
            code: None,
        };
        let e = Err::<(), _>(refused).for_task().unwrap_err();
        assert!(matches!(e, TaskError::Abort(_)));
        assert!(e.error().to_string().contains("course mode is expired"));
    }

    #[test]
    fn messages_name_the_service_route_and_status() {
        let text = transient(None).to_string();
        assert_eq!(
            text,
            "lms: POST /api/enrollment/v1/enrollment failed (server_error), status 503: upstream down"
        );
    }

    #[test]
    fn long_messages_are_clipped_on_a_character_boundary() {
        let long = "é".repeat(MESSAGE_LIMIT + 10);
        let clipped = clip(&long);
        assert_eq!(clipped.chars().count(), MESSAGE_LIMIT + 1);
        assert!(clipped.ends_with('…'));
        assert_eq!(clip("  short  "), "short");
    }
}
