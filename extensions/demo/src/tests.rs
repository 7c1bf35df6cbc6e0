use coordinator::prelude::*;
use coordinator::testing::{TestCoordinator, check_extension_with};

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

/// The extensions the default configuration enables beside the demo.
fn companions() -> Vec<Box<dyn Extension>> {
    vec![
        Box::new(coordinator_commercetools::CommercetoolsExtension),
        Box::new(coordinator_lms::LmsExtension),
        Box::new(coordinator_sandbox::SandboxExtension::default()),
    ]
}

fn harness(state: &DemoState) -> TestCoordinator {
    TestCoordinator::builder()
        .extension(DemoExtension::with_state(state.clone()))
        .extension(coordinator_commercetools::CommercetoolsExtension)
        .extension(coordinator_lms::LmsExtension)
        .extension(coordinator_sandbox::SandboxExtension::default())
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
    let problems = check_extension_with(
        DemoExtension::default(),
        companions(),
        DEFAULT_CONFIG,
        BINARY_SECTIONS,
    );
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The runs of `task` among `runs`.
fn runs_of<'a>(
    runs: &'a [coordinator::testing::TaskRunSummary],
    task: &str,
) -> Vec<&'a coordinator::testing::TaskRunSummary> {
    runs.iter().filter(|r| r.task == task).collect()
}

#[tokio::test]
async fn an_order_stores_one_delivery_per_handler_and_each_runs_on_its_own() {
    let state = DemoState::default();
    let t = harness(&state);
    let report = t.send(&ORDER_PLACED, order()).await;

    // Durable: no handler ran while the signal was sent; each delivery is stored.
    assert_eq!(report.handlers.len(), 4);
    assert!(report.is_stored(), "{report:?}");
    assert!(report.accepted().is_ok());
    assert!(state.enrollments().is_empty());

    let runs = t.run_tasks().await;
    let enroll = runs_of(&runs, "deliver:demo.enroll_learner");
    assert_eq!(enroll.len(), 1, "{runs:?}");
    assert_eq!(enroll[0].status, "succeeded");
    assert!(
        uuid_like(enroll[0].result.as_deref().unwrap()),
        "{enroll:?}"
    );
    let record = runs_of(&runs, "deliver:demo.record_order");
    assert_eq!(
        record[0].result.as_deref(),
        Some("order EDX-100001 for user 12345")
    );
    let crm = runs_of(&runs, "deliver:demo.notify_unreachable_crm");
    assert_eq!(crm[0].status, "retrying");
    assert_eq!(
        crm[0].error,
        [
            "could not notify the CRM about order EDX-100001",
            "connection refused"
        ]
    );
    let audit = runs_of(&runs, "deliver:demo.audit_with_bug");
    assert_eq!(audit[0].status, "retrying");
    assert!(
        audit[0].error[0].contains("audit trail is empty for order EDX-100001"),
        "{audit:?}"
    );
    // The enrollment task the delivery enqueued ran, and sent its follow-up signal.
    assert_eq!(
        runs_of(&runs, "demo.enroll_in_course")[0].status,
        "succeeded"
    );
    assert_eq!(state.enrollments().len(), 1);
    let seen = t.seen::<LearnerEnrolled>("testing.saw_enrollment");
    assert_eq!(seen.len(), 1, "the follow-up signal reached its handlers");
    assert_eq!(seen[0].order_number, "EDX-100001");

    // Each delivery is a task of the dispatch, and its payload shows no personal data.
    let task = t.store().get_task(enroll[0].id).await.unwrap().unwrap();
    assert_eq!(task.origin_dispatch, Some(report.id));
    let shown = t.coordinator().redact_task_payload(&task);
    assert_eq!(shown["payload"]["email"], "[redacted]", "{shown}");
    assert_eq!(shown["signal"], "demo.order_placed");
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
async fn posting_an_order_stores_it_once_and_answers_with_the_deliveries() {
    let state = DemoState::default();
    let t = harness(&state);
    let order = serde_json::json!({
        "order_number": "EDX-7", "lms_user_id": 7, "email": "ada@example.com",
        "course_run_key": "course-v1:edX+DemoX+T1", "amount_cents": 100
    });
    let (status, body) = t
        .call("POST", "/api/demo/orders", Some(order.clone()))
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["signal"], "demo.order_placed");
    assert_eq!(body["duplicate"], false);
    let handlers = body["handlers"].as_array().unwrap();
    assert_eq!(handlers.len(), 4);
    for h in handlers {
        assert_eq!(h["status"], "queued", "{body}");
        assert!(uuid_like(h["task_id"].as_str().unwrap()), "{body}");
    }
    // The same order again (its answer was lost, say): nothing is stored twice.
    let (status, again) = t.call("POST", "/api/demo/orders", Some(order)).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["duplicate"], true);
    let runs = t.run_tasks().await;
    assert_eq!(
        runs_of(&runs, "deliver:demo.enroll_learner").len(),
        1,
        "{runs:?}"
    );
    assert_eq!(state.enrollments()[0].order_number, "EDX-7");
}

#[tokio::test]
async fn an_order_number_that_cannot_be_a_key_is_refused_with_a_400() {
    let t = harness(&DemoState::default());
    for number in ["EDX-\u{0}7", "", "EDX\n7"] {
        let (status, body) = t
            .call(
                "POST",
                "/api/demo/orders",
                Some(serde_json::json!({
                    "order_number": number, "lms_user_id": 7, "email": "a@b.c",
                    "course_run_key": "course-v1:edX+DemoX+T1", "amount_cents": 100
                })),
            )
            .await;
        assert_eq!(status, 400, "{number:?}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains("order_number"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn a_non_durable_order_whose_handler_failed_is_a_503_naming_it() {
    let state = DemoState::default();
    let t = TestCoordinator::builder()
        .extension(DemoExtension::with_state(state.clone()))
        .with_store(coordinator_sqlite::testing::temporary())
        .wiring(
            "[signals]\n\"demo.order_placed\" = [\"demo.record_order\", \"demo.notify_unreachable_crm\"]\n",
        )
        .build();
    let (status, body) = t
        .call(
            "POST",
            "/api/demo/orders",
            Some(serde_json::json!({
                "order_number": "EDX-8", "lms_user_id": 8, "email": "a@b.c",
                "course_run_key": "course-v1:edX+DemoX+T1", "amount_cents": 100
            })),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["handler"], "demo.notify_unreachable_crm", "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("send the request again"),
        "{body}"
    );
    assert!(
        !body["detail"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{body}"
    );
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
    // Lower case and spaces do not slip past the embargo; what is not a country is a 400.
    for country in ["cu", " CU", "ir"] {
        let (status, body) = t
            .call(
                "POST",
                "/api/demo/payment-page",
                Some(serde_json::json!({"sku": "S", "lms_user_id": 1, "country": country})),
            )
            .await;
        assert_eq!(status, 403, "{country:?}: {body}");
    }
    let (status, body) = t
        .call(
            "POST",
            "/api/demo/payment-page",
            Some(serde_json::json!({"sku": "S", "lms_user_id": 1, "country": "XX"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("ISO 3166-1 alpha-2"),
        "{body}"
    );
    // A SKU is one query value, whatever it holds.
    let (status, body) = t
        .call(
            "POST",
            "/api/demo/payment-page",
            Some(serde_json::json!({"sku": "x&amount=0#frag", "lms_user_id": 1, "country": "fr"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["redirect_url"],
        "https://pay.sandbox.invalid/stripe/checkout?sku=x%26amount%3D0%23frag"
    );
}

#[tokio::test]
async fn announcing_the_same_order_twice_enqueues_one_enrollment() {
    let state = DemoState::default();
    let t = harness(&state);
    t.send(&ORDER_PLACED, order()).await;
    t.send(&ORDER_PLACED, order()).await;
    let runs = t.run_tasks().await;
    let enroll = runs_of(&runs, "deliver:demo.enroll_learner");
    assert_eq!(enroll.len(), 2, "{runs:?}");
    assert_eq!(
        enroll[0].result, enroll[1].result,
        "the unique key returns the pending task's id"
    );
    assert_eq!(runs_of(&runs, "demo.enroll_in_course").len(), 1);
    assert_eq!(state.enrollments().len(), 1);
}

const SECRET: &str = "whsec_test";

fn webhook_harness(state: &DemoState, secret: Option<&str>) -> TestCoordinator {
    let settings = secret.map_or(String::new(), |s| {
        format!("[extension.demo]\nwebhook_secret = \"{s}\"\n")
    });
    TestCoordinator::builder()
        .extension(DemoExtension::with_state(state.clone()))
        .extension(coordinator_commercetools::CommercetoolsExtension)
        .extension(coordinator_lms::LmsExtension)
        .extension(coordinator_sandbox::SandboxExtension::default())
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
    let deliveries =
        (0..3).map(|_| t.request(webhook_request(&body, Some(sign_now(SECRET, &body)))));
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
        .request(webhook_request(&body, Some(sign_now("wrong", &body))))
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
async fn a_replay_past_the_tolerance_is_refused_before_the_inbox_is_read() {
    let t = webhook_harness(&DemoState::default(), Some(SECRET));
    let body = refund_event("evt_replayed");
    let an_hour_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 3600;
    let (status, problem) = t
        .request(webhook_request(
            &body,
            Some(sign(SECRET, an_hour_ago, &body)),
        ))
        .await;
    assert_eq!(status, 401, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("beyond the tolerance of 300 s"),
        "{problem}"
    );
    // Nothing was recorded: the same event signed now is a first delivery.
    let (status, ack) = t
        .request(webhook_request(&body, Some(sign_now(SECRET, &body))))
        .await;
    assert_eq!(status, 202, "{ack}");
    assert_eq!(ack["first_delivery"], true);
}

#[tokio::test]
async fn an_event_id_with_control_characters_is_a_400() {
    let t = webhook_harness(&DemoState::default(), Some(SECRET));
    let body = refund_event("evt_\u{0}1");
    let (status, problem) = t
        .request(webhook_request(&body, Some(sign_now(SECRET, &body))))
        .await;
    assert_eq!(status, 400, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("control character"),
        "{problem}"
    );
    assert!(t.run_tasks().await.is_empty());
}

#[tokio::test]
async fn a_webhook_without_a_configured_secret_says_how_to_set_it() {
    let t = webhook_harness(&DemoState::default(), None);
    let body = refund_event("evt_3");
    let (status, problem) = t
        .request(webhook_request(&body, Some(sign_now(SECRET, &body))))
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
