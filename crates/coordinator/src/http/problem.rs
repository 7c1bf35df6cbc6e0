//! Errors as `application/problem+json` (RFC 9457), and the framework's own errors as problems,
//! so that a route returns `Result<_, Problem>` and uses `?` on them.

use std::fmt;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::dispatch::report::NotAccepted;
use crate::filter::FilterError;
use crate::store::StoreError;
use crate::task::EnqueueError;

/// An error response in the shape of RFC 9457 (`application/problem+json`).
///
/// `detail` is for the caller: say what was wrong with the request and how to fix it. Internal
/// causes are logged with [`Problem::internal`], never returned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Problem {
    /// A URI naming the kind of problem; `about:blank` when the status says it all.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem (the status's reason phrase by default).
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request, and how to fix it.
    pub detail: String,
    /// More members (such as `errors`, a list of problems found in the body).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// When to try again, in seconds: sent as `Retry-After` (503 and 429 answers).
    #[serde(skip)]
    pub retry_after_secs: Option<u32>,
}

impl Problem {
    /// A problem with `status` and `detail`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank".to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            extra: serde_json::Map::new(),
            retry_after_secs: None,
        }
    }

    /// 503 with `Retry-After`: the work could not be made durable now (the database did not
    /// take it); the caller should send the request again after `retry_after_secs`.
    pub fn unavailable(detail: impl Into<String>, retry_after_secs: u32) -> Self {
        Self {
            retry_after_secs: Some(retry_after_secs),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, detail)
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    /// 401: credentials are missing or invalid.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, detail)
    }

    /// 403: the credentials are valid but do not allow this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }

    /// 404: nothing here.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    /// 422: well-formed, but not acceptable.
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }

    /// 500: logs `error` with its chain at ERROR and answers with a generic detail.
    pub fn internal(error: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %chain(error), "internal error while serving a request");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the server failed to handle the request; the error is logged with this request's id",
        )
    }

    /// Adds a member to the body.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.title, self.detail)
    }
}

impl std::error::Error for Problem {}

/// The media type of problem responses.
pub const PROBLEM_JSON: &str = "application/problem+json";

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// An error and its causes, outermost first, joined for a log line.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut chain = vec![error.to_string()];
    let mut cur = error.source();
    while let Some(e) = cur {
        chain.push(e.to_string());
        cur = e.source();
    }
    chain.join(": ")
}

/// How long a caller should wait before sending again work the database did not take.
const RETRY_AFTER_SECS: u32 = 1;

impl From<StoreError> for Problem {
    /// See [`Problem::from_store`].
    fn from(error: StoreError) -> Self {
        Problem::from_store(&error)
    }
}

impl Problem {
    /// The answer to a store's failure: the database did not answer, 503 with `Retry-After`
    /// (nothing was done, try again); a task that does not exist, 404; a task in the wrong
    /// state, 409; anything else, 500. The error is logged; the answer names no internals.
    pub fn from_store(error: &StoreError) -> Self {
        match error {
            e if e.is_database() => {
                tracing::error!(error = %chain(error), "the database did not take a request's work");
                Problem::unavailable(
                    "the coordinator could not store this request's work (its database did not \
                     answer); nothing was done: send the request again",
                    RETRY_AFTER_SECS,
                )
            }
            StoreError::TaskNotFound { .. } => Problem::not_found(error.to_string()),
            StoreError::TaskState { .. } | StoreError::DuplicatePendingTask { .. } => {
                Problem::new(StatusCode::CONFLICT, error.to_string())
            }
            _ => Problem::internal(error),
        }
    }
}

impl From<EnqueueError> for Problem {
    /// The store's failures as [`From<StoreError>`](#impl-From%3CStoreError%3E-for-Problem)
    /// says (503 with `Retry-After` when the database did not take the task); a task this
    /// coordinator cannot enqueue is a bug: 500.
    fn from(error: EnqueueError) -> Self {
        match error {
            EnqueueError::Store { source, .. } if source.is_database() => source.into(),
            EnqueueError::NoStore { .. } => {
                tracing::error!(error = %error, "a route enqueued with no store");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the coordinator has no storage, so this request's work cannot be kept; the \
                     error is logged with this request's id",
                )
            }
            e @ EnqueueError::InvalidIntakeKey { .. } => Problem::bad_request(e.to_string()),
            other => Problem::internal(&other),
        }
    }
}

impl From<NotAccepted> for Problem {
    /// 503 with `Retry-After`: a handler did not make its work durable, so the request is not
    /// accepted and the caller sends it again. The body names the handler and the dispatch
    /// (`handler`, `dispatch_id`); its error is in the log and the dispatch log.
    fn from(e: NotAccepted) -> Self {
        Problem::unavailable(e.to_string(), RETRY_AFTER_SECS)
            .with("handler", e.handler)
            .with("dispatch_id", e.dispatch_id.to_string())
    }
}

impl From<FilterError> for Problem {
    /// A step failed (often a service it called): 502, naming the filter and the step; the
    /// error chain is logged, not returned. A filter this coordinator does not have: 500.
    fn from(error: FilterError) -> Self {
        match &error {
            FilterError::NotDeclared { .. } => Problem::internal(&error),
            FilterError::StepFailed { filter, step, .. }
            | FilterError::StepPanicked { filter, step, .. }
            | FilterError::StepTimedOut { filter, step, .. } => {
                tracing::error!(error = %error, "a filter failed while serving a request");
                Problem::new(
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "filter \"{filter}\" failed at step \"{step}\"; the error is logged with \
                         this request's id"
                    ),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database_down() -> StoreError {
        StoreError::database("postgresql", "enqueue a task")("connection reset by peer")
    }

    #[test]
    fn a_store_that_did_not_take_the_work_is_a_503_to_retry_without_internals() {
        let problem = Problem::from(EnqueueError::Store {
            task: "shop.ship",
            source: database_down(),
        });
        assert_eq!(problem.status, 503);
        assert!(
            problem.detail.contains("send the request again"),
            "{problem}"
        );
        assert!(!problem.detail.contains("connection reset"), "{problem}");
        let response = problem.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }

    #[test]
    fn task_operations_answer_404_and_409() {
        let id = uuid::Uuid::nil();
        let missing = Problem::from(StoreError::TaskNotFound {
            action: "retry",
            id,
        });
        assert_eq!(missing.status, 404);
        let wrong = Problem::from(StoreError::TaskState {
            action: "retry",
            id,
            state: crate::task::TaskState::Queued,
            allowed: "dead or cancelled",
            done: "retried",
        });
        assert_eq!(wrong.status, 409);
        assert_eq!(
            Problem::from(EnqueueError::NotDeclared { task: "shop.x" }).status,
            500
        );
    }
}
