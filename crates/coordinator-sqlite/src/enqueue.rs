//! Enqueues on SQLite: concurrent enqueues written together, one transaction on the writer.
//!
//! Enqueues made at the same time from many tasks (handlers of concurrent requests, durable
//! dispatches) would each wait for the one writer and commit alone. Instead, whoever finds no
//! write of enqueues pending starts one, which waits for the writer and then takes every
//! enqueue queued by then. An enqueue with no one ahead of it (a single producer) writes
//! itself, and pays nothing for the batching. Each caller still gets its own id (or error)
//! once its transaction committed.
//!
//! An enqueue whose caller stopped waiting (a handler abandoned at its timeout, a request cut
//! off) is not written: the group write leaves out every enqueue whose caller is gone, checked
//! once it holds the write lock and again just before it commits, so a caller told "failed"
//! is not followed by its work committing later. A caller writing alone writes in a
//! transaction of its own that its drop rolls back. Only a caller dropped during the commit
//! itself (microseconds, the write lock being held) can see its work stored after giving up.

use std::sync::{Arc, Mutex};

use coordinator::dispatch_log::DurableDispatch;
use coordinator::store::StoreError;
use coordinator::task::NewTask;
use coordinator_sql::tasks::enqueue::{
    ACTION, DISPATCH_ACTION, insert_dispatch, insert_dispatch_batch, insert_task,
};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::NAME;
use crate::connect::Pools;
use crate::writer::Tx;

/// One enqueue: a task, or a durable dispatch with its deliveries.
#[derive(Clone)]
pub(crate) enum Write {
    Task(NewTask),
    Dispatch(DurableDispatch),
}

impl Write {
    fn action(&self) -> &'static str {
        match self {
            Write::Task(_) => ACTION,
            Write::Dispatch(_) => DISPATCH_ACTION,
        }
    }

    /// Writes it in `tx`: the task's id, or the dispatch's (`None` when its intake key was
    /// recorded before and nothing was written).
    async fn apply(&self, tx: &mut Tx) -> Result<Option<Uuid>, StoreError> {
        match self {
            Write::Task(task) => insert_task(tx, task).await.map(Some),
            Write::Dispatch(d) => Ok(insert_dispatch(tx, d).await?.then_some(d.dispatch.id)),
        }
    }
}

type Done = oneshot::Sender<Result<Option<Uuid>, StoreError>>;

/// Writes a whole group in `tx`: the durable dispatches together, with a few multi-row
/// statements, then the tasks one by one; each write's result, in order.
async fn apply_all(batch: &[(Write, Done)], tx: &mut Tx) -> Result<Vec<Option<Uuid>>, StoreError> {
    let dispatches: Vec<&DurableDispatch> = batch
        .iter()
        .filter_map(|(w, _)| match w {
            Write::Dispatch(d) => Some(d),
            Write::Task(_) => None,
        })
        .collect();
    let mut stored = if dispatches.is_empty() {
        Vec::new()
    } else {
        insert_dispatch_batch(tx, &dispatches).await?
    }
    .into_iter();
    let mut out = Vec::with_capacity(batch.len());
    for (write, _) in batch {
        out.push(match write {
            Write::Task(task) => Some(insert_task(tx, task).await?),
            Write::Dispatch(d) => stored
                .next()
                .expect("one result per dispatch")
                .then_some(d.dispatch.id),
        });
    }
    Ok(out)
}

/// Enqueues waiting for the next group write.
#[derive(Default)]
pub(crate) struct Pending {
    writes: Vec<(Write, Done)>,
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

/// Writes `write` itself when no other enqueue waits for the writer, else queues it for the
/// next group write of enqueues; returns its id (see [`Write::apply`]).
pub(crate) async fn enqueue(
    pools: &Pools,
    pending: &Arc<Mutex<Pending>>,
    write: Write,
) -> Result<Option<Uuid>, StoreError> {
    let action = write.action();
    let (done, id) = oneshot::channel();
    let write = {
        let mut queue = pending.lock().unwrap_or_else(|e| e.into_inner());
        if queue.write_started || queue.waiting_alone {
            queue.writes.push((write, done));
            let start = !std::mem::replace(&mut queue.write_started, true);
            drop(queue);
            if start {
                // A task of its own: the write happens even if this caller's future is
                // dropped, so no enqueue it carries is lost halfway.
                let (pools, pending) = (pools.clone(), Arc::clone(pending));
                tokio::spawn(async move { write_queued(&pools, &pending).await });
            }
            None
        } else {
            queue.waiting_alone = true;
            Some(write)
        }
    };
    if let Some(write) = write {
        // The one-at-a-time case (a single producer): it waits for the writer itself, and
        // whoever comes meanwhile queues for a group write behind it. Its own transaction:
        // dropped before it commits (its caller gave up), it is rolled back.
        let alone = WaitingAlone(pending);
        let writer = pools.write.lock(action).await;
        drop(alone);
        let mut tx = Tx::begin_on(writer?, action).await?;
        let id = write.apply(&mut tx).await?;
        tx.commit()
            .await
            .map_err(StoreError::database(NAME, action))?;
        return Ok(id);
    }
    id.await.unwrap_or_else(|_| {
        Err(StoreError::database(NAME, action)(
            "the write of this enqueue stopped before it answered (the runtime is shutting \
             down); it may or may not be stored",
        ))
    })
}

/// Writes the queued enqueues in one transaction on the writer.
async fn write_queued(pools: &Pools, pending: &Mutex<Pending>) {
    let writer = pools.write.lock(ACTION).await;
    // Everything queued while waiting for the writer goes in this write, but for the enqueues
    // whose callers stopped waiting meanwhile.
    let mut batch: Vec<(Write, Done)> = {
        let mut queue = pending.lock().unwrap_or_else(|e| e.into_inner());
        queue.write_started = false;
        std::mem::take(&mut queue.writes)
    };
    batch.retain(|(_, done)| !done.is_closed());
    if batch.is_empty() {
        return;
    }
    let mut writer = match writer {
        Ok(writer) => writer,
        Err(e) => {
            for (_, done) in batch {
                let _ = done.send(Err(replicate(&e)));
            }
            return;
        }
    };
    // Callers may still give up while the transaction waits for SQLite's lock (another
    // process writing): checked again before the commit, and written again without them.
    for _ in 0..3 {
        let written = async {
            let mut tx = Tx::begin_on(writer, ACTION).await?;
            let ids = apply_all(&batch, &mut tx).await?;
            Ok::<_, StoreError>((tx, ids))
        }
        .await;
        let (tx, ids) = match written {
            Ok(written) => written,
            Err(_) => return write_each(pools, batch).await,
        };
        if batch.iter().any(|(_, done)| done.is_closed()) {
            writer = match tx.finish(false).await {
                Ok(writer) => writer,
                Err(_) => return write_each(pools, batch).await,
            };
            batch.retain(|(_, done)| !done.is_closed());
            if batch.is_empty() {
                return;
            }
            continue;
        }
        match tx.finish(true).await {
            Ok(_) => {
                for ((_, done), id) in batch.into_iter().zip(ids) {
                    let _ = done.send(Ok(id));
                }
            }
            Err(e) => {
                let e = StoreError::database(NAME, ACTION)(e);
                for (_, done) in batch {
                    let _ = done.send(Err(replicate(&e)));
                }
            }
        }
        return;
    }
    // Callers kept leaving: the rest are written one by one.
    drop(writer);
    write_each(pools, batch).await;
}

/// Writes each enqueue in a transaction of its own (after a group write failed, so that only
/// the one at fault gets the error), skipping those whose callers are gone.
async fn write_each(pools: &Pools, batch: Vec<(Write, Done)>) {
    for (write, done) in batch {
        if done.is_closed() {
            continue;
        }
        let action = write.action();
        let one = async {
            let mut tx = pools.write.begin(action).await?;
            let id = write.apply(&mut tx).await?;
            if done.is_closed() {
                tx.rollback()
                    .await
                    .map_err(StoreError::database(NAME, action))?;
                return Ok(None);
            }
            tx.commit()
                .await
                .map_err(StoreError::database(NAME, action))?;
            Ok(Some(id))
        }
        .await;
        match one {
            Ok(Some(id)) => drop(done.send(Ok(id))),
            Ok(None) => {}
            Err(e) => drop(done.send(Err(e))),
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
