//! The one error type of the server's own routes and middleware: each variant becomes an
//! `application/problem+json` response whose detail says what was wrong and how to fix it.
//! Internal causes are logged (inside the request's span, so with its request id), never
//! returned.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use coordinator::StoreError;
use coordinator::http::Problem;
use uuid::Uuid;

use super::auth::AuthError;

/// Why the server refused or failed a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The caller is not authenticated (401) or lacks a required scope (403).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A query parameter is not acceptable.
    #[error("query parameter `{name}`: {problem}")]
    BadParameter {
        /// The parameter.
        name: &'static str,
        /// What is wrong, and the fix.
        problem: String,
    },
    /// The query string does not parse.
    #[error("the query string is not valid: {0}")]
    BadQuery(String),
    /// A dispatch id in the path is not a UUID.
    #[error(
        "\"{0}\" is not a dispatch id; ids are UUIDs such as 0190b5c4-8f5e-7cc0-a2b4-3f1e0d6c9a10"
    )]
    InvalidDispatchId(String),
    /// No stored dispatch has this id.
    #[error(
        "no dispatch {0} in the dispatch log; it may be older than [dispatch_log] retention, or \
         not written yet (the log is written in batches every [dispatch_log] flush_interval)"
    )]
    DispatchNotFound(Uuid),
    /// A task id in the path is not a UUID.
    #[error(
        "\"{0}\" is not a task id; ids are UUIDs such as 0190b5c4-8f5e-7cc0-a2b4-3f1e0d6c9a10 \
         (GET /api/v1/tasks lists them)"
    )]
    InvalidTaskId(String),
    /// No stored task has this id.
    #[error("no task {0}; GET /api/v1/tasks lists the tasks")]
    TaskNotFound(Uuid),
    /// No route matches the path.
    #[error("no route for {method} {path}; every route is listed at /api/openapi.json")]
    RouteNotFound {
        /// The request method.
        method: String,
        /// The request path.
        path: String,
    },
    /// The request body is larger than the limit.
    #[error(
        "the request body is larger than {limit} bytes, the limit set by [server] \
         body_limit_bytes (COORDINATOR__SERVER__BODY_LIMIT_BYTES); send a smaller body or raise \
         the limit"
    )]
    BodyTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The request body did not arrive in time.
    #[error(
        "the request body did not arrive within {0:?}, the limit set by [server] body_timeout; \
         send the whole body at once"
    )]
    BodyTimeout(Duration),
    /// The request body could not be read (the client went away, or sent a broken body).
    #[error("the request body could not be read: {0}")]
    BadBody(String),
    /// The request target is too long.
    #[error(
        "the request target is {length} bytes long, more than the {limit} accepted; send the data in the body"
    )]
    UriTooLong {
        /// Its length.
        length: usize,
        /// The limit.
        limit: usize,
    },
    /// The request's headers are too many or too large.
    #[error("the request's headers are too large ({problem}); send fewer or smaller headers")]
    HeadersTooLarge {
        /// Which limit was passed.
        problem: String,
    },
    /// The request took longer than the timeout.
    #[error(
        "the request did not finish within {0:?}, the limit set by [server] request_timeout; \
         send it again after Retry-After (work the route had not committed by then was rolled \
         back)"
    )]
    Timeout(Duration),
    /// The service cannot serve yet (`/ready`).
    #[error("not ready: {0}")]
    NotReady(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiError {
    /// The response status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Auth(e) => e.status(),
            ApiError::BadParameter { .. }
            | ApiError::BadQuery(_)
            | ApiError::InvalidDispatchId(_)
            | ApiError::InvalidTaskId(_) => StatusCode::BAD_REQUEST,
            ApiError::DispatchNotFound(_)
            | ApiError::TaskNotFound(_)
            | ApiError::RouteNotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::BadBody(_) => StatusCode::BAD_REQUEST,
            ApiError::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            ApiError::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::Timeout(_) | ApiError::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Store(StoreError::TaskNotFound { .. }) => StatusCode::NOT_FOUND,
            ApiError::Store(
                StoreError::TaskState { .. } | StoreError::DuplicatePendingTask { .. },
            ) => StatusCode::CONFLICT,
            ApiError::Store(e) if e.is_database() => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem document this error is answered with (logging internal causes).
    pub fn problem(&self) -> Problem {
        match self {
            // What an operator asked of a task is not possible: the store says why, with no
            // internal detail.
            ApiError::Store(
                e @ (StoreError::TaskNotFound { .. }
                | StoreError::TaskState { .. }
                | StoreError::DuplicatePendingTask { .. }),
            ) => {
                let problem = Problem::new(self.status(), e.to_string());
                match e {
                    StoreError::TaskState { state, .. } => problem.with("state", state.as_str()),
                    StoreError::DuplicatePendingTask { pending, .. } => {
                        problem.with("pending_task", pending.to_string())
                    }
                    _ => problem,
                }
            }
            ApiError::Store(e) => Problem::from_store(e),
            // Nothing is promised for a request cut off at its timeout: the caller sends it
            // again (a durable route's work was rolled back, or is found by its key).
            ApiError::Timeout(_) => Problem::unavailable(self.to_string(), 1),
            ApiError::NotReady(_) => Problem::unavailable(self.to_string(), 1),
            ApiError::BodyTooLarge { limit } => Problem::new(self.status(), self.to_string())
                .with("limit_bytes", *limit)
                .with("setting", "[server] body_limit_bytes"),
            other => Problem::new(other.status(), other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.problem().into_response();
        if let ApiError::Auth(e) = &self {
            if let Ok(value) = HeaderValue::from_str(&e.www_authenticate()) {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, value);
            }
        }
        response
    }
}
