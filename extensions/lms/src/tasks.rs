//! The LMS extension's durable tasks: each makes one call to the LMS through the shared
//! [`LmsClient`], retried with backoff while the LMS is unreachable or failing, dead at once
//! with the LMS's own message when it refuses, and postponed (its attempt not counted) while
//! the LMS's circuit breaker is open.
//!
//! The order flows enqueue them: `lms.enroll_in_course` for a course run bought,
//! `lms.grant_entitlement` for a course bought within a program, `lms.deactivate_user` after a
//! failed sanctions check. Their payloads hold the learner's username as personal data
//! (redacted wherever the framework shows a payload).

use std::time::Duration;

use coordinator::prelude::*;
use coordinator::task::RetryPolicy;
use coordinator_client::ForTask;

use crate::client::{Enrollment, EntitlementRequest, LmsClient, ORDER_NAMESPACE};

/// The retry policy of every LMS task: 5 attempts, waits from 5 s doubling up to 5 min (38 to
/// 75 s of waiting in all, jittered, or as long as the LMS's `Retry-After` says). While the
/// LMS's breaker is open, tasks wait without spending attempts, so a long outage is waited out.
pub const LMS_RETRY: RetryPolicy =
    RetryPolicy::exponential(5, Duration::from_secs(5), Duration::from_secs(300));

/// How long one attempt may take: a token fetch and a call, each within the client's timeout
/// (30 s by default), and once more after a refused token. Raise it with
/// `[tasks."<name>"] timeout` if `[extension.lms] timeout` is raised.
pub const LMS_TASK_TIMEOUT: Duration = Duration::from_secs(120);

/// The course mode whose enrollments carry the credit provider.
const CREDIT_MODE: &str = "credit";

/// Enroll a learner in a course run bought in an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EnrollInCourse {
    /// The learner's LMS user id.
    pub lms_user_id: u64,
    /// The learner's LMS username (personal data), whom the LMS enrolls.
    pub username: Personal<String>,
    /// The course run (`course-v1:edX+DemoX+Demo_Course`).
    pub course_run_key: String,
    /// The course mode bought (`verified`, `professional`, `credit`).
    pub mode: String,
    /// Whether the learner agreed to receive the organization's email.
    #[serde(default)]
    pub email_opt_in: bool,
    /// The order's number (`2U-100001`).
    pub order_number: String,
    /// The order's id in the commerce platform.
    pub order_id: String,
    /// The line item that bought the seat.
    pub line_item_id: String,
    /// When the order was placed, ISO 8601 (`2024-05-01T12:00:00Z`).
    pub date_placed: String,
    /// The system the order came from (the commerce platform's name).
    pub source_system: String,
    /// The credit provider, for the `credit` mode.
    #[serde(default)]
    pub credit_provider_id: Option<String>,
}

impl EnrollInCourse {
    /// The enrollment the LMS is asked for: active, with the order's attributes (`order_number`,
    /// `order_id`, `line_item_id`, `date_placed`, `source_system` in the `order` namespace) and,
    /// in the `credit` mode, the credit provider (`credit` / `provider_id`).
    pub fn enrollment(&self) -> Enrollment {
        let mut enrollment = Enrollment {
            email_opt_in: self.email_opt_in,
            ..Enrollment::new(
                self.username.expose().clone(),
                self.course_run_key.clone(),
                self.mode.clone(),
            )
        };
        for (name, value) in [
            ("order_number", &self.order_number),
            ("order_id", &self.order_id),
            ("line_item_id", &self.line_item_id),
            ("date_placed", &self.date_placed),
            ("source_system", &self.source_system),
        ] {
            enrollment = enrollment.attribute(ORDER_NAMESPACE, name, value.clone());
        }
        match &self.credit_provider_id {
            Some(provider) if self.mode == CREDIT_MODE => {
                enrollment.attribute("credit", "provider_id", provider.clone())
            }
            _ => enrollment,
        }
    }
}

/// Grant a learner an entitlement to a course bought in an order (within a program).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GrantEntitlement {
    /// The learner's LMS user id.
    pub lms_user_id: u64,
    /// The learner's LMS username (personal data), whom the LMS entitles.
    pub username: Personal<String>,
    /// The course's UUID in the catalog.
    pub course_uuid: String,
    /// The course mode bought (`verified`).
    pub mode: String,
    /// Whether the learner agreed to receive the organization's email.
    #[serde(default)]
    pub email_opt_in: bool,
    /// The order's number.
    pub order_number: String,
    /// The order's id in the commerce platform.
    #[serde(default)]
    pub order_id: String,
    /// The line item that bought it.
    pub line_item_id: String,
}

impl GrantEntitlement {
    /// The entitlement the LMS is asked for.
    pub fn request(&self) -> EntitlementRequest {
        EntitlementRequest {
            username: self.username.clone(),
            course_uuid: self.course_uuid.clone(),
            mode: self.mode.clone(),
            order_number: self.order_number.clone(),
            email_opt_in: self.email_opt_in,
        }
    }
}

/// Deactivate a learner's LMS account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DeactivateUser {
    /// The learner's LMS username (personal data).
    pub username: Personal<String>,
    /// The learner's LMS user id, when known (for the task's summary).
    #[serde(default)]
    pub lms_user_id: Option<u64>,
    /// The order whose sanctions check failed, if that is why (for the task's summary).
    #[serde(default)]
    pub order_number: Option<String>,
}

/// How fulfilling one line item of an order ended at the LMS: sent by `lms.enroll_in_course`
/// and `lms.grant_entitlement` once they succeeded, or once they failed for good (a refusal,
/// or the last attempt), so that the order's line item can be moved to its success or failure
/// state and the learner told.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FulfillmentCompleted {
    /// The order's id in the commerce platform.
    pub order_id: String,
    /// The order's number.
    pub order_number: String,
    /// The line item fulfilled (or not).
    pub line_item_id: String,
    /// The learner's LMS user id.
    pub lms_user_id: u64,
    /// `enrollment` or `entitlement`.
    pub fulfillment_type: String,
    /// Whether the LMS did it.
    pub succeeded: bool,
    /// The entitlement's UUID, when one was granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entitlement_uuid: Option<String>,
    /// Why it failed (the LMS's message), when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A line item's fulfillment at the LMS ended (see [`FulfillmentCompleted`]).
pub static FULFILLMENT_COMPLETED: Signal<FulfillmentCompleted> = Signal::new(
    "lms.fulfillment_completed",
    "The LMS enrolled the learner or granted the entitlement for one line item of an order, or \
     refused for good (succeeded false, with the LMS's message): the order's line item can \
     move to its success or failure state.",
);

/// Sends `done` and fails the attempt if its handlers' work was not done or stored (the task
/// is retried and sends it again; receivers are idempotent).
async fn completed(ctx: &TaskContext, done: FulfillmentCompleted) -> Result<(), TaskError> {
    let report = ctx
        .context()
        .send_robust(&FULFILLMENT_COMPLETED, done)
        .await;
    report.accepted()?;
    Ok(())
}

/// The error of a failed attempt, after telling the order it failed when nothing more will
/// be tried (a refusal, or the last attempt).
async fn failed(
    ctx: &TaskContext,
    error: TaskError,
    done: impl FnOnce(String) -> FulfillmentCompleted,
) -> TaskError {
    let last = match &error {
        TaskError::Abort(_) => true,
        TaskError::Postpone(..) => false,
        TaskError::Retry(_) | TaskError::RetryAfter(..) => ctx.attempt() >= ctx.max_attempts(),
    };
    if last {
        if let Err(e) = completed(ctx, done(error.error().to_string())).await {
            return e;
        }
    }
    error
}

/// Enrolls a learner in a course run through the LMS enrollment API.
pub static ENROLL_IN_COURSE: Task<EnrollInCourse> = Task::new(
    "lms.enroll_in_course",
    "Enrolls the learner in the course run through the LMS enrollment API \
     (POST /api/enrollment/v1/enrollment), with the order's attributes. Enrolling again changes \
     the existing enrollment, so a repeated attempt is harmless. A refusal (an expired course \
     mode, a full course, an unknown user) is final, with the LMS's message.",
)
.retry(LMS_RETRY)
.timeout(LMS_TASK_TIMEOUT);

/// Grants a learner an entitlement through the LMS entitlement API.
pub static GRANT_ENTITLEMENT: Task<GrantEntitlement> = Task::new(
    "lms.grant_entitlement",
    "Grants the learner an entitlement to the course through the LMS entitlement API \
     (POST /api/entitlements/v1/entitlements/); the summary names the entitlement's UUID. A \
     refusal is final, with the LMS's message.",
)
.retry(LMS_RETRY)
.timeout(LMS_TASK_TIMEOUT);

/// Deactivates a learner's LMS account.
pub static DEACTIVATE_USER: Task<DeactivateUser> = Task::new(
    "lms.deactivate_user",
    "Deactivates the learner's LMS account (POST /api/user/v1/accounts/{username}/deactivate/), \
     after an order failed its sanctions check. A refusal (an unknown user) is final, with the \
     LMS's message.",
)
.retry(LMS_RETRY)
.timeout(LMS_TASK_TIMEOUT);

pub(crate) fn declare(ext: &mut ExtensionBuilder<'_>) {
    ext.signal(&FULFILLMENT_COMPLETED);
    ext.task(&ENROLL_IN_COURSE, enroll_in_course)
        .sends(&FULFILLMENT_COMPLETED)
        .task(&GRANT_ENTITLEMENT, grant_entitlement)
        .sends(&FULFILLMENT_COMPLETED)
        .task(&DEACTIVATE_USER, deactivate_user);
}

async fn enroll_in_course(
    ctx: TaskContext,
    p: EnrollInCourse,
    State(lms): State<LmsClient>,
) -> TaskResult {
    let done = |succeeded: bool, error: Option<String>| FulfillmentCompleted {
        order_id: p.order_id.clone(),
        order_number: p.order_number.clone(),
        line_item_id: p.line_item_id.clone(),
        lms_user_id: p.lms_user_id,
        fulfillment_type: "enrollment".to_owned(),
        succeeded,
        entitlement_uuid: None,
        error,
    };
    let enrolled = match lms.enroll(&p.enrollment()).await.for_task() {
        Ok(enrolled) => enrolled,
        Err(e) => return Err(failed(&ctx, e, |message| done(false, Some(message))).await),
    };
    completed(&ctx, done(true, None)).await?;
    let mode = enrolled.mode.as_deref().unwrap_or(&p.mode);
    let state = match enrolled.is_active {
        Some(false) => "inactive",
        _ => "active",
    };
    Ok(format!(
        "user {} enrolled in {} as {mode} ({state}) for order {}",
        p.lms_user_id, p.course_run_key, p.order_number
    )
    .into())
}

async fn grant_entitlement(
    ctx: TaskContext,
    p: GrantEntitlement,
    State(lms): State<LmsClient>,
) -> TaskResult {
    let done = |entitlement_uuid: Option<String>, error: Option<String>| FulfillmentCompleted {
        order_id: p.order_id.clone(),
        order_number: p.order_number.clone(),
        line_item_id: p.line_item_id.clone(),
        lms_user_id: p.lms_user_id,
        fulfillment_type: "entitlement".to_owned(),
        succeeded: entitlement_uuid.is_some(),
        entitlement_uuid,
        error,
    };
    let entitlement = match lms.grant_entitlement(&p.request()).await.for_task() {
        Ok(entitlement) => entitlement,
        Err(e) => return Err(failed(&ctx, e, |message| done(None, Some(message))).await),
    };
    completed(&ctx, done(Some(entitlement.uuid.clone()), None)).await?;
    Ok(format!(
        "entitlement {} granted to user {} for course {} for order {}",
        entitlement.uuid, p.lms_user_id, p.course_uuid, p.order_number
    )
    .into())
}

async fn deactivate_user(
    _ctx: TaskContext,
    p: DeactivateUser,
    State(lms): State<LmsClient>,
) -> TaskResult {
    lms.deactivate_user(p.username.expose()).await.for_task()?;
    let user = p
        .lms_user_id
        .map_or_else(|| "the learner".to_owned(), |id| format!("user {id}"));
    let reason = p
        .order_number
        .map(|n| format!(" after order {n} failed its sanctions check"))
        .unwrap_or_default();
    Ok(format!("LMS account of {user} deactivated{reason}").into())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn enroll(mode: &str, provider: Option<&str>) -> EnrollInCourse {
        EnrollInCourse {
            lms_user_id: 4,
            username: Personal::new("ada".into()),
            course_run_key: "course-v1:edX+DemoX+Demo_Course".into(),
            mode: mode.into(),
            email_opt_in: false,
            order_number: "2U-100001".into(),
            order_id: "61ec1afa-1b0e-4234-ae28-f997728054fa".into(),
            line_item_id: "822d77c4-00a6-4fb9-909b-094ef0b8c4b9".into(),
            date_placed: "2024-05-01T12:00:00Z".into(),
            source_system: "commercetools".into(),
            credit_provider_id: provider.map(str::to_owned),
        }
    }

    #[test]
    fn the_enrollment_carries_the_orders_attributes_in_the_lms_order() {
        let e = enroll("verified", Some("asu")).enrollment();
        assert_eq!(e.username.expose(), "ada");
        assert!(e.is_active);
        let attributes: Vec<_> = e
            .attributes
            .iter()
            .map(|a| (a.namespace.as_str(), a.name.as_str(), a.value.as_str()))
            .collect();
        assert_eq!(
            attributes,
            [
                ("order", "order_number", "2U-100001"),
                ("order", "order_id", "61ec1afa-1b0e-4234-ae28-f997728054fa"),
                (
                    "order",
                    "line_item_id",
                    "822d77c4-00a6-4fb9-909b-094ef0b8c4b9"
                ),
                ("order", "date_placed", "2024-05-01T12:00:00Z"),
                ("order", "source_system", "commercetools"),
            ],
            "no credit provider outside the credit mode"
        );
        let credit = enroll("credit", Some("asu")).enrollment();
        assert_eq!(
            credit
                .attributes
                .last()
                .map(|a| (&*a.namespace, &*a.name, &*a.value)),
            Some(("credit", "provider_id", "asu"))
        );
    }

    #[test]
    fn payloads_read_with_their_optional_fields_absent() {
        let p: EnrollInCourse = serde_json::from_value(json!({
            "lms_user_id": 4, "username": "ada", "course_run_key": "c", "mode": "verified",
            "order_number": "n", "order_id": "i", "line_item_id": "l",
            "date_placed": "2024-05-01T12:00:00Z", "source_system": "s"
        }))
        .unwrap();
        assert!(!p.email_opt_in && p.credit_provider_id.is_none());
        let d: DeactivateUser = serde_json::from_value(json!({"username": "ada"})).unwrap();
        assert_eq!((d.lms_user_id, d.order_number.as_deref()), (None, None));
        assert!(!format!("{p:?}{d:?}").contains("ada"));
    }

    #[test]
    fn every_task_retries_five_times_from_five_seconds_to_five_minutes() {
        for defaults in [
            ENROLL_IN_COURSE.defaults(),
            GRANT_ENTITLEMENT.defaults(),
            DEACTIVATE_USER.defaults(),
        ] {
            assert_eq!(defaults.retry.max_attempts, 5);
            assert_eq!(defaults.retry.initial_backoff, Duration::from_secs(5));
            assert_eq!(defaults.retry.max_backoff, Duration::from_secs(300));
            assert_eq!(defaults.timeout, LMS_TASK_TIMEOUT);
        }
    }
}
