//! A test harness for extension authors.
//!
//! Build a coordinator from some extensions and an inline TOML wiring, send signals, run
//! filters, run the tasks handlers enqueued ([`TestBuilder::with_store`] with a backend's
//! temporary store,
//! [`TestCoordinator::run_tasks`]), and assert on the reports and on what handlers saw, in a few
//! lines:
//!
//! ```
//! use coordinator::prelude::*;
//! use coordinator::testing::TestCoordinator;
//!
//! #[derive(Debug, Serialize, Deserialize, JsonSchema)]
//! pub struct Pinged { pub n: u32 }
//! pub static PINGED: Signal<Pinged> = Signal::new("ping.pinged", "A ping.");
//!
//! struct PingExtension;
//! impl Extension for PingExtension {
//!     fn name(&self) -> &'static str { "ping" }
//!     fn build(&self, ext: &mut ExtensionBuilder<'_>) { ext.signal(&PINGED); }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let t = TestCoordinator::builder()
//!     .extension(PingExtension)
//!     .recorder::<Pinged>("testing.saw_ping")
//!     .wiring(r#"[signals]
//!                "ping.pinged" = ["testing.saw_ping"]"#)
//!     .build();
//! let report = t.send(&PINGED, Pinged { n: 3 }).await;
//! assert!(report.all_ok());
//! assert_eq!(t.seen::<Pinged>("testing.saw_ping")[0].n, 3);
//! # });
//! ```
//!
//! Other companies' services are faked locally: a [`FakeService`] answers scripted HTTP replies
//! and records the requests, and [`mint_hs256`] and [`edx_claims`] make the JWTs that the LMS
//! would issue.

mod fake_service;
mod jwt;

pub use fake_service::{FakeService, RecordedRequest, Reply, Script};
pub use jwt::{
    EDX_HEADER_PAYLOAD_COOKIE, EDX_SIGNATURE_COOKIE, EdxClaims, edx_claims, edx_cookie_header,
    mint_hs256, split_cookie,
};

use std::any::Any;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustc_hash::FxHashMap;
use tokio::time::Instant;
use tracing::Instrument;
use uuid::Uuid;

use crate::config::{Config, ConfigSource};
use crate::context::Context;
use crate::coordinator::{Coordinator, CoordinatorBuilder};
use crate::dispatch::DispatchReport;
use crate::extension::{Declarations, Extension, ExtensionBuilder};
use crate::filter::{Filter, FilterError, FilterRun};
use crate::handler::{Event, HandlerError};
use crate::migration::Migration;
use crate::payload::Payload;
use crate::signal::Signal;
use crate::store::Store;
use crate::task::TaskOutcome;
use crate::wiring::{self, Validation};
use crate::worker;

/// The name of the extension that holds the harness's recorders.
pub const TESTING_EXTENSION: &str = "testing";

type Seen = Arc<Mutex<FxHashMap<&'static str, Vec<Arc<dyn Any + Send + Sync>>>>>;
type Declare = Box<dyn Fn(&mut ExtensionBuilder<'_>, &Seen) + Send + Sync>;

/// The harness's own extension: one recording handler per [`TestBuilder::recorder`].
struct Recorders {
    seen: Seen,
    declare: Vec<Declare>,
}

impl Extension for Recorders {
    fn name(&self) -> &'static str {
        TESTING_EXTENSION
    }

    fn doc(&self) -> &'static str {
        "Test recorders: handlers that keep every payload they receive."
    }

    fn build(&self, ext: &mut ExtensionBuilder<'_>) {
        for declare in &self.declare {
            declare(ext, &self.seen);
        }
    }
}

/// Builds a [`TestCoordinator`].
pub struct TestBuilder {
    extensions: Vec<Box<dyn Extension>>,
    recorders: Recorders,
    wiring: String,
    host_sections: &'static [&'static str],
    store: Option<Box<dyn TestStore>>,
}

/// A coordinator under test, with recorders that keep what they received.
pub struct TestCoordinator {
    coordinator: Coordinator,
    seen: Seen,
    /// What keeps the store's data alive (a temporary folder), dropped with the harness.
    _data: Option<Box<dyn TestStoreData>>,
}

/// The lease owner recorded on tasks that [`TestCoordinator::run_tasks`] runs.
pub const TEST_WORKER: &str = "test-worker";

/// The most attempts one [`TestCoordinator::run_tasks`] call runs before it decides that tasks
/// enqueue each other without end.
const MAX_TEST_RUNS: usize = 10_000;

/// One attempt that [`TestCoordinator::run_tasks`] ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskRunSummary {
    /// The task's id.
    pub id: Uuid,
    /// The task's name.
    pub task: String,
    /// The attempt's number, from 1.
    pub attempt: u32,
    /// The task's state after it: `succeeded`, `retrying` or `dead`.
    pub status: &'static str,
    /// The summary the attempt returned, when it succeeded.
    pub result: Option<String>,
    /// The error chain, outermost first, when it failed.
    pub error: Vec<String>,
}

/// A store for the harness, from a backend crate (`coordinator_sqlite::testing::temporary()`):
/// a new, empty store made when the harness is built, and dropped with it.
///
/// The core names no backend, so the harness takes its store from the test: add the backend
/// crate as a dev-dependency of the extension.
pub trait TestStore {
    /// Makes the store. It is called from synchronous code, possibly inside a Tokio runtime,
    /// which it must not block; the store may connect when first used.
    fn open(self: Box<Self>) -> Result<(Store, Box<dyn TestStoreData>), String>;
}

/// What keeps a [`TestStore`]'s data alive (a temporary folder) until the harness is dropped,
/// and migrates it.
pub trait TestStoreData: Send + Sync {
    /// Applies the framework's migrations and `migrations`, before the harness is used. Called
    /// from synchronous code, like [`TestStore::open`].
    fn migrate(&self, migrations: Vec<Migration>) -> Result<(), String>;
}

impl TestCoordinator {
    /// Starts a harness.
    pub fn builder() -> TestBuilder {
        TestBuilder {
            extensions: Vec::new(),
            recorders: Recorders {
                seen: Seen::default(),
                declare: Vec::new(),
            },
            wiring: String::new(),
            host_sections: &[],
            store: None,
        }
    }

    /// Sends a signal as the `testing` extension.
    pub async fn send<P: Payload>(&self, signal: &Signal<P>, payload: P) -> DispatchReport {
        self.context().send_robust(signal, payload).await
    }

    /// Runs a filter as the `testing` extension.
    pub async fn run_filter<D: Payload>(
        &self,
        filter: &Filter<D>,
        data: D,
    ) -> Result<FilterRun<D>, FilterError> {
        self.context().run_filter(filter, data).await
    }

    /// Every payload the recorder `name` received, in order of arrival.
    ///
    /// # Panics
    /// If no recorder of that name and payload type exists.
    #[track_caller]
    pub fn seen<P: Payload>(&self, name: &str) -> Vec<Arc<P>> {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.get(name)
            .map(|v| {
                v.iter()
                    .map(|p| {
                        Arc::clone(p).downcast::<P>().unwrap_or_else(|_| {
                            panic!(
                                "recorder \"{name}\" does not record {}",
                                std::any::type_name::<P>()
                            )
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The coordinator itself.
    pub fn coordinator(&self) -> &Coordinator {
        &self.coordinator
    }

    /// The store ([`TestBuilder::with_store`]).
    ///
    /// # Panics
    /// If the harness was built without one.
    #[track_caller]
    pub fn store(&self) -> &Store {
        self.coordinator.store().unwrap_or_else(|| {
            panic!(
                "this test harness has no store: build it with \
                 `TestCoordinator::builder().with_store(coordinator_sqlite::testing::temporary())`"
            )
        })
    }

    /// A test worker: runs every task that is due, one at a time, including those the tasks
    /// enqueue and retries that are due at once, until none is due; tasks delayed into the
    /// future are left for later. Returns every attempt it ran, in order.
    ///
    /// Attempts run as a worker runs them (isolated, with their timeout) and their outcomes are
    /// recorded in the store, so [`Store::get_task`] shows the same as in production.
    ///
    /// # Panics
    /// If the harness has no store, the store fails, or tasks keep enqueueing each other (more
    /// than 10 000 attempts).
    pub async fn run_tasks(&self) -> Vec<TaskRunSummary> {
        let store = self.store();
        let mut runs = Vec::new();
        loop {
            assert!(
                runs.len() < MAX_TEST_RUNS,
                "run_tasks ran {MAX_TEST_RUNS} attempts and tasks are still due: do tasks enqueue \
                 each other without end?"
            );
            let claimed = store
                .claim_tasks(TEST_WORKER, &[], 1, Duration::from_secs(3600))
                .await
                .unwrap_or_else(|e| panic!("run_tasks could not claim a task: {e}"));
            let Some(task) = claimed.into_iter().next() else {
                break;
            };
            let span = worker::task_span(&task);
            let started = Instant::now();
            let outcome = worker::run_attempt(&self.coordinator.runtime, &task)
                .instrument(span.clone())
                .await;
            let duration = started.elapsed();
            let applied = worker::record(store, TEST_WORKER, &task, &outcome)
                .await
                .unwrap_or_else(|e| panic!("run_tasks could not record an outcome: {e}"));
            let status = span.in_scope(|| worker::log_recorded(&task, &outcome, applied, duration));
            runs.push(TaskRunSummary {
                error: outcome.chain().to_vec(),
                result: match outcome {
                    TaskOutcome::Succeeded(result) => result,
                    _ => None,
                },
                id: task.id,
                task: task.task,
                attempt: task.attempt,
                status,
            });
        }
        runs
    }

    /// A context that sends as the `testing` extension.
    pub fn context(&self) -> Context {
        self.coordinator.context(TESTING_EXTENSION)
    }

    /// Calls an extension route as the server would mount it (`/api/<extension>/...`), without
    /// authentication (as [`Caller::service`](crate::http::Caller::service)), with an optional
    /// JSON body. Answers the status and the body as JSON (`null` when empty or not JSON).
    pub async fn call(
        &self,
        method: &str,
        uri: &str,
        body: Option<serde_json::Value>,
    ) -> (axum::http::StatusCode, serde_json::Value) {
        self.call_as(&crate::http::Caller::service(), method, uri, body)
            .await
    }

    /// Like [`TestCoordinator::call`], as `caller` (a learner, to call a route declared
    /// `.learner()`).
    pub async fn call_as(
        &self,
        caller: &crate::http::Caller,
        method: &str,
        uri: &str,
        body: Option<serde_json::Value>,
    ) -> (axum::http::StatusCode, serde_json::Value) {
        let mut request = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .extension(caller.clone());
        let body = match body {
            Some(json) => {
                request = request.header(axum::http::header::CONTENT_TYPE, "application/json");
                axum::body::Body::from(json.to_string())
            }
            None => axum::body::Body::empty(),
        };
        self.request(request.body(body).expect("a valid test request"))
            .await
    }

    /// Sends any request (headers, raw body) to the extension routes, as [`TestCoordinator::call`]
    /// does; answers the status and the body as JSON (`null` when empty or not JSON).
    ///
    /// No credentials are checked: a route that takes the [`Caller`](crate::http::Caller) gets
    /// the one in the request's extensions, or [`Caller::service`](crate::http::Caller::service)
    /// (a trusted service, an administrator).
    pub async fn request(
        &self,
        mut request: axum::http::Request<axum::body::Body>,
    ) -> (axum::http::StatusCode, serde_json::Value) {
        use tower::ServiceExt;
        if request.extensions().get::<crate::http::Caller>().is_none() {
            request
                .extensions_mut()
                .insert(crate::http::Caller::service());
        }
        let router = crate::http::extension_routes(&self.coordinator, |_, r| r);
        let response = router
            .oneshot(request)
            .await
            .expect("routers are infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap_or_default();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }
}

impl TestBuilder {
    /// Adds an extension. Unless the wiring lists `[extensions] enabled`, all added extensions run.
    pub fn extension(mut self, extension: impl Extension) -> Self {
        self.extensions.push(Box::new(extension));
        self
    }

    /// Adds a recording handler named `name` (`testing.<something>`) for payloads of type `P`.
    /// Wire it like any handler; read what it received with [`TestCoordinator::seen`].
    pub fn recorder<P: Payload>(mut self, name: &'static str) -> Self {
        self.recorders.declare.push(Box::new(move |ext, seen| {
            let seen = Arc::clone(seen);
            ext.handler(
                name,
                "Records every payload it receives.",
                move |event: Event<P>| {
                    seen.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .entry(name)
                        .or_default()
                        .push(event.shared_payload());
                    std::future::ready(Ok::<_, HandlerError>(()))
                },
            );
        }));
        self
    }

    /// Gives the coordinator a store, opened and migrated (the framework's tables and the
    /// extensions') when the harness is built and dropped with it: a backend's temporary store,
    /// such as `coordinator_sqlite::testing::temporary()`. Handlers can then enqueue tasks, and
    /// [`TestCoordinator::run_tasks`] runs them.
    ///
    /// [`build`](TestBuilder::build) must then be called within a Tokio runtime
    /// (`#[tokio::test]`).
    pub fn with_store(mut self, store: impl TestStore + 'static) -> Self {
        self.store = Some(Box::new(store));
        self
    }

    /// Sets the configuration (TOML): usually just `[signals]` and `[filters]`.
    pub fn wiring(mut self, toml: &str) -> Self {
        toml.clone_into(&mut self.wiring);
        self
    }

    /// Accepts these top-level sections in the wiring besides the framework's: the host
    /// application's own (the coordinator binary's `["server", "auth", "log"]`), for a test that
    /// uses a whole configuration file of that binary.
    pub fn host_sections(mut self, sections: &'static [&'static str]) -> Self {
        self.host_sections = sections;
        self
    }

    #[track_caller]
    fn config(&self) -> Config {
        let mut config = ConfigSource::new("the test wiring", &self.wiring, Vec::new())
            .framework(self.host_sections)
            .unwrap_or_else(|e| panic!("the test wiring is not a valid configuration: {e}"));
        if let Some(enabled) = &mut config.extensions.enabled {
            if !self.recorders.declare.is_empty() && !enabled.iter().any(|e| e == TESTING_EXTENSION)
            {
                enabled.push(TESTING_EXTENSION.to_owned());
            }
        }
        config
    }

    /// Every error and warning of the wiring, without building.
    #[track_caller]
    pub fn validate(&self) -> Validation {
        let config = self.config();
        let mut all: Vec<&dyn Extension> = self.extensions.iter().map(|e| &**e).collect();
        if !self.recorders.declare.is_empty() {
            all.push(&self.recorders);
        }
        wiring::compile(
            &Declarations::collect(all, &config),
            &config,
            &crate::http::Mounts::default(),
        )
        .0
    }

    /// Builds the coordinator.
    ///
    /// # Panics
    /// With every problem, if the wiring is invalid; if a store was asked for and cannot be
    /// created, or there is no Tokio runtime to run it on.
    #[track_caller]
    pub fn build(self) -> TestCoordinator {
        let config = self.config();
        let seen = Arc::clone(&self.recorders.seen);
        let mut builder: CoordinatorBuilder = Coordinator::builder()
            .extensions(self.extensions)
            .config(config);
        if !self.recorders.declare.is_empty() {
            builder = builder.extension(self.recorders);
        }
        let mut data = None;
        if let Some(store) = self.store {
            let (store, guard) = store.open().unwrap_or_else(|e| {
                panic!("TestBuilder::with_store: cannot open the test store: {e}")
            });
            builder = builder.store(store);
            data = Some(guard);
        }
        let coordinator = match builder.build() {
            Ok(coordinator) => coordinator,
            Err(e) => panic!("{e}"),
        };
        if let Some(data) = &data {
            data.migrate(coordinator.migrations()).unwrap_or_else(|e| {
                panic!("TestBuilder::with_store: cannot migrate the test store: {e}")
            });
        }
        TestCoordinator {
            coordinator,
            seen,
            _data: data,
        }
    }
}

/// An extension made from a name and a `build` closure: a quick fixture for tests.
///
/// ```
/// use coordinator::prelude::*;
///
/// #[derive(Debug, Serialize, Deserialize, JsonSchema)]
/// pub struct Tick { pub n: u32 }
/// static TICKED: Signal<Tick> = Signal::new("clock.ticked", "A tick.");
///
/// let clock = coordinator::testing::extension("clock", |ext| {
///     ext.signal(&TICKED);
/// });
/// assert_eq!(clock.name(), "clock");
/// ```
pub fn extension<F>(name: &'static str, build: F) -> impl Extension
where
    F: Fn(&mut ExtensionBuilder<'_>) + Send + Sync + 'static,
{
    struct FnExtension<F> {
        name: &'static str,
        build: F,
    }
    impl<F> Extension for FnExtension<F>
    where
        F: Fn(&mut ExtensionBuilder<'_>) + Send + Sync + 'static,
    {
        fn name(&self) -> &'static str {
            self.name
        }
        fn doc(&self) -> &'static str {
            "A test fixture."
        }
        fn build(&self, ext: &mut ExtensionBuilder<'_>) {
            (self.build)(ext);
        }
    }
    FnExtension { name, build }
}

/// The standard checks every extension should pass: its example configuration validates with
/// no error, its catalog entries are complete (docs on the extension and on everything it
/// declares, object schemas for payloads), and each of its routes answers (called with an empty
/// JSON object, it is found and does not fail with a 5xx). Returns every problem found; assert
/// it is empty. Call it from a plain `#[test]` (it runs its own runtime for the routes):
///
/// ```
/// # use coordinator::prelude::*;
/// # struct Quiet;
/// # impl Extension for Quiet {
/// #     fn name(&self) -> &'static str { "quiet" }
/// #     fn doc(&self) -> &'static str { "Does nothing." }
/// #     fn build(&self, _: &mut ExtensionBuilder<'_>) {}
/// # }
/// let problems = coordinator::testing::check_extension(Quiet, "");
/// assert!(problems.is_empty(), "{problems:#?}");
/// ```
pub fn check_extension(extension: impl Extension, example_config: &str) -> Vec<String> {
    check_extension_in(extension, example_config, &[])
}

/// [`check_extension`] with an example configuration that is a whole file of a host
/// application, whose own top-level `sections` it accepts (the coordinator binary's:
/// `["server", "auth", "log"]`).
pub fn check_extension_in(
    extension: impl Extension,
    example_config: &str,
    sections: &[&str],
) -> Vec<String> {
    check_extension_with(extension, Vec::new(), example_config, sections)
}

/// [`check_extension_in`] for an extension that works with others (enqueues their tasks,
/// handles their signals): `companions` run beside it, enabled unless the example
/// configuration lists `[extensions] enabled`. Only `extension` is checked.
pub fn check_extension_with(
    extension: impl Extension,
    companions: Vec<Box<dyn Extension>>,
    example_config: &str,
    sections: &[&str],
) -> Vec<String> {
    let mut problems = Vec::new();
    let name = extension.name();
    let source = ConfigSource::new("the example configuration", example_config, Vec::new());
    let config = match source.framework(sections) {
        Ok(c) => c,
        Err(e) => return vec![format!("the example configuration does not parse: {e}")],
    };
    let coordinator = match Coordinator::builder()
        .extension(extension)
        .extensions(companions)
        .config(config)
        .build()
    {
        Ok(c) => c,
        Err(e) => return vec![format!("the example configuration does not validate: {e}")],
    };
    let catalog = coordinator.catalog();
    for (ext, routes) in coordinator.routes() {
        let router = crate::http::extension_routes(&coordinator, |_, r| {
            r.layer(axum::Extension(crate::http::Caller::service()))
        });
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => return vec![format!("cannot start a runtime to call the routes: {e}")],
        };
        for route in routes {
            let path = route.path().replace(['{', '}'], "");
            let uri = format!("/api/{ext}{path}");
            let request = axum::http::Request::builder()
                .method(route.method().clone())
                .uri(&uri)
                .header(axum::http::header::CONTENT_TYPE, "application/json")
                .body(axum::body::Body::from("{}"))
                .expect("a valid request");
            let response = runtime.block_on(tower::ServiceExt::oneshot(router.clone(), request));
            let Ok(response) = response;
            let status = response.status();
            let is_problem = response
                .headers()
                .get(axum::http::header::CONTENT_TYPE)
                .is_some_and(|v| v == crate::http::PROBLEM_JSON);
            if status == axum::http::StatusCode::METHOD_NOT_ALLOWED
                || (status == axum::http::StatusCode::NOT_FOUND && !is_problem)
            {
                problems.push(format!(
                    "route {} {uri} is not mounted ({status})",
                    route.method()
                ));
            } else if status.is_server_error() {
                problems.push(format!(
                    "route {} {uri} fails with {status} when called with an empty JSON object",
                    route.method()
                ));
            }
            if route.description().trim().is_empty() {
                problems.push(format!("route {} {uri} has no doc", route.method()));
            }
        }
    }
    for e in catalog
        .extensions
        .iter()
        .filter(|e| e.doc.trim().is_empty())
    {
        problems.push(format!("extension \"{}\" has no doc", e.name));
    }
    if !catalog
        .extensions
        .iter()
        .any(|e| e.name == name && e.enabled)
    {
        problems.push(format!(
            "extension \"{name}\" is not enabled by its example configuration"
        ));
    }
    let undocumented = catalog
        .signals
        .iter()
        .map(|s| ("signal", &s.name, &s.doc))
        .chain(
            catalog
                .handlers
                .iter()
                .map(|h| ("handler", &h.name, &h.doc)),
        )
        .chain(catalog.filters.iter().map(|f| ("filter", &f.name, &f.doc)))
        .chain(catalog.steps.iter().map(|s| ("step", &s.name, &s.doc)));
    for (kind, n, doc) in undocumented {
        if doc.trim().is_empty() {
            problems.push(format!("{kind} \"{n}\" has no doc"));
        }
    }
    let schemas = catalog
        .signals
        .iter()
        .map(|s| (&s.name, &s.payload_schema))
        .chain(catalog.filters.iter().map(|f| (&f.name, &f.data_schema)));
    for (n, schema) in schemas {
        if schema.get("type").and_then(|t| t.as_str()) != Some("object") {
            problems.push(format!("the payload of \"{n}\" is not a JSON object (a struct with named fields documents itself best)"));
        }
    }
    problems
}
