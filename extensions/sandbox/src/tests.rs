//! The sandbox's routes through the framework's harness.

mod commercetools;

use coordinator::http::{HeaderValue, Request, header};
use coordinator::testing::{TestCoordinator, check_extension};
use serde_json::json;

use super::*;

fn sandbox() -> (TestCoordinator, SandboxState) {
    let state = SandboxState::default();
    let t = TestCoordinator::builder()
        .extension(SandboxExtension::with_state(state.clone()))
        .wiring("")
        .build();
    (t, state)
}

async fn lms_post(
    t: &TestCoordinator,
    path: &str,
    body: serde_json::Value,
    token: bool,
) -> (u16, serde_json::Value) {
    let mut request = Request::builder()
        .method("POST")
        .uri(format!("/api/sandbox{path}"))
        .header(header::CONTENT_TYPE, "application/json");
    if token {
        request = request.header(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("JWT {LMS_TOKEN}")).unwrap(),
        );
    }
    let (status, body) = t
        .request(request.body(body.to_string().into()).unwrap())
        .await;
    (status.as_u16(), body)
}

fn enrollment() -> serde_json::Value {
    json!({"user": "ada", "mode": "verified", "is_active": true,
           "course_details": {"course_id": "course-v1:edX+DemoX+T1"}})
}

#[test]
fn passes_the_standard_extension_checks() {
    assert!(check_extension(SandboxExtension::default(), "").is_empty());
}

#[tokio::test]
async fn the_fake_lms_enrolls_with_its_token_and_records_it() {
    let (t, state) = sandbox();
    let (status, token) = lms_post(&t, "/lms/oauth2/access_token", json!({}), false).await;
    assert_eq!(status, 200);
    assert_eq!(token["token_type"], "JWT");
    let (status, _) = lms_post(&t, "/lms/api/enrollment/v1/enrollment", enrollment(), false).await;
    assert_eq!(status, 401, "no token");
    let (status, answer) =
        lms_post(&t, "/lms/api/enrollment/v1/enrollment", enrollment(), true).await;
    assert_eq!(status, 200);
    assert_eq!(
        answer["course_details"]["course_id"],
        "course-v1:edX+DemoX+T1"
    );
    let records = state.records();
    assert!(
        records
            .lms
            .enrollments
            .contains_key("ada course-v1:edX+DemoX+T1")
    );
    let (status, problem) = lms_post(
        &t,
        "/lms/api/enrollment/v1/enrollment",
        json!({"user": "ada"}),
        true,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("course_details/course_id")
    );
}

#[tokio::test]
async fn knobs_make_the_next_calls_fail_then_the_service_recovers() {
    let (t, state) = sandbox();
    let (status, _) = t
        .call(
            "POST",
            "/api/sandbox/_knobs/lms",
            Some(json!({"fail_next": 2, "status": 503})),
        )
        .await;
    assert_eq!(status, 200);
    for _ in 0..2 {
        let (status, _) =
            lms_post(&t, "/lms/api/enrollment/v1/enrollment", enrollment(), true).await;
        assert_eq!(status, 503);
    }
    let (status, _) = lms_post(&t, "/lms/api/enrollment/v1/enrollment", enrollment(), true).await;
    assert_eq!(status, 200);
    assert!(state.records().knobs.is_empty(), "a used-up knob is gone");

    // A permanent refusal, with the LMS's message.
    t.call(
        "POST",
        "/api/sandbox/_knobs/lms",
        Some(json!({"fail_always": true, "status": 400, "message": "Course mode is expired"})),
    )
    .await;
    let (status, problem) =
        lms_post(&t, "/lms/api/enrollment/v1/enrollment", enrollment(), true).await;
    assert_eq!(status, 400);
    assert_eq!(problem["detail"], "Course mode is expired");
    let (status, _) = t.call("DELETE", "/api/sandbox/_knobs/lms", None).await;
    assert_eq!(status, 204);
    let (status, _) = lms_post(&t, "/lms/api/enrollment/v1/enrollment", enrollment(), true).await;
    assert_eq!(status, 200);

    let (status, problem) = t
        .call("POST", "/api/sandbox/_knobs/stripe", Some(json!({})))
        .await;
    assert_eq!(status, 404);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("lms, commercetools, fulfillment")
    );
    let (status, _) = t
        .call(
            "POST",
            "/api/sandbox/_knobs/lms",
            Some(json!({"status": 200})),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn entitlements_get_a_uuid_and_deactivations_are_recorded() {
    let (t, state) = sandbox();
    let (status, answer) = lms_post(
        &t,
        "/lms/api/entitlements/v1/entitlements/",
        json!({"user": "ada", "course_uuid": "c0ffee", "mode": "verified", "order_number": "EDX-1"}),
        true,
    )
    .await;
    assert_eq!(status, 201);
    let uuid = answer["uuid"].as_str().unwrap();
    assert!(state.records().lms.entitlements.contains_key(uuid));
    let (status, _) = lms_post(
        &t,
        "/lms/api/user/v1/accounts/ada/deactivate/",
        json!({}),
        true,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(state.records().lms.deactivated, ["ada"]);
    let (status, records) = t.call("GET", "/api/sandbox/_state", None).await;
    assert_eq!(status, 200);
    assert_eq!(records["lms"]["deactivated"][0], "ada");
}

#[tokio::test]
async fn the_fake_fulfillment_service_records_what_it_is_sent() {
    let (t, state) = sandbox();
    let (status, _) = t
        .call(
            "POST",
            "/api/sandbox/fulfillment/api/fulfill-order/",
            Some(json!({"order_number": "EDX-1"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(state.records().fulfillment.fulfilled.len(), 1);
}
