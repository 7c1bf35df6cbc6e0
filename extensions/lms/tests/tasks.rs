//! The LMS tasks end to end: enqueued in a coordinator with a real (SQLite) store, run by the
//! test worker, calling a fake LMS through the client the extension made from its settings.

use coordinator::prelude::*;
use coordinator::task::TaskState;
use coordinator::testing::{FakeService, Reply, TestCoordinator};
use coordinator_lms::{
    DEACTIVATE_ROUTE, DEACTIVATE_USER, DeactivateUser, ENROLL_IN_COURSE, ENROLLMENT_ROUTE,
    ENTITLEMENTS_ROUTE, EnrollInCourse, FulfillmentCompleted, GRANT_ENTITLEMENT, GrantEntitlement,
    LmsExtension,
};
use serde_json::json;

const TOKEN_PATH: &str = "/oauth2/access_token";
const EXPIRED_MODE: &str = "The [verified] course mode is expired or otherwise unavailable for \
                            course run [course-v1:edX+DemoX+Demo_Course].";

/// A fake LMS that hands out JWTs.
async fn fake_lms() -> FakeService {
    let fake = FakeService::start().await;
    fake.on("POST", TOKEN_PATH).reply(Reply::json(
        200,
        json!({"access_token": "jwt-1", "token_type": "JWT", "expires_in": 3600}),
    ));
    fake
}

/// A coordinator with the LMS extension configured for `lms`.
fn harness(lms: &FakeService) -> TestCoordinator {
    TestCoordinator::builder()
        .extension(LmsExtension)
        .with_store(coordinator_sqlite::testing::temporary())
        .wiring(&format!(
            r#"
            [extension.lms]
            url = "{}"
            client_id = "coordinator-client"
            client_secret = "s3cret-value"
            timeout = "2s"
            "#,
            lms.url()
        ))
        .build()
}

fn enroll_in_course() -> EnrollInCourse {
    EnrollInCourse {
        lms_user_id: 4,
        username: Personal::new("ada_lovelace".into()),
        course_run_key: "course-v1:edX+DemoX+Demo_Course".into(),
        mode: "verified".into(),
        email_opt_in: true,
        order_number: "2U-100001".into(),
        order_id: "61ec1afa-1b0e-4234-ae28-f997728054fa".into(),
        line_item_id: "822d77c4-00a6-4fb9-909b-094ef0b8c4b9".into(),
        date_placed: "2024-05-01T12:00:00Z".into(),
        source_system: "commercetools".into(),
        credit_provider_id: None,
    }
}

#[tokio::test]
async fn an_enrollment_task_enrolls_the_learner_through_the_lms() {
    let lms = fake_lms().await;
    lms.on("POST", ENROLLMENT_ROUTE).reply(Reply::json(
        200,
        json!({"mode": "verified", "is_active": true, "user": "ada_lovelace",
               "course_details": {"course_id": "course-v1:edX+DemoX+Demo_Course"}}),
    ));
    let t = harness(&lms);
    let id = t
        .context()
        .enqueue(&ENROLL_IN_COURSE, enroll_in_course())
        .await
        .unwrap();

    let runs = t.run_tasks().await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].status, "succeeded", "{runs:?}");
    assert_eq!(
        runs[0].result.as_deref(),
        Some(
            "user 4 enrolled in course-v1:edX+DemoX+Demo_Course as verified (active) for order \
             2U-100001"
        )
    );

    let calls = lms.requests_to("POST", ENROLLMENT_ROUTE);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].header("authorization"), Some("JWT jwt-1"));
    let body = calls[0].body_json();
    assert_eq!(body["user"], "ada_lovelace");
    assert_eq!(body["email_opt_in"], true);
    assert_eq!(
        body["enrollment_attributes"][3],
        json!({"namespace": "order", "name": "date_placed", "value": "2024-05-01T12:00:00Z"})
    );

    // The stored task shows no username.
    let task = t.store().get_task(id).await.unwrap().unwrap();
    assert_eq!(task.state, TaskState::Succeeded);
    let shown = t.coordinator().redact_task_payload(&task);
    assert_eq!(shown["username"], "[redacted]", "{shown}");
}

#[tokio::test]
async fn a_refused_enrollment_is_dead_at_once_with_the_lms_message() {
    let lms = fake_lms().await;
    lms.on("POST", ENROLLMENT_ROUTE)
        .reply(Reply::json(400, json!({"message": EXPIRED_MODE})));
    let t = harness(&lms);
    let id = t
        .context()
        .enqueue(&ENROLL_IN_COURSE, enroll_in_course())
        .await
        .unwrap();

    let runs = t.run_tasks().await;
    assert_eq!(runs.len(), 1, "not retried: {runs:?}");
    assert_eq!(runs[0].status, "dead");
    let expected =
        format!("lms: POST {ENROLLMENT_ROUTE} was refused with status 400: {EXPIRED_MODE}");
    assert_eq!(runs[0].error, [expected.as_str()]);

    let task = t.store().get_task(id).await.unwrap().unwrap();
    assert_eq!(task.state, TaskState::Dead);
    assert_eq!(task.attempts, 1);
    assert_eq!(task.last_error, [expected]);
}

#[tokio::test]
async fn an_lms_that_fails_leaves_the_task_to_retry_later() {
    let lms = fake_lms().await;
    lms.on("POST", ENROLLMENT_ROUTE)
        .reply(Reply::text(503, "Service Unavailable"));
    let t = harness(&lms);
    let id = t
        .context()
        .enqueue(&ENROLL_IN_COURSE, enroll_in_course())
        .await
        .unwrap();

    let runs = t.run_tasks().await;
    // The retry waits its backoff (at least 2.5 s): not run again now.
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].status, "retrying");
    assert!(runs[0].error[0].contains("status 503"), "{runs:?}");
    let task = t.store().get_task(id).await.unwrap().unwrap();
    assert_eq!(task.state, TaskState::Retrying);
    assert_eq!(task.max_attempts, 5);
}

#[tokio::test]
async fn an_entitlement_task_names_the_entitlement_the_lms_granted() {
    let lms = fake_lms().await;
    lms.on("POST", ENTITLEMENTS_ROUTE).reply(Reply::json(
        201,
        json!({"uuid": "6a2d5c1e-7b3f-4f0e-9c8d-1e2f3a4b5c6d", "mode": "verified"}),
    ));
    let t = harness(&lms);
    t.context()
        .enqueue(
            &GRANT_ENTITLEMENT,
            GrantEntitlement {
                lms_user_id: 4,
                username: Personal::new("ada_lovelace".into()),
                course_uuid: "2f3b1a3c-8e0d-4c8a-9a3f-5b6f0d6e9c11".into(),
                mode: "verified".into(),
                email_opt_in: false,
                order_number: "2U-100001".into(),
                order_id: "61ec1afa".into(),
                line_item_id: "822d77c4".into(),
            },
        )
        .await
        .unwrap();
    let runs = t.run_tasks().await;
    assert_eq!(runs[0].status, "succeeded", "{runs:?}");
    assert_eq!(
        runs[0].result.as_deref(),
        Some(
            "entitlement 6a2d5c1e-7b3f-4f0e-9c8d-1e2f3a4b5c6d granted to user 4 for course \
             2f3b1a3c-8e0d-4c8a-9a3f-5b6f0d6e9c11 for order 2U-100001"
        )
    );
    assert_eq!(
        lms.requests_to("POST", ENTITLEMENTS_ROUTE)[0].body_json()["course_uuid"],
        "2f3b1a3c-8e0d-4c8a-9a3f-5b6f0d6e9c11"
    );
}

#[tokio::test]
async fn a_deactivation_of_an_unknown_user_is_dead_without_naming_them() {
    let lms = fake_lms().await;
    lms.on("POST", DEACTIVATE_ROUTE).reply(Reply::json(
        404,
        json!({"detail": "User ada_lovelace not found."}),
    ));
    let t = harness(&lms);
    t.context()
        .enqueue(
            &DEACTIVATE_USER,
            DeactivateUser {
                username: Personal::new("ada_lovelace".into()),
                lms_user_id: Some(4),
                order_number: Some("2U-100001".into()),
            },
        )
        .await
        .unwrap();
    let runs = t.run_tasks().await;
    assert_eq!(runs[0].status, "dead", "{runs:?}");
    assert_eq!(
        runs[0].error,
        [format!(
            "lms: POST {DEACTIVATE_ROUTE} was refused with status 404: User [redacted] not found."
        )]
    );
    assert_eq!(
        lms.requests_to("POST", DEACTIVATE_ROUTE)[0].path,
        "/api/user/v1/accounts/ada_lovelace/deactivate/"
    );
}

#[tokio::test]
async fn a_deactivation_task_deactivates_the_account() {
    let lms = fake_lms().await;
    lms.on("POST", DEACTIVATE_ROUTE).reply(Reply::status(204));
    let t = harness(&lms);
    t.context()
        .enqueue(
            &DEACTIVATE_USER,
            DeactivateUser {
                username: Personal::new("ada_lovelace".into()),
                lms_user_id: Some(4),
                order_number: Some("2U-100001".into()),
            },
        )
        .await
        .unwrap();
    let runs = t.run_tasks().await;
    assert_eq!(
        runs[0].result.as_deref(),
        Some("LMS account of user 4 deactivated after order 2U-100001 failed its sanctions check")
    );
}

#[test]
fn without_settings_the_coordinator_refuses_to_start_naming_each() {
    let validation = TestCoordinator::builder()
        .extension(LmsExtension)
        .validate();
    assert!(!validation.is_valid());
    let text = validation.to_string();
    for setting in [
        "set [extension.lms] url (COORDINATOR__EXTENSION__LMS__URL)",
        "set [extension.lms] client_id (COORDINATOR__EXTENSION__LMS__CLIENT_ID)",
        "set [extension.lms] client_secret (COORDINATOR__EXTENSION__LMS__CLIENT_SECRET)",
    ] {
        assert!(text.contains(setting), "{text}");
    }
}

/// A coordinator with the LMS extension configured for `lms`, recording what
/// `lms.fulfillment_completed` carries.
fn recording(lms: &FakeService) -> TestCoordinator {
    TestCoordinator::builder()
        .extension(LmsExtension)
        .with_store(coordinator_sqlite::testing::temporary())
        .recorder::<FulfillmentCompleted>("testing.saw_completion")
        .wiring(&format!(
            r#"
            [signals]
            "lms.fulfillment_completed" = ["testing.saw_completion"]
            [extension.lms]
            url = "{}"
            client_id = "coordinator-client"
            client_secret = "s3cret-value"
            timeout = "2s"
            "#,
            lms.url()
        ))
        .build()
}

#[tokio::test]
async fn a_fulfilled_line_item_is_reported_complete_once_the_lms_enrolled() {
    let lms = fake_lms().await;
    lms.on("POST", ENROLLMENT_ROUTE).reply(Reply::json(
        200,
        json!({"mode": "verified", "is_active": true}),
    ));
    let t = recording(&lms);
    t.context()
        .enqueue(&ENROLL_IN_COURSE, enroll_in_course())
        .await
        .unwrap();
    t.run_tasks().await;
    let seen = t.seen::<FulfillmentCompleted>("testing.saw_completion");
    assert_eq!(seen.len(), 1);
    assert!(seen[0].succeeded && seen[0].error.is_none());
    assert_eq!(seen[0].line_item_id, "822d77c4-00a6-4fb9-909b-094ef0b8c4b9");
    assert_eq!(seen[0].fulfillment_type, "enrollment");
}

#[tokio::test]
async fn a_refused_line_item_is_reported_failed_with_the_lms_message() {
    let lms = fake_lms().await;
    lms.on("POST", ENROLLMENT_ROUTE)
        .reply(Reply::json(400, json!({"message": EXPIRED_MODE})));
    let t = recording(&lms);
    t.context()
        .enqueue(&ENROLL_IN_COURSE, enroll_in_course())
        .await
        .unwrap();
    let runs = t.run_tasks().await;
    assert_eq!(runs[0].status, "dead", "{runs:?}");
    let seen = t.seen::<FulfillmentCompleted>("testing.saw_completion");
    assert_eq!(seen.len(), 1);
    assert!(!seen[0].succeeded);
    assert!(
        seen[0]
            .error
            .as_deref()
            .unwrap()
            .contains("course mode is expired"),
        "{:?}",
        seen[0].error
    );
}

#[tokio::test]
async fn a_transient_failure_with_attempts_left_reports_nothing_yet() {
    let lms = fake_lms().await;
    lms.on("POST", ENROLLMENT_ROUTE).reply(Reply::status(503));
    let t = recording(&lms);
    t.context()
        .enqueue(&ENROLL_IN_COURSE, enroll_in_course())
        .await
        .unwrap();
    let runs = t.run_tasks().await;
    assert_eq!(runs[0].status, "retrying", "{runs:?}");
    assert!(
        t.seen::<FulfillmentCompleted>("testing.saw_completion")
            .is_empty()
    );
}

#[tokio::test]
async fn an_entitlement_is_reported_with_its_uuid() {
    let lms = fake_lms().await;
    lms.on("POST", ENTITLEMENTS_ROUTE)
        .reply(Reply::json(201, json!({"uuid": "e-1", "mode": "verified"})));
    let t = recording(&lms);
    t.context()
        .enqueue(
            &GRANT_ENTITLEMENT,
            GrantEntitlement {
                lms_user_id: 4,
                username: Personal::new("ada_lovelace".into()),
                course_uuid: "c-1".into(),
                mode: "verified".into(),
                email_opt_in: false,
                order_number: "2U-100001".into(),
                order_id: "o-1".into(),
                line_item_id: "li-1".into(),
            },
        )
        .await
        .unwrap();
    t.run_tasks().await;
    let seen = t.seen::<FulfillmentCompleted>("testing.saw_completion");
    assert_eq!(seen[0].entitlement_uuid.as_deref(), Some("e-1"));
    assert!(seen[0].succeeded);
    assert_eq!(
        (seen[0].order_id.as_str(), seen[0].fulfillment_type.as_str()),
        ("o-1", "entitlement")
    );
}
