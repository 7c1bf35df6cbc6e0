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

/// Countries the demo's merchant may not take payments from (ISO 3166-1 alpha-2).
const EMBARGOED: &[&str] = &["CU", "IR", "KP", "SY"];

/// Every ISO 3166-1 alpha-2 country code (officially assigned).
pub(crate) const ISO_3166_ALPHA_2: &[&str] = &[
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// The checkout page of the sandbox payment processors.
const CHECKOUT_BASE: &str = "https://pay.sandbox.invalid/";

/// `country` as an ISO 3166-1 alpha-2 code: surrounding spaces dropped, upper case; `None` when
/// it is not one (`cu` and ` CU ` are `CU`; `ir` is `IR`; `XX` and `C U` are not codes).
pub fn normalize_country(country: &str) -> Option<String> {
    let code = country.trim().to_ascii_uppercase();
    ISO_3166_ALPHA_2
        .binary_search(&code.as_str())
        .is_ok()
        .then_some(code)
}

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
    // Normalised here too, so that no caller can slip `cu` or ` CU` past the check.
    let Some(country) = normalize_country(&req.country) else {
        req.blocked_reason = Some(format!(
            "\"{}\" is not an ISO 3166-1 alpha-2 country code",
            req.country.escape_debug()
        ));
        return Ok(Flow::Halt(req));
    };
    req.country = country;
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
    // Built by the URL library: the SKU is one encoded query value whatever it holds.
    let mut url = url::Url::parse(CHECKOUT_BASE)
        .map_err(|e| StepError::msg(format!("cannot build the checkout URL: {e}")))?;
    url.path_segments_mut()
        .map_err(|()| StepError::msg("the checkout URL cannot have a path"))?
        .pop_if_empty()
        .push(processor)
        .push("checkout");
    url.query_pairs_mut().append_pair("sku", &req.sku);
    req.redirect_url = Some(url.into());
    Ok(Flow::Continue(req))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn country_codes_are_normalised_and_only_real_ones_pass() {
        assert!(
            ISO_3166_ALPHA_2.windows(2).all(|w| w[0] < w[1]),
            "sorted for binary search"
        );
        assert_eq!(ISO_3166_ALPHA_2.len(), 249);
        for (given, code) in [
            ("cu", "CU"),
            (" CU", "CU"),
            ("ir ", "IR"),
            ("Kp", "KP"),
            ("fr", "FR"),
        ] {
            assert_eq!(normalize_country(given).as_deref(), Some(code), "{given:?}");
        }
        for bad in ["", "XX", "C U", "CUB", "c\u{0}", "🇨🇺"] {
            assert_eq!(normalize_country(bad), None, "{bad:?}");
        }
    }
}
