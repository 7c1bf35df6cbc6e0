//! The storage suite: the same tests against SQLite (a file in a temporary folder) and
//! PostgreSQL (a fresh schema in the machine's server per test).
//!
//! PostgreSQL is found at `COORDINATOR_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). When it cannot be reached its tests are skipped
//! with a note, unless `COORDINATOR_REQUIRE_POSTGRES=1`, which makes them fail instead.

#[macro_use]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use coordinator::config::{ConfigDuration, DispatchLogConfig};
use coordinator::dispatch_log::dispatch_log;
use coordinator::dispatch_log::{DispatchQuery, DispatchStatus, StoredDispatch, StoredHandlerRun};
use coordinator::migration::Migration;
use coordinator::prelude::*;
use coordinator::store::{Store, StoreError};
use coordinator::{Config, Coordinator, DispatchLog, DispatchObserver};
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

/// A UUIDv7 for `ms`, distinct from every other one made here.
fn id_at(ms: u64) -> Uuid {
    static SEQ: AtomicU64 = AtomicU64::new(1);
    let mut random = [0u8; 10];
    random[2..].copy_from_slice(&SEQ.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    uuid::Builder::from_unix_timestamp_millis(ms, &random).into_uuid()
}

/// A stored dispatch sent at `ms`, with one run per `(handler, status)`.
fn dispatch(ms: u64, signal: &str, runs: &[(&str, &str)]) -> StoredDispatch {
    let handlers: Vec<StoredHandlerRun> = runs
        .iter()
        .map(|(handler, status)| StoredHandlerRun {
            handler: (*handler).to_owned(),
            status: (*status).to_owned(),
            duration_us: 12,
            result: (*status == "ok").then(|| "task-1".to_owned()),
            error_chain: if *status == "error" {
                vec!["LMS down".to_owned(), "connection refused".to_owned()]
            } else {
                Vec::new()
            },
            panic_message: (*status == "panicked").then(|| "boom".to_owned()),
            panic_location: (*status == "panicked").then(|| "src/h.rs:1:1".to_owned()),
            timeout_ms: (*status == "timed_out").then_some(5000),
            task_id: None,
        })
        .collect();
    StoredDispatch {
        id: id_at(ms),
        signal: signal.to_owned(),
        sender: "extension:shop".to_owned(),
        sent_at_ms: ms,
        status: if handlers.iter().all(StoredHandlerRun::is_ok) {
            DispatchStatus::Ok
        } else {
            DispatchStatus::Failed
        },
        handlers,
    }
}

fn ext_migration(
    extension: &'static str,
    version: u32,
    name: &'static str,
    sql: &'static str,
) -> Migration {
    Migration {
        extension,
        ..Migration::portable(version, name, sql)
    }
}

fn names(applied: &[(String, u32)]) -> Vec<String> {
    applied.iter().map(|(e, v)| format!("{e}/{v}")).collect()
}

fn ids(items: &[StoredDispatch]) -> Vec<Uuid> {
    items.iter().map(|d| d.id).collect()
}

async fn list(store: &Store, query: DispatchQuery) -> Vec<StoredDispatch> {
    store.list_dispatches(&query).await.unwrap().items
}

// ---------------------------------------------------------------------------------------------
// Migrations

async fn migrations_apply_once_and_are_idempotent(db: &TestDb) {
    let demo = [ext_migration(
        "demo",
        1,
        "create_refunds",
        "CREATE TABLE demo_refunds (id TEXT PRIMARY KEY)",
    )];
    let pending = db.store.pending_migrations(&demo).await.unwrap();
    assert_eq!(
        names(
            &pending
                .iter()
                .map(|p| (p.extension.clone(), p.version))
                .collect::<Vec<_>>()
        ),
        [
            "coordinator/1",
            "coordinator/2",
            "coordinator/3",
            "coordinator/4",
            "coordinator/5",
            "demo/1"
        ]
    );

    let applied = db.store.migrate(&demo).await.unwrap();
    let applied: Vec<_> = applied
        .iter()
        .map(|a| (a.extension.clone(), a.version))
        .collect();
    assert_eq!(
        names(&applied),
        [
            "coordinator/1",
            "coordinator/2",
            "coordinator/3",
            "coordinator/4",
            "coordinator/5",
            "demo/1"
        ]
    );
    assert!(db.store.migrate(&demo).await.unwrap().is_empty());
    assert!(db.store.migrate(&[]).await.unwrap().is_empty());
    assert!(db.store.pending_migrations(&demo).await.unwrap().is_empty());

    // Another process sees the same state.
    let other = db.reopen().await;
    assert!(other.migrate(&demo).await.unwrap().is_empty());
    other.close().await;
}

async fn extension_migrations_run_after_the_frameworks(db: &TestDb) {
    // demo/1 reads the framework's table, so it fails if it runs first.
    let migrations = [
        ext_migration(
            "demo",
            2,
            "add_index",
            "CREATE INDEX demo_recent_idx ON demo_recent (id)",
        ),
        ext_migration(
            "demo",
            1,
            "create_recent",
            "CREATE TABLE demo_recent AS SELECT id FROM coordinator_dispatches",
        ),
        ext_migration("other", 1, "create_x", "CREATE TABLE other_x (id TEXT)"),
    ];
    let applied: Vec<_> = db
        .store
        .migrate(&migrations)
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.extension, a.version))
        .collect();
    assert_eq!(
        names(&applied),
        [
            "coordinator/1",
            "coordinator/2",
            "coordinator/3",
            "coordinator/4",
            "coordinator/5",
            "demo/1",
            "demo/2",
            "other/1"
        ]
    );

    // A new version of an extension is applied alone, later.
    let mut more = migrations.to_vec();
    more.push(ext_migration(
        "demo",
        3,
        "create_y",
        "CREATE TABLE demo_y (id TEXT)",
    ));
    let applied = db.store.migrate(&more).await.unwrap();
    assert_eq!(applied.len(), 1);
    assert_eq!(
        (
            applied[0].extension.as_str(),
            applied[0].version,
            applied[0].name.as_str()
        ),
        ("demo", 3, "create_y")
    );
}

async fn an_edited_migration_is_refused(db: &TestDb) {
    let v1 = ext_migration("demo", 1, "create_a", "CREATE TABLE demo_a (id TEXT)");
    db.store.migrate(std::slice::from_ref(&v1)).await.unwrap();

    let edited = ext_migration(
        "demo",
        1,
        "create_a",
        "CREATE TABLE demo_a (id TEXT, amount BIGINT)",
    );
    let v2 = ext_migration("demo", 2, "create_b", "CREATE TABLE demo_b (id TEXT)");
    let err = db
        .store
        .migrate(&[edited.clone(), v2.clone()])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::MigrationEdited { version: 1, .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.starts_with(
            "migration demo/1 was edited after it was applied; add a new version instead"
        ),
        "{message}"
    );
    // The dry run refuses too, and nothing of the refused run was applied.
    assert!(
        db.store
            .pending_migrations(&[edited, v2.clone()])
            .await
            .is_err()
    );
    let pending = db.store.pending_migrations(&[v1, v2]).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].extension.as_str(), pending[0].version),
        ("demo", 2)
    );
}

async fn a_failing_migration_is_rolled_back(db: &TestDb) {
    let broken = ext_migration(
        "demo",
        1,
        "create_a",
        "CREATE TABLE demo_a (id TEXT); CREATE TABLE demo_a (id TEXT)",
    );
    let err = db.store.migrate(&[broken]).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::MigrationFailed { extension, version: 1, .. } if extension == "demo"),
        "{err:?}"
    );
    assert!(err.to_string().contains("rolled back"), "{err}");
    // The framework's migration before it stays applied; demo/1 left nothing behind.
    let fixed = ext_migration("demo", 1, "create_a", "CREATE TABLE demo_a (id TEXT)");
    let applied = db.store.migrate(&[fixed]).await.unwrap();
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0].extension, "demo");
}

async fn concurrent_migrations_apply_each_version_once(db: &TestDb) {
    let migrations = [
        ext_migration("demo", 1, "create_a", "CREATE TABLE demo_a (id TEXT)"),
        ext_migration("demo", 2, "create_b", "CREATE TABLE demo_b (id TEXT)"),
    ];
    let (a, b, c) = (db.reopen().await, db.reopen().await, db.reopen().await);
    let (ra, rb, rc) = tokio::join!(
        a.migrate(&migrations),
        b.migrate(&migrations),
        c.migrate(&migrations)
    );
    let total = ra.unwrap().len() + rb.unwrap().len() + rc.unwrap().len();
    assert_eq!(
        total, 7,
        "coordinator/1 to 5, demo/1 and demo/2, each applied once"
    );
    assert!(
        db.store
            .pending_migrations(&migrations)
            .await
            .unwrap()
            .is_empty()
    );
    for s in [a, b, c] {
        s.close().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Dispatches

async fn inserted_dispatches_read_back_whole(db: &TestDb) {
    let store = db.migrated().await;
    let base = now_ms() - 60_000;
    let batch = vec![
        dispatch(base, "shop.order_placed", &[("shop.enroll", "ok")]),
        dispatch(
            base + 1,
            "shop.order_placed",
            &[
                ("shop.enroll", "error"),
                ("shop.receipt", "panicked"),
                ("shop.audit", "timed_out"),
            ],
        ),
        dispatch(base + 2, "shop.order_refunded", &[]),
    ];
    store.insert_dispatches(&batch).await.unwrap();
    store.insert_dispatches(&[]).await.unwrap();
    for d in &batch {
        assert_eq!(store.get_dispatch(d.id).await.unwrap().as_ref(), Some(d));
    }
    assert_eq!(store.get_dispatch(id_at(base)).await.unwrap(), None);

    // Writing a batch again (a retry after an unclear failure) changes nothing.
    store.insert_dispatches(&batch).await.unwrap();
    assert_eq!(list(store, DispatchQuery::default()).await.len(), 3);
    assert_eq!(
        list(
            store,
            DispatchQuery {
                handler: Some("shop.enroll".into()),
                ..Default::default()
            }
        )
        .await
        .len(),
        2
    );
    store.ping().await.unwrap();
}

async fn large_batches_are_split_into_several_inserts(db: &TestDb) {
    let store = db.migrated().await;
    let base = now_ms() - 3_600_000;
    let batch: Vec<_> = (0..2_500)
        .map(|i| {
            dispatch(
                base + i,
                "shop.order_placed",
                &[("shop.enroll", "ok"), ("shop.receipt", "ok")],
            )
        })
        .collect();
    store.insert_dispatches(&batch).await.unwrap();
    let page = store
        .list_dispatches(&DispatchQuery {
            handler: Some("shop.receipt".into()),
            limit: 500,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.items.len(), 500);
    assert_eq!(page.items[0].id, batch[2_499].id);
}

async fn list_filters_by_signal_handler_status_and_time(db: &TestDb) {
    let store = db.migrated().await;
    let base = now_ms() - 60_000;
    let placed_ok = dispatch(
        base,
        "shop.order_placed",
        &[("shop.enroll", "ok"), ("shop.receipt", "ok")],
    );
    let placed_failed = dispatch(
        base + 10,
        "shop.order_placed",
        &[("shop.enroll", "error"), ("shop.receipt", "ok")],
    );
    let refunded_failed = dispatch(
        base + 20,
        "shop.order_refunded",
        &[("shop.revoke", "ok"), ("shop.receipt", "timed_out")],
    );
    let refunded_ok = dispatch(base + 30, "shop.order_refunded", &[("shop.revoke", "ok")]);
    store
        .insert_dispatches(&[
            placed_ok.clone(),
            placed_failed.clone(),
            refunded_failed.clone(),
            refunded_ok.clone(),
        ])
        .await
        .unwrap();

    let q = |f: fn(&mut DispatchQuery)| {
        let mut q = DispatchQuery::default();
        f(&mut q);
        q
    };
    assert_eq!(
        ids(&list(store, q(|q| q.signal = Some("shop.order_placed".into()))).await),
        [placed_failed.id, placed_ok.id]
    );
    assert_eq!(
        ids(&list(store, q(|q| q.handler = Some("shop.revoke".into()))).await),
        [refunded_ok.id, refunded_failed.id]
    );
    assert_eq!(
        ids(&list(store, q(|q| q.status = Some(DispatchStatus::Failed))).await),
        [refunded_failed.id, placed_failed.id]
    );
    assert_eq!(
        ids(&list(store, q(|q| q.status = Some(DispatchStatus::Ok))).await),
        [refunded_ok.id, placed_ok.id]
    );
    assert_eq!(
        ids(&list(store, q(|q| q.since_ms = Some(0))).await).len(),
        4
    );
    let since = DispatchQuery {
        since_ms: Some(base + 20),
        ..Default::default()
    };
    assert_eq!(
        ids(&list(store, since).await),
        [refunded_ok.id, refunded_failed.id]
    );
    // With a handler, the status is that handler's: where shop.receipt did not succeed.
    let receipt_failed = DispatchQuery {
        handler: Some("shop.receipt".into()),
        status: Some(DispatchStatus::Failed),
        ..Default::default()
    };
    assert_eq!(
        ids(&list(store, receipt_failed).await),
        [refunded_failed.id]
    );
    let enroll_ok = DispatchQuery {
        handler: Some("shop.enroll".into()),
        status: Some(DispatchStatus::Ok),
        ..Default::default()
    };
    assert_eq!(ids(&list(store, enroll_ok).await), [placed_ok.id]);
    // Filters combine.
    let combined = DispatchQuery {
        signal: Some("shop.order_placed".into()),
        handler: Some("shop.receipt".into()),
        since_ms: Some(base + 5),
        ..Default::default()
    };
    assert_eq!(ids(&list(store, combined).await), [placed_failed.id]);
    let nothing = DispatchQuery {
        handler: Some("shop.unknown".into()),
        ..Default::default()
    };
    assert!(list(store, nothing).await.is_empty());
}

async fn pages_go_newest_first_through_before(db: &TestDb) {
    let store = db.migrated().await;
    let base = now_ms() - 60_000;
    let mut all: Vec<_> = (0..23)
        .map(|i| {
            let handler = if i % 2 == 0 { "shop.even" } else { "shop.odd" };
            dispatch(base + i * 7, "shop.order_placed", &[(handler, "ok")])
        })
        .collect();
    // Inserted out of order: the order comes from the ids, not from insertion.
    all.reverse();
    store.insert_dispatches(&all[10..]).await.unwrap();
    store.insert_dispatches(&all[..10]).await.unwrap();
    let mut expected = ids(&all);
    expected.sort_unstable_by(|a, b| b.cmp(a));

    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .list_dispatches(&DispatchQuery {
                before,
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        sizes.push(page.items.len());
        seen.extend(ids(&page.items));
        match page.next_before {
            Some(next) => {
                assert_eq!(Some(&next), seen.last(), "the cursor is the last id");
                before = Some(next);
            }
            None => break,
        }
    }
    assert_eq!(sizes, [10, 10, 3]);
    assert_eq!(seen, expected);

    // The same through the handler index: 12 even dispatches in pages of 5.
    let mut even = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .list_dispatches(&DispatchQuery {
                handler: Some("shop.even".into()),
                before,
                limit: 5,
                ..Default::default()
            })
            .await
            .unwrap();
        even.extend(ids(&page.items));
        match page.next_before {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    let expected_even: Vec<_> = expected
        .iter()
        .copied()
        .filter(|id| {
            all.iter()
                .any(|d| d.id == *id && d.handlers[0].handler == "shop.even")
        })
        .collect();
    assert_eq!(even.len(), 12);
    assert_eq!(even, expected_even);

    // A full last page points at a next page that is empty.
    let page = store
        .list_dispatches(&DispatchQuery {
            limit: 23,
            ..Default::default()
        })
        .await
        .unwrap();
    let last = store
        .list_dispatches(&DispatchQuery {
            before: page.next_before,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(last.items.is_empty() && last.next_before.is_none());
}

async fn purge_deletes_dispatches_older_than_the_cutoff(db: &TestDb) {
    let store = db.migrated().await;
    let now = now_ms();
    let old: Vec<_> = (0..5)
        .map(|i| {
            dispatch(
                now - 10 * 86_400_000 + i,
                "shop.order_placed",
                &[("shop.old", "error")],
            )
        })
        .collect();
    let new: Vec<_> = (0..3)
        .map(|i| dispatch(now - 1_000 + i, "shop.order_placed", &[("shop.new", "ok")]))
        .collect();
    store.insert_dispatches(&old).await.unwrap();
    store.insert_dispatches(&new).await.unwrap();

    let cutoff = now - 86_400_000;
    assert_eq!(store.purge_dispatches(cutoff).await.unwrap(), 5);
    assert_eq!(store.purge_dispatches(cutoff).await.unwrap(), 0);
    let left = list(store, DispatchQuery::default()).await;
    assert_eq!(left.len(), 3);
    assert!(left.iter().all(|d| d.sent_at_ms >= cutoff));
    assert!(store.get_dispatch(old[0].id).await.unwrap().is_none());
    let old_runs = DispatchQuery {
        handler: Some("shop.old".into()),
        ..Default::default()
    };
    assert!(list(store, old_runs).await.is_empty());
}

// ---------------------------------------------------------------------------------------------
// The dispatch log

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct OrderPlaced {
    pub n: u32,
}

static ORDER_PLACED: Signal<OrderPlaced> = Signal::new("shop.order_placed", "An order was placed.");

/// A coordinator with two handlers on `shop.order_placed`; `shop.audit` fails on odd orders.
fn shop(log: Arc<DispatchLog>) -> Coordinator {
    let ext = coordinator::testing::extension("shop", |ext| {
        ext.signal(&ORDER_PLACED)
            .handler(
                "shop.enroll",
                "Enrolls the learner.",
                |e: Event<OrderPlaced>| async move {
                    Ok::<_, HandlerError>(format!("enrolled {}", e.n))
                },
            )
            .handler(
                "shop.audit",
                "Audits the order.",
                |e: Event<OrderPlaced>| async move {
                    if e.n % 2 == 1 {
                        Err(HandlerError::msg(format!("order {} is odd", e.n)))
                    } else {
                        Ok(String::new())
                    }
                },
            );
    });
    let config = Config::from_toml(
        r#"
        [signals]
        "shop.order_placed" = ["shop.enroll", "shop.audit"]
        "#,
    )
    .unwrap();
    Coordinator::builder()
        .extension(ext)
        .config(config)
        .observe(log)
        .build()
        .unwrap()
}

fn log_config(buffer: usize, batch_size: usize, flush: Duration) -> DispatchLogConfig {
    DispatchLogConfig {
        enabled: true,
        buffer,
        batch_size,
        flush_interval: ConfigDuration(flush),
        retention: ConfigDuration(Duration::from_secs(86_400)),
    }
}

async fn reports_observed_through_the_dispatch_log_are_stored(db: &TestDb) {
    let store = db.migrated().await;
    let (log, writer) = dispatch_log(&log_config(100, 3, Duration::from_millis(20)));
    let stats = log.stats();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let writing = tokio::spawn(writer.run(store.clone(), async move {
        let _ = stopped.await;
    }));

    let coordinator = shop(log);
    let context = coordinator.context("shop");
    let mut sent = Vec::new();
    for n in 0..8 {
        sent.push(context.send_robust(&ORDER_PLACED, OrderPlaced { n }).await);
    }
    // Written while running, without waiting for shutdown.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while stats.written() < 8 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "written: {}",
            stats.written()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop.send(());
    writing.await.unwrap();

    for report in &sent {
        let stored = store.get_dispatch(report.id).await.unwrap().unwrap();
        assert_eq!(stored, StoredDispatch::from(report));
    }
    let failed = list(
        store,
        DispatchQuery {
            handler: Some("shop.audit".into()),
            status: Some(DispatchStatus::Failed),
            ..Default::default()
        },
    )
    .await;
    // Dispatches sent within one millisecond have no defined order among themselves.
    let mut chains: Vec<_> = failed
        .iter()
        .map(|d| d.handlers[1].error_chain.join(": "))
        .collect();
    chains.sort();
    assert_eq!(
        chains,
        [
            "order 1 is odd",
            "order 3 is odd",
            "order 5 is odd",
            "order 7 is odd"
        ]
    );
    assert_eq!(
        (stats.written(), stats.dropped(), stats.write_errors()),
        (8, 0, 0)
    );
    assert_eq!(stats.buffered(), 0);
}

async fn a_full_buffer_drops_reports_without_blocking_the_sender(db: &TestDb) {
    let store = db.migrated().await;
    let (log, writer) = dispatch_log(&log_config(8, 100, Duration::from_secs(3600)));
    let stats = log.stats();
    let coordinator = shop(Arc::clone(&log));
    let context = coordinator.context("shop");
    // No writer is running: the buffer fills after 8 reports, and sending goes on regardless.
    tokio::time::timeout(Duration::from_secs(10), async {
        for n in 0..20 {
            context.send_robust(&ORDER_PLACED, OrderPlaced { n }).await;
        }
    })
    .await
    .expect("sending never waits for the dispatch log");
    assert_eq!((stats.buffered(), stats.dropped()), (8, 12));

    writer.run(store.clone(), std::future::ready(())).await;
    assert_eq!((stats.written(), stats.buffered()), (8, 0));
    let stored = list(store, DispatchQuery::default()).await;
    assert_eq!(stored.len(), 8);

    // Once the writer has stopped, reports are dropped (and counted) too.
    log.dispatched(
        &context
            .send_robust(&ORDER_PLACED, OrderPlaced { n: 99 })
            .await,
    );
    assert_eq!(stats.dropped(), 14, "the send and the direct call");
}

async fn shutdown_flushes_everything_buffered(db: &TestDb) {
    let store = db.migrated().await;
    // A long flush interval and small batches: only the shutdown drain can write these in time.
    let (log, writer) = dispatch_log(&log_config(1_000, 7, Duration::from_secs(3600)));
    let stats = log.stats();
    let coordinator = shop(Arc::clone(&log));
    let context = coordinator.context("shop");
    let n = 250;
    for i in 0..n {
        context
            .send_robust(&ORDER_PLACED, OrderPlaced { n: i })
            .await;
    }
    assert_eq!(stats.buffered(), n as usize);
    // Shutdown is already requested when the writer starts.
    tokio::time::timeout(
        Duration::from_secs(30),
        writer.run(store.clone(), std::future::ready(())),
    )
    .await
    .expect("the writer returns after draining");
    assert_eq!(stats.written(), u64::from(n));
    assert_eq!(stats.dropped(), 0);
    let mut total = 0;
    let mut before = None;
    loop {
        let page = store
            .list_dispatches(&DispatchQuery {
                before,
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        total += page.items.len();
        match page.next_before {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    assert_eq!(total, n as usize);
}

async fn the_writer_purges_reports_past_the_retention(db: &TestDb) {
    let store = db.migrated().await;
    let now = now_ms();
    let old = dispatch(now - 2 * 86_400_000, "shop.order_placed", &[]);
    let recent = dispatch(now - 60_000, "shop.order_placed", &[]);
    store
        .insert_dispatches(&[old.clone(), recent.clone()])
        .await
        .unwrap();
    // Retention is one day.
    let (_log, writer) = dispatch_log(&log_config(10, 10, Duration::from_millis(10)));
    writer.run(store.clone(), std::future::ready(())).await;
    assert!(store.get_dispatch(old.id).await.unwrap().is_none());
    assert!(store.get_dispatch(recent.id).await.unwrap().is_some());
}

async fn failed_writes_are_retried_then_dropped_and_counted(db: &TestDb) {
    // A store of its own, closed: every write fails.
    let store = db.reopen().await;
    store.migrate(&[]).await.unwrap();
    store.close().await;
    let (log, writer) = dispatch_log(&log_config(10, 10, Duration::from_millis(10)));
    let stats = log.stats();
    for _ in 0..3 {
        let report = coordinator::DispatchReport {
            id: id_at(now_ms()),
            signal: "shop.order_placed",
            sender: coordinator::Sender::Extension("shop"),
            sent_at_ms: now_ms(),
            handlers: Vec::new(),
        };
        log.dispatched(&report);
    }
    tokio::time::timeout(
        Duration::from_secs(30),
        writer.run(store, std::future::ready(())),
    )
    .await
    .expect("the writer gives up after its retries");
    assert_eq!(stats.written(), 0);
    assert_eq!(stats.dropped(), 3);
    assert_eq!(
        stats.write_errors(),
        4,
        "the first attempt and three retries"
    );
}

// ---------------------------------------------------------------------------------------------
// Each test above, once per backend.

on_each_backend!(
    migrations_apply_once_and_are_idempotent,
    extension_migrations_run_after_the_frameworks,
    an_edited_migration_is_refused,
    a_failing_migration_is_rolled_back,
    concurrent_migrations_apply_each_version_once,
    inserted_dispatches_read_back_whole,
    large_batches_are_split_into_several_inserts,
    list_filters_by_signal_handler_status_and_time,
    pages_go_newest_first_through_before,
    purge_deletes_dispatches_older_than_the_cutoff,
    reports_observed_through_the_dispatch_log_are_stored,
    a_full_buffer_drops_reports_without_blocking_the_sender,
    shutdown_flushes_everything_buffered,
    the_writer_purges_reports_past_the_retention,
    failed_writes_are_retried_then_dropped_and_counted,
);

// ---------------------------------------------------------------------------------------------
// SQLite only: its one writer connection.

#[tokio::test]
async fn sqlite_a_write_waiting_behind_a_long_transaction_fails_with_a_clear_error() {
    let db = support::TestDb::sqlite().await;
    let store = db.migrated().await;
    let held = store.begin().await.unwrap();
    // Paused time: the 5 s wait passes as soon as nothing else can run.
    tokio::time::pause();
    let e = store
        .enqueue_task(&coordinator::task::NewTask::new("shop.refund", "{}"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::WriterBusy { .. }), "{e:?}");
    let message = e.to_string();
    assert!(
        message.contains("writer connection stayed busy for 5000 ms")
            && message.contains("keep transactions short"),
        "{message}"
    );
    tokio::time::resume();
    held.rollback().await.unwrap();
    // Once the transaction ends, writes go through again.
    store
        .enqueue_task(&coordinator::task::NewTask::new("shop.refund", "{}"))
        .await
        .unwrap();
    db.finish().await;
}
