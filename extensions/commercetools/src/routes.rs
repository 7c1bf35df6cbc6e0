//! The routes EventBridge forwards commercetools messages to, at the original's paths (the
//! extension is mounted at `/commercetools`): `/fulfill`, `/sanctioned`, `/returned`. Each
//! requires an administrator, validates the message (400 naming the field), and stores its
//! work before answering: 202 `accepted`, or 200 `duplicate` for a message received before.

use coordinator::http::{Bytes, Json, Problem, Route, StatusCode};
use coordinator::prelude::*;
use serde::de::DeserializeOwned;

use crate::messages::{
    EventBridgeEvent, LineItemStateTransition, Message, OrderStateChanged, ReturnInfoAdded,
};
use crate::signals::{
    FULFILLMENT_REQUESTED, FulfillmentRequested, ORDER_RETURNED, ORDER_STATE_CHANGED,
    OrderReturned, OrderStateChangedMessage,
};

/// The inbox source of commercetools messages: a message id is acted on once.
pub const INBOX_SOURCE: &str = "commercetools.messages";

/// How a route answered a message.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct MessageAck {
    /// commercetools' message id.
    pub message_id: String,
    /// `accepted` (its work is stored), `duplicate` (received before: nothing done again) or
    /// `ignored` (a message type this route does not act on: nothing stored).
    pub status: String,
    /// The dispatch that carries the work (`/api/v1/dispatches/{id}`), when accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "uuid"))]
    pub dispatch_id: Option<String>,
    /// Why it was ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A message read from a request: one to act on, or one of a type this route does not act on.
enum Read<D> {
    Act(D),
    Ignore(MessageAck),
}

/// Reads and validates an EventBridge envelope of `D`. A message of another type (when it
/// says its type) is not an error: the rule that forwarded it sends more than this route acts
/// on, and it is answered 200 `ignored`.
fn read<D: Message + DeserializeOwned>(body: &Bytes) -> Result<Read<D>, Problem> {
    let event =
        EventBridgeEvent::<D>::from_slice(body).map_err(|e| Problem::bad_request(e.to_string()))?;
    if let Some(detail) = &event.detail {
        let kind = detail
            .header()
            .message_type
            .as_deref()
            .map(str::trim)
            .unwrap_or_default();
        if !kind.is_empty() && !D::TYPES.contains(&kind) {
            return Ok(Read::Ignore(MessageAck {
                message_id: detail.message_id().to_owned(),
                status: "ignored".to_owned(),
                dispatch_id: None,
                reason: Some(format!(
                    "this route acts on {} messages, not {kind}",
                    D::TYPES.join(" and ")
                )),
            }));
        }
    }
    event
        .validate()
        .map_err(|e| Problem::bad_request(e.to_string()))?;
    event
        .detail
        .map(Read::Act)
        .ok_or_else(|| Problem::bad_request("the body has no detail (the commercetools message)"))
}

/// Stores `signal`'s work for the message `message_id` once.
async fn accept<P: Payload>(
    ctx: &Context,
    message_id: &str,
    signal: &'static Signal<P>,
    payload: P,
) -> Result<(StatusCode, Json<MessageAck>), Problem> {
    let report = ctx
        .send_once(INBOX_SOURCE, message_id, signal, payload)
        .await?;
    Ok(match report {
        Some(report) => (
            StatusCode::ACCEPTED,
            Json(MessageAck {
                message_id: message_id.to_owned(),
                status: "accepted".to_owned(),
                dispatch_id: Some(report.id.to_string()),
                reason: None,
            }),
        ),
        None => (
            StatusCode::OK,
            Json(MessageAck {
                message_id: message_id.to_owned(),
                status: "duplicate".to_owned(),
                dispatch_id: None,
                reason: None,
            }),
        ),
    })
}

async fn fulfill(ctx: Context, body: Bytes) -> Result<(StatusCode, Json<MessageAck>), Problem> {
    let message: LineItemStateTransition = match read(&body)? {
        Read::Act(message) => message,
        Read::Ignore(ack) => return Ok((StatusCode::OK, Json(ack))),
    };
    let payload = FulfillmentRequested {
        message_id: message.message_id().to_owned(),
        order_id: message.order_id().to_owned(),
        line_item_id: message.line_item_id.clone(),
        to_state_id: message.to_state_id().to_owned(),
    };
    accept(&ctx, message.message_id(), &FULFILLMENT_REQUESTED, payload).await
}

async fn sanctioned(ctx: Context, body: Bytes) -> Result<(StatusCode, Json<MessageAck>), Problem> {
    let message: OrderStateChanged = match read(&body)? {
        Read::Act(message) => message,
        Read::Ignore(ack) => return Ok((StatusCode::OK, Json(ack))),
    };
    let payload = OrderStateChangedMessage {
        message_id: message.message_id().to_owned(),
        order_id: message.order_id().to_owned(),
    };
    accept(&ctx, message.message_id(), &ORDER_STATE_CHANGED, payload).await
}

async fn returned(ctx: Context, body: Bytes) -> Result<(StatusCode, Json<MessageAck>), Problem> {
    let message: ReturnInfoAdded = match read(&body)? {
        Read::Act(message) => message,
        Read::Ignore(ack) => return Ok((StatusCode::OK, Json(ack))),
    };
    let payload = OrderReturned {
        message_id: message.message_id().to_owned(),
        order_id: message.order_id().to_owned(),
        line_item_ids: message
            .returned_items()
            .iter()
            .map(|item| item.line_item_id().to_owned())
            .collect(),
    };
    accept(&ctx, message.message_id(), &ORDER_RETURNED, payload).await
}

const STORED: &str = "The message's work could not be stored: send it again";

pub(crate) fn declare(ext: &mut ExtensionBuilder<'_>) {
    ext.route(
        Route::post("/fulfill", fulfill)
            .administrator()
            .doc("A LineItemStateTransition message forwarded by EventBridge (`{\"detail\": {\"id\", \"resource\": {\"id\": order id}, \"fromState\", \"toState\": {\"id\"}}}`): sends commercetools.fulfillment_requested, whose work is stored before the answer (202; 200 `duplicate` for a message id received before; 200 `ignored` for a message of another type).")
            .request::<EventBridgeEvent<LineItemStateTransition>>()
            .response::<MessageAck>()
            .problem(StatusCode::BAD_REQUEST, "The message is malformed: the detail names the field")
            .problem(StatusCode::SERVICE_UNAVAILABLE, STORED),
    )
    .route(
        Route::post("/sanctioned", sanctioned)
            .administrator()
            .doc("An OrderStateChanged (or OrderStateTransition) message forwarded by EventBridge: sends commercetools.order_state_changed; when the order is in the sanctioned state (2u-sdn-order-state) the learner's LMS account is deactivated.")
            .request::<EventBridgeEvent<OrderStateChanged>>()
            .response::<MessageAck>()
            .problem(StatusCode::BAD_REQUEST, "The message is malformed: the detail names the field")
            .problem(StatusCode::SERVICE_UNAVAILABLE, STORED),
    )
    .route(
        Route::post("/returned", returned)
            .administrator()
            .doc("A ReturnInfoAdded message forwarded by EventBridge: validated, and sent as commercetools.order_returned for the refunds flow.")
            .request::<EventBridgeEvent<ReturnInfoAdded>>()
            .response::<MessageAck>()
            .problem(StatusCode::BAD_REQUEST, "The message is malformed: the detail names the field")
            .problem(StatusCode::SERVICE_UNAVAILABLE, STORED),
    );
}
