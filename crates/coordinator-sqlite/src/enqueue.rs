//! Enqueues on SQLite: concurrent enqueues written together, one transaction on the writer.
//!
//! Enqueues made at the same time from many tasks (handlers of concurrent requests) would each
//! wait for the one writer and commit alone. Instead, whoever finds no write of enqueues
//! pending starts one, which waits for the writer and then takes every enqueue queued by then.
//! An enqueue with no one ahead of it (a single producer) writes itself, and pays nothing for
//! the batching. Each caller still gets its own id (or error) once its transaction committed.

use std::sync::{Arc, Mutex};

use coordinator::store::StoreError;
use coordinator::task::NewTask;
use coordinator_sql::tasks::enqueue::{ACTION, insert_task};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::NAME;
use crate::conn::Conn;
use crate::connect::Pools;
use crate::writer::Tx;

/// Enqueues waiting for the next group write.
#[derive(Default)]
pub(crate) struct Pending {
    tasks: Vec<(NewTask, oneshot::Sender<Result<Uuid, StoreError>>)>,
    /// A write has been started and has not taken the queue yet.
    write_started: bool,
    /// An enqueue waits for the writer on its own (the next ones queue).
    waiting_alone: bool,
}

/// Clears `waiting_alone` once the lone enqueue has the writer (or was dropped waiting).
struct WaitingAlone<'a>(&'a Mutex<Pending>);

impl Drop for WaitingAlone<'_> {
    fn drop(&mut self) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .waiting_alone = false;
    }
}

/// Writes `task` itself when no other enqueue waits for the writer, else queues it for the
/// next group write of enqueues; returns its id.
pub(crate) async fn enqueue(
    pools: &Pools,
    pending: &Arc<Mutex<Pending>>,
    task: &NewTask,
) -> Result<Uuid, StoreError> {
    let (done, id) = oneshot::channel();
    let start = {
        let mut queue = pending.lock().unwrap_or_else(|e| e.into_inner());
        if queue.write_started || queue.waiting_alone {
            queue.tasks.push((task.clone(), done));
            Some(!std::mem::replace(&mut queue.write_started, true))
        } else {
            queue.waiting_alone = true;
            None
        }
    };
    let Some(start) = start else {
        // The one-at-a-time case (a single producer): it waits for the writer itself, and
        // whoever comes meanwhile queues for a group write behind it.
        let alone = WaitingAlone(pending);
        let writer = pools.write.lock(ACTION).await;
        drop(alone);
        return insert_task(&mut Conn::write(writer?), task).await;
    };
    if start {
        // A task of its own: the write happens even if this caller's future is dropped, so no
        // enqueue it carries is lost halfway.
        let (pools, pending) = (pools.clone(), Arc::clone(pending));
        tokio::spawn(async move { write_queued(&pools, &pending).await });
    }
    id.await.unwrap_or_else(|_| {
        Err(StoreError::database(NAME, ACTION)(
            "the write of this enqueue stopped before it answered (the runtime is shutting \
             down); the task may or may not be stored",
        ))
    })
}

/// Writes the queued enqueues in one transaction on the writer.
async fn write_queued(pools: &Pools, pending: &Mutex<Pending>) {
    let writer = pools.write.lock(ACTION).await;
    // Everything queued while waiting for the writer goes in this write.
    let batch = {
        let mut queue = pending.lock().unwrap_or_else(|e| e.into_inner());
        queue.write_started = false;
        std::mem::take(&mut queue.tasks)
    };
    if batch.is_empty() {
        return;
    }
    let writer = match writer {
        Ok(writer) => writer,
        Err(e) => {
            for (_, done) in batch {
                let _ = done.send(Err(replicate(&e)));
            }
            return;
        }
    };
    let mut ids = Vec::with_capacity(batch.len());
    let written: Result<(), StoreError> = async {
        let mut tx = Tx::begin_on(writer, ACTION).await?;
        for (task, _) in &batch {
            ids.push(insert_task(&mut tx, task).await?);
        }
        tx.commit()
            .await
            .map_err(StoreError::database(NAME, ACTION))
    }
    .await;
    match written {
        Ok(()) => {
            for ((_, done), id) in batch.into_iter().zip(ids) {
                let _ = done.send(Ok(id));
            }
        }
        // One of them failed and the transaction was rolled back: each on its own, so that
        // only the one at fault gets the error.
        Err(_) => {
            for (task, done) in batch {
                let one = match pools.write.lock(ACTION).await {
                    Ok(writer) => insert_task(&mut Conn::write(writer), &task).await,
                    Err(e) => Err(e),
                };
                let _ = done.send(one);
            }
        }
    }
}

/// The same failure, for each caller that was waiting on the same write (driver errors are
/// not `Clone`: their text is kept).
fn replicate(e: &StoreError) -> StoreError {
    match e {
        StoreError::WriterBusy {
            backend,
            action,
            waited_ms,
        } => StoreError::WriterBusy {
            backend,
            action,
            waited_ms: *waited_ms,
        },
        other => StoreError::database(NAME, ACTION)(other.to_string()),
    }
}
