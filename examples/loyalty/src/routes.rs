//! The loyalty extension's routes, served under `/api/loyalty/`.

use coordinator::http::{Path, StatusCode};
use coordinator::prelude::*;

use crate::handlers::Ledger;
use crate::signals::{PURCHASE_RECORDED, PurchaseRecorded};

/// A learner's points.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Balance {
    /// The learner.
    pub lms_user_id: u64,
    /// Their points.
    pub points: u64,
}

pub(crate) fn declare(ext: &mut ExtensionBuilder<'_>) {
    ext.route(
        Route::post("/purchases", record_purchase)
            .doc("Records a purchase: sends loyalty.purchase_recorded, which credits points.")
            .request::<PurchaseRecorded>(),
    )
    .route(
        Route::get("/balances/{lms_user_id}", balance)
            .doc("A learner's loyalty points.")
            .response::<Balance>(),
    );
}

async fn record_purchase(ctx: Context, Json(purchase): Json<PurchaseRecorded>) -> StatusCode {
    let report = ctx.send_robust(&PURCHASE_RECORDED, purchase).await;
    if report.all_ok() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

async fn balance(State(ledger): State<Ledger>, Path(lms_user_id): Path<u64>) -> Json<Balance> {
    Json(Balance {
        lms_user_id,
        points: ledger.balance(lms_user_id),
    })
}
