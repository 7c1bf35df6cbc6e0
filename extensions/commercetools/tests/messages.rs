//! The messages EventBridge forwards to the extension's routes, read from realistic envelopes,
//! and refused with the field at fault when they lack what the routes need.

use coordinator_commercetools::{
    EventBridgeEvent, LineItemStateTransition, Message, MessageError, OrderStateChanged,
    ReturnInfoAdded,
};
use serde_json::{Value, json};

const ORDER_ID: &str = "c4a1f9e2-6b3d-4f8a-9e7c-2d5b8a1f3c60";

fn fixture(name: &str) -> Value {
    let text = match name {
        "transition" => include_str!("fixtures/eventbridge_line_item_state_transition.json"),
        "state" => include_str!("fixtures/eventbridge_order_state_changed.json"),
        "return" => include_str!("fixtures/eventbridge_return_info_added.json"),
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).expect("the fixture is JSON")
}

/// `event` read from bytes as a route would, then validated.
fn read<D>(event: &Value) -> Result<D, MessageError>
where
    D: Message + Clone + serde::de::DeserializeOwned,
{
    let body = serde_json::to_vec(event).unwrap();
    let event = EventBridgeEvent::<D>::from_slice(&body)?;
    event.validate().cloned()
}

#[test]
fn a_line_item_state_transition_gives_the_order_and_the_state_reached() {
    let message: LineItemStateTransition = read(&fixture("transition")).unwrap();
    assert_eq!(message.message_id(), "6a2d8f4c-1b7e-4e3a-9c5f-8d0b2a6e4c17");
    assert_eq!(message.order_id(), ORDER_ID);
    assert_eq!(
        message.to_state_id(),
        "8d4b1f7e-2a6c-4e9d-b3f5-6c0a9e2d1b48"
    );
    assert_eq!(
        message.from_state_id(),
        Some("0e5c2a8f-3b6d-4f1e-a9c7-2d4b6f8a0c39")
    );
    assert_eq!(
        message.line_item_id.as_deref(),
        Some("5f8e2a1c-9b4d-4c7e-a3f6-1e0d9c8b7a52")
    );
    assert_eq!(message.quantity, Some(1));
    assert_eq!(message.header.sequence_number, Some(6));
    assert_eq!(message.header.project_key.as_deref(), Some("edx-prod"));
    assert_eq!(
        message
            .header
            .resource_user_provided_identifiers
            .as_ref()
            .and_then(|i| i.order_number.as_deref()),
        Some("2U-418207")
    );
}

#[test]
fn the_envelope_is_read_too() {
    let body = serde_json::to_vec(&fixture("transition")).unwrap();
    let event = EventBridgeEvent::<LineItemStateTransition>::from_slice(&body).unwrap();
    assert_eq!(
        event.detail_type.as_deref(),
        Some("LineItemStateTransition")
    );
    assert_eq!(
        event.source.as_deref(),
        Some("aws.partner/commercetools.com/edx-prod/coordinator-eventbridge")
    );
    assert_eq!(event.region.as_deref(), Some("us-east-1"));
}

#[test]
fn an_order_state_message_gives_the_order() {
    let message: OrderStateChanged = read(&fixture("state")).unwrap();
    assert_eq!(message.message_id(), "d1f7b3e9-5a2c-4c8e-b6d0-9e4a1c7f2b85");
    assert_eq!(message.order_id(), ORDER_ID);
    assert_eq!(message.order_state.as_deref(), Some("Cancelled"));
    assert_eq!(message.old_order_state.as_deref(), Some("Complete"));

    // A workflow transition (how an order becomes sanctioned) is accepted too.
    let mut transition = fixture("state");
    let detail = transition["detail"].as_object_mut().unwrap();
    for field in ["orderId", "orderState", "oldOrderState"] {
        detail.remove(field);
    }
    detail.insert("type".into(), json!("OrderStateTransition"));
    detail.insert(
        "state".into(),
        json!({"typeId": "state", "id": "5c0e7a3d-8b2f-4d6a-9e1c-4f7b0d3a8e52"}),
    );
    let message: OrderStateChanged = read(&transition).unwrap();
    assert_eq!(
        message.state.and_then(|s| s.id).as_deref(),
        Some("5c0e7a3d-8b2f-4d6a-9e1c-4f7b0d3a8e52")
    );
}

#[test]
fn a_return_gives_each_returned_line_item() {
    let message: ReturnInfoAdded = read(&fixture("return")).unwrap();
    assert_eq!(message.message_id(), "f5a1c8e3-6b2d-4d9f-8a7c-3e0b5d1f9c24");
    assert_eq!(message.order_id(), ORDER_ID);
    let items = message.returned_items();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].id(), "2e8b5d1a-9f4c-4a6e-b3d7-1c0f8a5e2d49");
    assert_eq!(
        items[0].line_item_id(),
        "5f8e2a1c-9b4d-4c7e-a3f6-1e0d9c8b7a52"
    );
    assert_eq!(items[0].payment_state.as_deref(), Some("Initial"));
}

/// `event` with the field at `pointer` removed.
fn without(mut event: Value, pointer: &str) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let parent = if parent.is_empty() {
        &mut event
    } else {
        event.pointer_mut(parent).unwrap()
    };
    if let Some(index) = key.parse::<usize>().ok().filter(|_| parent.is_array()) {
        parent.as_array_mut().unwrap().remove(index);
    } else {
        parent.as_object_mut().unwrap().remove(key);
    }
    event
}

#[test]
fn a_message_without_what_its_route_needs_is_refused_naming_the_field() {
    let cases: [(&str, &str, &str); 9] = [
        ("transition", "/detail", "detail"),
        ("transition", "/detail/resource/id", "detail.resource.id"),
        ("transition", "/detail/toState/id", "detail.toState.id"),
        ("transition", "/detail/fromState", "detail.fromState"),
        ("state", "/detail/id", "detail.id"),
        ("state", "/detail/type", "detail.type"),
        ("return", "/detail/returnInfo", "detail.returnInfo"),
        (
            "return",
            "/detail/returnInfo/items/0/lineItemId",
            "detail.returnInfo.items[0].lineItemId",
        ),
        (
            "return",
            "/detail/returnInfo/items/0/paymentState",
            "detail.returnInfo.items[0].paymentState",
        ),
    ];
    for (name, pointer, field) in cases {
        let event = without(fixture(name), pointer);
        let e = match name {
            "transition" => read::<LineItemStateTransition>(&event).unwrap_err(),
            "state" => read::<OrderStateChanged>(&event).unwrap_err(),
            _ => read::<ReturnInfoAdded>(&event).unwrap_err(),
        };
        assert_eq!(
            e,
            MessageError::Missing {
                field: field.to_owned()
            },
            "{name} without {pointer}"
        );
        assert!(e.to_string().contains(field), "{e}");
    }
}

#[test]
fn a_message_sent_to_the_wrong_route_is_refused() {
    let e = read::<LineItemStateTransition>(&fixture("return")).unwrap_err();
    assert_eq!(e.field(), "detail.type");
    assert!(e.to_string().contains("not ReturnInfoAdded"), "{e}");
    let e = read::<ReturnInfoAdded>(&fixture("state")).unwrap_err();
    assert_eq!(e.field(), "detail.type");
}

#[test]
fn a_value_of_the_wrong_type_is_refused_naming_the_field() {
    let mut event = fixture("return");
    event["detail"]["returnInfo"]["items"][0]["quantity"] = json!("one");
    let e = read::<ReturnInfoAdded>(&event).unwrap_err();
    assert_eq!(e.field(), "detail.returnInfo.items[0].quantity");
    assert!(matches!(e, MessageError::Invalid { .. }));

    let mut event = fixture("return");
    event["detail"]["returnInfo"]["items"][0]["createdAt"] = json!("last Tuesday");
    let e = read::<ReturnInfoAdded>(&event).unwrap_err();
    assert_eq!(e.field(), "detail.returnInfo.items[0].createdAt");
}
