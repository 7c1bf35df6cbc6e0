//! Durable tasks: the store's queue, the worker and the test harness, against SQLite and
//! PostgreSQL (see `support/mod.rs` for how each test gets its own database).

#[macro_use]
mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use coordinator::config::{ConfigDuration, WorkerConfig};
use coordinator::prelude::*;
use coordinator::store::{Store, StoreError};
use coordinator::task::RetryPolicy;
use coordinator::task::{AttemptStatus, NewTask, StoredTask, TaskQuery, TaskState};
use coordinator::testing::TestCoordinator;
use coordinator::{Coordinator, Personal, TaskObserver, Worker};
use support::TestDb;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Fixtures

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// An id no task has.
fn some_id() -> Uuid {
    uuid::Builder::from_unix_timestamp_millis(now_ms(), &[7; 10]).into_uuid()
}

fn new_task(name: &str, n: u32) -> NewTask {
    NewTask::new(name, format!(r#"{{"n":{n}}}"#))
}

async fn task(store: &Store, id: Uuid) -> StoredTask {
    store.get_task(id).await.unwrap().expect("the task exists")
}

fn statuses(task: &StoredTask) -> Vec<AttemptStatus> {
    task.history.iter().map(|a| a.status).collect()
}

/// Polls until `id` is in `state`, or fails after `within`.
async fn wait_for_state(store: &Store, id: Uuid, state: TaskState, within: Duration) -> StoredTask {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let t = task(store, id).await;
        if t.state == state {
            return t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "task {id} is {} after {within:?}, expected {state}: {t:#?}",
            t.state
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Job {
    pub n: u32,
}

/// Counts how often each `n` ran.
#[derive(Clone, Default)]
struct Runs(Arc<Mutex<HashMap<u32, u32>>>);

impl Runs {
    fn ran(&self, n: u32) {
        *self.0.lock().unwrap().entry(n).or_default() += 1;
    }

    fn count(&self, n: u32) -> u32 {
        self.0.lock().unwrap().get(&n).copied().unwrap_or(0)
    }
}

/// Every `(task, status, attempt)` a worker reported.
#[derive(Default)]
struct Observed(Mutex<Vec<(String, String, u32)>>);

impl TaskObserver for Observed {
    fn task_finished(&self, task: &str, _queue: &str, status: &str, attempt: u32, _: Duration) {
        self.0
            .lock()
            .unwrap()
            .push((task.to_owned(), status.to_owned(), attempt));
    }
}

impl Observed {
    fn of(&self, task: &str) -> Vec<(String, u32)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _, _)| t == task)
            .map(|(_, s, a)| (s.clone(), *a))
            .collect()
    }
}

fn worker_config() -> WorkerConfig {
    WorkerConfig {
        concurrency: 4,
        poll_interval: ConfigDuration(Duration::from_millis(20)),
        lease: ConfigDuration(Duration::from_secs(10)),
        shutdown_grace: ConfigDuration(Duration::from_secs(5)),
        ..WorkerConfig::default()
    }
}

/// A worker running on its own Tokio task until stopped.
struct RunningWorker {
    stop: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<()>,
}

fn start(worker: Worker) -> RunningWorker {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    RunningWorker { stop, handle }
}

impl RunningWorker {
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("the worker stops within its grace period")
            .expect("the worker does not panic");
    }
}

fn build(store: &Store, extension: impl Extension) -> Coordinator {
    Coordinator::builder()
        .extension(extension)
        .store(store.clone())
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// The store's queue

async fn enqueued_tasks_are_claimed_and_completed(db: &TestDb) {
    let store = db.migrated().await;
    let origin = some_id();
    let id = store
        .enqueue_task(&NewTask {
            queue: "lms".into(),
            max_attempts: 3,
            origin_dispatch: Some(origin),
            ..new_task("shop.enroll", 1)
        })
        .await
        .unwrap();
    let queued = task(store, id).await;
    assert_eq!(
        (queued.state, queued.attempts, queued.max_attempts),
        (TaskState::Queued, 0, 3)
    );
    assert_eq!(queued.payload, serde_json::json!({"n": 1}));
    assert_eq!(queued.origin_dispatch, Some(origin));

    let claimed = store
        .claim_tasks("w1", &[], 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let c = &claimed[0];
    assert_eq!((c.id, c.attempt, c.max_attempts), (id, 1, 3));
    assert_eq!((c.task.as_str(), c.queue.as_str()), ("shop.enroll", "lms"));
    assert_eq!(c.payload, r#"{"n":1}"#);
    assert_eq!(c.origin_dispatch, Some(origin));
    assert!(c.lease_until_ms >= now_ms() + 25_000);
    let running = task(store, id).await;
    assert_eq!(running.state, TaskState::Running);
    assert_eq!(running.lease_owner.as_deref(), Some("w1"));
    assert_eq!(statuses(&running), [AttemptStatus::Running]);
    // Nothing more to claim while it runs.
    assert!(
        store
            .claim_tasks("w2", &[], 10, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty()
    );

    assert!(
        store
            .complete_task(id, "w1", 1, Some("enrolled"))
            .await
            .unwrap()
    );
    let done = task(store, id).await;
    assert_eq!(done.state, TaskState::Succeeded);
    assert_eq!(done.result.as_deref(), Some("enrolled"));
    assert!(done.finished_at_ms.is_some() && done.lease_owner.is_none());
    assert_eq!(statuses(&done), [AttemptStatus::Ok]);
    assert_eq!(done.history[0].worker, "w1");
    // A second success is refused.
    assert!(
        !store
            .complete_task(id, "w1", 1, Some("again"))
            .await
            .unwrap()
    );

    let counts = store.task_counts().await.unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!(
        (counts[0].queue.as_str(), counts[0].state, counts[0].count),
        ("lms", TaskState::Succeeded, 1)
    );
}

async fn claims_respect_queues_limits_and_run_at(db: &TestDb) {
    let store = db.migrated().await;
    let lease = Duration::from_secs(30);
    let delayed = store
        .enqueue_task(&NewTask {
            run_at_ms: now_ms() + 400,
            ..new_task("shop.later", 0)
        })
        .await
        .unwrap();
    let mut on = HashMap::new();
    for (n, queue) in [(1, "a"), (2, "a"), (3, "b"), (4, "c")] {
        let id = store
            .enqueue_task(&NewTask {
                queue: queue.into(),
                ..new_task("shop.now", n)
            })
            .await
            .unwrap();
        on.insert(id, queue);
    }
    let first = store
        .claim_tasks("w", &["a".into()], 1, lease)
        .await
        .unwrap();
    assert_eq!(first.len(), 1, "the limit");
    assert_eq!(first[0].queue, "a");
    let rest = store
        .claim_tasks("w", &["a".into(), "b".into()], 10, lease)
        .await
        .unwrap();
    assert_eq!(rest.len(), 2);
    assert!(rest.iter().all(|t| on[&t.id] != "c"));
    let all = store.claim_tasks("w", &[], 10, lease).await.unwrap();
    assert_eq!(all.len(), 1, "only the c task: the delayed one is not due");
    assert_eq!(all[0].queue, "c");

    tokio::time::sleep(Duration::from_millis(450)).await;
    let later = store.claim_tasks("w", &[], 10, lease).await.unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].id, delayed);
}

async fn once_keys_also_find_the_task_that_succeeded(db: &TestDb) {
    let store = db.migrated().await;
    let once = |name: &str, n| NewTask {
        unique_key: Some("order-1".into()),
        once: true,
        ..new_task(name, n)
    };
    let first = store.enqueue_task(&once("shop.enroll", 1)).await.unwrap();
    let claimed = store
        .claim_tasks("w", &[], 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed[0].id, first);
    let done = coordinator::task::TaskOutcome::Succeeded(None);
    assert!(store.record_outcome(first, "w", 1, &done).await.unwrap());
    // Enqueued again after it succeeded (its enqueuer ran twice): the same task, not a new one.
    let again = store.enqueue_task(&once("shop.enroll", 2)).await.unwrap();
    assert_eq!(again, first);
    assert_eq!(task(store, first).await.state, TaskState::Succeeded);
    // A plain unique key may be used again once its task finished.
    let plain = NewTask {
        once: false,
        ..once("shop.enroll", 3)
    };
    assert_ne!(store.enqueue_task(&plain).await.unwrap(), first);
    // A cancelled task does not hold the key: the work was not done.
    let other = store.enqueue_task(&once("shop.refund", 4)).await.unwrap();
    store.cancel_task(other).await.unwrap();
    assert_ne!(
        store.enqueue_task(&once("shop.refund", 5)).await.unwrap(),
        other
    );
}

async fn unique_keys_deduplicate_pending_tasks(db: &TestDb) {
    let store = db.migrated().await;
    let keyed = |name: &str, n| NewTask {
        unique_key: Some("order-1".into()),
        ..new_task(name, n)
    };
    let first = store.enqueue_task(&keyed("shop.refund", 1)).await.unwrap();
    let second = store.enqueue_task(&keyed("shop.refund", 2)).await.unwrap();
    assert_eq!(first, second, "the pending task's id");
    let other = store.enqueue_task(&keyed("shop.receipt", 3)).await.unwrap();
    assert_ne!(first, other, "keys are per task name");
    let unkeyed = store
        .enqueue_task(&new_task("shop.refund", 4))
        .await
        .unwrap();
    assert_ne!(first, unkeyed);
    // In a transaction too.
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.enqueue_task(&keyed("shop.refund", 5)).await.unwrap(),
        first
    );
    tx.commit().await.unwrap();

    // Still pending while running; free again once finished.
    let claimed = store
        .claim_tasks("w", &[], 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    assert_eq!(
        store.enqueue_task(&keyed("shop.refund", 6)).await.unwrap(),
        first
    );
    assert!(store.complete_task(first, "w", 1, None).await.unwrap());
    let fresh = store.enqueue_task(&keyed("shop.refund", 7)).await.unwrap();
    assert_ne!(fresh, first);
    assert_eq!(task(store, fresh).await.payload["n"], 7);
    let refunds = store
        .list_tasks(&TaskQuery {
            task: Some("shop.refund".into()),
            ..TaskQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(refunds.items.len(), 3, "first, unkeyed and fresh");
}

async fn an_expired_lease_is_claimed_again_and_the_late_completion_is_fenced(db: &TestDb) {
    let store = db.migrated().await;
    let id = store
        .enqueue_task(&new_task("shop.enroll", 1))
        .await
        .unwrap();
    // Worker A claims with a short lease, then dies (never renews, never completes).
    let a = store
        .claim_tasks("worker-a", &[], 10, Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(a[0].attempt, 1);
    assert!(
        store
            .claim_tasks("worker-b", &[], 10, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty(),
        "not before the lease expires"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;

    let b = store
        .claim_tasks("worker-b", &[], 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!((b[0].id, b[0].attempt), (id, 2));
    assert!(
        store
            .complete_task(id, "worker-b", 2, Some("by b"))
            .await
            .unwrap()
    );
    // A comes back to life: its completion (and its failure) are fenced out.
    assert!(
        !store
            .complete_task(id, "worker-a", 1, Some("by a"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .fail_task(
                id,
                "worker-a",
                1,
                &["late".into()],
                None,
                AttemptStatus::Error
            )
            .await
            .unwrap()
    );
    // Renewing a lease it lost gives nothing back.
    assert!(
        store
            .renew_leases("worker-a", &[id], Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty()
    );

    let done = task(store, id).await;
    assert_eq!(done.state, TaskState::Succeeded);
    assert_eq!(done.result.as_deref(), Some("by b"));
    assert_eq!(statuses(&done), [AttemptStatus::Lost, AttemptStatus::Ok]);
    assert_eq!(done.history[0].worker, "worker-a");
    assert!(done.history[0].error_chain[0].contains("stopped renewing its lease"));
    assert_eq!(done.history[1].worker, "worker-b");
    let successes = done
        .history
        .iter()
        .filter(|a| a.status == AttemptStatus::Ok)
        .count();
    assert_eq!(successes, 1, "exactly one success");
}

async fn an_expired_lease_on_the_last_attempt_makes_the_task_dead(db: &TestDb) {
    let store = db.migrated().await;
    let id = store
        .enqueue_task(&NewTask {
            max_attempts: 1,
            ..new_task("shop.enroll", 1)
        })
        .await
        .unwrap();
    store
        .claim_tasks("worker-a", &[], 10, Duration::from_millis(100))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        store
            .claim_tasks("worker-b", &[], 10, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty()
    );
    let dead = task(store, id).await;
    assert_eq!(dead.state, TaskState::Dead);
    assert_eq!(statuses(&dead), [AttemptStatus::Lost]);
    assert!(
        dead.last_error[0].contains("no attempts are left"),
        "{dead:?}"
    );
}

async fn renewed_leases_keep_their_tasks(db: &TestDb) {
    let store = db.migrated().await;
    let kept = store.enqueue_task(&new_task("shop.a", 1)).await.unwrap();
    let cancelled = store.enqueue_task(&new_task("shop.a", 2)).await.unwrap();
    let lease = Duration::from_millis(400);
    assert_eq!(
        store.claim_tasks("w", &[], 10, lease).await.unwrap().len(),
        2
    );
    store.cancel_task(cancelled).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let renewed = store
        .renew_leases("w", &[kept, cancelled], lease)
        .await
        .unwrap();
    assert_eq!(renewed, [kept], "a cancelled task's lease is not renewed");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Past the first lease, within the renewed one.
    assert!(
        store
            .claim_tasks("other", &[], 10, lease)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.complete_task(kept, "w", 1, None).await.unwrap());
}

async fn release_gives_tasks_back_without_counting_the_attempt(db: &TestDb) {
    let store = db.migrated().await;
    let id = store.enqueue_task(&new_task("shop.a", 1)).await.unwrap();
    let lease = Duration::from_secs(30);
    store.claim_tasks("w", &[], 10, lease).await.unwrap();
    assert_eq!(store.release_tasks("other", &[id]).await.unwrap(), 0);
    assert_eq!(store.release_tasks("w", &[id]).await.unwrap(), 1);
    let released = task(store, id).await;
    assert_eq!((released.state, released.attempts), (TaskState::Queued, 0));
    assert_eq!(statuses(&released), [AttemptStatus::Released]);
    let again = store.claim_tasks("w2", &[], 10, lease).await.unwrap();
    assert_eq!(again[0].attempt, 1, "the released attempt did not count");
    assert!(store.complete_task(id, "w2", 1, None).await.unwrap());
    assert_eq!(
        statuses(&task(store, id).await),
        [AttemptStatus::Released, AttemptStatus::Ok]
    );
}

async fn failures_retry_until_attempts_run_out(db: &TestDb) {
    let store = db.migrated().await;
    let id = store
        .enqueue_task(&NewTask {
            max_attempts: 2,
            ..new_task("shop.a", 1)
        })
        .await
        .unwrap();
    let lease = Duration::from_secs(30);
    let chain = vec!["LMS unavailable".to_owned(), "503".to_owned()];
    store.claim_tasks("w", &[], 10, lease).await.unwrap();
    let later = now_ms() + 300;
    assert!(
        store
            .fail_task(id, "w", 1, &chain, Some(later), AttemptStatus::Error)
            .await
            .unwrap()
    );
    let retrying = task(store, id).await;
    assert_eq!(
        (retrying.state, retrying.run_at_ms),
        (TaskState::Retrying, later)
    );
    assert_eq!(retrying.last_error, chain);
    assert!(
        store
            .claim_tasks("w", &[], 10, lease)
            .await
            .unwrap()
            .is_empty()
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        store.claim_tasks("w", &[], 10, lease).await.unwrap()[0].attempt,
        2
    );
    assert!(
        store
            .fail_task(
                id,
                "w",
                2,
                &["timed out".into()],
                None,
                AttemptStatus::TimedOut
            )
            .await
            .unwrap()
    );
    let dead = task(store, id).await;
    assert_eq!(dead.state, TaskState::Dead);
    assert_eq!(
        statuses(&dead),
        [AttemptStatus::Error, AttemptStatus::TimedOut]
    );
    assert_eq!(dead.history[0].error_chain, chain);
}

async fn retry_and_cancel_follow_the_state_rules(db: &TestDb) {
    let store = db.migrated().await;
    let lease = Duration::from_secs(30);

    // Unknown ids.
    let nowhere = some_id();
    let e = store.retry_task(nowhere).await.unwrap_err();
    assert!(matches!(e, StoreError::TaskNotFound { .. }), "{e:?}");
    assert!(e.to_string().contains("no such task"), "{e}");
    assert!(matches!(
        store.cancel_task(nowhere).await.unwrap_err(),
        StoreError::TaskNotFound { .. }
    ));

    // Queued: cancel yes, retry no.
    let id = store.enqueue_task(&new_task("shop.a", 1)).await.unwrap();
    let e = store.retry_task(id).await.unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "cannot retry task {id}: it is queued; only dead or cancelled tasks can be retried"
        )
    );
    store.cancel_task(id).await.unwrap();
    assert_eq!(task(store, id).await.state, TaskState::Cancelled);
    let e = store.cancel_task(id).await.unwrap_err().to_string();
    assert!(
        e.contains("it is cancelled; only queued, retrying or running"),
        "{e}"
    );
    assert!(
        store
            .claim_tasks("w", &[], 10, lease)
            .await
            .unwrap()
            .is_empty()
    );
    store.retry_task(id).await.unwrap();
    let back = task(store, id).await;
    assert_eq!((back.state, back.attempts), (TaskState::Queued, 0));

    // Running: cancelled, and the worker's later completion is fenced out (but its attempt's
    // real outcome stays in the history).
    store.claim_tasks("w", &[], 10, lease).await.unwrap();
    store.cancel_task(id).await.unwrap();
    assert!(!store.complete_task(id, "w", 1, Some("done")).await.unwrap());
    let cancelled = task(store, id).await;
    assert_eq!(cancelled.state, TaskState::Cancelled);
    assert_eq!(cancelled.result, None);
    assert_eq!(statuses(&cancelled), [AttemptStatus::Ok]);

    // Retrying a task whose unique key another pending task holds is refused, naming it.
    let keyed = |n| NewTask {
        unique_key: Some("k".into()),
        ..new_task("shop.b", n)
    };
    let old = store.enqueue_task(&keyed(1)).await.unwrap();
    store.cancel_task(old).await.unwrap();
    let new = store.enqueue_task(&keyed(2)).await.unwrap();
    assert_ne!(old, new);
    let e = store.retry_task(old).await.unwrap_err();
    assert!(
        matches!(&e, StoreError::DuplicatePendingTask { pending, .. } if *pending == new),
        "{e:?}"
    );
    assert!(e.to_string().contains("cancel it, then retry"), "{e}");
}

async fn lists_page_newest_first_with_filters(db: &TestDb) {
    let store = db.migrated().await;
    let mut ids = Vec::new();
    for n in 0..7 {
        let queue = if n % 2 == 0 { "even" } else { "odd" };
        let id = store
            .enqueue_task(&NewTask {
                queue: queue.into(),
                ..new_task("shop.a", n)
            })
            .await
            .unwrap();
        ids.push(id);
        // Ids are UUIDv7: a millisecond apart, they sort by time.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .list_tasks(&TaskQuery {
                before,
                limit: 3,
                ..TaskQuery::default()
            })
            .await
            .unwrap();
        assert!(page.items.iter().all(|t| t.history.is_empty()));
        seen.extend(page.items.iter().map(|t| t.id));
        match page.next_before {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let odd = store
        .list_tasks(&TaskQuery {
            queue: Some("odd".into()),
            ..TaskQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(odd.items.len(), 3);
    store.cancel_task(ids[0]).await.unwrap();
    let cancelled = store
        .list_tasks(&TaskQuery {
            state: Some(TaskState::Cancelled),
            ..TaskQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(cancelled.items.len(), 1);
    assert_eq!(cancelled.items[0].id, ids[0]);
    let counts = store.task_counts().await.unwrap();
    let count = |queue: &str, state| {
        counts
            .iter()
            .find(|c| c.queue == queue && c.state == state)
            .map_or(0, |c| c.count)
    };
    assert_eq!(count("even", TaskState::Queued), 3);
    assert_eq!(count("even", TaskState::Cancelled), 1);
    assert_eq!(count("odd", TaskState::Queued), 3);
}

// ---------------------------------------------------------------------------------------------
// Transactions and the inbox

static REFUND: Task<Job> = Task::new("shop.refund", "Refunds an order.").queue("payments");

fn refunds(store: &Store) -> Coordinator {
    build(
        store,
        coordinator::testing::extension("shop", |ext| {
            ext.task(&REFUND, |_: TaskContext, _: Job| async {
                Ok::<_, TaskError>(())
            });
        }),
    )
}

async fn transactional_enqueue_commits_or_rolls_back_with_the_intake(db: &TestDb) {
    let store = db.migrated().await;
    let coordinator = refunds(store);
    let context = coordinator.context("shop");

    let mut tx = store.begin().await.unwrap();
    assert!(tx.record_intake("stripe", "evt_1").await.unwrap());
    let rolled_back = context
        .enqueue_in(&mut tx, &REFUND, Job { n: 1 }, EnqueueOptions::default())
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert!(store.get_task(rolled_back).await.unwrap().is_none());

    let mut tx = store.begin().await.unwrap();
    assert!(
        tx.record_intake("stripe", "evt_1").await.unwrap(),
        "the rollback recorded nothing"
    );
    let committed = context
        .enqueue_in(&mut tx, &REFUND, Job { n: 1 }, EnqueueOptions::default())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let stored = task(store, committed).await;
    assert_eq!(stored.queue, "payments", "the declared queue");

    // The redelivery is recognized.
    let mut tx = store.begin().await.unwrap();
    assert!(!tx.record_intake("stripe", "evt_1").await.unwrap());
    assert!(
        tx.record_intake("paypal", "evt_1").await.unwrap(),
        "keys are per source"
    );
    tx.commit().await.unwrap();

    // Dropping a transaction rolls it back too.
    {
        let mut tx = store.begin().await.unwrap();
        tx.record_intake("stripe", "evt_2").await.unwrap();
    }
    let mut tx = store.begin().await.unwrap();
    assert!(tx.record_intake("stripe", "evt_2").await.unwrap());
    tx.commit().await.unwrap();
}

async fn one_intake_key_in_three_concurrent_transactions_enqueues_once(db: &TestDb) {
    let store = db.migrated().await;
    let coordinator = refunds(store);
    let deliver = |n: u32| {
        let (store, context) = (store.clone(), coordinator.context("shop"));
        async move {
            let mut tx = store.begin().await.unwrap();
            let first = tx.record_intake("stripe", "evt_42").await.unwrap();
            if first {
                context
                    .enqueue_in(&mut tx, &REFUND, Job { n }, EnqueueOptions::default())
                    .await
                    .unwrap();
                // Hold the transaction a little, so the others really wait for it.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tx.commit().await.unwrap();
            first
        }
    };
    let (a, b, c) = tokio::join!(
        tokio::spawn(deliver(1)),
        tokio::spawn(deliver(2)),
        tokio::spawn(deliver(3))
    );
    let firsts = [a.unwrap(), b.unwrap(), c.unwrap()];
    assert_eq!(firsts.iter().filter(|f| **f).count(), 1, "{firsts:?}");
    let all = store.list_tasks(&TaskQuery::default()).await.unwrap();
    assert_eq!(all.items.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// The worker

#[derive(Debug, thiserror::Error)]
#[error("the LMS refused the enrollment")]
struct EnrollFailed(#[source] std::io::Error);

static ALWAYS_FAILS: Task<Job> = Task::new("shop.always_fails", "Fails every time.").retry(
    RetryPolicy::exponential(3, Duration::from_millis(20), Duration::from_millis(40)),
);
static WORKS: Task<Job> = Task::new("shop.works", "Works.");
static ABORTS: Task<Job> = Task::new("shop.aborts", "Aborts.");
static COMES_BACK_LATER: Task<Job> = Task::new("shop.comes_back_later", "Says when to retry.")
    // Only `RetryAfter` can bring it back within the test.
    .retry(RetryPolicy::exponential(
        5,
        Duration::from_secs(3600),
        Duration::from_secs(3600),
    ));

static WAITS_OUT: Task<Job> = Task::new("shop.waits_out", "Waits for a service to come back.")
    // One attempt only: postponing must not spend it.
    .retry(RetryPolicy::exponential(
        1,
        Duration::from_millis(10),
        Duration::from_millis(10),
    ));

fn workshop(store: &Store, runs: Runs) -> Coordinator {
    build(
        store,
        coordinator::testing::extension("shop", move |ext| {
            let r = runs.clone();
            ext.task(&ALWAYS_FAILS, move |_: TaskContext, job: Job| {
                r.ran(job.n);
                async { Err::<(), _>(EnrollFailed(std::io::Error::other("503 from the LMS"))) }
            });
            let r = runs.clone();
            ext.task(&WORKS, move |ctx: TaskContext, job: Job| {
                r.ran(job.n);
                async move {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    Ok::<_, TaskError>(format!("job {} attempt {}", job.n, ctx.attempt()))
                }
            });
            ext.task(&ABORTS, |_: TaskContext, _: Job| async {
                Err::<(), _>(TaskError::abort(HandlerError::msg(
                    "the course run is gone",
                )))
            });
            let r = runs.clone();
            ext.task(&WAITS_OUT, move |_: TaskContext, job: Job| {
                r.ran(job.n);
                let postpone = r.count(job.n) <= 3;
                async move {
                    if postpone {
                        Err(TaskError::postpone(
                            Duration::from_millis(50),
                            HandlerError::msg("the LMS's circuit breaker is open"),
                        ))
                    } else {
                        Ok(())
                    }
                }
            });
            ext.task(&COMES_BACK_LATER, |ctx: TaskContext, _: Job| async move {
                if ctx.attempt() == 1 {
                    Err(TaskError::retry_after(
                        Duration::from_millis(700),
                        HandlerError::msg("429: come back in 700 ms"),
                    ))
                } else {
                    Ok(())
                }
            });
        }),
    )
}

async fn a_failing_task_dies_after_its_attempts_while_others_flow(db: &TestDb) {
    let store = db.migrated().await;
    let runs = Runs::default();
    let coordinator = workshop(store, runs.clone());
    let context = coordinator.context("shop");
    let failing = context
        .enqueue(&ALWAYS_FAILS, Job { n: 1000 })
        .await
        .unwrap();
    let mut working = Vec::new();
    for n in 0..30 {
        working.push(context.enqueue(&WORKS, Job { n }).await.unwrap());
    }
    let observed = Arc::new(Observed::default());
    let worker = start(Worker::new(coordinator.clone(), worker_config()).observe(observed.clone()));

    let dead = wait_for_state(store, failing, TaskState::Dead, Duration::from_secs(20)).await;
    for id in &working {
        wait_for_state(store, *id, TaskState::Succeeded, Duration::from_secs(20)).await;
    }
    worker.stop().await;

    assert_eq!(dead.attempts, 3);
    assert_eq!(statuses(&dead), [AttemptStatus::Error; 3]);
    for attempt in &dead.history {
        assert_eq!(
            attempt.error_chain,
            ["the LMS refused the enrollment", "503 from the LMS"]
        );
    }
    assert_eq!(dead.last_error, dead.history[2].error_chain);
    assert_eq!(runs.count(1000), 3);
    assert!((0..30).all(|n| runs.count(n) == 1), "each ran once");
    assert_eq!(
        observed.of("shop.always_fails"),
        [
            ("retrying".to_owned(), 1),
            ("retrying".to_owned(), 2),
            ("dead".to_owned(), 3)
        ]
    );
    assert_eq!(observed.of("shop.works").len(), 30);
    let ok = task(store, working[0]).await;
    assert_eq!(ok.result.as_deref(), Some("job 0 attempt 1"));

    // An operator retries it: it runs again from attempt 1, its history kept.
    store.retry_task(failing).await.unwrap();
    let queued = task(store, failing).await;
    assert_eq!((queued.state, queued.attempts), (TaskState::Queued, 0));
    assert_eq!(queued.history.len(), 3);
    let worker = start(Worker::new(coordinator, worker_config()));
    let again = wait_for_state(store, failing, TaskState::Dead, Duration::from_secs(20)).await;
    worker.stop().await;
    assert_eq!(again.history.len(), 6);
    assert_eq!(again.history[3].attempt, 1);
    assert_eq!(runs.count(1000), 6);
}

async fn retry_after_is_honoured_and_abort_is_final(db: &TestDb) {
    let store = db.migrated().await;
    let coordinator = workshop(store, Runs::default());
    let context = coordinator.context("shop");
    let later = context
        .enqueue(&COMES_BACK_LATER, Job { n: 1 })
        .await
        .unwrap();
    let aborted = context.enqueue(&ABORTS, Job { n: 2 }).await.unwrap();
    let worker = start(Worker::new(coordinator, worker_config()));

    let dead = wait_for_state(store, aborted, TaskState::Dead, Duration::from_secs(10)).await;
    assert_eq!(dead.attempts, 1, "of 5 allowed: an abort is final");
    assert_eq!(dead.last_error, ["the course run is gone"]);

    let retrying = wait_for_state(store, later, TaskState::Retrying, Duration::from_secs(10)).await;
    let failed_at = retrying.history[0].finished_at_ms.unwrap();
    assert!(
        retrying.run_at_ms >= failed_at + 650,
        "run_at {} is the RetryAfter wait after {failed_at}",
        retrying.run_at_ms
    );
    let done = wait_for_state(store, later, TaskState::Succeeded, Duration::from_secs(10)).await;
    worker.stop().await;
    assert_eq!(statuses(&done), [AttemptStatus::Error, AttemptStatus::Ok]);
    assert!(done.history[1].started_at_ms >= retrying.run_at_ms);
}

async fn a_postponed_task_spends_no_attempt(db: &TestDb) {
    let store = db.migrated().await;
    let runs = Runs::default();
    let coordinator = workshop(store, runs.clone());
    let id = coordinator
        .context("shop")
        .enqueue(&WAITS_OUT, Job { n: 7 })
        .await
        .unwrap();
    let worker = start(Worker::new(coordinator, worker_config()));
    let done = wait_for_state(store, id, TaskState::Succeeded, Duration::from_secs(10)).await;
    worker.stop().await;
    assert_eq!(runs.count(7), 4, "postponed three times, then run");
    assert_eq!(
        done.attempts, 1,
        "of 1 allowed: the postponements were not counted"
    );
    assert_eq!(
        statuses(&done),
        [
            AttemptStatus::Released,
            AttemptStatus::Released,
            AttemptStatus::Released,
            AttemptStatus::Ok
        ]
    );
    assert_eq!(
        done.history[0].error_chain,
        ["the LMS's circuit breaker is open"]
    );
}

static SLOW: Task<Job> = Task::new("shop.slow", "Takes a minute.");
static QUICK: Task<Job> = Task::new("shop.quick", "Takes a moment.");

/// A coordinator whose `shop.slow` takes 50 s and `shop.quick` 150 ms; both count their starts.
fn slow_and_quick(store: &Store, started: &Arc<AtomicU32>) -> Coordinator {
    let s = Arc::clone(started);
    build(
        store,
        coordinator::testing::extension("shop", move |ext| {
            for (task, takes) in [
                (&SLOW, Duration::from_secs(50)),
                (&QUICK, Duration::from_millis(150)),
            ] {
                let s = Arc::clone(&s);
                ext.task(task, move |_: TaskContext, _: Job| {
                    s.fetch_add(1, Ordering::SeqCst);
                    async move {
                        tokio::time::sleep(takes).await;
                        Ok::<_, TaskError>(())
                    }
                });
            }
        }),
    )
}

async fn graceful_shutdown_releases_unfinished_tasks(db: &TestDb) {
    let store = db.migrated().await;
    let started = Arc::new(AtomicU32::new(0));
    let coordinator = slow_and_quick(store, &started);
    let context = coordinator.context("shop");
    let slow = [
        context.enqueue(&SLOW, Job { n: 1 }).await.unwrap(),
        context.enqueue(&SLOW, Job { n: 2 }).await.unwrap(),
    ];
    let quick = [
        context.enqueue(&QUICK, Job { n: 3 }).await.unwrap(),
        context.enqueue(&QUICK, Job { n: 4 }).await.unwrap(),
    ];
    let observed = Arc::new(Observed::default());
    let config = WorkerConfig {
        shutdown_grace: ConfigDuration(Duration::from_millis(600)),
        ..worker_config()
    };
    let worker = start(Worker::new(coordinator, config).observe(observed.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while started.load(Ordering::SeqCst) < 4 {
        assert!(tokio::time::Instant::now() < deadline, "all four start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stopping = tokio::time::Instant::now();
    worker.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "it waits the grace period, not for the slow tasks"
    );

    for id in quick {
        let t = task(store, id).await;
        assert_eq!(
            t.state,
            TaskState::Succeeded,
            "finished within the grace period"
        );
    }
    for id in slow {
        let t = task(store, id).await;
        assert_eq!((t.state, t.attempts), (TaskState::Queued, 0), "{t:?}");
        assert_eq!(statuses(&t), [AttemptStatus::Released]);
    }
    assert_eq!(
        observed.of("shop.slow"),
        [("released".to_owned(), 1), ("released".to_owned(), 1)]
    );
}

async fn prefetched_tasks_wait_for_a_slot_and_are_given_back_on_shutdown(db: &TestDb) {
    let store = db.migrated().await;
    let started = Arc::new(AtomicU32::new(0));
    let coordinator = slow_and_quick(store, &started);
    let context = coordinator.context("shop");
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(context.enqueue(&SLOW, Job { n }).await.unwrap());
    }
    let config = WorkerConfig {
        concurrency: 1,
        prefetch: 4,
        shutdown_grace: ConfigDuration(Duration::from_millis(300)),
        ..worker_config()
    };
    let worker = start(Worker::new(coordinator, config));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut running = 0;
        for id in &ids {
            running += usize::from(task(store, *id).await.state == TaskState::Running);
        }
        if running == 3 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "all three are claimed at once"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        started.load(Ordering::SeqCst),
        1,
        "one slot: one runs, two wait"
    );

    worker.stop().await;
    assert_eq!(
        started.load(Ordering::SeqCst),
        1,
        "the waiting ones never started"
    );
    for id in ids {
        let t = task(store, id).await;
        assert_eq!((t.state, t.attempts), (TaskState::Queued, 0), "{t:?}");
        assert_eq!(statuses(&t), [AttemptStatus::Released]);
    }
}

async fn concurrent_enqueues_each_get_their_own_id_and_unique_keys_hold(db: &TestDb) {
    let store = db.migrated().await;
    // 200 at once: on SQLite they are written together, a few transactions in all.
    let mut joins = Vec::new();
    for n in 0..200u32 {
        let store = store.clone();
        joins.push(tokio::spawn(async move {
            let task = if n % 4 == 0 {
                // 50 of them share one unique key: one task for all.
                NewTask {
                    unique_key: Some("order-EDX-1".into()),
                    ..new_task("shop.refund", n)
                }
            } else {
                new_task("shop.receipt", n)
            };
            (n, store.enqueue_task(&task).await.unwrap())
        }));
    }
    let mut keyed = std::collections::HashSet::new();
    let mut others = std::collections::HashSet::new();
    for join in joins {
        let (n, id) = join.await.unwrap();
        if n % 4 == 0 {
            keyed.insert(id);
        } else {
            assert!(others.insert(id), "each plain enqueue has an id of its own");
        }
    }
    assert_eq!(keyed.len(), 1, "one task for the unique key");
    assert_eq!(others.len(), 150);
    let pending: u64 = store
        .task_counts()
        .await
        .unwrap()
        .iter()
        .map(|c| c.count)
        .sum();
    assert_eq!(pending, 151);
}

async fn finished_tasks_and_old_inbox_entries_are_purged_and_pending_or_dead_ones_kept(
    db: &TestDb,
) {
    let store = db.migrated().await;
    let lease = Duration::from_secs(30);
    let done = store.enqueue_task(&new_task("shop.a", 1)).await.unwrap();
    let dead = store.enqueue_task(&new_task("shop.b", 2)).await.unwrap();
    let claimed = store.claim_tasks("w", &[], 10, lease).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(store.complete_task(done, "w", 1, None).await.unwrap());
    let chain = ["boom".to_owned()];
    assert!(
        store
            .fail_task(dead, "w", 1, &chain, None, AttemptStatus::Error)
            .await
            .unwrap()
    );
    let cancelled = store.enqueue_task(&new_task("shop.c", 3)).await.unwrap();
    store.cancel_task(cancelled).await.unwrap();
    let queued = store.enqueue_task(&new_task("shop.d", 4)).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    assert!(tx.record_intake("stripe", "evt_1").await.unwrap());
    tx.commit().await.unwrap();

    let now = coordinator_now_ms();
    assert_eq!(
        store.purge_finished_tasks(now - 60_000).await.unwrap(),
        0,
        "nothing finished a minute ago"
    );
    assert_eq!(store.purge_finished_tasks(now + 60_000).await.unwrap(), 2);
    for gone in [done, cancelled] {
        assert!(store.get_task(gone).await.unwrap().is_none());
    }
    assert_eq!(task(store, dead).await.state, TaskState::Dead);
    assert_eq!(task(store, queued).await.state, TaskState::Queued);

    assert_eq!(store.purge_inbox(now - 60_000).await.unwrap(), 0);
    assert_eq!(store.purge_inbox(now + 60_000).await.unwrap(), 1);
    let mut tx = store.begin().await.unwrap();
    assert!(
        tx.record_intake("stripe", "evt_1").await.unwrap(),
        "a forgotten event is new again"
    );
    tx.commit().await.unwrap();
}

async fn a_worker_deletes_finished_tasks_past_the_retention_when_it_starts(db: &TestDb) {
    let store = db.migrated().await;
    let coordinator = build(
        store,
        coordinator::testing::extension("shop", |ext| {
            ext.task(&COUNTED, |_: TaskContext, _: Job| async {
                Ok::<_, TaskError>(())
            });
        }),
    );
    let id = coordinator
        .context("shop")
        .enqueue(&COUNTED, Job { n: 1 })
        .await
        .unwrap();
    let first = start(Worker::new(coordinator.clone(), worker_config()));
    wait_for_state(store, id, TaskState::Succeeded, Duration::from_secs(10)).await;
    first.stop().await;
    assert!(
        store.get_task(id).await.unwrap().is_some(),
        "kept for 7 days"
    );

    tokio::time::sleep(Duration::from_millis(20)).await;
    let config = WorkerConfig {
        retention: ConfigDuration(Duration::from_millis(10)),
        ..worker_config()
    };
    let second = start(Worker::new(coordinator, config));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while store.get_task(id).await.unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "purged at start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    second.stop().await;
}

fn coordinator_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

static COUNTED: Task<Job> = Task::new("shop.counted", "Counts its runs.");

async fn the_worker_survives_the_store_going_away(db: &TestDb) {
    let store = db.migrated().await;
    let runs = Runs::default();
    let r = runs.clone();
    let name = format!("cc_worker_{}", support::unique());
    // The worker's own pool, whose connections the test breaks.
    let worker_store = db.reopen_named(&name, 4).await;
    let coordinator = build(
        &worker_store,
        coordinator::testing::extension("shop", move |ext| {
            let r = r.clone();
            ext.task(&COUNTED, move |_: TaskContext, job: Job| {
                r.ran(job.n);
                async {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Ok::<_, TaskError>(())
                }
            });
        }),
    );
    let context = coordinator.context("shop");
    let mut ids = Vec::new();
    for n in 0..40 {
        ids.push(context.enqueue(&COUNTED, Job { n }).await.unwrap());
    }
    let worker = start(Worker::new(coordinator, worker_config()));

    match db.admin_url() {
        // PostgreSQL: terminate the worker pool's connections again and again while it works.
        Some(admin_url) => {
            use sqlx::Connection;
            let mut admin = sqlx::PgConnection::connect(admin_url).await.unwrap();
            let mut terminated = 0;
            for _ in 0..15 {
                tokio::time::sleep(Duration::from_millis(40)).await;
                let killed: Vec<bool> = sqlx::query_scalar(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE application_name = $1",
                )
                .bind(&name)
                .fetch_all(&mut admin)
                .await
                .unwrap();
                terminated += killed.len();
            }
            assert!(terminated > 0, "the worker's connections were terminated");
            let _ = admin.close().await;
        }
        // SQLite: another process holds the write lock longer than the busy timeout (5 s), so
        // the worker's writes fail for a while.
        None => {
            use sqlx::Connection;
            let mut locker = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::raw_sql("BEGIN EXCLUSIVE")
                .execute(&mut locker)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(6500)).await;
            sqlx::raw_sql("COMMIT").execute(&mut locker).await.unwrap();
            let _ = locker.close().await;
        }
    }

    for id in &ids {
        wait_for_state(store, *id, TaskState::Succeeded, Duration::from_secs(60)).await;
    }
    worker.stop().await;
    for (n, id) in ids.iter().enumerate() {
        assert_eq!(runs.count(n as u32), 1, "task {n} ran once");
        let t = task(store, *id).await;
        let ok = t
            .history
            .iter()
            .filter(|a| a.status == AttemptStatus::Ok)
            .count();
        assert_eq!(ok, 1, "task {n} succeeded once: {t:?}");
    }
    worker_store.close().await;
}

async fn several_workers_share_the_queue_and_run_each_task_once(db: &TestDb) {
    let store = db.migrated().await;
    let runs = Runs::default();
    let coordinator = workshop(store, runs.clone());
    let context = coordinator.context("shop");
    let mut ids = Vec::new();
    for n in 0..60 {
        ids.push(context.enqueue(&WORKS, Job { n }).await.unwrap());
    }
    // Each worker with a pool of its own, as separate processes would have.
    let mut workers = Vec::new();
    for _ in 0..3 {
        let own = build(&db.reopen().await, {
            let runs = runs.clone();
            coordinator::testing::extension("shop", move |ext| {
                let r = runs.clone();
                ext.task(&WORKS, move |_: TaskContext, job: Job| {
                    r.ran(job.n);
                    async { Ok::<_, TaskError>(()) }
                });
            })
        });
        workers.push(start(Worker::new(own, worker_config())));
    }
    for id in &ids {
        wait_for_state(store, *id, TaskState::Succeeded, Duration::from_secs(30)).await;
    }
    for worker in workers {
        worker.stop().await;
    }
    assert!((0..60).all(|n| runs.count(n) == 1), "each task ran once");
    for id in &ids {
        assert_eq!(statuses(&task(store, *id).await), [AttemptStatus::Ok]);
    }
}

async fn the_worker_renews_the_leases_of_long_tasks(db: &TestDb) {
    let store = db.migrated().await;
    let coordinator = build(
        store,
        coordinator::testing::extension("shop", |ext| {
            ext.task(&SLOW, |_: TaskContext, _: Job| async {
                tokio::time::sleep(Duration::from_millis(1200)).await;
                Ok::<_, TaskError>(())
            });
        }),
    );
    let id = coordinator
        .context("shop")
        .enqueue(&SLOW, Job { n: 1 })
        .await
        .unwrap();
    let config = WorkerConfig {
        lease: ConfigDuration(Duration::from_millis(300)),
        ..worker_config()
    };
    let worker = start(Worker::new(coordinator, config));
    wait_for_state(store, id, TaskState::Running, Duration::from_secs(10)).await;
    // Four leases long: without renewals another worker would take it over.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stolen = store
            .claim_tasks("intruder", &[], 10, Duration::from_secs(30))
            .await
            .unwrap();
        assert!(stolen.is_empty(), "the lease is kept: {stolen:?}");
    }
    let done = wait_for_state(store, id, TaskState::Succeeded, Duration::from_secs(10)).await;
    worker.stop().await;
    assert_eq!(statuses(&done), [AttemptStatus::Ok]);
}

on_each_backend!(
    multi_thread:
    the_worker_renews_the_leases_of_long_tasks,
    several_workers_share_the_queue_and_run_each_task_once,
    enqueued_tasks_are_claimed_and_completed,
    claims_respect_queues_limits_and_run_at,
    unique_keys_deduplicate_pending_tasks,
    once_keys_also_find_the_task_that_succeeded,
    an_expired_lease_is_claimed_again_and_the_late_completion_is_fenced,
    an_expired_lease_on_the_last_attempt_makes_the_task_dead,
    renewed_leases_keep_their_tasks,
    release_gives_tasks_back_without_counting_the_attempt,
    failures_retry_until_attempts_run_out,
    retry_and_cancel_follow_the_state_rules,
    lists_page_newest_first_with_filters,
    transactional_enqueue_commits_or_rolls_back_with_the_intake,
    one_intake_key_in_three_concurrent_transactions_enqueues_once,
    a_failing_task_dies_after_its_attempts_while_others_flow,
    retry_after_is_honoured_and_abort_is_final,
    a_postponed_task_spends_no_attempt,
    graceful_shutdown_releases_unfinished_tasks,
    prefetched_tasks_wait_for_a_slot_and_are_given_back_on_shutdown,
    finished_tasks_and_old_inbox_entries_are_purged_and_pending_or_dead_ones_kept,
    concurrent_enqueues_each_get_their_own_id_and_unique_keys_hold,
    a_worker_deletes_finished_tasks_past_the_retention_when_it_starts,
    the_worker_survives_the_store_going_away,
);

// ---------------------------------------------------------------------------------------------
// Enqueueing and the test harness (SQLite, through `TestBuilder::with_store`)

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct OrderPlaced {
    pub order: String,
    pub email: Personal<String>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Enroll {
    pub order: String,
    pub email: Personal<String>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Enrolled {
    pub order: String,
}

static ORDER_PLACED: Signal<OrderPlaced> = Signal::new("shop.order_placed", "An order was placed.");
static LEARNER_ENROLLED: Signal<Enrolled> =
    Signal::new("shop.learner_enrolled", "A learner was enrolled.");
static ENROLL: Task<Enroll> = Task::new("shop.enroll_learner", "Enrolls the learner in the LMS.");

/// What the task saw of its context.
#[derive(Default)]
struct Seen {
    cause: Option<Uuid>,
    origin: Option<Uuid>,
    sender: Option<String>,
}

fn enrollment(seen: Arc<Mutex<Seen>>) -> impl Extension {
    coordinator::testing::extension("shop", move |ext| {
        let seen = Arc::clone(&seen);
        ext.signal(&ORDER_PLACED)
            .signal(&LEARNER_ENROLLED)
            .handler(
                "shop.enqueue_enrollment",
                "Enqueues the enrollment.",
                |event: Event<OrderPlaced>| async move {
                    event
                        .context()
                        .enqueue(
                            &ENROLL,
                            Enroll {
                                order: event.order.clone(),
                                email: event.email.clone(),
                            },
                        )
                        .await
                },
            )
            .enqueues(&ENROLL)
            .task(&ENROLL, move |ctx: TaskContext, job: Enroll| {
                let seen = Arc::clone(&seen);
                async move {
                    let context = ctx.context();
                    let report = context
                        .send_robust(&LEARNER_ENROLLED, Enrolled { order: job.order })
                        .await;
                    let mut seen = seen.lock().unwrap();
                    seen.cause = context.cause();
                    seen.origin = ctx.origin_dispatch();
                    seen.sender = Some(report.sender.to_string());
                    Ok::<_, TaskError>(format!(
                        "enrolled, {} handler(s) told",
                        report.handlers.len()
                    ))
                }
            })
            .sends(&LEARNER_ENROLLED);
    })
}

const ENROLLMENT_WIRING: &str = r#"
    [signals]
    "shop.order_placed" = ["shop.enqueue_enrollment"]
    "shop.learner_enrolled" = ["testing.saw_enrolled"]
"#;

#[tokio::test]
async fn a_handler_enqueues_a_task_that_sends_a_follow_up_and_run_tasks_runs_it() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let t = TestCoordinator::builder()
        .extension(enrollment(Arc::clone(&seen)))
        .recorder::<Enrolled>("testing.saw_enrolled")
        .wiring(ENROLLMENT_WIRING)
        .with_store(coordinator_sqlite::testing::temporary())
        .build();
    let report = t
        .send(
            &ORDER_PLACED,
            OrderPlaced {
                order: "EDX-1".into(),
                email: Personal::new("ada@example.com".into()),
            },
        )
        .await;
    assert!(report.all_ok(), "{report:?}");
    let Outcome::Ok {
        result: Some(task_id),
    } = &report.run("shop.enqueue_enrollment").unwrap().outcome
    else {
        panic!("the handler returns the task id: {report:?}")
    };
    let task_id: Uuid = task_id.parse().unwrap();
    assert!(
        t.seen::<Enrolled>("testing.saw_enrolled").is_empty(),
        "not yet"
    );

    let runs = t.run_tasks().await;
    assert_eq!(runs.len(), 1);
    assert_eq!((runs[0].id, runs[0].status), (task_id, "succeeded"));
    assert_eq!(
        runs[0].result.as_deref(),
        Some("enrolled, 1 handler(s) told")
    );
    assert_eq!(t.seen::<Enrolled>("testing.saw_enrolled")[0].order, "EDX-1");
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.sender.as_deref(), Some("task:shop.enroll_learner"));
        assert_eq!(
            seen.cause,
            Some(report.id),
            "the chain goes on from the dispatch"
        );
        assert_eq!(seen.origin, Some(report.id));
    }
    let stored = t.store().get_task(task_id).await.unwrap().unwrap();
    assert_eq!(stored.origin_dispatch, Some(report.id));
    assert_eq!(stored.state, TaskState::Succeeded);
    // Stored whole (the task needs the email), shown redacted.
    assert_eq!(stored.payload["email"], "ada@example.com");
    let shown = t.coordinator().redact_task_payload(&stored);
    assert_eq!(shown["email"], "[redacted]");
    assert_eq!(shown["order"], "EDX-1");
    assert!(t.run_tasks().await.is_empty(), "nothing left");
}

static FLAKY: Task<Job> = Task::new("shop.flaky", "Panics, then hangs, then works.")
    .retry(RetryPolicy::exponential(3, Duration::ZERO, Duration::ZERO))
    .timeout(Duration::from_millis(100));
static DELAYED: Task<Job> = Task::new("shop.delayed", "Runs later.");

fn flaky() -> impl Extension {
    coordinator::testing::extension("shop", |ext| {
        ext.task(&FLAKY, |ctx: TaskContext, _: Job| async move {
            match ctx.attempt() {
                1 => panic!("the client library panicked"),
                2 => {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    Ok("too late")
                }
                _ => Ok::<_, TaskError>("third time lucky"),
            }
        })
        .task(&DELAYED, |_: TaskContext, _: Job| async {
            Ok::<_, TaskError>(())
        })
        .task(&WORKS, |_: TaskContext, _: Job| async {
            Ok::<_, TaskError>(())
        });
    })
}

#[tokio::test]
async fn panics_and_timeouts_are_retried_and_recorded() {
    let t = TestCoordinator::builder()
        .extension(flaky())
        .with_store(coordinator_sqlite::testing::temporary())
        .build();
    let id = t.context().enqueue(&FLAKY, Job { n: 1 }).await.unwrap();
    let runs = t.run_tasks().await;
    let summary: Vec<_> = runs.iter().map(|r| (r.attempt, r.status)).collect();
    assert_eq!(
        summary,
        [(1, "retrying"), (2, "retrying"), (3, "succeeded")]
    );
    assert!(
        runs[0].error[0].contains("the client library panicked"),
        "{runs:?}"
    );
    assert!(
        runs[0].error[0].contains("tasks.rs"),
        "with its location: {runs:?}"
    );
    assert!(
        runs[1].error[0].contains("timed out after 100ms"),
        "{runs:?}"
    );
    let stored = t.store().get_task(id).await.unwrap().unwrap();
    assert_eq!(
        statuses(&stored),
        [
            AttemptStatus::Panicked,
            AttemptStatus::TimedOut,
            AttemptStatus::Ok
        ]
    );
    assert_eq!(stored.result.as_deref(), Some("third time lucky"));
}

#[tokio::test]
async fn run_tasks_leaves_delayed_tasks_and_kills_what_it_cannot_run() {
    let t = TestCoordinator::builder()
        .extension(flaky())
        .with_store(coordinator_sqlite::testing::temporary())
        .build();
    let delayed = t
        .context()
        .enqueue_with(
            &DELAYED,
            Job { n: 1 },
            EnqueueOptions::default().delay(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    let unknown = t
        .store()
        .enqueue_task(&new_task("shop.not_in_this_binary", 1))
        .await
        .unwrap();
    let unreadable = t
        .store()
        .enqueue_task(&NewTask::new("shop.works", r#"{"n":"not a number"}"#))
        .await
        .unwrap();
    let runs = t.run_tasks().await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(runs.iter().all(|r| r.status == "dead" && r.attempt == 1));
    let by_id = |id| runs.iter().find(|r| r.id == id).unwrap();
    assert!(
        by_id(unknown).error[0].contains("unknown to this worker"),
        "{runs:?}"
    );
    assert!(
        by_id(unreadable).error[0].contains("not a valid"),
        "{runs:?}"
    );
    let waiting = t.store().get_task(delayed).await.unwrap().unwrap();
    assert_eq!((waiting.state, waiting.attempts), (TaskState::Queued, 0));
}

#[tokio::test]
async fn enqueue_errors_say_what_to_fix() {
    static UNDECLARED: Task<Job> = Task::new("shop.undeclared", "Declared by no extension.");
    #[derive(Debug, Serialize, Deserialize, JsonSchema)]
    pub struct Other {
        pub x: String,
    }
    static WRONG_TYPE: Task<Other> = Task::new("shop.works", "Same name, other payload.");

    let t = TestCoordinator::builder()
        .extension(flaky())
        .with_store(coordinator_sqlite::testing::temporary())
        .build();
    let e = t
        .context()
        .enqueue(&UNDECLARED, Job { n: 1 })
        .await
        .unwrap_err();
    assert!(matches!(e, EnqueueError::NotDeclared { .. }), "{e:?}");
    assert!(e.to_string().contains("ExtensionBuilder::task"), "{e}");
    let e = t
        .context()
        .enqueue(&WRONG_TYPE, Other { x: "a".into() })
        .await
        .unwrap_err();
    assert!(matches!(e, EnqueueError::PayloadMismatch { .. }), "{e:?}");
    assert!(e.to_string().contains("tasks::Job"), "{e}");

    let no_store = TestCoordinator::builder().extension(flaky()).build();
    let e = no_store
        .context()
        .enqueue(&WORKS, Job { n: 1 })
        .await
        .unwrap_err();
    assert!(matches!(e, EnqueueError::NoStore { .. }), "{e:?}");
    assert!(e.to_string().contains("CoordinatorBuilder::store"), "{e}");
}

#[tokio::test]
async fn configuration_overrides_the_queue_and_attempts_recorded_at_enqueue() {
    let t = TestCoordinator::builder()
        .extension(flaky())
        .wiring(
            r#"
            [tasks."shop.works"]
            queue = "bulk"
            max_attempts = 9
            "#,
        )
        .with_store(coordinator_sqlite::testing::temporary())
        .build();
    let id = t.context().enqueue(&WORKS, Job { n: 1 }).await.unwrap();
    let stored = t.store().get_task(id).await.unwrap().unwrap();
    assert_eq!((stored.queue.as_str(), stored.max_attempts), ("bulk", 9));
    assert_eq!(
        stored.origin_dispatch, None,
        "enqueued outside any dispatch"
    );
}
