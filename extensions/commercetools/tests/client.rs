//! The commercetools client against a fake commercetools (API and OAuth2 service) on a local
//! port: tokens, the calls and what they decode, the cache of states, optimistic updates, and
//! how failures are classified.

use std::time::Duration;

use coordinator::config::Secret;
use coordinator::task::TaskError;
use coordinator::testing::{FakeService, RecordedRequest, Reply};
use coordinator_client::{CallError, ForTask, TransientKind};
use coordinator_commercetools::{
    CONFLICT_RETRIES, CommercetoolsClient, CommercetoolsSettings, FULFILLMENT_PROCESSING_STATE,
    ORDER_EXPANSION, OrderAction, OrderState, StateIdentifier, StateType,
    is_concurrent_modification,
};
use serde_json::{Value, json};

const PROJECT: &str = "edx-test";
const TOKEN_PATH: &str = "/oauth/token";
const ORDER_ID: &str = "c4a1f9e2-6b3d-4f8a-9e7c-2d5b8a1f3c60";
const ORDER_PATH: &str = "/edx-test/orders/c4a1f9e2-6b3d-4f8a-9e7c-2d5b8a1f3c60";
const FIRST_ITEM: &str = "5f8e2a1c-9b4d-4c7e-a3f6-1e0d9c8b7a52";
const SECOND_ITEM: &str = "b3e9d6a2-7c1f-4b8e-9a5d-4f2c0e8b1a93";
/// The state both line items of the fixture are in.
const PENDING: &str = "8d4b1f7e-2a6c-4e9d-b3f5-6c0a9e2d1b48";
/// The fixture's processing state.
const PROCESSING: &str = "1b6e9c3a-4d7f-4a2e-8c5b-9f0d3e6a2c71";

fn fixture(name: &str) -> Value {
    let text = match name {
        "order" => include_str!("fixtures/order.json"),
        "customers" => include_str!("fixtures/customers_by_lms_user_id.json"),
        "state" => include_str!("fixtures/state_processing.json"),
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).expect("the fixture is JSON")
}

/// The order fixture at `version`.
fn order(version: u64) -> Value {
    let mut order = fixture("order");
    order["version"] = json!(version);
    order
}

fn settings(fake: &FakeService) -> CommercetoolsSettings {
    CommercetoolsSettings {
        api_url: Some(fake.url()),
        auth_url: Some(fake.url()),
        project_key: Some(PROJECT.into()),
        client_id: Some("coordinator-test".into()),
        client_secret: Some(Secret::new("s3cret-value")),
        scopes: vec![
            "manage_orders:edx-test".into(),
            "view_customers:edx-test".into(),
        ],
        timeout: coordinator::config::ConfigDuration(Duration::from_secs(5)),
    }
}

/// A fake commercetools that grants tokens, and a client of it.
async fn commercetools() -> (FakeService, CommercetoolsClient) {
    let fake = FakeService::start().await;
    fake.on("POST", TOKEN_PATH).reply(Reply::json(
        200,
        json!({
            "access_token": "ct-token-4Jd9sK2",
            "token_type": "Bearer",
            "expires_in": 172800,
            "scope": "manage_orders:edx-test view_customers:edx-test"
        }),
    ));
    let client = CommercetoolsClient::new(&settings(&fake)).expect("complete settings");
    (fake, client)
}

/// The requests to the API (not the token service), as `METHOD path`.
fn api_calls(fake: &FakeService) -> Vec<String> {
    fake.requests()
        .iter()
        .filter(|r| r.path != TOKEN_PATH)
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// `text` decoded from `application/x-www-form-urlencoded`.
fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// A query string or form as decoded pairs, in order.
fn pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

fn query(request: &RecordedRequest) -> Vec<(String, String)> {
    pairs(request.query.as_deref().unwrap_or_default())
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test]
async fn a_token_is_asked_for_with_basic_credentials_and_the_scopes_then_sent_as_bearer() {
    let (fake, client) = commercetools().await;
    fake.on("GET", ORDER_PATH).reply(Reply::json(200, order(7)));
    client.order_by_id(ORDER_ID).await.unwrap();
    client.order_by_id(ORDER_ID).await.unwrap();

    let tokens = fake.requests_to("POST", TOKEN_PATH);
    assert_eq!(tokens.len(), 1, "one token for both calls");
    let token = &tokens[0];
    assert_eq!(
        token.header("authorization"),
        Some(format!("Basic {}", base64(b"coordinator-test:s3cret-value")).as_str())
    );
    assert_eq!(
        token.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        pairs(&token.body_text()),
        [
            ("grant_type".to_owned(), "client_credentials".to_owned()),
            (
                "scope".to_owned(),
                "manage_orders:edx-test view_customers:edx-test".to_owned()
            ),
        ]
    );
    for call in fake.requests_to("GET", ORDER_PATH) {
        assert_eq!(
            call.header("authorization"),
            Some("Bearer ct-token-4Jd9sK2")
        );
    }
}

#[tokio::test]
async fn an_order_is_read_by_id_with_its_references_expanded() {
    let (fake, client) = commercetools().await;
    fake.on("GET", ORDER_PATH).reply(Reply::json(200, order(7)));
    let order = client.order_by_id(ORDER_ID).await.unwrap();

    let sent = &fake.requests_to("GET", ORDER_PATH)[0];
    let expand: Vec<String> = query(sent)
        .into_iter()
        .filter(|(k, _)| k == "expand")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(expand, ORDER_EXPANSION);

    assert_eq!(order.id, ORDER_ID);
    assert_eq!(order.version, 7);
    assert_eq!(order.order_number.as_deref(), Some("2U-418207"));
    assert_eq!(
        order.customer_id.as_deref(),
        Some("7e2b4c9a-1d6f-4a3e-8b5c-0f9d2e7a4b18")
    );
    assert_eq!(
        order.customer_email.as_ref().unwrap().expose(),
        "grace.hopper@example.com"
    );
    assert_eq!(order.order_state, OrderState::Complete);
    assert_eq!(order.total_price.cent_amount, 14800);
    assert!(!order.is_mobile_order());
    assert!(!order.is_sanctioned());

    assert_eq!(order.line_items.len(), 2);
    let course = order.line_item(FIRST_ITEM).unwrap();
    assert_eq!(
        course.name_in("en-US"),
        Some("CS50's Introduction to Programming with Python")
    );
    assert_eq!(
        course.variant.sku.as_deref(),
        Some("course-v1:HarvardX+CS50P+2025_T1")
    );
    assert_eq!(course.attribute("mode"), Some(&json!("verified")));
    assert_eq!(
        course
            .product_type
            .as_ref()
            .and_then(|t| t.expanded())
            .and_then(|t| t.key.as_deref()),
        Some("edx_course")
    );
    assert_eq!(course.quantity, 1);
    assert_eq!(course.quantity_in(PENDING), 1);
    let program_item = order.line_item(SECOND_ITEM).unwrap();
    assert_eq!(
        program_item.custom.as_ref().unwrap().text("bundleId"),
        Some("e7c2a9f4-5b1d-4e8c-9a3f-2d6b0c8e4f15")
    );

    let payment = order.payments().next().expect("the payment was expanded");
    assert_eq!(
        payment.interface_id.as_deref(),
        Some("pi_3QyT7aLkdIwHu7ix0c9Vb2Rm")
    );
    assert_eq!(
        payment
            .payment_status
            .as_ref()
            .and_then(|s| s.interface_code.as_deref()),
        Some("succeeded")
    );
    assert_eq!(payment.transactions[0].kind, "Charge");

    // Personal data never prints: the email is redacted, the billing address not read.
    let printed = format!("{order:?}");
    for personal in ["grace.hopper@example.com", "Hopper", "Navy Yard"] {
        assert!(!printed.contains(personal), "{personal} in {printed}");
    }
}

#[tokio::test]
async fn a_sanctioned_order_is_told_by_its_expanded_workflow_state() {
    let (fake, client) = commercetools().await;
    let mut sanctioned = order(9);
    sanctioned["state"] = json!({
        "typeId": "state",
        "id": "5c0e7a3d-8b2f-4d6a-9e1c-4f7b0d3a8e52",
        "obj": {
            "id": "5c0e7a3d-8b2f-4d6a-9e1c-4f7b0d3a8e52", "version": 1,
            "key": "2u-sdn-order-state", "type": "OrderState",
            "name": {"en-US": "Sanctioned"}, "initial": false, "builtIn": false,
            "roles": [], "transitions": []
        }
    });
    fake.on("GET", ORDER_PATH)
        .reply(Reply::json(200, sanctioned));
    let order = client.order_by_id(ORDER_ID).await.unwrap();
    assert_eq!(order.state_key(), Some("2u-sdn-order-state"));
    assert!(order.is_sanctioned());
}

#[tokio::test]
async fn an_order_is_read_by_number_with_the_number_percent_encoded() {
    let (fake, client) = commercetools().await;
    let path = "/edx-test/orders/order-number=2U%2F418%20207";
    fake.on("GET", path).reply(Reply::json(200, order(7)));
    let order = client.order_by_number("2U/418 207").await.unwrap();
    assert_eq!(order.id, ORDER_ID);
    assert_eq!(api_calls(&fake), [format!("GET {path}")]);
    let expand = query(&fake.requests_to("GET", path)[0])
        .into_iter()
        .filter(|(k, _)| k == "expand")
        .count();
    assert_eq!(expand, ORDER_EXPANSION.len());
}

#[tokio::test]
async fn a_customer_is_found_by_lms_user_id_with_a_predicate_variable() {
    let (fake, client) = commercetools().await;
    fake.on("GET", "/edx-test/customers")
        .reply(Reply::json(200, fixture("customers")));
    let customer = client
        .customer_by_lms_user_id(4127003)
        .await
        .unwrap()
        .expect("one customer");
    assert_eq!(customer.id, "7e2b4c9a-1d6f-4a3e-8b5c-0f9d2e7a4b18");
    assert_eq!(customer.version, 4);
    assert_eq!(customer.lms_user_id(), Some(4127003));
    assert_eq!(customer.lms_user_name(), Some("ghopper"));
    assert_eq!(
        customer.email.as_ref().unwrap().expose(),
        "grace.hopper@example.com"
    );
    let printed = format!("{customer:?}");
    for personal in ["grace.hopper", "Grace", "Hopper", "ghopper"] {
        assert!(!printed.contains(personal), "{personal} in {printed}");
    }

    let sent = &fake.requests_to("GET", "/edx-test/customers")[0];
    assert_eq!(
        query(sent),
        [
            (
                "where".to_owned(),
                "custom(fields(edx-lms_user_id=:id))".to_owned()
            ),
            ("var.id".to_owned(), "4127003".to_owned()),
            ("limit".to_owned(), "2".to_owned()),
        ]
    );
}

#[tokio::test]
async fn no_customer_with_the_lms_user_id_is_none() {
    let (fake, client) = commercetools().await;
    fake.on("GET", "/edx-test/customers").reply(Reply::json(
        200,
        json!({"limit": 2, "offset": 0, "count": 0, "total": 0, "results": []}),
    ));
    assert_eq!(client.customer_by_lms_user_id(99).await.unwrap(), None);
}

#[tokio::test]
async fn several_customers_with_the_lms_user_id_are_refused_for_good() {
    let (fake, client) = commercetools().await;
    let mut page = fixture("customers");
    let mut twin = page["results"][0].clone();
    twin["id"] = json!("0d3f6a9c-2e5b-4c8f-a1d4-7b0e3c6f9a25");
    page["results"].as_array_mut().unwrap().push(twin);
    page["count"] = json!(2);
    page["total"] = json!(2);
    fake.on("GET", "/edx-test/customers")
        .reply(Reply::json(200, page));
    let e = client.customer_by_lms_user_id(4127003).await.unwrap_err();
    assert!(
        matches!(&e, CallError::Decode { path, .. } if path == "results"),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains("2 customers have the same edx-lms_user_id"),
        "{text}"
    );
    assert!(!text.contains("grace"), "{text}");
    assert!(matches!(
        Err::<(), _>(e).for_task().unwrap_err(),
        TaskError::Abort(_)
    ));
}

#[tokio::test]
async fn a_state_is_asked_for_once_then_kept() {
    let (fake, client) = commercetools().await;
    let path = "/edx-test/states/key=2u-fulfillment-processing-state";
    fake.on("GET", path)
        .reply(Reply::json(200, fixture("state")));
    let state = client
        .state_by_key(FULFILLMENT_PROCESSING_STATE)
        .await
        .unwrap();
    assert_eq!(state.id, PROCESSING);
    assert_eq!(state.state_type, StateType::LineItemState);
    assert_eq!(state.transitions.as_ref().map(Vec::len), Some(2));

    let again = client
        .clone()
        .state_by_key(FULFILLMENT_PROCESSING_STATE)
        .await
        .unwrap();
    assert_eq!(again, state);
    // A state already kept is found by id too.
    assert_eq!(client.state_by_id(PROCESSING).await.unwrap(), state);
    assert_eq!(api_calls(&fake), [format!("GET {path}")]);
}

#[tokio::test]
async fn a_state_unknown_by_id_is_asked_for_then_kept_by_its_key() {
    let (fake, client) = commercetools().await;
    let path = format!("/edx-test/states/{PROCESSING}");
    fake.on("GET", &path)
        .reply(Reply::json(200, fixture("state")));
    let state = client.state_by_id(PROCESSING).await.unwrap();
    assert_eq!(state.key.as_deref(), Some(FULFILLMENT_PROCESSING_STATE));
    client
        .state_by_key(FULFILLMENT_PROCESSING_STATE)
        .await
        .unwrap();
    assert_eq!(api_calls(&fake), [format!("GET {path}")]);
}

/// Moves every line item of the order still pending to processing.
fn to_processing(order: &coordinator_commercetools::Order) -> Vec<OrderAction> {
    order
        .line_items
        .iter()
        .filter_map(|item| item.transition(PENDING, StateIdentifier::id(PROCESSING)))
        .collect()
}

#[tokio::test]
async fn an_update_sends_the_version_read_and_the_actions() {
    let (fake, client) = commercetools().await;
    fake.on("GET", ORDER_PATH).reply(Reply::json(200, order(7)));
    fake.on("POST", ORDER_PATH)
        .reply(Reply::json(200, order(8)));
    let updated = client
        .update_order(ORDER_ID, |order| {
            let mut actions = to_processing(order);
            actions.push(OrderAction::set_line_item_field(
                SECOND_ITEM,
                "edxLMSEntitlementId",
                "a4f8c2e6-1b9d-4e3a-8c7f-5d0b2e9a6c13",
            ));
            actions
        })
        .await
        .unwrap();
    assert_eq!(updated.version, 8);
    assert_eq!(
        api_calls(&fake),
        [format!("GET {ORDER_PATH}"), format!("POST {ORDER_PATH}")]
    );
    let post = &fake.requests_to("POST", ORDER_PATH)[0];
    assert_eq!(post.header("content-type"), Some("application/json"));
    assert_eq!(
        post.header("authorization"),
        Some("Bearer ct-token-4Jd9sK2")
    );
    let transition = |line_item: &str| {
        json!({
            "action": "transitionLineItemState", "lineItemId": line_item, "quantity": 1,
            "fromState": {"typeId": "state", "id": PENDING},
            "toState": {"typeId": "state", "id": PROCESSING}
        })
    };
    assert_eq!(
        post.body_json(),
        json!({
            "version": 7,
            "actions": [
                transition(FIRST_ITEM),
                transition(SECOND_ITEM),
                {"action": "setLineItemCustomField", "lineItemId": SECOND_ITEM,
                 "name": "edxLMSEntitlementId", "value": "a4f8c2e6-1b9d-4e3a-8c7f-5d0b2e9a6c13"}
            ]
        })
    );
    // The updated order comes back expanded like a read one.
    assert_eq!(
        query(post).iter().filter(|(k, _)| k == "expand").count(),
        ORDER_EXPANSION.len()
    );
}

fn conflict(expected: u64, actual: u64) -> Reply {
    let message = format!(
        "Object {ORDER_ID} has a different version than expected. Expected: {expected} - Actual: {actual}."
    );
    Reply::json(
        409,
        json!({
            "statusCode": 409,
            "message": message,
            "errors": [{"code": "ConcurrentModification", "message": message, "currentVersion": actual}]
        }),
    )
}

#[tokio::test]
async fn a_concurrent_modification_rereads_the_order_and_skips_what_was_done_meanwhile() {
    let (fake, client) = commercetools().await;
    // Someone moved the first line item to processing between our read and our update.
    let mut moved = order(8);
    moved["lineItems"][0]["state"][0]["state"]["id"] = json!(PROCESSING);
    fake.on("GET", ORDER_PATH)
        .reply(Reply::json(200, order(7)))
        .reply(Reply::json(200, moved));
    fake.on("POST", ORDER_PATH)
        .reply(conflict(7, 8))
        .reply(Reply::json(200, order(9)));

    let mut derived = 0;
    let updated = client
        .update_order(ORDER_ID, |order| {
            derived += 1;
            to_processing(order)
        })
        .await
        .unwrap();
    assert_eq!(updated.version, 9);
    assert_eq!(
        derived, 2,
        "the actions were derived again from the new order"
    );
    assert_eq!(
        api_calls(&fake),
        [
            format!("GET {ORDER_PATH}"),
            format!("POST {ORDER_PATH}"),
            format!("GET {ORDER_PATH}"),
            format!("POST {ORDER_PATH}"),
        ]
    );
    let posts = fake.requests_to("POST", ORDER_PATH);
    assert_eq!(posts[0].body_json()["version"], 7);
    assert_eq!(posts[0].body_json()["actions"].as_array().unwrap().len(), 2);
    let second = posts[1].body_json();
    assert_eq!(second["version"], 8);
    let actions = second["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "{second}");
    assert_eq!(actions[0]["lineItemId"], SECOND_ITEM);
}

#[tokio::test]
async fn nothing_is_sent_when_someone_else_did_it_all_meanwhile() {
    let (fake, client) = commercetools().await;
    let mut done = order(8);
    for item in done["lineItems"].as_array_mut().unwrap() {
        item["state"][0]["state"]["id"] = json!(PROCESSING);
    }
    fake.on("GET", ORDER_PATH)
        .reply(Reply::json(200, order(7)))
        .reply(Reply::json(200, done));
    fake.on("POST", ORDER_PATH).reply(conflict(7, 8));
    let order = client.update_order(ORDER_ID, to_processing).await.unwrap();
    assert_eq!(order.version, 8);
    assert_eq!(fake.count("POST", ORDER_PATH), 1);
    assert_eq!(fake.count("GET", ORDER_PATH), 2);
}

#[tokio::test]
async fn repeated_concurrent_modifications_give_up_after_the_retries() {
    let (fake, client) = commercetools().await;
    fake.on("GET", ORDER_PATH).reply(Reply::json(200, order(7)));
    fake.on("POST", ORDER_PATH).reply(conflict(7, 8));
    let e = client
        .update_order(ORDER_ID, to_processing)
        .await
        .unwrap_err();
    assert!(is_concurrent_modification(&e), "{e:?}");
    assert_eq!(e.status(), Some(409));
    let tries = usize::try_from(CONFLICT_RETRIES).unwrap() + 1;
    assert_eq!(fake.count("POST", ORDER_PATH), tries);
    assert_eq!(fake.count("GET", ORDER_PATH), tries);
}

#[tokio::test]
async fn an_update_refused_otherwise_is_not_tried_again() {
    let (fake, client) = commercetools().await;
    fake.on("GET", ORDER_PATH).reply(Reply::json(200, order(7)));
    fake.on("POST", ORDER_PATH).reply(Reply::json(
        400,
        json!({
            "statusCode": 400,
            "message": "Cannot transition 1 items from state 'Pending' because there are only 0 items in this state.",
            "errors": [{"code": "InvalidOperation", "message": "Cannot transition 1 items from state 'Pending' because there are only 0 items in this state."}]
        }),
    ));
    let e = client
        .update_order(ORDER_ID, to_processing)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InvalidOperation"));
    assert!(!is_concurrent_modification(&e));
    assert_eq!(fake.count("POST", ORDER_PATH), 1);
}

#[tokio::test]
async fn a_server_error_is_transient_and_retried_after_what_commercetools_says() {
    let (fake, client) = commercetools().await;
    fake.on("GET", ORDER_PATH).reply(
        Reply::json(
            503,
            json!({"statusCode": 503, "message": "Service Unavailable", "errors": []}),
        )
        .header("Retry-After", "3"),
    );
    let e = client.order_by_id(ORDER_ID).await.unwrap_err();
    assert!(
        matches!(
            e,
            CallError::Transient {
                kind: TransientKind::ServerError,
                status: Some(503),
                ..
            }
        ),
        "{e:?}"
    );
    // The route template names the call, not the order.
    let text = e.to_string();
    assert!(text.contains("GET /{project}/orders/{id}"), "{text}");
    assert!(!text.contains(ORDER_ID), "{text}");
    assert!(matches!(
        Err::<(), _>(e).for_task().unwrap_err(),
        TaskError::RetryAfter(d, _) if d == Duration::from_secs(3)
    ));
}

#[tokio::test]
async fn an_order_not_found_is_permanent() {
    let (fake, client) = commercetools().await;
    let message = format!("The Resource with ID '{ORDER_ID}' was not found.");
    fake.on("GET", ORDER_PATH).reply(Reply::json(
        404,
        json!({"statusCode": 404, "message": message,
               "errors": [{"code": "ResourceNotFound", "message": message}]}),
    ));
    let e = client.order_by_id(ORDER_ID).await.unwrap_err();
    assert_eq!(e.status(), Some(404));
    assert_eq!(e.code(), Some("ResourceNotFound"));
    assert!(!e.is_transient());
    assert!(matches!(
        Err::<(), _>(e).for_task().unwrap_err(),
        TaskError::Abort(_)
    ));
}

#[tokio::test]
async fn an_order_of_another_shape_is_refused_naming_the_field() {
    let (fake, client) = commercetools().await;
    let mut odd = order(7);
    odd["lineItems"][1]["quantity"] = json!("one");
    fake.on("GET", ORDER_PATH).reply(Reply::json(200, odd));
    let e = client.order_by_id(ORDER_ID).await.unwrap_err();
    assert!(
        matches!(&e, CallError::Decode { path, .. } if path == "lineItems[1].quantity"),
        "{e:?}"
    );
    assert!(e.to_string().contains("`lineItems[1].quantity`"), "{e}");
    assert!(matches!(
        Err::<(), _>(e).for_task().unwrap_err(),
        TaskError::Abort(_)
    ));
}

#[tokio::test]
async fn a_required_field_missing_from_an_order_is_named() {
    let (fake, client) = commercetools().await;
    let mut odd = order(7);
    odd["lineItems"][0]
        .as_object_mut()
        .unwrap()
        .remove("variant");
    fake.on("GET", ORDER_PATH).reply(Reply::json(200, odd));
    let e = client.order_by_id(ORDER_ID).await.unwrap_err();
    let text = e.to_string();
    assert!(text.contains("lineItems[0]"), "{text}");
    assert!(text.contains("variant"), "{text}");
}
