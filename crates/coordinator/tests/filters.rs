//! Filters: pipelines pass data along, halt, and never fail silently.

use std::time::Duration;

use coordinator::FilterError;
use coordinator::prelude::*;
use coordinator::testing::{TestCoordinator, extension};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Page {
    pub trail: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Other {
    pub n: u32,
}

static PAGE: Filter<Page> = Filter::new("web.page_requested", "A page.");
static UNDECLARED: Filter<Page> = Filter::new("web.nothing_requested", "Never declared.");
static WRONG_TYPE: Filter<Other> = Filter::new("web.page_requested", "Same name, other type.");

fn harness(pipeline: &[&str]) -> TestCoordinator {
    let ext = extension("web", |ext| {
        ext.filter(&PAGE)
            .step(
                "web.a",
                "Appends a.",
                |_: Context, mut p: Page| async move {
                    p.trail.push("a".into());
                    Ok(Flow::Continue(p))
                },
            )
            .step(
                "web.b",
                "Appends b.",
                |_: Context, mut p: Page| async move {
                    p.trail.push("b".into());
                    Ok(Flow::Continue(p))
                },
            )
            .step("web.stop", "Halts.", |_: Context, mut p: Page| async move {
                p.trail.push("stop".into());
                Ok(Flow::Halt(p))
            })
            .step("web.fail", "Fails.", |_: Context, _: Page| async move {
                Err(StepError::msg("catalog service unavailable"))
            })
            .step("web.panic", "Panics.", |_: Context, p: Page| async move {
                if p.trail.is_empty() || !p.trail.is_empty() {
                    panic!("step bug");
                }
                Ok(Flow::Continue(p))
            })
            .step("web.hang", "Hangs.", |_: Context, p: Page| async move {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(Flow::Continue(p))
            });
    });
    let list: Vec<String> = pipeline.iter().map(|s| format!("\"{s}\"")).collect();
    let wiring = if pipeline.is_empty() {
        String::new()
    } else {
        format!(
            "[filters.\"web.page_requested\"]\npipeline = [{}]\nstep_timeout = \"300ms\"",
            list.join(", ")
        )
    };
    TestCoordinator::builder()
        .extension(ext)
        .wiring(&wiring)
        .build()
}

fn page() -> Page {
    Page { trail: vec![] }
}

#[tokio::test]
async fn steps_pass_the_data_along_in_order() {
    let run = harness(&["web.b", "web.a"])
        .run_filter(&PAGE, page())
        .await
        .unwrap();
    assert_eq!(run.data.trail, ["b", "a"]);
    assert_eq!(run.halted_by, None);
    assert_eq!(
        run.steps.iter().map(|s| s.0).collect::<Vec<_>>(),
        ["web.b", "web.a"]
    );
}

#[tokio::test]
async fn a_halting_step_stops_the_pipeline_with_its_data() {
    let run = harness(&["web.a", "web.stop", "web.b"])
        .run_filter(&PAGE, page())
        .await
        .unwrap();
    assert_eq!(run.data.trail, ["a", "stop"]);
    assert_eq!(run.halted_by, Some("web.stop"));
    assert_eq!(run.steps.len(), 2);
}

#[tokio::test]
async fn a_failing_step_fails_the_filter_naming_the_step() {
    let err = harness(&["web.a", "web.fail", "web.b"])
        .run_filter(&PAGE, page())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "filter \"web.page_requested\" failed at step \"web.fail\": catalog service unavailable"
    );
}

#[tokio::test]
async fn a_panicking_step_fails_the_filter_with_the_panic() {
    let err = harness(&["web.panic"])
        .run_filter(&PAGE, page())
        .await
        .unwrap_err();
    let FilterError::StepPanicked {
        step,
        message,
        location,
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!((*step, message.as_str()), ("web.panic", "step bug"));
    assert!(location.as_deref().unwrap().contains("tests/filters.rs"));
    assert!(
        err.to_string()
            .contains("the step panicked at tests/filters.rs")
            || err.to_string().contains("filters.rs")
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_step_fails_the_filter_at_its_timeout() {
    let err = harness(&["web.a", "web.hang"])
        .run_filter(&PAGE, page())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        FilterError::StepTimedOut {
            filter: "web.page_requested",
            step: "web.hang",
            timeout: Duration::from_millis(300)
        }
    );
}

#[tokio::test]
async fn a_filter_without_a_pipeline_returns_its_input() {
    let run = harness(&[]).run_filter(&PAGE, page()).await.unwrap();
    assert_eq!(run.data, page());
    assert!(run.steps.is_empty());
}

#[tokio::test]
async fn an_undeclared_filter_or_a_wrong_data_type_is_an_error() {
    let t = harness(&["web.a"]);
    let err = t.run_filter(&UNDECLARED, page()).await.unwrap_err();
    assert!(err.to_string().starts_with("filter \"web.nothing_requested\" with data `filters::Page` is not declared by any enabled extension"), "{err}");
    let err = t.run_filter(&WRONG_TYPE, Other { n: 1 }).await.unwrap_err();
    assert!(
        matches!(
            err,
            FilterError::NotDeclared {
                filter: "web.page_requested",
                ..
            }
        ),
        "{err}"
    );
}
