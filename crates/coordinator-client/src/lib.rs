//! The client kit for external services (commercetools, the LMS, Stripe, PayPal, the
//! fulfillment service), used by every extension that calls one.
//!
//! A [`ServiceClient`] per service gives each call:
//!
//! - pooled connections (rustls, no OpenSSL), a connect timeout and a total timeout;
//! - the service's authentication: a fixed token, HTTP Basic, or OAuth2 client-credentials
//!   tokens fetched on first use, kept until shortly before they expire, fetched by one
//!   caller at a time, and fetched again once when the service answers 401;
//! - its failure classified for the task policy ([`CallError`]; [`ForTask::for_task`] turns it
//!   into the right [`TaskError`](coordinator::task::TaskError)): timeouts, connection errors, 5xx and
//!   429 are retried (after `Retry-After` when given); other 4xx, undecodable bodies (naming
//!   the field) and unbuildable requests are permanent;
//! - the service's [circuit breaker](breaker): after repeated transient failures, calls fail at
//!   once for a cool-down and the tasks that made them wait for its end;
//! - a span (`external_call`: service, method, route template, status, duration, tries) under
//!   the dispatch or task that made it, and [statistics](services) for `/metrics`.
//!
//! Nothing here logs a header, a token, a secret or a body.
//!
//! See `docs/decisions/0014-client-kit.md` and `0015-circuit-breaker.md`.

pub mod breaker;
mod client;
mod error;
mod stats;
mod token;

pub use breaker::{BreakerConfig, BreakerState};
pub use client::{
    Answer, Auth, BODY_LIMIT, Call, ClientError, ServiceClient, ServiceConfig, path_segment,
};
pub use error::{CallError, ForTask, MESSAGE_LIMIT, TransientKind};
pub use stats::{LATENCY_BUCKETS, Outcome, ServiceSnapshot, services};
pub use token::{Credentials, OAuth2};
