//! The workflow states of the fake project: the four fulfillment states of line items and
//! the sanctioned order state, with the keys edX gave them and fixed ids.

use serde_json::{Value, json};

/// A workflow state of the project, with a fixed id (those of the client's fixtures).
pub(super) struct WorkflowState {
    pub(super) id: &'static str,
    pub(super) key: &'static str,
    kind: &'static str,
    name: &'static str,
    description: &'static str,
}

/// The state every seeded line item starts in.
pub(super) const PENDING: &WorkflowState = &STATES[0];
/// The state of a sanctioned order.
pub(super) const SANCTIONED: &WorkflowState = &STATES[4];

/// The states edX provisioned (`coordinator_commercetools::keys`). None lists `transitions`:
/// the fake allows any move, as a state without that field does.
pub(super) const STATES: [WorkflowState; 5] = [
    WorkflowState {
        id: "8d4b1f7e-2a6c-4e9d-b3f5-6c0a9e2d1b48",
        key: "2u-fulfillment-pending-state",
        kind: "LineItemState",
        name: "Fulfillment Pending",
        description: "The line item waits to be fulfilled",
    },
    WorkflowState {
        id: "1b6e9c3a-4d7f-4a2e-8c5b-9f0d3e6a2c71",
        key: "2u-fulfillment-processing-state",
        kind: "LineItemState",
        name: "Fulfillment Processing",
        description: "The learner's enrollment or entitlement is being made",
    },
    WorkflowState {
        id: "2c7f0d4b-5e8a-4b3f-9d6c-0a1e4f7b3d82",
        key: "2u-fulfillment-success-state",
        kind: "LineItemState",
        name: "Fulfillment Success",
        description: "The learner is enrolled or entitled",
    },
    WorkflowState {
        id: "3d8a1e5c-6f9b-4c4a-8e7d-1b2f5a8c4e93",
        key: "2u-fulfillment-failure-state",
        kind: "LineItemState",
        name: "Fulfillment Failure",
        description: "The learner could not be enrolled or entitled",
    },
    WorkflowState {
        id: "5c0e7a3d-8b2f-4d6a-9e1c-4f7b0d3a8e52",
        key: "2u-sdn-order-state",
        kind: "OrderState",
        name: "Sanctioned",
        description: "The order was stopped after a hit on the SDN list",
    },
];

impl WorkflowState {
    pub(super) fn by_id(id: &str) -> Option<&'static WorkflowState> {
        STATES.iter().find(|s| s.id == id)
    }

    pub(super) fn by_key(key: &str) -> Option<&'static WorkflowState> {
        STATES.iter().find(|s| s.key == key)
    }

    /// The state as `GET /states/{id}` answers it.
    pub(super) fn json(&self) -> Value {
        let provisioned = "2024-06-11T12:03:02.934Z";
        json!({
            "id": self.id,
            "version": 1,
            "versionModifiedAt": provisioned,
            "createdAt": provisioned,
            "lastModifiedAt": provisioned,
            "key": self.key,
            "type": self.kind,
            "roles": [],
            "name": {"en-US": self.name},
            "description": {"en-US": self.description},
            "builtIn": false,
            "initial": false,
        })
    }

    /// A reference to the state, expanded or not.
    pub(super) fn reference(&self, expanded: bool) -> Value {
        let mut reference = json!({"typeId": "state", "id": self.id});
        if expanded {
            reference["obj"] = self.json();
        }
        reference
    }
}
