//! Logging of task attempts: a retried failure is a WARN, a dead task an ERROR with the whole
//! chain, each attempt runs in a `task` span that names its origin dispatch, and personal data
//! in the payload is never logged.
//!
//! This test has a binary of its own, for the reason `logging.rs` gives.

mod support;
use support::Captured;

use std::time::Duration;

use coordinator::prelude::*;
use coordinator::task::RetryPolicy;
use coordinator::testing::{TestCoordinator, extension};

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct OrderPlaced {
    pub order_number: String,
    pub email: Personal<String>,
}

static ORDER_PLACED: Signal<OrderPlaced> = Signal::new("shop.order_placed", "An order was placed.");
static SEND_RECEIPT: Task<OrderPlaced> = Task::new("shop.send_receipt", "Emails the receipt.")
    .retry(RetryPolicy::exponential(2, Duration::ZERO, Duration::ZERO));

#[derive(Debug, thiserror::Error)]
#[error("the mail service refused the receipt")]
struct Refused(#[source] std::io::Error);

#[test]
fn retried_failures_warn_dead_tasks_error_and_personal_data_stays_out() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(captured.clone())
        .with_ansi(false)
        .finish();
    let ext = extension("shop", |ext| {
        ext.signal(&ORDER_PLACED)
            .handler(
                "shop.enqueue_receipt",
                "Enqueues the receipt.",
                |e: Event<OrderPlaced>| async move {
                    e.context()
                        .enqueue(&SEND_RECEIPT, e.payload().clone())
                        .await
                },
            )
            .task(
                &SEND_RECEIPT,
                |_: TaskContext, order: OrderPlaced| async move {
                    assert_eq!(order.email.expose(), "ada@example.com");
                    Err::<(), _>(Refused(std::io::Error::other("550 mailbox unavailable")))
                },
            );
    });
    let (report, runs) = tracing::subscriber::with_default(subscriber, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let t = TestCoordinator::builder()
                    .extension(ext)
                    .wiring("[signals]\n\"shop.order_placed\" = [\"shop.enqueue_receipt\"]")
                    .with_store(coordinator_sqlite::testing::temporary())
                    .build();
                let report = t
                    .send(
                        &ORDER_PLACED,
                        OrderPlaced {
                            order_number: "EDX-1".into(),
                            email: Personal::new("ada@example.com".into()),
                        },
                    )
                    .await;
                (report, t.run_tasks().await)
            })
    });
    let logs = captured.text();
    assert_eq!(
        runs.iter().map(|r| r.status).collect::<Vec<_>>(),
        ["retrying", "dead"]
    );
    let task_id = runs[0].id.to_string();
    assert!(
        !logs.contains("ada@example.com"),
        "personal data leaked into the log:\n{logs}"
    );
    let enqueued = logs
        .lines()
        .find(|l| l.contains("task enqueued"))
        .expect("the enqueue is logged");
    assert!(
        enqueued.contains(&task_id) && enqueued.contains(&report.id.to_string()),
        "with the task and its cause: {enqueued}"
    );
    let retried = logs
        .lines()
        .find(|l| l.contains("it will be retried"))
        .expect("the retried failure is logged");
    assert!(
        retried.contains("WARN")
            && retried.contains("the mail service refused the receipt: 550 mailbox unavailable"),
        "{retried}"
    );
    let span = format!(
        "task{{task=\"shop.send_receipt\" task_id={task_id} attempt=1 origin_dispatch={}}}",
        report.id
    );
    assert!(
        retried.contains(&span),
        "in the task's span {span}: {retried}"
    );
    let dead = logs
        .lines()
        .find(|l| l.contains("task is dead"))
        .expect("the dead task is logged");
    assert!(
        dead.contains("ERROR")
            && dead.contains("550 mailbox unavailable")
            && dead.contains("attempt=2"),
        "{dead}"
    );
}
