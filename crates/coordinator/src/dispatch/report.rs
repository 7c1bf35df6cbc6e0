//! What a dispatch reports: who sent it, and how each handler's run ended. Reports never carry
//! the payload, so personal data cannot leak through them.

use std::fmt;
use std::time::Duration;

use serde::{Serialize, Serializer};
use uuid::Uuid;

/// Who sent a signal or ran a filter. The framework fills it in: a handler's context sends as
/// that handler, an extension's as that extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sender {
    /// An extension (its routes, its start-up code).
    Extension(&'static str),
    /// A handler, sending from within its run.
    Handler(&'static str),
    /// A filter step, sending from within its run.
    Step(&'static str),
    /// A background task, sending from within one of its attempts.
    Task(&'static str),
}

impl Sender {
    /// The extension, handler, step or task name.
    pub fn name(&self) -> &'static str {
        match self {
            Sender::Extension(n) | Sender::Handler(n) | Sender::Step(n) | Sender::Task(n) => n,
        }
    }
}

impl fmt::Display for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sender::Extension(n) => write!(f, "extension:{n}"),
            Sender::Handler(n) => write!(f, "handler:{n}"),
            Sender::Step(n) => write!(f, "step:{n}"),
            Sender::Task(n) => write!(f, "task:{n}"),
        }
    }
}

impl Serialize for Sender {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// How one handler's run ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// It returned normally, with a short summary of what it did.
    Ok {
        /// The handler's summary (a task id, say), if it gave one.
        #[serde(skip_serializing_if = "Option::is_none")]
        result: Option<String>,
    },
    /// It returned an error.
    Error {
        /// The error and its causes, outermost first.
        chain: Vec<String>,
    },
    /// It panicked.
    Panicked {
        /// The panic message.
        message: String,
        /// Where it panicked (`file:line:column`).
        #[serde(skip_serializing_if = "Option::is_none")]
        location: Option<String>,
    },
    /// It did not finish within its timeout and was abandoned.
    TimedOut {
        /// The timeout, in milliseconds.
        timeout_ms: u64,
    },
    /// The signal is durable: the delivery was stored, and a worker runs the handler from
    /// storage as the task `task_id` (retried on its own, with the task machinery's backoff).
    Queued {
        /// The delivery's task id; follow it at `/api/v1/tasks/{id}`.
        task_id: Uuid,
    },
}

impl Outcome {
    /// Whether the handler returned normally, or its durable delivery was stored.
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok { .. } | Outcome::Queued { .. })
    }

    /// `ok`, `error`, `panicked`, `timed_out` or `queued`.
    pub fn status(&self) -> &'static str {
        match self {
            Outcome::Ok { .. } => "ok",
            Outcome::Error { .. } => "error",
            Outcome::Panicked { .. } => "panicked",
            Outcome::TimedOut { .. } => "timed_out",
            Outcome::Queued { .. } => "queued",
        }
    }

    /// The error, panic or timeout, in one line (`None` when it is ok).
    pub fn problem(&self) -> Option<String> {
        match self {
            Outcome::Ok { .. } | Outcome::Queued { .. } => None,
            Outcome::Error { chain } => Some(chain.join(": ")),
            Outcome::Panicked { message, .. } => Some(format!("panicked: {message}")),
            Outcome::TimedOut { timeout_ms } => Some(format!("timed out after {timeout_ms} ms")),
        }
    }
}

/// One handler's run within a dispatch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HandlerRun {
    /// The handler.
    pub handler: &'static str,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// How long it ran.
    #[serde(rename = "duration_us", serialize_with = "micros")]
    pub duration: Duration,
}

fn micros<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// What one `send_robust` did: which handlers ran and how each ended. It never contains the
/// payload, so personal data cannot leak through it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DispatchReport {
    /// The dispatch id (a UUIDv7, so ids sort by time).
    pub id: Uuid,
    /// The signal sent.
    pub signal: &'static str,
    /// Who sent it.
    pub sender: Sender,
    /// When it was sent, in milliseconds since the Unix epoch.
    pub sent_at_ms: u64,
    /// One entry per connected handler, in configuration order.
    pub handlers: Vec<HandlerRun>,
}

impl DispatchReport {
    /// Whether every handler returned normally (true when there are none).
    pub fn all_ok(&self) -> bool {
        self.handlers.iter().all(|h| h.outcome.is_ok())
    }

    /// The runs that did not end normally.
    pub fn failures(&self) -> impl Iterator<Item = &HandlerRun> {
        self.handlers.iter().filter(|h| !h.outcome.is_ok())
    }

    /// The run of one handler, by name.
    pub fn run(&self, handler: &str) -> Option<&HandlerRun> {
        self.handlers.iter().find(|h| h.handler == handler)
    }

    /// Whether this was a durable dispatch whose deliveries were stored (with the dispatch
    /// itself, in the same transaction): the dispatch log already has it.
    pub fn is_stored(&self) -> bool {
        !self.handlers.is_empty()
            && self
                .handlers
                .iter()
                .all(|h| matches!(h.outcome, Outcome::Queued { .. }))
    }

    /// `Ok` when every handler's work is done or durably stored, so that a route may answer
    /// 2xx; else the first handler that failed, for a route to answer 503 (see
    /// [`NotAccepted`]): the caller should send again.
    pub fn accepted(&self) -> Result<(), NotAccepted> {
        match self.failures().next() {
            None => Ok(()),
            Some(run) => Err(NotAccepted {
                dispatch_id: self.id,
                signal: self.signal,
                handler: run.handler,
                status: run.outcome.status(),
                failed: self.failures().count(),
            }),
        }
    }
}

/// A dispatch whose work is not all done or stored: a handler failed, panicked or timed out
/// before its work was durable. A route answers it with 503 and `Retry-After`
/// (it converts into a [`Problem`](crate::http::Problem)), never 2xx: the caller keeps the
/// event and sends it again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotAccepted {
    /// The dispatch.
    pub dispatch_id: Uuid,
    /// The signal.
    pub signal: &'static str,
    /// The first handler that failed.
    pub handler: &'static str,
    /// How it ended: `error`, `panicked` or `timed_out` (its error is in the log and the
    /// dispatch log, not here: it may name internals).
    pub status: &'static str,
    /// How many handlers failed.
    pub failed: usize,
}

impl fmt::Display for NotAccepted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the {} event was not accepted: handler {} did not make its work durable ({})",
            self.signal, self.handler, self.status
        )?;
        if self.failed > 1 {
            write!(f, " and {} more", self.failed - 1)?;
        }
        write!(
            f,
            "; its error is logged with dispatch {}; send the request again",
            self.dispatch_id
        )
    }
}

impl std::error::Error for NotAccepted {}

/// Receives every dispatch report as soon as its dispatch ends (the dispatch log, metrics).
///
/// It is called on the sending task: it must not block or wait. Hand the report to a bounded
/// queue and return.
pub trait DispatchObserver: Send + Sync + 'static {
    /// One dispatch ended.
    fn dispatched(&self, report: &DispatchReport);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_serialize_with_status_tags() {
        let report = DispatchReport {
            id: Uuid::nil(),
            signal: "demo.x",
            sender: Sender::Extension("demo"),
            sent_at_ms: 1,
            handlers: vec![HandlerRun {
                handler: "demo.h",
                outcome: Outcome::Error {
                    chain: vec!["a".into(), "b".into()],
                },
                duration: Duration::from_micros(12),
            }],
        };
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["sender"], "extension:demo");
        assert_eq!(json["handlers"][0]["status"], "error");
        assert_eq!(json["handlers"][0]["chain"][1], "b");
        assert_eq!(json["handlers"][0]["duration_us"], 12);
    }
}
