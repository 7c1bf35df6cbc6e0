//! The fault suite of issue 8, "nothing acknowledged is ever lost": the real `coordinator`
//! binary on a real SQLite file or PostgreSQL database, with its environment broken on purpose
//! (SIGKILL under load, database connections terminated, the SQLite writer held by another
//! process, a read-only database, poison values, slow and idle clients, a locked table).
//!
//! Each test checks the invariant: every request answered 2xx has its work done exactly once,
//! every other request was told so (non-2xx, with Retry-After on 503, or a connection error),
//! and no worker stops. The durable artefacts (inbox entries, dispatch rows, delivery and task
//! rows) are read from the database itself: the sandbox LMS lives in memory and dies with the
//! process.

mod support;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{
    ORDERS_DURABLE, ORDERS_RUN_NOW, PgDatabase, Reply, Server, TOKEN, TempDir, config_with_orders,
    order, task_in_state, try_request,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The course run of every order of these tests.
const COURSE: &str = "course-v1:edX+DemoX+2024";

/// The task the demo's enrollment handler enqueues, once per order and seat.
const ENROLL: &str = "demo.enroll_in_course";

/// demo.order_placed durable, to its two handlers that succeed: once the faults are over, every
/// task of a test can drain to `succeeded`.
const ORDERS_DURABLE_OK: &str =
    r#"{ durable = true, handlers = ["demo.enroll_learner", "demo.record_order"] }"#;

/// A worker that recovers a killed process's leases within a second and retries quickly.
const FAST_WORKER: &str = r#"
[worker]
lease = "1s"
poll_interval = "20ms"
shutdown_grace = "2s"

[tasks."demo.enroll_in_course"]
initial_backoff = "20ms"
max_backoff = "200ms"

[tasks."demo.handle_payment_event"]
initial_backoff = "20ms"
max_backoff = "200ms"

[handlers."demo.enroll_learner"]
initial_backoff = "20ms"
max_backoff = "200ms"

[handlers."demo.record_order"]
initial_backoff = "20ms"
max_backoff = "200ms"
"#;

/// The payment webhook's signing secret in these tests.
const WEBHOOK_SECRET: &str = "faults-webhook-secret-31e9";

/// At most one load test runs at a time, across processes too (a test runner may run each test
/// in a process of its own): the machine has two cores, and the measurements (answer times,
/// the dispatch log's loss window) mean little while another test competes. Held until dropped.
struct Heavy(#[allow(dead_code)] std::net::TcpListener);

impl Heavy {
    /// Listening on a fixed local port is the lock: one process at a time can, and the
    /// operating system lets go of it when the holder exits, however it exits.
    async fn lock() -> Heavy {
        loop {
            if let Ok(listener) = std::net::TcpListener::bind("127.0.0.1:18597") {
                return Heavy(listener);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The environment of every server of these tests: the API token and the webhook secret.
struct Env(Vec<(&'static str, String)>);

impl Env {
    fn new() -> Self {
        Self(vec![
            ("COORDINATOR__AUTH__API_TOKENS", format!("[\"{TOKEN}\"]")),
            (
                "COORDINATOR__EXTENSION__DEMO__WEBHOOK_SECRET",
                WEBHOOK_SECRET.to_owned(),
            ),
        ])
    }

    fn with(mut self, key: &'static str, value: &str) -> Self {
        self.0.push((key, value.to_owned()));
        self
    }

    fn pairs(&self) -> Vec<(&'static str, &str)> {
        self.0.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }
}

fn start(config: &Path, env: &Env) -> Server {
    Server::start(config, &env.pairs())
}

// ---------------------------------------------------------------------------------------------
// Posting orders, many at once.
// ---------------------------------------------------------------------------------------------

/// How one `POST /api/demo/orders` ended.
#[derive(Clone, Debug)]
struct Answer {
    order: String,
    /// The status, or `None` when the connection failed or closed before an answer.
    status: Option<u16>,
    retry_after: String,
    body: String,
    /// From a 202.
    dispatch_id: Option<String>,
    /// When the answer (or the error) came.
    at: Instant,
}

impl Answer {
    fn accepted(&self) -> bool {
        self.status == Some(202)
    }

    fn duplicate(&self) -> bool {
        self.status == Some(200)
    }
}

/// Posts order `number` (with `email`) and says how it ended.
async fn post_order(addr: std::net::SocketAddr, number: &str, email: &str) -> Answer {
    let auth = format!("Bearer {TOKEN}");
    let reply = try_request(
        addr,
        "POST",
        "/api/demo/orders",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        Some(order(number, email).to_string()),
    )
    .await;
    let at = Instant::now();
    match reply {
        Ok(reply) => {
            let dispatch_id = (reply.status == 202)
                .then(|| serde_json::from_str::<Value>(&reply.body).ok())
                .flatten()
                .and_then(|v| v["dispatch_id"].as_str().map(str::to_owned));
            Answer {
                order: number.to_owned(),
                status: Some(reply.status),
                retry_after: reply.header("retry-after").to_owned(),
                body: reply.body,
                dispatch_id,
                at,
            }
        }
        Err(e) => Answer {
            order: number.to_owned(),
            status: None,
            retry_after: String::new(),
            body: e,
            dispatch_id: None,
            at,
        },
    }
}

/// Orders `<prefix>-00000`, `<prefix>-00001`… posted by `concurrency` clients until `total`
/// are posted or [`Load::stop`] is called.
struct Load {
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    clients: Vec<tokio::task::JoinHandle<Vec<Answer>>>,
}

impl Load {
    fn start(addr: std::net::SocketAddr, prefix: &str, total: usize, concurrency: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let next = Arc::new(AtomicUsize::new(0));
        let clients = (0..concurrency)
            .map(|_| {
                let (stop, accepted, next) =
                    (Arc::clone(&stop), Arc::clone(&accepted), Arc::clone(&next));
                let prefix = prefix.to_owned();
                tokio::spawn(async move {
                    let mut answers = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= total {
                            break;
                        }
                        let answer =
                            post_order(addr, &format!("{prefix}-{i:05}"), "ada@example.com").await;
                        if answer.accepted() {
                            accepted.fetch_add(1, Ordering::Relaxed);
                        }
                        answers.push(answer);
                    }
                    answers
                })
            })
            .collect();
        Self {
            stop,
            accepted,
            clients,
        }
    }

    /// Waits (at most `limit`) until `n` orders were accepted.
    async fn until_accepted(&self, n: usize, limit: Duration, server: &Server) {
        let deadline = Instant::now() + limit;
        while self.accepted.load(Ordering::Relaxed) < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} orders accepted within {limit:?}\n{}",
                self.accepted.load(Ordering::Relaxed),
                server.logs()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Whether every client has finished (all orders posted, or stopped).
    fn finished(&self) -> bool {
        self.clients
            .iter()
            .all(tokio::task::JoinHandle::is_finished)
    }

    /// Every answer, once each client has finished its request in progress.
    async fn answers(self) -> Vec<Answer> {
        let mut all = Vec::new();
        for client in self.clients {
            all.extend(client.await.expect("a load client panicked"));
        }
        all
    }
}

/// Counts of the ways orders ended.
#[derive(Debug, Default)]
struct Tally {
    accepted: usize,
    duplicate: usize,
    unavailable: usize,
    connection_error: usize,
}

/// Checks that every answer is one the invariant allows (202, 200 duplicate, 503 with
/// Retry-After, or no answer at all), and counts them.
fn tally(answers: &[Answer]) -> Tally {
    let mut t = Tally::default();
    for a in answers {
        match a.status {
            Some(202) => {
                assert!(a.dispatch_id.is_some(), "a 202 without dispatch id: {a:?}");
                t.accepted += 1;
            }
            Some(200) => {
                assert!(a.body.contains("\"duplicate\":true"), "{a:?}");
                t.duplicate += 1;
            }
            Some(503) => {
                assert!(
                    a.retry_after.parse::<u32>().is_ok(),
                    "a 503 without Retry-After: {a:?}"
                );
                assert!(a.body.contains("\"status\":503"), "not a problem: {a:?}");
                t.unavailable += 1;
            }
            None => t.connection_error += 1,
            Some(other) => panic!("order {} answered {other}: {}", a.order, a.body),
        }
    }
    t
}

// ---------------------------------------------------------------------------------------------
// Reading the database itself.
// ---------------------------------------------------------------------------------------------

/// A direct connection to a test's database (SQLite file or PostgreSQL database).
enum Db {
    Lite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

impl Db {
    async fn open(url: &str) -> Self {
        if url.starts_with("sqlite:") {
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
                .expect("a SQLite URL")
                .busy_timeout(Duration::from_secs(10));
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await
                .unwrap_or_else(|e| panic!("open {url}: {e}"));
            Db::Lite(pool)
        } else {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(2)
                .connect(url)
                .await
                .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
            Db::Pg(pool)
        }
    }

    /// Every row of `sql`, whose columns must all be text (cast them): NULL is `None`.
    async fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        use sqlx::Row as _;
        match self {
            Db::Lite(pool) => sqlx::query(sql)
                .fetch_all(pool)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .iter()
                .map(|r| {
                    (0..r.len())
                        .map(|i| r.get::<Option<String>, _>(i))
                        .collect()
                })
                .collect(),
            Db::Pg(pool) => sqlx::query(sql)
                .fetch_all(pool)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .iter()
                .map(|r| {
                    (0..r.len())
                        .map(|i| r.get::<Option<String>, _>(i))
                        .collect()
                })
                .collect(),
        }
    }

    /// The rows of each of `sqls` (as [`Db::rows`]), all read in one transaction: one snapshot
    /// of the database, however the server writes meanwhile.
    async fn snapshot(&self, sqls: &[&str]) -> Vec<Vec<Vec<Option<String>>>> {
        fn text<R: sqlx::Row>(row: &R) -> Vec<Option<String>>
        where
            usize: sqlx::ColumnIndex<R>,
            for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        {
            (0..row.len())
                .map(|i| row.get::<Option<String>, _>(i))
                .collect()
        }
        let mut all = Vec::new();
        match self {
            Db::Lite(pool) => {
                let mut tx = pool.begin().await.unwrap();
                for sql in sqls {
                    let rows = sqlx::query(sql)
                        .fetch_all(&mut *tx)
                        .await
                        .unwrap_or_else(|e| panic!("{sql}: {e}"));
                    all.push(rows.iter().map(text).collect());
                }
                tx.rollback().await.unwrap();
            }
            Db::Pg(pool) => {
                let mut tx = pool.begin().await.unwrap();
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                for sql in sqls {
                    let rows = sqlx::query(sql)
                        .fetch_all(&mut *tx)
                        .await
                        .unwrap_or_else(|e| panic!("{sql}: {e}"));
                    all.push(rows.iter().map(text).collect());
                }
                tx.rollback().await.unwrap();
            }
        }
        all
    }

    async fn count(&self, sql: &str) -> usize {
        let rows = self.rows(sql).await;
        rows[0][0].as_deref().unwrap().parse().unwrap()
    }

    async fn close(self) {
        match self {
            Db::Lite(pool) => pool.close().await,
            Db::Pg(pool) => pool.close().await,
        }
    }
}

/// The order number inside a stored payload (a task's, or a delivery's event).
fn order_number_in(payload: &str) -> Option<String> {
    let v: Value = serde_json::from_str(payload).ok()?;
    v["order_number"]
        .as_str()
        .or_else(|| v["payload"]["order_number"].as_str())
        .map(str::to_owned)
}

/// What the database holds about orders.
#[derive(Debug, Default)]
struct Stored {
    /// The order numbers the inbox recorded (`demo.orders`).
    inbox: HashSet<String>,
    /// The ids of the demo.order_placed dispatches.
    dispatches: HashSet<String>,
    /// Per dispatch, its deliveries: (task, state, order number of the event).
    deliveries: HashMap<String, Vec<(String, String, Option<String>)>>,
    /// Per enrollment unique key, the states of its demo.enroll_in_course tasks.
    enrolls: HashMap<String, Vec<String>>,
    /// Tasks by state, over every task.
    states: HashMap<String, usize>,
}

impl Stored {
    async fn read(db: &Db) -> Self {
        let enrolls =
            format!("SELECT unique_key, state FROM coordinator_tasks WHERE task = '{ENROLL}'");
        let [inbox, dispatches, deliveries, enrolls, states]: [Vec<Vec<Option<String>>>; 5] = db
            .snapshot(&[
                "SELECT external_id FROM coordinator_inbox WHERE source = 'demo.orders'",
                "SELECT CAST(id AS TEXT) FROM coordinator_dispatches \
                 WHERE signal = 'demo.order_placed'",
                "SELECT CAST(origin_dispatch AS TEXT), task, state, payload FROM coordinator_tasks \
                 WHERE task LIKE 'deliver:%'",
                &enrolls,
                "SELECT state, CAST(COUNT(*) AS TEXT) FROM coordinator_tasks GROUP BY state",
            ])
            .await
            .try_into()
            .expect("five queries, five results");
        let mut stored = Stored::default();
        for row in inbox {
            stored.inbox.insert(row[0].clone().unwrap());
        }
        for row in dispatches {
            stored.dispatches.insert(row[0].clone().unwrap());
        }
        for row in deliveries {
            let order = row[3].as_deref().and_then(order_number_in);
            stored
                .deliveries
                .entry(row[0].clone().unwrap_or_default())
                .or_default()
                .push((row[1].clone().unwrap(), row[2].clone().unwrap(), order));
        }
        for row in enrolls {
            stored
                .enrolls
                .entry(row[0].clone().unwrap_or_default())
                .or_default()
                .push(row[1].clone().unwrap());
        }
        for row in states {
            stored.states.insert(
                row[0].clone().unwrap(),
                row[1].as_deref().unwrap().parse().unwrap(),
            );
        }
        stored
    }

    /// How many delivery tasks carry order `number`'s event (over every dispatch).
    fn deliveries_of(&self, number: &str, handler: &str) -> usize {
        let task = format!("deliver:{handler}");
        self.deliveries
            .values()
            .flatten()
            .filter(|(t, _, o)| *t == task && o.as_deref() == Some(number))
            .count()
    }

    fn enroll_states(&self, number: &str) -> &[String] {
        self.enrolls
            .get(&format!("{number}/{COURSE}"))
            .map_or(&[], Vec::as_slice)
    }

    /// Whether every delivery to `handlers` and every demo.enroll_in_course task has succeeded.
    fn settled(&self, handlers: &[&str]) -> bool {
        let tasks: Vec<String> = handlers.iter().map(|h| format!("deliver:{h}")).collect();
        self.deliveries
            .values()
            .flatten()
            .filter(|(task, _, _)| tasks.contains(task))
            .all(|(_, state, _)| state == "succeeded")
            && self
                .enrolls
                .values()
                .flatten()
                .all(|state| state == "succeeded")
    }

    fn pending(&self) -> usize {
        ["queued", "running", "retrying"]
            .iter()
            .map(|s| self.states.get(*s).copied().unwrap_or(0))
            .sum()
    }
}

/// Waits (at most `limit`) until `done` accepts what the database holds; returns it.
async fn until_stored(
    db: &Db,
    limit: Duration,
    what: &str,
    done: impl Fn(&Stored) -> bool,
) -> Stored {
    let deadline = Instant::now() + limit;
    loop {
        let stored = Stored::read(db).await;
        if done(&stored) {
            return stored;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not reached within {limit:?}; task states {:?}",
            stored.states
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The durable-orders invariant over `answers` (and everything stored): each order accepted
/// has its inbox entry, one dispatch, one delivery per handler of `handlers`, and (once the
/// worker ran) a succeeded demo.enroll_in_course task; no order is stored twice; every dispatch
/// has its deliveries. Returns how many of the orders not accepted were stored.
///
/// That each order has exactly one enrollment task is checked apart, by
/// [`enrolled_more_than_once`]: a crash between a delivery's enqueue and the record of its
/// outcome makes a second one (the bug this suite found; see the test).
fn check_durable_orders(stored: &Stored, answers: &[Answer], handlers: &[&str]) -> usize {
    for a in answers.iter().filter(|a| a.accepted()) {
        let id = a.dispatch_id.as_deref().unwrap();
        assert!(
            stored.inbox.contains(&a.order),
            "order {} was accepted (202) but is not in the inbox",
            a.order
        );
        assert!(
            stored.dispatches.contains(id),
            "order {} was accepted (202) as dispatch {id}, which is not stored",
            a.order
        );
        let deliveries = stored.deliveries.get(id).map_or(&[][..], Vec::as_slice);
        let mut tasks: Vec<&str> = deliveries.iter().map(|(t, _, _)| t.as_str()).collect();
        tasks.sort_unstable();
        let mut expected: Vec<String> = handlers.iter().map(|h| format!("deliver:{h}")).collect();
        expected.sort_unstable();
        assert_eq!(
            tasks, expected,
            "the deliveries of order {} ({id})",
            a.order
        );
        assert!(
            deliveries
                .iter()
                .all(|(_, _, o)| o.as_deref() == Some(a.order.as_str())),
            "{deliveries:?}"
        );
        let states = stored.enroll_states(&a.order);
        assert!(
            !states.is_empty() && states.iter().all(|s| s == "succeeded"),
            "order {}: its {ENROLL} task did not succeed: {states:?}",
            a.order
        );
    }
    // Nothing twice, whatever the answer was.
    for number in &stored.inbox {
        assert_eq!(
            stored.deliveries_of(number, "demo.enroll_learner"),
            1,
            "order {number}: deliveries to demo.enroll_learner"
        );
    }
    assert_eq!(
        stored.dispatches.len(),
        stored.inbox.len(),
        "one dispatch per order in the inbox"
    );
    for (dispatch, deliveries) in &stored.deliveries {
        assert!(
            stored.dispatches.contains(dispatch),
            "delivery of no dispatch: {dispatch}"
        );
        assert_eq!(
            deliveries.len(),
            handlers.len(),
            "{dispatch}: {deliveries:?}"
        );
    }
    let accepted: HashSet<&str> = answers
        .iter()
        .filter(|a| a.accepted())
        .map(|a| a.order.as_str())
        .collect();
    let stored_unaccepted: HashSet<&str> = answers
        .iter()
        .map(|a| a.order.as_str())
        .filter(|order| !accepted.contains(order) && stored.inbox.contains(*order))
        .collect();
    stored_unaccepted.len()
}

/// The orders with more than one demo.enroll_in_course task, and how many each has.
fn enrolled_more_than_once(stored: &Stored) -> Vec<(String, usize)> {
    let mut twice: Vec<(String, usize)> = stored
        .enrolls
        .iter()
        .filter(|(_, states)| states.len() > 1)
        .map(|(key, states)| (key.clone(), states.len()))
        .collect();
    twice.sort();
    twice
}

/// Sends again every order of `answers` that was not accepted or acknowledged as a duplicate,
/// until each is (at most `limit`); returns the answers of the last round.
async fn resend_until_taken(server: &Server, answers: &[Answer], limit: Duration) -> Vec<Answer> {
    let taken: HashSet<&str> = answers
        .iter()
        .filter(|a| a.accepted() || a.duplicate())
        .map(|a| a.order.as_str())
        .collect();
    let mut left: Vec<String> = answers
        .iter()
        .filter(|a| !taken.contains(a.order.as_str()))
        .map(|a| a.order.clone())
        .collect();
    left.sort();
    left.dedup();
    let deadline = Instant::now() + limit;
    let mut done = Vec::new();
    while !left.is_empty() {
        let mut again = Vec::new();
        for number in left {
            let answer = post_order(server.addr, &number, "ada@example.com").await;
            if answer.accepted() || answer.duplicate() {
                done.push(answer);
            } else {
                assert!(
                    Instant::now() < deadline,
                    "order {number} still refused after {limit:?}: {answer:?}\n{}",
                    server.logs()
                );
                again.push(number);
            }
        }
        left = again;
        if !left.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    done
}

// ---------------------------------------------------------------------------------------------
// 1. SIGKILL under load.
// ---------------------------------------------------------------------------------------------

/// Durable orders posted by 16 clients; the server is killed with SIGKILL once 100 are
/// accepted, and restarted on the same database.
async fn sigkill_under_load_loses_no_accepted_order(url: &str, backend: &str) {
    const HANDLERS: [&str; 4] = [
        "demo.enroll_learner",
        "demo.record_order",
        "demo.notify_unreachable_crm",
        "demo.audit_with_bug",
    ];
    let _heavy = Heavy::lock().await;
    let dir = TempDir::new();
    let config = dir.config(&config_with_orders(url, ORDERS_DURABLE, FAST_WORKER));
    let env = Env::new();
    let mut server = start(&config, &env);

    let load = Load::start(server.addr, &format!("KILL-{backend}"), 400, 16);
    load.until_accepted(100, Duration::from_secs(30), &server)
        .await;
    // No new request from here: those in flight when the process dies get no answer.
    load.stop();
    let killed_at = Instant::now();
    server.kill_9();
    let answers = load.answers().await;
    let t = tally(&answers);
    assert!(t.accepted >= 100, "{t:?}");

    let server = start(&config, &env);
    let db = Db::open(url).await;
    // Sent again, the orders that got no answer are taken once: those stored before the kill
    // are duplicates.
    let resent = resend_until_taken(&server, &answers, Duration::from_secs(20)).await;
    let mut all = answers.clone();
    all.extend(resent.iter().cloned());
    let accepted: Vec<&str> = all
        .iter()
        .filter(|a| a.accepted())
        .map(|a| a.order.as_str())
        .collect();
    // Settled: every accepted order enrolled, and nothing left to run that could enroll again
    // (the deliveries that fail on purpose retry for ever, and are left out).
    let stored = until_stored(&db, Duration::from_secs(60), "every enrollment ran", |s| {
        accepted
            .iter()
            .all(|o| s.enroll_states(o).contains(&"succeeded".to_owned()))
            && s.settled(&["demo.enroll_learner", "demo.record_order"])
    })
    .await;
    let stored_unanswered = check_durable_orders(&stored, &all, &HANDLERS);
    let unanswered_duplicates = resent.iter().filter(|a| a.duplicate()).count();
    assert_eq!(
        stored_unanswered, unanswered_duplicates,
        "the orders stored without a 2xx answer are exactly those a resend found duplicate"
    );
    eprintln!(
        "[{backend}] SIGKILL under load: {} orders posted ({} accepted, {} 503, {} connection \
         errors, {} accepted within 50 ms before the kill); {} stored without an answer (resent: \
         200 duplicate), {} accepted on resend; {} dispatches, every one with {} deliveries",
        answers.len(),
        t.accepted,
        t.unavailable,
        t.connection_error,
        answers
            .iter()
            .filter(|a| a.accepted() && a.at + Duration::from_millis(50) >= killed_at)
            .count(),
        unanswered_duplicates,
        resent.iter().filter(|a| a.accepted()).count(),
        stored.dispatches.len(),
        HANDLERS.len()
    );
    let ready = server.get("/ready").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    db.close().await;
    server.stop();
    // Last, as it is the one check known to fail: a delivery to demo.enroll_learner that
    // enqueued its task, then died with the process before its own outcome was recorded, runs
    // again once its lease expires; by then the task it enqueued has often succeeded, and the
    // unique key only holds while a task is pending, so a second task is enqueued and run.
    let twice = enrolled_more_than_once(&stored);
    assert!(
        twice.is_empty(),
        "[{backend}] {} order(s) have more than one {ENROLL} task after the SIGKILL (the delivery \
         that enqueued it ran again, after the first task had finished): {twice:?}",
        twice.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sigkill_under_load_loses_no_accepted_order() {
    let dir = TempDir::new();
    sigkill_under_load_loses_no_accepted_order(&dir.sqlite_url(), "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sigkill_under_load_loses_no_accepted_order() {
    let Some(database) = PgDatabase::create().await else {
        return;
    };
    sigkill_under_load_loses_no_accepted_order(&database.url, "postgres").await;
    database.drop_now().await;
}

// ---------------------------------------------------------------------------------------------
// 2. PostgreSQL connections terminated under load.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_terminated_under_load_lose_no_accepted_order() {
    const HANDLERS: [&str; 2] = ["demo.enroll_learner", "demo.record_order"];
    let Some(database) = PgDatabase::create().await else {
        return;
    };
    let _heavy = Heavy::lock().await;
    let dir = TempDir::new();
    let config = dir.config(&config_with_orders(
        &database.url,
        ORDERS_DURABLE_OK,
        FAST_WORKER,
    ));
    let server = start(&config, &Env::new());
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&support::postgres_admin_url())
        .await
        .unwrap();

    // While 8 clients post 300 orders, every connection of the server to its database is
    // terminated, every 150 ms.
    let load = Load::start(server.addr, "TERM", 300, 8);
    let (mut rounds, mut terminated) = (0, 0);
    while !load.finished() {
        let killed: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()) AS t",
        )
        .bind(&database.name)
        .fetch_one(&admin)
        .await
        .unwrap();
        rounds += 1;
        terminated += killed;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    admin.close().await;
    let answers = load.answers().await;
    let t = tally(&answers);
    assert_eq!(
        t.connection_error,
        0,
        "the server closed connections without answering: {:?}",
        answers
            .iter()
            .filter(|a| a.status.is_none())
            .collect::<Vec<_>>()
    );
    assert!(terminated >= 10, "only {terminated} connections terminated");

    // Once the database answers again, what was refused is taken, and everything drains.
    let resent = resend_until_taken(&server, &answers, Duration::from_secs(20)).await;
    let mut all = answers.clone();
    all.extend(resent.iter().cloned());
    let db = Db::open(&database.url).await;
    let stored = until_stored(&db, Duration::from_secs(60), "the queue drains", |s| {
        s.pending() == 0 && s.enrolls.len() >= 300
    })
    .await;
    let stored_unanswered = check_durable_orders(&stored, &all, &HANDLERS);
    assert_eq!(
        stored_unanswered, 0,
        "an order answered 503 was stored (a resend found it a duplicate): {resent:?}"
    );
    assert_eq!(stored.states.get("dead"), None, "{:?}", stored.states);
    assert_eq!(
        enrolled_more_than_once(&stored),
        Vec::<(String, usize)>::new()
    );
    let ready = server.get("/ready").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    eprintln!(
        "[postgres] {terminated} connections terminated in {rounds} rounds under load: {} orders \
         accepted, {} answered 503 with Retry-After (all accepted when resent), 0 unanswered; \
         the queue drained ({:?}); /ready 200",
        t.accepted, t.unavailable, stored.states
    );
    db.close().await;
    server.stop();
    database.drop_now().await;
}

// ---------------------------------------------------------------------------------------------
// 3. The SQLite writer held by another process.
// ---------------------------------------------------------------------------------------------

/// How long the other process holds SQLite's write lock for durable orders: longer than the
/// writer's 5 s busy timeout, so that the first orders are refused and the later ones wait.
const HOLD: Duration = Duration::from_secs(7);

/// How long it holds it for orders run now: the default handler timeout (5 s, also SQLite's
/// busy timeout), so that the lock is released just as the first handlers give up on their
/// enqueues: the moment a write can race the timeout that abandons it.
const HOLD_RACE: Duration = Duration::from_secs(5);

/// A `sqlite3` process holding the write lock of a database (`BEGIN IMMEDIATE`) until released.
struct WriteLockHolder(std::process::Child);

impl WriteLockHolder {
    fn take(file: &Path) -> Self {
        use std::io::{BufRead as _, Write as _};
        let mut child = std::process::Command::new("sqlite3")
            .arg(file)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("run sqlite3 (the SQLite command-line shell)");
        let stdin = child.stdin.as_mut().unwrap();
        stdin
            .write_all(b".timeout 10000\nBEGIN IMMEDIATE;\nSELECT 'held';\n")
            .unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "held", "sqlite3 did not take the write lock");
        Self(child)
    }

    fn release(mut self) {
        use std::io::Write as _;
        let stdin = self.0.stdin.as_mut().unwrap();
        stdin.write_all(b"ROLLBACK;\n.quit\n").unwrap();
        stdin.flush().unwrap();
        let status = self.0.wait().unwrap();
        assert!(status.success(), "sqlite3 failed: {status}");
    }
}

impl Drop for WriteLockHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sqlite_file(dir: &TempDir) -> PathBuf {
    dir.path().join("data/coordinator.db")
}

/// Posts orders from 8 clients while another process holds the SQLite writer for `hold`;
/// returns every answer.
async fn post_while_the_writer_is_held(
    server: &Server,
    dir: &TempDir,
    prefix: &str,
    hold: Duration,
) -> Vec<Answer> {
    let holder = WriteLockHolder::take(&sqlite_file(dir));
    let held_at = Instant::now();
    let load = Load::start(server.addr, prefix, 1_000_000, 8);
    tokio::time::sleep(hold.saturating_sub(held_at.elapsed())).await;
    holder.release();
    load.stop();
    load.answers().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_writer_held_by_another_process_refuses_orders_with_503_and_keeps_the_rest() {
    const HANDLERS: [&str; 2] = ["demo.enroll_learner", "demo.record_order"];
    let dir = TempDir::new();
    let url = dir.sqlite_url();
    let config = dir.config(&config_with_orders(&url, ORDERS_DURABLE_OK, FAST_WORKER));
    let server = start(&config, &Env::new());
    let answers = post_while_the_writer_is_held(&server, &dir, "HELD", HOLD).await;
    let t = tally(&answers);
    assert_eq!(t.connection_error, 0, "{t:?}");
    assert!(
        t.unavailable >= 1,
        "the writer was held: some orders must be refused: {t:?}"
    );

    let resent = resend_until_taken(&server, &answers, Duration::from_secs(20)).await;
    let resent_duplicates = resent.iter().filter(|a| a.duplicate()).count();
    let mut all = answers.clone();
    all.extend(resent.iter().cloned());
    let db = Db::open(&url).await;
    let orders: HashSet<&str> = all.iter().map(|a| a.order.as_str()).collect();
    let stored = until_stored(&db, Duration::from_secs(30), "the queue drains", |s| {
        s.pending() == 0 && s.enrolls.len() >= orders.len()
    })
    .await;
    check_durable_orders(&stored, &all, &HANDLERS);
    assert_eq!(
        resent_duplicates, 0,
        "orders answered 503 were stored all the same (a resend found them duplicates)"
    );
    assert_eq!(stored.states.get("dead"), None, "{:?}", stored.states);
    assert_eq!(
        enrolled_more_than_once(&stored),
        Vec::<(String, usize)>::new()
    );
    let ready = server.get("/ready").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    eprintln!(
        "[sqlite] writer held {HOLD:?} by sqlite3: {} orders posted meanwhile, {} accepted, {} \
         answered 503 with Retry-After; resent: {} accepted, {} duplicates; drained ({:?})",
        answers.len(),
        t.accepted,
        t.unavailable,
        resent.iter().filter(|a| a.accepted()).count(),
        resent_duplicates,
        stored.states
    );
    db.close().await;
    server.stop();
}

/// Orders run now while another process holds the writer for [`HOLD_RACE`]: the handlers'
/// enqueues wait, the lock is released just as the handlers time out, and each order answered
/// 503 must have no enrollment task (its enqueue was abandoned, so its write must not land),
/// and the server must write again afterwards: resent, every order is accepted.
///
/// Before the fix in `coordinator-sqlite/src/writer.rs`, an enqueue abandoned just after its
/// `BEGIN IMMEDIATE` succeeded left the writer inside a transaction no one owned, and every
/// later write failed ("attempted to communicate with a crashed background worker"): the
/// resends below were refused until the process restarted (2 runs in 10). A write abandoned
/// during its COMMIT itself can still land (see `coordinator-sqlite/src/enqueue.rs`): seen once
/// in about 30 runs before the fix, never in 40 after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_handler_whose_enqueue_timed_out_leaves_no_task_behind() {
    let dir = TempDir::new();
    let url = dir.sqlite_url();
    let config = dir.config(&config_with_orders(&url, ORDERS_RUN_NOW, FAST_WORKER));
    let server = start(&config, &Env::new());
    let answers = post_while_the_writer_is_held(&server, &dir, "RACE", HOLD_RACE).await;
    let t = tally(&answers);
    assert_eq!(t.connection_error, 0, "{t:?}");
    assert!(
        t.unavailable >= 1,
        "the writer was held: some orders must be refused: {t:?}"
    );
    for a in answers.iter().filter(|a| a.status == Some(503)) {
        assert!(
            a.body.contains("demo.enroll_learner"),
            "a 503 names the handler that failed: {}",
            a.body
        );
    }

    // Give any write still on its way the time to land, then look: no enrollment task for an
    // order answered 503.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let db = Db::open(&url).await;
    let stored = Stored::read(&db).await;
    let refused: Vec<&Answer> = answers.iter().filter(|a| !a.accepted()).collect();
    let leaked: Vec<&str> = refused
        .iter()
        .filter(|a| !stored.enroll_states(&a.order).is_empty())
        .map(|a| a.order.as_str())
        .collect();
    assert!(
        leaked.is_empty(),
        "{} of {} orders answered 503 have their {ENROLL} task stored all the same (the enqueue \
         timed out in the handler, then its write landed): {leaked:?}",
        leaked.len(),
        refused.len()
    );

    // Sent again, each refused order is accepted, and every accepted order enrolls once.
    let resent = resend_until_taken(&server, &answers, Duration::from_secs(20)).await;
    let mut all = answers.clone();
    all.extend(resent.iter().cloned());
    let accepted: HashSet<&str> = all
        .iter()
        .filter(|a| a.accepted())
        .map(|a| a.order.as_str())
        .collect();
    let stored = until_stored(&db, Duration::from_secs(30), "every enrollment ran", |s| {
        s.pending() == 0 && s.enrolls.len() >= accepted.len()
    })
    .await;
    for number in &accepted {
        assert_eq!(
            stored.enroll_states(number),
            ["succeeded"],
            "order {number}"
        );
    }
    assert_eq!(
        stored.enrolls.len(),
        accepted.len(),
        "no task of an order not accepted"
    );
    let ready = server.get("/ready").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    eprintln!(
        "[sqlite] run-now orders with the writer held {HOLD_RACE:?}: {} posted, {} accepted, {} \
         answered 503 naming demo.enroll_learner, of which {} left a task behind; all accepted \
         when resent",
        answers.len(),
        t.accepted,
        t.unavailable,
        leaked.len()
    );
    db.close().await;
    server.stop();
}

// ---------------------------------------------------------------------------------------------
// 4. A read-only database.
// ---------------------------------------------------------------------------------------------

/// A path made read-only for this process, undone when dropped: `chmod a-w` for a user, and
/// for root (whom modes do not stop) the immutable attribute, `chattr +i`, which binds root too.
struct ReadOnly {
    path: PathBuf,
    immutable: bool,
    mode: u32,
}

impl ReadOnly {
    /// Makes `path` read-only, or says why it cannot be done here.
    fn make(path: &Path) -> Result<Self, String> {
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        let metadata = std::fs::metadata(path).map_err(|e| e.to_string())?;
        let mode = metadata.permissions().mode();
        if running_as_root() {
            let out = std::process::Command::new("chattr")
                .arg("+i")
                .arg(path)
                .output()
                .map_err(|e| format!("running as root, and `chattr` cannot run: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "running as root, and `chattr +i` fails on {} (owner uid {}): {}",
                    path.display(),
                    metadata.uid(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            return Ok(Self {
                path: path.to_owned(),
                immutable: true,
                mode,
            });
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & !0o222))
            .map_err(|e| e.to_string())?;
        Ok(Self {
            path: path.to_owned(),
            immutable: false,
            mode,
        })
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt as _;
        if self.immutable {
            let _ = std::process::Command::new("chattr")
                .arg("-i")
                .arg(&self.path)
                .status();
        } else {
            let _ =
                std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(self.mode));
        }
    }
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

/// Runs `coordinator --config <config> serve`, which must exit within 20 s: (code, stderr).
fn serve_until_exit(config: &Path) -> (Option<i32>, String) {
    let mut child = support::coordinator()
        .arg("--config")
        .arg(config)
        .arg("serve")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start coordinator serve");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "coordinator serve started on a read-only database (still running after 20 s):\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    use std::io::Read as _;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status.code(), stderr)
}

#[test]
fn sqlite_serve_refuses_a_read_only_database_naming_the_file_and_the_reason() {
    let dir = TempDir::new();
    let url = dir.sqlite_url();
    let config = dir.config(&config_with_orders(&url, ORDERS_DURABLE_OK, ""));
    let (code, out, err) = support::run_cli(&config, &["migrate"]);
    assert_eq!(code, 0, "{out}{err}");
    let file = sqlite_file(&dir);
    let folder = file.parent().unwrap().to_owned();
    let shown = file.display().to_string();

    // The file read-only (its folder writable: SQLite opens it read-only, and takes its write
    // lock in the -shm file all the same).
    let read_only = match ReadOnly::make(&file) {
        Ok(read_only) => read_only,
        Err(why) => {
            eprintln!("note: skipping: cannot make a file read-only here: {why}");
            return;
        }
    };
    let (code, stderr) = serve_until_exit(&config);
    drop(read_only);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(!stderr.contains("listening on"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot use the sqlite database {shown}: it cannot be written"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("readonly database"), "{stderr}");

    // The folder read-only, the database gone: it cannot be created.
    for extra in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{shown}{extra}"));
    }
    let read_only =
        ReadOnly::make(&folder).expect("the folder can be made read-only as the file was");
    let (code, stderr) = serve_until_exit(&config);
    drop(read_only);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot use the sqlite database {shown}: it cannot be opened or created"
        )),
        "{stderr}"
    );
    assert!(!file.exists(), "nothing was created");

    // Writable again: it starts.
    let server = start(&config, &Env::new());
    server.stop();
}

// ---------------------------------------------------------------------------------------------
// 5. Poison values in every stored field.
// ---------------------------------------------------------------------------------------------

/// `POST /api/demo/webhooks/payments` with `body`, signed as the payment processor signs.
async fn deliver_webhook(server: &Server, body: &str) -> Reply {
    let signature = coordinator_demo::sign_now(WEBHOOK_SECRET, body.as_bytes());
    support::request(
        server.addr,
        "POST",
        "/api/demo/webhooks/payments",
        &[
            ("content-type", "application/json"),
            ("x-demo-signature", &signature),
        ],
        Some(body.to_owned()),
    )
    .await
}

/// An order that must be taken and enrolled: later work still flows.
async fn an_order_still_flows(server: &Server, db: &Db, number: &str) {
    let answer = post_order(server.addr, number, "grace@example.com").await;
    assert!(answer.accepted(), "{answer:?}\n{}", server.logs());
    until_stored(db, Duration::from_secs(20), number, |s| {
        s.enroll_states(number) == ["succeeded"]
    })
    .await;
    let ready = server.get("/ready").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
}

async fn poison_values_are_refused_or_stored_and_nothing_stops(url: &str, backend: &str) {
    let dir = TempDir::new();
    let config = dir.config(&config_with_orders(url, ORDERS_DURABLE_OK, FAST_WORKER));
    let server = start(&config, &Env::new());
    let db = Db::open(url).await;

    // An event whose type holds a NUL: taken, and its task's result (which names the type)
    // holds the NUL; it is stored, and the tasks after it run.
    let reply = deliver_webhook(
        &server,
        r#"{"id": "evt_poison_type", "type": "payment.\u0000refunded"}"#,
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let id = reply.json()["task_id"].as_str().unwrap().to_owned();
    let done = task_in_state(&server, &id, "succeeded", Duration::from_secs(20)).await;
    let result = done["result"].as_str().unwrap();
    assert!(
        result.starts_with("ignored event type payment.") && result.ends_with("refunded"),
        "{done:#}"
    );
    an_order_still_flows(&server, &db, &format!("POISON-{backend}-1")).await;

    // An event id with a NUL: refused before anything is recorded.
    let reply = deliver_webhook(
        &server,
        r#"{"id": "evt_\u0000nul", "type": "payment.refunded"}"#,
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.header("content-type"), "application/problem+json");
    assert!(reply.body.contains("control character"), "{}", reply.body);
    assert_eq!(
        db.count(
            "SELECT CAST(COUNT(*) AS TEXT) FROM coordinator_inbox WHERE source = 'demo.payments'"
        )
        .await,
        1,
        "only the first event is in the inbox"
    );

    // An order number or course run with a NUL: refused.
    for (number, course) in [("EDX-\u{0}1", COURSE), ("EDX-NUL-2", "course-v1:\u{0}X")] {
        let mut body = order(number, "ada@example.com");
        body["course_run_key"] = Value::from(course);
        let reply = server.post("/api/demo/orders", &body).await;
        assert_eq!(reply.status, 400, "{number:?} {course:?}: {}", reply.body);
        assert_eq!(reply.header("content-type"), "application/problem+json");
        assert!(reply.body.contains("control character"), "{}", reply.body);
    }
    assert_eq!(
        db.count(
            "SELECT CAST(COUNT(*) AS TEXT) FROM coordinator_inbox WHERE source = 'demo.orders'"
        )
        .await,
        1,
        "no refused order is recorded"
    );

    // An email with a NUL (personal data, inside the stored event): taken, stored as sent, and
    // delivered to both handlers.
    let number = format!("POISON-{backend}-EMAIL");
    let answer = post_order(server.addr, &number, "ada\u{0}@example.com").await;
    assert!(answer.accepted(), "{answer:?}");
    let stored = until_stored(&db, Duration::from_secs(20), "the poisoned order", |s| {
        s.enroll_states(&number) == ["succeeded"]
    })
    .await;
    let dispatch = answer.dispatch_id.as_deref().unwrap();
    let deliveries = &stored.deliveries[dispatch];
    assert_eq!(deliveries.len(), 2, "{deliveries:?}");
    assert!(
        deliveries.iter().all(|(_, state, _)| state == "succeeded"),
        "{deliveries:?}"
    );
    let payload = db
        .rows(&format!(
            "SELECT payload FROM coordinator_tasks WHERE task = 'deliver:demo.record_order' \
             AND CAST(origin_dispatch AS TEXT) = '{dispatch}'"
        ))
        .await;
    let event: Value = serde_json::from_str(payload[0][0].as_deref().unwrap()).unwrap();
    assert_eq!(event["payload"]["email"], "ada\u{0}@example.com");
    an_order_still_flows(&server, &db, &format!("POISON-{backend}-2")).await;

    let states = Stored::read(&db).await.states;
    assert_eq!(states.get("dead"), None, "no task died: {states:?}");
    db.close().await;
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_poison_values_are_refused_or_stored_and_nothing_stops() {
    // Not beside the timing-sensitive crash measurements (they take the same lock).
    let _heavy = Heavy::lock().await;
    let dir = TempDir::new();
    poison_values_are_refused_or_stored_and_nothing_stops(&dir.sqlite_url(), "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_poison_values_are_refused_or_stored_and_nothing_stops() {
    // Not beside the timing-sensitive crash measurements (they take the same lock).
    let _heavy = Heavy::lock().await;
    let Some(database) = PgDatabase::create().await else {
        return;
    };
    poison_values_are_refused_or_stored_and_nothing_stops(&database.url, "postgres").await;
    database.drop_now().await;
}

// ---------------------------------------------------------------------------------------------
// 6. Edges: idle, slow and oversized clients; SIGTERM with connections open.
// ---------------------------------------------------------------------------------------------

/// A response read off a raw connection: its head (status line and headers) and body.
#[derive(Debug)]
struct RawResponse {
    head: String,
    body: String,
}

impl RawResponse {
    fn status(&self) -> u16 {
        self.head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// Reads one response (with a Content-Length body) from `stream` within `limit`; `Err` with
/// why not (the connection closed, or nothing came in time).
async fn read_response(
    stream: &mut tokio::net::TcpStream,
    limit: Duration,
) -> Result<RawResponse, String> {
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.trim()
                            .eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + length {
                    let body =
                        String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).into_owned();
                    return Ok(RawResponse { head, body });
                }
            }
            match stream.read(&mut chunk).await {
                Ok(0) => return Err(format!("closed after {} bytes", buf.len())),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    };
    tokio::time::timeout(limit, read)
        .await
        .unwrap_or_else(|_| Err(format!("nothing within {limit:?}")))
}

/// Waits (at most `limit`) until the server closes `stream`: how long it took, and what it
/// sent meanwhile; `None` if it stayed open.
async fn closed_within(
    stream: &mut tokio::net::TcpStream,
    limit: Duration,
) -> Option<(Duration, String)> {
    let started = Instant::now();
    let mut sent = Vec::new();
    let mut chunk = [0u8; 4096];
    let wait = async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => sent.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(limit, wait).await.ok()?;
    Some((
        started.elapsed(),
        String::from_utf8_lossy(&sent).into_owned(),
    ))
}

async fn connect(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(addr).await.unwrap()
}

const GET_HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nhost: faults\r\n\r\n";

/// A problem answer, as every refusal must be: its status, `application/problem+json`, and the
/// request id header.
fn assert_problem(status: u16, content_type: &str, request_id: &str, body: &str, expected: u16) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(
        content_type, "application/problem+json",
        "{expected}: {body}"
    );
    assert!(
        !request_id.is_empty(),
        "{expected} without x-request-id: {body}"
    );
    let problem: Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{expected}: not JSON ({e}): {body}"));
    assert_eq!(problem["status"], expected, "{problem}");
    assert!(
        problem["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{problem}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_idle_slow_and_oversized_clients_are_cut_off_and_told_why() {
    let dir = TempDir::new();
    let config = dir.config(&config_with_orders(&dir.sqlite_url(), ORDERS_RUN_NOW, ""));
    let env = Env::new()
        .with("COORDINATOR__SERVER__IDLE_TIMEOUT", "1s")
        .with("COORDINATOR__SERVER__BODY_TIMEOUT", "1s")
        .with("COORDINATOR__SERVER__MAX_CONNECTIONS", "4");
    let server = start(&config, &env);
    let addr = server.addr;

    // An idle keep-alive connection, and one whose request head stops half-way: each closed
    // once it has gone [server] idle_timeout (1 s) without a complete head.
    let keep_alive = async {
        let mut stream = connect(addr).await;
        stream.write_all(GET_HEALTH).await.unwrap();
        let first = read_response(&mut stream, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(first.status(), 200, "{first:?}");
        closed_within(&mut stream, Duration::from_secs(5)).await
    };
    let half_head = async {
        let mut stream = connect(addr).await;
        stream
            .write_all(b"GET /health HTTP/1.1\r\nhost: faults\r\n")
            .await
            .unwrap();
        closed_within(&mut stream, Duration::from_secs(5)).await
    };
    let (keep_alive, half_head) = tokio::join!(keep_alive, half_head);
    let (idle_closed, idle_sent) = keep_alive.expect("an idle keep-alive connection stays open");
    assert!(
        idle_closed >= Duration::from_millis(800) && idle_closed <= Duration::from_millis(2500),
        "idle keep-alive closed after {idle_closed:?} (idle_timeout 1s)"
    );
    assert_eq!(
        idle_sent, "",
        "nothing is sent on an idle connection it closes"
    );
    let (half_closed, half_sent) = half_head.expect("a half-sent request head stays open");
    assert!(
        half_closed >= Duration::from_millis(800) && half_closed <= Duration::from_millis(2500),
        "half-sent head closed after {half_closed:?} (idle_timeout 1s)"
    );

    // With max_connections = 4, four open connections (sending nothing) hold every slot: a
    // fifth waits, unanswered, and is answered as soon as one of the four closes.
    let mut holders = Vec::new();
    for _ in 0..4 {
        holders.push(connect(addr).await);
    }
    let held_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fifth = connect(addr).await;
    fifth.write_all(GET_HEALTH).await.unwrap();
    let early = read_response(&mut fifth, Duration::from_millis(300)).await;
    assert!(
        early.is_err(),
        "a fifth connection was served while four held max_connections = 4: {early:?}"
    );
    drop(holders.pop());
    let answered = read_response(&mut fifth, Duration::from_secs(5))
        .await
        .unwrap();
    let waited = held_at.elapsed();
    assert_eq!(answered.status(), 200, "{answered:?}");
    assert!(
        waited < Duration::from_millis(900),
        "answered only after {waited:?}: not when a slot freed, but when the idle timeout closed \
         the others"
    );
    drop(holders);
    drop(fifth);

    // A body that never finishes: 408, a problem.
    let mut slow = connect(addr).await;
    slow.write_all(
        format!(
            "POST /api/demo/orders HTTP/1.1\r\nhost: faults\r\nauthorization: Bearer {TOKEN}\r\n\
             content-type: application/json\r\ncontent-length: 200\r\n\r\n{{\"order_number\""
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let timed_out = read_response(&mut slow, Duration::from_secs(5))
        .await
        .unwrap();
    assert_problem(
        timed_out.status(),
        timed_out.header("content-type").unwrap_or(""),
        timed_out.header("x-request-id").unwrap_or(""),
        &timed_out.body,
        408,
    );

    // A 9 KiB target: 414; 120 headers: 431; problems both.
    let long = format!("/health?pad={}", "a".repeat(9 * 1024));
    let reply = support::request(addr, "GET", &long, &[], None).await;
    assert_problem(
        reply.status,
        reply.header("content-type"),
        reply.header("x-request-id"),
        &reply.body,
        414,
    );
    let names: Vec<String> = (0..120).map(|i| format!("x-filler-{i}")).collect();
    let headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
    let reply = support::request(addr, "GET", "/health", &headers, None).await;
    assert_problem(
        reply.status,
        reply.header("content-type"),
        reply.header("x-request-id"),
        &reply.body,
        431,
    );

    // Beyond what the HTTP layer reads at all (a 64 KiB head, 256 headers) it answers itself,
    // and closes: a status without a problem body or request id, as hyper has no hook for its
    // own answers; told all the same.
    for (what, head) in [
        (
            "a 70 KiB target",
            format!(
                "GET /health?pad={} HTTP/1.1\r\nhost: faults\r\n\r\n",
                "a".repeat(70 * 1024)
            ),
        ),
        (
            "300 headers",
            format!(
                "GET /health HTTP/1.1\r\nhost: faults\r\n{}\r\n",
                (0..300)
                    .map(|i| format!("x-filler-{i}: 1\r\n"))
                    .collect::<String>()
            ),
        ),
    ] {
        let mut stream = connect(addr).await;
        stream.write_all(head.as_bytes()).await.unwrap();
        let refused = read_response(&mut stream, Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
        let expected = if what.contains("target") { 414 } else { 431 };
        assert_eq!(refused.status(), expected, "{what}: {refused:?}");
    }

    let health = support::request(addr, "GET", "/health", &[], None).await;
    assert_eq!(health.status, 200);
    eprintln!(
        "[sqlite] idle keep-alive closed after {idle_closed:?}, half-sent head after \
         {half_closed:?} (sent {:?}); the fifth connection over max_connections = 4 answered \
         {waited:?} after the four were opened, once one closed; 408, 414, 431 are problems",
        half_sent.lines().next().unwrap_or(""),
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sigterm_with_idle_and_half_sent_connections_exits_at_once() {
    let dir = TempDir::new();
    let config = dir.config(&config_with_orders(&dir.sqlite_url(), ORDERS_RUN_NOW, ""));
    // Timeouts far beyond the wait below: only the shutdown can close these connections.
    let env = Env::new()
        .with("COORDINATOR__SERVER__IDLE_TIMEOUT", "60s")
        .with("COORDINATOR__SERVER__BODY_TIMEOUT", "60s");
    let mut server = start(&config, &env);
    let addr = server.addr;
    let mut silent = connect(addr).await;
    let mut kept_alive = connect(addr).await;
    kept_alive.write_all(GET_HEALTH).await.unwrap();
    let first = read_response(&mut kept_alive, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let mut half_head = connect(addr).await;
    half_head
        .write_all(b"POST /api/demo/orders HTTP/1.1\r\nhost: faults\r\ncontent-")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let signalled = Instant::now();
    server.terminate();
    let (silent, kept_alive, half_head) = tokio::join!(
        closed_within(&mut silent, Duration::from_secs(10)),
        closed_within(&mut kept_alive, Duration::from_secs(10)),
        closed_within(&mut half_head, Duration::from_secs(10)),
    );
    let status = server.wait(Duration::from_secs(25));
    let exited = signalled.elapsed();
    let logs = server.logs();
    assert_eq!(status.code(), Some(0), "{logs}");
    assert!(
        exited < Duration::from_secs(3),
        "SIGTERM took {exited:?} with idle and half-sent connections open ([server] \
         shutdown_grace is 20 s, idle_timeout 60 s):\n{logs}"
    );
    for (what, closed) in [
        ("a silent connection", silent),
        ("an idle keep-alive connection", kept_alive),
        ("a half-sent request head", half_head),
    ] {
        let (after, _) = closed.unwrap_or_else(|| panic!("{what} stayed open after SIGTERM"));
        assert!(
            after < Duration::from_secs(3),
            "{what} closed after {after:?}"
        );
    }
    eprintln!("[sqlite] SIGTERM with idle and half-sent connections: exited in {exited:?}");
}

// ---------------------------------------------------------------------------------------------
// 7. /ready while the worker cannot record what it ran.
// ---------------------------------------------------------------------------------------------

/// A worker that keeps its leases while the test holds it up (the default 30 s lease).
const PATIENT_WORKER: &str = r#"
[worker]
poll_interval = "20ms"
shutdown_grace = "2s"
"#;

/// Polls `/ready` (at most `limit`) until it answers `status`; returns the answer and when.
async fn ready_becomes(server: &Server, status: u16, limit: Duration) -> Option<(Reply, Duration)> {
    let started = Instant::now();
    while started.elapsed() < limit {
        let reply = support::request(server.addr, "GET", "/ready", &[], None).await;
        if reply.status == status {
            return Some((reply, started.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

/// A task finishes while another connection holds a lock on its row, so that the worker cannot
/// record its outcome: `/ready` answers 503 once that has lasted 10 s, and 200 again once the
/// lock is gone; then everything drains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_ready_is_503_while_the_worker_cannot_record_outcomes_then_200() {
    use sqlx::Connection as _;
    // Not beside the timing-sensitive crash measurements (they take the same lock).
    let _heavy = Heavy::lock().await;
    let Some(database) = PgDatabase::create().await else {
        return;
    };
    let dir = TempDir::new();
    let config = dir.config(&config_with_orders(
        &database.url,
        ORDERS_RUN_NOW,
        PATIENT_WORKER,
    ));
    // demo.learner_enrolled durable: demo.enroll_in_course stores its follow-up dispatch while
    // it runs, which the test holds up by locking the dispatch log.
    let env = Env::new().with(
        "COORDINATOR__SIGNALS__DEMO__LEARNER_ENROLLED",
        r#"{ durable = true, handlers = ["demo.welcome_learner"] }"#,
    );
    let server = start(&config, &env);
    let db = Db::open(&database.url).await;

    // 1. The dispatch log locked: the enrollment task of an order runs, and waits.
    let mut dispatches = sqlx::PgConnection::connect(&database.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut dispatches).await.unwrap();
    sqlx::query("LOCK TABLE coordinator_dispatches IN EXCLUSIVE MODE")
        .execute(&mut dispatches)
        .await
        .unwrap();
    let number = "READY-1";
    assert!(
        post_order(server.addr, number, "ada@example.com")
            .await
            .accepted()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let task_id = loop {
        let rows = db
            .rows(&format!(
                "SELECT CAST(id AS TEXT) FROM coordinator_tasks WHERE task = '{ENROLL}' \
                 AND state = 'running'"
            ))
            .await;
        if let Some(row) = rows.first() {
            break row[0].clone().unwrap();
        }
        assert!(Instant::now() < deadline, "the enrollment task never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    // 2. Its row locked by another transaction, then the dispatch log unlocked: the task
    // finishes, and its outcome cannot be recorded.
    let mut row = sqlx::PgConnection::connect(&database.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut row).await.unwrap();
    sqlx::query(&format!(
        "SELECT id FROM coordinator_tasks WHERE id = '{task_id}' FOR UPDATE"
    ))
    .execute(&mut row)
    .await
    .unwrap();
    sqlx::query("COMMIT")
        .execute(&mut dispatches)
        .await
        .unwrap();
    let blocked_at = Instant::now();
    let ready = support::request(server.addr, "GET", "/ready", &[], None).await;
    assert_eq!(ready.status, 200, "not yet: {}", ready.body);

    // 3. /ready says so once it has lasted 10 s (WorkerHealth's limit).
    let not_ready = ready_becomes(&server, 503, Duration::from_secs(13)).await;
    let held = blocked_at.elapsed();
    sqlx::query("COMMIT").execute(&mut row).await.unwrap();
    let (reply, _) = not_ready.unwrap_or_else(|| {
        panic!(
            "/ready stayed 200 for {held:?} while the worker could not record an outcome\n{}",
            server.logs()
        )
    });
    assert_eq!(reply.header("content-type"), "application/problem+json");
    assert!(
        reply.header("retry-after").is_empty()
            || reply.header("retry-after").parse::<u32>().is_ok()
    );
    assert!(
        reply
            .body
            .contains("has not been able to record finished tasks"),
        "{}",
        reply.body
    );
    assert!(held >= Duration::from_secs(9), "503 after only {held:?}");

    // 4. The lock gone: ready again, and everything drains.
    let (_, back) = ready_becomes(&server, 200, Duration::from_secs(5))
        .await
        .expect("/ready back to 200 once the outcome is recorded");
    an_order_still_flows(&server, &db, "READY-2").await;
    let stored = until_stored(&db, Duration::from_secs(20), "the queue drains", |s| {
        s.pending() == 0
    })
    .await;
    assert_eq!(stored.enroll_states(number), ["succeeded"]);
    assert_eq!(stored.states.get("dead"), None, "{:?}", stored.states);
    eprintln!(
        "[postgres] an outcome unrecordable (row locked): /ready 503 after {held:?} (\"{}\"), \
         200 again {back:?} after the lock was released; drained ({:?})",
        reply.json()["detail"].as_str().unwrap_or(""),
        stored.states
    );
    let _ = dispatches.close().await;
    let _ = row.close().await;
    db.close().await;
    server.stop();
    database.drop_now().await;
}

/// The whole task table locked by another connection (`LOCK TABLE coordinator_tasks IN ACCESS
/// EXCLUSIVE MODE`) for 13 s: an order posted meanwhile cannot be stored, and is answered 503
/// with Retry-After at `[server] request_timeout` (2 s here), and stored once sent again after;
/// the worker can neither claim nor record, so `/ready` must say so within the 10 s of
/// WorkerHealth's limit (plus polling), and be 200 again once the lock is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_locked_task_table_refuses_orders_and_makes_ready_503_then_recovers() {
    use sqlx::Connection as _;
    // Not beside the timing-sensitive crash measurements (they take the same lock).
    let _heavy = Heavy::lock().await;
    let Some(database) = PgDatabase::create().await else {
        return;
    };
    let dir = TempDir::new();
    let config = dir.config(&config_with_orders(
        &database.url,
        ORDERS_DURABLE_OK,
        PATIENT_WORKER,
    ));
    let env = Env::new().with("COORDINATOR__SERVER__REQUEST_TIMEOUT", "2s");
    let server = start(&config, &env);
    let db = Db::open(&database.url).await;
    an_order_still_flows(&server, &db, "LOCKED-1").await;

    let mut lock = sqlx::PgConnection::connect(&database.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut lock).await.unwrap();
    sqlx::query("LOCK TABLE coordinator_tasks IN ACCESS EXCLUSIVE MODE")
        .execute(&mut lock)
        .await
        .unwrap();
    let locked_at = Instant::now();
    let (refused, not_ready) = tokio::join!(
        post_order(server.addr, "LOCKED-2", "ada@example.com"),
        ready_becomes(&server, 503, Duration::from_secs(13)),
    );
    let held = locked_at.elapsed();
    sqlx::query("COMMIT").execute(&mut lock).await.unwrap();
    let _ = lock.close().await;
    let back = ready_becomes(&server, 200, Duration::from_secs(5)).await;

    // The refused order was not stored; sent again, it is, once.
    assert_eq!(refused.status, Some(503), "{refused:?}");
    assert!(
        !Stored::read(&db).await.inbox.contains("LOCKED-2"),
        "an order answered 503 was stored"
    );
    let resent = post_order(server.addr, "LOCKED-2", "ada@example.com").await;
    assert!(resent.accepted(), "{resent:?}");
    an_order_still_flows(&server, &db, "LOCKED-3").await;
    let stored = until_stored(&db, Duration::from_secs(20), "the queue drains", |s| {
        s.pending() == 0
    })
    .await;
    assert_eq!(stored.enroll_states("LOCKED-2"), ["succeeded"]);
    db.close().await;
    let logs = server.stop();
    assert!(
        back.is_some(),
        "/ready not 200 again after the lock was released"
    );

    // What is known to fail last: the answer at the request timeout has no Retry-After, and
    // /ready does not see a worker blocked on its claim.
    assert!(
        refused.retry_after.parse::<u32>().is_ok(),
        "the 503 of a request cut off by [server] request_timeout has no Retry-After header: {}",
        refused.body
    );
    let (reply, after) = not_ready.unwrap_or_else(|| {
        panic!(
            "/ready answered 200 throughout the {held:?} the task table was locked: the worker \
             waited on its claim the whole time, and WorkerHealth only counts calls that fail \
             or outcomes waiting to be recorded, not a call that never returns\n{logs}"
        )
    });
    assert!(
        after >= Duration::from_secs(9),
        "503 after only {after:?}: {}",
        reply.body
    );
}

// ---------------------------------------------------------------------------------------------
// 8. The dispatch log's loss on a crash, for dispatches that are not durable.
// ---------------------------------------------------------------------------------------------

/// `[dispatch_log] flush_interval` in the loss measurement: the default, which ADR 6 promises
/// as the bound of what a crash loses.
const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// What a crash lost of the dispatch log, and how far the log lagged behind the dispatches.
#[derive(Debug)]
struct LogLoss {
    acknowledged: usize,
    missing: usize,
    /// From the last acknowledged dispatch that is stored to the last acknowledged.
    span: Duration,
    /// How long before the kill the oldest missing dispatch was acknowledged.
    oldest_missing: Duration,
    /// The longest time from a dispatch (its `sent_at_ms`) to its row being written, over every
    /// stored dispatch (`stored`), by the server's clock: a crash loses what lags.
    max_lag: Duration,
    stored: usize,
}

/// The ids of the demo.order_placed dispatches stored.
async fn stored_dispatch_ids(db: &Db) -> HashSet<String> {
    db.rows(
        "SELECT CAST(id AS TEXT) FROM coordinator_dispatches WHERE signal = 'demo.order_placed'",
    )
    .await
    .into_iter()
    .map(|r| r[0].clone().unwrap())
    .collect()
}

/// Adds to the (migrated) dispatch log a column that the database fills with the time each
/// row is written, for the measurement only: the server's inserts do not name it.
async fn time_dispatch_rows(db: &Db) {
    match db {
        Db::Pg(pool) => {
            sqlx::query(
                "ALTER TABLE coordinator_dispatches ADD COLUMN stored_at_ms BIGINT \
                 DEFAULT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT",
            )
            .execute(pool)
            .await
            .unwrap();
        }
        Db::Lite(pool) => {
            for sql in [
                "ALTER TABLE coordinator_dispatches ADD COLUMN stored_at_ms INTEGER",
                "CREATE TRIGGER coordinator_dispatches_timed AFTER INSERT ON \
                 coordinator_dispatches BEGIN UPDATE coordinator_dispatches SET stored_at_ms = \
                 CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) WHERE id = NEW.id; END",
            ] {
                sqlx::query(sql).execute(pool).await.unwrap();
            }
        }
    }
}

/// Orders run now (their dispatches go through the buffered dispatch log), posted by 16
/// clients for a second and a half, then SIGKILL; the acknowledged dispatch ids (from the 202
/// answers, with the time each came) are compared to those stored, and each stored row's
/// write time to its dispatch's.
async fn measure_dispatch_log_loss(url: &str, backend: &str) -> LogLoss {
    let dir = TempDir::new();
    let config = dir.config(&config_with_orders(url, ORDERS_RUN_NOW, FAST_WORKER));
    let env = Env::new().with("COORDINATOR__DISPATCH_LOG__FLUSH_INTERVAL", "100ms");
    let mut server = start(&config, &env);
    let db = Db::open(url).await;
    time_dispatch_rows(&db).await;
    let load = Load::start(server.addr, &format!("LOG-{backend}"), 1_000_000, 16);
    load.until_accepted(50, Duration::from_secs(30), &server)
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    load.stop();
    let killed_at = Instant::now();
    server.kill_9();
    let answers = load.answers().await;
    tally(&answers);
    let stored = stored_dispatch_ids(&db).await;
    let lags: Vec<u64> = db
        .rows(
            "SELECT CAST(stored_at_ms - sent_at_ms AS TEXT) FROM coordinator_dispatches \
             WHERE signal = 'demo.order_placed'",
        )
        .await
        .into_iter()
        .map(|r| r[0].as_deref().unwrap().parse::<i64>().unwrap().max(0) as u64)
        .collect();
    db.close().await;

    let acknowledged: Vec<&Answer> = answers.iter().filter(|a| a.accepted()).collect();
    let is_stored = |a: &Answer| stored.contains(a.dispatch_id.as_deref().unwrap());
    let missing: Vec<&&Answer> = acknowledged.iter().filter(|a| !is_stored(a)).collect();
    let last = acknowledged.iter().map(|a| a.at).max().unwrap();
    let last_stored = acknowledged
        .iter()
        .filter(|a| is_stored(a))
        .map(|a| a.at)
        .max()
        .unwrap_or(last);
    let loss = LogLoss {
        acknowledged: acknowledged.len(),
        missing: missing.len(),
        span: last.saturating_duration_since(last_stored),
        oldest_missing: missing
            .iter()
            .map(|a| killed_at.saturating_duration_since(a.at))
            .max()
            .unwrap_or_default(),
        max_lag: Duration::from_millis(lags.iter().max().copied().unwrap_or_default()),
        stored: lags.len(),
    };
    eprintln!(
        "[{backend}] dispatch log on SIGKILL: {} of {} acknowledged dispatches missing, the \
         oldest acknowledged {:?} before the kill; {:?} from the last stored to the last \
         acknowledged; the longest a stored report waited for its write: {:?} (of {})",
        loss.missing, loss.acknowledged, loss.oldest_missing, loss.span, loss.max_lag, loss.stored
    );
    loss
}

/// The bound a crash may cost the dispatch log: what waits for the flush interval, plus the
/// batch being written when the process dies (a write takes a few milliseconds here; 150 ms is
/// room for a loaded two-core machine).
const LOSS_BOUND: Duration = Duration::from_millis(FLUSH_INTERVAL.as_millis() as u64 + 150);

fn assert_loss_within_bound(loss: &LogLoss, backend: &str) {
    assert!(loss.acknowledged >= 50 && loss.stored >= 50, "{loss:?}");
    // How late reports reached the database during the run: the mechanism behind the bound.
    // A machine starved of CPU (other builds on the 2 cores) delays the flush now and then, so
    // this is held to a looser bound; what a crash actually lost is held to the strict one.
    assert!(
        loss.max_lag <= LOSS_BOUND * 4,
        "[{backend}] a dispatch report reached the database up to {:?} after its dispatch, far \
         beyond the bound of {LOSS_BOUND:?} (flush_interval {FLUSH_INTERVAL:?} plus one batch \
         write): {loss:?}",
        loss.max_lag
    );
    assert!(
        loss.oldest_missing <= LOSS_BOUND && loss.span <= LOSS_BOUND,
        "[{backend}] a crash lost dispatch reports acknowledged up to {:?} before it (the last \
         stored one was acknowledged {:?} before the last one), beyond the bound of {LOSS_BOUND:?} \
         (flush_interval {FLUSH_INTERVAL:?} plus one batch write): {loss:?}",
        loss.oldest_missing,
        loss.span,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_crash_loses_at_most_the_flush_interval_of_the_dispatch_log() {
    let _heavy = Heavy::lock().await;
    let dir = TempDir::new();
    let loss = measure_dispatch_log_loss(&dir.sqlite_url(), "sqlite").await;
    assert_loss_within_bound(&loss, "sqlite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_crash_loses_at_most_the_flush_interval_of_the_dispatch_log() {
    let _heavy = Heavy::lock().await;
    let Some(database) = PgDatabase::create().await else {
        return;
    };
    let loss = measure_dispatch_log_loss(&database.url, "postgres").await;
    database.drop_now().await;
    assert_loss_within_bound(&loss, "postgres");
}
