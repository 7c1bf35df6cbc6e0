//! Cost of one `send_robust` dispatch, set beside the Python peer
//! (`shared/peers/bench_django_signals.py`, scenarios `a_3recv_log_info` and `b_1recv_log_info`).
//!
//! One dispatch is `context.send_robust(&SIGNAL, payload).await`, payload built fresh each time,
//! on a current-thread tokio runtime. The handlers mirror the peer's receivers:
//!
//! - `bench.enqueue_fulfillment` returns a fake task id (a random UUID rendered as a `String`,
//!   like the peer's `str(uuid.uuid4())`);
//! - `bench.read_order` reads both payload fields and returns `"order {..} for user {..}"`;
//! - `bench.fail_order` returns `HandlerError::msg("simulated receiver failure")`.
//!
//! Groups:
//!
//! - `send_robust/{1_handler,3_handlers_1_fails}`: a global `tracing_subscriber::fmt` subscriber at
//!   INFO writes every line to a sink. Successful runs log at DEBUG, so only the failing
//!   handler's ERROR line is formatted and written.
//! - `send_robust_debug/...`: the same with a `fmt` subscriber at DEBUG (set with
//!   `tracing::subscriber::with_default`), so every span is built (the dispatch span serializes
//!   the payload) and every handler's line is formatted and written, as the peer writes one INFO
//!   line per receiver call. These groups run after the INFO ones.
//! - `send_robust_log_off/...`: the same with a subscriber at OFF: nothing is formatted or
//!   written, which isolates the framework's own cost (compare the peer's `d_*_log_disabled`).
//!
//! The sink counts the lines it is given (one relaxed atomic add per line), so that each bench
//! checks, before timing, both the report and the number of log lines one dispatch writes.

use std::hint::black_box;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use coordinator::prelude::*;
use coordinator::{Config, Coordinator};
use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use tracing::level_filters::LevelFilter;

/// The payload, with the peer's two keyword arguments.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct OrderCreated {
    /// The order number.
    pub order_number: String,
    /// The learner's LMS user id.
    pub edx_lms_user_id: u64,
}

fn payload() -> OrderCreated {
    OrderCreated {
        order_number: "EDX-100001".to_owned(),
        edx_lms_user_id: 12345,
    }
}

static ORDER_CREATED: Signal<OrderCreated> =
    Signal::new("bench.order_created", "Three handlers, one of which fails.");
static ORDER_CREATED_SINGLE: Signal<OrderCreated> =
    Signal::new("bench.order_created_single", "One handler, which succeeds.");

const WIRING: &str = r#"
[signals]
"bench.order_created" = ["bench.enqueue_fulfillment", "bench.read_order", "bench.fail_order"]
"bench.order_created_single" = ["bench.enqueue_fulfillment"]
"#;

thread_local! {
    static RNG: std::cell::Cell<u64> = const { std::cell::Cell::new(0x9E37_79B9_7F4A_7C15) };
}

/// 64 pseudo-random bits (splitmix64): a task id needs to look random, not to be secret.
fn next_u64() -> u64 {
    RNG.with(|s| {
        let x = s.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        s.set(x);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

/// Pretends to enqueue a background task and returns its id, as a Celery-enqueuing receiver does.
async fn enqueue_fulfillment(_event: Event<OrderCreated>) -> Result<String, HandlerError> {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&next_u64().to_le_bytes());
    bytes[8..].copy_from_slice(&next_u64().to_le_bytes());
    Ok(uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string())
}

/// Reads both payload fields.
async fn read_order(event: Event<OrderCreated>) -> Result<String, HandlerError> {
    Ok(format!(
        "order {} for user {}",
        event.order_number, event.edx_lms_user_id
    ))
}

/// Always fails.
async fn fail_order(_event: Event<OrderCreated>) -> Result<(), HandlerError> {
    Err(HandlerError::msg("simulated receiver failure"))
}

struct BenchExtension;

impl Extension for BenchExtension {
    fn name(&self) -> &'static str {
        "bench"
    }

    fn build(&self, ext: &mut ExtensionBuilder<'_>) {
        ext.signal(&ORDER_CREATED)
            .signal(&ORDER_CREATED_SINGLE)
            .handler(
                "bench.enqueue_fulfillment",
                "Returns a fake task id.",
                enqueue_fulfillment,
            )
            .handler("bench.read_order", "Reads the payload fields.", read_order)
            .handler(
                "bench.fail_order",
                "Always fails with an error.",
                fail_order,
            );
    }
}

/// Lines given to the sink (each formatted event is one `write`).
static LINES: AtomicU64 = AtomicU64::new(0);

/// `std::io::sink()`, counting the lines it swallows.
struct CountingSink(io::Sink);

impl io::Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        LINES.fetch_add(1, Ordering::Relaxed);
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

fn subscriber(level: LevelFilter) -> impl tracing::Subscriber + Send + Sync + 'static {
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(|| CountingSink(io::sink()))
        .finish()
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread tokio runtime")
}

fn coordinator() -> Coordinator {
    let config = Config::from_toml(WIRING).expect("the bench wiring parses");
    let coordinator = Coordinator::builder()
        .extension(BenchExtension)
        .config(config)
        .build()
        .unwrap_or_else(|e| panic!("the bench wiring is invalid: {e}"));
    assert!(
        coordinator.warnings().is_empty(),
        "unexpected wiring warnings: {:?}",
        coordinator.warnings()
    );
    coordinator
}

/// The two shapes, each with the log lines one dispatch writes at INFO and at DEBUG.
#[derive(Clone, Copy)]
enum Shape {
    OneHandler,
    ThreeHandlersOneFails,
}

impl Shape {
    fn id(self) -> &'static str {
        match self {
            Shape::OneHandler => "1_handler",
            Shape::ThreeHandlersOneFails => "3_handlers_1_fails",
        }
    }

    fn signal(self) -> &'static Signal<OrderCreated> {
        match self {
            Shape::OneHandler => &ORDER_CREATED_SINGLE,
            Shape::ThreeHandlersOneFails => &ORDER_CREATED,
        }
    }

    fn lines_per_dispatch(self, level: LevelFilter) -> u64 {
        let (ok_lines, error_lines) = match self {
            Shape::OneHandler => (1, 0),
            Shape::ThreeHandlersOneFails => (2, 1),
        };
        match level {
            LevelFilter::OFF => 0,
            LevelFilter::DEBUG | LevelFilter::TRACE => ok_lines + error_lines,
            _ => error_lines,
        }
    }

    /// Sends once and fails loudly unless the report and the log lines are the expected ones.
    fn check(self, rt: &Runtime, context: &coordinator::Context, level: LevelFilter) {
        let before = LINES.load(Ordering::Relaxed);
        let report = rt.block_on(context.send_robust(self.signal(), payload()));
        let lines = LINES.load(Ordering::Relaxed) - before;
        let task_id = match report.run("bench.enqueue_fulfillment").map(|r| &r.outcome) {
            Some(Outcome::Ok { result: Some(id) }) => id.clone(),
            other => panic!("enqueue_fulfillment: unexpected outcome {other:?}"),
        };
        uuid::Uuid::parse_str(&task_id).expect("the task id is a UUID");
        match self {
            Shape::OneHandler => {
                assert_eq!(report.handlers.len(), 1, "{report:?}");
                assert!(report.all_ok(), "{report:?}");
            }
            Shape::ThreeHandlersOneFails => {
                assert_eq!(report.handlers.len(), 3, "{report:?}");
                assert_eq!(
                    report.run("bench.read_order").map(|r| &r.outcome),
                    Some(&Outcome::Ok {
                        result: Some("order EDX-100001 for user 12345".to_owned())
                    }),
                    "{report:?}"
                );
                let failures: Vec<_> = report.failures().collect();
                assert_eq!(failures.len(), 1, "{report:?}");
                assert_eq!(failures[0].handler, "bench.fail_order");
                assert_eq!(
                    failures[0].outcome,
                    Outcome::Error {
                        chain: vec!["simulated receiver failure".to_owned()]
                    }
                );
            }
        }
        assert_eq!(
            lines,
            self.lines_per_dispatch(level),
            "log lines written by one {} dispatch at {level}",
            self.id()
        );
    }
}

fn bench_group(c: &mut Criterion, group: &str, level: LevelFilter) {
    let rt = runtime();
    let coordinator = coordinator();
    let context = coordinator.context("bench");
    let context = &context;
    let mut g = c.benchmark_group(group);
    for shape in [Shape::OneHandler, Shape::ThreeHandlersOneFails] {
        shape.check(&rt, context, level);
        let signal = shape.signal();
        g.bench_function(shape.id(), |b| {
            b.to_async(&rt).iter(|| async move {
                black_box(context.send_robust(signal, black_box(payload())).await)
            });
        });
    }
    g.finish();
}

/// Everything at INFO, through the process-wide subscriber.
fn at_info(c: &mut Criterion) {
    tracing::subscriber::set_global_default(subscriber(LevelFilter::INFO))
        .expect("no other global subscriber is set");
    bench_group(c, "send_robust", LevelFilter::INFO);
}

/// Everything at DEBUG, through a subscriber scoped to this function.
fn at_debug(c: &mut Criterion) {
    tracing::subscriber::with_default(subscriber(LevelFilter::DEBUG), || {
        bench_group(c, "send_robust_debug", LevelFilter::DEBUG);
    });
}

/// Nothing logged at all (the subscriber is at OFF): the framework's own cost, to set beside the
/// peer's `d_*_log_disabled` scenarios.
fn log_off(c: &mut Criterion) {
    tracing::subscriber::with_default(subscriber(LevelFilter::OFF), || {
        bench_group(c, "send_robust_log_off", LevelFilter::OFF);
    });
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5))
}

criterion_group! {
    name = info;
    config = config();
    targets = at_info
}
criterion_group! {
    name = debug;
    config = config();
    targets = at_debug
}
criterion_group! {
    name = off;
    config = config();
    targets = log_off
}
criterion_main!(info, debug, off);
