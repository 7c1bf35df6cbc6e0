//! The demo's payment webhook: signed by the processor, received once, handled by a task.
//!
//! The route is public (the framework does not authenticate it): it checks the request's
//! signature itself, as Stripe's are checked. The processor sends `X-Demo-Signature:
//! t=<unix seconds>,v1=<hex>`, where `v1` is the HMAC-SHA256 of `"<t>.<body>"` (several `v1`
//! may be sent while a secret is rotated); a delivery whose timestamp is further than the
//! tolerance from now is refused before anything is read or recorded, so a captured request
//! cannot be replayed once the inbox has forgotten its event. The event is recorded in the
//! inbox and its task enqueued in one transaction: a redelivery triggers its work once and is
//! answered as a success.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use coordinator::config::{ConfigDuration, Secret};
use coordinator::http::{Bytes, HeaderMap, StatusCode};
use coordinator::prelude::*;
use ring::hmac;

use crate::tasks::{HANDLE_PAYMENT_EVENT, PaymentEvent};

/// The demo extension's settings, from `[extension.demo]`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DemoSettings {
    /// The secret the payment processor signs webhooks with. Set it from the environment:
    /// `COORDINATOR__EXTENSION__DEMO__WEBHOOK_SECRET`. Without it the webhook refuses every call.
    #[schemars(with = "Option<String>")]
    pub webhook_secret: Option<Secret>,
    /// How far a delivery's signed timestamp may be from now. Default `"5m"`.
    #[schemars(with = "String")]
    pub webhook_tolerance: ConfigDuration,
}

impl Default for DemoSettings {
    fn default() -> Self {
        Self {
            webhook_secret: None,
            webhook_tolerance: ConfigDuration(DEFAULT_TOLERANCE),
        }
    }
}

/// How far a signed timestamp may be from now by default (Stripe's tolerance).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

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

/// The signature header of `body` signed with `secret` at `timestamp` (unix seconds), as the
/// processor sends it: `t=<timestamp>,v1=<hex>`.
pub fn sign(secret: &str, timestamp: u64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", hex(tag(secret, timestamp, body)))
}

/// [`sign`] at the current time.
pub fn sign_now(secret: &str, body: &[u8]) -> String {
    sign(secret, unix_now(), body)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn tag(secret: &str, timestamp: u64, body: &[u8]) -> hmac::Tag {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    ctx.sign()
}

fn hex(bytes: impl AsRef<[u8]>) -> String {
    bytes.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// Why a signature header was refused. The messages name neither the secret nor a signature.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header is not `t=<unix seconds>,v1=<hex>`.
    #[error(
        "the X-Demo-Signature header is not `t=<unix seconds>,v1=<hex>`; sign \"<t>.<body>\" with \
         HMAC-SHA256 and send both"
    )]
    Malformed,
    /// The timestamp is too far from now.
    #[error(
        "the X-Demo-Signature timestamp is {off_by_secs} s from now, beyond the tolerance of \
         {tolerance_secs} s; send deliveries as they are signed (and check the sender's clock)"
    )]
    Stale {
        /// How far from now.
        off_by_secs: u64,
        /// The tolerance.
        tolerance_secs: u64,
    },
    /// No `v1` signature matches.
    #[error("the X-Demo-Signature does not match the body and timestamp; check the webhook secret")]
    Mismatch,
}

/// Checks `header` against `body`: the timestamp within `tolerance` of `now` (unix seconds),
/// then any `v1` signature in constant time.
pub fn verify(
    secret: &str,
    header: &str,
    body: &[u8],
    now: u64,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => {
                timestamp = Some(t.parse::<u64>().map_err(|_| SignatureError::Malformed)?)
            }
            Some(("v1", v)) => signatures.push(unhex(v).ok_or(SignatureError::Malformed)?),
            // Other schemes (a future v2) are ignored, as Stripe's are.
            Some(_) => {}
            None => return Err(SignatureError::Malformed),
        }
    }
    let (Some(timestamp), false) = (timestamp, signatures.is_empty()) else {
        return Err(SignatureError::Malformed);
    };
    let off_by = now.abs_diff(timestamp);
    if off_by > tolerance.as_secs() {
        return Err(SignatureError::Stale {
            off_by_secs: off_by,
            tolerance_secs: tolerance.as_secs(),
        });
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut signed = timestamp.to_string().into_bytes();
    signed.push(b'.');
    signed.extend_from_slice(body);
    if signatures
        .iter()
        .any(|signature| hmac::verify(&key, &signed, signature).is_ok())
    {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
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
                "missing X-Demo-Signature header; sign \"<t>.<body>\" with HMAC-SHA256 and send \
                 `t=<unix seconds>,v1=<hex>`",
            )
        })?;
    let Some(secret) = settings.webhook_secret else {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the payment webhook has no secret to check signatures with; set COORDINATOR__EXTENSION__DEMO__WEBHOOK_SECRET",
        ));
    };
    // Before anything is read or recorded: a stale or forged delivery changes nothing.
    if let Err(e) = verify(
        secret.expose(),
        signature,
        &body,
        unix_now(),
        settings.webhook_tolerance.0,
    ) {
        tracing::warn!(reason = %e, "payment webhook refused");
        return Err(Problem::unauthorized(e.to_string()));
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

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;
    const FIVE_MINUTES: Duration = Duration::from_secs(300);

    #[test]
    fn a_signature_of_the_timestamp_and_body_verifies_within_the_tolerance() {
        let header = sign("s3", NOW - 60, b"{}");
        assert!(
            header.starts_with(&format!("t={},v1=", NOW - 60)),
            "{header}"
        );
        assert_eq!(verify("s3", &header, b"{}", NOW, FIVE_MINUTES), Ok(()));
        // The same signature for another body, or with another secret, does not.
        assert_eq!(
            verify("s3", &header, b"{ }", NOW, FIVE_MINUTES),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("other", &header, b"{}", NOW, FIVE_MINUTES),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_replay_after_the_tolerance_is_stale_whatever_its_signature() {
        let header = sign("s3", NOW - 301, b"{}");
        assert_eq!(
            verify("s3", &header, b"{}", NOW, FIVE_MINUTES),
            Err(SignatureError::Stale {
                off_by_secs: 301,
                tolerance_secs: 300
            })
        );
        let future = sign("s3", NOW + 301, b"{}");
        assert!(matches!(
            verify("s3", &future, b"{}", NOW, FIVE_MINUTES),
            Err(SignatureError::Stale { .. })
        ));
    }

    #[test]
    fn any_of_several_signatures_may_match_while_a_secret_rotates() {
        let good = sign("new", NOW, b"x");
        let v1 = good.split_once("v1=").unwrap().1;
        let header = format!("t={NOW},v1={},v1={v1},v0=ignored", "00".repeat(32));
        assert_eq!(verify("new", &header, b"x", NOW, FIVE_MINUTES), Ok(()));
    }

    #[test]
    fn malformed_headers_are_refused_and_messages_hold_no_secret_or_signature() {
        for header in [
            "sha256=00",
            "t=1",
            "v1=00",
            "t=x,v1=00",
            "t=1,v1=zz",
            "nonsense",
        ] {
            assert_eq!(
                verify("s3", header, b"{}", NOW, FIVE_MINUTES),
                Err(SignatureError::Malformed),
                "{header}"
            );
        }
        let mismatch = SignatureError::Mismatch.to_string();
        assert!(!mismatch.contains("s3"), "{mismatch}");
    }
}
