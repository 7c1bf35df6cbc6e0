//! The demo extension's background tasks: the slow work its handlers and webhook enqueue.

use std::time::Duration;

use coordinator::prelude::*;
use coordinator::task::RetryPolicy;

use crate::error::DemoError;
use crate::handlers::{DemoState, Enrollment};
use crate::signals::{LEARNER_ENROLLED, LearnerEnrolled, PAYMENT_REFUNDED, PaymentRefunded};

/// Enroll a learner in a course run (in the sandbox LMS).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct EnrollInCourse {
    /// The learner.
    pub lms_user_id: u64,
    /// The course run.
    pub course_run_key: String,
    /// The order that paid for the seat.
    pub order_number: String,
}

/// A payment processor's event, received once (the inbox drops redeliveries) and handled later.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct PaymentEvent {
    /// The processor's event id (the deduplication key).
    #[schemars(length(min = 1, max = 255), pattern(crate::signals::PRINTABLE))]
    pub id: String,
    /// What happened: only `payment.refunded` is acted on.
    #[serde(rename = "type")]
    pub kind: String,
    /// The refund, for `payment.refunded` events.
    pub refund: Option<PaymentRefunded>,
}

/// Enrolls a learner, then sends `demo.learner_enrolled`.
pub static ENROLL_IN_COURSE: Task<EnrollInCourse> = Task::new(
    "demo.enroll_in_course",
    "Enrolls the learner in the course run through the (sandbox) LMS enrollment API, then sends demo.learner_enrolled.",
)
.retry(RetryPolicy::exponential(8, Duration::from_secs(2), Duration::from_secs(600)))
.timeout(Duration::from_secs(30));

/// Acts on a payment processor's event.
pub static HANDLE_PAYMENT_EVENT: Task<PaymentEvent> = Task::new(
    "demo.handle_payment_event",
    "Acts on a payment processor event received by the webhook: a refund sends demo.payment_refunded; a dispute fetches it from the (sandbox, always unreachable) dispute API, so it is retried until it is dead.",
);

pub(crate) fn declare(ext: &mut ExtensionBuilder<'_>) {
    ext.task(&ENROLL_IN_COURSE, enroll_in_course)
        .sends(&LEARNER_ENROLLED)
        .task(&HANDLE_PAYMENT_EVENT, handle_payment_event)
        .sends(&PAYMENT_REFUNDED);
}

async fn enroll_in_course(
    ctx: TaskContext,
    p: EnrollInCourse,
    State(lms): State<DemoState>,
) -> TaskResult {
    // Enrolling twice (a retried attempt after a lost lease) must not add a second seat:
    // tasks run at least once, so they are idempotent.
    lms.enroll(Enrollment {
        lms_user_id: p.lms_user_id,
        course_run_key: p.course_run_key.clone(),
        order_number: p.order_number.clone(),
        active: true,
    });
    let follow_up = ctx
        .context()
        .send_robust(
            &LEARNER_ENROLLED,
            LearnerEnrolled {
                lms_user_id: p.lms_user_id,
                course_run_key: p.course_run_key,
                order_number: p.order_number,
            },
        )
        .await;
    Ok(format!("enrolled; follow-up dispatch {}", follow_up.id).into())
}

async fn handle_payment_event(ctx: TaskContext, event: PaymentEvent) -> TaskResult {
    match (event.kind.as_str(), event.refund) {
        ("payment.refunded", Some(refund)) => {
            let report = ctx.context().send_robust(&PAYMENT_REFUNDED, refund).await;
            Ok(format!("refund dispatched as {}", report.id).into())
        }
        ("payment.refunded", None) => Err(TaskError::abort(HandlerError::msg(format!(
            "event {} is a refund without a `refund` object; it cannot be acted on",
            event.id
        )))),
        // The sandbox processor's dispute API is always down: a transient error, retried with
        // backoff until the task's attempts run out and it is dead.
        ("payment.disputed", _) => Err(TaskError::Retry(
            DemoError::DisputeServiceUnreachable {
                event_id: event.id,
                source: std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"),
            }
            .into(),
        )),
        (other, _) => Ok(format!("ignored event type {other}").into()),
    }
}
