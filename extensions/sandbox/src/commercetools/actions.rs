//! The order update actions the fake applies: moving line-item units between states, setting
//! a line item's custom field, and the payment state of a returned item.

use coordinator::http::StatusCode;
use coordinator::id::now_ms;
use serde_json::{Map, Value, json};

use super::states::WorkflowState;
use coordinator::time::format_time_ms;

use super::{CommercetoolsError, LINE_ITEM_TYPE_ID};

/// Applies one update action to `order`.
pub(super) fn apply(order: &mut Value, action: &Value) -> Result<(), CommercetoolsError> {
    match action.get("action").and_then(Value::as_str) {
        Some("transitionLineItemState") => transition_line_item_state(order, action),
        Some("setLineItemCustomField") => set_line_item_custom_field(order, action),
        Some("setReturnPaymentState") => set_return_payment_state(order, action),
        Some(other) => Err(CommercetoolsError::invalid_operation(format!(
            "sandbox commercetools: the update action '{other}' is not faked; it applies \
             transitionLineItemState, setLineItemCustomField and setReturnPaymentState"
        ))),
        None => Err(CommercetoolsError::invalid_json(
            "actions -> action: Missing required value",
        )),
    }
}

/// The text field `name` of an update action.
fn text<'a>(action: &'a Value, name: &str) -> Result<&'a str, CommercetoolsError> {
    action.get(name).and_then(Value::as_str).ok_or_else(|| {
        CommercetoolsError::invalid_json(format!("actions -> {name}: Missing required value"))
    })
}

/// The line item `id` of `order`.
fn line_item<'a>(
    order: &'a mut Value,
    id: &str,
) -> Result<&'a mut Map<String, Value>, CommercetoolsError> {
    order
        .get_mut("lineItems")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
        .find(|item| item.get("id").and_then(Value::as_str) == Some(id))
        .ok_or_else(|| {
            CommercetoolsError::invalid_operation(format!(
                "The order has no line item with id '{id}'."
            ))
        })
}

/// The state an update action names in `field` (`{"typeId": "state", "id" or "key"}`).
fn named_state(action: &Value, field: &str) -> Result<&'static WorkflowState, CommercetoolsError> {
    let identifier = action.get(field).ok_or_else(|| {
        CommercetoolsError::invalid_json(format!("actions -> {field}: Missing required value"))
    })?;
    let (by, value, found) = match (
        identifier.get("id").and_then(Value::as_str),
        identifier.get("key").and_then(Value::as_str),
    ) {
        (Some(id), _) => ("id", id, WorkflowState::by_id(id)),
        (None, Some(key)) => ("key", key, WorkflowState::by_key(key)),
        (None, None) => {
            return Err(CommercetoolsError::invalid_json(format!(
                "actions -> {field}: a state identifier needs an id or a key"
            )));
        }
    };
    found.ok_or_else(|| {
        CommercetoolsError::refused(
            StatusCode::BAD_REQUEST,
            "ReferencedResourceNotFound",
            format!("The referenced object of type 'state' with {by} '{value}' was not found."),
        )
    })
}

/// `transitionLineItemState`: moves `quantity` units of a line item between states.
fn transition_line_item_state(order: &mut Value, action: &Value) -> Result<(), CommercetoolsError> {
    let line_item_id = text(action, "lineItemId")?;
    let quantity = action
        .get("quantity")
        .and_then(Value::as_u64)
        .filter(|q| *q > 0)
        .ok_or_else(|| {
            CommercetoolsError::invalid_json("actions -> quantity: a positive integer is required")
        })?;
    let from = named_state(action, "fromState")?;
    let to = named_state(action, "toState")?;
    let item = line_item(order, line_item_id)?;
    let states = item
        .entry("state")
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .ok_or_else(|| {
            CommercetoolsError::invalid_operation("The line item's state is not a list.")
        })?;
    let in_state = |entry: &Value, state: &WorkflowState| entry["state"]["id"] == state.id;
    let available: u64 = states
        .iter()
        .filter(|e| in_state(e, from))
        .filter_map(|e| e["quantity"].as_u64())
        .sum();
    if available < quantity {
        return Err(CommercetoolsError::invalid_operation(format!(
            "Cannot transition {quantity} items from state '{}' because there are only \
             {available} items in this state.",
            from.key
        )));
    }
    let mut left = quantity;
    for entry in states.iter_mut().filter(|e| in_state(e, from)) {
        let held = entry["quantity"].as_u64().unwrap_or_default();
        let taken = held.min(left);
        entry["quantity"] = json!(held - taken);
        left -= taken;
    }
    states.retain(|e| e["quantity"].as_u64().unwrap_or_default() > 0);
    match states.iter_mut().find(|e| in_state(e, to)) {
        Some(entry) => {
            entry["quantity"] = json!(entry["quantity"].as_u64().unwrap_or_default() + quantity);
        }
        None => states.push(json!({"quantity": quantity, "state": to.reference(false)})),
    }
    Ok(())
}

/// `setLineItemCustomField`: sets a line item's custom field (removes it without a value),
/// giving the line item the line-item custom type if it has none.
fn set_line_item_custom_field(order: &mut Value, action: &Value) -> Result<(), CommercetoolsError> {
    let line_item_id = text(action, "lineItemId")?;
    let name = text(action, "name")?.to_owned();
    let item = line_item(order, line_item_id)?;
    let custom = item.entry("custom").or_insert(Value::Null);
    if !custom.is_object() {
        *custom = json!({"type": {"typeId": "type", "id": LINE_ITEM_TYPE_ID}, "fields": {}});
    }
    let fields = custom
        .as_object_mut()
        .map(|c| c.entry("fields").or_insert_with(|| json!({})))
        .and_then(Value::as_object_mut)
        .ok_or_else(|| {
            CommercetoolsError::invalid_operation(
                "The line item's custom fields are not an object.",
            )
        })?;
    match action.get("value").filter(|v| !v.is_null()) {
        Some(value) => {
            fields.insert(name, value.clone());
        }
        None => {
            fields.remove(&name);
        }
    }
    Ok(())
}

/// `setReturnPaymentState`: sets the payment state of a returned item.
fn set_return_payment_state(order: &mut Value, action: &Value) -> Result<(), CommercetoolsError> {
    const PAYMENT_STATES: [&str; 4] = ["NonRefundable", "Initial", "Refunded", "NotRefunded"];
    let return_item_id = text(action, "returnItemId")?;
    let payment_state = text(action, "paymentState")?;
    if !PAYMENT_STATES.contains(&payment_state) {
        return Err(CommercetoolsError::invalid_json(format!(
            "actions -> paymentState: '{payment_state}' is not one of {}",
            PAYMENT_STATES.join(", ")
        )));
    }
    let item = order
        .get_mut("returnInfo")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(|info| info.get_mut("items").and_then(Value::as_array_mut))
        .flatten()
        .filter_map(Value::as_object_mut)
        .find(|item| item.get("id").and_then(Value::as_str) == Some(return_item_id))
        .ok_or_else(|| {
            CommercetoolsError::invalid_operation(format!(
                "The order has no return item with id '{return_item_id}'."
            ))
        })?;
    item.insert("paymentState".into(), json!(payment_state));
    item.insert("lastModifiedAt".into(), json!(format_time_ms(now_ms())));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commercetools::states::STATES;

    fn order_with(states: Value) -> Value {
        json!({
            "id": "o-1", "version": 1,
            "lineItems": [{"id": "li-1", "quantity": 3, "state": states}],
            "returnInfo": [{"items": [{"id": "r-1", "paymentState": "Initial"}]}]
        })
    }

    fn transition(quantity: u64, from: &str, to: &str) -> Value {
        json!({
            "action": "transitionLineItemState", "lineItemId": "li-1", "quantity": quantity,
            "fromState": {"typeId": "state", "key": from},
            "toState": {"typeId": "state", "key": to}
        })
    }

    #[test]
    fn a_transition_moves_units_and_merges_them_into_the_target_state() {
        let mut order = order_with(json!([
            {"quantity": 2, "state": {"typeId": "state", "id": STATES[0].id}},
            {"quantity": 1, "state": {"typeId": "state", "id": STATES[1].id}}
        ]));
        let action = transition(2, STATES[0].key, STATES[1].key);
        apply(&mut order, &action).unwrap();
        assert_eq!(
            order["lineItems"][0]["state"],
            json!([{"quantity": 3, "state": {"typeId": "state", "id": STATES[1].id}}])
        );
        // Part of them, by id, to a state not held yet.
        let action = json!({
            "action": "transitionLineItemState", "lineItemId": "li-1", "quantity": 1,
            "fromState": {"typeId": "state", "id": STATES[1].id},
            "toState": {"typeId": "state", "id": STATES[2].id}
        });
        apply(&mut order, &action).unwrap();
        let states = order["lineItems"][0]["state"].as_array().unwrap();
        assert_eq!(states.len(), 2);
        assert_eq!(states[0]["quantity"], 2);
        assert_eq!(states[1]["state"]["id"], STATES[2].id);
    }

    #[test]
    fn a_transition_of_more_units_than_the_state_holds_is_refused() {
        let mut order = order_with(json!([
            {"quantity": 1, "state": {"typeId": "state", "id": STATES[0].id}}
        ]));
        let e = apply(&mut order, &transition(2, STATES[0].key, STATES[1].key)).unwrap_err();
        assert!(
            e.to_string().contains(
                "Cannot transition 2 items from state '2u-fulfillment-pending-state' because \
                 there are only 1 items"
            ),
            "{e}"
        );
        let e = apply(&mut order, &transition(1, "Initial", STATES[1].key)).unwrap_err();
        assert!(e.to_string().contains("ReferencedResourceNotFound"), "{e}");
    }

    #[test]
    fn custom_fields_get_a_type_and_are_removed_without_a_value() {
        let mut order = order_with(json!([]));
        let set = json!({"action": "setLineItemCustomField", "lineItemId": "li-1",
                         "name": "edxLMSEntitlementId", "value": "e-1"});
        apply(&mut order, &set).unwrap();
        let custom = &order["lineItems"][0]["custom"];
        assert_eq!(custom["type"]["id"], LINE_ITEM_TYPE_ID);
        assert_eq!(custom["fields"]["edxLMSEntitlementId"], "e-1");
        let unset = json!({"action": "setLineItemCustomField", "lineItemId": "li-1",
                           "name": "edxLMSEntitlementId"});
        apply(&mut order, &unset).unwrap();
        assert_eq!(order["lineItems"][0]["custom"]["fields"], json!({}));
        let other = json!({"action": "setLineItemCustomField", "lineItemId": "li-9",
                           "name": "x", "value": 1});
        assert!(apply(&mut order, &other).is_err());
    }

    #[test]
    fn a_return_payment_state_is_set_on_the_return_item() {
        let mut order = order_with(json!([]));
        let refund = json!({"action": "setReturnPaymentState", "returnItemId": "r-1",
                            "paymentState": "Refunded"});
        apply(&mut order, &refund).unwrap();
        assert_eq!(
            order["returnInfo"][0]["items"][0]["paymentState"],
            "Refunded"
        );
        let odd = json!({"action": "setReturnPaymentState", "returnItemId": "r-1",
                         "paymentState": "Paid"});
        assert!(apply(&mut order, &odd).is_err());
    }
}
