//! The routes EventBridge calls, through the harness with a real (SQLite) store: each message
//! is validated, its work stored once, and a redelivery answered as a duplicate.

use coordinator::testing::TestCoordinator;
use coordinator_commercetools::CommercetoolsExtension;
use coordinator_lms::LmsExtension;
use serde_json::{Value, json};

const WIRING: &str = r#"
[signals."commercetools.fulfillment_requested"]
durable = true
handlers = ["commercetools.fulfill_order"]

[signals."commercetools.order_state_changed"]
durable = true
handlers = ["commercetools.deactivate_sanctioned_learner"]

# Required settings; nothing is called here (the deliveries are stored, not run).
[extension.commercetools]
api_url = "http://127.0.0.1:9/commercetools"
auth_url = "http://127.0.0.1:9/commercetools"
project_key = "test"
client_id = "test"
client_secret = "test"

[extension.lms]
url = "http://127.0.0.1:9/lms"
client_id = "test"
client_secret = "test"
"#;

fn harness() -> TestCoordinator {
    TestCoordinator::builder()
        .extension(CommercetoolsExtension)
        .extension(LmsExtension)
        .with_store(coordinator_sqlite::testing::temporary())
        .wiring(WIRING)
        .build()
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn a_line_item_transition_is_stored_once_and_a_redelivery_is_a_duplicate() {
    let t = harness();
    let message = fixture("eventbridge_line_item_state_transition.json");
    let (status, ack) = t
        .call("POST", "/api/commercetools/fulfill", Some(message.clone()))
        .await;
    assert_eq!(status, 202, "{ack}");
    assert_eq!(ack["status"], "accepted");
    assert_eq!(ack["message_id"], message["detail"]["id"]);
    assert!(ack["dispatch_id"].is_string());

    let (status, again) = t
        .call("POST", "/api/commercetools/fulfill", Some(message))
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["status"], "duplicate");
    // One delivery of commercetools.fulfill_order is stored, to run on a worker.
    let dispatch = t
        .store()
        .get_dispatch(ack["dispatch_id"].as_str().unwrap().parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(dispatch.handlers.len(), 1);
    assert_eq!(dispatch.handlers[0].handler, "commercetools.fulfill_order");
    assert_eq!(dispatch.handlers[0].status, "queued");
}

#[tokio::test]
async fn a_malformed_message_is_refused_naming_the_field() {
    let t = harness();
    let mut message = fixture("eventbridge_line_item_state_transition.json");
    message["detail"].as_object_mut().unwrap().remove("toState");
    let (status, problem) = t
        .call("POST", "/api/commercetools/fulfill", Some(message))
        .await;
    assert_eq!(status, 400, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("detail.toState"),
        "{problem}"
    );
    let (status, problem) = t
        .call(
            "POST",
            "/api/commercetools/fulfill",
            Some(json!({"detail": {"id": 7}})),
        )
        .await;
    assert_eq!(status, 400, "{problem}");
    // (A field of the flattened message header is named by its envelope: `detail`.)
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("`detail`") && detail.contains("expected a string"),
        "{problem}"
    );
}

#[tokio::test]
async fn sanctions_and_returns_are_accepted() {
    let t = harness();
    let (status, ack) = t
        .call(
            "POST",
            "/api/commercetools/sanctioned",
            Some(fixture("eventbridge_order_state_changed.json")),
        )
        .await;
    assert_eq!(status, 202, "{ack}");
    let (status, ack) = t
        .call(
            "POST",
            "/api/commercetools/returned",
            Some(fixture("eventbridge_return_info_added.json")),
        )
        .await;
    assert_eq!(status, 202, "{ack}");
    assert_eq!(ack["status"], "accepted");
}

#[tokio::test]
async fn a_message_of_a_type_the_route_does_not_act_on_is_ignored() {
    let t = harness();
    let mut message = fixture("eventbridge_line_item_state_transition.json");
    message["detail"]["type"] = json!("OrderCreated");
    let (status, ack) = t
        .call("POST", "/api/commercetools/fulfill", Some(message))
        .await;
    assert_eq!(status, 200, "{ack}");
    assert_eq!(ack["status"], "ignored");
    assert!(
        ack["reason"].as_str().unwrap().contains("not OrderCreated"),
        "{ack}"
    );
    assert!(ack.get("dispatch_id").is_none());
}
