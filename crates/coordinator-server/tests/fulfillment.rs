//! The order fulfillment and sanctions flows end to end, on the real binary, against the
//! sandbox it serves (commercetools and the LMS faked in process), on SQLite and PostgreSQL:
//! a course and an entitlement fulfilled once whatever the messages' redeliveries, an LMS that
//! fails twice then succeeds, an LMS that refuses for good, and a sanctioned order.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{PgDatabase, Server, TOKEN, TempDir, request};

/// The sandbox's commercetools token (any client credentials get it).
const CT_TOKEN: &str = "sandbox-ct-token";

/// A free local port for the server, so that its clients can be pointed at its own sandbox
/// before it starts.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn config(storage_url: &str, port: u16) -> String {
    format!(
        r#"
[extensions]
enabled = ["commercetools", "lms", "sandbox"]

[signals."commercetools.fulfillment_requested"]
durable = true
handlers = ["commercetools.fulfill_order"]

[signals."lms.fulfillment_completed"]
durable = true
handlers = ["commercetools.record_fulfillment"]

[signals."commercetools.order_state_changed"]
durable = true
handlers = ["commercetools.deactivate_sanctioned_learner"]

[tasks."lms.enroll_in_course"]
initial_backoff = "50ms"
max_backoff = "100ms"

[tasks."lms.grant_entitlement"]
initial_backoff = "50ms"
max_backoff = "100ms"

[server]
bind = "127.0.0.1:{port}"
shutdown_grace = "10s"

[server.mounts]
commercetools = "/commercetools"
sandbox = "/sandbox"

[storage]
url = "{storage_url}"
max_connections = 4

[worker]
embedded = true
poll_interval = "20ms"
shutdown_grace = "5s"

[extension.lms]
url = "http://127.0.0.1:{port}/sandbox/lms"
client_id = "sandbox"
client_secret = "sandbox"
timeout = "5s"

[extension.commercetools]
api_url = "http://127.0.0.1:{port}/sandbox/commercetools"
auth_url = "http://127.0.0.1:{port}/sandbox/commercetools"
project_key = "sandbox"
client_id = "sandbox"
client_secret = "sandbox"
scopes = ["manage_project:sandbox"]
timeout = "5s"
"#
    )
}

async fn call(
    server: &Server,
    method: &str,
    path: &str,
    auth: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let auth = format!("Bearer {auth}");
    let mut headers = vec![("authorization", auth.as_str())];
    if body.is_some() {
        headers.push(("content-type", "application/json"));
    }
    let reply = request(
        server.addr,
        method,
        path,
        &headers,
        body.map(|b| b.to_string()),
    )
    .await;
    (
        reply.status,
        serde_json::from_str(&reply.body).unwrap_or(Value::Null),
    )
}

/// Seeds an order in the sandbox's commercetools; answers it.
async fn seed(server: &Server, number: &str, user: u64, items: Value, sanctioned: bool) -> Value {
    let (status, order) = call(
        server,
        "POST",
        "/sandbox/commercetools/_orders",
        CT_TOKEN,
        Some(json!({
            "order_number": number, "lms_user_id": user, "username": format!("learner{user}"),
            "email": format!("learner{user}@example.com"), "items": items, "sanctioned": sanctioned
        })),
    )
    .await;
    assert_eq!(status, 201, "seed {number}: {order}");
    order
}

/// The id of the sandbox's state `key`.
async fn state_id(server: &Server, key: &str) -> String {
    let (status, state) = call(
        server,
        "GET",
        &format!("/sandbox/commercetools/sandbox/states/key={key}"),
        CT_TOKEN,
        None,
    )
    .await;
    assert_eq!(status, 200, "{state}");
    state["id"].as_str().unwrap().to_owned()
}

/// The LineItemStateTransition message EventBridge forwards when `order`'s first line item
/// moved to `to_state`.
fn transition(message_id: &str, order: &Value, to_state: &str) -> Value {
    json!({
        "version": "0", "id": format!("eb-{message_id}"), "detail-type": "LineItemStateTransition",
        "source": "aws.partner/commercetools.com/sandbox/coordinator", "detail": {
            "id": message_id, "version": 1, "type": "LineItemStateTransition",
            "resource": {"typeId": "order", "id": order["id"]},
            "lineItemId": order["lineItems"][0]["id"], "quantity": 1,
            "fromState": {"typeId": "state", "id": "initial"},
            "toState": {"typeId": "state", "id": to_state}
        }
    })
}

/// Reads `order` from the sandbox until every line item is in `state` (at most 20 s).
async fn wait_for_items(server: &Server, order: &Value, state: &str) -> Value {
    let path = format!(
        "/sandbox/commercetools/sandbox/orders/{}",
        order["id"].as_str().unwrap()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, now) = call(server, "GET", &path, CT_TOKEN, None).await;
        let done = now["lineItems"].as_array().is_some_and(|items| {
            items.iter().all(|item| {
                item["state"].as_array().is_some_and(|states| {
                    states
                        .iter()
                        .any(|s| s["state"]["id"] == state && s["quantity"] == 1)
                })
            })
        });
        if done {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "order {} never had every line item in state {state}: {now:#}\n{}",
            order["orderNumber"],
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn sandbox_records(server: &Server) -> Value {
    call(server, "GET", "/sandbox/_state", TOKEN, None).await.1
}

async fn fulfillment_flows(storage_url: &str) {
    let dir = TempDir::new();
    let port = free_port();
    let config = dir.config(&config(storage_url, port));
    let tokens = format!("[\"{TOKEN}\"]");
    let server = Server::start(
        &config,
        &[("COORDINATOR__AUTH__API_TOKENS", tokens.as_str())],
    );
    let pending = state_id(&server, "2u-fulfillment-pending-state").await;
    let success = state_id(&server, "2u-fulfillment-success-state").await;
    let failure = state_id(&server, "2u-fulfillment-failure-state").await;

    // Without credentials, EventBridge's route refuses.
    let order = seed(
        &server,
        "EDX-1001",
        42,
        json!([
            {"kind": "course", "sku": "course-v1:edX+DemoX+T1", "mode": "verified"},
            {"kind": "entitlement", "sku": "6a2d5c1e-7b3f-4f0e-9c8d-1e2f3a4b5c6d", "mode": "verified"}
        ]),
        false,
    )
    .await;
    let message = transition("m-1", &order, &pending);
    let refused = request(
        server.addr,
        "POST",
        "/commercetools/fulfill",
        &[("content-type", "application/json")],
        Some(message.to_string()),
    )
    .await;
    assert_eq!(refused.status, 401, "{}", refused.body);

    // The same message three times at once: accepted once, the others duplicates.
    let (a, b, c) = tokio::join!(
        call(
            &server,
            "POST",
            "/commercetools/fulfill",
            TOKEN,
            Some(message.clone())
        ),
        call(
            &server,
            "POST",
            "/commercetools/fulfill",
            TOKEN,
            Some(message.clone())
        ),
        call(
            &server,
            "POST",
            "/commercetools/fulfill",
            TOKEN,
            Some(message.clone())
        ),
    );
    let mut statuses = [a.0, b.0, c.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 202], "{a:?} {b:?} {c:?}");
    // The sibling line item's own message: the order is fulfilled once all the same.
    let mut sibling = transition("m-2", &order, &pending);
    sibling["detail"]["lineItemId"] = order["lineItems"][1]["id"].clone();
    let (status, ack) = call(
        &server,
        "POST",
        "/commercetools/fulfill",
        TOKEN,
        Some(sibling),
    )
    .await;
    assert_eq!(status, 202, "{ack}");
    let done = wait_for_items(&server, &order, &success).await;
    assert!(
        done["lineItems"][1]["custom"]["fields"]["edxLMSEntitlementId"].is_string(),
        "the entitlement's uuid is on its line item: {done:#}"
    );
    let records = sandbox_records(&server).await;
    assert_eq!(
        records["lms"]["calls"]["enrollment"], 1,
        "enrolled once: {records:#}"
    );
    assert_eq!(records["lms"]["entitlements"].as_object().unwrap().len(), 1);
    assert!(
        records["lms"]["enrollments"]
            .as_object()
            .unwrap()
            .contains_key("learner42 course-v1:edX+DemoX+T1")
    );

    // The LMS fails twice, then enrolls: retried, then success.
    let (status, _) = call(
        &server,
        "POST",
        "/sandbox/_knobs/lms",
        TOKEN,
        Some(json!({"fail_next": 2, "status": 503})),
    )
    .await;
    assert_eq!(status, 200);
    let flaky = seed(
        &server,
        "EDX-1002",
        43,
        json!([{"kind": "course", "sku": "course-v1:edX+DemoX+T2", "mode": "verified"}]),
        false,
    )
    .await;
    let (status, _) = call(
        &server,
        "POST",
        "/commercetools/fulfill",
        TOKEN,
        Some(transition("m-3", &flaky, &pending)),
    )
    .await;
    assert_eq!(status, 202);
    wait_for_items(&server, &flaky, &success).await;
    assert_eq!(
        sandbox_records(&server).await["lms"]["calls"]["enrollment"],
        4
    );

    // The LMS refuses for good: the task is dead with its message, the line item failed.
    call(
        &server,
        "POST",
        "/sandbox/_knobs/lms",
        TOKEN,
        Some(json!({"fail_always": true, "status": 400, "message": "Course mode is expired"})),
    )
    .await;
    let refused = seed(
        &server,
        "EDX-1003",
        44,
        json!([{"kind": "course", "sku": "course-v1:edX+DemoX+T3", "mode": "verified"}]),
        false,
    )
    .await;
    call(
        &server,
        "POST",
        "/commercetools/fulfill",
        TOKEN,
        Some(transition("m-4", &refused, &pending)),
    )
    .await;
    wait_for_items(&server, &refused, &failure).await;
    let (_, dead) = call(
        &server,
        "GET",
        "/api/v1/tasks?state=dead&task=lms.enroll_in_course",
        TOKEN,
        None,
    )
    .await;
    let dead = &dead["items"][0];
    assert!(
        dead["last_error"]
            .to_string()
            .contains("Course mode is expired"),
        "{dead:#}"
    );
    call(&server, "DELETE", "/sandbox/_knobs/lms", TOKEN, None).await;

    // A sanctioned order: its learner's LMS account is deactivated, once.
    let sanctioned = seed(
        &server,
        "EDX-1004",
        45,
        json!([{"kind": "course", "sku": "course-v1:edX+DemoX+T4", "mode": "verified"}]),
        true,
    )
    .await;
    let change = json!({"detail": {
        "id": "m-5", "version": 1, "type": "OrderStateTransition",
        "resource": {"typeId": "order", "id": sanctioned["id"]},
        "state": {"typeId": "state", "id": "sdn"}
    }});
    for _ in 0..2 {
        let (status, ack) = call(
            &server,
            "POST",
            "/commercetools/sanctioned",
            TOKEN,
            Some(change.clone()),
        )
        .await;
        assert!(status == 202 || status == 200, "{ack}");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let records = sandbox_records(&server).await;
        if records["lms"]["deactivated"] == json!(["learner45"]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never deactivated: {records:#}\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let logs = server.stop();
    for secret in [
        "learner42@example.com",
        "sandbox-ct-token",
        "sandbox-lms-token",
    ] {
        assert!(!logs.contains(secret), "the logs hold {secret}:\n{logs}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_orders_are_fulfilled_once_retried_refused_and_sanctioned() {
    let dir = TempDir::new();
    fulfillment_flows(&dir.sqlite_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_orders_are_fulfilled_once_retried_refused_and_sanctioned() {
    let Some(database) = PgDatabase::create().await else {
        return;
    };
    fulfillment_flows(&database.url).await;
    database.drop_now().await;
}
