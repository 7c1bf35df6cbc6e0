//! The demo extension's filter: where to send a learner who wants to pay.

use coordinator::prelude::*;

use crate::error::DemoError;

/// The question "where does this learner pay for this SKU?" and, as the pipeline runs, its answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentPageRequest {
    /// The product the learner wants to buy.
    pub sku: String,
    /// The learner's LMS user id.
    pub lms_user_id: u64,
    /// The learner's country (ISO 3166-1 alpha-2).
    pub country: String,
    /// The payment processor chosen (`stripe` or `paypal`), once a step has chosen one.
    pub processor: Option<String>,
    /// Where to send the learner, once a step has built it.
    pub redirect_url: Option<String>,
    /// Why the learner cannot pay, if a step refused.
    pub blocked_reason: Option<String>,
}

/// Asked by the LMS when a learner clicks "upgrade": where should they pay?
pub static PAYMENT_PAGE_REDIRECT_REQUESTED: Filter<PaymentPageRequest> = Filter::new(
    "demo.payment_page_redirect_requested",
    "Where to send a learner who wants to pay for a SKU: the pipeline chooses a payment processor and builds the payment page URL, or refuses.",
);

const EMBARGOED: &[&str] = &["CU", "IR", "KP", "SY"];

pub(crate) fn declare(ext: &mut ExtensionBuilder<'_>) {
    ext.filter(&PAYMENT_PAGE_REDIRECT_REQUESTED)
        .step(
            "demo.block_embargoed_country",
            "Halts the pipeline, with a reason, for learners in embargoed countries.",
            block_embargoed_country,
        )
        .step(
            "demo.choose_processor",
            "Chooses PayPal for learners in countries where the demo's Stripe account cannot take payments, Stripe otherwise.",
            choose_processor,
        )
        .step(
            "demo.build_redirect_url",
            "Builds the payment page URL for the chosen processor; fails if none was chosen.",
            build_redirect_url,
        );
}

async fn block_embargoed_country(
    _: Context,
    mut req: PaymentPageRequest,
) -> StepResult<PaymentPageRequest> {
    if EMBARGOED.contains(&req.country.as_str()) {
        req.blocked_reason = Some(format!("payments from {} are not accepted", req.country));
        return Ok(Flow::Halt(req));
    }
    Ok(Flow::Continue(req))
}

async fn choose_processor(
    _: Context,
    mut req: PaymentPageRequest,
) -> StepResult<PaymentPageRequest> {
    let paypal_only = ["BR", "IN"];
    req.processor = Some(
        if paypal_only.contains(&req.country.as_str()) {
            "paypal"
        } else {
            "stripe"
        }
        .to_owned(),
    );
    Ok(Flow::Continue(req))
}

async fn build_redirect_url(
    _: Context,
    mut req: PaymentPageRequest,
) -> StepResult<PaymentPageRequest> {
    let processor = req
        .processor
        .as_deref()
        .ok_or_else(|| DemoError::NoProcessor {
            sku: req.sku.clone(),
        })?;
    req.redirect_url = Some(format!(
        "https://pay.sandbox.invalid/{processor}/checkout?sku={}",
        req.sku
    ));
    Ok(Flow::Continue(req))
}
