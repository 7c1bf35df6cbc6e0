//! The demo's payment webhook: signed by the processor, received once, handled by a task.
//!
//! The route is public (the framework does not authenticate it): it checks the request's HMAC
//! signature itself. It records the event in the inbox and enqueues its task in one
//! transaction, so a redelivered event (processors retry) triggers its work once and is
//! answered as a success.

use coordinator::config::Secret;
use coordinator::http::{Bytes, HeaderMap, StatusCode};
use coordinator::prelude::*;
use ring::hmac;

use crate::tasks::{HANDLE_PAYMENT_EVENT, PaymentEvent};

/// The demo extension's settings, from `[extension.demo]`.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DemoSettings {
    /// The secret the payment processor signs webhooks with (HMAC-SHA256 of the body, sent as
    /// `X-Demo-Signature: sha256=<hex>`). Set it from the environment:
    /// `COORDINATOR__EXTENSION__DEMO__WEBHOOK_SECRET`. Without it the webhook refuses every call.
    #[schemars(with = "Option<String>")]
    pub webhook_secret: Option<Secret>,
}

/// The inbox source of the payment webhook's events.
pub const INBOX_SOURCE: &str = "demo.payments";

/// How the webhook answered.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct WebhookAck {
    /// The event id.
    pub event_id: String,
    /// `false` when this delivery was a redelivery of an event already received.
    pub first_delivery: bool,
    /// The task that handles the event (only on the first delivery).
    pub task_id: Option<String>,
}

/// The signature header of a body signed with `secret`, as the processor sends it.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

fn verify(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex) = header.strip_prefix("sha256=") else {
        return false;
    };
    if hex.len() % 2 != 0 {
        return false;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect();
    let Some(bytes) = bytes else { return false };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hmac::verify(&key, body, &bytes).is_ok()
}

pub(crate) async fn payment_webhook(
    ctx: Context,
    State(settings): State<DemoSettings>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<WebhookAck>), Problem> {
    // An unsigned request is refused whatever the configuration; a signed one needs a secret.
    let signature = headers
        .get("x-demo-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            Problem::unauthorized(
                "missing X-Demo-Signature header; sign the body with HMAC-SHA256 and send `sha256=<hex>`",
            )
        })?;
    let Some(secret) = settings.webhook_secret else {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the payment webhook has no secret to check signatures with; set COORDINATOR__EXTENSION__DEMO__WEBHOOK_SECRET",
        ));
    };
    if !verify(secret.expose(), &body, signature) {
        return Err(Problem::unauthorized(
            "the X-Demo-Signature does not match the body; check the webhook secret",
        ));
    }
    let event: PaymentEvent = serde_json::from_slice(&body)
        .map_err(|e| Problem::bad_request(format!("the event is not valid: {e}")))?;
    let event_id = event.id.clone();
    // The event is recorded and its task enqueued in one transaction: durable when we answer,
    // and a redelivery enqueues nothing. A database that does not answer is a 503 with
    // Retry-After, so the processor sends it again.
    let (status, task_id) = match ctx
        .receive_once(INBOX_SOURCE, &event_id, &HANDLE_PAYMENT_EVENT, event)
        .await?
    {
        Received::First(task_id) => (StatusCode::ACCEPTED, Some(task_id.to_string())),
        Received::Again => (StatusCode::OK, None),
    };
    Ok((
        status,
        Json(WebhookAck {
            first_delivery: task_id.is_some(),
            event_id,
            task_id,
        }),
    ))
}
