//! The order update actions the flows send
//! ([`CommercetoolsClient::update_order`](crate::CommercetoolsClient::update_order)): moving
//! line items between fulfillment states, setting a line item's custom field, marking a
//! return's payment.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::state::StateIdentifier;

/// One update action on an order, as commercetools reads it (`{"action":
/// "transitionLineItemState", ...}`).
///
/// ```
/// use coordinator_commercetools::{OrderAction, StateIdentifier};
/// use serde_json::json;
///
/// let action = OrderAction::TransitionLineItemState {
///     line_item_id: "li-1".into(),
///     quantity: 1,
///     from_state: StateIdentifier::id("s-pending"),
///     to_state: StateIdentifier::key("2u-fulfillment-success-state"),
///     actual_transition_date: None,
/// };
/// assert_eq!(serde_json::to_value(&action).unwrap(), json!({
///     "action": "transitionLineItemState", "lineItemId": "li-1", "quantity": 1,
///     "fromState": {"typeId": "state", "id": "s-pending"},
///     "toState": {"typeId": "state", "key": "2u-fulfillment-success-state"}
/// }));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "action",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum OrderAction {
    /// Moves `quantity` units of a line item from one state to another. commercetools refuses
    /// it (400) if fewer units are in `from_state`.
    TransitionLineItemState {
        /// The line item.
        line_item_id: String,
        /// How many units.
        quantity: u64,
        /// The state they are in.
        from_state: StateIdentifier,
        /// The state they go to.
        to_state: StateIdentifier,
        /// When it happened, if not now (ISO 8601).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        actual_transition_date: Option<String>,
    },
    /// Sets (or, with no value, removes) a custom field of a line item.
    SetLineItemCustomField {
        /// The line item.
        line_item_id: String,
        /// The field (`edxLMSEntitlementId`).
        name: String,
        /// The value; none removes the field.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<Value>,
    },
    /// Sets the payment state of a returned item (`Refunded`, `NotRefunded`).
    SetReturnPaymentState {
        /// The return item.
        return_item_id: String,
        /// Its new payment state.
        payment_state: String,
    },
}

impl OrderAction {
    /// Sets the text custom field `name` of a line item.
    ///
    /// ```
    /// use coordinator_commercetools::OrderAction;
    ///
    /// let action = OrderAction::set_line_item_field("li-1", "edxLMSEntitlementId", "e-42");
    /// assert_eq!(serde_json::to_value(&action).unwrap()["value"], "e-42");
    /// ```
    pub fn set_line_item_field(
        line_item_id: impl Into<String>,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        OrderAction::SetLineItemCustomField {
            line_item_id: line_item_id.into(),
            name: name.into(),
            value: Some(Value::String(value.into())),
        }
    }
}

/// The body of an update: the version the actions were derived from, and the actions.
#[derive(Debug, Serialize)]
pub(crate) struct OrderUpdate<'a> {
    pub(crate) version: u64,
    pub(crate) actions: &'a [OrderAction],
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn actions_serialize_as_commercetools_reads_them() {
        let set = OrderAction::SetLineItemCustomField {
            line_item_id: "li-1".into(),
            name: "edxLMSEntitlementId".into(),
            value: None,
        };
        assert_eq!(
            serde_json::to_value(&set).unwrap(),
            json!({"action": "setLineItemCustomField", "lineItemId": "li-1", "name": "edxLMSEntitlementId"})
        );
        let refund = OrderAction::SetReturnPaymentState {
            return_item_id: "r-1".into(),
            payment_state: "Refunded".into(),
        };
        assert_eq!(
            serde_json::to_value(&refund).unwrap(),
            json!({"action": "setReturnPaymentState", "returnItemId": "r-1", "paymentState": "Refunded"})
        );
        let back: OrderAction =
            serde_json::from_value(serde_json::to_value(&refund).unwrap()).unwrap();
        assert_eq!(back, refund);
    }

    #[test]
    fn an_update_carries_the_version_and_the_actions() {
        let actions = [OrderAction::set_line_item_field("li-1", "bundleId", "b-1")];
        let body = serde_json::to_value(OrderUpdate {
            version: 7,
            actions: &actions,
        })
        .unwrap();
        assert_eq!(body["version"], 7);
        assert_eq!(body["actions"][0]["action"], "setLineItemCustomField");
    }
}
