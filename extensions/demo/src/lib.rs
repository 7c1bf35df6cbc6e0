//! The demo extension: a small commerce flow that exercises every feature of the framework.
//!
//! - Signals: `demo.order_placed` (with personal data), `demo.payment_refunded`, and
//!   `demo.learner_enrolled`, which a handler sends as a follow-up.
//! - Handlers: some that succeed, one that always fails (with an error chain) and one that
//!   always panics, to show that neither stops the others; `demo.enroll_learner` enqueues the
//!   durable task `demo.enroll_in_course`, which sends `demo.learner_enrolled` when it is done.
//! - A signed payment webhook that records each event once (the inbox) and enqueues
//!   `demo.handle_payment_event` in the same transaction.
//! - A filter, `demo.payment_page_redirect_requested`, whose steps transform the data, halt the
//!   pipeline for embargoed countries, or fail.
//!
//! Its "external systems" are in-memory sandbox fakes ([`DemoState`]), so it runs anywhere.
//! Copy this crate as the starting point of your own extension.

mod error;
mod filters;
mod handlers;
mod routes;
mod signals;
mod tasks;
mod webhooks;

use coordinator::prelude::*;

pub use error::DemoError;
pub use filters::{PAYMENT_PAGE_REDIRECT_REQUESTED, PaymentPageRequest, normalize_country};
pub use handlers::{DemoState, Enrollment, SANDBOX_CAPACITY};
pub use routes::{Dispatched, HandlerStatus, PaymentPage, PaymentPageQuery};
pub use signals::{
    LEARNER_ENROLLED, LearnerEnrolled, ORDER_PLACED, OrderPlaced, PAYMENT_REFUNDED, PaymentRefunded,
};
pub use tasks::{ENROLL_IN_COURSE, EnrollInCourse, HANDLE_PAYMENT_EVENT, PaymentEvent};
pub use webhooks::{
    DEFAULT_TOLERANCE, DemoSettings, INBOX_SOURCE, SignatureError, WebhookAck, sign, sign_now,
    verify,
};

/// The demo extension. Its state (the sandbox LMS) is shared by its handlers and tasks.
#[derive(Clone, Debug, Default)]
pub struct DemoExtension {
    state: DemoState,
}

impl DemoExtension {
    /// A demo extension whose sandbox state the caller can inspect.
    pub fn with_state(state: DemoState) -> Self {
        Self { state }
    }
}

impl Extension for DemoExtension {
    fn name(&self) -> &'static str {
        "demo"
    }

    fn doc(&self) -> &'static str {
        "A small commerce flow against sandbox fakes: orders enroll learners, refunds revoke \
         seats, and a filter picks where a learner pays. Includes handlers that fail and panic \
         on purpose, to show that dispatch is robust."
    }

    fn build(&self, ext: &mut ExtensionBuilder<'_>) {
        let settings: DemoSettings = ext.settings();
        // Shared with the handlers, tasks and routes that take them as `State<_>`.
        ext.state(self.state.clone()).state(settings);
        ext.signal(&ORDER_PLACED)
            .signal(&PAYMENT_REFUNDED)
            .signal(&LEARNER_ENROLLED);
        handlers::declare(ext);
        tasks::declare(ext);
        filters::declare(ext);
        routes::declare(ext);
    }
}

#[cfg(test)]
mod tests;
