//! Workflow states: the fulfillment states a line item moves through, and the custom states of
//! an order (sanctioned). States are provisioned once and do not change, so the client keeps
//! them ([`CommercetoolsClient::state_by_key`](crate::CommercetoolsClient::state_by_key)).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::reference::{LocalizedString, Reference};

/// A reference to a [`State`] (`{"typeId": "state", "id": ...}`), expanded or not.
pub type StateReference = Reference<State>;

/// A workflow state.
///
/// ```
/// use coordinator_commercetools::{State, StateType};
///
/// let state: State = serde_json::from_str(r#"{
///     "id": "5d1c7b9e-2f4a-4e3b-9c8d-1a2b3c4d5e6f", "version": 3,
///     "key": "2u-fulfillment-processing-state", "type": "LineItemState",
///     "initial": false, "builtIn": false, "roles": []
/// }"#).unwrap();
/// assert_eq!(state.key.as_deref(), Some("2u-fulfillment-processing-state"));
/// assert_eq!(state.state_type, StateType::LineItemState);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// Its id.
    pub id: String,
    /// Its version.
    #[serde(default)]
    pub version: u64,
    /// Its key (`2u-fulfillment-success-state`); every state edX uses has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// What it is the state of.
    #[serde(rename = "type")]
    pub state_type: StateType,
    /// Its name, by language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<LocalizedString>,
    /// Whether resources start in it.
    #[serde(default)]
    pub initial: bool,
    /// Whether commercetools defines it (`Initial`).
    #[serde(default)]
    pub built_in: bool,
    /// The states it may move to (none: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transitions: Option<Vec<StateReference>>,
}

/// What a [`State`] is the state of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum StateType {
    /// An order's workflow.
    OrderState,
    /// A line item's workflow (fulfillment).
    LineItemState,
    /// A product's.
    ProductState,
    /// A review's.
    ReviewState,
    /// A payment's.
    PaymentState,
    /// A quote request's.
    QuoteRequestState,
    /// A staged quote's.
    StagedQuoteState,
    /// A quote's.
    QuoteState,
    /// A type commercetools added since.
    #[serde(other)]
    Other,
}

/// Names a state in an update action, by id or by key
/// (`{"typeId": "state", "id": ...}` or `{"typeId": "state", "key": ...}`).
///
/// ```
/// use coordinator_commercetools::StateIdentifier;
///
/// let by_key = serde_json::to_value(StateIdentifier::key("2u-fulfillment-success-state")).unwrap();
/// assert_eq!(by_key, serde_json::json!({"typeId": "state", "key": "2u-fulfillment-success-state"}));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StateIdentifier {
    /// Always `state`.
    pub type_id: String,
    /// The state's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The state's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl StateIdentifier {
    /// The state with this id.
    pub fn id(id: impl Into<String>) -> Self {
        Self {
            type_id: "state".to_owned(),
            id: Some(id.into()),
            key: None,
        }
    }

    /// The state with this key.
    pub fn key(key: impl Into<String>) -> Self {
        Self {
            type_id: "state".to_owned(),
            id: None,
            key: Some(key.into()),
        }
    }
}

impl From<&State> for StateIdentifier {
    /// Names the state by id.
    fn from(state: &State) -> Self {
        Self::id(state.id.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_type_commercetools_adds_later_still_reads() {
        let state: State = serde_json::from_value(serde_json::json!({
            "id": "s-1", "version": 1, "type": "SomethingNewState"
        }))
        .unwrap();
        assert_eq!(state.state_type, StateType::Other);
        assert_eq!(state.key, None);
        assert!(!state.initial);
    }

    #[test]
    fn an_identifier_by_id_serializes_without_a_key() {
        let by_id = serde_json::to_value(StateIdentifier::id("s-1")).unwrap();
        assert_eq!(by_id, serde_json::json!({"typeId": "state", "id": "s-1"}));
    }
}
