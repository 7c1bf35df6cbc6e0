//! The harness of the end-to-end tests: the real `coordinator` binary in a temporary folder, a
//! small HTTP client, and a fresh PostgreSQL database per test.

#![allow(dead_code)] // Each test binary uses part of it.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// The API token the test servers accept.
pub const TOKEN: &str = "e2e-token-5f1c2a";

/// The binary, with no `COORDINATOR*` variable nor `RUST_LOG` from the test's environment.
pub fn coordinator() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_coordinator"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("COORDINATOR") {
            command.env_remove(key);
        }
    }
    command.env_remove("RUST_LOG");
    command
}

/// A folder of its own for one test, removed when dropped.
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    pub fn new() -> Self {
        Self(tempfile::tempdir().expect("create a temporary folder"))
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// Writes `coordinator.toml` and returns its path.
    pub fn config(&self, toml: &str) -> PathBuf {
        let path = self.path().join("coordinator.toml");
        std::fs::write(&path, toml).expect("write the configuration");
        path
    }

    /// The URL of a SQLite file in this folder.
    pub fn sqlite_url(&self) -> String {
        format!("sqlite://{}/data/coordinator.db", self.path().display())
    }
}

/// The embedded default configuration's wiring with `extra` after it (no `[server]` section in
/// `extra`: the base sets bind and shutdown grace).
pub fn config_text(storage_url: &str, extra: &str) -> String {
    config_with_orders(storage_url, ORDERS_RUN_NOW, extra)
}

/// demo.order_placed to two handlers that succeed, run while the order is posted: each order
/// enqueues one demo.enroll_in_course task, and is answered 202.
pub const ORDERS_RUN_NOW: &str = r#"["demo.enroll_learner", "demo.record_order"]"#;

/// demo.order_placed durable, to the default configuration's four handlers (two of which fail
/// and panic): each order stores four deliveries.
pub const ORDERS_DURABLE: &str = r#"{ durable = true, handlers = ["demo.enroll_learner", "demo.record_order", "demo.notify_unreachable_crm", "demo.audit_with_bug"] }"#;

/// [`config_text`] with demo.order_placed wired as `orders` says (a TOML value).
pub fn config_with_orders(storage_url: &str, orders: &str, extra: &str) -> String {
    format!(
        r#"
[extensions]
enabled = ["demo"]

[signals]
"demo.order_placed" = {orders}
"demo.payment_refunded" = ["demo.revoke_seat"]
"demo.learner_enrolled" = ["demo.welcome_learner"]

[filters."demo.payment_page_redirect_requested"]
pipeline = ["demo.block_embargoed_country", "demo.choose_processor", "demo.build_redirect_url"]

[server]
bind = "127.0.0.1:0"
shutdown_grace = "20s"

[storage]
url = "{storage_url}"
max_connections = 4

[dispatch_log]
flush_interval = "20ms"

{extra}
"#
    )
}

/// A running `coordinator serve`. Killed when dropped, if still running.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    logs: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `coordinator --config <config> serve` with `env`, and waits for its
    /// `listening on http://ADDR` line.
    pub fn start(config: &Path, env: &[(&str, &str)]) -> Self {
        let mut command = coordinator();
        command
            .arg("--config")
            .arg(config)
            .arg("serve")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        Self::spawn(command)
    }

    /// Starts an already configured `coordinator ... serve` command.
    pub fn spawn(command: Command) -> Self {
        let (child, logs, addr) =
            spawn_until(command, "coordinator serve", "`listening on`", |line| {
                line.split("listening on http://")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|addr| addr.parse::<SocketAddr>().ok())
            });
        Self { child, addr, logs }
    }

    /// Everything it logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// SIGKILL: the process dies at once, with whatever it had not written yet.
    pub fn kill_9(&mut self) {
        let status = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -KILL failed");
        let _ = self.child.wait();
    }

    /// Waits for the process to exit (at most `limit`).
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the server") {
                // Let the reader thread take the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the server did not exit within {limit:?}:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(mut self) -> String {
        self.terminate();
        let status = self.wait(Duration::from_secs(30));
        let logs = self.logs();
        assert_eq!(
            status.code(),
            Some(0),
            "the server did not exit cleanly:\n{logs}"
        );
        logs
    }

    /// `GET path` with the test token.
    pub async fn get(&self, path: &str) -> Reply {
        let auth = format!("Bearer {TOKEN}");
        request(self.addr, "GET", path, &[("authorization", &auth)], None).await
    }

    /// `POST path` with a JSON body and the test token.
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> Reply {
        let auth = format!("Bearer {TOKEN}");
        request(
            self.addr,
            "POST",
            path,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            Some(body.to_string()),
        )
        .await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Spawns `command` with its stderr read into a log, and waits (at most 60 s) for a line that
/// `ready` accepts; panics with the logs if the process exits or stays silent.
fn spawn_until<T: Send + 'static>(
    mut command: Command,
    what: &str,
    waited_for: &str,
    ready: impl Fn(&str) -> Option<T> + Send + 'static,
) -> (Child, Arc<Mutex<String>>, T) {
    command.stderr(Stdio::piped()).stdout(Stdio::null());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let stderr = child.stderr.take().expect("stderr is piped");
    let logs = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = mpsc::channel();
    let sink = Arc::clone(&logs);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            {
                let mut logs = sink.lock().unwrap();
                logs.push_str(&line);
                logs.push('\n');
            }
            if let Some(found) = ready(&line) {
                let _ = tx.send(found);
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(found) => return (child, logs, found),
            Err(_) if Instant::now() > deadline => {
                let _ = child.kill();
                panic!(
                    "{what} did not log {waited_for} within 60 s:\n{}",
                    logs.lock().unwrap()
                );
            }
            Err(_) => {
                if let Ok(Some(status)) = child.try_wait() {
                    std::thread::sleep(Duration::from_millis(100));
                    panic!(
                        "{what} exited ({status}) before logging {waited_for}:\n{}",
                        logs.lock().unwrap()
                    );
                }
            }
        }
    }
}

/// A running `coordinator worker`. Killed when dropped, if still running.
pub struct Worker {
    child: Child,
    /// The worker id it logged (the lease owner of the tasks it runs).
    pub id: String,
    logs: Arc<Mutex<String>>,
}

impl Worker {
    /// Starts `coordinator --config <config> worker` with `env`, and waits for its
    /// `worker <id> started` line.
    pub fn start(config: &Path, env: &[(&str, &str)]) -> Self {
        let mut command = coordinator();
        command
            .arg("--config")
            .arg(config)
            .arg("worker")
            .envs(env.iter().copied())
            .stdin(Stdio::null());
        let (child, logs, id) = spawn_until(
            command,
            "coordinator worker",
            "`worker <id> started`",
            |line| {
                let rest = line.split("standalone worker ").nth(1)?;
                let (id, after) = rest.split_once(' ')?;
                after.starts_with("started").then(|| id.to_owned())
            },
        );
        Self { child, id, logs }
    }

    /// Everything it logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// SIGKILL: the process dies at once, holding whatever leases it held.
    pub fn kill_9(mut self) {
        let status = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -KILL failed");
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for a clean exit (at most `limit`); returns the logs.
    pub fn stop(mut self, limit: Duration) -> String {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for the worker") {
                std::thread::sleep(Duration::from_millis(100));
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the worker did not exit within {limit:?}:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let logs = self.logs();
        assert_eq!(
            status.code(),
            Some(0),
            "the worker did not exit cleanly:\n{logs}"
        );
        logs
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `coordinator --config <config> <args>` to completion: `(exit code, stdout, stderr)`.
pub fn run_cli(config: &Path, args: &[&str]) -> (i32, String, String) {
    let output = coordinator()
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run the coordinator binary");
    (
        output
            .status
            .code()
            .expect("exited, not killed by a signal"),
        String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    )
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map_or("", |v| v.to_str().unwrap_or(""))
    }
}

/// Like [`request`], but a connection that cannot be opened, or that closes before the answer,
/// is an `Err` with the reason instead of a panic (for servers that are being broken on purpose).
pub async fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> Result<Reply, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(connection);
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| format!("build the request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("{method} {path}: {e}"))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("read the body: {e}"))?
        .to_bytes();
    Ok(Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// One request on a connection of its own.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> Reply {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP handshake");
    tokio::spawn(connection);
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .expect("a valid request");
    let response = sender
        .send_request(request)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("read the body")
        .to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// An order for `POST /api/demo/orders`, with `email` as its personal data.
pub fn order(number: &str, email: &str) -> serde_json::Value {
    serde_json::json!({
        "order_number": number,
        "lms_user_id": 42,
        "email": email,
        "course_run_key": "course-v1:edX+DemoX+2024",
        "amount_cents": 4900,
    })
}

/// Polls `GET /api/v1/tasks/{id}` until the task is in `state` (at most `limit`); returns it.
#[allow(dead_code)] // not every test binary polls tasks
pub async fn task_in_state(
    server: &Server,
    id: &str,
    state: &str,
    limit: Duration,
) -> serde_json::Value {
    let deadline = Instant::now() + limit;
    loop {
        let reply = server.get(&format!("/api/v1/tasks/{id}")).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let task = reply.json();
        if task["state"] == state {
            return task;
        }
        assert!(
            Instant::now() < deadline,
            "task {id} is not {state} after {limit:?}: {task:#}\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `GET path` until `done` accepts the answer (at most 10 s).
pub async fn eventually(server: &Server, path: &str, done: impl Fn(&Reply) -> bool) -> Reply {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = server.get(path).await;
        if done(&reply) {
            return reply;
        }
        assert!(
            Instant::now() < deadline,
            "GET {path} never gave the expected answer; last: {} {}\n{}",
            reply.status,
            reply.body,
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A fresh PostgreSQL database, dropped with [`PgDatabase::drop_now`] (or when dropped).
pub struct PgDatabase {
    admin_url: String,
    pub name: String,
    pub url: String,
    dropped: bool,
}

/// The admin URL of the machine's PostgreSQL.
pub fn postgres_admin_url() -> String {
    std::env::var("COORDINATOR_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

impl PgDatabase {
    /// Creates `cc_e2e_<random>`, or `None` (with a note) when PostgreSQL is unreachable and
    /// `COORDINATOR_REQUIRE_POSTGRES` is not `1`.
    pub async fn create() -> Option<Self> {
        use sqlx::Connection as _;
        let admin_url = postgres_admin_url();
        let connected = tokio::time::timeout(
            Duration::from_secs(10),
            sqlx::PgConnection::connect(&admin_url),
        )
        .await;
        let mut admin = match connected {
            Ok(Ok(connection)) => connection,
            other => {
                let why = match other {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_owned(),
                };
                if std::env::var("COORDINATOR_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                    panic!(
                        "PostgreSQL at {admin_url} is unreachable ({why}) and COORDINATOR_REQUIRE_POSTGRES=1"
                    );
                }
                eprintln!(
                    "note: skipping: PostgreSQL at {admin_url} is unreachable ({why}); set \
                     COORDINATOR_TEST_POSTGRES_URL, or COORDINATOR_REQUIRE_POSTGRES=1 to fail instead"
                );
                return None;
            }
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("cc_e2e_{}_{nanos}", std::process::id());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("create database {name}: {e}"));
        let _ = admin.close().await;
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(base, _)| base);
        let url = format!("{base}/{name}");
        Some(Self {
            admin_url,
            name,
            url,
            dropped: false,
        })
    }

    /// Drops the database (closing any connection left).
    pub async fn drop_now(mut self) {
        self.dropped = true;
        drop_database(&self.admin_url, &self.name).await;
    }
}

async fn drop_database(admin_url: &str, name: &str) {
    use sqlx::Connection as _;
    if let Ok(mut admin) = sqlx::PgConnection::connect(admin_url).await {
        if let Err(e) = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await
        {
            eprintln!("warning: cannot drop test database {name}: {e}");
        }
        let _ = admin.close().await;
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        // A test failed before dropping it: drop it from a runtime of our own.
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                runtime.block_on(drop_database(&admin_url, &name));
            }
        })
        .join();
    }
}
