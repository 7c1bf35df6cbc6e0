//! [`LmsClient`]: the typed client of the edX LMS's server-to-server APIs: enrollments,
//! entitlements and account deactivation.
//!
//! It is a thin layer over the client kit's [`ServiceClient`] (service name `lms`): it builds
//! the calls and decodes the answers; timeouts, the OAuth2 token (client credentials sent in
//! the form with `token_type=jwt`, answered with a JWT that is sent as `Authorization: JWT
//! <token>`), the classification of failures, the circuit breaker, spans and statistics come
//! from the kit. Every method returns a [`CallError`]; a task turns it into its own error with
//! [`ForTask::for_task`](coordinator_client::ForTask::for_task): a timeout or a 5xx is retried,
//! a refusal is final and keeps the LMS's own message (`The [verified] course mode is expired
//! or otherwise unavailable for course run [...]`).
//!
//! Learners' usernames are personal data: they are held in
//! [`Personal`](coordinator::prelude::Personal), sent to the LMS and nowhere else (spans and
//! errors name the route template `/api/user/v1/accounts/{username}/deactivate/`, never the
//! path called).

use std::sync::Arc;

use coordinator::config::Secret;
use coordinator::payload::REDACTED;
use coordinator::prelude::*;
use coordinator_client::{
    Auth, Call, CallError, Credentials, OAuth2, ServiceClient, ServiceConfig, path_segment,
};

use crate::error::LmsError;
use crate::settings::LmsSettings;

/// The service's name in errors, spans and metrics.
pub const SERVICE: &str = "lms";

/// The enrollment API: `POST` creates or changes an enrollment.
pub const ENROLLMENT_ROUTE: &str = "/api/enrollment/v1/enrollment";

/// The entitlement API: `POST` grants an entitlement.
pub const ENTITLEMENTS_ROUTE: &str = "/api/entitlements/v1/entitlements/";

/// The account deactivation API, as a route template (the username is filled in the path
/// called, never in what is logged).
pub const DEACTIVATE_ROUTE: &str = "/api/user/v1/accounts/{username}/deactivate/";

/// The header that carries the LMS's legacy `EDX_API_KEY`.
const API_KEY_HEADER: &str = "X-Edx-Api-Key";

/// The namespace of the enrollment attributes that tie an enrollment to its order.
pub const ORDER_NAMESPACE: &str = "order";

/// An enrollment to create or change (`POST /api/enrollment/v1/enrollment`). Enrolling again
/// in the same course run changes the existing enrollment (its mode, whether it is active):
/// the call is idempotent.
///
/// ```
/// use coordinator_lms::Enrollment;
///
/// let enrollment = Enrollment::new("ada", "course-v1:edX+DemoX+Demo_Course", "verified")
///     .attribute("order", "order_number", "2U-100001");
/// assert!(enrollment.is_active);
/// // The username is personal data: it never shows in logs.
/// assert!(!format!("{enrollment:?}").contains("ada"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Enrollment {
    /// The learner's LMS username (personal data).
    pub username: Personal<String>,
    /// The course run (`course-v1:edX+DemoX+Demo_Course`).
    pub course_run_key: String,
    /// The course mode (`verified`, `audit`, `professional`, `credit`).
    pub mode: String,
    /// `true` to enroll, `false` to unenroll.
    pub is_active: bool,
    /// Whether the learner agreed to receive the organization's email.
    pub email_opt_in: bool,
    /// Attributes the LMS keeps with the enrollment (the order that paid for it).
    pub attributes: Vec<EnrollmentAttribute>,
}

impl Enrollment {
    /// An active enrollment of `username` in `course_run_key` in `mode`, without email opt-in
    /// or attributes.
    pub fn new(
        username: impl Into<String>,
        course_run_key: impl Into<String>,
        mode: impl Into<String>,
    ) -> Self {
        Self {
            username: Personal::new(username.into()),
            course_run_key: course_run_key.into(),
            mode: mode.into(),
            is_active: true,
            email_opt_in: false,
            attributes: Vec::new(),
        }
    }

    /// Adds an attribute.
    pub fn attribute(
        mut self,
        namespace: impl Into<String>,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        self.attributes.push(EnrollmentAttribute {
            namespace: namespace.into(),
            name: name.into(),
            value: value.into(),
        });
        self
    }
}

/// One attribute of an enrollment (`{"namespace": "order", "name": "order_number", "value":
/// "2U-100001"}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EnrollmentAttribute {
    /// The namespace (`order`, `credit`).
    pub namespace: String,
    /// The name (`order_number`, `provider_id`).
    pub name: String,
    /// The value.
    pub value: String,
}

/// The enrollment as the LMS answered it (what was kept of it: not the username).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EnrollmentResult {
    /// The course run, from `course_details.course_id`.
    pub course_run_key: Option<String>,
    /// The enrollment's mode.
    pub mode: Option<String>,
    /// Whether the enrollment is active.
    pub is_active: Option<bool>,
}

/// The enrollment API's answer, as sent.
#[derive(Deserialize)]
struct EnrollmentAnswer {
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    is_active: Option<bool>,
    #[serde(default)]
    course_details: Option<CourseDetails>,
}

#[derive(Deserialize)]
struct CourseDetails {
    #[serde(default)]
    course_id: Option<String>,
}

/// An entitlement to grant (`POST /api/entitlements/v1/entitlements/`): the right to a seat in
/// some run of a course, chosen later by the learner (bought with a program).
///
/// The LMS makes one entitlement per call: a call repeated after a timeout whose request did
/// reach the LMS may make a second one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EntitlementRequest {
    /// The learner's LMS username (personal data).
    pub username: Personal<String>,
    /// The course (not a run): its UUID in the catalog.
    pub course_uuid: String,
    /// The course mode (`verified`).
    pub mode: String,
    /// The order that paid for it.
    pub order_number: String,
    /// Whether the learner agreed to receive the organization's email.
    pub email_opt_in: bool,
}

/// An entitlement the LMS granted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Entitlement {
    /// The entitlement's UUID in the LMS (to expire it on a refund).
    pub uuid: String,
    /// The course.
    #[serde(default)]
    pub course_uuid: Option<String>,
    /// The mode.
    #[serde(default)]
    pub mode: Option<String>,
    /// The order it was granted for.
    #[serde(default)]
    pub order_number: Option<String>,
}

/// The enrollment API's request body.
#[derive(Serialize)]
struct EnrollmentBody<'a> {
    user: &'a str,
    mode: &'a str,
    is_active: bool,
    course_details: CourseDetailsBody<'a>,
    email_opt_in: bool,
    enrollment_attributes: &'a [EnrollmentAttribute],
}

#[derive(Serialize)]
struct CourseDetailsBody<'a> {
    course_id: &'a str,
}

impl<'a> From<&'a Enrollment> for EnrollmentBody<'a> {
    fn from(enrollment: &'a Enrollment) -> Self {
        Self {
            user: enrollment.username.expose(),
            mode: &enrollment.mode,
            is_active: enrollment.is_active,
            course_details: CourseDetailsBody {
                course_id: &enrollment.course_run_key,
            },
            email_opt_in: enrollment.email_opt_in,
            enrollment_attributes: &enrollment.attributes,
        }
    }
}

/// The entitlement API's request body.
#[derive(Serialize)]
struct EntitlementBody<'a> {
    user: &'a str,
    mode: &'a str,
    course_uuid: &'a str,
    order_number: &'a str,
    email_opt_in: bool,
}

impl<'a> From<&'a EntitlementRequest> for EntitlementBody<'a> {
    fn from(request: &'a EntitlementRequest) -> Self {
        Self {
            user: request.username.expose(),
            mode: &request.mode,
            course_uuid: &request.course_uuid,
            order_number: &request.order_number,
            email_opt_in: request.email_opt_in,
        }
    }
}

/// The client of the edX LMS. Cheap to clone; share one (as the extension does, as state).
///
/// ```no_run
/// use coordinator_lms::{Enrollment, LmsClient, LmsSettings};
///
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let settings: LmsSettings = serde_json::from_value(serde_json::json!({
///     "url": "https://lms.example.com",
///     "client_id": "commerce-coordinator",
///     "client_secret": "s3cret",
/// }))?;
/// let lms = LmsClient::new(&settings)?;
/// let enrolled = lms
///     .enroll(&Enrollment::new("ada", "course-v1:edX+DemoX+Demo_Course", "verified"))
///     .await?;
/// assert_eq!(enrolled.is_active, Some(true));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct LmsClient {
    /// The service, or why there is none (every call then fails permanently with it).
    service: Result<ServiceClient, Arc<str>>,
    api_key: Option<Secret>,
}

impl LmsClient {
    /// A client of the LMS the settings name, or what to set first.
    pub fn new(settings: &LmsSettings) -> Result<Self, LmsError> {
        Self::from_config(Self::service_config(settings)?, settings.api_key.clone())
    }

    /// The client kit's configuration for the LMS the settings name (service `lms`, the
    /// settings' timeout, OAuth2 client credentials in the form with `token_type=jwt`), to
    /// adjust before [`LmsClient::from_config`]; or every setting that is missing.
    pub fn service_config(settings: &LmsSettings) -> Result<ServiceConfig, LmsError> {
        let missing = settings.problems();
        if !missing.is_empty() {
            return Err(LmsError::NotConfigured { missing });
        }
        // Present, as `problems` just checked.
        let (Some(url), Some(token_url), Some(client_id), Some(secret)) = (
            settings.url.as_deref(),
            settings.token_url(),
            settings.client_id.as_deref(),
            settings.client_secret.clone(),
        ) else {
            return Err(LmsError::NotConfigured { missing });
        };
        let oauth = OAuth2::new(token_url, client_id.trim(), secret)
            .credentials(Credentials::Body)
            .extra("token_type", "jwt");
        Ok(ServiceConfig::new(SERVICE, url.trim())
            .timeout(settings.timeout.0)
            .auth(Auth::OAuth2(oauth)))
    }

    /// A client over `config` (a sandbox's, a test's with its own breaker), sending `api_key`
    /// as `X-Edx-Api-Key` with enrollments and entitlements when given.
    pub fn from_config(config: ServiceConfig, api_key: Option<Secret>) -> Result<Self, LmsError> {
        let service = ServiceClient::new(config).map_err(LmsError::Client)?;
        Ok(Self {
            service: Ok(service),
            api_key: api_key.filter(|k| !k.expose().trim().is_empty()),
        })
    }

    /// A client that cannot call: each call fails permanently with `why` (the extension is
    /// built, and its checks pass, while the LMS is not configured; its tasks say what to set).
    pub(crate) fn unconfigured(why: &LmsError) -> Self {
        Self {
            service: Err(why.to_string().into()),
            api_key: None,
        }
    }

    /// Whether the client can call the LMS (it was made from complete settings).
    pub fn is_configured(&self) -> bool {
        self.service.is_ok()
    }

    /// The service, or the permanent error of a call that cannot be made.
    fn service(
        &self,
        method: &'static str,
        route: &'static str,
    ) -> Result<&ServiceClient, CallError> {
        self.service.as_ref().map_err(|why| CallError::Request {
            service: SERVICE,
            method,
            route,
            message: why.to_string(),
        })
    }

    /// `call` with the API key, when there is one.
    fn with_api_key(&self, call: Call) -> Call {
        match &self.api_key {
            Some(key) => call.header(API_KEY_HEADER, key.expose()),
            None => call,
        }
    }

    /// Creates or changes an enrollment; answers the enrollment as the LMS now has it.
    ///
    /// A refusal (the mode is expired, the course is full, the user does not exist) is a
    /// permanent [`CallError::Rejected`] with the LMS's message.
    pub async fn enroll(&self, enrollment: &Enrollment) -> Result<EnrollmentResult, CallError> {
        let service = self.service("POST", ENROLLMENT_ROUTE)?;
        let body = EnrollmentBody::from(enrollment);
        let answer: EnrollmentAnswer = service
            .json(self.with_api_key(Call::post(ENROLLMENT_ROUTE).json(&body)))
            .await
            .map_err(|e| without(e, enrollment.username.expose()))?;
        Ok(EnrollmentResult {
            course_run_key: answer.course_details.and_then(|d| d.course_id),
            mode: answer.mode,
            is_active: answer.is_active,
        })
    }

    /// Grants an entitlement; answers it, with the `uuid` the LMS gave it.
    pub async fn grant_entitlement(
        &self,
        request: &EntitlementRequest,
    ) -> Result<Entitlement, CallError> {
        let service = self.service("POST", ENTITLEMENTS_ROUTE)?;
        let body = EntitlementBody::from(request);
        service
            .json(self.with_api_key(Call::post(ENTITLEMENTS_ROUTE).json(&body)))
            .await
            .map_err(|e| without(e, request.username.expose()))
    }

    /// Deactivates a learner's account (after a failed sanctions check): the LMS logs them
    /// out and they cannot log in again. The LMS answers 204; an unknown username is a
    /// permanent refusal.
    pub async fn deactivate_user(&self, username: &str) -> Result<(), CallError> {
        let service = self.service("POST", DEACTIVATE_ROUTE)?;
        let username = username.trim();
        // URL parsers resolve dot segments, even encoded: `..` would call another path.
        if matches!(username, "" | "." | "..") {
            return Err(CallError::Request {
                service: SERVICE,
                method: "POST",
                route: DEACTIVATE_ROUTE,
                message: "the username is empty or a dot segment, which is no LMS username; \
                          check where the order's username comes from"
                    .to_owned(),
            });
        }
        let path = format!(
            "/api/user/v1/accounts/{}/deactivate/",
            path_segment(username)
        );
        service
            .send(Call::post(DEACTIVATE_ROUTE).path(path))
            .await
            .map(drop)
            .map_err(|e| without(e, username))
    }
}

/// `error` with `username` taken out of its message: the LMS quotes it (`The user ada does
/// not exist.`), and a task's errors are stored, shown and logged.
fn without(mut error: CallError, username: &str) -> CallError {
    match &mut error {
        CallError::Rejected { message, .. }
        | CallError::Transient { message, .. }
        | CallError::Decode { message, .. }
        | CallError::Request { message, .. } => *message = redact_word(message, username),
        CallError::Open { .. } => {}
    }
    error
}

/// `text` with every occurrence of `word` that stands as a word (not inside a longer name)
/// replaced by `[redacted]`. A word of one character is left: it would hit everything.
fn redact_word(text: &str, word: &str) -> String {
    let word = word.trim();
    if word.chars().count() < 2 {
        return text.to_owned();
    }
    let part_of_name = |c: char| c.is_alphanumeric() || matches!(c, '_' | '-');
    let mut redacted = String::with_capacity(text.len());
    let mut rest = 0;
    for (at, _) in text.match_indices(word) {
        let end = at + word.len();
        let alone = !text[..at].chars().next_back().is_some_and(part_of_name)
            && !text[end..].chars().next().is_some_and(part_of_name);
        if alone {
            redacted.push_str(&text[rest..at]);
            redacted.push_str(REDACTED);
            rest = end;
        }
    }
    redacted.push_str(&text[rest..]);
    redacted
}

#[cfg(test)]
mod tests {
    use coordinator_client::ForTask;
    use serde_json::json;

    use super::*;

    fn settings() -> LmsSettings {
        serde_json::from_value(json!({
            "url": "https://lms.example.com/",
            "client_id": "coordinator",
            "client_secret": "s3cret-value",
            "timeout": "5s",
        }))
        .unwrap()
    }

    #[test]
    fn the_service_config_sends_the_credentials_in_the_form_for_a_jwt() {
        let config = LmsClient::service_config(&settings()).unwrap();
        assert_eq!(config.name, "lms");
        assert_eq!(config.timeout, std::time::Duration::from_secs(5));
        let Auth::OAuth2(oauth) = &config.auth else {
            panic!("{:?}", config.auth)
        };
        assert_eq!(
            oauth.token_url,
            "https://lms.example.com/oauth2/access_token"
        );
        assert_eq!(oauth.client_id, "coordinator");
        assert_eq!(oauth.credentials, Credentials::Body);
        assert_eq!(oauth.extra, [("token_type".to_owned(), "jwt".to_owned())]);
        assert!(!format!("{config:?}").contains("s3cret-value"));
    }

    #[test]
    fn missing_settings_are_all_named_with_their_variables() {
        let e = LmsClient::new(&LmsSettings::default()).unwrap_err();
        let text = e.to_string();
        for setting in ["url", "client_id", "client_secret"] {
            assert!(
                text.contains(&format!(
                    "set [extension.lms] {setting} (COORDINATOR__EXTENSION__LMS__"
                )),
                "{text}"
            );
        }
        let bad = LmsSettings {
            url: Some("lms.example.com".into()),
            ..settings()
        };
        let text = LmsClient::new(&bad).unwrap_err().to_string();
        assert!(text.contains("not an absolute http"), "{text}");
        assert!(text.contains("check [extension.lms] url"), "{text}");
    }

    #[tokio::test]
    async fn an_unconfigured_client_fails_every_call_permanently_saying_what_to_set() {
        let why = LmsClient::new(&LmsSettings::default()).unwrap_err();
        let lms = LmsClient::unconfigured(&why);
        assert!(!lms.is_configured());
        let e = lms
            .enroll(&Enrollment::new("ada", "course-v1:a+b+c", "verified"))
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("set [extension.lms] url (COORDINATOR__EXTENSION__LMS__URL)"),
            "{e}"
        );
        assert!(matches!(
            Err::<(), _>(e).for_task().unwrap_err(),
            TaskError::Abort(_)
        ));
        assert!(lms.deactivate_user("ada").await.is_err());
    }

    #[test]
    fn the_enrollment_body_is_the_enrollment_apis() {
        let enrollment = Enrollment {
            email_opt_in: true,
            ..Enrollment::new("ada", "course-v1:edX+DemoX+T1", "verified").attribute(
                "order",
                "order_number",
                "2U-1",
            )
        };
        assert_eq!(
            serde_json::to_value(EnrollmentBody::from(&enrollment)).unwrap(),
            json!({
                "user": "ada",
                "mode": "verified",
                "is_active": true,
                "course_details": {"course_id": "course-v1:edX+DemoX+T1"},
                "email_opt_in": true,
                "enrollment_attributes": [
                    {"namespace": "order", "name": "order_number", "value": "2U-1"}
                ],
            })
        );
    }

    #[test]
    fn requests_never_show_the_username() {
        let enrollment = Enrollment::new("ada.lovelace", "course-v1:a+b+c", "verified");
        assert!(!format!("{enrollment:?}").contains("ada.lovelace"));
        let entitlement = EntitlementRequest {
            username: Personal::new("ada.lovelace".into()),
            course_uuid: "c".into(),
            mode: "verified".into(),
            order_number: "2U-1".into(),
            email_opt_in: false,
        };
        assert!(!format!("{entitlement:?}").contains("ada.lovelace"));
    }

    #[test]
    fn the_username_is_taken_out_of_the_lms_messages_where_it_stands_alone() {
        assert_eq!(
            redact_word("The user ada does not exist.", "ada"),
            "The user [redacted] does not exist."
        );
        assert_eq!(
            redact_word("ada: no such user 'ada'; adams and ada_2 are others", "ada"),
            "[redacted]: no such user '[redacted]'; adams and ada_2 are others"
        );
        assert_eq!(redact_word("a user", "a"), "a user");
        let refused = CallError::Rejected {
            service: SERVICE,
            method: "POST",
            route: DEACTIVATE_ROUTE,
            status: 404,
            message: "User zoë.l not found.".into(),
            code: None,
        };
        let text = without(refused, "zoë.l").to_string();
        assert!(text.ends_with("User [redacted] not found."), "{text}");
    }
}
