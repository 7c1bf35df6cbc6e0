//! The demo extension's HTTP routes, served under `/api/demo/`.

use coordinator::DispatchReport;
use coordinator::prelude::*;

use coordinator::http::StatusCode;

use crate::filters::{PAYMENT_PAGE_REDIRECT_REQUESTED, PaymentPageRequest};
use crate::signals::{ORDER_PLACED, OrderPlaced, PAYMENT_REFUNDED, PaymentRefunded};

/// What a route that sends a signal answers: the dispatch and how each handler ended.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Dispatched {
    /// The dispatch id; look it up at `/api/v1/dispatches/{id}`.
    pub dispatch_id: String,
    /// The signal sent.
    pub signal: String,
    /// Each handler and its status (`ok`, `error`, `panicked`, `timed_out`).
    pub handlers: Vec<HandlerStatus>,
}

/// One handler's status in a [`Dispatched`] answer.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct HandlerStatus {
    /// The handler.
    pub handler: String,
    /// How it ended.
    pub status: String,
}

impl From<&DispatchReport> for Dispatched {
    fn from(report: &DispatchReport) -> Self {
        Self {
            dispatch_id: report.id.to_string(),
            signal: report.signal.to_owned(),
            handlers: report
                .handlers
                .iter()
                .map(|h| HandlerStatus {
                    handler: h.handler.to_owned(),
                    status: h.outcome.status().to_owned(),
                })
                .collect(),
        }
    }
}

/// The answer to a payment page request.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct PaymentPage {
    /// Where to send the learner.
    pub redirect_url: String,
    /// The processor that will take the payment.
    pub processor: String,
}

/// What the LMS sends to ask where a learner pays.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct PaymentPageQuery {
    /// The product.
    pub sku: String,
    /// The learner.
    pub lms_user_id: u64,
    /// The learner's country (ISO 3166-1 alpha-2).
    pub country: String,
}

pub(crate) fn declare(ext: &mut ExtensionBuilder<'_>) {
    ext.route(
        Route::post("/webhooks/payments", crate::webhooks::payment_webhook)
        .public()
        .doc("The payment processor's webhook, signed with HMAC-SHA256 (`X-Demo-Signature: sha256=<hex>`). Each event is handled once: a redelivery is answered 200 without new work.")
        .request::<crate::tasks::PaymentEvent>()
        .response::<crate::webhooks::WebhookAck>(),
    );
    ext.route(
        Route::post("/orders", place_order)
            .doc("Records that an order was placed and paid for: sends demo.order_placed and answers with the dispatch.")
            .request::<OrderPlaced>()
            .response::<Dispatched>(),
    )
    .route(
        Route::post("/refunds", refund_payment)
            .doc("Records that a payment was refunded: sends demo.payment_refunded and answers with the dispatch.")
            .request::<PaymentRefunded>()
            .response::<Dispatched>(),
    )
    .route(
        Route::post("/payment-page", payment_page)
            .doc("Where should this learner pay? Runs the demo.payment_page_redirect_requested filter. 403 when payments from the learner's country are refused.")
            .request::<PaymentPageQuery>()
            .response::<PaymentPage>(),
    );
}

async fn place_order(
    ctx: Context,
    Json(order): Json<OrderPlaced>,
) -> (StatusCode, Json<Dispatched>) {
    let report = ctx.send_robust(&ORDER_PLACED, order).await;
    (StatusCode::ACCEPTED, Json(Dispatched::from(&report)))
}

async fn refund_payment(
    ctx: Context,
    Json(refund): Json<PaymentRefunded>,
) -> (StatusCode, Json<Dispatched>) {
    let report = ctx.send_robust(&PAYMENT_REFUNDED, refund).await;
    (StatusCode::ACCEPTED, Json(Dispatched::from(&report)))
}

async fn payment_page(
    ctx: Context,
    Json(q): Json<PaymentPageQuery>,
) -> Result<Json<PaymentPage>, Problem> {
    let request = PaymentPageRequest {
        sku: q.sku,
        lms_user_id: q.lms_user_id,
        country: q.country,
        processor: None,
        redirect_url: None,
        blocked_reason: None,
    };
    // A failing step answers 502, naming the filter and the step (the chain is logged).
    let answer = ctx
        .run_filter(&PAYMENT_PAGE_REDIRECT_REQUESTED, request)
        .await?
        .into_data();
    if let Some(reason) = answer.blocked_reason {
        return Err(Problem::forbidden(reason));
    }
    match (answer.redirect_url, answer.processor) {
        (Some(redirect_url), Some(processor)) => Ok(Json(PaymentPage {
            redirect_url,
            processor,
        })),
        _ => Err(Problem::new(
            StatusCode::BAD_GATEWAY,
            "the payment page pipeline produced no URL; check [filters.\"demo.payment_page_redirect_requested\"] pipeline",
        )),
    }
}
