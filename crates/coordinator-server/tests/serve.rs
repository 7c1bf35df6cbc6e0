//! End-to-end tests of `coordinator serve` and `coordinator migrate`: the real binary, real
//! configuration files, a real SQLite file or PostgreSQL database, real HTTP.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::{
    ORDERS_DURABLE, PgDatabase, Server, TOKEN, TempDir, config_text, config_with_orders,
    eventually, order, request,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const EMAIL: &str = "ada.lovelace@example.com";

/// The failing deliveries retried within milliseconds, so that a test sees them retried.
const FAST_RETRIES: &str = "[handlers.\"demo.notify_unreachable_crm\"]\ninitial_backoff = \"10ms\"\nmax_backoff = \"20ms\"\n[handlers.\"demo.audit_with_bug\"]\ninitial_backoff = \"10ms\"\nmax_backoff = \"20ms\"\n";

/// POSTs an order (demo.order_placed durable, to four handlers), then finds its dispatch in the
/// dispatch log by signal and by id, each delivery stored as a task, each run on its own (the
/// failing ones retried, the others not), and no personal data anywhere.
async fn order_is_logged_with_every_outcome(server: &Server) {
    let reply = server
        .post("/api/demo/orders", &order("EDX-100001", EMAIL))
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert!(!reply.header("x-request-id").is_empty());
    let id = reply.json()["dispatch_id"].as_str().unwrap().to_owned();
    // Sent again (its answer lost, say): nothing is stored twice.
    let again = server
        .post("/api/demo/orders", &order("EDX-100001", EMAIL))
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["duplicate"], true);

    let listed = eventually(server, "/api/v1/dispatches?signal=demo.order_placed", |r| {
        r.status == 200 && r.body.contains(&id)
    })
    .await;
    let page = listed.json();
    assert!(page["next"].is_null(), "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
    assert!(
        !listed.body.contains(EMAIL),
        "personal data in the log: {}",
        listed.body
    );

    // Each delivery ran on its own: the two that succeed once, the two that fail retried.
    let done = eventually(server, &format!("/api/v1/dispatches/{id}"), |r| {
        let d = r.json();
        let state = |h: &str| {
            d["deliveries"]
                .as_array()
                .and_then(|all| all.iter().find(|x| x["handler"] == h))
                .map(|x| {
                    (
                        x["state"].as_str().unwrap_or("").to_owned(),
                        x["attempts"].as_u64().unwrap_or(0),
                    )
                })
                .unwrap_or_default()
        };
        r.status == 200
            && state("demo.enroll_learner").0 == "succeeded"
            && state("demo.record_order").0 == "succeeded"
            && state("demo.notify_unreachable_crm").1 >= 2
            && state("demo.audit_with_bug").1 >= 2
    })
    .await;
    assert!(
        !done.body.contains(EMAIL),
        "personal data in the log: {}",
        done.body
    );
    let dispatch = done.json();
    assert_eq!(dispatch["signal"], "demo.order_placed");
    assert_eq!(dispatch["sender"], "extension:demo");
    assert_eq!(
        dispatch["status"], "ok",
        "every delivery was stored: {dispatch}"
    );
    for run in dispatch["handlers"].as_array().unwrap() {
        assert_eq!(run["status"], "queued", "{dispatch}");
        assert_eq!(run["task_id"].as_str().unwrap().len(), 36, "{dispatch}");
    }
    let delivery = |handler: &str| -> Value {
        dispatch["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["handler"] == handler)
            .unwrap_or_else(|| panic!("no delivery to {handler} in {dispatch}"))
            .clone()
    };
    let enroll = delivery("demo.enroll_learner");
    assert_eq!(enroll["attempts"], 1, "run once: {enroll}");
    assert_eq!(enroll["result"].as_str().unwrap().len(), 36, "{enroll}");
    let record = delivery("demo.record_order");
    assert_eq!(record["attempts"], 1, "{record}");
    assert!(record["result"].as_str().unwrap().ends_with(" for user 42"));
    assert_eq!(
        delivery("demo.notify_unreachable_crm")["last_error"],
        serde_json::json!([
            "could not notify the CRM about order EDX-100001",
            "connection refused"
        ])
    );
    assert!(
        delivery("demo.audit_with_bug")["last_error"][0]
            .as_str()
            .unwrap()
            .contains("audit trail is empty for order EDX-100001"),
        "{dispatch}"
    );

    // The delivery is a task of the dispatch, its payload redacted.
    let task = server
        .get(&format!(
            "/api/v1/tasks/{}",
            enroll["task_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(task.status, 200, "{}", task.body);
    assert_eq!(task.json()["task"], "deliver:demo.enroll_learner");
    assert_eq!(task.json()["origin_dispatch"], id.as_str());
    assert!(
        !task.body.contains(EMAIL),
        "personal data in a task: {}",
        task.body
    );

    // The chain goes on: the delivery enqueued demo.enroll_in_course, which the embedded
    // worker ran, and the task's follow-up dispatch is logged too, sent by the task.
    let follow_up = eventually(
        server,
        "/api/v1/dispatches?signal=demo.learner_enrolled&status=ok",
        |r| r.status == 200 && r.body.contains("task:demo.enroll_in_course"),
    )
    .await;
    assert!(!follow_up.body.contains(EMAIL));

    let unknown = server
        .get("/api/v1/dispatches/01890000-0000-7000-8000-000000000000")
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.header("content-type"), "application/problem+json");
    let bad = server.get("/api/v1/dispatches/12345").await;
    assert_eq!(bad.status, 400);

    let ready = server.get("/ready").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    let metrics = server.get("/metrics").await;
    assert!(
        metrics
            .body
            .contains("coordinator_dispatches_total{signal=\"demo.order_placed\"} 1"),
        "{}",
        metrics.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_orders_are_logged_with_every_handler_outcome_and_no_personal_data() {
    let dir = TempDir::new();
    let config = dir.config(&config_with_orders(
        &dir.sqlite_url(),
        ORDERS_DURABLE,
        FAST_RETRIES,
    ));
    let server = Server::start(
        &config,
        &[("COORDINATOR__AUTH__API_TOKENS", &format!("[\"{TOKEN}\"]"))],
    );
    order_is_logged_with_every_outcome(&server).await;
    let logs = server.stop();
    assert!(!logs.contains(EMAIL), "personal data in the logs:\n{logs}");
    assert!(!logs.contains(TOKEN), "the token in the logs:\n{logs}");
    assert!(logs.contains("request_id="), "{logs}");
    assert!(logs.contains("dispatch log writer stopped"), "{logs}");
    assert!(dir.path().join("data/coordinator.db").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_orders_are_logged_with_every_handler_outcome_and_no_personal_data() {
    let Some(database) = PgDatabase::create().await else {
        return;
    };
    let dir = TempDir::new();
    let config = dir.config(&config_with_orders(
        &database.url,
        ORDERS_DURABLE,
        FAST_RETRIES,
    ));
    let server = Server::start(
        &config,
        &[("COORDINATOR__AUTH__API_TOKENS", &format!("[\"{TOKEN}\"]"))],
    );
    assert!(
        server.logs().contains("backend=postgresql"),
        "{}",
        server.logs()
    );
    order_is_logged_with_every_outcome(&server).await;
    let logs = server.stop();
    assert!(!logs.contains(EMAIL), "personal data in the logs:\n{logs}");

    // A restart finds the database migrated and the log intact.
    let server = Server::start(
        &config,
        &[("COORDINATOR__AUTH__API_TOKENS", &format!("[\"{TOKEN}\"]"))],
    );
    assert!(
        server.logs().contains("the database is up to date"),
        "{}",
        server.logs()
    );
    let page = server
        .get("/api/v1/dispatches?signal=demo.order_placed")
        .await;
    assert_eq!(page.json()["items"].as_array().unwrap().len(), 1);
    server.stop();
    database.drop_now().await;
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_failures_over_http_say_what_is_wrong() {
    const SECRET: &str = "e2e-hs256-secret-never-logged";
    let dir = TempDir::new();
    let config = dir.config(&config_text(
        &dir.sqlite_url(),
        "[auth.jwt]\nissuer = \"https://lms.test\"\nrequired_scope = \"coordinator\"\n",
    ));
    let server = Server::start(
        &config,
        &[
            ("COORDINATOR__AUTH__API_TOKENS", &format!("[\"{TOKEN}\"]")),
            ("COORDINATOR__AUTH__JWT__HS256_SECRET", SECRET),
        ],
    );
    let jwt = |claims: Value| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    };
    let good = jwt(
        serde_json::json!({"iss": "https://lms.test", "exp": now() + 300, "scope": "coordinator"}),
    );
    let cases = [
        (None, 401, "no Authorization header"),
        (Some("Token abc".to_owned()), 401, "not a Bearer token"),
        (Some("Bearer wrong-token".to_owned()), 401, "unknown token"),
        (
            Some(format!(
                "Bearer {}",
                jwt(
                    serde_json::json!({"iss": "https://lms.test", "exp": now() - 3600, "scope": "coordinator"})
                )
            )),
            401,
            "has expired",
        ),
        (
            Some(format!(
                "Bearer {}",
                jwt(
                    serde_json::json!({"iss": "https://other.test", "exp": now() + 300, "scope": "coordinator"})
                )
            )),
            401,
            "wrong issuer",
        ),
        (
            Some(format!(
                "Bearer {}",
                jwt(serde_json::json!({"iss": "https://lms.test", "exp": now() + 300}))
            )),
            403,
            "does not grant the scope \"coordinator\"",
        ),
        (Some(format!("Bearer {good}x")), 401, "bad signature"),
        (Some(format!("Bearer {good}")), 200, ""),
        (Some(format!("Bearer {TOKEN}")), 200, ""),
    ];
    for (authorization, status, detail) in cases {
        let headers: Vec<(&str, &str)> = authorization
            .as_deref()
            .map(|a| vec![("authorization", a)])
            .unwrap_or_default();
        let reply = request(server.addr, "GET", "/api/v1/catalog", &headers, None).await;
        assert_eq!(reply.status, status, "{authorization:?}: {}", reply.body);
        if status != 200 {
            assert_eq!(reply.header("content-type"), "application/problem+json");
            assert!(reply.header("www-authenticate").starts_with("Bearer"));
            let body = reply.json();
            assert!(
                body["detail"].as_str().unwrap().contains(detail),
                "{authorization:?}: {body}"
            );
        }
    }
    // The extension's protected route checks credentials too; its public neighbours do not exist,
    // so a wrong method is a 405 problem.
    let reply = request(
        server.addr,
        "POST",
        "/api/demo/orders",
        &[("content-type", "application/json")],
        Some(order("EDX-1", EMAIL).to_string()),
    )
    .await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    let logs = server.stop();
    assert!(!logs.contains(SECRET), "the secret in the logs:\n{logs}");
    assert!(!logs.contains(&good), "a token in the logs:\n{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_credentials_the_api_says_how_to_configure_them() {
    let dir = TempDir::new();
    let config = dir.config(&config_text(&dir.sqlite_url(), ""));
    let server = Server::start(&config, &[]);
    let reply = server.get("/api/v1/dispatches").await;
    assert_eq!(reply.status, 401);
    let detail = reply.json()["detail"].as_str().unwrap().to_owned();
    assert!(
        detail.contains("COORDINATOR__AUTH__API_TOKENS='[\"...\"]'"),
        "{detail}"
    );
    let health = request(server.addr, "GET", "/health", &[], None).await;
    assert_eq!(health.body, "{\"status\":\"ok\"}");
    server.stop();
}

const IN_FLIGHT: usize = 50;

/// Opens a connection and sends a request for `POST /api/demo/orders` whose body is cut in two:
/// the server is reading it (the request is in flight) until the rest is sent.
async fn half_sent_order(addr: std::net::SocketAddr, n: usize) -> (tokio::net::TcpStream, Vec<u8>) {
    let body = order(&format!("EDX-{n:06}"), EMAIL)
        .to_string()
        .into_bytes();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/demo/orders HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {TOKEN}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let (first, rest) = body.split_at(body.len() / 2);
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(first).await.unwrap();
    (stream, rest.to_vec())
}

/// The gauge of requests in flight, from `/metrics` (the scrape itself counts).
async fn in_flight(server: &Server) -> usize {
    let metrics = request(server.addr, "GET", "/metrics", &[], None).await;
    metrics
        .body
        .lines()
        .find_map(|l| l.strip_prefix("coordinator_http_requests_in_flight "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_requests_in_flight_finish_and_loses_no_dispatch_report() {
    let dir = TempDir::new();
    let config = dir.config(&config_text(&dir.sqlite_url(), ""));
    let env = [("COORDINATOR__AUTH__API_TOKENS", format!("[\"{TOKEN}\"]"))];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut server = Server::start(&config, &env);

    let mut requests = Vec::new();
    for n in 0..IN_FLIGHT {
        requests.push(half_sent_order(server.addr, n).await);
    }
    // Every request has reached the server's middleware (it is reading the bodies).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while in_flight(&server).await < IN_FLIGHT + 1 {
        assert!(std::time::Instant::now() < deadline, "{}", server.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    server.terminate();
    // Shutdown has begun once it is logged; the requests are still waiting for their bodies.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !server.logs().contains("shutting down") {
        assert!(std::time::Instant::now() < deadline, "{}", server.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let finishing = requests.into_iter().map(|(mut stream, rest)| async move {
        stream.write_all(&rest).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        String::from_utf8(answer).unwrap()
    });
    let answers = futures_util::future::join_all(finishing).await;
    let mut ids = Vec::new();
    for answer in &answers {
        assert!(
            answer.starts_with("HTTP/1.1 202"),
            "a request in flight was not answered: {answer:?}\n{}",
            server.logs()
        );
        let body = answer.split("\r\n\r\n").nth(1).unwrap();
        let json: Value = serde_json::from_str(body).unwrap();
        ids.push(json["dispatch_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), IN_FLIGHT);

    let status = server.wait(Duration::from_secs(30));
    let logs = server.logs();
    assert_eq!(status.code(), Some(0), "{logs}");
    assert!(logs.contains("dropped=0"), "{logs}");

    // Restart on the same SQLite file: every dispatch of those requests is in the log.
    let server = Server::start(&config, &env);
    for id in &ids {
        let reply = server.get(&format!("/api/v1/dispatches/{id}")).await;
        assert_eq!(reply.status, 200, "dispatch {id} was lost: {}", reply.body);
    }
    let page = server
        .get("/api/v1/dispatches?signal=demo.order_placed&limit=500")
        .await;
    assert_eq!(page.json()["items"].as_array().unwrap().len(), IN_FLIGHT);
    server.stop();
}

/// Runs `coordinator --config <config> <args>` to the end: (exit code, stdout, stderr).
fn run(config: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let output = support::coordinator()
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run coordinator");
    (
        output.status.code().expect("exited"),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn a_route_collision_refuses_to_start() {
    let dir = TempDir::new();
    let config = dir.config(&config_text(
        &dir.sqlite_url(),
        "[server.mounts]\ndemo = \"/api/v1\"\n",
    ));
    let (code, _, stderr) = run(&config, &["serve"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("extension \"demo\": route prefix /api/v1 cannot be mounted"),
        "{stderr}"
    );
    assert!(stderr.contains("overlaps /api/v1"), "{stderr}");
    assert!(!stderr.contains("listening on"), "{stderr}");
    assert!(
        !dir.path().join("data").exists(),
        "it touched the database before refusing"
    );
}

#[test]
fn every_configuration_problem_is_listed_at_once() {
    let dir = TempDir::new();
    let config = dir.config(
        r#"
[extensions]
enabled = ["demo"]

[signals]
"demo.order_plcaed" = ["demo.enroll_learner"]

[server]
bind = "not-an-address"

[storage]
url = "mysql://root:hunter2@db/cc"

[auth.jwt]
hs256_secret = "s3cret-value"
rs256_public_key = "-----BEGIN PUBLIC KEY-----"
"#,
    );
    for command in ["serve", "check"] {
        let (code, _, stderr) = run(&config, &[command]);
        assert_eq!(code, 1, "{command}: {stderr}");
        for expected in [
            "unknown signal \"demo.order_plcaed\"; did you mean \"demo.order_placed\"?",
            "[server] bind: \"not-an-address\" is not a socket address",
            "[storage] url: the scheme \"mysql\" is not supported",
            "[auth.jwt]: both hs256_secret and rs256_public_key are set",
            "4 errors",
        ] {
            assert!(
                stderr.contains(expected),
                "{command}: missing {expected:?} in:\n{stderr}"
            );
        }
        assert!(
            !stderr.contains("hunter2") && !stderr.contains("s3cret"),
            "{stderr}"
        );
    }
}

#[test]
fn migrate_dry_run_lists_then_migrate_applies() {
    let dir = TempDir::new();
    let config = dir.config(&config_text(&dir.sqlite_url(), ""));
    let (code, stdout, stderr) = run(&config, &["migrate", "--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("to apply (dry run: nothing was applied"),
        "{stdout}"
    );
    assert!(stdout.contains("coordinator/1 "), "{stdout}");

    let (code, stdout, stderr) = run(&config, &["migrate"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("applied "), "{stdout}");

    for args in [&["migrate"][..], &["migrate", "--dry-run"]] {
        let (code, stdout, _) = run(&config, args);
        assert_eq!(code, 0);
        assert_eq!(
            stdout,
            "the database is up to date: no migration to apply\n"
        );
    }
}

#[test]
fn an_unreachable_database_is_an_error_that_hides_the_password() {
    let dir = TempDir::new();
    let config = dir.config(&config_text(
        "postgres://app:hunter2@127.0.0.1:1/cc?connect_timeout=1",
        "",
    ));
    let (code, _, stderr) = run(&config, &["migrate"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("cannot connect to the postgresql database"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_no_configuration_creates_the_local_database() {
    let dir = TempDir::new();
    let mut command = support::coordinator();
    command
        .arg("serve")
        .current_dir(dir.path())
        .env("COORDINATOR__SERVER__BIND", "127.0.0.1:0");
    let server = Server::spawn(command);
    let ready = request(server.addr, "GET", "/ready", &[], None).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    let openapi = request(server.addr, "GET", "/api/openapi.json", &[], None).await;
    assert!(openapi.json()["paths"]["/api/demo/orders"]["post"].is_object());
    server.stop();
    assert!(dir.path().join("coordinator-data/coordinator.db").exists());
}
