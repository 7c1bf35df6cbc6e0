//! State registered on the extension builder and taken by type, the same way, by handlers,
//! filter steps, tasks and routes; missing state refused at start-up (or, for a route, named in
//! a 500); framework errors answered as problems without `map_err`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use coordinator::http::{Json, Problem, Route, StatusCode};
use coordinator::prelude::*;
use coordinator::testing::{TestCoordinator, extension};
use coordinator::{Config, Coordinator, WiringError};

#[derive(Clone, Debug, Default)]
struct Ledger(Arc<Mutex<Vec<String>>>);

impl Ledger {
    fn note(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }
    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

#[derive(Clone, Debug)]
struct Prefix(&'static str);

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Sold {
    pub sku: String,
}

static SOLD: Signal<Sold> = Signal::new("shop.sold", "Something was sold.");
static SHIP: Task<Sold> = Task::new("shop.ship", "Ships it.");
static PRICE: Filter<Sold> = Filter::new("shop.price_requested", "Prices it.");

async fn record_sale(
    event: Event<Sold>,
    State(ledger): State<Ledger>,
    State(prefix): State<Prefix>,
) -> HandlerResult {
    ledger.note(format!("{}sold {}", prefix.0, event.sku));
    let id = event
        .context()
        .enqueue(
            &SHIP,
            Sold {
                sku: event.sku.clone(),
            },
        )
        .await?;
    Ok(id.into())
}

async fn ship(_: TaskContext, sold: Sold, State(ledger): State<Ledger>) -> TaskResult {
    ledger.note(format!("shipped {}", sold.sku));
    Ok(().into())
}

async fn price(_: Context, sold: Sold, State(ledger): State<Ledger>) -> StepResult<Sold> {
    ledger.note(format!("priced {}", sold.sku));
    Ok(Flow::Continue(sold))
}

async fn ledger_route(State(ledger): State<Ledger>) -> Json<Vec<String>> {
    Json(ledger.lines())
}

fn shop(ledger: Ledger) -> impl Extension {
    extension("shop", move |ext| {
        ext.state(ledger.clone())
            .state(Prefix("> "))
            .signal(&SOLD)
            .handler("shop.record_sale", "Records the sale.", record_sale)
            .enqueues(&SHIP)
            .task(&SHIP, ship)
            .filter(&PRICE)
            .step("shop.price", "Prices.", price)
            .route(Route::get("/ledger", ledger_route).doc("The ledger."));
    })
}

const WIRING: &str = r#"
[signals]
"shop.sold" = ["shop.record_sale"]
[filters."shop.price_requested"]
pipeline = ["shop.price"]
"#;

#[tokio::test]
async fn handlers_steps_tasks_and_routes_take_the_extensions_state_by_type() {
    let ledger = Ledger::default();
    let t = TestCoordinator::builder()
        .extension(shop(ledger.clone()))
        .with_store(coordinator_sqlite::testing::temporary())
        .wiring(WIRING)
        .build();
    let report = t.send(&SOLD, Sold { sku: "S1".into() }).await;
    assert!(report.all_ok(), "{report:?}");
    let runs = t.run_tasks().await;
    assert_eq!(runs[0].status, "succeeded", "{runs:?}");
    t.run_filter(&PRICE, Sold { sku: "S1".into() })
        .await
        .unwrap();
    let (status, body) = t.call("GET", "/api/shop/ledger", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        serde_json::json!(["> sold S1", "shipped S1", "priced S1"])
    );
    // The extension's own context reaches its state too; another extension's does not.
    assert!(t.coordinator().context("shop").state::<Ledger>().is_some());
    assert!(t.context().state::<Ledger>().is_none());
}

#[test]
fn a_function_that_takes_state_its_extension_does_not_register_is_refused_at_start_up() {
    let bare = extension("shop", |ext| {
        ext.signal(&SOLD)
            .handler("shop.record_sale", "Records the sale.", record_sale)
            .task(&SHIP, ship)
            .state(Ledger::default())
            .state(Ledger::default());
    });
    let v = Coordinator::builder()
        .extension(bare)
        .config(Config::from_toml("[signals]\n\"shop.sold\" = [\"shop.record_sale\"]\n").unwrap())
        .validate();
    let missing: Vec<String> = v
        .errors
        .iter()
        .filter(|e| matches!(e, WiringError::MissingState { .. }))
        .map(ToString::to_string)
        .collect();
    assert_eq!(missing.len(), 1, "{v}");
    assert!(
        missing[0].starts_with("handler \"shop.record_sale\" declared at "),
        "{v}"
    );
    assert!(
        missing[0].ends_with(
            "takes State<state::Prefix>, which extension \"shop\" does not register; call `ext.state(...)` with a state::Prefix in its build"
        ),
        "{v}"
    );
    assert!(
        v.errors.iter().any(|e| e.to_string()
            == "extension \"shop\" registers state of type state::Ledger twice; register each type once (wrap values in distinct types)"),
        "{v}"
    );
}

#[tokio::test]
async fn a_route_that_takes_missing_state_answers_500_naming_the_type() {
    let bare = extension("shop", |ext| {
        ext.route(Route::get("/ledger", ledger_route).doc("The ledger."));
    });
    let t = TestCoordinator::builder().extension(bare).build();
    let (status, body) = t.call("GET", "/api/shop/ledger", None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("asks for State<state::Ledger>, which its extension does not register"),
        "{body}"
    );
}

#[tokio::test]
async fn enqueue_and_filter_errors_become_problems_with_question_mark() {
    async fn sell(ctx: Context, Json(sold): Json<Sold>) -> Result<StatusCode, Problem> {
        ctx.run_filter(
            &PRICE,
            Sold {
                sku: sold.sku.clone(),
            },
        )
        .await?;
        ctx.enqueue(&SHIP, sold).await?;
        Ok(StatusCode::ACCEPTED)
    }
    async fn fail(_: Context, _: Sold) -> StepResult<Sold> {
        Err(StepError::msg("the pricing service said 503"))
    }
    let failing = extension("shop", |ext| {
        ext.task(&SHIP, |_: TaskContext, _: Sold| async {
            Ok::<_, TaskError>(())
        })
        .filter(&PRICE)
        .step("shop.fail", "Fails.", fail)
        .route(Route::post("/sell", sell).doc("Sells."));
    });
    let t = TestCoordinator::builder()
        .extension(failing)
        .wiring("[filters.\"shop.price_requested\"]\npipeline = [\"shop.fail\"]\n")
        .build();
    let (status, body) = t
        .call(
            "POST",
            "/api/shop/sell",
            Some(serde_json::json!({"sku": "S"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(
        body["detail"],
        "filter \"shop.price_requested\" failed at step \"shop.fail\"; the error is logged with this request's id"
    );
    assert!(
        !body.to_string().contains("503"),
        "the chain is not returned: {body}"
    );
}

#[test]
fn each_extension_builds_once_however_often_the_builder_is_validated() {
    static BUILDS: AtomicUsize = AtomicUsize::new(0);
    let counted = extension("shop", |ext| {
        BUILDS.fetch_add(1, Ordering::SeqCst);
        ext.signal(&SOLD);
    });
    let builder = Coordinator::builder().extension(counted);
    assert!(builder.validate().is_valid());
    assert!(builder.validate().is_valid());
    builder.build().unwrap();
    assert_eq!(BUILDS.load(Ordering::SeqCst), 1);
}
