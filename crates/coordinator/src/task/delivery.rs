//! Deliveries of durable signals: each handler of a durable signal runs as a task named
//! `deliver:<handler>`, whose payload is the event (signal, dispatch id, sender, payload) as
//! [`dispatch`](crate::dispatch) stored it when the signal was sent.

use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ErasedTask, TaskContext, TaskError, TaskResult};
use crate::context::Runtime;
use crate::dispatch::report::Sender;
use crate::handler::{BoxFuture, ErasedHandler, TypeInfo};

/// The prefix of delivery task names: `deliver:<handler>`.
pub const DELIVERY_PREFIX: &str = "deliver:";

/// The name of the task that delivers durable signals to `handler`.
pub fn delivery_task(handler: &str) -> String {
    format!("{DELIVERY_PREFIX}{handler}")
}

/// A delivery's stored payload: the event, as the handler receives it.
#[derive(Serialize, Deserialize)]
pub(crate) struct Envelope<'a, P> {
    pub(crate) signal: Cow<'a, str>,
    pub(crate) dispatch_id: Uuid,
    pub(crate) sender: Cow<'a, str>,
    pub(crate) payload: P,
}

/// What a delivery task runs: the handler, on the event read back from storage.
pub(crate) struct Delivery {
    handler: &'static str,
    call: Arc<dyn ErasedHandler>,
    payload: TypeInfo,
}

impl Delivery {
    pub(crate) fn new(
        handler: &'static str,
        call: Arc<dyn ErasedHandler>,
        payload: TypeInfo,
    ) -> Self {
        Self {
            handler,
            call,
            payload,
        }
    }
}

impl ErasedTask for Delivery {
    fn call(&self, context: TaskContext, payload: &str) -> Result<BoxFuture<TaskResult>, String> {
        let envelope: Envelope<'_, serde_json::Value> = serde_json::from_str(payload)
            .map_err(|e| format!("the stored delivery is not a valid event: {e}"))?;
        let ctx = context.context;
        let runtime = &ctx.runtime;
        let Some((&signal, _)) = runtime
            .wiring
            .signals
            .get_key_value(envelope.signal.as_ref())
        else {
            return Err(format!(
                "signal \"{}\" is not declared by any enabled extension of this binary",
                envelope.signal
            ));
        };
        let sender = resolve_sender(runtime, &envelope.sender).unwrap_or(Sender::Extension(
            runtime
                .decls
                .signals
                .iter()
                .find(|d| d.name == signal)
                .map_or("unknown", |d| d.extension),
        ));
        let event = (self.payload.decode)(envelope.payload).map_err(|e| {
            format!(
                "the stored payload of signal \"{signal}\" is not a valid {}: {e}",
                self.payload.name
            )
        })?;
        let fut = self
            .call
            .call(event, envelope.dispatch_id, signal, sender, ctx);
        Ok(Box::pin(async move { fut.await.map_err(TaskError::Retry) }))
    }

    fn redact(&self, payload: &serde_json::Value) -> Option<serde_json::Value> {
        let mut envelope = payload.clone();
        let inner = envelope.get_mut("payload")?;
        *inner = (self.payload.redact)(inner)?;
        Some(envelope)
    }
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("handler", &self.handler)
            .finish_non_exhaustive()
    }
}

/// The sender a stored event names, when this binary declares it.
fn resolve_sender(runtime: &Runtime, text: &str) -> Option<Sender> {
    fn find(mut names: impl Iterator<Item = &'static str>, name: &str) -> Option<&'static str> {
        names.find(|n| *n == name)
    }
    let (kind, name) = text.split_once(':')?;
    let d = &runtime.decls;
    Some(match kind {
        "extension" => Sender::Extension(find(d.extensions.iter().map(|e| e.name), name)?),
        "handler" => Sender::Handler(find(d.handlers.iter().map(|e| e.name), name)?),
        "step" => Sender::Step(find(d.steps.iter().map(|e| e.name), name)?),
        "task" => Sender::Task(find(d.tasks.iter().map(|e| e.name), name)?),
        _ => return None,
    })
}
