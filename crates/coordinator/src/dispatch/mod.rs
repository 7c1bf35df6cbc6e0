//! Robust dispatch: the only way to send a signal.
//!
//! Every connected handler runs, concurrently within the sending task, each isolated: an error,
//! a panic or a timeout is caught and recorded, and the others still run. The result is a
//! [`DispatchReport`] with one [`HandlerRun`] per handler. Successful runs are logged at DEBUG;
//! failures at ERROR with the whole error chain. Each dispatch and each handler run is a DEBUG
//! `tracing` span (see `docs/decisions/0003-handler-storage-and-concurrency.md` for why DEBUG).
//! The report types are in `report.rs`. A durable signal runs no handler while it is sent: its
//! deliveries are stored and the workers run them (`durable.rs`).

pub(crate) mod durable;
pub(crate) mod report;

use std::any::TypeId;
use std::sync::Arc;
use std::time::Instant;

use futures_util::future::join_all;
use tracing::{Instrument, debug, debug_span, error, field, warn};
use uuid::Uuid;

pub use crate::task::delivery::{DELIVERY_PREFIX, delivery_task};
pub use durable::SendError;
pub use report::{DispatchObserver, DispatchReport, HandlerRun, NotAccepted, Outcome, Sender};

use crate::context::{Context, Runtime};
use crate::guard::{Guard, Guarded};
use crate::handler::AnyPayload;
use crate::id::new_id;
use crate::payload::{Payload, redacted_json};
use crate::signal::Signal;
use crate::wiring::WiredHandler;

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
    if slot.durable {
        return match durable::prepare(report, slot, &payload) {
            Ok(prepared) => durable::store(runtime, prepared).await,
            Err(e) => {
                error!(signal = name, %sender, dispatch_id = %id, error = %e,
                    "durable signal could not be stored; no handler will run");
                let chain = vec![e.to_string()];
                DispatchReport {
                    id,
                    signal: name,
                    sender,
                    sent_at_ms,
                    handlers: slot
                        .handlers
                        .iter()
                        .map(|h| HandlerRun {
                            handler: h.name,
                            outcome: Outcome::Error {
                                chain: chain.clone(),
                            },
                            duration: std::time::Duration::ZERO,
                        })
                        .collect(),
                }
            }
        };
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
