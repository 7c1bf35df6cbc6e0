//! The edX LMS extension: enrollments, entitlements and account deactivation through the LMS's
//! server-to-server APIs.
//!
//! - [`LmsClient`] (`client.rs`): the typed client of the LMS, over the client kit
//!   (`coordinator-client`): OAuth2 client credentials exchanged for a JWT, timeouts, failures
//!   classified for the task policy, the LMS's own refusal messages kept.
//! - Durable tasks (`tasks.rs`): `lms.enroll_in_course`, `lms.grant_entitlement` and
//!   `lms.deactivate_user`, which the order flows enqueue; each makes one call, retried while
//!   the LMS fails, dead with the LMS's message when it refuses.
//! - [`LmsSettings`] (`settings.rs`), from `[extension.lms]`: the LMS's URL, its token
//!   endpoint, the client credentials, the timeout.
//!
//! The extension builds whether or not the LMS is configured (so that its checks pass and the
//! coordinator starts without an LMS); while it is not, every LMS task is dead at its first
//! attempt with a message naming what to set (`set [extension.lms] url
//! (COORDINATOR__EXTENSION__LMS__URL)`). The framework has no way yet for an extension to report
//! such a problem at start-up only when it is enabled.

mod client;
mod error;
mod settings;
mod tasks;

use coordinator::prelude::*;

pub use client::{
    DEACTIVATE_ROUTE, ENROLLMENT_ROUTE, ENTITLEMENTS_ROUTE, Enrollment, EnrollmentAttribute,
    EnrollmentResult, Entitlement, EntitlementRequest, LmsClient, ORDER_NAMESPACE, SERVICE,
};
pub use error::LmsError;
pub use settings::{DEFAULT_TIMEOUT, DEFAULT_TOKEN_PATH, LmsSettings};
pub use tasks::{
    DEACTIVATE_USER, DeactivateUser, ENROLL_IN_COURSE, EnrollInCourse, FULFILLMENT_COMPLETED,
    FulfillmentCompleted, GRANT_ENTITLEMENT, GrantEntitlement, LMS_RETRY, LMS_TASK_TIMEOUT,
};

/// The LMS extension. Its client is made from `[extension.lms]` and shared with its tasks;
/// without its URL and credentials the coordinator refuses to start, naming each.
///
/// ```
/// use coordinator_lms::LmsExtension;
///
/// let settings = r#"
///     [extension.lms]
///     url = "https://lms.example.com"
///     client_id = "commerce-coordinator"
///     client_secret = "from-the-environment"
/// "#;
/// let problems = coordinator::testing::check_extension(LmsExtension, settings);
/// assert!(problems.is_empty(), "{problems:#?}");
/// let problems = coordinator::testing::check_extension(LmsExtension, "");
/// assert!(problems[0].contains("COORDINATOR__EXTENSION__LMS__URL"), "{problems:#?}");
/// ```
#[derive(Clone, Debug, Default)]
pub struct LmsExtension;

impl Extension for LmsExtension {
    fn name(&self) -> &'static str {
        "lms"
    }

    fn doc(&self) -> &'static str {
        "The edX LMS: enrolls learners in course runs, grants entitlements and deactivates \
         accounts through the LMS's APIs, with OAuth2 (JWT) credentials from [extension.lms]."
    }

    fn build(&self, ext: &mut ExtensionBuilder<'_>) {
        let settings: LmsSettings = ext.settings();
        // Incomplete settings refuse the start, naming each setting to set (the client made
        // meanwhile is never used).
        let client = LmsClient::new(&settings).unwrap_or_else(|e| {
            ext.settings_problem(e.to_string());
            LmsClient::unconfigured(&e)
        });
        ext.state(client);
        tasks::declare(ext);
    }
}

#[cfg(test)]
mod tests {
    use coordinator::testing::{TestCoordinator, check_extension};

    use super::*;

    const CONFIGURED: &str = r#"
        [extension.lms]
        url = "https://lms.example.com"
        client_id = "commerce-coordinator"
        client_secret = "s3cret"
        timeout = "10s"
    "#;

    #[test]
    fn passes_the_standard_checks_configured() {
        let problems = check_extension(LmsExtension, CONFIGURED);
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn missing_settings_refuse_the_start_naming_each() {
        let problems = check_extension(LmsExtension, "").join("\n");
        for variable in [
            "COORDINATOR__EXTENSION__LMS__URL",
            "COORDINATOR__EXTENSION__LMS__CLIENT_ID",
            "COORDINATOR__EXTENSION__LMS__CLIENT_SECRET",
        ] {
            assert!(
                problems.contains(variable),
                "{variable} not named in:\n{problems}"
            );
        }
    }

    #[test]
    fn a_misspelt_setting_is_refused_at_start_up_naming_it() {
        let validation = TestCoordinator::builder()
            .extension(LmsExtension)
            .wiring("[extension.lms]\nlms_url = \"https://lms.example.com\"\n")
            .validate();
        assert!(!validation.is_valid());
        let text = validation.to_string();
        assert!(text.contains("lms_url"), "{text}");
    }

    #[test]
    fn declares_its_three_tasks() {
        let t = TestCoordinator::builder()
            .extension(LmsExtension)
            .wiring(CONFIGURED)
            .build();
        let catalog = t.coordinator().catalog();
        let mut tasks: Vec<&str> = catalog.tasks.iter().map(|t| t.name.as_str()).collect();
        tasks.sort_unstable();
        assert_eq!(
            tasks,
            [
                "lms.deactivate_user",
                "lms.enroll_in_course",
                "lms.grant_entitlement"
            ]
        );
    }
}
