//! Task throughput benchmark: a signal handler enqueues a no-op durable task, workers run it.
//!
//! The same shape as the peer (`bench_celery_tasks.py`): a signal with one handler that
//! enqueues a task and returns its id; the producer sends the signal N times, timing each
//! dispatch (the enqueue latency), while a worker runs the tasks; end to end is the time from
//! the first dispatch until the N-th task is recorded `succeeded` in storage. Everything is the
//! real framework, built the way `coordinator serve` builds it (the dispatch log and the metrics
//! observe it), on a fresh SQLite file or PostgreSQL database.
//!
//! ```text
//! task_bench e2e   --url URL [-n 20000] [--warmup 500]   # producer + in-process worker
//! task_bench drain --url URL [-n 20000] [--workers K]    # enqueue N, then K worker processes drain
//! ```
//!
//! Options: `--concurrency C` (each worker's `[worker] concurrency`, default 8), `--prefetch P`
//! (`[worker] prefetch`, default 24),
//! `--poll-interval D` (default `100ms`, the default of `[worker] poll_interval`),
//! `--max-connections M` (default 8), `--no-dispatch-log`. The URL names a database the
//! benchmark may empty: an SQLite file is deleted first, a PostgreSQL database must exist and
//! have no coordinator tables, or be one that a previous run of this benchmark created.
//! The last line on stdout is a JSON object with every figure; a summary goes to stderr.

use std::io::{BufRead as _, Write as _};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use coordinator::config::Secret;
use coordinator::prelude::*;
use coordinator::store::Store;
use coordinator::task::TaskState;
use coordinator::{Coordinator, TaskObserver, Worker};
use coordinator_server::server::{self, Prepared};
use coordinator_server::settings::AppConfig;

/// The order the producer sends, like the peer's kwargs.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct OrderPlaced {
    /// The order.
    pub order_number: String,
    /// The learner.
    pub edx_lms_user_id: u64,
}

/// The task's payload.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct FulfillOrder {
    /// The order.
    pub order_number: String,
    /// The learner.
    pub edx_lms_user_id: u64,
}

static ORDER_PLACED: Signal<OrderPlaced> =
    Signal::new("bench.order_placed", "An order was placed (benchmark).");

static FULFILL_ORDER: Task<FulfillOrder> =
    Task::new("bench.fulfill_order", "Does nothing: the benchmark's task.");

struct BenchExtension;

impl Extension for BenchExtension {
    fn name(&self) -> &'static str {
        "bench"
    }

    fn doc(&self) -> &'static str {
        "The task benchmark: a handler that enqueues a no-op task."
    }

    fn build(&self, ext: &mut ExtensionBuilder<'_>) {
        ext.signal(&ORDER_PLACED)
            .handler(
                "bench.enqueue_fulfillment",
                "Enqueues bench.fulfill_order and returns its id.",
                enqueue_fulfillment,
            )
            .enqueues(&FULFILL_ORDER)
            .task(&FULFILL_ORDER, fulfill_order);
    }
}

async fn enqueue_fulfillment(event: Event<OrderPlaced>) -> HandlerResult {
    let id = event
        .context()
        .enqueue(
            &FULFILL_ORDER,
            FulfillOrder {
                order_number: event.order_number.clone(),
                edx_lms_user_id: event.edx_lms_user_id,
            },
        )
        .await?;
    Ok(id.to_string().into())
}

async fn fulfill_order(_: TaskContext, _: FulfillOrder) -> TaskResult {
    Ok(Summary::none())
}

/// Counts the attempts recorded `succeeded` (observers are called after the store took them).
#[derive(Default)]
struct Completed(AtomicU64);

impl TaskObserver for Completed {
    fn task_finished(&self, _: &str, _: &str, status: &str, _: u32, _: Duration) {
        if status == "succeeded" {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[derive(Clone, Debug)]
struct Options {
    mode: String,
    url: String,
    tasks: u64,
    warmup: u64,
    workers: usize,
    concurrency: usize,
    prefetch: usize,
    poll_interval: String,
    max_connections: u32,
    dispatch_log: bool,
    timeout: Duration,
}

fn usage() -> ! {
    eprintln!(
        "usage: task_bench e2e|drain|work --url URL [-n N] [--warmup W] [--workers K] \
         [--concurrency C] [--prefetch P] [--poll-interval D] [--max-connections M] [--no-dispatch-log] \
         [--timeout SECONDS]"
    );
    std::process::exit(2)
}

fn options() -> Options {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| usage());
    let mut o = Options {
        mode,
        url: String::new(),
        tasks: 20_000,
        warmup: 500,
        workers: 1,
        concurrency: 8,
        prefetch: 24,
        poll_interval: "100ms".to_owned(),
        max_connections: 8,
        dispatch_log: true,
        timeout: Duration::from_secs(300),
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--url" => o.url = value(),
            "-n" | "--tasks" => o.tasks = value().parse().unwrap_or_else(|_| usage()),
            "--warmup" => o.warmup = value().parse().unwrap_or_else(|_| usage()),
            "--workers" => o.workers = value().parse().unwrap_or_else(|_| usage()),
            "--concurrency" => o.concurrency = value().parse().unwrap_or_else(|_| usage()),
            "--prefetch" => o.prefetch = value().parse().unwrap_or_else(|_| usage()),
            "--poll-interval" => o.poll_interval = value(),
            "--max-connections" => o.max_connections = value().parse().unwrap_or_else(|_| usage()),
            "--timeout" => {
                o.timeout = Duration::from_secs(value().parse().unwrap_or_else(|_| usage()))
            }
            "--no-dispatch-log" => o.dispatch_log = false,
            _ => usage(),
        }
    }
    if o.url.is_empty() || !matches!(o.mode.as_str(), "e2e" | "drain" | "work") {
        usage();
    }
    o
}

fn config(o: &Options) -> AppConfig {
    let mut config = AppConfig::from_toml(&format!(
        r#"
[extensions]
enabled = ["bench"]

[signals]
"bench.order_placed" = ["bench.enqueue_fulfillment"]

[worker]
concurrency = {}
prefetch = {}
poll_interval = "{}"

[dispatch_log]
enabled = {}
"#,
        o.concurrency, o.prefetch, o.poll_interval, o.dispatch_log
    ))
    .unwrap_or_else(|e| panic!("the benchmark's configuration: {e}"));
    config.framework.storage.url = Secret::new(o.url.clone());
    config.framework.storage.max_connections = o.max_connections;
    config
}

/// Connects, builds like `serve` does, and migrates.
async fn prepare(o: &Options) -> Prepared {
    let config = config(o);
    let validated = server::validate(config, vec![std::sync::Arc::new(BenchExtension)])
        .unwrap_or_else(|v| panic!("invalid configuration:\n{v}"));
    let store = coordinator_server::storage::connect(&validated.config().storage)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let prepared = validated
        .prepare(store.clone())
        .unwrap_or_else(|v| panic!("invalid configuration:\n{v}"));
    store
        .migrate(&prepared.coordinator.migrations())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    prepared
}

/// Empties the database: deletes the SQLite file, or drops the coordinator's tables.
async fn reset(url: &str) {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or(path);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path}{suffix}"));
        }
        return;
    }
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    sqlx::query(
        "DROP TABLE IF EXISTS coordinator_task_attempts, coordinator_tasks, coordinator_inbox, \
         coordinator_dispatch_runs, coordinator_dispatches, coordinator_migrations CASCADE",
    )
    .execute(&mut conn)
    .await
    .unwrap_or_else(|e| panic!("empty the database: {e}"));
    let _ = conn.close().await;
}

/// Tasks not finished yet (queued, retrying or running).
async fn pending(store: &Store) -> u64 {
    store
        .task_counts()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .filter(|c| c.state.is_pending())
        .map(|c| c.count)
        .sum()
}

async fn succeeded(store: &Store) -> u64 {
    store
        .task_counts()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .filter(|c| c.state == TaskState::Succeeded)
        .map(|c| c.count)
        .sum()
}

/// Sends the signal `n` times, one after the other, timing each dispatch.
async fn produce(coordinator: &Coordinator, n: u64, offset: u64) -> (Duration, Vec<u64>) {
    let ctx = coordinator.context("bench");
    let mut latencies = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    let started = Instant::now();
    for i in 0..n {
        let order = OrderPlaced {
            order_number: format!("EDX-{}", 100_000 + offset + i),
            edx_lms_user_id: 12_345,
        };
        let t = Instant::now();
        let report = ctx.send_robust(&ORDER_PLACED, order).await;
        latencies.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
        assert!(
            report.all_ok(),
            "the handler failed to enqueue: {:?}",
            report.handlers
        );
    }
    (started.elapsed(), latencies)
}

fn percentile_us(sorted: &[u64], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p) as usize;
    round3(sorted[i] as f64 / 1e3)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn backend(url: &str) -> &'static str {
    if url.starts_with("sqlite:") {
        "sqlite"
    } else {
        "postgresql"
    }
}

async fn wait_until(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut done: impl AsyncFnMut() -> bool,
) {
    let deadline = Instant::now() + timeout;
    while !done().await {
        assert!(
            Instant::now() < deadline,
            "{what}: not done within {timeout:?}"
        );
        tokio::time::sleep(every).await;
    }
}

/// Producer and an in-process worker, like `coordinator serve` with its embedded worker.
async fn e2e(o: &Options) -> serde_json::Value {
    reset(&o.url).await;
    let mut prepared = prepare(o).await;
    let store = prepared.store.clone();
    let (stop_writer, writer_stopped) = tokio::sync::oneshot::channel::<()>();
    let writer = prepared.dispatch_log_writer.take().map(|w| {
        tokio::spawn(w.run(store.clone(), async move {
            let _ = writer_stopped.await;
        }))
    });
    let completed = Arc::new(Completed::default());
    let worker = Worker::new(
        prepared.coordinator.clone(),
        prepared.coordinator.config().worker.clone(),
    )
    .observe(Arc::clone(&prepared.metrics) as Arc<dyn TaskObserver>)
    .observe(Arc::clone(&completed) as Arc<dyn TaskObserver>);
    let (stop_worker, worker_stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(worker.run(async move {
        let _ = worker_stopped.await;
    }));

    // Warm-up: W dispatches, wait until their tasks ran (which proves the worker runs).
    produce(&prepared.coordinator, o.warmup, 0).await;
    let counter = Arc::clone(&completed);
    let warmup = o.warmup;
    wait_until(
        "warm-up",
        Duration::from_secs(120),
        Duration::from_millis(2),
        async || counter.0.load(Ordering::Relaxed) >= warmup,
    )
    .await;

    let base = completed.0.load(Ordering::Relaxed);
    let started = Instant::now();
    let (enqueue, mut latencies) = produce(&prepared.coordinator, o.tasks, o.warmup).await;
    let backlog = pending(&store).await;
    let counter = Arc::clone(&completed);
    let n = o.tasks;
    wait_until(
        "timed phase",
        o.timeout,
        Duration::from_millis(2),
        async || counter.0.load(Ordering::Relaxed) - base >= n,
    )
    .await;
    let end_to_end = started.elapsed();

    let _ = stop_worker.send(());
    let _ = worker.await;
    let _ = stop_writer.send(());
    if let Some(writer) = writer {
        let _ = writer.await;
    }
    let stored = succeeded(&store).await;
    assert_eq!(
        stored,
        o.tasks + o.warmup,
        "every task is succeeded in storage"
    );
    store.close().await;

    latencies.sort_unstable();
    let mean_us = latencies.iter().sum::<u64>() as f64 / latencies.len() as f64 / 1e3;
    let secs = |d: Duration| round3(d.as_secs_f64());
    serde_json::json!({
        "bench": "coordinator_task_via_signal",
        "mode": "e2e",
        "backend": backend(&o.url),
        "tasks": o.tasks,
        "warmup_tasks": o.warmup,
        "worker_concurrency": o.concurrency,
        "worker_prefetch": o.prefetch,
        "poll_interval": o.poll_interval,
        "max_connections": o.max_connections,
        "dispatch_log": o.dispatch_log,
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "enqueue_s": secs(enqueue),
        "enqueue_per_s": round1(o.tasks as f64 / enqueue.as_secs_f64()),
        "enqueue_mean_us": round3(mean_us),
        "enqueue_p50_us": percentile_us(&latencies, 0.5),
        "enqueue_p99_us": percentile_us(&latencies, 0.99),
        "enqueue_max_us": round3(*latencies.last().unwrap_or(&0) as f64 / 1e3),
        "queue_backlog_at_end_of_enqueue": backlog,
        "end_to_end_s": secs(end_to_end),
        "end_to_end_tasks_per_s": round1(o.tasks as f64 / end_to_end.as_secs_f64()),
        "drain_after_enqueue_s": secs(end_to_end.saturating_sub(enqueue)),
    })
}

/// Enqueues N tasks with no worker running, then starts K worker processes at once and times
/// how long they take to run them all.
async fn drain(o: &Options) -> serde_json::Value {
    reset(&o.url).await;
    let prepared = prepare(o).await;
    let store = prepared.store.clone();
    // Not measured: enqueue from 16 concurrent producers, to fill the queue quickly.
    let started = Instant::now();
    let producers: Vec<_> = (0..16u64)
        .map(|p| {
            let coordinator = prepared.coordinator.clone();
            let share = o.tasks / 16 + u64::from(p < o.tasks % 16);
            tokio::spawn(async move { produce(&coordinator, share, p * 1_000_000).await })
        })
        .collect();
    for producer in producers {
        producer.await.expect("a producer");
    }
    let enqueue = started.elapsed();
    assert_eq!(pending(&store).await, o.tasks);

    // Start the workers; each connects, then waits for a line on stdin before it runs.
    let exe = std::env::current_exe().expect("the benchmark's own path");
    let mut children: Vec<Child> = (0..o.workers)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "work",
                    "--url",
                    &o.url,
                    "--concurrency",
                    &o.concurrency.to_string(),
                    "--prefetch",
                    &o.prefetch.to_string(),
                    "--poll-interval",
                    &o.poll_interval,
                    "--max-connections",
                    &o.max_connections.to_string(),
                ])
                .args(if o.dispatch_log {
                    &[][..]
                } else {
                    &["--no-dispatch-log"][..]
                })
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start a worker process")
        })
        .collect();
    for child in &mut children {
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().expect("piped"))
            .read_line(&mut line)
            .expect("read the worker's ready line");
        assert_eq!(line.trim(), "ready", "a worker failed to start");
    }
    let started = Instant::now();
    for child in &mut children {
        let stdin = child.stdin.as_mut().expect("piped");
        stdin.write_all(b"go\n").expect("start the worker");
        stdin.flush().expect("start the worker");
    }
    let pg = coordinator_postgres::pool(&store).cloned();
    wait_until("drain", o.timeout, Duration::from_millis(20), async || {
        // The pending tasks, through the (state, id) index: cheap, and cheaper as they drain.
        let left: i64 = match &pg {
            Some(pool) => sqlx::query_scalar(
                "SELECT count(*) FROM coordinator_tasks WHERE state IN ('queued', 'retrying', 'running')",
            )
            .fetch_one(pool)
            .await
            .unwrap_or(i64::MAX),
            None => i64::try_from(pending(&store).await).unwrap_or(i64::MAX),
        };
        left == 0
    })
    .await;
    let drained = started.elapsed();
    let mut per_worker = Vec::new();
    for mut child in children {
        drop(child.stdin.take()); // EOF: the worker stops gracefully.
        let mut out = String::new();
        std::io::Read::read_to_string(child.stdout.as_mut().expect("piped"), &mut out)
            .expect("read the worker's count");
        let status = child.wait().expect("wait for a worker");
        assert!(status.success(), "a worker failed: {status}");
        per_worker.push(out.trim().parse::<u64>().unwrap_or(0));
    }
    assert_eq!(succeeded(&store).await, o.tasks, "every task succeeded");
    store.close().await;
    serde_json::json!({
        "bench": "coordinator_task_drain",
        "mode": "drain",
        "backend": backend(&o.url),
        "tasks": o.tasks,
        "worker_processes": o.workers,
        "worker_concurrency": o.concurrency,
        "worker_prefetch": o.prefetch,
        "poll_interval": o.poll_interval,
        "max_connections": o.max_connections,
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "enqueue_s": round3(enqueue.as_secs_f64()),
        "drain_s": round3(drained.as_secs_f64()),
        "drain_tasks_per_s": round1(o.tasks as f64 / drained.as_secs_f64()),
        "tasks_per_worker": per_worker,
    })
}

/// One worker process of `drain`: connects, says `ready`, runs once told `go`, stops at EOF on
/// stdin and prints how many tasks it ran.
async fn work(o: &Options) {
    let mut prepared = prepare(o).await;
    let store = prepared.store.clone();
    let completed = Arc::new(Completed::default());
    let worker = Worker::new(
        prepared.coordinator.clone(),
        prepared.coordinator.config().worker.clone(),
    )
    .observe(Arc::clone(&completed) as Arc<dyn TaskObserver>);
    println!("ready");
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    let (stop_writer, writer_stopped) = tokio::sync::oneshot::channel::<()>();
    let writer = prepared.dispatch_log_writer.take().map(|w| {
        tokio::spawn(w.run(store.clone(), async move {
            let _ = writer_stopped.await;
        }))
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    tokio::task::spawn_blocking(|| {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut rest);
    })
    .await
    .expect("wait for EOF");
    let _ = stop.send(());
    let _ = running.await;
    let _ = stop_writer.send(());
    if let Some(writer) = writer {
        let _ = writer.await;
    }
    store.close().await;
    println!("{}", completed.0.load(Ordering::Relaxed));
}

fn main() {
    let o = options();
    // Like the service: INFO and above are formatted and written (to a sink, as the peer
    // writes its log lines to /dev/null); per-dispatch events are DEBUG.
    tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_writer(std::io::sink)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    match o.mode.as_str() {
        "e2e" => {
            let result = runtime.block_on(e2e(&o));
            eprintln!(
                "{} e2e: enqueue {}/s (mean {} us, p50 {} us, p99 {} us), end-to-end {} tasks/s, drain {} s",
                result["backend"].as_str().unwrap_or(""),
                result["enqueue_per_s"],
                result["enqueue_mean_us"],
                result["enqueue_p50_us"],
                result["enqueue_p99_us"],
                result["end_to_end_tasks_per_s"],
                result["drain_after_enqueue_s"],
            );
            println!("{result}");
        }
        "drain" => {
            let result = runtime.block_on(drain(&o));
            eprintln!(
                "{} drain with {} worker process(es): {} tasks/s ({} s)",
                result["backend"].as_str().unwrap_or(""),
                o.workers,
                result["drain_tasks_per_s"],
                result["drain_s"],
            );
            println!("{result}");
        }
        _ => runtime.block_on(work(&o)),
    }
}
