//! End-to-end tests of the task queue with the real binary: `coordinator worker` processes that
//! are killed with SIGKILL mid-run, tasks that die and are retried by an operator, webhook
//! redeliveries, and `coordinator tasks` on a real SQLite file or PostgreSQL database.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use coordinator::config::{Secret, StorageConfig};
use coordinator::store::Store;
use coordinator::task::{AttemptStatus, NewTask};
use serde_json::Value;
use support::{
    PgDatabase, Server, TOKEN, TempDir, Worker, config_text, order, run_cli, task_in_state,
};
use uuid::Uuid;

/// Workers that recover a dead worker's tasks quickly: short leases, quick polling. The server
/// runs no worker of its own, so that only `coordinator worker` processes run tasks.
const WORKERS: &str = r#"
[worker]
embedded = false
concurrency = 4
lease = "1s"
poll_interval = "20ms"
shutdown_grace = "5s"
"#;

/// The task the demo's order handler enqueues.
const ENROLL: &str = "demo.enroll_in_course";

fn token_env() -> [(&'static str, String); 1] {
    [("COORDINATOR__AUTH__API_TOKENS", format!("[\"{TOKEN}\"]"))]
}

fn env<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// The number of tasks in `state`, over every queue, from the server's metrics (counted in the
/// store at each scrape).
async fn depth(server: &Server, state: &str) -> u64 {
    let metrics = server.get("/metrics").await;
    assert_eq!(metrics.status, 200, "{}", metrics.body);
    metrics
        .body
        .lines()
        .filter(|l| {
            l.starts_with("coordinator_task_queue_depth{")
                && l.contains(&format!("state=\"{state}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Waits (at most `limit`) until `state` holds `n` tasks or more.
async fn wait_for_depth(server: &Server, state: &str, n: u64, limit: Duration, context: &str) {
    let deadline = Instant::now() + limit;
    loop {
        let now = depth(server, state).await;
        if now >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{context}: only {now} of {n} tasks {state} after {limit:?}\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every task of `task`, newest first, through the paginated API.
async fn all_tasks(server: &Server, task: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut next = Some(format!("/api/v1/tasks?task={task}&limit=500"));
    while let Some(path) = next {
        let page = server.get(&path).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let page = page.json();
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        next = page["next"].as_str().map(str::to_owned);
    }
    items
}

async fn task(server: &Server, id: &str) -> Value {
    let reply = server.get(&format!("/api/v1/tasks/{id}")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

/// Places `n` demo orders; the demo's order handler enqueues one enrollment task for each.
async fn place_orders(server: &Server, n: usize) {
    for i in 0..n {
        let reply = server
            .post(
                "/api/demo/orders",
                &order(&format!("EDX-{}", 200_000 + i), "ada@example.com"),
            )
            .await;
        assert_eq!(reply.status, 202, "{}", reply.body);
    }
    let queued = depth(server, "queued").await;
    assert_eq!(
        queued, n as u64,
        "each POST /api/demo/orders should enqueue one {ENROLL} task (the demo's order handler \
         enqueues it); found {queued} queued tasks for {n} orders"
    );
}

/// N tasks enqueued through the demo, a worker killed with SIGKILL while it holds leases, a
/// second worker that takes over: every task succeeds exactly once, and the killed worker's
/// attempts are recorded as lost.
async fn a_killed_worker_loses_no_task(storage_url: &str) {
    const N: usize = 400;
    let dir = TempDir::new();
    let config = dir.config(&config_text(storage_url, WORKERS));
    let tokens = token_env();
    let server = Server::start(&config, &env(&tokens));
    place_orders(&server, N).await;

    // Kill a worker while it holds leases. A worker runs these tasks in a few milliseconds, so
    // it holds leases nearly all the time; if the kill lands between two batches, try again.
    let mut killed = None;
    for _ in 0..10 {
        let before = depth(&server, "succeeded").await;
        if before >= N as u64 - 50 {
            break;
        }
        let worker = Worker::start(&config, &[]);
        wait_for_depth(
            &server,
            "succeeded",
            before + 5,
            Duration::from_secs(30),
            "first worker",
        )
        .await;
        let id = worker.id.clone();
        worker.kill_9();
        let running = server
            .get("/api/v1/tasks?state=running&limit=500")
            .await
            .json();
        let held: Vec<String> = running["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["lease_owner"] == id.as_str())
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect();
        if !held.is_empty() {
            killed = Some((id, held));
            break;
        }
    }
    let (killed_id, held) = killed.expect("a killed worker held leases in one of 10 tries");

    // A new worker claims the dead worker's tasks once their leases expire, and runs the rest.
    let worker = Worker::start(&config, &[]);
    wait_for_depth(
        &server,
        "succeeded",
        N as u64,
        Duration::from_secs(60),
        "second worker",
    )
    .await;
    for state in ["queued", "running", "retrying", "dead"] {
        assert_eq!(depth(&server, state).await, 0, "tasks left {state}");
    }
    let logs = worker.stop(Duration::from_secs(30));
    assert!(
        logs.contains("whose worker stopped renewing its lease"),
        "the recovery is logged:\n{logs}"
    );
    assert!(logs.contains("worker stopped"), "{logs}");

    // Exactly one successful attempt per task; the killed worker's attempts are lost.
    let tasks = all_tasks(&server, ENROLL).await;
    assert_eq!(tasks.len(), N);
    let mut lost_seen = 0;
    for listed in &tasks {
        let id = listed["id"].as_str().unwrap();
        let task = task(&server, id).await;
        assert_eq!(task["state"], "succeeded", "{task:#}");
        let history = task["history"].as_array().unwrap();
        let ok = history.iter().filter(|a| a["status"] == "ok").count();
        assert_eq!(ok, 1, "task {id} succeeded {ok} times: {task:#}");
        if held.iter().any(|h| h == id) {
            let lost = history
                .iter()
                .find(|a| a["status"] == "lost")
                .unwrap_or_else(|| panic!("no lost attempt in {task:#}"));
            assert_eq!(lost["worker"], killed_id.as_str(), "{task:#}");
            assert!(
                lost["error_chain"][0]
                    .as_str()
                    .unwrap()
                    .contains("stopped renewing its lease"),
                "{task:#}"
            );
            let last = history.last().unwrap();
            assert_eq!(last["status"], "ok", "{task:#}");
            assert_ne!(last["worker"], killed_id.as_str(), "{task:#}");
            lost_seen += 1;
        }
    }
    assert_eq!(lost_seen, held.len());
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_worker_killed_with_sigkill_loses_no_task() {
    let dir = TempDir::new();
    a_killed_worker_loses_no_task(&dir.sqlite_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_worker_killed_with_sigkill_loses_no_task() {
    let Some(database) = PgDatabase::create().await else {
        return;
    };
    a_killed_worker_loses_no_task(&database.url).await;
    database.drop_now().await;
}

/// A store on `url`, migrated by `coordinator migrate` first.
#[tokio::test]
async fn a_standalone_worker_serves_health_ready_and_its_metrics_when_bound() {
    let dir = TempDir::new();
    let config = dir.config(&config_text(&dir.sqlite_url(), WORKERS));
    let tokens = token_env();
    let server = Server::start(&config, &env(&tokens));
    place_orders(&server, 3).await;
    let worker = Worker::start(&config, &[("COORDINATOR__WORKER__BIND", "127.0.0.1:0")]);
    let logs = worker.logs();
    let addr: std::net::SocketAddr = logs
        .split("worker operations (/health, /ready, /metrics) on http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("the worker logs where it serves:\n{logs}"));
    wait_for_depth(&server, "succeeded", 3, Duration::from_secs(30), "worker").await;

    let health = support::request(addr, "GET", "/health", &[], None).await;
    assert_eq!(
        (health.status, health.json()["status"].as_str()),
        (200, Some("ok"))
    );
    let ready = support::request(addr, "GET", "/ready", &[], None).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    let metrics = support::request(addr, "GET", "/metrics", &[], None).await;
    assert_eq!(metrics.status, 200);
    for line in [
        "coordinator_task_attempts_total{task=\"demo.enroll_in_course\",status=\"succeeded\"} 3",
        "coordinator_task_queue_depth{queue=\"default\",state=\"succeeded\"} 3",
    ] {
        assert!(metrics.body.contains(line), "{line} in\n{}", metrics.body);
    }
    let missing = support::request(addr, "GET", "/api/v1/tasks", &[], None).await;
    assert_eq!(missing.status, 404, "only the operations routes are served");
    worker.stop(Duration::from_secs(30));
    server.stop();
}

#[test]
fn a_worker_bind_that_is_not_an_address_is_refused_before_start() {
    let dir = TempDir::new();
    let config = dir.config(&config_text(&dir.sqlite_url(), WORKERS));
    let output = support::coordinator()
        .arg("--config")
        .arg(&config)
        .arg("worker")
        .env("COORDINATOR__WORKER__BIND", "localhost")
        .output()
        .expect("run coordinator worker");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("[worker] bind")
            && stderr.contains("\"localhost\" is not a socket address"),
        "{stderr}"
    );
}

async fn migrated_store(config: &Path, url: &str) -> Store {
    let (code, out, err) = run_cli(config, &["migrate"]);
    assert_eq!(code, 0, "{out}{err}");
    coordinator_server::storage::connect(&StorageConfig {
        url: Secret::new(url.to_owned()),
        max_connections: 2,
        ..StorageConfig::default()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_commands_list_show_retry_and_cancel_with_clear_errors() {
    let dir = TempDir::new();
    let url = dir.sqlite_url();
    let config = dir.config(&config_text(&url, WORKERS));
    let store = migrated_store(&config, &url).await;
    let enqueue = |queue: &str| NewTask {
        queue: queue.to_owned(),
        ..NewTask::new("demo.not_in_this_binary", r#"{"email":"ada@example.com"}"#)
    };
    let dead = store.enqueue_task(&enqueue("lms")).await.unwrap();
    let claimed = store
        .claim_tasks("w-1", &[], 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed[0].id, dead);
    let chain = ["LMS answered 503".to_owned(), "connection reset".to_owned()];
    assert!(
        store
            .fail_task(dead, "w-1", 1, &chain, None, AttemptStatus::Error)
            .await
            .unwrap()
    );
    let queued = store.enqueue_task(&enqueue("default")).await.unwrap();
    store.close().await;

    let (code, out, err) = run_cli(&config, &["tasks", "list"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("ID "), "{out}");
    assert!(
        lines[1].starts_with(&queued.to_string()),
        "newest first: {out}"
    );
    assert!(lines[2].starts_with(&dead.to_string()), "{out}");
    assert!(
        lines[2].contains("dead") && lines[2].contains("LMS answered 503"),
        "{out}"
    );

    let (code, out, _) = run_cli(&config, &["tasks", "list", "--state", "dead", "--json"]);
    assert_eq!(code, 0);
    let page: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["items"][0]["id"], dead.to_string());
    assert_eq!(
        page["items"][0]["payload"], "[redacted]",
        "no personal data"
    );
    assert!(!out.contains("ada@example.com"));

    let (code, out, _) = run_cli(&config, &["tasks", "list", "--queue", "nowhere"]);
    assert_eq!((code, out.as_str()), (0, "no task matches\n"));

    let (code, out, err) = run_cli(&config, &["tasks", "show", &dead.to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("state:        dead (1 of 5 attempts made)"),
        "{out}"
    );
    assert!(out.contains("#1   error      worker w-1"), "{out}");
    assert!(out.contains("caused by: connection reset"), "{out}");
    assert!(
        out.contains(&format!("coordinator tasks retry {dead}")),
        "{out}"
    );
    assert!(!out.contains("ada@example.com"), "{out}");
    let (code, out, _) = run_cli(&config, &["tasks", "show", &dead.to_string(), "--json"]);
    assert_eq!(code, 0);
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["history"][0]["error_chain"][1], "connection reset");

    // Wrong state, unknown id: exit status 1 and what to do; not an id: usage error.
    let (code, _, err) = run_cli(&config, &["tasks", "retry", &queued.to_string()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "cannot retry task {queued}: it is queued; only dead or cancelled tasks can be retried"
        )),
        "{err}"
    );
    let unknown = Uuid::now_v7();
    let (code, _, err) = run_cli(&config, &["tasks", "cancel", &unknown.to_string()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("there is no such task"), "{err}");
    let (code, _, err) = run_cli(&config, &["tasks", "show", &unknown.to_string()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("no task {unknown}")), "{err}");
    let (code, _, err) = run_cli(&config, &["tasks", "show", "42"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("\"42\" is not a task id"), "{err}");

    let (code, out, err) = run_cli(&config, &["tasks", "retry", &dead.to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("queued again"), "{out}");
    let (code, out, err) = run_cli(&config, &["tasks", "cancel", &queued.to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("cancelled"), "{out}");
    let (code, _, err) = run_cli(&config, &["tasks", "cancel", &queued.to_string()]);
    assert_eq!(code, 1);
    assert!(err.contains("it is cancelled"), "{err}");

    let (_, out, _) = run_cli(&config, &["tasks", "list", "--json"]);
    let page: Value = serde_json::from_str(&out).unwrap();
    let states: HashMap<String, String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap().to_owned(),
                t["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(states[&dead.to_string()], "queued");
    assert_eq!(states[&queued.to_string()], "cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_refuses_an_unmigrated_database_and_stops_cleanly_on_sigterm() {
    let dir = TempDir::new();
    let url = dir.sqlite_url();
    let config = dir.config(&config_text(&url, WORKERS));
    let mut command = support::coordinator();
    let output = command
        .arg("--config")
        .arg(&config)
        .arg("worker")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("the database is not migrated"), "{err}");
    assert!(err.contains("run `coordinator migrate`"), "{err}");

    let (code, out, err) = run_cli(&config, &["migrate"]);
    assert_eq!(code, 0, "{out}{err}");
    let worker = Worker::start(&config, &[]);
    assert!(
        worker.logs().contains("queues: every queue"),
        "{}",
        worker.logs()
    );
    let logs = worker.stop(Duration::from_secs(20));
    assert!(logs.contains("SIGTERM"), "{logs}");
    assert!(logs.contains("stopped"), "{logs}");
}

/// The webhook's signing secret in these tests.
const WEBHOOK_SECRET: &str = "e2e-webhook-secret-7c1d";

/// `POST /api/demo/webhooks/payments` with `event`, signed as the payment processor signs.
async fn deliver(server: &Server, event: &Value) -> support::Reply {
    let body = event.to_string();
    let signature = coordinator_demo::sign_now(WEBHOOK_SECRET, body.as_bytes());
    support::request(
        server.addr,
        "POST",
        "/api/demo/webhooks/payments",
        &[
            ("content-type", "application/json"),
            ("x-demo-signature", &signature),
        ],
        Some(body),
    )
    .await
}

fn server_env() -> [(&'static str, String); 2] {
    [
        ("COORDINATOR__AUTH__API_TOKENS", format!("[\"{TOKEN}\"]")),
        (
            "COORDINATOR__EXTENSION__DEMO__WEBHOOK_SECRET",
            WEBHOOK_SECRET.to_owned(),
        ),
    ]
}

/// The embedded worker of `coordinator serve`, quick to poll; the payment task retried quickly.
const EMBEDDED: &str = r#"
[worker]
embedded = true
poll_interval = "20ms"
shutdown_grace = "5s"

[tasks."demo.handle_payment_event"]
max_attempts = 2
initial_backoff = "10ms"
max_backoff = "20ms"
"#;

/// The same webhook event delivered three times at once enqueues its work once; the embedded
/// worker runs it; a later redelivery is acknowledged without new work.
async fn a_webhook_delivered_three_times_enqueues_once(storage_url: &str) {
    let dir = TempDir::new();
    let config = dir.config(&config_text(storage_url, EMBEDDED));
    let vars = server_env();
    let server = Server::start(&config, &env(&vars));
    assert!(
        server.logs().contains("embedded worker"),
        "serve runs a worker: {}",
        server.logs()
    );
    let event = serde_json::json!({
        "id": "evt_3x_1",
        "type": "payment.refunded",
        "refund": { "order_number": "EDX-1", "refund_id": "re_1", "amount_cents": 4900 },
    });
    let (a, b, c) = tokio::join!(
        deliver(&server, &event),
        deliver(&server, &event),
        deliver(&server, &event)
    );
    let mut statuses = [a.status, b.status, c.status];
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [200, 200, 202],
        "{} | {} | {}",
        a.body,
        b.body,
        c.body
    );
    let first = [&a, &b, &c]
        .into_iter()
        .find(|r| r.status == 202)
        .unwrap()
        .json();
    assert_eq!(first["first_delivery"], true);
    let task_id = first["task_id"].as_str().unwrap().to_owned();
    for redelivery in [&a, &b, &c].into_iter().filter(|r| r.status == 200) {
        let ack = redelivery.json();
        assert_eq!(ack["first_delivery"], false, "{ack}");
        assert!(ack["task_id"].is_null(), "{ack}");
    }

    let tasks = all_tasks(&server, "demo.handle_payment_event").await;
    assert_eq!(tasks.len(), 1, "one task for three deliveries: {tasks:#?}");
    let done = task_in_state(&server, &task_id, "succeeded", Duration::from_secs(30)).await;
    assert!(
        done["result"]
            .as_str()
            .unwrap()
            .starts_with("refund dispatched as"),
        "{done:#}"
    );

    // Later, a fourth delivery: acknowledged, no new task.
    let again = deliver(&server, &event).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(
        all_tasks(&server, "demo.handle_payment_event").await.len(),
        1
    );
    // A bad signature is refused before anything is recorded.
    let forged = support::request(
        server.addr,
        "POST",
        "/api/demo/webhooks/payments",
        &[
            ("content-type", "application/json"),
            ("x-demo-signature", "sha256=00"),
        ],
        Some(serde_json::json!({"id": "evt_forged", "type": "payment.refunded"}).to_string()),
    )
    .await;
    assert_eq!(forged.status, 401, "{}", forged.body);

    let logs = server.stop();
    assert!(logs.contains("worker stopped"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_webhook_delivered_three_times_at_once_enqueues_its_work_once() {
    let dir = TempDir::new();
    a_webhook_delivered_three_times_enqueues_once(&dir.sqlite_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_webhook_delivered_three_times_at_once_enqueues_its_work_once() {
    let Some(database) = PgDatabase::create().await else {
        return;
    };
    a_webhook_delivered_three_times_enqueues_once(&database.url).await;
    database.drop_now().await;
}

/// A task that cannot succeed ends dead while the others keep flowing; the operator retries it
/// from the command line and through the API, and each retry is a fresh set of attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_task_does_not_stop_the_others_and_an_operator_can_retry_it() {
    let dir = TempDir::new();
    let config = dir.config(&config_text(&dir.sqlite_url(), EMBEDDED));
    let vars = server_env();
    let server = Server::start(&config, &env(&vars));

    // A refund event without its refund: the task gives up at once (a permanent failure).
    let poisoned = deliver(
        &server,
        &serde_json::json!({"id": "evt_poison", "type": "payment.refunded"}),
    )
    .await;
    assert_eq!(poisoned.status, 202, "{}", poisoned.body);
    let dead_id = poisoned.json()["task_id"].as_str().unwrap().to_owned();
    for i in 0..20 {
        let reply = server
            .post(
                "/api/demo/orders",
                &order(&format!("EDX-{}", 300_000 + i), "ada@example.com"),
            )
            .await;
        assert_eq!(reply.status, 202, "{}", reply.body);
    }
    wait_for_depth(&server, "succeeded", 20, Duration::from_secs(30), "orders").await;
    let dead = task_in_state(&server, &dead_id, "dead", Duration::from_secs(30)).await;
    assert_eq!(dead["attempts"], 1, "{dead:#}");
    assert!(
        dead["last_error"][0]
            .as_str()
            .unwrap()
            .contains("without a `refund` object"),
        "{dead:#}"
    );
    assert_eq!(
        all_tasks(&server, ENROLL)
            .await
            .iter()
            .filter(|t| t["state"] == "succeeded")
            .count(),
        20,
        "the other tasks flowed"
    );
    let (_, listed, _) = run_cli(&config, &["tasks", "list", "--state", "dead"]);
    assert!(listed.contains(&dead_id), "{listed}");

    // Retried from the command line: it runs again (and dies again, for the same reason).
    let (code, out, err) = run_cli(&config, &["tasks", "retry", &dead_id]);
    assert_eq!(code, 0, "{out}{err}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let again = loop {
        let task = task(&server, &dead_id).await;
        if task["state"] == "dead" && task["history"].as_array().unwrap().len() == 2 {
            break task;
        }
        assert!(Instant::now() < deadline, "not run again: {task:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let history = again["history"].as_array().unwrap();
    assert_eq!(history[0]["attempt"], 1);
    assert_eq!(
        history[1]["attempt"], 1,
        "a retry starts a fresh set of attempts"
    );

    // Retried through the API: 200 with the task queued again; a second retry of a queued or
    // running task is refused with 409.
    let retried = server
        .post(
            &format!("/api/v1/tasks/{dead_id}/retry"),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(retried.status, 200, "{}", retried.body);
    assert!(
        ["queued", "running", "dead"].contains(&retried.json()["state"].as_str().unwrap()),
        "{}",
        retried.body
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while task(&server, &dead_id).await["history"]
        .as_array()
        .unwrap()
        .len()
        < 3
    {
        assert!(Instant::now() < deadline, "not run a third time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let succeeded = all_tasks(&server, ENROLL).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = server
        .post(
            &format!("/api/v1/tasks/{succeeded}/retry"),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert_eq!(refused.json()["state"], "succeeded");

    let metrics = server.get("/metrics").await.body;
    assert!(
        metrics.contains(
            "coordinator_tasks_dead_total{task=\"demo.handle_payment_event\",queue=\"default\"} 3"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "coordinator_task_attempts_total{task=\"demo.enroll_in_course\",status=\"succeeded\"} 20"
        ),
        "{metrics}"
    );
    server.stop();
}

/// A task that fails on every attempt is retried with backoff until its attempts are used up,
/// then is dead, while other tasks keep flowing.
///
/// The demo's payment webhook takes `payment.disputed` events, whose `demo.handle_payment_event`
/// attempt calls the (sandbox, always unreachable) dispute API and returns a retryable error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_always_fails_is_dead_after_its_max_attempts() {
    let dir = TempDir::new();
    let config = dir.config(&config_text(&dir.sqlite_url(), EMBEDDED));
    let vars = server_env();
    let server = Server::start(&config, &env(&vars));
    let reply = deliver(
        &server,
        &serde_json::json!({"id": "evt_dispute", "type": "payment.disputed"}),
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let id = reply.json()["task_id"].as_str().unwrap().to_owned();
    for i in 0..10 {
        let reply = server
            .post(
                "/api/demo/orders",
                &order(&format!("EDX-{}", 400_000 + i), "ada@example.com"),
            )
            .await;
        assert_eq!(reply.status, 202);
    }
    let dead = task_in_state(&server, &id, "dead", Duration::from_secs(30)).await;
    // [tasks."demo.handle_payment_event"] max_attempts = 2, initial_backoff = "10ms".
    assert_eq!(dead["attempts"], 2, "{dead:#}");
    let history = dead["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{dead:#}");
    assert!(history.iter().all(|a| a["status"] == "error"), "{dead:#}");
    wait_for_depth(&server, "succeeded", 10, Duration::from_secs(30), "orders").await;
    let (code, _, err) = run_cli(&config, &["tasks", "retry", &id]);
    assert_eq!(code, 0, "{err}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while task(&server, &id).await["history"]
        .as_array()
        .unwrap()
        .len()
        < 4
    {
        assert!(Instant::now() < deadline, "not retried");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop();
}
