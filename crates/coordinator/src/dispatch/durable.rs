//! Durable signals: the transactional outbox at the signal layer.
//!
//! Sending a durable signal runs no handler. It stores the dispatch and one delivery per
//! connected handler, a task named `deliver:<handler>` whose payload is the event (signal,
//! dispatch id, sender and payload), in one transaction: with the sender's own writes when it
//! sends with [`Context::send_in`], on its own otherwise. Once that commits, the workers run
//! each delivery from storage under the task machinery's leases, retries with backoff and dead
//! state, each handler on its own: a failing handler is retried alone, the others are not run
//! again. See `docs/decisions/0012-durable-signals.md`.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use tracing::{debug, error};

use super::report::{DispatchReport, HandlerRun, Outcome};
use crate::context::{Context, Runtime};
use crate::dispatch_log::record::{DurableDispatch, StoredDispatch};
use crate::handler::HandlerError;
use crate::http::problem::Problem;
use crate::id::new_id;
use crate::payload::Payload;
use crate::store::{StoreError, StoreTx};
use crate::task::NewTask;
use crate::task::delivery::Envelope;
use crate::wiring::SignalSlot;

/// Why a durable signal could not be sent in a transaction. Each message says what to change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The signal is not durable: its handlers would run before the transaction commits (and,
    /// on SQLite, wait for the writer the transaction holds).
    #[error(
        "signal \"{signal}\" cannot be sent in a transaction: it is not durable; declare it \
         with `Signal::durable()`, or set `durable = true` in [signals.\"{signal}\"]"
    )]
    NotDurable {
        /// The signal.
        signal: &'static str,
    },
    /// No enabled extension declares the signal, or it was sent with another payload type.
    #[error(
        "signal \"{signal}\" cannot be sent: no enabled extension declares it with payload \
         `{given}`; send it through the `Signal` static its extension registers, and check \
         that the extension is in [extensions] enabled"
    )]
    NotDeclared {
        /// The signal.
        signal: &'static str,
        /// The payload type given.
        given: &'static str,
    },
    /// The payload could not be serialized to JSON.
    #[error(
        "signal \"{signal}\" cannot be stored: its payload does not serialize to JSON \
         ({source}); check the payload type's `Serialize` implementation (maps need string keys)"
    )]
    Payload {
        /// The signal.
        signal: &'static str,
        /// The serializer's error.
        source: serde_json::Error,
    },
    /// An external event's source or id cannot be a key of the inbox (empty, too long, or with
    /// a control character): the caller sent something malformed.
    #[error(
        "the event's {what} {value} cannot be received: {problem}; send a printable {what} of \
         1 to {max} characters",
        max = crate::task::MAX_INTAKE_KEY
    )]
    InvalidKey {
        /// `source` or `id`.
        what: &'static str,
        /// The value, escaped so that it prints on one line.
        value: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The coordinator was built without a store.
    #[error(
        "signal \"{signal}\" cannot be sent durably: the coordinator has no store; build it \
         with `CoordinatorBuilder::store`"
    )]
    NoStore {
        /// The signal.
        signal: &'static str,
    },
    /// The store refused or failed.
    #[error("signal \"{signal}\" could not be stored: {source}")]
    Store {
        /// The signal.
        signal: &'static str,
        /// The store's error.
        source: StoreError,
    },
}

/// A durable dispatch ready to store, and the report it gives once stored.
pub(crate) struct Prepared {
    pub(crate) durable: DurableDispatch,
    pub(crate) report: DispatchReport,
}

/// The dispatch of `report` (its id, signal and sender set, no runs yet) to every handler of
/// `slot`, as rows to store: one delivery per handler, each run `queued` with its task id.
pub(crate) fn prepare<P: Payload>(
    mut report: DispatchReport,
    slot: &SignalSlot,
    payload: &P,
) -> Result<Prepared, SendError> {
    let signal = report.signal;
    let envelope = serde_json::to_string(&Envelope {
        signal: Cow::Borrowed(signal),
        dispatch_id: report.id,
        sender: Cow::Owned(report.sender.to_string()),
        payload,
    })
    .map_err(|source| SendError::Payload { signal, source })?;
    let mut deliveries = Vec::with_capacity(slot.handlers.len());
    for handler in &slot.handlers {
        let target = handler
            .delivery
            .as_ref()
            .expect("every handler of a durable signal has a delivery target");
        let (task_id, _) = new_id();
        deliveries.push((
            task_id,
            NewTask {
                task: target.task.to_string(),
                queue: target.queue.clone(),
                payload: envelope.clone(),
                max_attempts: target.max_attempts,
                run_at_ms: report.sent_at_ms,
                unique_key: None,
                once: false,
                origin_dispatch: Some(report.id),
            },
        ));
        report.handlers.push(HandlerRun {
            handler: handler.name,
            outcome: Outcome::Queued { task_id },
            duration: std::time::Duration::ZERO,
        });
    }
    Ok(Prepared {
        durable: DurableDispatch {
            dispatch: StoredDispatch::from(&report),
            deliveries,
            intake: None,
        },
        report,
    })
}

/// Stores a prepared durable dispatch on its own. When the store does not take it, each
/// handler's run is an error naming the cause: nothing was stored, and a route answering the
/// report says so ([`DispatchReport::accepted`]).
pub(crate) async fn store(runtime: &Arc<Runtime>, prepared: Prepared) -> DispatchReport {
    let Prepared {
        durable,
        mut report,
    } = prepared;
    let start = Instant::now();
    let stored: Result<(), Vec<String>> = match &runtime.store {
        Some(store) => store
            .enqueue_dispatch(&durable)
            .await
            .map(drop)
            .map_err(|e| HandlerError::from(e).chain()),
        None => Err(vec![
            "the coordinator has no store, so durable signals cannot be sent; build it with \
             `CoordinatorBuilder::store`"
                .to_owned(),
        ]),
    };
    let duration = start.elapsed();
    match stored {
        Ok(()) => {
            debug!(signal = report.signal, dispatch_id = %report.id, deliveries = report.handlers.len(),
                "durable dispatch stored");
            for run in &mut report.handlers {
                run.duration = duration;
            }
        }
        Err(chain) => {
            error!(signal = report.signal, dispatch_id = %report.id, sender = %report.sender,
                error = %chain.join(": "), "durable dispatch could not be stored; no handler will run");
            for run in &mut report.handlers {
                let mut why = vec!["its delivery could not be stored".to_owned()];
                why.extend(chain.iter().cloned());
                run.outcome = Outcome::Error { chain: why };
                run.duration = duration;
            }
        }
    }
    report
}

/// The slot of `signal`, which must be declared with payload `P` and durable.
fn durable_slot<'r, P: Payload>(
    runtime: &'r Runtime,
    signal: &crate::signal::Signal<P>,
) -> Result<&'r SignalSlot, SendError> {
    let name = signal.name();
    match runtime.wiring.signals.get(name) {
        Some(slot) if slot.payload != std::any::TypeId::of::<P>() => Err(SendError::NotDeclared {
            signal: name,
            given: std::any::type_name::<P>(),
        }),
        Some(slot) if slot.durable => Ok(slot),
        Some(_) => Err(SendError::NotDurable { signal: name }),
        None => Err(SendError::NotDeclared {
            signal: name,
            given: std::any::type_name::<P>(),
        }),
    }
}

/// A new report of `signal` sent by `ctx`, with no runs yet.
fn new_report(ctx: &Context, signal: &'static str) -> DispatchReport {
    let (id, sent_at_ms) = new_id();
    DispatchReport {
        id,
        signal,
        sender: ctx.sender(),
        sent_at_ms,
        handlers: Vec::new(),
    }
}

/// Sends a durable signal within `tx`: see [`Context::send_in`].
pub(crate) async fn send_in<P: Payload>(
    ctx: &Context,
    tx: &mut StoreTx,
    signal: &crate::signal::Signal<P>,
    payload: P,
) -> Result<DispatchReport, SendError> {
    let name = signal.name();
    let slot = durable_slot(&ctx.runtime, signal)?;
    let report = new_report(ctx, name);
    if slot.handlers.is_empty() {
        return Ok(report);
    }
    let id = report.id;
    let prepared = prepare(report, slot, &payload)?;
    tx.enqueue_dispatch(&prepared.durable)
        .await
        .map_err(|source| SendError::Store {
            signal: name,
            source,
        })?;
    debug!(signal = name, dispatch_id = %id, deliveries = prepared.report.handlers.len(),
        "durable dispatch stored in a transaction");
    Ok(prepared.report)
}

/// Sends a durable signal once per external event: see [`Context::send_once`].
pub(crate) async fn send_once<P: Payload>(
    ctx: &Context,
    source: &str,
    external_id: &str,
    signal: &crate::signal::Signal<P>,
    payload: P,
) -> Result<Option<DispatchReport>, SendError> {
    let name = signal.name();
    for (what, value) in [("source", source), ("id", external_id)] {
        if let Some(problem) = crate::names::key_problem(value, crate::task::MAX_INTAKE_KEY) {
            return Err(SendError::InvalidKey {
                what,
                value: crate::names::quoted(value),
                problem,
            });
        }
    }
    let slot = durable_slot(&ctx.runtime, signal)?;
    let Some(store) = &ctx.runtime.store else {
        return Err(SendError::NoStore { signal: name });
    };
    let mut prepared = prepare(new_report(ctx, name), slot, &payload)?;
    prepared.durable.intake = Some((source.to_owned(), external_id.to_owned()));
    let stored = store
        .enqueue_dispatch(&prepared.durable)
        .await
        .map_err(|source| SendError::Store {
            signal: name,
            source,
        })?;
    if !stored {
        debug!(
            signal = name,
            source, "event received before; nothing sent again"
        );
        return Ok(None);
    }
    debug!(signal = name, dispatch_id = %prepared.report.id,
        deliveries = prepared.report.handlers.len(), "durable dispatch stored once");
    Ok(Some(prepared.report))
}

impl From<SendError> for Problem {
    /// The store's failures as for enqueues (503 with `Retry-After` when the database did not
    /// take the dispatch); a signal this coordinator cannot send durably is a bug: 500.
    fn from(error: SendError) -> Self {
        match error {
            SendError::Store { source, .. } => Problem::from_store(&source),
            e @ SendError::InvalidKey { .. } => Problem::bad_request(e.to_string()),
            e @ SendError::NoStore { .. } => {
                tracing::error!(error = %e, "a route sent a durable signal with no store");
                Problem::unavailable(
                    "the coordinator has no storage, so this request's work cannot be kept",
                    1,
                )
            }
            other => Problem::internal(&other),
        }
    }
}
