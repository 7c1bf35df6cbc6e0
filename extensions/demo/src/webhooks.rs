//! The demo's payment webhook: signed by the processor, received once, handled by a task.
//!
//! The route is public (the framework does not authenticate it): it checks the request's HMAC
//! signature itself. It records the event in the inbox and enqueues its task in one
//! transaction, so a redelivered event (processors retry) triggers its work once and is
//! answered as a success.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use coordinator::config::Secret;
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
    settings: DemoSettings,
    ctx: Context,
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
    let store = ctx.coordinator().store().cloned().ok_or_else(|| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the coordinator has no storage, so webhook events cannot be recorded",
        )
    })?;
    let mut tx = store.begin().await.map_err(|e| Problem::internal(&e))?;
    let first_delivery = tx
        .record_intake(INBOX_SOURCE, &event.id)
        .await
        .map_err(|e| Problem::internal(&e))?;
    if !first_delivery {
        tx.rollback().await.map_err(|e| Problem::internal(&e))?;
        return Ok((
            StatusCode::OK,
            Json(WebhookAck {
                event_id: event.id,
                first_delivery: false,
                task_id: None,
            }),
        ));
    }
    let event_id = event.id.clone();
    let task_id = ctx
        .enqueue_in(
            &mut tx,
            &HANDLE_PAYMENT_EVENT,
            event,
            EnqueueOptions::default(),
        )
        .await
        .map_err(|e| Problem::internal(&e))?;
    tx.commit().await.map_err(|e| Problem::internal(&e))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(WebhookAck {
            event_id,
            first_delivery: true,
            task_id: Some(task_id.to_string()),
        }),
    ))
}
