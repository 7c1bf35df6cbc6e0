//! What the fake services hold: their records, and their knobs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use coordinator::prelude::*;

use crate::knobs::{Knob, Verdict, consume};

/// The sandbox's state, shared by its routes (and readable by tests and the demo).
#[derive(Clone, Debug, Default)]
pub struct SandboxState {
    inner: Arc<Mutex<Records>>,
}

/// Everything the fake services recorded, as `GET /sandbox/_state` shows it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct Records {
    /// Each service's knob.
    pub knobs: BTreeMap<String, Knob>,
    /// The fake LMS.
    pub lms: LmsRecords,
    /// The fake fulfillment service.
    pub fulfillment: FulfillmentRecords,
    /// The fake commercetools.
    pub commercetools: CommercetoolsRecords,
}

/// What the fake LMS holds.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct LmsRecords {
    /// Enrollments by `"<username> <course run key>"`: the last request for each.
    pub enrollments: BTreeMap<String, serde_json::Value>,
    /// Entitlements granted, by uuid.
    pub entitlements: BTreeMap<String, serde_json::Value>,
    /// Usernames deactivated, in order.
    pub deactivated: Vec<String>,
    /// Calls answered (failures included), by route.
    pub calls: BTreeMap<String, u64>,
}

/// What the fake fulfillment service received.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct FulfillmentRecords {
    /// Orders to fulfill, as received.
    pub fulfilled: Vec<serde_json::Value>,
    /// Lines to revoke, as received.
    pub revoked: Vec<serde_json::Value>,
}

/// What the fake commercetools holds: the orders and customers seeded, as its API answers them.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct CommercetoolsRecords {
    /// Orders by id, at their current version.
    pub orders: BTreeMap<String, serde_json::Value>,
    /// Customers by id.
    pub customers: BTreeMap<String, serde_json::Value>,
    /// Order updates applied (refused ones are not counted).
    pub updates: u64,
    /// API calls answered (failures included), by route template
    /// (`GET /{project}/orders/{id}`).
    pub calls: BTreeMap<String, u64>,
}

impl SandboxState {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Records> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A copy of everything recorded.
    pub fn records(&self) -> Records {
        self.lock().clone()
    }

    /// Sets `service`'s knob.
    pub fn set_knob(&self, service: &str, knob: Knob) {
        let mut records = self.lock();
        if knob.is_spent() {
            records.knobs.remove(service);
        } else {
            records.knobs.insert(service.to_owned(), knob);
        }
    }

    /// One call to `service`: what its knob says to do.
    pub(crate) fn call(&self, service: &str) -> Verdict {
        let mut records = self.lock();
        let mut knob = records.knobs.get(service).cloned().unwrap_or_default();
        let verdict = consume(&mut knob);
        if knob.is_spent() {
            records.knobs.remove(service);
        } else {
            records.knobs.insert(service.to_owned(), knob);
        }
        verdict
    }
}
