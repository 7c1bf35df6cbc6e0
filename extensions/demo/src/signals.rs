//! The signals the demo extension sends.

use coordinator::prelude::*;

/// An order was placed and paid for.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct OrderPlaced {
    /// The order number in the commerce platform (`EDX-100001`).
    #[schemars(length(min = 1, max = 64), pattern(PRINTABLE))]
    pub order_number: String,
    /// The learner's LMS user id.
    pub lms_user_id: u64,
    /// The learner's email address (personal data: never logged).
    pub email: Personal<String>,
    /// The course run the learner bought a seat in.
    #[schemars(length(min = 1, max = 255), pattern(PRINTABLE))]
    pub course_run_key: String,
    /// The amount paid, in the smallest unit of the currency.
    pub amount_cents: u64,
}

impl OrderPlaced {
    /// What is wrong with the order, if anything: its order number and course run key are
    /// keys of the inbox and the LMS, so they must be printable and of a sensible length.
    pub fn check(&self) -> Result<(), String> {
        printable("order_number", &self.order_number, 64)?;
        printable("course_run_key", &self.course_run_key, 255)
    }
}

/// What [`printable`] accepts, as a JSON Schema pattern (the lengths are `minLength` and
/// `maxLength`): no control character.
pub(crate) const PRINTABLE: &str = r"^[^\u0000-\u001F\u007F-\u009F]*$";

/// Refuses an empty, over-long or non-printable identifier, saying which and how to fix it.
fn printable(field: &str, value: &str, max: usize) -> Result<(), String> {
    match coordinator::names::key_problem(value, max) {
        None => Ok(()),
        Some(problem) => Err(format!(
            "{field} {} cannot be used: {problem}; send 1 to {max} printable characters",
            coordinator::names::quoted(value)
        )),
    }
}

/// A payment was refunded, in full or in part.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct PaymentRefunded {
    /// The order the payment belongs to.
    pub order_number: String,
    /// The processor's refund id.
    pub refund_id: String,
    /// The amount refunded, in the smallest unit of the currency.
    pub amount_cents: u64,
}

/// A learner was enrolled in a course run.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct LearnerEnrolled {
    /// The learner's LMS user id.
    pub lms_user_id: u64,
    /// The course run.
    pub course_run_key: String,
    /// The order that paid for the seat.
    pub order_number: String,
}

/// Sent when an order is placed and paid for.
pub static ORDER_PLACED: Signal<OrderPlaced> = Signal::new(
    "demo.order_placed",
    "An order was placed and paid for in the commerce platform: its learner should get a seat.",
);

/// Sent when a payment is refunded.
pub static PAYMENT_REFUNDED: Signal<PaymentRefunded> = Signal::new(
    "demo.payment_refunded",
    "A payment was refunded by the payment processor: the seat it paid for should be revoked.",
);

/// Sent by `demo.enroll_learner` after it enrolls a learner.
pub static LEARNER_ENROLLED: Signal<LearnerEnrolled> = Signal::new(
    "demo.learner_enrolled",
    "A learner was enrolled in a course run (sent by demo.enroll_learner).",
);
