use coordinator::testing::{TestCoordinator, check_extension_in};

use super::*;

const CONFIG: &str = include_str!("../loyalty.toml");

#[test]
fn passes_the_standard_extension_checks_with_its_binarys_configuration() {
    let problems = check_extension_in(LoyaltyExtension, CONFIG, &["server", "auth", "log"]);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[tokio::test]
async fn a_purchase_credits_points_once_through_the_route_the_handler_and_the_task() {
    let t = TestCoordinator::builder()
        .extension(LoyaltyExtension)
        .with_store(coordinator_sqlite::testing::temporary())
        .wiring("[signals]\n\"loyalty.purchase_recorded\" = [\"loyalty.award_points\"]\n[extension.loyalty]\npoints_per_dollar = 3\n")
        .build();
    let purchase =
        serde_json::json!({"order_number": "EDX-1", "lms_user_id": 7, "amount_cents": 4999});
    for _ in 0..2 {
        let (status, _) = t
            .call("POST", "/api/loyalty/purchases", Some(purchase.clone()))
            .await;
        assert_eq!(status, 202);
    }
    let runs = t.run_tasks().await;
    assert_eq!(runs.len(), 1, "one task per order: {runs:?}");
    assert_eq!(runs[0].result.as_deref(), Some("credited 147 points"));
    let (status, body) = t.call("GET", "/api/loyalty/balances/7", None).await;
    assert_eq!(status, 200);
    assert_eq!(body, serde_json::json!({"lms_user_id": 7, "points": 147}));
}
