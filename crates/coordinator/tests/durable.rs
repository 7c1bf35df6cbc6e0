//! Durable signals, on SQLite and PostgreSQL: the dispatch and one delivery per handler stored
//! atomically (with the sender's own writes when sent in a transaction), each delivery run from
//! storage by the workers and retried on its own.

#[macro_use]
mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coordinator::config::{ConfigDuration, WorkerConfig};
use coordinator::dispatch_log::{DispatchStatus, DurableDispatch, StoredDispatch};
use coordinator::prelude::*;
use coordinator::store::Store;
use coordinator::task::{NewTask, TaskState};
use coordinator::{Config, Coordinator, Outcome, SendError, Worker};
use support::TestDb;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Paid {
    pub order: String,
    pub email: Personal<String>,
}

static PAID: Signal<Paid> = Signal::new("shop.paid", "An order was paid.");
static REFUNDED: Signal<Paid> = Signal::new("shop.refunded", "An order was refunded.");

/// How often each handler ran, by handler and order.
#[derive(Clone, Default)]
struct Runs(Arc<Mutex<HashMap<(&'static str, String), u32>>>);

impl Runs {
    fn ran(&self, handler: &'static str, order: &str) -> u32 {
        let mut runs = self.0.lock().unwrap();
        let n = runs.entry((handler, order.to_owned())).or_default();
        *n += 1;
        *n
    }

    fn count(&self, handler: &'static str, order: &str) -> u32 {
        self.0
            .lock()
            .unwrap()
            .get(&(handler, order.to_owned()))
            .copied()
            .unwrap_or(0)
    }
}

/// `shop.ship` succeeds; `shop.notify_crm` fails on its first two runs of each order, then
/// succeeds; `shop.audit` always fails.
fn shop(runs: Runs) -> impl Extension {
    coordinator::testing::extension("shop", move |ext| {
        let (ship, crm, audit) = (runs.clone(), runs.clone(), runs.clone());
        ext.signal(&PAID)
            .signal(&REFUNDED)
            .handler("shop.ship", "Ships the order.", move |e: Event<Paid>| {
                let runs = ship.clone();
                async move {
                    runs.ran("shop.ship", &e.order);
                    Ok::<_, HandlerError>(format!("shipped {}", e.order))
                }
            })
            .handler(
                "shop.notify_crm",
                "Tells the CRM.",
                move |e: Event<Paid>| {
                    let runs = crm.clone();
                    async move {
                        if runs.ran("shop.notify_crm", &e.order) <= 2 {
                            return Err(HandlerError::msg("CRM unreachable"));
                        }
                        Ok(format!(
                            "told the CRM about {} for {}",
                            e.order,
                            e.email.expose()
                        ))
                    }
                },
            )
            .handler("shop.audit", "Audits it.", move |e: Event<Paid>| {
                let runs = audit.clone();
                async move {
                    runs.ran("shop.audit", &e.order);
                    Err::<(), _>(HandlerError::msg("audit trail is full"))
                }
            });
    })
}

const WIRING: &str = r#"
[signals."shop.paid"]
durable = true
handlers = ["shop.ship", "shop.notify_crm"]

[signals]
"shop.refunded" = ["shop.ship"]

[handlers."shop.notify_crm"]
max_attempts = 4
initial_backoff = "10ms"
max_backoff = "20ms"
queue = "crm"
"#;

fn build(store: &Store, runs: &Runs, wiring: &str) -> Coordinator {
    Coordinator::builder()
        .extension(shop(runs.clone()))
        .config(Config::from_toml(wiring).unwrap())
        .store(store.clone())
        .build()
        .unwrap()
}

fn paid(order: &str) -> Paid {
    Paid {
        order: order.to_owned(),
        email: Personal::new("ada@example.com".to_owned()),
    }
}

fn worker(coordinator: &Coordinator) -> Worker {
    Worker::new(
        coordinator.clone(),
        WorkerConfig {
            concurrency: 4,
            poll_interval: ConfigDuration(Duration::from_millis(10)),
            ..WorkerConfig::default()
        },
    )
}

/// Polls until `done` holds, or fails after 10 s.
async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn task_id(run: &coordinator::HandlerRun) -> Uuid {
    match run.outcome {
        Outcome::Queued { task_id } => task_id,
        ref other => panic!("{} was not queued: {other:?}", run.handler),
    }
}

// ---------------------------------------------------------------------------------------------

async fn each_delivery_runs_from_storage_and_a_failing_one_is_retried_alone(db: &TestDb) {
    let store = db.migrated().await;
    let runs = Runs::default();
    let coordinator = build(store, &runs, WIRING);
    let ctx = coordinator.context("shop");
    assert!(ctx.is_durable(&PAID));
    assert!(!ctx.is_durable(&REFUNDED));

    let report = ctx.send_robust(&PAID, paid("EDX-1")).await;
    assert!(report.is_stored(), "{report:?}");
    assert!(report.accepted().is_ok());
    assert_eq!(
        runs.count("shop.ship", "EDX-1"),
        0,
        "no handler runs while it is sent"
    );

    // The dispatch is in the log at once, with each delivery's task.
    let stored = store
        .get_dispatch(report.id)
        .await
        .unwrap()
        .expect("logged");
    assert_eq!(stored.status, DispatchStatus::Ok);
    let ship_task = task_id(&report.handlers[0]);
    let crm_task = task_id(&report.handlers[1]);
    assert_eq!(stored.handlers[0].task_id, Some(ship_task));
    assert_eq!(stored.handlers[1].status, "queued");
    let crm = store.get_task(crm_task).await.unwrap().unwrap();
    assert_eq!(
        (crm.task.as_str(), crm.queue.as_str(), crm.max_attempts),
        ("deliver:shop.notify_crm", "crm", 4)
    );
    assert_eq!(crm.origin_dispatch, Some(report.id));
    // Its payload is the event, personal data redacted when shown.
    let shown = coordinator.redact_task_payload(&crm);
    assert_eq!(shown["signal"], "shop.paid");
    assert_eq!(shown["payload"]["email"], "[redacted]");
    assert_eq!(shown["dispatch_id"], report.id.to_string());

    let running = worker(&coordinator);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(running.run(async move {
        let _ = stopped.await;
    }));
    eventually(
        "the CRM delivery succeeds on its third attempt",
        async || store.get_task(crm_task).await.unwrap().unwrap().state == TaskState::Succeeded,
    )
    .await;
    let _ = stop.send(());
    handle.await.unwrap();

    assert_eq!(runs.count("shop.notify_crm", "EDX-1"), 3);
    assert_eq!(
        runs.count("shop.ship", "EDX-1"),
        1,
        "the handler that succeeded is not run again"
    );
    let crm = store.get_task(crm_task).await.unwrap().unwrap();
    assert_eq!(crm.attempts, 3);
    assert_eq!(
        crm.result.as_deref(),
        Some("told the CRM about EDX-1 for ada@example.com"),
        "the handler got the whole payload back, personal data included"
    );
    let ship = store.get_task(ship_task).await.unwrap().unwrap();
    assert_eq!((ship.state, ship.attempts), (TaskState::Succeeded, 1));
    assert_eq!(ship.result.as_deref(), Some("shipped EDX-1"));
}

async fn sent_in_a_transaction_it_is_stored_only_if_the_transaction_commits(db: &TestDb) {
    let store = db.migrated().await;
    let runs = Runs::default();
    let coordinator = build(store, &runs, WIRING);
    let ctx = coordinator.context("shop");

    // Rolled back: neither the inbox entry, nor the dispatch, nor any delivery.
    let mut tx = store.begin().await.unwrap();
    assert!(tx.record_intake("psp", "evt_1").await.unwrap());
    let report = ctx.send_in(&mut tx, &PAID, paid("EDX-2")).await.unwrap();
    tx.rollback().await.unwrap();
    assert!(store.get_dispatch(report.id).await.unwrap().is_none());
    for run in &report.handlers {
        assert!(store.get_task(task_id(run)).await.unwrap().is_none());
    }

    // Committed: all of it, and the inbox remembers the event.
    let mut tx = store.begin().await.unwrap();
    assert!(tx.record_intake("psp", "evt_1").await.unwrap());
    let report = ctx.send_in(&mut tx, &PAID, paid("EDX-2")).await.unwrap();
    tx.commit().await.unwrap();
    assert!(store.get_dispatch(report.id).await.unwrap().is_some());
    for run in &report.handlers {
        assert!(store.get_task(task_id(run)).await.unwrap().is_some());
    }
    let mut tx = store.begin().await.unwrap();
    assert!(!tx.record_intake("psp", "evt_1").await.unwrap());
    tx.rollback().await.unwrap();

    // A signal that is not durable cannot be sent in a transaction: its handlers would run
    // before the commit.
    let mut tx = store.begin().await.unwrap();
    let e = ctx
        .send_in(&mut tx, &REFUNDED, paid("EDX-2"))
        .await
        .unwrap_err();
    assert!(matches!(e, SendError::NotDurable { .. }), "{e:?}");
    assert!(e.to_string().contains("durable = true"), "{e}");
    tx.rollback().await.unwrap();
}

async fn a_durable_dispatch_is_stored_whole_or_not_at_all(db: &TestDb) {
    let store = db.migrated().await;
    let dispatch_id = coordinator::id::new_id().0;
    let dispatch = StoredDispatch {
        id: dispatch_id,
        signal: "shop.paid".into(),
        sender: "extension:shop".into(),
        sent_at_ms: 1,
        status: DispatchStatus::Ok,
        handlers: Vec::new(),
    };
    let delivery = coordinator::id::new_id().0;
    let task = || NewTask::new("deliver:shop.ship", "{}");
    // Two deliveries with one id: the second insert fails, and nothing of it stays.
    let broken = DurableDispatch {
        dispatch: dispatch.clone(),
        deliveries: vec![(delivery, task()), (delivery, task())],
        intake: Some(("psp".into(), "evt_whole".into())),
    };
    assert!(store.enqueue_dispatch(&broken).await.is_err());
    assert!(store.get_dispatch(dispatch_id).await.unwrap().is_none());
    assert!(store.get_task(delivery).await.unwrap().is_none());

    // The intake key was rolled back with the rest: the same event is stored now.
    let whole = DurableDispatch {
        dispatch,
        deliveries: vec![(delivery, task())],
        intake: Some(("psp".into(), "evt_whole".into())),
    };
    assert!(store.enqueue_dispatch(&whole).await.unwrap());
    // And not twice.
    assert!(!store.enqueue_dispatch(&whole).await.unwrap());
    assert!(store.get_dispatch(dispatch_id).await.unwrap().is_some());
    assert_eq!(
        store.get_task(delivery).await.unwrap().unwrap().task,
        "deliver:shop.ship"
    );
}

async fn concurrent_durable_sends_are_each_stored_with_their_deliveries(db: &TestDb) {
    let store = db.migrated().await;
    let runs = Runs::default();
    let coordinator = build(store, &runs, WIRING);
    let sends = (0..50).map(|i| {
        let ctx = coordinator.context("shop");
        tokio::spawn(async move { ctx.send_robust(&PAID, paid(&format!("EDX-C{i}"))).await })
    });
    let mut ids = Vec::new();
    for send in sends {
        let report = send.await.unwrap();
        assert!(report.is_stored(), "{report:?}");
        ids.push(report);
    }
    for report in &ids {
        assert!(store.get_dispatch(report.id).await.unwrap().is_some());
        for run in &report.handlers {
            assert!(store.get_task(task_id(run)).await.unwrap().is_some());
        }
    }
}

async fn sent_once_per_event_however_often_and_concurrently_it_is_sent(db: &TestDb) {
    let store = db.migrated().await;
    let runs = Runs::default();
    let coordinator = build(store, &runs, WIRING);
    // 40 concurrent sends of 10 events: each event stored once, with its deliveries.
    let sends = (0..40).map(|i| {
        let ctx = coordinator.context("shop");
        tokio::spawn(async move {
            let order = format!("EDX-O{}", i % 10);
            ctx.send_once("psp", &order, &PAID, paid(&order)).await
        })
    });
    let mut stored = Vec::new();
    for send in sends {
        if let Some(report) = send.await.unwrap().unwrap() {
            assert!(report.is_stored(), "{report:?}");
            stored.push(report);
        }
    }
    assert_eq!(stored.len(), 10, "one dispatch per event");
    for report in &stored {
        assert!(store.get_dispatch(report.id).await.unwrap().is_some());
        for run in &report.handlers {
            assert!(store.get_task(task_id(run)).await.unwrap().is_some());
        }
    }
    let page = store
        .list_tasks(&coordinator::task::TaskQuery {
            task: Some("deliver:shop.ship".into()),
            limit: 500,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.items.len(), 10, "no delivery stored twice");
    // An event id that cannot be a key is refused before anything is stored.
    let ctx = coordinator.context("shop");
    let e = ctx
        .send_once("psp", "evt\u{0}", &PAID, paid("EDX-X"))
        .await
        .unwrap_err();
    assert!(matches!(e, SendError::InvalidKey { .. }), "{e:?}");
}

on_each_backend!(
    multi_thread:
    sent_once_per_event_however_often_and_concurrently_it_is_sent,
    each_delivery_runs_from_storage_and_a_failing_one_is_retried_alone,
    sent_in_a_transaction_it_is_stored_only_if_the_transaction_commits,
    a_durable_dispatch_is_stored_whole_or_not_at_all,
    concurrent_durable_sends_are_each_stored_with_their_deliveries,
);

// ---------------------------------------------------------------------------------------------
// Without a database

#[tokio::test]
async fn a_durable_signal_without_a_store_reports_every_delivery_as_not_stored() {
    let runs = Runs::default();
    let coordinator = Coordinator::builder()
        .extension(shop(runs.clone()))
        .config(Config::from_toml(WIRING).unwrap())
        .build()
        .unwrap();
    let report = coordinator
        .context("shop")
        .send_robust(&PAID, paid("EDX-3"))
        .await;
    assert!(!report.is_stored());
    let e = report.accepted().unwrap_err();
    assert_eq!(e.handler, "shop.ship");
    assert_eq!(e.failed, 2);
    assert!(e.to_string().contains("send the request again"), "{e}");
    match &report.handlers[0].outcome {
        Outcome::Error { chain } => {
            assert_eq!(chain[0], "its delivery could not be stored");
            assert!(chain[1].contains("no store"), "{chain:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(runs.count("shop.ship", "EDX-3"), 0);
}

#[test]
fn delivery_settings_are_validated_and_unused_ones_warned_about() {
    let runs = Runs::default();
    let validate = |wiring: &str| {
        coordinator::testing::TestCoordinator::builder()
            .extension(shop(runs.clone()))
            .wiring(wiring)
            .validate()
    };
    let v = validate(
        "[signals.\"shop.paid\"]\ndurable = true\nhandlers = [\"shop.ship\"]\n\
         [handlers.\"shop.ship\"]\nmax_attempts = 0\nqueue = \"Bad Queue\"\n",
    );
    let text = v.to_string();
    assert!(
        text.contains("[handlers.\"shop.ship\"]: max_attempts is 0"),
        "{text}"
    );
    assert!(
        text.contains("queue \"Bad Queue\" is not a snake_case name"),
        "{text}"
    );
    let v = validate(
        "[signals]\n\"shop.paid\" = [\"shop.ship\"]\n[handlers.\"shop.ship\"]\nmax_attempts = 3\n",
    );
    assert!(v.is_valid(), "{v}");
    assert!(
        v.to_string()
            .contains("apply only to deliveries of durable signals"),
        "{v}"
    );
}

#[test]
fn the_catalog_shows_durable_signals_and_how_their_deliveries_run() {
    let runs = Runs::default();
    let coordinator = Coordinator::builder()
        .extension(shop(runs))
        .config(Config::from_toml(WIRING).unwrap())
        .build()
        .unwrap();
    let catalog = coordinator.catalog();
    let paid = catalog
        .signals
        .iter()
        .find(|s| s.name == "shop.paid")
        .unwrap();
    assert!(paid.durable);
    let crm = catalog
        .handlers
        .iter()
        .find(|h| h.name == "shop.notify_crm")
        .unwrap();
    let delivery = crm.delivery.as_ref().expect("a delivery entry");
    assert_eq!(
        (
            delivery.task.as_str(),
            delivery.queue.as_str(),
            delivery.max_attempts
        ),
        ("deliver:shop.notify_crm", "crm", 4)
    );
    assert!(
        catalog
            .signals_table()
            .contains("shop.ship, shop.notify_crm (durable)")
    );
}
