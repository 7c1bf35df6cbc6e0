//! The flows' handlers against a fake commercetools: what they read and the updates they send.

use coordinator::testing::{FakeService, Reply, TestCoordinator};
use coordinator_commercetools::CommercetoolsExtension;
use coordinator_lms::{FULFILLMENT_COMPLETED, FulfillmentCompleted, LmsExtension};
use serde_json::{Value, json};

fn state(id: &str, key: &str) -> Value {
    json!({"id": id, "version": 1, "key": key, "type": "LineItemState", "initial": false,
           "builtIn": false, "transitions": [], "createdAt": "2024-06-11T12:03:02.934Z",
           "lastModifiedAt": "2024-06-11T12:05:47.118Z"})
}

/// An order whose line item `li-1` has its unit in `state_id`.
fn order(version: u64, state_id: &str) -> Value {
    json!({"type": "Order", "id": "o-1", "version": version, "orderNumber": "EDX-1",
           "customerId": "c-1", "orderState": "Complete",
           "totalPrice": {"type": "centPrecision", "currencyCode": "USD", "centAmount": 4900, "fractionDigits": 2},
           "lineItems": [{"id": "li-1", "productId": "p-1", "name": {"en-US": "Demo"},
                          "variant": {"id": 1, "sku": "course-v1:edX+DemoX+T1"}, "quantity": 1,
                          "state": [{"quantity": 1, "state": {"typeId": "state", "id": state_id}}]}],
           "returnInfo": [], "createdAt": "2024-06-11T12:03:02.934Z"})
}

async fn fake_commercetools() -> FakeService {
    let ct = FakeService::start().await;
    ct.on("POST", "/oauth/token").reply(Reply::json(
        200,
        json!({"access_token": "t", "token_type": "Bearer", "expires_in": 3600}),
    ));
    for (id, key) in [
        ("s-pending", "2u-fulfillment-pending-state"),
        ("s-processing", "2u-fulfillment-processing-state"),
        ("s-success", "2u-fulfillment-success-state"),
        ("s-failure", "2u-fulfillment-failure-state"),
    ] {
        ct.on("GET", &format!("/test/states/key={key}"))
            .reply(Reply::json(200, state(id, key)));
    }
    ct
}

fn harness(ct: &FakeService) -> TestCoordinator {
    TestCoordinator::builder()
        .extension(CommercetoolsExtension)
        .extension(LmsExtension)
        .wiring(&format!(
            r#"
            [signals]
            "lms.fulfillment_completed" = ["commercetools.record_fulfillment"]
            [extension.commercetools]
            api_url = "{url}"
            auth_url = "{url}"
            project_key = "test"
            client_id = "test"
            client_secret = "test"
            [extension.lms]
            url = "http://127.0.0.1:9/lms"
            client_id = "test"
            client_secret = "test"
            "#,
            url = ct.url()
        ))
        .build()
}

fn completed(succeeded: bool) -> FulfillmentCompleted {
    FulfillmentCompleted {
        order_id: "o-1".into(),
        order_number: "EDX-1".into(),
        line_item_id: "li-1".into(),
        lms_user_id: 42,
        fulfillment_type: "enrollment".into(),
        succeeded,
        entitlement_uuid: None,
        error: (!succeeded).then(|| "Course mode is expired".to_owned()),
    }
}

/// The transitions the updates sent: (from, to).
fn transitions(ct: &FakeService) -> Vec<(String, String)> {
    ct.requests_to("POST", "/test/orders/o-1")
        .iter()
        .flat_map(|r| {
            r.body_json()["actions"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|a| a["action"] == "transitionLineItemState")
        .map(|a| {
            (
                a["fromState"]["id"].as_str().unwrap().to_owned(),
                a["toState"]["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_completion_moves_the_line_item_from_processing_to_success() {
    let ct = fake_commercetools().await;
    ct.on("GET", "/test/orders/o-1")
        .reply(Reply::json(200, order(3, "s-processing")));
    ct.on("POST", "/test/orders/o-1")
        .reply(Reply::json(200, order(4, "s-success")));
    let t = harness(&ct);
    let report = t.send(&FULFILLMENT_COMPLETED, completed(true)).await;
    assert!(report.all_ok(), "{report:?}");
    assert_eq!(
        transitions(&ct),
        [("s-processing".into(), "s-success".into())]
    );
    let update = &ct.requests_to("POST", "/test/orders/o-1")[0];
    assert_eq!(update.body_json()["version"], 3);
}

#[tokio::test]
async fn a_completion_that_beat_the_move_to_processing_moves_the_line_item_from_pending() {
    let ct = fake_commercetools().await;
    ct.on("GET", "/test/orders/o-1")
        .reply(Reply::json(200, order(3, "s-pending")));
    ct.on("POST", "/test/orders/o-1")
        .reply(Reply::json(200, order(4, "s-failure")));
    let t = harness(&ct);
    let report = t.send(&FULFILLMENT_COMPLETED, completed(false)).await;
    assert!(report.all_ok(), "{report:?}");
    assert_eq!(transitions(&ct), [("s-pending".into(), "s-failure".into())]);
}

#[tokio::test]
async fn a_completion_delivered_again_sends_no_update() {
    let ct = fake_commercetools().await;
    ct.on("GET", "/test/orders/o-1")
        .reply(Reply::json(200, order(4, "s-success")));
    let t = harness(&ct);
    let report = t.send(&FULFILLMENT_COMPLETED, completed(true)).await;
    assert!(report.all_ok(), "{report:?}");
    assert_eq!(ct.count("POST", "/test/orders/o-1"), 0);
}
