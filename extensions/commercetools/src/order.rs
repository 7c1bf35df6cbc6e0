//! Orders as commercetools returns them, with the parts the flows read: line items and the
//! fulfillment state of each unit, the workflow state, payments, returns and custom fields.
//!
//! Fields commercetools may omit are `Option`s (or empty lists); fields the flows do not read
//! are not modelled and are ignored when decoding. The customer's email is [`Personal`]: it
//! prints as `[redacted]`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use coordinator::Personal;

use crate::actions::OrderAction;
use crate::keys::SDN_SANCTIONED_ORDER_STATE;
use crate::reference::{CustomFields, LocalizedString, Reference};
use crate::state::{StateIdentifier, StateReference};

/// An order.
///
/// ```
/// use coordinator_commercetools::{Order, OrderState};
///
/// let order: Order = serde_json::from_str(r#"{
///     "id": "3f9a1c2e-8b7d-4e6f-a5c4-1d2e3f4a5b6c", "version": 4,
///     "orderNumber": "2U-104729", "customerEmail": "ada@example.com",
///     "orderState": "Complete", "lineItems": [],
///     "totalPrice": {"type": "centPrecision", "currencyCode": "USD", "centAmount": 4900, "fractionDigits": 2}
/// }"#).unwrap();
/// assert_eq!(order.order_state, OrderState::Complete);
/// assert_eq!(order.customer_email.as_ref().unwrap().expose(), "ada@example.com");
/// assert!(!format!("{order:?}").contains("ada@example.com"));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// Its id.
    pub id: String,
    /// Its version: an update names it, and is refused (409) if the order changed since.
    pub version: u64,
    /// The human-readable order number (`2U-104729`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_number: Option<String>,
    /// The customer who placed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// The customer's email when the order was placed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_email: Option<Personal<String>>,
    /// Where the order stands (`Open`, `Confirmed`, `Complete`, `Cancelled`).
    pub order_state: OrderState,
    /// Its custom workflow state (`2u-sdn-order-state`), expanded when read by this client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<StateReference>,
    /// `Paid`, `Pending`, `Failed`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_state: Option<String>,
    /// `Shipped`, `Pending`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipment_state: Option<String>,
    /// What was bought.
    #[serde(default)]
    pub line_items: Vec<LineItem>,
    /// The total.
    pub total_price: Money,
    /// Its payments, expanded when read by this client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_info: Option<PaymentInfo>,
    /// Its returns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub return_info: Vec<ReturnInfo>,
    /// Its custom fields (`mobileOrder`, `orderNumber`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<CustomFields>,
    /// The locale it was placed in (`en-US`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// When it was created (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// When it was last changed (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_at: Option<String>,
    /// When it was completed (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
}

impl Order {
    /// The line item with this id.
    pub fn line_item(&self, id: &str) -> Option<&LineItem> {
        self.line_items.iter().find(|item| item.id == id)
    }

    /// The key of its custom workflow state, when it has one and it was expanded.
    pub fn state_key(&self) -> Option<&str> {
        self.state.as_ref()?.expanded()?.key.as_deref()
    }

    /// Whether the order is sanctioned (its workflow state is [`SDN_SANCTIONED_ORDER_STATE`]).
    pub fn is_sanctioned(&self) -> bool {
        self.state_key() == Some(SDN_SANCTIONED_ORDER_STATE)
    }

    /// Whether it was placed in the mobile apps (its `mobileOrder` custom field).
    pub fn is_mobile_order(&self) -> bool {
        self.custom
            .as_ref()
            .and_then(|c| c.flag(crate::keys::ORDER_MOBILE_ORDER_FIELD))
            .unwrap_or(false)
    }

    /// The payments, when they were expanded.
    pub fn payments(&self) -> impl Iterator<Item = &Payment> {
        self.payment_info
            .iter()
            .flat_map(|info| &info.payments)
            .filter_map(Reference::expanded)
    }
}

/// Where an order stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum OrderState {
    /// Placed, not yet confirmed.
    Open,
    /// Confirmed.
    Confirmed,
    /// Done.
    Complete,
    /// Cancelled.
    Cancelled,
    /// A state commercetools added since.
    #[serde(other)]
    Other,
}

/// One product bought, in some quantity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LineItem {
    /// Its id.
    pub id: String,
    /// The product's id.
    pub product_id: String,
    /// The product's key (a course key: `MichiganX+InjuryPreventionX`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_key: Option<String>,
    /// The product's name, by language.
    #[serde(default)]
    pub name: LocalizedString,
    /// The product's type (`edx_course`, `edx_program`), expanded when read by this client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_type: Option<Reference<ProductType>>,
    /// The variant bought (a course run).
    pub variant: Variant,
    /// The unit price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Price>,
    /// The price of the whole quantity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_price: Option<Money>,
    /// How many.
    pub quantity: u64,
    /// Which state each unit is in: units are split between states as they move.
    #[serde(default)]
    pub state: Vec<ItemState>,
    /// Its custom fields (`bundleId`, `edxLMSEntitlementId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<CustomFields>,
}

impl LineItem {
    /// How many units are in the state with this id.
    pub fn quantity_in(&self, state_id: &str) -> u64 {
        self.state
            .iter()
            .filter(|s| s.state.id == state_id)
            .map(|s| s.quantity)
            .sum()
    }

    /// Moves every unit in the state `from` (by id) to `to`; `None` when no unit is in `from`
    /// (someone moved them already), so that a retried update skips it.
    ///
    /// ```
    /// use coordinator_commercetools::{LineItem, StateIdentifier};
    ///
    /// let item: LineItem = serde_json::from_value(serde_json::json!({
    ///     "id": "li-1", "productId": "p-1", "variant": {"id": 1}, "quantity": 1,
    ///     "state": [{"quantity": 1, "state": {"typeId": "state", "id": "pending"}}]
    /// })).unwrap();
    /// assert!(item.transition("pending", StateIdentifier::id("processing")).is_some());
    /// assert!(item.transition("processing", StateIdentifier::id("success")).is_none());
    /// ```
    pub fn transition(&self, from: &str, to: StateIdentifier) -> Option<OrderAction> {
        let quantity = self.quantity_in(from);
        (quantity > 0).then(|| OrderAction::TransitionLineItemState {
            line_item_id: self.id.clone(),
            quantity,
            from_state: StateIdentifier::id(from),
            to_state: to,
            actual_transition_date: None,
        })
    }

    /// The value of the variant's attribute `name` (`mode`, `external-ids-variant`).
    pub fn attribute(&self, name: &str) -> Option<&Value> {
        self.variant
            .attributes
            .iter()
            .find(|a| a.name == name)
            .map(|a| &a.value)
    }

    /// The product's name in `locale`, if it has one.
    pub fn name_in(&self, locale: &str) -> Option<&str> {
        self.name.get(locale).map(String::as_str)
    }
}

/// How many units of a line item are in a state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ItemState {
    /// How many units.
    pub quantity: u64,
    /// The state.
    pub state: StateReference,
}

/// A product variant (for edX, a course run or a mode of it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Variant {
    /// Its id within the product.
    pub id: u64,
    /// Its SKU (a course run key: `course-v1:MichiganX+InjuryPreventionX+1T2021`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    /// Its key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Its attributes (`mode`, `external-ids-variant`, `lob`).
    #[serde(default)]
    pub attributes: Vec<Attribute>,
    /// Its images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Image>,
}

/// A variant's attribute: a name and a value of any shape (text, number, enum `{key,
/// label}`, reference).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Attribute {
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: Value,
}

/// An image of a variant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Image {
    /// Where it is.
    pub url: String,
    /// Its label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// A product type, as an expanded reference shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProductType {
    /// Its key (`edx_course`, `edx_program`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Its name (`edX Course`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// An amount of money in the currency's smallest unit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Money {
    /// The amount in the smallest unit (cents).
    pub cent_amount: i64,
    /// ISO 4217 currency code (`USD`).
    pub currency_code: String,
    /// Digits after the decimal point (2 for USD).
    #[serde(default = "two")]
    pub fraction_digits: u32,
}

fn two() -> u32 {
    2
}

/// A unit price.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Price {
    /// Its id.
    pub id: String,
    /// Its key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The amount.
    pub value: Money,
}

/// An order's payments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentInfo {
    /// References to the payments, expanded when read by this client.
    #[serde(default)]
    pub payments: Vec<Reference<Payment>>,
}

/// A payment, as an expanded reference shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    /// Its id.
    pub id: String,
    /// Its version.
    pub version: u64,
    /// Its key (the payment processor's id, normalized).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The payment processor's id of it (a Stripe PaymentIntent, a PayPal order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_id: Option<String>,
    /// How much was to be paid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_planned: Option<Money>,
    /// How it was paid (`stripe_edx`, `card`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_method_info: Option<PaymentMethodInfo>,
    /// The processor's status (`succeeded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_status: Option<PaymentStatus>,
    /// Charges and refunds.
    #[serde(default)]
    pub transactions: Vec<Transaction>,
}

/// How a payment was made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentMethodInfo {
    /// The processor (`stripe_edx`, `paypal_edx`, `ios_iap_edx`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_interface: Option<String>,
    /// The method (`card`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

/// A payment's status at its processor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentStatus {
    /// The processor's code (`succeeded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_code: Option<String>,
    /// The processor's text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_text: Option<String>,
}

/// A charge, refund or authorization of a payment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    /// Its id.
    pub id: String,
    /// `Charge`, `Refund`, `Authorization`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// How much.
    pub amount: Money,
    /// The processor's id of it (a Stripe charge or refund).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interaction_id: Option<String>,
    /// `Initial`, `Pending`, `Success`, `Failure`.
    pub state: String,
    /// When it happened (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

/// A return of some of an order's items.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReturnInfo {
    /// The items returned.
    #[serde(default)]
    pub items: Vec<ReturnItem>,
    /// A tracking id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_tracking_id: Option<String>,
    /// When (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_date: Option<String>,
}

/// One returned item of an order's [`ReturnInfo`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReturnItem {
    /// `LineItemReturnItem` or `CustomLineItemReturnItem`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its id.
    pub id: String,
    /// How many units.
    pub quantity: u64,
    /// The line item returned (for a `LineItemReturnItem`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_item_id: Option<String>,
    /// `Returned`, `BackInStock`, ...
    pub shipment_state: String,
    /// `Initial`, `Refunded`, `NotRefunded`, `NonRefundable`.
    pub payment_state: String,
    /// Its custom fields (`transactionId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<CustomFields>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn item(states: Value) -> LineItem {
        serde_json::from_value(json!({
            "id": "li-1", "productId": "p-1", "name": {"en-US": "Course"},
            "variant": {"id": 1, "sku": "course-v1:X+Y+Z",
                        "attributes": [{"name": "mode", "value": "verified"}]},
            "quantity": 3, "state": states
        }))
        .unwrap()
    }

    #[test]
    fn units_split_between_states_are_counted_per_state() {
        let item = item(json!([
            {"quantity": 2, "state": {"typeId": "state", "id": "pending"}},
            {"quantity": 1, "state": {"typeId": "state", "id": "success"}}
        ]));
        assert_eq!(item.quantity_in("pending"), 2);
        assert_eq!(item.quantity_in("success"), 1);
        assert_eq!(item.quantity_in("failure"), 0);
        let action = item
            .transition("pending", StateIdentifier::key("x"))
            .unwrap();
        assert!(matches!(
            action,
            OrderAction::TransitionLineItemState { quantity: 2, .. }
        ));
        assert_eq!(item.attribute("mode"), Some(&json!("verified")));
        assert_eq!(item.name_in("en-US"), Some("Course"));
        assert_eq!(item.name_in("fr"), None);
    }

    #[test]
    fn an_unknown_order_state_still_reads() {
        assert_eq!(
            serde_json::from_value::<OrderState>(json!("Archived")).unwrap(),
            OrderState::Other
        );
    }
}
