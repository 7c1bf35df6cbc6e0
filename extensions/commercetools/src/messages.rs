//! The commercetools messages the extension's routes accept, as Amazon EventBridge forwards
//! them: an [`EventBridgeEvent`] envelope whose `detail` is the commercetools message.
//!
//! | route | message | what it says |
//! | --- | --- | --- |
//! | `POST /commercetools/fulfill` | [`LineItemStateTransition`] | line items of an order moved to a state (placed: to be fulfilled) |
//! | `POST /commercetools/sanctioned` | [`OrderStateChanged`] | an order's state changed (sanctioned after an SDN hit) |
//! | `POST /commercetools/returned` | [`ReturnInfoAdded`] | items of an order were returned (to refund and revoke) |
//!
//! The types read leniently (every field optional, unknown fields ignored) so that
//! [`EventBridgeEvent::validate`] can say exactly which field is missing or wrong, for a 400
//! that names it ([`MessageError::field`]). The fields required are those the original
//! service's serializers required and its views read; each message is about an order
//! (`detail.resource.id`). No message carries personal data: ids, states and dates only.

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Why a message was refused: the field (a path from the envelope, `detail.toState.id`) and
/// what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// A required field is absent, null or blank.
    #[error(
        "the message has no `{field}`; send the commercetools message as EventBridge forwards \
         it: {{\"detail\": {{\"id\": ..., \"resource\": {{\"typeId\": \"order\", \"id\": ...}}, \
         \"type\": ..., ...}}}}"
    )]
    Missing {
        /// The field.
        field: String,
    },
    /// A field has a value the route cannot take.
    #[error("the message's `{field}` is not valid: {reason}")]
    Invalid {
        /// The field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl MessageError {
    /// The field refused (`detail.toState.id`).
    pub fn field(&self) -> &str {
        match self {
            MessageError::Missing { field } | MessageError::Invalid { field, .. } => field,
        }
    }

    fn missing(field: impl Into<String>) -> Self {
        MessageError::Missing {
            field: field.into(),
        }
    }

    fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        MessageError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// An Amazon EventBridge event: the envelope EventBridge wraps a commercetools message in
/// (`detail`).
///
/// ```
/// use coordinator_commercetools::{EventBridgeEvent, LineItemStateTransition, Message};
///
/// let event: EventBridgeEvent<LineItemStateTransition> = serde_json::from_str(r#"{
///     "version": "0", "id": "5b0c2f7e-9a1d-4c3b-8e6f-7a8b9c0d1e2f",
///     "detail-type": "LineItemStateTransition",
///     "source": "aws.partner/commercetools.com/edx-prod/coordinator",
///     "detail": {
///         "id": "a1b2c3d4-0000-4000-8000-000000000001", "version": 1, "sequenceNumber": 4,
///         "resource": {"typeId": "order", "id": "3f9a1c2e-8b7d-4e6f-a5c4-1d2e3f4a5b6c"},
///         "type": "LineItemStateTransition", "lineItemId": "li-1", "quantity": 1,
///         "fromState": {"typeId": "state", "id": "s-initial"},
///         "toState": {"typeId": "state", "id": "s-pending"}
///     }
/// }"#).unwrap();
/// let message = event.validate().unwrap();
/// assert_eq!(message.order_id(), "3f9a1c2e-8b7d-4e6f-a5c4-1d2e3f4a5b6c");
/// assert_eq!(message.to_state_id(), "s-pending");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(bound(deserialize = "D: Deserialize<'de>"))]
pub struct EventBridgeEvent<D> {
    /// The envelope's version (`0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The event's id (EventBridge's, not the message's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The message type, as the EventBridge rule sets it.
    #[serde(
        default,
        rename = "detail-type",
        skip_serializing_if = "Option::is_none"
    )]
    pub detail_type: Option<String>,
    /// The event source (`aws.partner/commercetools.com/<project>/<name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The AWS account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// When (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// The AWS region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Resources the event concerns (ARNs; none for commercetools).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// The commercetools message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<D>,
}

impl<D: Message> EventBridgeEvent<D> {
    /// The message, once every field its route needs is there and valid; else the first
    /// problem, naming its field.
    pub fn validate(&self) -> Result<&D, MessageError> {
        let detail = self
            .detail
            .as_ref()
            .ok_or_else(|| MessageError::missing("detail"))?;
        detail.validate()?;
        Ok(detail)
    }
}

impl<D: DeserializeOwned> EventBridgeEvent<D> {
    /// Reads an event from a request body; a body of another shape is refused naming where
    /// (`detail.quantity`), as a [`MessageError::Invalid`]. It still needs
    /// [`validate`](Self::validate).
    pub fn from_slice(body: &[u8]) -> Result<Self, MessageError> {
        let de = &mut serde_json::Deserializer::from_slice(body);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." {
                "(the body)".to_owned()
            } else {
                path
            };
            MessageError::invalid(field, e.into_inner().to_string())
        })
    }
}

/// A commercetools message a route accepts.
pub trait Message {
    /// The message types (`type`) it accepts.
    const TYPES: &'static [&'static str];

    /// What every message has.
    fn header(&self) -> &MessageHeader;

    /// Checks the fields the route needs, naming the first one missing or invalid (as a path
    /// from the envelope: `detail.toState.id`).
    fn validate(&self) -> Result<(), MessageError>;

    /// The message's id (commercetools', `detail.id`): what a redelivery repeats.
    fn message_id(&self) -> &str {
        self.header().id.as_deref().unwrap_or_default()
    }

    /// The id of the order the message is about (`detail.resource.id`).
    fn order_id(&self) -> &str {
        self.header()
            .resource
            .as_ref()
            .and_then(|r| r.id.as_deref())
            .unwrap_or_default()
    }
}

/// The fields every commercetools message has.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageHeader {
    /// The message's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The message's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Its place among the messages about the same resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<u64>,
    /// The resource it is about (an order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<MessageReference>,
    /// The resource's version after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<u64>,
    /// The resource's own identifiers (`orderNumber`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_user_provided_identifiers: Option<UserProvidedIdentifiers>,
    /// The message type (`LineItemStateTransition`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub message_type: Option<String>,
    /// The project it comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_key: Option<String>,
    /// When it was created (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

impl MessageHeader {
    /// Checks the id, the order it is about, and its type (against `types`; an absent type is
    /// accepted unless `type_required`).
    fn validate(&self, types: &[&str], type_required: bool) -> Result<(), MessageError> {
        required(self.id.as_deref(), "detail.id")?;
        let resource = self
            .resource
            .as_ref()
            .ok_or_else(|| MessageError::missing("detail.resource"))?;
        required(resource.id.as_deref(), "detail.resource.id")?;
        expect_type_id(resource, "order", "detail.resource.typeId")?;
        match self.message_type.as_deref().map(str::trim) {
            None | Some("") if type_required => Err(MessageError::missing("detail.type")),
            None | Some("") => Ok(()),
            Some(t) if types.contains(&t) => Ok(()),
            Some(t) => Err(MessageError::invalid(
                "detail.type",
                format!(
                    "this route takes {} messages, not {t}; check the EventBridge rule that \
                     forwards them",
                    types.join(" or ")
                ),
            )),
        }
    }
}

/// A resource a message names: its type and id.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageReference {
    /// The resource's type (`order`, `state`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_id: Option<String>,
    /// Its id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// A resource's own identifiers, as a message repeats them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserProvidedIdentifiers {
    /// The order's number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_number: Option<String>,
}

/// Units of an order's line item moved from one state to another (`LineItemStateTransition`):
/// what `POST /commercetools/fulfill` takes. The route needs the message id, the order, and the
/// state moved to; the state moved from must be named too.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LineItemStateTransition {
    /// What every message has.
    #[serde(flatten)]
    pub header: MessageHeader,
    /// The line item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_item_id: Option<String>,
    /// How many units moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u64>,
    /// When (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transition_date: Option<String>,
    /// The state they left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_state: Option<MessageReference>,
    /// The state they are in now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_state: Option<MessageReference>,
}

impl LineItemStateTransition {
    /// The id of the state the units moved to (`detail.toState.id`).
    pub fn to_state_id(&self) -> &str {
        self.to_state
            .as_ref()
            .and_then(|s| s.id.as_deref())
            .unwrap_or_default()
    }

    /// The id of the state the units left (`detail.fromState.id`), if given.
    pub fn from_state_id(&self) -> Option<&str> {
        self.from_state.as_ref()?.id.as_deref()
    }
}

impl Message for LineItemStateTransition {
    const TYPES: &'static [&'static str] = &["LineItemStateTransition"];

    fn header(&self) -> &MessageHeader {
        &self.header
    }

    fn validate(&self) -> Result<(), MessageError> {
        self.header.validate(Self::TYPES, false)?;
        let from = self
            .from_state
            .as_ref()
            .ok_or_else(|| MessageError::missing("detail.fromState"))?;
        expect_type_id(from, "state", "detail.fromState.typeId")?;
        let to = self
            .to_state
            .as_ref()
            .ok_or_else(|| MessageError::missing("detail.toState"))?;
        required(to.id.as_deref(), "detail.toState.id")?;
        expect_type_id(to, "state", "detail.toState.typeId")
    }
}

/// An order's state changed: what `POST /commercetools/sanctioned` takes. The route needs the
/// message id and the order; the flow reads the order to see whether it is sanctioned.
///
/// Reads `OrderStateChanged` (the order's `orderState` changed: `orderState`,
/// `oldOrderState`) and `OrderStateTransition` (its custom workflow state changed, which is how
/// an order becomes `2u-sdn-order-state`: `state`, `oldState`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderStateChanged {
    /// What every message has.
    #[serde(flatten)]
    pub header: MessageHeader,
    /// The order's id (`OrderStateChanged`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// The new order state (`OrderStateChanged`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_state: Option<String>,
    /// The previous order state (`OrderStateChanged`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_order_state: Option<String>,
    /// The new workflow state (`OrderStateTransition`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<MessageReference>,
    /// The previous workflow state (`OrderStateTransition`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_state: Option<MessageReference>,
}

impl Message for OrderStateChanged {
    const TYPES: &'static [&'static str] = &["OrderStateChanged", "OrderStateTransition"];

    fn header(&self) -> &MessageHeader {
        &self.header
    }

    fn validate(&self) -> Result<(), MessageError> {
        // The original refuses a message without a type here, and only here.
        self.header.validate(Self::TYPES, true)
    }
}

/// Items of an order were returned (`ReturnInfoAdded`): what `POST /commercetools/returned`
/// takes. The route needs the message id, the order, and each returned item.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReturnInfoAdded {
    /// What every message has.
    #[serde(flatten)]
    pub header: MessageHeader,
    /// The return.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_info: Option<MessageReturnInfo>,
}

impl ReturnInfoAdded {
    /// The items returned (none until validated).
    pub fn returned_items(&self) -> &[MessageReturnItem] {
        self.return_info
            .as_ref()
            .and_then(|r| r.items.as_deref())
            .unwrap_or_default()
    }
}

impl Message for ReturnInfoAdded {
    const TYPES: &'static [&'static str] = &["ReturnInfoAdded"];

    fn header(&self) -> &MessageHeader {
        &self.header
    }

    fn validate(&self) -> Result<(), MessageError> {
        self.header.validate(Self::TYPES, false)?;
        let info = self
            .return_info
            .as_ref()
            .ok_or_else(|| MessageError::missing("detail.returnInfo"))?;
        let items = info
            .items
            .as_ref()
            .ok_or_else(|| MessageError::missing("detail.returnInfo.items"))?;
        for (i, item) in items.iter().enumerate() {
            item.validate(&format!("detail.returnInfo.items[{i}]"))?;
        }
        Ok(())
    }
}

/// The return a [`ReturnInfoAdded`] message carries.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageReturnInfo {
    /// The items returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<MessageReturnItem>>,
    /// A tracking id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_tracking_id: Option<String>,
    /// When (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_date: Option<String>,
}

/// One returned item of a [`ReturnInfoAdded`] message.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageReturnItem {
    /// `LineItemReturnItem`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The return item's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// How many units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u64>,
    /// The line item returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_item_id: Option<String>,
    /// `Returned`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipment_state: Option<String>,
    /// `Initial`, `Refunded`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_state: Option<String>,
    /// When it was last changed (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_at: Option<String>,
    /// When it was created (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

impl MessageReturnItem {
    /// The return item's id (empty until validated).
    pub fn id(&self) -> &str {
        self.id.as_deref().unwrap_or_default()
    }

    /// The returned line item's id (empty until validated).
    pub fn line_item_id(&self) -> &str {
        self.line_item_id.as_deref().unwrap_or_default()
    }

    /// Every field the original required of a returned item, as `at.<field>`.
    fn validate(&self, at: &str) -> Result<(), MessageError> {
        let field = |name: &str| format!("{at}.{name}");
        required(self.kind.as_deref(), &field("type"))?;
        required(self.id.as_deref(), &field("id"))?;
        if self.quantity.is_none() {
            return Err(MessageError::missing(field("quantity")));
        }
        required(self.line_item_id.as_deref(), &field("lineItemId"))?;
        required(self.shipment_state.as_deref(), &field("shipmentState"))?;
        required(self.payment_state.as_deref(), &field("paymentState"))?;
        for (name, value) in [
            ("lastModifiedAt", &self.last_modified_at),
            ("createdAt", &self.created_at),
        ] {
            let value = required(value.as_deref(), &field(name))?;
            if !is_datetime(value) {
                return Err(MessageError::invalid(
                    field(name),
                    "not an ISO 8601 date and time (2024-04-15T13:13:06.083Z)",
                ));
            }
        }
        Ok(())
    }
}

/// `value`, if present and not blank.
fn required<'a>(value: Option<&'a str>, field: &str) -> Result<&'a str, MessageError> {
    value
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| MessageError::missing(field))
}

/// A reference's type, when given, must be `expected`.
fn expect_type_id(
    reference: &MessageReference,
    expected: &str,
    field: &str,
) -> Result<(), MessageError> {
    match reference.type_id.as_deref() {
        None => Ok(()),
        Some(t) if t == expected => Ok(()),
        Some(t) => Err(MessageError::invalid(
            field,
            format!("expected \"{expected}\", got \"{t}\""),
        )),
    }
}

/// Whether `text` is an ISO 8601 date and time: `YYYY-MM-DDTHH:MM[:SS[.fraction]]` and an
/// optional `Z` or `±HH:MM` offset (a space may stand for the `T`).
fn is_datetime(text: &str) -> bool {
    fn digits(s: &str, n: usize) -> bool {
        s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
    }
    fn in_range(s: &str, low: u32, high: u32) -> bool {
        s.parse::<u32>().is_ok_and(|v| (low..=high).contains(&v))
    }
    let Some((date, time)) = text.split_once(['T', ' ']) else {
        return false;
    };
    let date: Vec<&str> = date.split('-').collect();
    let date_ok = matches!(date.as_slice(), [y, m, d]
        if digits(y, 4) && digits(m, 2) && digits(d, 2) && in_range(m, 1, 12) && in_range(d, 1, 31));
    // The offset: `Z`, or a sign and `HH:MM` / `HHMM` / `HH`.
    let (clock, offset) = match time.find(['Z', '+', '-']) {
        Some(at) => time.split_at(at),
        None => (time, ""),
    };
    let offset_ok = match offset.as_bytes().first() {
        None => true,
        Some(b'Z') => offset.len() == 1,
        Some(_) => {
            let o = offset[1..].replace(':', "");
            (digits(&o, 4) || digits(&o, 2)) && in_range(&o[..2], 0, 23)
        }
    };
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let fraction_ok = if fraction.is_empty() {
        !clock.ends_with('.')
    } else {
        fraction.bytes().all(|b| b.is_ascii_digit())
    };
    let hms: Vec<&str> = hms.split(':').collect();
    let clock_ok = match hms.as_slice() {
        [h, m] => digits(h, 2) && digits(m, 2) && in_range(h, 0, 23) && in_range(m, 0, 59),
        [h, m, s] => {
            digits(h, 2)
                && digits(m, 2)
                && digits(s, 2)
                && in_range(h, 0, 23)
                && in_range(m, 0, 59)
                && in_range(s, 0, 60)
        }
        _ => false,
    };
    date_ok && clock_ok && fraction_ok && offset_ok
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn transition() -> Value {
        json!({"detail": {
            "id": "m-1",
            "resource": {"typeId": "order", "id": "o-1"},
            "type": "LineItemStateTransition",
            "fromState": {"typeId": "state", "id": "s-1"},
            "toState": {"typeId": "state", "id": "s-2"}
        }})
    }

    fn refused<D: Message + DeserializeOwned + std::fmt::Debug>(event: Value) -> MessageError {
        let event: EventBridgeEvent<D> = serde_json::from_value(event).unwrap();
        event.validate().unwrap_err()
    }

    #[test]
    fn the_smallest_valid_messages_are_accepted() {
        let event: EventBridgeEvent<LineItemStateTransition> =
            serde_json::from_value(transition()).unwrap();
        let message = event.validate().unwrap();
        assert_eq!(message.message_id(), "m-1");
        assert_eq!(message.order_id(), "o-1");
        assert_eq!(message.to_state_id(), "s-2");
        assert_eq!(message.from_state_id(), Some("s-1"));
    }

    #[test]
    fn each_missing_field_is_named() {
        let cases = [
            ("/detail", "detail"),
            ("/detail/id", "detail.id"),
            ("/detail/resource", "detail.resource"),
            ("/detail/resource/id", "detail.resource.id"),
            ("/detail/fromState", "detail.fromState"),
            ("/detail/toState", "detail.toState"),
            ("/detail/toState/id", "detail.toState.id"),
        ];
        for (pointer, field) in cases {
            let mut event = transition();
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            let parent = if parent.is_empty() {
                &mut event
            } else {
                event.pointer_mut(parent).unwrap()
            };
            parent.as_object_mut().unwrap().remove(key);
            let e = refused::<LineItemStateTransition>(event);
            assert_eq!(e, MessageError::missing(field), "{pointer}");
            assert!(e.to_string().contains(&format!("`{field}`")), "{e}");
        }
    }

    #[test]
    fn blank_and_null_values_are_missing() {
        let mut event = transition();
        event["detail"]["id"] = json!("  ");
        assert_eq!(
            refused::<LineItemStateTransition>(event).field(),
            "detail.id"
        );
        let mut event = transition();
        event["detail"]["toState"]["id"] = Value::Null;
        assert_eq!(
            refused::<LineItemStateTransition>(event).field(),
            "detail.toState.id"
        );
    }

    #[test]
    fn a_message_of_another_type_or_about_another_resource_is_refused() {
        let mut event = transition();
        event["detail"]["type"] = json!("OrderCreated");
        let e = refused::<LineItemStateTransition>(event);
        assert_eq!(e.field(), "detail.type");
        assert!(e.to_string().contains("LineItemStateTransition"), "{e}");
        let mut event = transition();
        event["detail"]["resource"]["typeId"] = json!("cart");
        assert_eq!(
            refused::<LineItemStateTransition>(event).field(),
            "detail.resource.typeId"
        );
        let mut event = transition();
        event["detail"]["toState"]["typeId"] = json!("order");
        assert_eq!(
            refused::<LineItemStateTransition>(event).field(),
            "detail.toState.typeId"
        );
    }

    #[test]
    fn a_sanction_message_needs_a_type_of_either_kind() {
        let base = json!({"detail": {"id": "m-1", "resource": {"typeId": "order", "id": "o-1"}}});
        assert_eq!(
            refused::<OrderStateChanged>(base.clone()).field(),
            "detail.type"
        );
        for kind in ["OrderStateChanged", "OrderStateTransition"] {
            let mut event = base.clone();
            event["detail"]["type"] = json!(kind);
            let event: EventBridgeEvent<OrderStateChanged> = serde_json::from_value(event).unwrap();
            assert_eq!(event.validate().unwrap().order_id(), "o-1");
        }
    }

    #[test]
    fn each_returned_item_is_checked_field_by_field() {
        let item = json!({
            "type": "LineItemReturnItem", "id": "r-1", "quantity": 1, "lineItemId": "li-1",
            "shipmentState": "Returned", "paymentState": "Initial",
            "lastModifiedAt": "2024-04-15T13:13:06.083Z", "createdAt": "2024-04-15T13:13:06.083Z"
        });
        let event = |items: Value| {
            json!({"detail": {"id": "m-1", "resource": {"typeId": "order", "id": "o-1"},
                              "type": "ReturnInfoAdded", "returnInfo": {"items": items}}})
        };
        let ok: EventBridgeEvent<ReturnInfoAdded> =
            serde_json::from_value(event(json!([item]))).unwrap();
        let message = ok.validate().unwrap();
        assert_eq!(message.returned_items()[0].id(), "r-1");
        assert_eq!(message.returned_items()[0].line_item_id(), "li-1");
        for field in [
            "type",
            "id",
            "quantity",
            "lineItemId",
            "shipmentState",
            "paymentState",
            "lastModifiedAt",
            "createdAt",
        ] {
            let mut second = item.clone();
            second.as_object_mut().unwrap().remove(field);
            let e = refused::<ReturnInfoAdded>(event(json!([item, second])));
            assert_eq!(
                e,
                MessageError::missing(format!("detail.returnInfo.items[1].{field}"))
            );
        }
        let mut late = item.clone();
        late["createdAt"] = json!("yesterday");
        let e = refused::<ReturnInfoAdded>(event(json!([late])));
        assert_eq!(e.field(), "detail.returnInfo.items[0].createdAt");
        assert!(matches!(e, MessageError::Invalid { .. }));
        let no_info = json!({"detail": {"id": "m-1", "resource": {"id": "o-1"}}});
        assert_eq!(
            refused::<ReturnInfoAdded>(no_info).field(),
            "detail.returnInfo"
        );
    }

    #[test]
    fn a_body_of_another_shape_names_where() {
        let e = EventBridgeEvent::<LineItemStateTransition>::from_slice(
            br#"{"detail": {"quantity": "two"}}"#,
        )
        .unwrap_err();
        assert_eq!(e.field(), "detail.quantity");
        let e = EventBridgeEvent::<LineItemStateTransition>::from_slice(b"\"nope\"").unwrap_err();
        assert_eq!(e.field(), "(the body)");
    }

    #[test]
    fn iso_8601_dates_and_times_are_told_apart() {
        for good in [
            "2024-04-15T13:13:06.083Z",
            "2024-04-15T13:13:06Z",
            "2024-04-15T13:13",
            "2024-04-15 13:13:06",
            "2024-04-15T13:13:06.083000+00:00",
            "2024-04-15T13:13:06-0500",
        ] {
            assert!(is_datetime(good), "{good}");
        }
        for bad in [
            "",
            "2024-04-15",
            "2024-13-15T13:13:06Z",
            "2024-04-15T25:13:06Z",
            "2024-04-15T13:13:06.Z",
            "2024-04-15T13:13:06ZZ",
            "15/04/2024 13:13",
            "2024-04-15T13:13:06+5",
        ] {
            assert!(!is_datetime(bad), "{bad}");
        }
    }
}
