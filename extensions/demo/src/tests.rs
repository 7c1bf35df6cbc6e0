use coordinator::prelude::*;
use coordinator::testing::{TestCoordinator, check_extension_in};

use super::*;

const DEFAULT_CONFIG: &str = include_str!("../../../config/default.toml");

/// The coordinator binary's own sections of its configuration file.
const BINARY_SECTIONS: &[&str] = &["server", "auth", "log"];

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

fn order() -> OrderPlaced {
    OrderPlaced {
        order_number: "EDX-100001".into(),
        lms_user_id: 12345,
        email: Personal::new("ada@example.com".into()),
        course_run_key: "course-v1:edX+DemoX+T1".into(),
        amount_cents: 4900,
    }
}

fn harness(state: &DemoState) -> TestCoordinator {
    TestCoordinator::builder()
        .extension(DemoExtension::with_state(state.clone()))
        .with_store(coordinator_sqlite::testing::temporary())
        .recorder::<LearnerEnrolled>("testing.saw_enrollment")
        .host_sections(BINARY_SECTIONS)
        .wiring(&DEFAULT_CONFIG.replace(
            "\"demo.learner_enrolled\" = [\"demo.welcome_learner\"]",
            "\"demo.learner_enrolled\" = [\"demo.welcome_learner\", \"testing.saw_enrollment\"]",
        ))
        .build()
}

#[test]
fn passes_the_standard_extension_checks_with_the_default_configuration() {
    let problems = check_extension_in(DemoExtension::default(), DEFAULT_CONFIG, BINARY_SECTIONS);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[tokio::test]
async fn an_order_enrolls_the_learner_while_the_failing_and_panicking_handlers_are_reported() {
    let state = DemoState::default();
    let t = harness(&state);
    let report = t.send(&ORDER_PLACED, order()).await;

    assert_eq!(report.handlers.len(), 4);
    let enroll = report.run("demo.enroll_learner").unwrap();
    let Outcome::Ok {
        result: Some(task_id),
    } = &enroll.outcome
    else {
        panic!("enroll_learner answers with the id of the task it enqueued: {enroll:?}");
    };
    assert!(uuid_like(task_id), "{task_id}");
    assert_eq!(
        report.run("demo.notify_unreachable_crm").unwrap().outcome,
        Outcome::Error {
            chain: vec![
                "could not notify the CRM about order EDX-100001".into(),
                "connection refused".into()
            ]
        }
    );
    match &report.run("demo.audit_with_bug").unwrap().outcome {
        Outcome::Panicked { message, location } => {
            assert_eq!(message, "audit trail is empty for order EDX-100001");
            assert!(
                location.as_deref().unwrap().contains("handlers.rs"),
                "{location:?}"
            );
        }
        other => panic!("expected a panic, got {other:?}"),
    }

    assert!(
        state.enrollments().is_empty(),
        "enrolling is the task's work, not the handler's"
    );
    let runs = t.run_tasks().await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(state.enrollments().len(), 1);
    let seen = t.seen::<LearnerEnrolled>("testing.saw_enrollment");
    assert_eq!(seen.len(), 1, "the follow-up signal reached its handlers");
    assert_eq!(seen[0].order_number, "EDX-100001");
}

#[tokio::test]
async fn the_report_never_contains_personal_data() {
    let t = harness(&DemoState::default());
    let report = t.send(&ORDER_PLACED, order()).await;
    let json = serde_json::to_string(&report).unwrap();
    assert!(!json.contains("ada@example.com"), "{json}");
}

#[tokio::test]
async fn a_refund_revokes_the_seat_it_paid_for() {
    let state = DemoState::default();
    let t = harness(&state);
    t.send(&ORDER_PLACED, order()).await;
    t.run_tasks().await;
    let report = t
        .send(
            &PAYMENT_REFUNDED,
            PaymentRefunded {
                order_number: "EDX-100001".into(),
                refund_id: "re_1".into(),
                amount_cents: 4900,
            },
        )
        .await;
    assert!(report.all_ok(), "{report:?}");
    assert_eq!(
        report.run("demo.revoke_seat").unwrap().outcome,
        Outcome::Ok {
            result: Some("revoked 1 seat(s)".into())
        }
    );
    assert!(!state.enrollments()[0].active);
}

fn request(country: &str) -> PaymentPageRequest {
    PaymentPageRequest {
        sku: "SKU-1".into(),
        lms_user_id: 1,
        country: country.into(),
        processor: None,
        redirect_url: None,
        blocked_reason: None,
    }
}

#[tokio::test]
async fn the_payment_page_filter_chooses_a_processor_and_builds_the_url() {
    let t = harness(&DemoState::default());
    let run = t
        .run_filter(&PAYMENT_PAGE_REDIRECT_REQUESTED, request("IN"))
        .await
        .unwrap();
    assert_eq!(run.halted_by, None);
    assert_eq!(run.steps.len(), 3);
    assert_eq!(
        run.data.redirect_url.as_deref(),
        Some("https://pay.sandbox.invalid/paypal/checkout?sku=SKU-1")
    );
}

#[tokio::test]
async fn the_payment_page_filter_halts_for_embargoed_countries() {
    let t = harness(&DemoState::default());
    let run = t
        .run_filter(&PAYMENT_PAGE_REDIRECT_REQUESTED, request("KP"))
        .await
        .unwrap();
    assert_eq!(run.halted_by, Some("demo.block_embargoed_country"));
    assert_eq!(run.steps.len(), 1);
    assert_eq!(run.data.redirect_url, None);
    assert!(run.data.blocked_reason.unwrap().contains("KP"));
}

#[tokio::test]
async fn a_misordered_pipeline_fails_naming_the_step() {
    let t = TestCoordinator::builder()
        .extension(DemoExtension::default())
        .wiring(
            r#"[filters."demo.payment_page_redirect_requested"]
               pipeline = ["demo.build_redirect_url"]"#,
        )
        .build();
    let err = t
        .run_filter(&PAYMENT_PAGE_REDIRECT_REQUESTED, request("FR"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "filter \"demo.payment_page_redirect_requested\" failed at step \"demo.build_redirect_url\": \
         no payment processor was chosen for SKU SKU-1; put demo.choose_processor before demo.build_redirect_url in the pipeline"
    );
}

#[tokio::test]
async fn posting_an_order_sends_the_signal_and_answers_with_the_dispatch() {
    let state = DemoState::default();
    let t = harness(&state);
    let (status, body) = t
        .call(
            "POST",
            "/api/demo/orders",
            Some(serde_json::json!({
                "order_number": "EDX-7", "lms_user_id": 7, "email": "ada@example.com",
                "course_run_key": "course-v1:edX+DemoX+T1", "amount_cents": 100
            })),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["signal"], "demo.order_placed");
    let statuses: Vec<&str> = body["handlers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["ok", "ok", "error", "panicked"]);
    t.run_tasks().await;
    assert_eq!(state.enrollments()[0].order_number, "EDX-7");
}

#[tokio::test]
async fn a_malformed_order_is_a_problem_naming_the_field() {
    let t = harness(&DemoState::default());
    let (status, body) = t
        .call(
            "POST",
            "/api/demo/orders",
            Some(serde_json::json!({"order_number": "EDX-7"})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("missing field `lms_user_id`"),
        "{body}"
    );
}

#[tokio::test]
async fn the_payment_page_route_answers_or_refuses() {
    let t = harness(&DemoState::default());
    let (status, body) = t
        .call(
            "POST",
            "/api/demo/payment-page",
            Some(serde_json::json!({"sku": "S", "lms_user_id": 1, "country": "FR"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["processor"], "stripe");
    let (status, body) = t
        .call(
            "POST",
            "/api/demo/payment-page",
            Some(serde_json::json!({"sku": "S", "lms_user_id": 1, "country": "KP"})),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["detail"], "payments from KP are not accepted");
}

#[tokio::test]
async fn announcing_the_same_order_twice_enqueues_one_enrollment() {
    let state = DemoState::default();
    let t = harness(&state);
    let first = t.send(&ORDER_PLACED, order()).await;
    let second = t.send(&ORDER_PLACED, order()).await;
    assert_eq!(
        first.run("demo.enroll_learner").unwrap().outcome,
        second.run("demo.enroll_learner").unwrap().outcome,
        "the unique key returns the pending task's id"
    );
    t.run_tasks().await;
    assert_eq!(state.enrollments().len(), 1);
}

const SECRET: &str = "whsec_test";

fn webhook_harness(state: &DemoState, secret: Option<&str>) -> TestCoordinator {
    let settings = secret.map_or(String::new(), |s| {
        format!("[extension.demo]\nwebhook_secret = \"{s}\"\n")
    });
    TestCoordinator::builder()
        .extension(DemoExtension::with_state(state.clone()))
        .with_store(coordinator_sqlite::testing::temporary())
        .host_sections(BINARY_SECTIONS)
        .wiring(&format!("{DEFAULT_CONFIG}\n{settings}"))
        .build()
}

fn refund_event(id: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": id,
        "type": "payment.refunded",
        "refund": {"order_number": "EDX-100001", "refund_id": "re_9", "amount_cents": 4900}
    }))
    .unwrap()
}

fn webhook_request(
    body: &[u8],
    signature: Option<String>,
) -> coordinator::http::Request<coordinator::http::Body> {
    let mut request = coordinator::http::Request::builder()
        .method("POST")
        .uri("/api/demo/webhooks/payments")
        .header("content-type", "application/json");
    if let Some(signature) = signature {
        request = request.header("x-demo-signature", signature);
    }
    request
        .body(coordinator::http::Body::from(body.to_vec()))
        .unwrap()
}

#[tokio::test]
async fn a_webhook_delivered_three_times_at_once_is_handled_once() {
    let state = DemoState::default();
    let t = webhook_harness(&state, Some(SECRET));
    t.send(&ORDER_PLACED, order()).await;
    t.run_tasks().await;
    assert!(state.enrollments()[0].active);

    let body = refund_event("evt_1");
    let deliveries = (0..3).map(|_| t.request(webhook_request(&body, Some(sign(SECRET, &body)))));
    let answers = futures_util::future::join_all(deliveries).await;
    let mut statuses: Vec<u16> = answers.iter().map(|(s, _)| s.as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 202], "{answers:?}");
    assert_eq!(
        answers
            .iter()
            .filter(|(_, b)| b["first_delivery"] == true)
            .count(),
        1
    );

    let runs = t.run_tasks().await;
    assert_eq!(runs.len(), 1, "one task for three deliveries: {runs:?}");
    assert!(
        !state.enrollments()[0].active,
        "the refund revoked the seat"
    );
}

#[tokio::test]
async fn a_webhook_with_a_bad_signature_is_refused() {
    let t = webhook_harness(&DemoState::default(), Some(SECRET));
    let body = refund_event("evt_2");
    let (status, problem) = t
        .request(webhook_request(&body, Some(sign("wrong", &body))))
        .await;
    assert_eq!(status, 401, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("does not match"),
        "{problem}"
    );
    let (status, problem) = t.request(webhook_request(&body, None)).await;
    assert_eq!(status, 401, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("missing X-Demo-Signature"),
        "{problem}"
    );
    assert!(t.run_tasks().await.is_empty());
}

#[tokio::test]
async fn a_webhook_without_a_configured_secret_says_how_to_set_it() {
    let t = webhook_harness(&DemoState::default(), None);
    let body = refund_event("evt_3");
    let (status, problem) = t
        .request(webhook_request(&body, Some(sign(SECRET, &body))))
        .await;
    assert_eq!(status, 503, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("COORDINATOR__EXTENSION__DEMO__WEBHOOK_SECRET"),
        "{problem}"
    );
}
