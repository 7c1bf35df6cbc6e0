//! Robust dispatch: the only way to send a signal.
//!
//! Every connected handler runs, concurrently within the sending task, each isolated: an error,
//! a panic or a timeout is caught and recorded, and the others still run. The result is a
//! [`DispatchReport`] with one [`HandlerRun`] per handler. Successful runs are logged at DEBUG;
//! failures at ERROR with the whole error chain. Each dispatch and each handler run is a DEBUG
//! `tracing` span (see `docs/decisions/0003-handler-storage-and-concurrency.md` for why DEBUG).

use std::any::TypeId;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use serde::{Serialize, Serializer};
use std::time::Instant;
use tracing::{Instrument, debug, debug_span, error, field, warn};
use uuid::Uuid;

use crate::context::{Context, Runtime};
use crate::guard::{Guard, Guarded};
use crate::handler::AnyPayload;
use crate::id::new_id;
use crate::payload::{Payload, redacted_json};
use crate::signal::Signal;
use crate::wiring::WiredHandler;

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
}

impl Outcome {
    /// Whether the handler returned normally.
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok { .. })
    }

    /// `ok`, `error`, `panicked` or `timed_out`.
    pub fn status(&self) -> &'static str {
        match self {
            Outcome::Ok { .. } => "ok",
            Outcome::Error { .. } => "error",
            Outcome::Panicked { .. } => "panicked",
            Outcome::TimedOut { .. } => "timed_out",
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
}

/// Receives every dispatch report as soon as its dispatch ends (the dispatch log, metrics).
///
/// It is called on the sending task: it must not block or wait. Hand the report to a bounded
/// queue and return.
pub trait DispatchObserver: Send + Sync + 'static {
    /// One dispatch ended.
    fn dispatched(&self, report: &DispatchReport);
}

pub(crate) async fn send_robust<P: Payload>(
    runtime: &Arc<Runtime>,
    sender: Sender,
    cause: Option<Uuid>,
    signal: &Signal<P>,
    payload: P,
) -> DispatchReport {
    let report = dispatch(runtime, sender, cause, signal, payload).await;
    for observer in &runtime.observers {
        observer.dispatched(&report);
    }
    report
}

async fn dispatch<P: Payload>(
    runtime: &Arc<Runtime>,
    sender: Sender,
    cause: Option<Uuid>,
    signal: &Signal<P>,
    payload: P,
) -> DispatchReport {
    let (id, sent_at_ms) = new_id();
    let name = signal.name();
    let mut report = DispatchReport {
        id,
        signal: name,
        sender,
        sent_at_ms,
        handlers: Vec::new(),
    };
    let slot = match runtime.wiring.signals.get(name) {
        Some(slot) if slot.payload == TypeId::of::<P>() => slot,
        Some(_) => {
            error!(signal = name, %sender, dispatch_id = %id, payload_type = signal.payload_type(),
                "signal sent with a payload type other than the declared one; no handler ran");
            return report;
        }
        None => {
            warn!(signal = name, %sender, dispatch_id = %id,
                "signal is not declared by any enabled extension; no handler ran");
            return report;
        }
    };
    if slot.handlers.is_empty() {
        debug!(signal = name, %sender, dispatch_id = %id, "signal has no handlers");
        return report;
    }
    let span = debug_span!("dispatch", signal = name, %sender, dispatch_id = %id,
        cause = field::Empty, payload = field::Empty);
    if !span.is_disabled() {
        if let Some(cause) = cause {
            span.record("cause", field::display(cause));
        }
        span.record("payload", field::display(redacted_json(&payload)));
    }
    let payload: AnyPayload = Arc::new(payload);
    let handlers = &slot.handlers;
    let meta = Meta {
        id,
        signal: name,
        sender,
    };
    report.handlers = async {
        // One handler needs no join machinery: the common case stays cheap.
        if let [only] = &handlers[..] {
            vec![run_handler(runtime, only, payload, &meta).await]
        } else {
            join_all(
                handlers
                    .iter()
                    .map(|h| run_handler(runtime, h, Arc::clone(&payload), &meta)),
            )
            .await
        }
    }
    .instrument(span)
    .await;
    report
}

struct Meta {
    id: Uuid,
    signal: &'static str,
    sender: Sender,
}

async fn run_handler(
    runtime: &Arc<Runtime>,
    handler: &WiredHandler,
    payload: AnyPayload,
    meta: &Meta,
) -> HandlerRun {
    // Each handler's own clock: it starts when the handler is first polled, so its duration
    // excludes the time the other handlers of the dispatch took before it.
    let start = Instant::now();
    let context = Context::new(
        Arc::clone(runtime),
        Sender::Handler(handler.name),
        handler.extension,
    )
    .caused_by(Some(meta.id));
    let fut = handler
        .call
        .call(payload, meta.id, meta.signal, meta.sender, context);
    let span = debug_span!("handler", handler = handler.name);
    let guarded = Guard::new(fut, handler.timeout).instrument(span).await;
    let duration = start.elapsed();
    let duration_us = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
    let (signal, name, dispatch_id, sender) = (meta.signal, handler.name, meta.id, meta.sender);
    let outcome = match guarded {
        Guarded::Finished(Ok(summary)) => {
            debug!(signal, handler = name, %dispatch_id, duration_us, result = summary.as_str(), "handler succeeded");
            Outcome::Ok {
                result: summary.into_string(),
            }
        }
        Guarded::Finished(Err(e)) => {
            let chain = e.chain();
            error!(signal, handler = name, %dispatch_id, %sender, duration_us, error = %chain.join(": "), "handler failed");
            Outcome::Error { chain }
        }
        Guarded::Panicked { message, location } => {
            error!(signal, handler = name, %dispatch_id, %sender, duration_us, panic = %message,
                location = location.as_deref().unwrap_or("unknown"), "handler panicked");
            Outcome::Panicked { message, location }
        }
        Guarded::TimedOut => {
            let timeout_ms = u64::try_from(handler.timeout.as_millis()).unwrap_or(u64::MAX);
            error!(signal, handler = name, %dispatch_id, %sender, timeout_ms, "handler timed out and was abandoned");
            Outcome::TimedOut { timeout_ms }
        }
    };
    HandlerRun {
        handler: handler.name,
        outcome,
        duration,
    }
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
