//! Robust dispatch: every connected handler runs whatever the others do, and every outcome is
//! recorded in the report and the log, without personal data.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coordinator::prelude::*;
use coordinator::testing::{TestCoordinator, extension};
use proptest::prelude::*;

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct OrderPlaced {
    pub order_number: String,
    pub email: Personal<String>,
}

static ORDER_PLACED: Signal<OrderPlaced> = Signal::new("shop.order_placed", "An order was placed.");
static UNDECLARED: Signal<OrderPlaced> = Signal::new("shop.order_lost", "Never declared.");

fn order() -> OrderPlaced {
    OrderPlaced {
        order_number: "EDX-1".into(),
        email: Personal::new("ada@example.com".into()),
    }
}

/// What a generated handler does.
#[derive(Clone, Copy, Debug)]
enum Behaviour {
    Succeed,
    Fail,
    Panic,
    /// Sleeps past its timeout.
    Hang,
    /// Sleeps, but finishes within its timeout.
    Slow,
}

const NAMES: [&str; 8] = [
    "shop.h0", "shop.h1", "shop.h2", "shop.h3", "shop.h4", "shop.h5", "shop.h6", "shop.h7",
];

fn behaviour() -> impl Strategy<Value = Behaviour> {
    prop_oneof![
        Just(Behaviour::Succeed),
        Just(Behaviour::Fail),
        Just(Behaviour::Panic),
        Just(Behaviour::Hang),
        Just(Behaviour::Slow),
    ]
}

fn run_mix(behaviours: &[Behaviour], own_timeouts: &[bool]) {
    let ran: Arc<Vec<AtomicUsize>> = Arc::new(NAMES.iter().map(|_| AtomicUsize::new(0)).collect());
    let plan: Vec<Behaviour> = behaviours.to_vec();
    let counters = Arc::clone(&ran);
    let ext = extension("shop", move |ext| {
        ext.signal(&ORDER_PLACED);
        for (i, b) in plan.iter().copied().enumerate() {
            let counters = Arc::clone(&counters);
            ext.handler(NAMES[i], "generated", move |_: Event<OrderPlaced>| {
                counters[i].fetch_add(1, Ordering::SeqCst);
                async move {
                    match b {
                        Behaviour::Succeed => Ok(format!("task-{i}")),
                        Behaviour::Fail => Err(HandlerError::msg(format!("failure {i}"))),
                        Behaviour::Panic => panic!("panic {i}"),
                        Behaviour::Hang => {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            Ok("too late".into())
                        }
                        Behaviour::Slow => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Ok(format!("slow-{i}"))
                        }
                    }
                }
            });
        }
    });
    let names: Vec<String> = NAMES[..behaviours.len()]
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect();
    let mut wiring = format!(
        "[timeouts]\nhandler = \"1s\"\n[signals]\n\"shop.order_placed\" = [{}]\n",
        names.join(", ")
    );
    for (i, own) in own_timeouts.iter().take(behaviours.len()).enumerate() {
        if *own {
            wiring.push_str(&format!(
                "[handlers.\"{}\"]\ntimeout = \"200ms\"\n",
                NAMES[i]
            ));
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let report = rt.block_on(async {
        let t = TestCoordinator::builder()
            .extension(ext)
            .wiring(&wiring)
            .build();
        t.send(&ORDER_PLACED, order()).await
    });

    assert_eq!(
        report.handlers.len(),
        behaviours.len(),
        "one outcome per handler: {report:?}"
    );
    for (i, (b, run)) in behaviours.iter().zip(&report.handlers).enumerate() {
        assert_eq!(run.handler, NAMES[i], "outcomes are in configuration order");
        assert_eq!(
            ran[i].load(Ordering::SeqCst),
            1,
            "{} ran exactly once",
            NAMES[i]
        );
        let timeout_ms = if own_timeouts.get(i).copied().unwrap_or(false) {
            200
        } else {
            1000
        };
        let expected = match b {
            Behaviour::Succeed => Outcome::Ok {
                result: Some(format!("task-{i}")),
            },
            Behaviour::Slow => Outcome::Ok {
                result: Some(format!("slow-{i}")),
            },
            Behaviour::Fail => Outcome::Error {
                chain: vec![format!("failure {i}")],
            },
            Behaviour::Hang => Outcome::TimedOut { timeout_ms },
            Behaviour::Panic => {
                let Outcome::Panicked { message, location } = &run.outcome else {
                    panic!("{} should have panicked: {run:?}", NAMES[i]);
                };
                assert_eq!(message, &format!("panic {i}"));
                assert!(location.as_deref().unwrap().contains("tests/dispatch.rs"));
                continue;
            }
        };
        assert_eq!(run.outcome, expected, "{}", NAMES[i]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn send_robust_runs_every_handler_and_records_every_outcome(
        behaviours in prop::collection::vec(behaviour(), 1..=8),
        own_timeouts in prop::collection::vec(any::<bool>(), 8),
    ) {
        run_mix(&behaviours, &own_timeouts);
    }
}

#[test]
fn one_of_each_outcome() {
    use Behaviour::*;
    run_mix(
        &[Succeed, Fail, Panic, Hang, Slow],
        &[false, false, false, true, false],
    );
}

#[tokio::test(start_paused = true)]
async fn handlers_run_concurrently() {
    let ext = extension("shop", |ext| {
        ext.signal(&ORDER_PLACED);
        for name in ["shop.a", "shop.b", "shop.c"] {
            ext.handler(name, "sleeps", |_: Event<OrderPlaced>| async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok::<_, HandlerError>(())
            });
        }
    });
    let t = TestCoordinator::builder()
        .extension(ext)
        .wiring("[signals]\n\"shop.order_placed\" = [\"shop.a\", \"shop.b\", \"shop.c\"]")
        .build();
    let started = tokio::time::Instant::now();
    let report = t.send(&ORDER_PLACED, order()).await;
    assert!(report.all_ok());
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(100),
        "three 100 ms handlers took 100 ms, not 300"
    );
}

#[tokio::test]
async fn the_sender_is_known_without_the_caller_spelling_it() {
    static FOLLOW_UP: Signal<OrderPlaced> = Signal::new("shop.order_confirmed", "Follow-up.");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = Arc::clone(&seen);
    let ext = extension("shop", move |ext| {
        let seen = Arc::clone(&seen2);
        ext.signal(&ORDER_PLACED)
            .signal(&FOLLOW_UP)
            .handler(
                "shop.confirm",
                "Sends a follow-up.",
                |e: Event<OrderPlaced>| async move {
                    let r = e
                        .context()
                        .send_robust(&FOLLOW_UP, e.payload().clone())
                        .await;
                    Ok::<_, HandlerError>(r.id)
                },
            )
            .handler(
                "shop.record_sender",
                "Records the sender.",
                move |e: Event<OrderPlaced>| {
                    seen.lock().unwrap().push((e.signal(), e.sender()));
                    async { Ok::<_, HandlerError>(()) }
                },
            );
    });
    let t = TestCoordinator::builder()
        .extension(ext)
        .wiring("[signals]\n\"shop.order_placed\" = [\"shop.confirm\", \"shop.record_sender\"]\n\"shop.order_confirmed\" = [\"shop.record_sender\"]")
        .build();
    let report = t.send(&ORDER_PLACED, order()).await;
    assert!(report.all_ok(), "{report:?}");
    assert_eq!(report.sender, Sender::Extension("testing"));
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_by_key(|(s, _)| *s);
    assert_eq!(
        seen,
        [
            ("shop.order_confirmed", Sender::Handler("shop.confirm")),
            ("shop.order_placed", Sender::Extension("testing")),
        ]
    );
}

#[tokio::test]
async fn an_undeclared_signal_runs_nothing_and_says_so() {
    let t = TestCoordinator::builder()
        .extension(extension("shop", |ext| {
            ext.signal(&ORDER_PLACED);
        }))
        .build();
    let report = t.send(&UNDECLARED, order()).await;
    assert!(report.handlers.is_empty());
    assert_eq!(report.signal, "shop.order_lost");
}

#[tokio::test]
async fn each_handler_is_timed_from_its_own_start() {
    let ext = extension("shop", |ext| {
        ext.signal(&ORDER_PLACED)
            .handler(
                "shop.slow",
                "Blocks for 30 ms.",
                |_: Event<OrderPlaced>| async {
                    std::thread::sleep(Duration::from_millis(30));
                    Ok::<_, HandlerError>(())
                },
            )
            .handler(
                "shop.fast",
                "Returns at once.",
                |_: Event<OrderPlaced>| async { Ok::<_, HandlerError>(()) },
            );
    });
    let t = TestCoordinator::builder()
        .extension(ext)
        .wiring("[signals]\n\"shop.order_placed\" = [\"shop.slow\", \"shop.fast\"]")
        .build();
    let report = t.send(&ORDER_PLACED, order()).await;
    let slow = report.run("shop.slow").unwrap().duration;
    let fast = report.run("shop.fast").unwrap().duration;
    assert!(slow >= Duration::from_millis(30), "{slow:?}");
    assert!(
        fast < Duration::from_millis(10),
        "the fast handler's time excludes the slow one's: {fast:?}"
    );
}
