//! The coordinator's real commercetools client against the sandbox's fake commercetools,
//! served on a local port: a token, orders by id and number, the customer by LMS user id, the
//! workflow states, and optimistic updates (a conflict read again and retried).

use std::time::Duration;

use coordinator::config::{ConfigDuration, Secret};
use coordinator::testing::TestCoordinator;
use coordinator_client::Call;
use coordinator_commercetools::{
    CommercetoolsClient, CommercetoolsSettings, FULFILLMENT_FAILURE_STATE,
    FULFILLMENT_PENDING_STATE, FULFILLMENT_PROCESSING_STATE, FULFILLMENT_SUCCESS_STATE, Order,
    OrderAction, OrderState, SDN_SANCTIONED_ORDER_STATE, StateIdentifier, StateType,
    is_concurrent_modification,
};
use coordinator_sandbox::{ItemKind, ItemSpec, OrderSpec, SandboxExtension, SandboxState};
use serde_json::{Value, json};

const PROJECT: &str = "edx-sandbox";

/// The sandbox's routes served on a free local port, as the server mounts them under `/api`;
/// the fake commercetools' URL, the sandbox's state, and the harness (keep it alive).
async fn serve_sandbox() -> (String, SandboxState, TestCoordinator) {
    let state = SandboxState::default();
    let t = TestCoordinator::builder()
        .extension(SandboxExtension::with_state(state.clone()))
        .wiring("")
        .build();
    let router = coordinator::http::extension_routes(t.coordinator(), |_, route| route);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free local port");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{addr}/api/sandbox/commercetools"), state, t)
}

/// A client of the fake, as a deployment on the sandbox would configure it: the same URL for
/// the API and the OAuth2 service.
fn client(url: &str) -> CommercetoolsClient {
    CommercetoolsClient::new(&CommercetoolsSettings {
        api_url: Some(url.to_owned()),
        auth_url: Some(url.to_owned()),
        project_key: Some(PROJECT.into()),
        client_id: Some("coordinator".into()),
        client_secret: Some(Secret::new("sandbox-secret")),
        scopes: vec![format!("manage_orders:{PROJECT}")],
        timeout: ConfigDuration(Duration::from_secs(5)),
    })
    .expect("complete settings")
}

/// Posts to the fake through the client's own connection (token included): seeding, and
/// updates the client's typed calls would not send.
async fn post(client: &CommercetoolsClient, route: &'static str, path: &str, body: Value) -> Value {
    client
        .service()
        .json(Call::post(route).path(path).json(&body))
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

fn item(kind: ItemKind, sku: &str) -> ItemSpec {
    ItemSpec {
        kind,
        sku: sku.into(),
        mode: "verified".into(),
        bundle_id: None,
        returned: false,
    }
}

#[tokio::test]
async fn the_real_client_reads_and_updates_orders_of_the_fake_commercetools() {
    let (url, sandbox, _t) = serve_sandbox().await;
    let commercetools = client(&url);

    let seeded = post(
        &commercetools,
        "/_orders",
        "/_orders",
        serde_json::to_value(OrderSpec {
            order_number: "EDX-1001".into(),
            lms_user_id: 42,
            username: "ada".into(),
            email: "ada@example.com".into(),
            items: vec![
                item(ItemKind::Course, "course-v1:edX+DemoX+T1"),
                item(
                    ItemKind::Entitlement,
                    "0f8e3c4a-8b8e-4c2b-9a53-2b8f1c5d7e90",
                ),
            ],
            sanctioned: false,
        })
        .unwrap(),
    )
    .await;
    let id = seeded["id"].as_str().unwrap();

    // Reads, by id and by number, with the expansions the flows read.
    let order = commercetools.order_by_id(id).await.unwrap();
    assert_eq!(order.version, 1);
    assert_eq!(order.order_number.as_deref(), Some("EDX-1001"));
    assert_eq!(order.order_state, OrderState::Complete);
    assert_eq!(
        order.customer_email.as_ref().unwrap().expose(),
        "ada@example.com"
    );
    assert!(!order.is_sanctioned());
    let kinds: Vec<_> = order
        .line_items
        .iter()
        .map(|item| {
            let product_type = item.product_type.as_ref().and_then(|t| t.expanded());
            product_type.and_then(|t| t.key.clone()).unwrap()
        })
        .collect();
    assert_eq!(kinds, ["edx_course", "edx_course_entitlement"]);
    assert_eq!(
        order.line_items[0].attribute("mode"),
        Some(&json!("verified"))
    );
    assert!(order.payments().next().is_some(), "the payment is expanded");
    assert_eq!(
        commercetools.order_by_number("EDX-1001").await.unwrap(),
        order
    );

    // The customer, by LMS user id.
    let customer = commercetools
        .customer_by_lms_user_id(42)
        .await
        .unwrap()
        .expect("the seeded customer");
    assert_eq!(Some(customer.id.as_str()), order.customer_id.as_deref());
    assert_eq!(customer.lms_user_id(), Some(42));
    assert_eq!(customer.lms_user_name(), Some("ada"));
    assert_eq!(
        commercetools.customer_by_lms_user_id(43).await.unwrap(),
        None
    );
    assert_eq!(
        commercetools.customer_by_id(&customer.id).await.unwrap(),
        customer
    );

    // Every state the flows name, by the extension's own keys.
    let state = |key| commercetools.state_by_key(key);
    let pending = state(FULFILLMENT_PENDING_STATE).await.unwrap();
    let processing = state(FULFILLMENT_PROCESSING_STATE).await.unwrap();
    let success = state(FULFILLMENT_SUCCESS_STATE).await.unwrap();
    state(FULFILLMENT_FAILURE_STATE).await.unwrap();
    let sanctioned = state(SDN_SANCTIONED_ORDER_STATE).await.unwrap();
    assert_eq!(pending.state_type, StateType::LineItemState);
    assert_eq!(sanctioned.state_type, StateType::OrderState);
    assert!(
        order
            .line_items
            .iter()
            .all(|item| item.quantity_in(&pending.id) == 1)
    );

    // Pending → processing, with an entitlement id on the second item.
    let entitlement_item = order.line_items[1].id.clone();
    let updated = commercetools
        .update_order(id, |order| {
            let mut actions: Vec<OrderAction> = order
                .line_items
                .iter()
                .filter_map(|item| item.transition(&pending.id, StateIdentifier::from(&processing)))
                .collect();
            actions.push(OrderAction::set_line_item_field(
                &entitlement_item,
                "edxLMSEntitlementId",
                "e-42",
            ));
            actions
        })
        .await
        .unwrap();
    assert_eq!(updated.version, 2);
    assert!(
        updated
            .line_items
            .iter()
            .all(|item| item.quantity_in(&processing.id) == 1 && item.quantity_in(&pending.id) == 0)
    );
    assert_eq!(
        updated.line_items[1]
            .custom
            .as_ref()
            .and_then(|c| c.text("edxLMSEntitlementId")),
        Some("e-42")
    );

    // A stale version is refused as a concurrent modification.
    let path = format!("/{PROJECT}/orders/{id}");
    let stale = commercetools
        .service()
        .json::<Value>(Call::post("/{project}/orders/{id}").path(&path).json(
            &json!({"version": 1, "actions": [OrderAction::set_line_item_field(&entitlement_item, "bundleId", "b-1")]}),
        ))
        .await
        .unwrap_err();
    assert!(is_concurrent_modification(&stale), "{stale:?}");

    // Someone else moves the first item to success after the client read the order: the
    // client's update is refused, it reads the order again and sends only what is left.
    let read = commercetools.order_by_id(id).await.unwrap();
    let first = &read.line_items[0];
    let action = first
        .transition(
            &processing.id,
            StateIdentifier::key(FULFILLMENT_SUCCESS_STATE),
        )
        .unwrap();
    post(
        &commercetools,
        "/{project}/orders/{id}",
        &path,
        json!({"version": read.version, "actions": [action]}),
    )
    .await;
    let mut derived = Vec::new();
    let done = commercetools
        .update_order_from(read, |order: &Order| {
            let actions: Vec<OrderAction> = order
                .line_items
                .iter()
                .filter_map(|item| item.transition(&processing.id, StateIdentifier::from(&success)))
                .collect();
            derived.push((order.version, actions.len()));
            actions
        })
        .await
        .unwrap();
    assert_eq!(
        derived,
        [(2, 2), (3, 1)],
        "derived again from the new version"
    );
    assert_eq!(done.version, 4);
    assert!(
        done.line_items
            .iter()
            .all(|item| item.quantity_in(&success.id) == 1)
    );

    let records = sandbox.records().commercetools;
    assert_eq!(records.updates, 3, "the refused updates changed nothing");
    assert_eq!(records.orders[id]["version"], 4);
    assert_eq!(records.calls["POST /{project}/orders/{id}"], 5);
}
