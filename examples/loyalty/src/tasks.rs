//! The loyalty extension's durable task.

use coordinator::prelude::*;

use crate::handlers::Ledger;

/// Credit points to a learner for an order.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct CreditPoints {
    /// The learner.
    pub lms_user_id: u64,
    /// The order that earned them.
    pub order_number: String,
    /// How many.
    pub points: u64,
}

/// Credits the points (idempotent: an order is credited once).
pub static CREDIT_POINTS: Task<CreditPoints> = Task::new(
    "loyalty.credit_points",
    "Credits a learner's loyalty balance for an order, once.",
);

pub(crate) fn declare(ext: &mut ExtensionBuilder<'_>) {
    ext.task(&CREDIT_POINTS, credit_points);
}

async fn credit_points(
    _: TaskContext,
    p: CreditPoints,
    State(ledger): State<Ledger>,
) -> TaskResult {
    let credited = ledger.credit(p.lms_user_id, &p.order_number, p.points);
    Ok(if credited {
        format!("credited {} points", p.points)
    } else {
        format!("order {} was already credited", p.order_number)
    }
    .into())
}
