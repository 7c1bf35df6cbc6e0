//! Start-up validation: every kind of wiring problem is reported, each by a message that names
//! what is wrong, where, and how to fix it, and all of them at once.

use coordinator::http::Mounts;
use coordinator::prelude::*;
use coordinator::testing::extension;
use coordinator::{Config, Coordinator, Validation, WiringError, WiringWarning};

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct OrderPlaced {
    pub order_number: String,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct PaymentRefunded {
    pub refund_id: String,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct PaymentPage {
    pub sku: String,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct OrderHistory {
    pub orders: Vec<String>,
}

static ORDER_PLACED: Signal<OrderPlaced> = Signal::new("shop.order_placed", "An order was placed.");
static PAYMENT_REFUNDED: Signal<PaymentRefunded> =
    Signal::new("shop.payment_refunded", "A payment was refunded.");
static PAYMENT_PAGE: Filter<PaymentPage> =
    Filter::new("shop.payment_page_requested", "Where to pay.");
static ORDER_HISTORY: Filter<OrderHistory> =
    Filter::new("shop.order_history_requested", "Past orders.");
static INVOICE_SENT: Signal<OrderPlaced> =
    Signal::new("billing.invoice_sent", "An invoice was sent.");

async fn ok<P>(_: Event<P>) -> HandlerResult {
    Ok(().into())
}

async fn pass<D>(_: Context, d: D) -> StepResult<D> {
    Ok(Flow::Continue(d))
}

fn shop() -> impl Extension {
    extension("shop", |ext| {
        ext.signal(&ORDER_PLACED)
            .signal(&PAYMENT_REFUNDED)
            .handler("shop.enroll_learner", "Enrolls.", ok::<OrderPlaced>)
            .handler("shop.revoke_seat", "Revokes.", ok::<PaymentRefunded>)
            .filter(&PAYMENT_PAGE)
            .filter(&ORDER_HISTORY)
            .step("shop.choose_processor", "Chooses.", pass::<PaymentPage>)
            .step("shop.merge_orders", "Merges.", pass::<OrderHistory>);
    })
}

fn billing() -> impl Extension {
    extension("billing", |ext| {
        ext.signal(&INVOICE_SENT)
            .handler("billing.send_invoice", "Sends.", ok::<OrderPlaced>);
    })
}

fn validate_with(extensions: Vec<Box<dyn Extension>>, toml: &str) -> Validation {
    validate_mounted(extensions, toml, [])
}

/// Validates as the coordinator binary does: its core paths reserved, `[server.mounts]` given.
fn validate_mounted<const N: usize>(
    extensions: Vec<Box<dyn Extension>>,
    toml: &str,
    custom: [(&str, &str); N],
) -> Validation {
    Coordinator::builder()
        .extensions(extensions)
        .config(Config::from_toml(toml).expect("test config parses"))
        .mounts(Mounts {
            custom: custom
                .iter()
                .map(|(e, m)| ((*e).to_owned(), (*m).to_owned()))
                .collect(),
            configured_at: "[server.mounts]",
            reserved: vec![
                "/health",
                "/ready",
                "/metrics",
                "/api/v1",
                "/api/openapi.json",
            ],
        })
        .validate()
}

fn validate(toml: &str) -> Validation {
    validate_with(vec![Box::new(shop()), Box::new(billing())], toml)
}

fn messages(v: &Validation) -> Vec<String> {
    v.errors.iter().map(ToString::to_string).collect()
}

#[track_caller]
fn assert_only_error(toml: &str, expected: &str) {
    let v = validate(toml);
    assert_eq!(messages(&v), [expected], "{v}");
}

const VALID: &str = r#"
[signals]
"shop.order_placed" = ["shop.enroll_learner", "billing.send_invoice"]
"shop.payment_refunded" = ["shop.revoke_seat"]
"billing.invoice_sent" = ["shop.enroll_learner"]
[filters."shop.payment_page_requested"]
pipeline = ["shop.choose_processor"]
[filters."shop.order_history_requested"]
pipeline = ["shop.merge_orders"]
"#;

#[test]
fn a_complete_wiring_is_valid_without_warnings() {
    let v = validate(VALID);
    assert!(v.is_valid(), "{v}");
    assert!(v.warnings.is_empty(), "{v}");
}

#[test]
fn unknown_extension_suggests_the_nearest_and_lists_the_available() {
    assert_only_error(
        "[extensions]\nenabled = [\"shpo\", \"billing\"]",
        "[extensions] enabled: unknown extension \"shpo\"; did you mean \"shop\"?; this binary has: billing, shop",
    );
}

#[test]
fn an_extension_listed_twice_is_refused() {
    assert_only_error(
        "[extensions]\nenabled = [\"shop\", \"billing\", \"shop\"]",
        "[extensions] enabled: extension \"shop\" is listed twice; remove one",
    );
}

#[test]
fn two_extensions_with_one_name_are_refused() {
    let v = validate_with(
        vec![Box::new(shop()), Box::new(extension("shop", |_| {}))],
        "",
    );
    let m = messages(&v);
    assert_eq!(m.len(), 1, "{v}");
    assert!(
        m[0].starts_with("extension name \"shop\" is claimed by two extensions ("),
        "{v}"
    );
    assert!(
        m[0].ends_with("); give each extension a unique name"),
        "{v}"
    );
}

#[test]
fn an_extension_name_must_be_snake_case() {
    let v = validate_with(vec![Box::new(extension("ShopFront", |_| {}))], "");
    let m = messages(&v);
    assert_eq!(m.len(), 1, "{v}");
    assert!(m[0].starts_with("extension name \"ShopFront\" ("), "{v}");
    assert!(
        m[0].ends_with(") is not snake_case; name it \"shop_front\""),
        "{v}"
    );
}

static BAD_CASE: Signal<OrderPlaced> = Signal::new("shop.OrderShipped", "x");
static NO_PREFIX: Signal<OrderPlaced> = Signal::new("order_cancelled", "x");
static FOREIGN: Signal<OrderPlaced> = Signal::new("billing.order_paid", "x");

#[test]
fn declared_names_must_be_the_extension_then_snake_case() {
    let v = validate_with(
        vec![Box::new(extension("shop", |ext| {
            ext.signal(&BAD_CASE)
                .signal(&NO_PREFIX)
                .signal(&FOREIGN)
                .handler("shop.Enroll", "x", ok::<OrderPlaced>);
        }))],
        "",
    );
    let m = messages(&v);
    assert_eq!(m.len(), 4, "{v}");
    let expect = [
        (
            "signal \"shop.OrderShipped\" declared by extension \"shop\" at ",
            "is not a valid name: \"OrderShipped\" is not snake_case; write \"shop.order_shipped\"",
        ),
        (
            "signal \"order_cancelled\" declared by extension \"shop\" at ",
            "is not a valid name: it has no extension prefix; write \"shop.order_cancelled\"",
        ),
        (
            "signal \"billing.order_paid\" declared by extension \"shop\" at ",
            "is not a valid name: its prefix \"billing\" is not the declaring extension \"shop\"; write \"shop.order_paid\"",
        ),
        (
            "handler \"shop.Enroll\" declared by extension \"shop\" at ",
            "is not a valid name: \"Enroll\" is not snake_case; write \"shop.enroll\"",
        ),
    ];
    for ((start, end), msg) in expect.iter().zip(&m) {
        assert!(msg.starts_with(start) && msg.ends_with(end), "{msg}");
        assert!(
            msg.contains("tests/validation.rs:"),
            "the declaration site is named: {msg}"
        );
    }
}

#[test]
fn a_name_claimed_twice_is_refused_naming_both_declarations() {
    let v = validate_with(
        vec![
            Box::new(shop()),
            Box::new(extension("billing", |ext| {
                ext.signal(&ORDER_PLACED);
            })),
        ],
        "",
    );
    let m = messages(&v);
    assert_eq!(m.len(), 2, "{v}");
    assert!(
        m[0].contains("its prefix \"shop\" is not the declaring extension \"billing\""),
        "{v}"
    );
    assert!(
        m[1].starts_with(
            "signal \"shop.order_placed\" is declared twice: by extension \"shop\" at "
        ),
        "{v}"
    );
    assert!(m[1].contains(" and by extension \"billing\" at "), "{v}");
    assert!(m[1].ends_with("; rename one of them"), "{v}");
}

#[test]
fn unknown_signal_suggests_a_near_miss() {
    assert_only_error(
        "[signals]\n\"shop.order_plcaed\" = [\"shop.enroll_learner\"]",
        "[signals] \"shop.order_plcaed\": unknown signal \"shop.order_plcaed\"; did you mean \"shop.order_placed\"?",
    );
}

#[test]
fn unknown_handler_suggests_a_near_miss() {
    assert_only_error(
        "[signals]\n\"shop.order_placed\" = [\"shop.enrol_learner\"]",
        "[signals] \"shop.order_placed\" item 1: unknown handler \"shop.enrol_learner\"; did you mean \"shop.enroll_learner\"?",
    );
}

#[test]
fn an_unknown_name_far_from_any_gets_no_suggestion() {
    assert_only_error(
        "[signals]\n\"shop.order_placed\" = [\"warehouse.ship_parcel\"]",
        "[signals] \"shop.order_placed\" item 1: unknown handler \"warehouse.ship_parcel\"",
    );
}

#[test]
fn names_of_a_disabled_extension_say_which_extension_to_enable() {
    let v = validate(
        "[extensions]\nenabled = [\"shop\"]\n[signals]\n\"billing.invoice_sent\" = [\"shop.enroll_learner\"]\n\"shop.order_placed\" = [\"billing.send_invoice\"]",
    );
    assert_eq!(
        messages(&v),
        [
            "[signals] \"billing.invoice_sent\": signal \"billing.invoice_sent\" belongs to extension \"billing\", which is not enabled; add \"billing\" to [extensions] enabled, or remove it here",
            "[signals] \"shop.order_placed\" item 1: handler \"billing.send_invoice\" belongs to extension \"billing\", which is not enabled; add \"billing\" to [extensions] enabled, or remove it here",
        ],
        "{v}"
    );
}

#[test]
fn an_empty_handler_list_is_refused() {
    assert_only_error(
        "[signals]\n\"shop.order_placed\" = []",
        "[signals] \"shop.order_placed\": the handler list is empty; list at least one handler, or remove the entry (a signal with no entry simply has no handlers)",
    );
}

#[test]
fn a_payload_type_mismatch_names_both_types_and_a_matching_signal() {
    assert_only_error(
        "[signals]\n\"shop.payment_refunded\" = [\"shop.enroll_learner\"]",
        "[signals] \"shop.payment_refunded\" item 1: handler \"shop.enroll_learner\" takes `validation::OrderPlaced` but signal \"shop.payment_refunded\" carries `validation::PaymentRefunded`; connect it to a signal that carries `validation::OrderPlaced` (such as \"shop.order_placed\")",
    );
}

#[test]
fn a_handler_listed_twice_is_refused() {
    assert_only_error(
        "[signals]\n\"shop.order_placed\" = [\"shop.enroll_learner\", \"billing.send_invoice\", \"shop.enroll_learner\"]",
        "[signals] \"shop.order_placed\" item 3: handler \"shop.enroll_learner\" is listed twice (also item 1); remove the duplicate",
    );
}

#[test]
fn handler_settings_for_an_unknown_handler_are_refused() {
    assert_only_error(
        "[handlers.\"shop.enrol_learner\"]\ntimeout = \"1s\"",
        "[handlers.\"shop.enrol_learner\"]: unknown handler \"shop.enrol_learner\"; did you mean \"shop.enroll_learner\"?",
    );
}

#[test]
fn zero_timeouts_are_refused() {
    let v = validate(
        "[timeouts]\nhandler = \"0s\"\n[handlers.\"shop.enroll_learner\"]\ntimeout = \"0ms\"\n[filters.\"shop.payment_page_requested\"]\npipeline = [\"shop.choose_processor\"]\nstep_timeout = \"0s\"",
    );
    assert_eq!(
        messages(&v),
        [
            "[timeouts] handler: a timeout of zero would fail every run; use a positive duration such as \"5s\"",
            "[handlers.\"shop.enroll_learner\"] timeout: a timeout of zero would fail every run; use a positive duration such as \"5s\"",
            "[filters.\"shop.payment_page_requested\"] step_timeout: a timeout of zero would fail every run; use a positive duration such as \"5s\"",
        ],
        "{v}"
    );
}

#[test]
fn unknown_filter_and_step_suggest_near_misses() {
    let v =
        validate("[filters.\"shop.payment_page_requestd\"]\npipeline = [\"shop.choose_procesor\"]");
    assert_eq!(
        messages(&v),
        [
            "[filters.\"shop.payment_page_requestd\"] pipeline: unknown filter \"shop.payment_page_requestd\"; did you mean \"shop.payment_page_requested\"?",
            "[filters.\"shop.payment_page_requestd\"] pipeline item 1: unknown step \"shop.choose_procesor\"; did you mean \"shop.choose_processor\"?",
        ],
        "{v}"
    );
}

#[test]
fn an_empty_pipeline_is_refused() {
    assert_only_error(
        "[filters.\"shop.payment_page_requested\"]\npipeline = []",
        "[filters.\"shop.payment_page_requested\"] pipeline: the pipeline is empty; list at least one step, or remove the entry (a filter with no entry returns its input unchanged)",
    );
}

#[test]
fn a_step_of_the_wrong_data_type_names_both_types() {
    assert_only_error(
        "[filters.\"shop.payment_page_requested\"]\npipeline = [\"shop.merge_orders\"]",
        "[filters.\"shop.payment_page_requested\"] pipeline item 1: step \"shop.merge_orders\" takes `validation::OrderHistory` but filter \"shop.payment_page_requested\" carries `validation::PaymentPage`; connect it to a filter that carries `validation::OrderHistory` (such as \"shop.order_history_requested\")",
    );
}

#[test]
fn a_step_listed_twice_is_refused() {
    assert_only_error(
        "[filters.\"shop.payment_page_requested\"]\npipeline = [\"shop.choose_processor\", \"shop.choose_processor\"]",
        "[filters.\"shop.payment_page_requested\"] pipeline item 2: step \"shop.choose_processor\" is listed twice (also item 1); remove the duplicate",
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let v = validate(
        r#"
[extensions]
enabled = ["shop", "billing", "warehouse"]
[signals]
"shop.order_plcaed" = ["shop.enroll_learner"]
"shop.payment_refunded" = ["shop.enroll_learner", "shop.revoke_seat", "shop.revoke_seat"]
"billing.invoice_sent" = []
[filters."shop.payment_page_requested"]
pipeline = ["shop.merge_orders", "shop.nope"]
"#,
    );
    let kinds: Vec<&str> = v
        .errors
        .iter()
        .map(|e| match e {
            WiringError::UnknownExtension { .. } => "unknown extension",
            WiringError::Unknown { .. } => "unknown name",
            WiringError::Empty { .. } => "empty",
            WiringError::TypeMismatch { .. } => "type mismatch",
            WiringError::ListedTwice { .. } => "listed twice",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "unknown extension",
            "empty",
            "unknown name",
            "type mismatch",
            "listed twice",
            "type mismatch",
            "unknown name",
        ],
        "{v}"
    );
    let build = Coordinator::builder()
        .extension(shop())
        .extension(billing())
        .config(Config::from_toml("[signals]\n\"shop.nope\" = [\"shop.nada\"]").unwrap())
        .build()
        .unwrap_err()
        .to_string();
    assert!(build.starts_with("2 problem(s) in the configuration; the coordinator cannot start until all are fixed:\nerror: "), "{build}");
}

#[test]
fn declared_but_unwired_things_are_warnings_not_errors() {
    let v = validate("");
    assert!(v.is_valid(), "{v}");
    let w: Vec<String> = v.warnings.iter().map(ToString::to_string).collect();
    assert!(w.contains(&"signal \"shop.order_placed\" (declared by extension \"shop\") has no [signals] entry, so no handler receives it; add `\"shop.order_placed\" = [...]` to [signals] if something should".to_owned()), "{w:#?}");
    assert!(w.contains(&"handler \"shop.enroll_learner\" (declared by extension \"shop\") is not connected to any signal, so it never runs".to_owned()), "{w:#?}");
    assert!(w.contains(&"filter \"shop.payment_page_requested\" (declared by extension \"shop\") has no [filters.\"shop.payment_page_requested\"] pipeline, so it returns its input unchanged".to_owned()), "{w:#?}");
    assert!(w.contains(&"step \"shop.choose_processor\" (declared by extension \"shop\") is in no filter's pipeline, so it never runs".to_owned()), "{w:#?}");
    assert!(matches!(v.warnings[0], WiringWarning::UnwiredSignal { .. }));
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShopSettings {
    pub api_url: String,
    #[serde(default)]
    pub retries: u32,
}

fn configured_shop(seen: std::sync::Arc<std::sync::Mutex<Option<String>>>) -> impl Extension {
    extension("shop", move |ext| {
        let settings: ShopSettings = ext.settings();
        *seen.lock().unwrap() = Some(settings.api_url);
    })
}

#[test]
fn extension_settings_are_read_from_their_table() {
    let seen = std::sync::Arc::default();
    let v = validate_with(
        vec![Box::new(configured_shop(std::sync::Arc::clone(&seen)))],
        "[extension.shop]\napi_url = \"https://shop.sandbox.invalid\"",
    );
    assert!(v.is_valid(), "{v}");
    assert_eq!(
        seen.lock().unwrap().as_deref(),
        Some("https://shop.sandbox.invalid")
    );
}

#[test]
fn invalid_or_missing_settings_are_errors_listed_with_the_others() {
    let v = validate_with(
        vec![Box::new(configured_shop(std::sync::Arc::default()))],
        "[extension.shop]\napi_ur = \"x\"\n[signals]\n\"shop.nope\" = [\"shop.nada\"]",
    );
    let m = messages(&v);
    assert_eq!(m.len(), 3, "{v}");
    assert!(m[0].starts_with("[extension.shop]: invalid settings: unknown field `api_ur`, expected `api_url` or `retries`"), "{v}");
    let v = validate_with(
        vec![Box::new(configured_shop(std::sync::Arc::default()))],
        "",
    );
    assert_eq!(
        messages(&v),
        ["[extension.shop]: invalid settings: missing field `api_url`"],
        "{v}"
    );
}

#[test]
fn stray_settings_tables_are_refused() {
    let v = validate(
        "[extensions]\nenabled = [\"shop\"]\n[extension.shpo]\nx = 1\n[extension.billing]\nx = 1\n[extension.shop]\nx = 1",
    );
    assert_eq!(
        messages(&v),
        [
            "[extension.billing]: extension \"billing\" is not enabled; add it to [extensions] enabled or remove this table",
            "[extension.shop]: extension \"shop\" takes no settings; remove this table",
            "[extension.shpo]: there is no extension \"shpo\"; did you mean \"shop\"?; remove this table",
        ],
        "{v}"
    );
}

async fn hello() -> &'static str {
    "hello"
}

#[test]
fn colliding_routes_are_refused() {
    let v = validate_with(
        vec![
            Box::new(extension("shop", |ext| {
                ext.route(Route::get("/orders", hello))
                    .route(Route::get("/orders", hello))
                    .route(Route::post("orders", hello));
            })),
            Box::new(extension("v1", |ext| {
                ext.route(Route::get("/x", hello));
            })),
        ],
        "",
    );
    assert_eq!(
        messages(&v),
        [
            "extension \"v1\": route prefix /api/v1 cannot be mounted: it overlaps /api/v1, which the server serves; mount the extension elsewhere with [server.mounts] (or rename it)",
            "extension \"shop\": route GET /api/shop/orders cannot be mounted: it is declared twice; remove one",
            "extension \"shop\": route POST /api/shoporders cannot be mounted: the path must start with \"/\"; write \"/orders\"",
        ],
        "{v}"
    );
    let v = validate_with(
        vec![Box::new(extension("shop", |ext| {
            ext.route(Route::get("/orders/{id}", hello))
                .route(Route::get("/orders/{number}", hello));
        }))],
        "",
    );
    let m = messages(&v);
    assert_eq!(m.len(), 1, "{v}");
    assert!(
        m[0].starts_with(
            "extension \"shop\": route GET /api/shop/orders/{number} cannot be mounted: "
        ),
        "{v}"
    );
    assert!(m[0].ends_with("; change one of the paths"), "{v}");
}

#[test]
fn migrations_need_distinct_positive_versions() {
    let v = validate_with(
        vec![Box::new(extension("shop", |ext| {
            ext.migration(Migration::portable(0, "zero", "SELECT 1"))
                .migration(Migration::portable(1, "create_orders", "SELECT 1"))
                .migration(Migration::portable(1, "create_refunds", "SELECT 1"));
        }))],
        "",
    );
    assert_eq!(
        messages(&v),
        [
            "extension \"shop\": migration 0 (\"zero\") has version 0; versions start at 1",
            "extension \"shop\": migration 1 (\"create_refunds\") reuses the version of migration \"create_orders\"; give it the next free version",
        ],
        "{v}"
    );
}

#[test]
fn mounts_may_not_overlap_each_other_or_the_core_paths() {
    let with_routes = |name: &'static str| {
        extension(name, |ext| {
            ext.route(Route::get("/x", hello));
        })
    };
    let v = validate_mounted(
        vec![
            Box::new(with_routes("shop")),
            Box::new(with_routes("lms")),
            Box::new(with_routes("crm")),
        ],
        "",
        [
            ("shop", "/lms"),
            ("lms", "/lms/v2"),
            ("crm", "/metrics"),
            ("nope", "/x"),
        ],
    );
    assert_eq!(
        messages(&v),
        [
            "[server.mounts] nope: there is no extension \"nope\"",
            "extension \"lms\": route prefix /lms/v2 cannot be mounted: it overlaps the mount /lms of extension \"shop\"; give one of them another path in [server.mounts]",
            "extension \"crm\": route prefix /metrics cannot be mounted: it overlaps /metrics, which the server serves; mount the extension elsewhere with [server.mounts] (or rename it)",
        ],
        "{v}"
    );
}

static ENROLL: Task<OrderPlaced> = Task::new("shop.enroll_in_course", "Enrolls.");

async fn run_task(_: TaskContext, _: OrderPlaced) -> TaskResult {
    Ok(().into())
}

fn shop_with_task() -> impl Extension {
    extension("shop", |ext| {
        ext.signal(&ORDER_PLACED)
            .handler("shop.enroll_learner", "Enrolls.", ok::<OrderPlaced>)
            .enqueues(&ENROLL)
            .task(&ENROLL, run_task)
            .sends(&ORDER_PLACED);
    })
}

#[test]
fn task_overrides_are_checked() {
    let v = validate_with(
        vec![Box::new(shop_with_task())],
        "[tasks.\"shop.enrol_in_course\"]\nmax_attempts = 2\n[tasks.\"shop.enroll_in_course\"]\nmax_attempts = 0\ninitial_backoff = \"10m\"\nmax_backoff = \"1m\"\ntimeout = \"0s\"\nqueue = \"Slow Lane\"\n[worker]\nconcurrency = 0\nqueues = [\"bulk\"]",
    );
    assert_eq!(
        messages(&v),
        [
            "[tasks.\"shop.enrol_in_course\"]: unknown task \"shop.enrol_in_course\"; did you mean \"shop.enroll_in_course\"?",
            "[tasks.\"shop.enroll_in_course\"]: max_attempts is 0, so the task would never run; use 1 or more",
            "[tasks.\"shop.enroll_in_course\"]: initial_backoff (10m) is longer than max_backoff (1m); make max_backoff at least initial_backoff",
            "[tasks.\"shop.enroll_in_course\"]: a timeout of zero would fail every attempt; use a positive duration such as \"30s\"",
            "[tasks.\"shop.enroll_in_course\"]: queue \"Slow Lane\" is not a snake_case name; write \"slow_lane\"",
            "[worker] concurrency: 0 would run no task; use 1 or more",
        ],
        "{v}"
    );
    assert!(
        v.warnings.iter().any(|w| w.to_string()
            == "[worker] queues: no task runs on queue \"bulk\", so this worker will never find work there"),
        "{v}"
    );
}

#[test]
fn tasks_appear_in_the_catalog_with_the_settings_in_force() {
    let c = Coordinator::builder()
        .extension(shop_with_task())
        .config(
            Config::from_toml(
                "[signals]\n\"shop.order_placed\" = [\"shop.enroll_learner\"]\n[tasks.\"shop.enroll_in_course\"]\nmax_attempts = 9\nqueue = \"lms\"",
            )
            .unwrap(),
        )
        .build()
        .unwrap();
    let catalog = c.catalog();
    let task = catalog.task("shop.enroll_in_course").unwrap();
    assert_eq!(
        (task.max_attempts, task.queue.as_str(), task.timeout_ms),
        (9, "lms", 60_000)
    );
    assert_eq!(task.enqueued_by, ["shop.enroll_learner"]);
    assert_eq!(task.sends, ["shop.order_placed"]);
    assert_eq!(
        catalog.handler("shop.enroll_learner").unwrap().enqueues,
        ["shop.enroll_in_course"]
    );
    let graph = catalog.graph(coordinator::catalog::GraphFormat::Mermaid);
    assert!(
        graph.contains("handler_shop__enroll_learner --> task_shop__enroll_in_course"),
        "{graph}"
    );
    assert!(
        graph.contains("task_shop__enroll_in_course --> signal_shop__order_placed"),
        "{graph}"
    );
}

static UNDECLARED_TASK: Task<OrderPlaced> = Task::new("shop.never_declared", "Nope.");

#[test]
fn enqueues_and_sends_must_name_declared_things() {
    let v = validate_with(
        vec![Box::new(extension("shop", |ext| {
            ext.handler("shop.enroll_learner", "Enrolls.", ok::<OrderPlaced>)
                .enqueues(&UNDECLARED_TASK)
                .sends(&PAYMENT_REFUNDED);
        }))],
        "",
    );
    let m = messages(&v);
    assert_eq!(m.len(), 2, "{v}");
    assert!(
        m[0].starts_with("handler \"shop.enroll_learner\" declared at "),
        "{v}"
    );
    assert!(
        m[0].ends_with(": unknown task \"shop.never_declared\""),
        "{v}"
    );
    assert!(
        m[1].ends_with(": unknown signal \"shop.payment_refunded\""),
        "{v}"
    );
}
