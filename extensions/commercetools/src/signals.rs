//! The signals of the commercetools flows. Each route sends one, durable in the default
//! configuration: the message is stored with its work before the route answers.

use coordinator::prelude::*;

/// commercetools says units of an order's line item moved to another state: when it is the
/// fulfillment-pending state, the order is to be fulfilled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FulfillmentRequested {
    /// commercetools' message id (what a redelivery repeats).
    pub message_id: String,
    /// The order.
    pub order_id: String,
    /// The line item the message is about (every pending line item of the order is
    /// fulfilled, once).
    #[serde(default)]
    pub line_item_id: Option<String>,
    /// The state the units moved to.
    pub to_state_id: String,
}

/// An order's state changed; the flow acts when it is the sanctioned state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderStateChangedMessage {
    /// commercetools' message id.
    pub message_id: String,
    /// The order.
    pub order_id: String,
}

/// Items of an order were returned (the refunds flow acts on it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderReturned {
    /// commercetools' message id.
    pub message_id: String,
    /// The order.
    pub order_id: String,
    /// The line items returned.
    pub line_item_ids: Vec<String>,
}

/// A line item could not be fulfilled: it is in the failure state, and the learner should be
/// told.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LineItemFulfillmentFailed {
    /// The order.
    pub order_id: String,
    /// The order's number.
    pub order_number: String,
    /// The line item.
    pub line_item_id: String,
    /// The learner's LMS user id.
    pub lms_user_id: u64,
    /// Why (the LMS's message).
    pub error: String,
}

/// `POST /commercetools/fulfill` received a line item state transition.
pub static FULFILLMENT_REQUESTED: Signal<FulfillmentRequested> = Signal::new(
    "commercetools.fulfillment_requested",
    "commercetools moved units of an order's line item to another state (a \
     LineItemStateTransition message forwarded by EventBridge). When the state is the \
     fulfillment-pending one, the order's pending line items are fulfilled, once.",
)
.durable();

/// `POST /commercetools/sanctioned` received an order state change.
pub static ORDER_STATE_CHANGED: Signal<OrderStateChangedMessage> = Signal::new(
    "commercetools.order_state_changed",
    "An order's state changed (OrderStateChanged or OrderStateTransition forwarded by \
     EventBridge). When the order is in the sanctioned state, the learner's LMS account is \
     deactivated.",
)
.durable();

/// `POST /commercetools/returned` received a return.
pub static ORDER_RETURNED: Signal<OrderReturned> = Signal::new(
    "commercetools.order_returned",
    "Items of an order were returned (a ReturnInfoAdded message forwarded by EventBridge): \
     the refunds flow refunds and revokes them.",
)
.durable();

/// A line item ended in the failure state.
pub static LINE_ITEM_FULFILLMENT_FAILED: Signal<LineItemFulfillmentFailed> = Signal::new(
    "commercetools.line_item_fulfillment_failed",
    "A line item of an order could not be fulfilled (the LMS refused, or kept failing) and is in \
     the fulfillment-failure state: connect a handler to tell the learner.",
);
