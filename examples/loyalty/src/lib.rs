//! Loyalty points: an example of a third-party extension, in a crate of its own, with a binary
//! of its own (`src/main.rs`).
//!
//! `POST /api/loyalty/purchases` records a purchase and sends `loyalty.purchase_recorded`; the
//! handler `loyalty.award_points` enqueues the durable task `loyalty.credit_points`, which
//! credits the learner's balance (an in-memory ledger here, a loyalty provider's API in real
//! life); `GET /api/loyalty/balances/{lms_user_id}` reads it.

mod handlers;
mod routes;
mod signals;
mod tasks;

use coordinator::prelude::*;

pub use handlers::Ledger;
pub use routes::Balance;
pub use signals::{PURCHASE_RECORDED, PurchaseRecorded};
pub use tasks::{CREDIT_POINTS, CreditPoints};

/// `[extension.loyalty]`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LoyaltySettings {
    /// Points per whole dollar spent. Default 10.
    pub points_per_dollar: u64,
}

impl Default for LoyaltySettings {
    fn default() -> Self {
        Self {
            points_per_dollar: 10,
        }
    }
}

/// The loyalty extension.
#[derive(Clone, Debug, Default)]
pub struct LoyaltyExtension;

impl Extension for LoyaltyExtension {
    fn name(&self) -> &'static str {
        "loyalty"
    }

    fn doc(&self) -> &'static str {
        "Awards loyalty points for purchases (an example of a third-party extension)."
    }

    fn build(&self, ext: &mut ExtensionBuilder<'_>) {
        let settings: LoyaltySettings = ext.settings();
        ext.state(settings).state(Ledger::default());
        ext.signal(&PURCHASE_RECORDED);
        handlers::declare(ext);
        tasks::declare(ext);
        routes::declare(ext);
    }
}

#[cfg(test)]
mod tests;
