//! Failure knobs: make a fake service fail, refuse or slow down, to see retries, dead tasks
//! and breakers at work.
//!
//! `POST /sandbox/_knobs/{service}` with a [`Knob`] sets the knob of `lms`, `commercetools`
//! or `fulfillment`; `DELETE` resets it. Each call to the service consumes one of
//! `fail_next`, then `fail_always` applies; `delay_ms` is added to every answer.

use std::time::Duration;

use coordinator::http::{Json, Path, Problem, StatusCode};
use coordinator::prelude::*;

use crate::state::SandboxState;

/// The services the sandbox fakes.
pub const SERVICES: [&str; 3] = ["lms", "commercetools", "fulfillment"];

/// How a fake service misbehaves.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Knob {
    /// The next this many calls fail (answered with `status`).
    pub fail_next: u32,
    /// Every call fails (after the `fail_next` ones).
    pub fail_always: bool,
    /// The status of a failed call: 5xx or 429 (transient, retried), 4xx (a refusal: the task
    /// is dead). Default 503.
    #[schemars(range(min = 400, max = 599))]
    pub status: Option<u16>,
    /// The message in the failed call's body (`{"message": ...}`). Default "sandbox: injected
    /// failure".
    pub message: Option<String>,
    /// Milliseconds added before every answer (at most 60000).
    #[schemars(range(max = 60_000))]
    pub delay_ms: u64,
}

impl Knob {
    /// Whether it no longer changes anything (its failures used up, no delay).
    pub fn is_spent(&self) -> bool {
        self.fail_next == 0 && !self.fail_always && self.delay_ms == 0
    }

    fn check(&self) -> Result<(), String> {
        if let Some(status) = self.status {
            if !(400..=599).contains(&status) {
                return Err(format!(
                    "status {status} is not a failure; use 400-499 for a refusal or 500-599 \
                     (or 429) for a transient failure"
                ));
            }
        }
        if self.delay_ms > 60_000 {
            return Err(format!("delay_ms {} is over 60000", self.delay_ms));
        }
        if self.message.as_ref().is_some_and(|m| m.len() > 1000) {
            return Err("message is over 1000 bytes".to_owned());
        }
        Ok(())
    }
}

/// What a call to a fake service should do now: wait, then fail or go on.
pub(crate) struct Verdict {
    pub(crate) delay: Duration,
    pub(crate) failure: Option<(u16, String)>,
}

impl Verdict {
    /// Waits the delay; the failure to answer with, if any.
    pub(crate) async fn apply(self) -> Result<(), Problem> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        match self.failure {
            None => Ok(()),
            Some((status, message)) => Err(Problem::new(
                StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                message,
            )),
        }
    }
}

/// Consumes one call of `knob`.
pub(crate) fn consume(knob: &mut Knob) -> Verdict {
    let fail = if knob.fail_next > 0 {
        knob.fail_next -= 1;
        true
    } else {
        knob.fail_always
    };
    Verdict {
        delay: Duration::from_millis(knob.delay_ms),
        failure: fail.then(|| {
            (
                knob.status.unwrap_or(503),
                knob.message
                    .clone()
                    .unwrap_or_else(|| "sandbox: injected failure".to_owned()),
            )
        }),
    }
}

fn service_name(service: &str) -> Result<&'static str, Problem> {
    SERVICES
        .iter()
        .find(|s| **s == service)
        .copied()
        .ok_or_else(|| {
            Problem::new(
                StatusCode::NOT_FOUND,
                format!(
                    "no sandbox service {service:?}; the services are {}",
                    SERVICES.join(", ")
                ),
            )
        })
}

pub(crate) async fn set(
    State(sandbox): State<SandboxState>,
    Path(service): Path<String>,
    Json(knob): Json<Knob>,
) -> Result<Json<Knob>, Problem> {
    let service = service_name(&service)?;
    knob.check().map_err(Problem::bad_request)?;
    sandbox.set_knob(service, knob.clone());
    Ok(Json(knob))
}

pub(crate) async fn reset(
    State(sandbox): State<SandboxState>,
    Path(service): Path<String>,
) -> Result<StatusCode, Problem> {
    let service = service_name(&service)?;
    sandbox.set_knob(service, Knob::default());
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_next_is_used_up_then_fail_always_applies() {
        let mut knob = Knob {
            fail_next: 2,
            status: Some(500),
            ..Knob::default()
        };
        assert_eq!(consume(&mut knob).failure.unwrap().0, 500);
        assert_eq!(consume(&mut knob).failure.unwrap().0, 500);
        assert!(consume(&mut knob).failure.is_none());
        knob.fail_always = true;
        assert_eq!(
            consume(&mut knob).failure.unwrap().1,
            "sandbox: injected failure"
        );
    }

    #[test]
    fn knobs_that_would_not_fail_are_refused() {
        let knob = Knob {
            status: Some(200),
            ..Knob::default()
        };
        assert!(knob.check().unwrap_err().contains("not a failure"));
        assert!(
            Knob {
                delay_ms: 60_001,
                ..Knob::default()
            }
            .check()
            .is_err()
        );
    }
}
