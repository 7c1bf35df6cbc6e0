//! The demo extension's handlers, and the sandbox LMS they talk to.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use coordinator::prelude::*;

use crate::error::DemoError;
use crate::signals::{LearnerEnrolled, OrderPlaced, PaymentRefunded};
use crate::tasks::{ENROLL_IN_COURSE, EnrollInCourse};

/// One seat in the sandbox LMS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enrollment {
    /// The learner.
    pub lms_user_id: u64,
    /// The course run.
    pub course_run_key: String,
    /// The order that paid for it.
    pub order_number: String,
    /// Whether the seat is still held (false once revoked).
    pub active: bool,
}

/// How many enrollments the sandbox LMS remembers; older ones are forgotten, so that a long
/// load test cannot grow it without bound.
pub const SANDBOX_CAPACITY: usize = 10_000;

/// The sandbox LMS: an in-memory list of the latest enrollments, shared by the handlers.
#[derive(Clone, Debug, Default)]
pub struct DemoState {
    enrollments: Arc<Mutex<VecDeque<Enrollment>>>,
}

impl DemoState {
    /// The enrollments the sandbox remembers (the latest [`SANDBOX_CAPACITY`]), oldest first.
    pub fn enrollments(&self) -> Vec<Enrollment> {
        self.lock().iter().cloned().collect()
    }

    /// Enrolls, unless the same order already holds this seat: enrolling is idempotent, as the
    /// work of a task that may run more than once must be. Returns whether a seat was added.
    pub fn enroll(&self, enrollment: Enrollment) -> bool {
        let mut enrollments = self.lock();
        let exists = enrollments.iter().any(|e| {
            e.order_number == enrollment.order_number
                && e.course_run_key == enrollment.course_run_key
                && e.lms_user_id == enrollment.lms_user_id
        });
        if exists {
            return false;
        }
        if enrollments.len() == SANDBOX_CAPACITY {
            enrollments.pop_front();
        }
        enrollments.push_back(enrollment);
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Enrollment>> {
        self.enrollments
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

pub(crate) fn declare(ext: &mut ExtensionBuilder<'_>) {
    ext.handler(
        "demo.enroll_learner",
        "Enqueues demo.enroll_in_course for the learner's seat (the LMS call is slow and may fail, so it runs as a durable task).",
        enroll_learner,
    )
    .enqueues(&ENROLL_IN_COURSE)
    .handler(
        "demo.revoke_seat",
        "Revokes the seat that a refunded payment paid for (in the sandbox LMS).",
        revoke_seat,
    )
    .handler(
        "demo.record_order",
        "Reads the order and records a one-line summary of it (no I/O: the cheapest useful handler).",
        record_order,
    )
    .handler(
        "demo.notify_unreachable_crm",
        "Always fails, as if the CRM were down: shows that a failing handler is isolated and its error chain reported.",
        notify_unreachable_crm,
    )
    .handler(
        "demo.audit_with_bug",
        "Always panics, as if it had a bug: shows that a panicking handler is caught and reported while the others run.",
        audit_with_bug,
    )
    .handler(
        "demo.welcome_learner",
        "Would send the learner a welcome email; records that it was asked to.",
        welcome_learner,
    );
}

async fn enroll_learner(event: Event<OrderPlaced>) -> HandlerResult {
    let order = event.payload();
    let task_id = event
        .context()
        .enqueue_with(
            &ENROLL_IN_COURSE,
            EnrollInCourse {
                lms_user_id: order.lms_user_id,
                course_run_key: order.course_run_key.clone(),
                order_number: order.order_number.clone(),
            },
            // One enrollment per order and seat, however often the order is announced and
            // however often this delivery runs (it runs again if the process dies before its
            // outcome is recorded).
            EnqueueOptions::default()
                .once(format!("{}/{}", order.order_number, order.course_run_key)),
        )
        .await?;
    Ok(task_id.into())
}

async fn record_order(event: Event<OrderPlaced>) -> HandlerResult {
    Ok(format!(
        "order {} for user {}",
        event.order_number, event.lms_user_id
    )
    .into())
}

async fn revoke_seat(event: Event<PaymentRefunded>, State(lms): State<DemoState>) -> HandlerResult {
    let mut revoked = 0;
    for e in lms
        .lock()
        .iter_mut()
        .filter(|e| e.order_number == event.order_number && e.active)
    {
        e.active = false;
        revoked += 1;
    }
    Ok(format!("revoked {revoked} seat(s)").into())
}

async fn notify_unreachable_crm(event: Event<OrderPlaced>) -> Result<(), DemoError> {
    Err(DemoError::CrmUnreachable {
        order_number: event.order_number.clone(),
        source: std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused"),
    })
}

async fn audit_with_bug(event: Event<OrderPlaced>) -> HandlerResult {
    let amounts: Vec<u64> = Vec::new();
    // The bug: indexing an empty list.
    let first = amounts.get(usize::from(event.amount_cents > 0) - 1);
    match first {
        Some(a) => Ok(format!("audited {a}").into()),
        None => panic!("audit trail is empty for order {}", event.order_number),
    }
}

async fn welcome_learner(event: Event<LearnerEnrolled>) -> HandlerResult {
    Ok(format!("welcome queued for learner {}", event.lms_user_id).into())
}
