//! Logging of dispatches: every outcome is logged, personal data never is.
//!
//! This test has a binary of its own: `tracing` caches per call site whether anyone listens, and
//! tests running alongside on other threads without a subscriber would make that cache race with
//! the subscriber installed here.

mod support;
use support::Captured;

use coordinator::prelude::*;
use coordinator::testing::{TestCoordinator, extension};

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct OrderPlaced {
    pub order_number: String,
    pub email: Personal<String>,
}

static ORDER_PLACED: Signal<OrderPlaced> = Signal::new("shop.order_placed", "An order was placed.");

fn order() -> OrderPlaced {
    OrderPlaced {
        order_number: "EDX-1".into(),
        email: Personal::new("ada@example.com".into()),
    }
}

#[test]
fn logs_record_every_outcome_and_never_personal_data() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(captured.clone())
        .with_ansi(false)
        .finish();
    let ext = extension("shop", |ext| {
        ext.signal(&ORDER_PLACED)
            .handler("shop.ok", "ok", |e: Event<OrderPlaced>| async move {
                // A handler can read the personal data it needs.
                assert_eq!(e.email.expose(), "ada@example.com");
                Ok::<_, HandlerError>("enrolled")
            })
            .handler("shop.fails", "fails", |_: Event<OrderPlaced>| async {
                Err::<(), _>(HandlerError::msg("CRM down"))
            })
            .handler("shop.panics", "panics", |_: Event<OrderPlaced>| async {
                if true {
                    panic!("bug");
                }
                Ok::<(), HandlerError>(())
            });
    });
    let report = tracing::subscriber::with_default(subscriber, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let t = TestCoordinator::builder()
                    .extension(ext)
                    .wiring("[signals]\n\"shop.order_placed\" = [\"shop.ok\", \"shop.fails\", \"shop.panics\"]")
                    .build();
                t.send(&ORDER_PLACED, order()).await
            })
    });
    let logs = captured.text();
    assert!(
        !logs.contains("ada@example.com"),
        "personal data leaked into the log:\n{logs}"
    );
    assert!(
        !serde_json::to_string(&report)
            .unwrap()
            .contains("ada@example.com")
    );
    assert!(
        logs.contains("[redacted]"),
        "the payload is logged, redacted:\n{logs}"
    );
    assert!(
        logs.contains("EDX-1"),
        "non-personal fields are logged:\n{logs}"
    );
    assert!(logs.contains("handler succeeded"), "{logs}");
    let failed = logs
        .lines()
        .find(|l| l.contains("handler failed"))
        .expect("failure logged");
    assert!(
        failed.contains("ERROR")
            && failed.contains("CRM down")
            && failed.contains(&report.id.to_string()),
        "{failed}"
    );
    let panicked = logs
        .lines()
        .find(|l| l.contains("handler panicked"))
        .expect("panic logged");
    assert!(
        panicked.contains("ERROR")
            && panicked.contains("bug")
            && panicked.contains("tests/logging.rs"),
        "{panicked}"
    );
    assert!(
        logs.contains("dispatch{"),
        "the dispatch span is present:\n{logs}"
    );
}
