//! The signal the loyalty extension sends.

use coordinator::prelude::*;

/// A learner paid for something.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct PurchaseRecorded {
    /// The order.
    pub order_number: String,
    /// The learner's LMS user id.
    pub lms_user_id: u64,
    /// What was paid, in cents.
    pub amount_cents: u64,
}

/// Sent when a purchase is recorded.
pub static PURCHASE_RECORDED: Signal<PurchaseRecorded> = Signal::new(
    "loyalty.purchase_recorded",
    "A learner paid for something: points may be due.",
);
