//! The fake commercetools through the harness: token, seeding, reads, updates, refusals in
//! commercetools' shape, and the knob.

use coordinator::http::{Body, HeaderValue, Request, header};
use coordinator::testing::TestCoordinator;
use serde_json::{Value, json};

use super::sandbox;
use crate::COMMERCETOOLS_TOKEN;

const API: &str = "/api/sandbox/commercetools";
const PENDING: &str = "8d4b1f7e-2a6c-4e9d-b3f5-6c0a9e2d1b48";
const PROCESSING: &str = "1b6e9c3a-4d7f-4a2e-8c5b-9f0d3e6a2c71";

/// Calls the fake commercetools at `path` (under `/api/sandbox/commercetools`), with the
/// sandbox token when `token`.
async fn ct(
    t: &TestCoordinator,
    method: &str,
    path: &str,
    body: Option<Value>,
    token: bool,
) -> (u16, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(format!("{API}{path}"));
    if token {
        request = request.header(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {COMMERCETOOLS_TOKEN}")).unwrap(),
        );
    }
    let body = match body {
        Some(json) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(json.to_string())
        }
        None => Body::empty(),
    };
    let (status, body) = t.request(request.body(body).unwrap()).await;
    (status.as_u16(), body)
}

fn spec(order_number: &str, lms_user_id: u64) -> Value {
    json!({
        "order_number": order_number,
        "lms_user_id": lms_user_id,
        "username": "ada",
        "email": "ada@example.com",
        "items": [
            {"kind": "course", "sku": "course-v1:edX+DemoX+T1", "mode": "verified"},
            {"kind": "entitlement", "sku": "0f8e3c4a-8b8e-4c2b-9a53-2b8f1c5d7e90", "mode": "verified",
             "bundle_id": "b-1"}
        ],
        "sanctioned": false
    })
}

/// Seeds an order; its JSON.
async fn seed(t: &TestCoordinator, spec: Value) -> Value {
    let (status, order) = ct(t, "POST", "/_orders", Some(spec), false).await;
    assert_eq!(status, 201, "{order}");
    order
}

/// Asserts the body is commercetools' error shape with `status` and `code`; the message.
fn refusal(status: u16, body: &Value, code: &str) -> String {
    assert_eq!(body["statusCode"], status, "{body}");
    assert_eq!(body["errors"][0]["code"], code, "{body}");
    assert_eq!(body["errors"][0]["message"], body["message"], "{body}");
    body["message"].as_str().unwrap().to_owned()
}

fn transition(line_item: &Value, from: Value, to: Value) -> Value {
    json!({
        "action": "transitionLineItemState", "lineItemId": line_item["id"], "quantity": 1,
        "fromState": from, "toState": to
    })
}

#[tokio::test]
async fn the_fake_commercetools_grants_a_bearer_token_for_the_scopes_asked() {
    let (t, _) = sandbox();
    let request = Request::builder()
        .method("POST")
        .uri(format!("{API}/oauth/token"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::AUTHORIZATION, "Basic Y29vcmRpbmF0b3I6czNjcmV0")
        .body("grant_type=client_credentials&scope=manage_orders%3Aedx+view_states%3Aedx".into())
        .unwrap();
    let (status, token) = t.request(request).await;
    assert_eq!(status, 200);
    assert_eq!(
        token,
        json!({
            "access_token": COMMERCETOOLS_TOKEN,
            "token_type": "Bearer",
            "expires_in": 172_800,
            "scope": "manage_orders:edx view_states:edx"
        })
    );
}

#[tokio::test]
async fn a_seeded_order_reads_by_id_and_by_number_with_its_expansions_applied() {
    let (t, state) = sandbox();
    let order = seed(&t, spec("EDX-1001", 42)).await;
    let id = order["id"].as_str().unwrap();
    assert_eq!(order["version"], 1);
    assert_eq!(order["orderState"], "Complete");
    assert_eq!(order["customerEmail"], "ada@example.com");
    assert_eq!(order["totalPrice"]["centAmount"], 9800);
    assert!(order.get("state").is_none(), "not sanctioned");
    let items = order["lineItems"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let course = &items[0];
    assert_eq!(course["productType"]["obj"]["key"], "edx_course");
    assert_eq!(course["productKey"], "edX+DemoX");
    assert_eq!(course["variant"]["sku"], "course-v1:edX+DemoX+T1");
    assert_eq!(
        course["variant"]["attributes"],
        json!([{"name": "mode", "value": "verified"}])
    );
    assert_eq!(
        course["state"],
        json!([{"quantity": 1, "state": {"typeId": "state", "id": PENDING}}])
    );
    let entitlement = &items[1];
    assert_eq!(
        entitlement["productType"]["obj"]["key"],
        "edx_course_entitlement"
    );
    assert_eq!(entitlement["custom"]["fields"]["bundleId"], "b-1");
    assert_eq!(
        order["paymentInfo"]["payments"][0]["obj"]["paymentStatus"]["interfaceCode"],
        "succeeded"
    );

    let expand = "?expand=state&expand=lineItems%5B*%5D.productType.obj";
    let (status, by_id) = ct(
        &t,
        "GET",
        &format!("/edx-sandbox/orders/{id}{expand}"),
        None,
        true,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(by_id, order);
    let (status, by_number) = ct(
        &t,
        "GET",
        &format!("/edx-sandbox/orders/order-number=EDX-1001{expand}"),
        None,
        true,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(by_number["id"], id);

    let records = state.records();
    assert!(records.commercetools.orders.contains_key(id));
    assert_eq!(records.commercetools.calls["GET /{project}/orders/{id}"], 1);
    let (_, listed) = ct(&t, "GET", "/_orders", None, false).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let (_, shown) = t.call("GET", "/api/sandbox/_state", None).await;
    assert_eq!(
        shown["commercetools"]["orders"][id]["orderNumber"],
        "EDX-1001"
    );
}

#[tokio::test]
async fn a_sanctioned_order_has_the_sdn_state_expanded() {
    let (t, _) = sandbox();
    let mut sanctioned = spec("EDX-1002", 7);
    sanctioned["sanctioned"] = json!(true);
    let order = seed(&t, sanctioned).await;
    assert_eq!(order["state"]["typeId"], "state");
    assert_eq!(order["state"]["obj"]["key"], "2u-sdn-order-state");
    assert_eq!(order["state"]["obj"]["type"], "OrderState");
}

#[tokio::test]
async fn api_calls_without_the_token_are_refused_in_commercetools_shape() {
    let (t, _) = sandbox();
    let order = seed(&t, spec("EDX-1001", 42)).await;
    let path = format!("/edx-sandbox/orders/{}", order["id"].as_str().unwrap());
    let (status, body) = ct(&t, "GET", &path, None, false).await;
    assert_eq!(status, 401);
    let message = refusal(401, &body, "invalid_token");
    assert!(message.contains("Bearer"), "{message}");
}

#[tokio::test]
async fn a_missing_order_is_a_404_in_commercetools_shape() {
    let (t, _) = sandbox();
    let (status, body) = ct(&t, "GET", "/edx-sandbox/orders/no-such-id", None, true).await;
    assert_eq!(status, 404);
    assert_eq!(
        refusal(404, &body, "ResourceNotFound"),
        "The Resource with ID 'no-such-id' was not found."
    );
    let (status, body) = ct(
        &t,
        "GET",
        "/edx-sandbox/orders/order-number=EDX-404",
        None,
        true,
    )
    .await;
    assert_eq!(status, 404);
    assert!(refusal(404, &body, "ResourceNotFound").contains("EDX-404"));
    let (status, body) = ct(
        &t,
        "POST",
        "/edx-sandbox/orders/no-such-id",
        Some(json!({"version": 1, "actions": []})),
        true,
    )
    .await;
    assert_eq!(status, 404);
    refusal(404, &body, "ResourceNotFound");
}

#[tokio::test]
async fn customers_are_found_by_lms_user_id_and_reused_when_seeding() {
    let (t, state) = sandbox();
    let first = seed(&t, spec("EDX-1001", 42)).await;
    let second = seed(&t, spec("EDX-1002", 42)).await;
    assert_eq!(first["customerId"], second["customerId"], "one customer");
    seed(&t, spec("EDX-1003", 43)).await;
    assert_eq!(state.records().commercetools.customers.len(), 2);

    let query = "/edx-sandbox/customers?where=custom%28fields%28edx-lms_user_id%3D%3Aid%29%29&var.id=42&limit=2";
    let (status, page) = ct(&t, "GET", query, None, true).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["count"], 1);
    assert_eq!(page["total"], 1);
    assert_eq!(page["limit"], 2);
    let customer = &page["results"][0];
    assert_eq!(customer["id"], first["customerId"]);
    assert_eq!(customer["custom"]["fields"]["edx-lms_user_id"], 42);
    assert_eq!(customer["custom"]["fields"]["edx-lms_user_name"], "ada");

    let (_, none) = ct(
        &t,
        "GET",
        &query.replace("var.id=42", "var.id=99"),
        None,
        true,
    )
    .await;
    assert_eq!(none["count"], 0);
    assert_eq!(none["results"], json!([]));
    let written = "/edx-sandbox/customers?where=custom%28fields%28edx-lms_user_id%3D43%29%29";
    let (_, found) = ct(&t, "GET", written, None, true).await;
    assert_eq!(found["count"], 1);
    let (_, all) = ct(&t, "GET", "/edx-sandbox/customers", None, true).await;
    assert_eq!(all["total"], 2);

    let (status, body) = ct(&t, "GET", &query.replace("&var.id=42", ""), None, true).await;
    assert_eq!(status, 400);
    assert!(refusal(400, &body, "InvalidInput").contains("var.id"));

    let by_id = format!(
        "/edx-sandbox/customers/{}",
        first["customerId"].as_str().unwrap()
    );
    let (status, customer) = ct(&t, "GET", &by_id, None, true).await;
    assert_eq!(status, 200);
    assert_eq!(customer["email"], "ada@example.com");
    let (status, _) = ct(&t, "GET", "/edx-sandbox/customers/nobody", None, true).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_workflow_states_are_read_by_key_and_by_id() {
    let (t, _) = sandbox();
    for (key, kind) in [
        ("2u-fulfillment-pending-state", "LineItemState"),
        ("2u-fulfillment-processing-state", "LineItemState"),
        ("2u-fulfillment-success-state", "LineItemState"),
        ("2u-fulfillment-failure-state", "LineItemState"),
        ("2u-sdn-order-state", "OrderState"),
    ] {
        let (status, state) = ct(
            &t,
            "GET",
            &format!("/edx-sandbox/states/key={key}"),
            None,
            true,
        )
        .await;
        assert_eq!(status, 200, "{key}");
        assert_eq!(state["key"], key);
        assert_eq!(state["type"], kind);
        assert!(state["name"]["en-US"].is_string());
        let id = state["id"].as_str().unwrap();
        let (status, again) = ct(&t, "GET", &format!("/edx-sandbox/states/{id}"), None, true).await;
        assert_eq!(status, 200);
        assert_eq!(again, state);
    }
    let (_, processing) = ct(
        &t,
        "GET",
        "/edx-sandbox/states/key=2u-fulfillment-processing-state",
        None,
        true,
    )
    .await;
    assert_eq!(processing["id"], PROCESSING);
    let (status, body) = ct(&t, "GET", "/edx-sandbox/states/key=Initial", None, true).await;
    assert_eq!(status, 404);
    refusal(404, &body, "ResourceNotFound");
}

#[tokio::test]
async fn an_update_transitions_a_line_item_and_sets_a_custom_field_in_one_new_version() {
    let (t, state) = sandbox();
    let order = seed(&t, spec("EDX-1001", 42)).await;
    let path = format!("/edx-sandbox/orders/{}", order["id"].as_str().unwrap());
    let course = &order["lineItems"][0];
    let entitlement = &order["lineItems"][1];
    let update = json!({
        "version": 1,
        "actions": [
            transition(course, json!({"typeId": "state", "id": PENDING}),
                       json!({"typeId": "state", "key": "2u-fulfillment-processing-state"})),
            {"action": "setLineItemCustomField", "lineItemId": course["id"],
             "name": "edxLMSEntitlementId", "value": "e-42"},
            {"action": "setLineItemCustomField", "lineItemId": entitlement["id"],
             "name": "edxLMSEntitlementId", "value": "e-43"}
        ]
    });
    let (status, updated) = ct(&t, "POST", &path, Some(update), true).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["version"], 2);
    let course = &updated["lineItems"][0];
    assert_eq!(
        course["state"],
        json!([{"quantity": 1, "state": {"typeId": "state", "id": PROCESSING}}])
    );
    assert_eq!(course["custom"]["type"]["typeId"], "type");
    assert_eq!(course["custom"]["fields"]["edxLMSEntitlementId"], "e-42");
    let fields = &updated["lineItems"][1]["custom"]["fields"];
    assert_eq!(
        *fields,
        json!({"bundleId": "b-1", "edxLMSEntitlementId": "e-43"}),
        "the fields already set are kept"
    );
    assert_eq!(updated["lineItems"][1]["state"][0]["state"]["id"], PENDING);

    let (_, read) = ct(&t, "GET", &path, None, true).await;
    assert_eq!(read, updated);
    assert_eq!(state.records().commercetools.updates, 1);
}

#[tokio::test]
async fn an_update_with_a_stale_version_is_refused_with_the_current_version() {
    let (t, state) = sandbox();
    let order = seed(&t, spec("EDX-1001", 42)).await;
    let id = order["id"].as_str().unwrap();
    let path = format!("/edx-sandbox/orders/{id}");
    let course = &order["lineItems"][0];
    let set = |value: &str| {
        json!({"action": "setLineItemCustomField", "lineItemId": course["id"],
               "name": "edxLMSEntitlementId", "value": value})
    };
    let (status, _) = ct(
        &t,
        "POST",
        &path,
        Some(json!({"version": 1, "actions": [set("a")]})),
        true,
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = ct(
        &t,
        "POST",
        &path,
        Some(json!({"version": 1, "actions": [set("b")]})),
        true,
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(
        refusal(409, &body, "ConcurrentModification"),
        format!("Object {id} has a different version than expected. Expected: 1 - Actual: 2.")
    );
    assert_eq!(body["errors"][0]["currentVersion"], 2);
    let stored = &state.records().commercetools.orders[id];
    assert_eq!(stored["version"], 2);
    assert_eq!(
        stored["lineItems"][0]["custom"]["fields"]["edxLMSEntitlementId"],
        "a"
    );
}

#[tokio::test]
async fn moving_more_units_than_a_state_holds_is_refused_and_changes_nothing() {
    let (t, state) = sandbox();
    let order = seed(&t, spec("EDX-1001", 42)).await;
    let path = format!("/edx-sandbox/orders/{}", order["id"].as_str().unwrap());
    let course = &order["lineItems"][0];
    let pending = json!({"typeId": "state", "key": "2u-fulfillment-pending-state"});
    let processing = json!({"typeId": "state", "key": "2u-fulfillment-processing-state"});
    // The first action could be applied, the second cannot: neither is.
    let update = json!({"version": 1, "actions": [
        transition(course, pending.clone(), processing.clone()),
        transition(course, pending, processing),
    ]});
    let (status, body) = ct(&t, "POST", &path, Some(update), true).await;
    assert_eq!(status, 400);
    let message = refusal(400, &body, "InvalidOperation");
    assert!(
        message.contains("Cannot transition 1 items from state '2u-fulfillment-pending-state'"),
        "{message}"
    );
    let records = state.records();
    let stored = records.commercetools.orders.values().next().unwrap();
    assert_eq!(stored["version"], 1);
    assert_eq!(stored["lineItems"][0]["state"][0]["state"]["id"], PENDING);
    assert_eq!(records.commercetools.updates, 0);

    let (status, body) = ct(
        &t,
        "POST",
        &path,
        Some(json!({"version": 1, "actions": [{"action": "changeOrderState", "orderState": "Cancelled"}]})),
        true,
    )
    .await;
    assert_eq!(status, 400);
    assert!(refusal(400, &body, "InvalidOperation").contains("'changeOrderState'"));
}

#[tokio::test]
async fn a_returned_item_is_marked_refunded() {
    let (t, _) = sandbox();
    let mut returned = spec("EDX-1001", 42);
    returned["items"][0]["returned"] = json!(true);
    let order = seed(&t, returned).await;
    let item = &order["returnInfo"][0]["items"][0];
    assert_eq!(item["lineItemId"], order["lineItems"][0]["id"]);
    assert_eq!(item["paymentState"], "Initial");
    let update = json!({"version": 1, "actions": [
        {"action": "setReturnPaymentState", "returnItemId": item["id"], "paymentState": "Refunded"}
    ]});
    let path = format!("/edx-sandbox/orders/{}", order["id"].as_str().unwrap());
    let (status, updated) = ct(&t, "POST", &path, Some(update), true).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(
        updated["returnInfo"][0]["items"][0]["paymentState"],
        "Refunded"
    );
}

#[tokio::test]
async fn the_commercetools_knob_fails_api_calls_but_not_the_token_nor_seeding() {
    let (t, state) = sandbox();
    let (status, _) = t
        .call(
            "POST",
            "/api/sandbox/_knobs/commercetools",
            Some(json!({"fail_next": 1, "status": 503})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = ct(&t, "POST", "/oauth/token", None, false).await;
    assert_eq!(status, 200);
    let order = seed(&t, spec("EDX-1001", 42)).await;
    let path = format!("/edx-sandbox/orders/{}", order["id"].as_str().unwrap());
    let (status, _) = ct(&t, "GET", &path, None, true).await;
    assert_eq!(status, 503);
    let (status, _) = ct(&t, "GET", &path, None, true).await;
    assert_eq!(status, 200);

    t.call(
        "POST",
        "/api/sandbox/_knobs/commercetools",
        Some(json!({"fail_always": true, "status": 400, "message": "sandbox: refused"})),
    )
    .await;
    let update = json!({"version": 1, "actions": []});
    let (status, problem) = ct(&t, "POST", &path, Some(update), true).await;
    assert_eq!(status, 400);
    assert_eq!(problem["detail"], "sandbox: refused");
    assert_eq!(
        state.records().commercetools.orders[order["id"].as_str().unwrap()]["version"],
        1
    );
    t.call("DELETE", "/api/sandbox/_knobs/commercetools", None)
        .await;
    let (status, _) = ct(&t, "GET", &path, None, true).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_invalid_order_spec_is_refused_naming_the_field() {
    let (t, state) = sandbox();
    let cases = [
        ("email", json!(null), "`email` is missing"),
        (
            "email",
            json!("ada"),
            "`email` \"ada\" is not an email address",
        ),
        ("lms_user_id", json!("42"), "`lms_user_id` is not valid"),
        ("items", json!([]), "`items` is missing or empty"),
        (
            "items",
            json!([{"kind": "program", "sku": "x"}]),
            "`items[0].kind` is not valid",
        ),
        (
            "items",
            json!([{"kind": "course"}]),
            "`items[0].sku` is missing",
        ),
        (
            "items",
            json!([{"kind": "course", "sku": "x", "price": 1}]),
            "`items[0]` has an unknown field `price`",
        ),
        ("coupon", json!("X"), "has an unknown field `coupon`"),
    ];
    for (field, value, expected) in cases {
        let mut body = spec("EDX-1001", 42);
        if value.is_null() {
            body.as_object_mut().unwrap().remove(field);
        } else {
            body[field] = value;
        }
        let (status, problem) = ct(&t, "POST", "/_orders", Some(body), false).await;
        assert_eq!(status, 400, "{field}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(expected), "{detail}");
    }
    assert!(state.records().commercetools.orders.is_empty());
    seed(&t, spec("EDX-1001", 42)).await;
    let (status, problem) = ct(&t, "POST", "/_orders", Some(spec("EDX-1001", 43)), false).await;
    assert_eq!(status, 400);
    assert!(problem["detail"].as_str().unwrap().contains("is taken"));
}
