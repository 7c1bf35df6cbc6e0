//! The LMS client against a fake LMS on a local port: the token exchange, the exact requests
//! of each API, and how each kind of failure ends (retried, final with the LMS's message,
//! postponed).

use std::time::Duration;

use coordinator::config::Secret;
use coordinator::prelude::*;
use coordinator::testing::{FakeService, Reply};
use coordinator_client::{BreakerConfig, CallError, ForTask, TransientKind};
use coordinator_lms::{
    DEACTIVATE_ROUTE, ENROLLMENT_ROUTE, ENTITLEMENTS_ROUTE, Enrollment, EnrollmentResult,
    EntitlementRequest, LmsClient, LmsSettings,
};
use serde_json::json;

const TOKEN_PATH: &str = "/oauth2/access_token";
const COURSE_RUN: &str = "course-v1:edX+DemoX+Demo_Course";
const EXPIRED_MODE: &str = "The [verified] course mode is expired or otherwise unavailable for \
                            course run [course-v1:edX+DemoX+Demo_Course].";

fn jwt_reply(token: &str) -> Reply {
    Reply::json(
        200,
        json!({"access_token": token, "token_type": "JWT", "expires_in": 3600, "scope": "read write"}),
    )
}

/// Settings pointing at `fake`, its token endpoint the LMS's own.
fn settings(fake: &FakeService, timeout: &str) -> LmsSettings {
    serde_json::from_value(json!({
        "url": fake.url(),
        "client_id": "coordinator-client",
        "client_secret": "s3cret-value",
        "timeout": timeout,
    }))
    .unwrap()
}

/// A fake LMS that hands out the token `jwt-1`, and a client of it.
async fn lms() -> (FakeService, LmsClient) {
    let fake = FakeService::start().await;
    fake.on("POST", TOKEN_PATH).reply(jwt_reply("jwt-1"));
    let client = LmsClient::new(&settings(&fake, "2s")).unwrap();
    (fake, client)
}

fn enrollment() -> Enrollment {
    Enrollment::new("ada_lovelace", COURSE_RUN, "verified")
        .attribute("order", "order_number", "2U-100001")
        .attribute("order", "line_item_id", "822d77c4")
}

/// An answer of the enrollment API, as the LMS sends it.
fn enrolled() -> Reply {
    Reply::json(
        200,
        json!({
            "created": "2024-05-01T12:00:01Z",
            "mode": "verified",
            "is_active": true,
            "user": "ada_lovelace",
            "course_details": {
                "course_id": COURSE_RUN,
                "course_name": "Demonstration Course",
                "course_modes": [{"slug": "verified", "name": "Verified Certificate", "min_price": 149}],
                "invite_only": false
            }
        }),
    )
}

fn entitlement_request() -> EntitlementRequest {
    EntitlementRequest {
        username: Personal::new("ada_lovelace".into()),
        course_uuid: "2f3b1a3c-8e0d-4c8a-9a3f-5b6f0d6e9c11".into(),
        mode: "verified".into(),
        order_number: "2U-100001".into(),
        email_opt_in: true,
    }
}

#[tokio::test]
async fn an_enrollment_gets_a_jwt_with_the_credentials_in_the_form_then_posts_the_enrollment() {
    let (fake, lms) = lms().await;
    fake.on("POST", ENROLLMENT_ROUTE).reply(enrolled());

    let result = lms.enroll(&enrollment()).await.unwrap();
    assert_eq!(
        result,
        EnrollmentResult {
            course_run_key: Some(COURSE_RUN.into()),
            mode: Some("verified".into()),
            is_active: Some(true),
        }
    );

    let token = &fake.requests_to("POST", TOKEN_PATH)[0];
    assert_eq!(
        token.header("authorization"),
        None,
        "no HTTP Basic for the LMS"
    );
    assert_eq!(
        token.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let mut form: Vec<String> = token.body_text().split('&').map(str::to_owned).collect();
    form.sort();
    assert_eq!(
        form,
        [
            "client_id=coordinator-client",
            "client_secret=s3cret-value",
            "grant_type=client_credentials",
            "token_type=jwt",
        ]
    );

    let call = &fake.requests_to("POST", ENROLLMENT_ROUTE)[0];
    assert_eq!(call.header("authorization"), Some("JWT jwt-1"));
    assert_eq!(call.header("content-type"), Some("application/json"));
    assert_eq!(call.header("x-edx-api-key"), None);
    assert_eq!(
        call.body_json(),
        json!({
            "user": "ada_lovelace",
            "mode": "verified",
            "is_active": true,
            "course_details": {"course_id": COURSE_RUN},
            "email_opt_in": false,
            "enrollment_attributes": [
                {"namespace": "order", "name": "order_number", "value": "2U-100001"},
                {"namespace": "order", "name": "line_item_id", "value": "822d77c4"}
            ]
        })
    );
}

#[tokio::test]
async fn the_token_is_fetched_once_for_many_calls() {
    let (fake, lms) = lms().await;
    fake.on("POST", ENROLLMENT_ROUTE).reply(enrolled());
    fake.on("POST", ENTITLEMENTS_ROUTE)
        .reply(Reply::json(201, json!({"uuid": "e-1"})));
    lms.enroll(&enrollment()).await.unwrap();
    lms.enroll(&enrollment()).await.unwrap();
    lms.grant_entitlement(&entitlement_request()).await.unwrap();
    assert_eq!(fake.count("POST", TOKEN_PATH), 1);
}

#[tokio::test]
async fn the_api_key_is_sent_with_enrollments_and_entitlements_when_set() {
    let fake = FakeService::start().await;
    fake.on("POST", TOKEN_PATH).reply(jwt_reply("jwt-1"));
    fake.on("POST", ENROLLMENT_ROUTE).reply(enrolled());
    fake.on("POST", ENTITLEMENTS_ROUTE)
        .reply(Reply::json(201, json!({"uuid": "e-1"})));
    let lms = LmsClient::new(&LmsSettings {
        api_key: Some(Secret::new("edx-api-key")),
        ..settings(&fake, "2s")
    })
    .unwrap();
    lms.enroll(&enrollment()).await.unwrap();
    lms.grant_entitlement(&entitlement_request()).await.unwrap();
    for route in [ENROLLMENT_ROUTE, ENTITLEMENTS_ROUTE] {
        let call = &fake.requests_to("POST", route)[0];
        assert_eq!(call.header("x-edx-api-key"), Some("edx-api-key"), "{route}");
    }
}

#[tokio::test]
async fn an_entitlement_is_granted_with_the_entitlement_apis_body_and_its_uuid_kept() {
    let (fake, lms) = lms().await;
    fake.on("POST", ENTITLEMENTS_ROUTE).reply(Reply::json(
        201,
        json!({
            "uuid": "6a2d5c1e-7b3f-4f0e-9c8d-1e2f3a4b5c6d",
            "user": "ada_lovelace",
            "course_uuid": "2f3b1a3c-8e0d-4c8a-9a3f-5b6f0d6e9c11",
            "mode": "verified",
            "order_number": "2U-100001",
            "expired_at": null,
            "enrollment_course_run": null,
            "refund_locked": false,
            "support_details": []
        }),
    ));
    let entitlement = lms.grant_entitlement(&entitlement_request()).await.unwrap();
    assert_eq!(entitlement.uuid, "6a2d5c1e-7b3f-4f0e-9c8d-1e2f3a4b5c6d");
    assert_eq!(entitlement.order_number.as_deref(), Some("2U-100001"));

    let call = &fake.requests_to("POST", ENTITLEMENTS_ROUTE)[0];
    assert_eq!(call.header("authorization"), Some("JWT jwt-1"));
    assert_eq!(
        call.body_json(),
        json!({
            "user": "ada_lovelace",
            "mode": "verified",
            "course_uuid": "2f3b1a3c-8e0d-4c8a-9a3f-5b6f0d6e9c11",
            "order_number": "2U-100001",
            "email_opt_in": true
        })
    );
}

#[tokio::test]
async fn deactivating_posts_to_the_users_path_with_the_username_encoded() {
    let (fake, lms) = lms().await;
    fake.on("POST", DEACTIVATE_ROUTE).reply(Reply::status(204));
    lms.deactivate_user("ada lovelace+1@x").await.unwrap();
    let calls = fake.requests_to("POST", DEACTIVATE_ROUTE);
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].path,
        "/api/user/v1/accounts/ada%20lovelace%2B1%40x/deactivate/"
    );
    assert_eq!(calls[0].header("authorization"), Some("JWT jwt-1"));
    assert!(calls[0].body.is_empty());
    assert_eq!(calls[0].header("x-edx-api-key"), None);
}

#[tokio::test]
async fn a_username_that_is_a_dot_segment_is_refused_before_calling() {
    let (fake, lms) = lms().await;
    for username in ["", "..", " . "] {
        let e = lms.deactivate_user(username).await.unwrap_err();
        assert!(matches!(e, CallError::Request { .. }), "{e:?}");
        assert!(matches!(
            Err::<(), _>(e).for_task().unwrap_err(),
            TaskError::Abort(_)
        ));
    }
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn an_lms_failing_twice_with_503_is_retried_and_then_enrolls() {
    let (fake, lms) = lms().await;
    fake.on("POST", ENROLLMENT_ROUTE)
        .reply_times(2, Reply::text(503, "Service Unavailable"))
        .reply(enrolled());
    for _ in 0..2 {
        let e = lms.enroll(&enrollment()).await.unwrap_err();
        assert!(
            matches!(
                e,
                CallError::Transient {
                    kind: TransientKind::ServerError,
                    status: Some(503),
                    ..
                }
            ),
            "{e:?}"
        );
        let task_error = Err::<(), _>(e).for_task().unwrap_err();
        assert!(matches!(task_error, TaskError::Retry(_)), "{task_error:?}");
        assert!(
            task_error
                .error()
                .to_string()
                .contains("Service Unavailable")
        );
    }
    assert_eq!(
        lms.enroll(&enrollment()).await.unwrap().is_active,
        Some(true)
    );
    assert_eq!(fake.count("POST", ENROLLMENT_ROUTE), 3);
}

#[tokio::test]
async fn a_refused_enrollment_is_final_and_keeps_the_lms_message() {
    let (fake, lms) = lms().await;
    fake.on("POST", ENROLLMENT_ROUTE).reply(Reply::json(
        400,
        json!({"message": EXPIRED_MODE, "course_details": {"course_id": COURSE_RUN}}),
    ));
    let e = lms.enroll(&enrollment()).await.unwrap_err();
    match &e {
        CallError::Rejected {
            status, message, ..
        } => {
            assert_eq!(*status, 400);
            assert_eq!(message, EXPIRED_MODE);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        e.to_string(),
        format!("lms: POST {ENROLLMENT_ROUTE} was refused with status 400: {EXPIRED_MODE}")
    );
    let task_error = Err::<(), _>(e).for_task().unwrap_err();
    assert!(matches!(task_error, TaskError::Abort(_)), "{task_error:?}");
    assert!(
        task_error
            .error()
            .to_string()
            .contains("course mode is expired or otherwise unavailable for course run")
    );
    assert_eq!(fake.count("POST", ENROLLMENT_ROUTE), 1, "not retried");
}

#[tokio::test]
async fn the_lms_error_shapes_all_reach_the_error() {
    let (fake, lms) = lms().await;
    // The enrollment API for an unknown user; DRF's permission and validation errors.
    fake.on("POST", ENROLLMENT_ROUTE).reply(Reply::json(
        406,
        json!({"message": "The user ada_lovelace does not exist."}),
    ));
    fake.on("POST", ENTITLEMENTS_ROUTE).reply(Reply::json(
        400,
        json!({"course_uuid": ["Must be a valid UUID."]}),
    ));
    fake.on("POST", DEACTIVATE_ROUTE).reply(Reply::json(
        403,
        json!({"detail": "You do not have permission to perform this action."}),
    ));
    let enroll = lms.enroll(&enrollment()).await.unwrap_err();
    // The LMS quotes the username; the error keeps the message without it.
    assert!(
        enroll
            .to_string()
            .ends_with("The user [redacted] does not exist."),
        "{enroll}"
    );
    let entitle = lms
        .grant_entitlement(&entitlement_request())
        .await
        .unwrap_err();
    assert!(
        entitle.to_string().contains("Must be a valid UUID."),
        "{entitle}"
    );
    let deactivate = lms.deactivate_user("ada_lovelace").await.unwrap_err();
    assert!(
        deactivate
            .to_string()
            .contains("You do not have permission"),
        "{deactivate}"
    );
    // The route template names the call, never the path with the username.
    assert!(
        deactivate.to_string().contains(DEACTIVATE_ROUTE),
        "{deactivate}"
    );
    for e in [enroll, entitle, deactivate] {
        assert_eq!(e.status().map(|s| s / 100), Some(4));
        assert!(matches!(
            Err::<(), _>(e).for_task().unwrap_err(),
            TaskError::Abort(_)
        ));
    }
}

#[tokio::test]
async fn a_refused_token_is_fetched_again_once_and_the_call_succeeds() {
    let fake = FakeService::start().await;
    fake.on("POST", TOKEN_PATH)
        .reply(jwt_reply("jwt-revoked"))
        .reply(jwt_reply("jwt-fresh"));
    fake.on("POST", ENROLLMENT_ROUTE)
        .reply(Reply::json(401, json!({"detail": "Invalid JWT token."})))
        .reply(enrolled());
    let lms = LmsClient::new(&settings(&fake, "2s")).unwrap();
    lms.enroll(&enrollment()).await.unwrap();
    assert_eq!(fake.count("POST", TOKEN_PATH), 2);
    let auths: Vec<String> = fake
        .requests_to("POST", ENROLLMENT_ROUTE)
        .iter()
        .map(|r| r.header("authorization").unwrap_or_default().to_owned())
        .collect();
    assert_eq!(auths, ["JWT jwt-revoked", "JWT jwt-fresh"]);
}

#[tokio::test]
async fn refused_client_credentials_are_final_and_never_show_the_secret() {
    let fake = FakeService::start().await;
    fake.on("POST", TOKEN_PATH).reply(Reply::json(
        401,
        json!({"error": "invalid_client", "error_description": "Client authentication failed."}),
    ));
    let lms = LmsClient::new(&settings(&fake, "2s")).unwrap();
    let e = lms.enroll(&enrollment()).await.unwrap_err();
    let text = e.to_string();
    assert!(text.contains("Client authentication failed."), "{text}");
    assert!(!text.contains("s3cret-value"), "{text}");
    assert!(matches!(
        Err::<(), _>(e).for_task().unwrap_err(),
        TaskError::Abort(_)
    ));
    assert_eq!(fake.count("POST", ENROLLMENT_ROUTE), 0);
}

#[tokio::test]
async fn a_slow_lms_times_out_at_the_configured_timeout_and_is_retried() {
    let fake = FakeService::start().await;
    fake.on("POST", TOKEN_PATH).reply(jwt_reply("jwt-1"));
    fake.on("POST", ENROLLMENT_ROUTE)
        .reply(enrolled().delay(Duration::from_secs(10)));
    let lms = LmsClient::new(&settings(&fake, "300ms")).unwrap();
    let started = std::time::Instant::now();
    let e = lms.enroll(&enrollment()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(
            e,
            CallError::Transient {
                kind: TransientKind::Timeout,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(matches!(
        Err::<(), _>(e).for_task().unwrap_err(),
        TaskError::Retry(_)
    ));
}

#[tokio::test]
async fn an_undecodable_answer_is_final_and_names_the_field() {
    let (fake, lms) = lms().await;
    fake.on("POST", ENTITLEMENTS_ROUTE)
        .reply(Reply::json(201, json!({"uuid": 42, "mode": "verified"})));
    fake.on("POST", ENROLLMENT_ROUTE)
        .reply(Reply::json(200, json!({"is_active": "yes"})));
    let e = lms
        .grant_entitlement(&entitlement_request())
        .await
        .unwrap_err();
    match &e {
        CallError::Decode { path, .. } => assert_eq!(path, "uuid"),
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("`uuid`"), "{e}");
    assert!(matches!(
        Err::<(), _>(e).for_task().unwrap_err(),
        TaskError::Abort(_)
    ));
    let e = lms.enroll(&enrollment()).await.unwrap_err();
    assert!(e.to_string().contains("`is_active`"), "{e}");
}

#[tokio::test]
async fn an_open_breaker_postpones_the_task_without_calling() {
    let fake = FakeService::start().await;
    fake.on("POST", TOKEN_PATH).reply(jwt_reply("jwt-1"));
    fake.on("POST", ENROLLMENT_ROUTE).reply(Reply::status(502));
    // A service name of its own, so that this breaker is not the other tests' `lms` one.
    let mut config = LmsClient::service_config(&settings(&fake, "2s")).unwrap();
    config.name = "lms-breaker-test";
    let lms = LmsClient::from_config(
        config.breaker(BreakerConfig {
            failures: 1,
            cool_down: Duration::from_secs(60),
        }),
        None,
    )
    .unwrap();
    assert!(lms.enroll(&enrollment()).await.unwrap_err().is_transient());
    let e = lms.enroll(&enrollment()).await.unwrap_err();
    assert!(matches!(e, CallError::Open { .. }), "{e:?}");
    assert!(matches!(
        Err::<(), _>(e).for_task().unwrap_err(),
        TaskError::Postpone(..)
    ));
    assert_eq!(fake.count("POST", ENROLLMENT_ROUTE), 1);
}
