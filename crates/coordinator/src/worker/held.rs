//! The worker loop's state: the tasks it holds, the outcomes waiting to be recorded (each one
//! that the database refuses isolated, so that it never blocks the others), lease renewals and
//! the give-back at shutdown.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{Instrument, Span, error, info, warn};
use uuid::Uuid;

use super::{FIRST_STORE_BACKOFF, MAX_STORE_BACKOFF, RECORD_BATCH, TaskObserver, WorkerHealth};
use super::{log_recorded, run_attempt, task_span};
use crate::context::Runtime;
use crate::id::now_ms;
use crate::store::{Store, StoreError};
use crate::task::{AttemptStatus, ClaimedTask, TaskOutcome};

/// A task whose lease this worker holds: running, or finished and waiting to be recorded.
pub(super) struct Held {
    task: ClaimedTask,
    started: Instant,
    span: Span,
    /// The lease is gone (cancelled, or claimed by another worker): no more renewals.
    lost: bool,
}

/// A finished attempt waiting to be recorded.
pub(super) struct Unrecorded {
    id: Uuid,
    outcome: TaskOutcome,
    duration: Duration,
}

/// The worker loop's state.
pub(super) struct Loop<'a> {
    pub(super) store: &'a Store,
    pub(super) id: &'a str,
    pub(super) observers: &'a [Arc<dyn TaskObserver>],
    pub(super) held: HashMap<Uuid, Held>,
    /// Held tasks claimed ahead, waiting for a slot, oldest first.
    pub(super) waiting: VecDeque<Uuid>,
    pub(super) by_tokio_id: HashMap<tokio::task::Id, Uuid>,
    pub(super) unrecorded: VecDeque<Unrecorded>,
    /// The current wait after the store failed, if it is failing.
    pub(super) backoff: Option<Duration>,
    /// No store call before this.
    pub(super) store_ready_at: Instant,
    pub(super) health: WorkerHealth,
}

impl Loop<'_> {
    /// Takes a claimed task: it waits for a slot ([`Loop::start_waiting`]).
    pub(super) fn claimed(&mut self, task: ClaimedTask) {
        // Our own lease expired (the store was out of reach for longer than the lease) and we
        // claimed the task again while its first run goes on (or waits): that run now works
        // for the new attempt, rather than running the task twice.
        if let Some(held) = self.held.get_mut(&task.id) {
            held.span.in_scope(|| {
                warn!(task = task.task.as_str(), task_id = %task.id, attempt = task.attempt,
                    "claimed again a task this worker still holds (its lease had expired); the \
                     run in progress continues as the new attempt");
            });
            held.span = task_span(&task);
            held.task = task;
            held.lost = false;
            return;
        }
        self.waiting.push_back(task.id);
        self.held.insert(
            task.id,
            Held {
                span: task_span(&task),
                task,
                started: Instant::now(),
                lost: false,
            },
        );
    }

    /// Starts waiting tasks while fewer than `concurrency` run.
    pub(super) fn start_waiting(
        &mut self,
        runtime: &Arc<Runtime>,
        running: &mut JoinSet<TaskOutcome>,
        concurrency: usize,
    ) {
        while running.len() < concurrency {
            let Some(id) = self.waiting.pop_front() else {
                return;
            };
            let Some(held) = self.held.get_mut(&id) else {
                continue;
            };
            held.started = Instant::now();
            let (runtime, claimed) = (Arc::clone(runtime), held.task.clone());
            let handle = running.spawn(
                async move { run_attempt(&runtime, &claimed).await }.instrument(held.span.clone()),
            );
            self.by_tokio_id.insert(handle.id(), id);
        }
    }

    /// On shutdown: gives the tasks that wait for a slot back to the queue at once.
    pub(super) async fn release_waiting(&mut self) {
        let ids: Vec<Uuid> = self.waiting.drain(..).collect();
        if ids.is_empty() {
            return;
        }
        match self.call(self.store.release_tasks(self.id, &ids)).await {
            Ok(n) => info!(worker = %self.id, released = n,
                "gave back the tasks claimed ahead that had not started"),
            Err(e) => warn!(worker = %self.id, error = %e, tasks = ids.len(),
                "could not give back the tasks claimed ahead: another worker runs them once \
                 their leases expire"),
        }
        for id in &ids {
            if let Some(held) = self.held.remove(id) {
                self.observe(&held.task, "released", Duration::ZERO);
            }
        }
    }

    pub(super) fn joined(
        &mut self,
        joined: Result<(tokio::task::Id, TaskOutcome), tokio::task::JoinError>,
    ) {
        let (tokio_id, outcome) = match joined {
            Ok((tokio_id, outcome)) => (tokio_id, outcome),
            // The guard catches the task's own panics; this is the runner failing around it.
            Err(e) => {
                let outcome = TaskOutcome::Retry {
                    at_ms: now_ms(),
                    status: AttemptStatus::Panicked,
                    chain: vec![format!("the worker's runner of this attempt failed: {e}")],
                };
                (e.id(), outcome)
            }
        };
        let Some(id) = self.by_tokio_id.remove(&tokio_id) else {
            return;
        };
        let Some(held) = self.held.get(&id) else {
            return;
        };
        self.unrecorded.push_back(Unrecorded {
            id,
            outcome,
            duration: held.started.elapsed(),
        });
        self.health.waiting();
    }

    /// Records what finished, oldest first, in batches of one transaction each, while the
    /// store answers.
    pub(super) async fn record_pending(&mut self) {
        while !self.unrecorded.is_empty() && Instant::now() >= self.store_ready_at {
            // Outcomes of tasks no longer held (given back at shutdown) are dropped.
            let held = &self.held;
            self.unrecorded.retain(|u| held.contains_key(&u.id));
            let n = self.unrecorded.len().min(RECORD_BATCH);
            if n == 0 {
                return;
            }
            let batch: Vec<(Uuid, u32, &TaskOutcome)> = self
                .unrecorded
                .iter()
                .take(n)
                .map(|u| (u.id, self.held[&u.id].task.attempt, &u.outcome))
                .collect();
            match self.call(self.store.record_outcomes(self.id, &batch)).await {
                Ok(applied) => {
                    self.store_answered();
                    for applied in applied {
                        self.recorded(applied);
                    }
                }
                // The database refused one of them for what it holds: each on its own, so
                // that the others are recorded and only that one is dealt with.
                Err(e) if e.is_rejected() => {
                    self.store_answered();
                    for _ in 0..n {
                        if !self.record_alone().await {
                            return;
                        }
                    }
                }
                Err(e) => {
                    self.store_failed("record task outcomes", &e);
                    return;
                }
            }
        }
    }

    /// The oldest unrecorded outcome was recorded (`applied`: it changed the task).
    pub(super) fn recorded(&mut self, applied: bool) {
        let done = self.unrecorded.pop_front().expect("recorded in order");
        let held = self.held.remove(&done.id).expect("held while unrecorded");
        let status = held
            .span
            .in_scope(|| log_recorded(&held.task, &done.outcome, applied, done.duration));
        self.observe(&held.task, status, done.duration);
        self.health.recorded(self.unrecorded.is_empty());
    }

    /// Records the oldest unrecorded outcome on its own. One the database refuses is recorded
    /// as the task's death, with the database's reason in its chain (the store is asked once
    /// more); if even that is refused, it is dropped and logged: the task's lease expires and
    /// its attempts run out like a lost worker's, while every other outcome goes on being
    /// recorded. Returns `false` when the store did not answer (try later).
    pub(super) async fn record_alone(&mut self) -> bool {
        let Some(front) = self.unrecorded.front() else {
            return true;
        };
        let (id, attempt) = (front.id, self.held[&front.id].task.attempt);
        let first = self
            .call(
                self.store
                    .record_outcome(id, self.id, attempt, &front.outcome),
            )
            .await;
        let refused = match first {
            Ok(applied) => {
                self.recorded(applied);
                return true;
            }
            Err(e) if e.is_rejected() => e,
            Err(e) => {
                self.store_failed("record task outcomes", &e);
                return false;
            }
        };
        let mut chain = front.outcome.chain().to_vec();
        chain.push(format!(
            "the attempt's outcome could not be stored, so the task is dead: {refused}"
        ));
        let dead = TaskOutcome::Dead {
            status: front.outcome.attempt_status(),
            chain,
        };
        match self
            .call(self.store.record_outcome(id, self.id, attempt, &dead))
            .await
        {
            Ok(applied) => {
                self.unrecorded.front_mut().expect("front above").outcome = dead;
                self.recorded(applied);
                true
            }
            Err(e) if e.is_rejected() => {
                let done = self.unrecorded.pop_front().expect("front above");
                if let Some(held) = self.held.remove(&done.id) {
                    held.span.in_scope(|| {
                        error!(task = held.task.task.as_str(), task_id = %done.id, attempt,
                            error = %e, "task outcome cannot be stored in any form; it is \
                            dropped, and the task runs again once its lease expires (until its \
                            attempts run out)");
                    });
                    self.observe(&held.task, "lost", done.duration);
                }
                self.health.recorded(self.unrecorded.is_empty());
                true
            }
            Err(e) => {
                self.store_failed("record task outcomes", &e);
                false
            }
        }
    }

    pub(super) async fn renew(&mut self, lease: Duration) -> Result<(), StoreError> {
        let ids: Vec<Uuid> = self
            .held
            .iter()
            .filter(|(_, h)| !h.lost)
            .map(|(id, _)| *id)
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let renewed = self
            .call(self.store.renew_leases(self.id, &ids, lease))
            .await?;
        self.store_answered();
        if renewed.len() < ids.len() {
            for id in ids.iter().filter(|id| !renewed.contains(id)) {
                if let Some(held) = self.held.get_mut(id) {
                    held.lost = true;
                    held.span.in_scope(|| {
                        warn!(task = held.task.task.as_str(), task_id = %id,
                            attempt = held.task.attempt,
                            "lost the lease of a running task (it was cancelled, or the lease \
                             expired and another worker claimed it); its outcome will be \
                             discarded");
                    });
                }
            }
        }
        Ok(())
    }

    /// At the end of the grace period: abandons what still runs and gives it back to the
    /// queue; makes a last try at recording what finished.
    pub(super) async fn give_back(&mut self, running: &mut JoinSet<TaskOutcome>) {
        running.abort_all();
        // An attempt may have finished just before the abort: its outcome is kept.
        while let Some(joined) = running.join_next_with_id().await {
            if !matches!(&joined, Err(e) if e.is_cancelled()) {
                self.joined(joined);
            }
        }
        let finished: Vec<Uuid> = self.unrecorded.iter().map(|u| u.id).collect();
        let unfinished: Vec<Uuid> = self
            .held
            .keys()
            .filter(|id| !finished.contains(id))
            .copied()
            .collect();
        if !unfinished.is_empty() {
            let mut released = None;
            for wait in [
                Duration::ZERO,
                Duration::from_millis(200),
                Duration::from_secs(1),
            ] {
                tokio::time::sleep(wait).await;
                match self
                    .call(self.store.release_tasks(self.id, &unfinished))
                    .await
                {
                    Ok(n) => {
                        released = Some(n);
                        break;
                    }
                    Err(e) => warn!(worker = %self.id, error = %e,
                        "could not give unfinished tasks back to the queue; trying again"),
                }
            }
            match released {
                Some(n) => info!(worker = %self.id, released = n,
                    "gave back the tasks still running at the end of the shutdown grace period"),
                None => warn!(worker = %self.id, tasks = unfinished.len(),
                    "could not give back the tasks still running at shutdown: another worker \
                     runs them once their leases expire"),
            }
            for id in &unfinished {
                if let Some(held) = self.held.remove(id) {
                    self.observe(&held.task, "released", held.started.elapsed());
                }
            }
        }
        self.store_ready_at = Instant::now();
        self.record_pending().await;
        if !self.unrecorded.is_empty() {
            warn!(worker = %self.id, tasks = self.unrecorded.len(),
                "stopping with task outcomes the store did not take: those tasks run again once \
                 their leases expire (tasks must be idempotent)");
        }
    }

    /// Runs a store call, the worker's health knowing it waits meanwhile (a call that hangs
    /// makes `/ready` 503 after a while, as one that fails does).
    pub(super) async fn call<T>(&self, call: impl std::future::Future<Output = T>) -> T {
        self.health.calling();
        let out = call.await;
        self.health.returned();
        out
    }

    pub(super) fn observe(&self, task: &ClaimedTask, status: &str, duration: Duration) {
        for observer in self.observers {
            observer.task_finished(&task.task, &task.queue, status, task.attempt, duration);
        }
    }

    pub(super) fn store_answered(&mut self) {
        self.health.answered();
        if self.backoff.take().is_some() {
            info!(worker = %self.id, "the store answers again");
        }
    }

    pub(super) fn store_failed(&mut self, action: &str, e: &StoreError) {
        self.health.failed();
        let wait = self
            .backoff
            .map_or(FIRST_STORE_BACKOFF, |b| (b * 2).min(MAX_STORE_BACKOFF));
        self.backoff = Some(wait);
        self.store_ready_at = Instant::now() + wait;
        warn!(worker = %self.id, error = %e, retry_in_ms = wait.as_millis() as u64,
            "worker could not {action}; backing off (finished outcomes are kept and recorded \
             when the store answers)");
    }
}
