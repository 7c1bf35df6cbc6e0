//! The demo extension's HTTP routes, served under `/api/demo/`.

use coordinator::prelude::*;
use coordinator::{DispatchReport, Outcome};

use coordinator::http::StatusCode;

use crate::filters::{PAYMENT_PAGE_REDIRECT_REQUESTED, PaymentPageRequest, normalize_country};
use crate::signals::{ORDER_PLACED, OrderPlaced, PAYMENT_REFUNDED, PaymentRefunded};

/// What a route that sends a signal answers: the dispatch and how each handler ended.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Dispatched {
    /// The dispatch id; look it up at `/api/v1/dispatches/{id}`. Absent when the event was a
    /// duplicate (`duplicate` is true) and nothing was sent again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "uuid"))]
    pub dispatch_id: Option<String>,
    /// The signal sent.
    pub signal: String,
    /// True when this order was received before: its work is already stored, and nothing
    /// was done again.
    #[serde(default)]
    pub duplicate: bool,
    /// Each handler and its status: `queued` for a durable signal (its delivery is stored and
    /// runs as the task `task_id`), else `ok`.
    pub handlers: Vec<HandlerStatus>,
}

/// One handler's status in a [`Dispatched`] answer.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct HandlerStatus {
    /// The handler.
    pub handler: String,
    /// How it ended: `ok`, or `queued` when its delivery is stored to run as a task.
    pub status: String,
    /// The delivery's task id, when `queued`; follow it at `/api/v1/tasks/{id}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "uuid"))]
    pub task_id: Option<String>,
}

impl From<&DispatchReport> for Dispatched {
    fn from(report: &DispatchReport) -> Self {
        Self {
            dispatch_id: Some(report.id.to_string()),
            signal: report.signal.to_owned(),
            duplicate: false,
            handlers: report
                .handlers
                .iter()
                .map(|h| HandlerStatus {
                    handler: h.handler.to_owned(),
                    status: h.outcome.status().to_owned(),
                    task_id: match &h.outcome {
                        Outcome::Queued { task_id } => Some(task_id.to_string()),
                        _ => None,
                    },
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
    /// The learner's country: an ISO 3166-1 alpha-2 code (`FR`; case and surrounding spaces
    /// are ignored).
    #[schemars(extend("enum" = crate::filters::ISO_3166_ALPHA_2))]
    pub country: String,
}

pub(crate) fn declare(ext: &mut ExtensionBuilder<'_>) {
    ext.route(
        Route::post("/webhooks/payments", crate::webhooks::payment_webhook)
        .public()
        .doc("The payment processor's webhook, signed with HMAC-SHA256 over the timestamp and the body (`X-Demo-Signature: t=<unix seconds>,v1=<hex of HMAC(secret, \"<t>.<body>\")>`); deliveries older than the tolerance are refused. Each event is handled once: a redelivery is answered 200 without new work.")
        .request::<crate::tasks::PaymentEvent>()
        .response::<crate::webhooks::WebhookAck>()
        .problem(StatusCode::UNAUTHORIZED, "The X-Demo-Signature header is missing, malformed, outside the tolerance, or does not match the body")
        .problem(StatusCode::BAD_REQUEST, "The signed body is not a payment event")
        .problem(StatusCode::SERVICE_UNAVAILABLE, "No webhook secret is configured ([extension.demo] webhook_secret)"),
    );
    ext.route(
        Route::post("/orders", place_order)
            .doc("Records that an order was placed and paid for: sends demo.order_placed and answers 202 with the dispatch once its work is stored (200 with `duplicate` for an order received before; 503 with Retry-After when it could not be stored: send it again).")
            .request::<OrderPlaced>()
            .response::<Dispatched>()
            .problem(StatusCode::BAD_REQUEST, "The order number or course run key is empty, too long, or holds a control character")
            .problem(StatusCode::SERVICE_UNAVAILABLE, "The order's work could not be stored (`handler` names the handler that did not do its part): send it again"),
    )
    .route(
        Route::post("/refunds", refund_payment)
            .doc("Records that a payment was refunded: sends demo.payment_refunded and answers 202 once every handler did its part (503 with Retry-After, naming the handler, when one did not: send it again).")
            .request::<PaymentRefunded>()
            .response::<Dispatched>()
            .problem(StatusCode::SERVICE_UNAVAILABLE, "A handler did not do its part (`handler` names it): send the refund again"),
    )
    .route(
        Route::post("/payment-page", payment_page)
            .doc("Where should this learner pay? Runs the demo.payment_page_redirect_requested filter. 403 when payments from the learner's country are refused.")
            .request::<PaymentPageQuery>()
            .response::<PaymentPage>()
            .problem(StatusCode::BAD_REQUEST, "The country is not an ISO 3166-1 alpha-2 code")
            .problem(StatusCode::FORBIDDEN, "Payments from the learner's country are not accepted")
            .problem(StatusCode::BAD_GATEWAY, "A step of the filter failed, or the pipeline produced no URL (the detail names the filter and the step)"),
    );
}

/// Where the order route records the orders it received, so that a resent order (its answer
/// was lost) is not sent twice.
pub const ORDERS_SOURCE: &str = "demo.orders";

/// Sends demo.order_placed. Durable (as the default configuration has it): the order is
/// recorded in the inbox and the dispatch with its deliveries stored in one transaction, then
/// answered 202; a resent order is answered 200 with `duplicate`. Not durable: the handlers
/// run now, and the answer is 202 only if every one of them did its part, else 503 naming the
/// handler (the caller sends the order again).
async fn place_order(
    ctx: Context,
    Json(order): Json<OrderPlaced>,
) -> Result<(StatusCode, Json<Dispatched>), Problem> {
    order.check().map_err(Problem::bad_request)?;
    if !ctx.is_durable(&ORDER_PLACED) {
        let report = ctx.send_robust(&ORDER_PLACED, order).await;
        report.accepted()?;
        return Ok((StatusCode::ACCEPTED, Json(Dispatched::from(&report))));
    }
    let number = order.order_number.clone();
    match ctx
        .send_once(ORDERS_SOURCE, &number, &ORDER_PLACED, order)
        .await?
    {
        Some(report) => Ok((StatusCode::ACCEPTED, Json(Dispatched::from(&report)))),
        None => Ok((
            StatusCode::OK,
            Json(Dispatched {
                dispatch_id: None,
                signal: ORDER_PLACED.name().to_owned(),
                duplicate: true,
                handlers: Vec::new(),
            }),
        )),
    }
}

/// Sends demo.payment_refunded to its handlers, which run now: 202 only if each did its part,
/// else 503 naming the handler that did not (the caller sends the refund again).
async fn refund_payment(
    ctx: Context,
    Json(refund): Json<PaymentRefunded>,
) -> Result<(StatusCode, Json<Dispatched>), Problem> {
    let report = ctx.send_robust(&PAYMENT_REFUNDED, refund).await;
    report.accepted()?;
    Ok((StatusCode::ACCEPTED, Json(Dispatched::from(&report))))
}

async fn payment_page(
    ctx: Context,
    Json(q): Json<PaymentPageQuery>,
) -> Result<Json<PaymentPage>, Problem> {
    let country = normalize_country(&q.country).ok_or_else(|| {
        Problem::bad_request(format!(
            "country \"{}\" is not an ISO 3166-1 alpha-2 code; send two letters such as FR or US",
            q.country.escape_debug()
        ))
    })?;
    let request = PaymentPageRequest {
        sku: q.sku,
        lms_user_id: q.lms_user_id,
        country,
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
