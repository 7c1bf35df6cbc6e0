//! Enqueueing: a typed task and its payload made into a [`NewTask`] by the task's wiring, and
//! put in the store on its own, in a transaction, or with the event that caused it.

use std::any::TypeId;
use std::time::UNIX_EPOCH;

use tracing::debug;
use uuid::Uuid;

use super::{EnqueueError, EnqueueOptions, NewTask, Task};
use crate::context::Context;
use crate::payload::Payload;
use crate::store::StoreTx;

/// What receiving an external event did ([`Context::receive_once`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// The first delivery: its task was enqueued with this id.
    First(Uuid),
    /// A redelivery of an event already received: nothing was enqueued.
    Again,
}

pub(crate) async fn enqueue<P: Payload>(
    ctx: &Context,
    task: &Task<P>,
    payload: P,
    options: EnqueueOptions,
) -> Result<Uuid, EnqueueError> {
    let new = new_task(ctx, task, &payload, options)?;
    let Some(store) = &ctx.runtime.store else {
        return Err(EnqueueError::NoStore { task: task.name() });
    };
    let id = store
        .enqueue_task(&new)
        .await
        .map_err(|source| EnqueueError::Store {
            task: task.name(),
            source,
        })?;
    enqueued(ctx, &new, id);
    Ok(id)
}

pub(crate) async fn enqueue_in<P: Payload>(
    ctx: &Context,
    tx: &mut StoreTx,
    task: &Task<P>,
    payload: P,
    options: EnqueueOptions,
) -> Result<Uuid, EnqueueError> {
    let new = new_task(ctx, task, &payload, options)?;
    let id = tx
        .enqueue_task(&new)
        .await
        .map_err(|source| EnqueueError::Store {
            task: task.name(),
            source,
        })?;
    enqueued(ctx, &new, id);
    Ok(id)
}

pub(crate) async fn receive_once<P: Payload>(
    ctx: &Context,
    source: &str,
    external_id: &str,
    task: &Task<P>,
    payload: P,
) -> Result<Received, EnqueueError> {
    let name = task.name();
    let store_error = |source| EnqueueError::Store { task: name, source };
    super::check_intake_key("source", source)?;
    super::check_intake_key("id", external_id)?;
    // Checked before the transaction: a task this coordinator cannot enqueue takes no lock.
    let new = new_task(ctx, task, &payload, EnqueueOptions::default())?;
    let Some(store) = &ctx.runtime.store else {
        return Err(EnqueueError::NoStore { task: name });
    };
    let mut tx = store.begin().await.map_err(store_error)?;
    if !tx
        .record_intake(source, external_id)
        .await
        .map_err(store_error)?
    {
        tx.rollback().await.map_err(store_error)?;
        return Ok(Received::Again);
    }
    let id = tx.enqueue_task(&new).await.map_err(store_error)?;
    tx.commit().await.map_err(store_error)?;
    enqueued(ctx, &new, id);
    Ok(Received::First(id))
}

/// The task as stored: its wiring's queue and attempts, the payload as JSON, the context's
/// cause as its origin.
fn new_task<P: Payload>(
    ctx: &Context,
    task: &Task<P>,
    payload: &P,
    options: EnqueueOptions,
) -> Result<NewTask, EnqueueError> {
    let name = task.name();
    let wired = match ctx.runtime.wiring.tasks.get(name) {
        Some(wired) if wired.payload == TypeId::of::<P>() => wired,
        Some(wired) => {
            return Err(EnqueueError::PayloadMismatch {
                task: name,
                declared: wired.payload_name,
                given: std::any::type_name::<P>(),
            });
        }
        None => return Err(EnqueueError::NotDeclared { task: name }),
    };
    let payload = serde_json::to_string(payload)
        .map_err(|source| EnqueueError::Payload { task: name, source })?;
    let run_at_ms = match options.run_at {
        Some(at) => at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        None => crate::id::now_ms(),
    };
    Ok(NewTask {
        task: name.to_owned(),
        queue: wired.queue.clone(),
        payload,
        max_attempts: wired.retry.max_attempts,
        run_at_ms,
        unique_key: options.unique_key,
        once: options.once,
        origin_dispatch: ctx.cause(),
    })
}

fn enqueued(ctx: &Context, task: &NewTask, id: Uuid) {
    debug!(
        task = task.task,
        task_id = %id,
        queue = task.queue,
        run_at_ms = task.run_at_ms,
        sender = %ctx.sender(),
        cause = ?ctx.cause(),
        "task enqueued"
    );
}
