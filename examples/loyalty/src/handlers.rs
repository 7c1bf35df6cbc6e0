//! The loyalty extension's handler, and the ledger its task credits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use coordinator::prelude::*;

use crate::LoyaltySettings;
use crate::signals::PurchaseRecorded;
use crate::tasks::{CREDIT_POINTS, CreditPoints};

/// The points balances (a stand-in for a loyalty provider). Cheap to clone: clones share it.
#[derive(Clone, Debug, Default)]
pub struct Ledger(Arc<Mutex<Books>>);

#[derive(Debug, Default)]
struct Books {
    /// Points by learner.
    balances: HashMap<u64, u64>,
    /// The orders already credited.
    credited: Vec<String>,
}

impl Ledger {
    /// A learner's balance.
    pub fn balance(&self, lms_user_id: u64) -> u64 {
        let books = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        books.balances.get(&lms_user_id).copied().unwrap_or(0)
    }

    /// Credits `points` for `order_number` once (a task may run more than once).
    pub fn credit(&self, lms_user_id: u64, order_number: &str, points: u64) -> bool {
        let mut books = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if books.credited.iter().any(|o| o == order_number) {
            return false;
        }
        books.credited.push(order_number.to_owned());
        *books.balances.entry(lms_user_id).or_default() += points;
        true
    }
}

pub(crate) fn declare(ext: &mut ExtensionBuilder<'_>) {
    ext.handler(
        "loyalty.award_points",
        "Works out the points a purchase earns and enqueues loyalty.credit_points.",
        award_points,
    )
    .enqueues(&CREDIT_POINTS);
}

async fn award_points(
    event: Event<PurchaseRecorded>,
    State(settings): State<LoyaltySettings>,
) -> HandlerResult {
    let points = event.amount_cents / 100 * settings.points_per_dollar;
    let task = CreditPoints {
        lms_user_id: event.lms_user_id,
        order_number: event.order_number.clone(),
        points,
    };
    let options = EnqueueOptions::default().unique(event.order_number.clone());
    let id = event
        .context()
        .enqueue_with(&CREDIT_POINTS, task, options)
        .await?;
    Ok(id.into())
}
