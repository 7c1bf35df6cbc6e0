//! The HTTP server's router: the core routes, every extension's routes, and the middleware that
//! every request goes through.
//!
//! Each module has one `router()`; [`router`] merges them, mounts the extensions (with
//! [`auth`] on their [`Access::Api`](coordinator::http::Access) routes) and wraps everything in
//! the [`middleware`]: request id and tracing span, metrics, panic catching, errors as
//! `application/problem+json`, request timeout and body limit.
//!
//! | path | what | auth |
//! | --- | --- | --- |
//! | `/health` | the process answers | none |
//! | `/ready` | the database answers and is migrated | none |
//! | `/metrics` | Prometheus metrics | none |
//! | `/api/openapi.json` | the OpenAPI document of every route | none |
//! | `/api/v1/catalog` | the catalog | API |
//! | `/api/v1/dispatches`, `/api/v1/dispatches/{id}` | the dispatch log | API |
//! | `/api/v1/tasks`, `/api/v1/tasks/{id}`, `.../retry`, `.../cancel` | the task queue | API |
//! | `/api/v1/services` | external services: circuit breakers and call counts | API |
//! | `/api/<extension>/...` | extension routes | per route |

pub mod auth;
mod dispatches;
mod error;
mod health;
pub mod metrics;
pub mod middleware;
pub mod openapi;
mod paging;
mod services;
mod tasks;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use coordinator::migration::Migration;
use coordinator::store::Store;
use coordinator::{Coordinator, WorkerHealth};

use crate::settings::AppConfig;

pub use auth::{Auth, AuthError};
pub use dispatches::DispatchList;
pub use error::ApiError;
pub use metrics::Metrics;
pub use tasks::TaskList;

/// What the route handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The coordinator (catalog, extension contexts, configuration).
    pub coordinator: Coordinator,
    /// The database.
    pub store: Store,
    /// The metrics registry.
    pub metrics: Arc<Metrics>,
    /// Who may call the API.
    pub auth: Arc<Auth>,
    /// The configuration (with the server's own sections).
    pub config: Arc<AppConfig>,
    /// Every migration the database must have applied to be ready (framework's are implicit).
    pub migrations: Arc<[Migration]>,
    /// The health of the task worker running in this process, if one does (readiness).
    pub worker: Option<WorkerHealth>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("coordinator", &self.coordinator)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// The routes of a standalone worker (`[worker] bind`): `/health`, `/ready` and `/metrics`.
pub fn operations_router(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(metrics::router())
        .with_state(state)
        .fallback(middleware::not_found)
}

/// The whole application: every route, with the middleware, ready to serve.
pub fn router(state: AppState) -> Router {
    let server = &state.config.server;
    let settings = middleware::Settings {
        body_limit: server.body_limit_bytes,
        request_timeout: server.request_timeout.0,
        body_timeout: server.body_timeout.0,
    };
    let auth = Arc::clone(&state.auth);
    let metrics = Arc::clone(&state.metrics);
    let extensions =
        coordinator::http::extension_routes(&state.coordinator, move |access, route| {
            route.route_layer(axum::middleware::from_fn_with_state(
                (Arc::clone(&auth), access),
                auth::require_credentials,
            ))
        });
    let api_v1 = Router::new()
        .merge(dispatches::router())
        .merge(tasks::router())
        .merge(services::router())
        .route_layer(axum::middleware::from_fn_with_state(
            (Arc::clone(&state.auth), coordinator::http::Access::Api),
            auth::require_credentials,
        ));
    let routes = Router::new()
        .merge(health::router())
        .merge(metrics::router())
        .merge(openapi::router())
        .nest("/api/v1", api_v1)
        .with_state(state)
        .merge(extensions)
        .fallback(middleware::not_found)
        // Per route, where the route template is known.
        .layer(axum::middleware::from_fn(middleware::record_route))
        .layer(DefaultBodyLimit::max(settings.body_limit));
    // Around the whole router, so that they see every answer as the client will (the `Allow`
    // header of a 405 is added by the routing itself). Innermost first.
    Router::new()
        .fallback_service(routes)
        .layer(axum::middleware::from_fn_with_state(
            settings,
            middleware::limit_body,
        ))
        .layer(axum::middleware::from_fn_with_state(
            settings,
            middleware::time_out,
        ))
        .layer(axum::middleware::from_fn_with_state(
            settings,
            middleware::problem_responses,
        ))
        .layer(axum::middleware::from_fn(middleware::catch_panic))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            middleware::observe,
        ))
}

#[cfg(test)]
pub(crate) mod testing {
    //! A real router over a fresh SQLite database, for the unit tests.

    use axum::body::Body;
    use axum::http::{HeaderMap, Request, StatusCode};
    use axum::response::Response;
    use coordinator::config::ConfigSource;
    use tower::ServiceExt as _;

    use super::*;
    use crate::server;

    /// The API token every test app accepts.
    pub const TOKEN: &str = "test-token-0123456789";

    /// A router and what it runs on; the database lives as long as this value.
    pub struct TestApp {
        pub router: Router,
        pub state: AppState,
        /// The dispatch log writer, kept but not run: reports wait in the buffer.
        _writer: Option<coordinator::DispatchLogWriter>,
        _dir: tempfile::TempDir,
    }

    /// An app on the embedded default configuration with the `COORDINATOR__*` `overrides`, over
    /// a migrated SQLite database in a temporary folder. `[auth] api_tokens` is [`TOKEN`] unless
    /// an override sets something in `[auth]`.
    pub async fn app(overrides: &[(&str, &str)]) -> TestApp {
        app_with(overrides, true).await
    }

    /// Like [`app`], without migrating the database when `migrate` is false.
    pub async fn app_with(overrides: &[(&str, &str)], migrate: bool) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let mut env: Vec<(String, String)> = overrides
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        if !env
            .iter()
            .any(|(k, _)| k.starts_with("COORDINATOR__AUTH__"))
        {
            env.push((
                "COORDINATOR__AUTH__API_TOKENS".to_owned(),
                format!("[\"{TOKEN}\"]"),
            ));
        }
        env.push((
            "COORDINATOR__STORAGE__URL".to_owned(),
            format!("sqlite://{}/c.db", dir.path().display()),
        ));
        let source = ConfigSource::new("test", crate::config::DEFAULT_CONFIG, env);
        let config = AppConfig::read(&source).unwrap();
        let validated = server::validate(config, crate::bundled())
            .unwrap_or_else(|v| panic!("an invalid configuration:\n{v}"));
        let store = crate::storage::connect(&validated.config().storage)
            .await
            .unwrap();
        let mut prepared = validated
            .prepare(store.clone())
            .unwrap_or_else(|v| panic!("an invalid configuration:\n{v}"));
        if migrate {
            store
                .migrate(&prepared.coordinator.migrations())
                .await
                .unwrap();
        }
        let state = prepared.state();
        TestApp {
            router: router(state.clone()),
            state,
            _writer: prepared.dispatch_log_writer.take(),
            _dir: dir,
        }
    }

    impl TestApp {
        /// Sends `request` through the router.
        pub async fn send(&self, request: Request<Body>) -> Response {
            self.router.clone().oneshot(request).await.unwrap()
        }

        /// `GET path` with the test token.
        pub async fn get(&self, path: &str) -> (StatusCode, HeaderMap, serde_json::Value) {
            let request = Request::get(path)
                .header("authorization", format!("Bearer {TOKEN}"))
                .body(Body::empty())
                .unwrap();
            parts(self.send(request).await).await
        }

        /// `POST path` with a JSON body and the test token.
        pub async fn post(
            &self,
            path: &str,
            body: serde_json::Value,
        ) -> (StatusCode, HeaderMap, serde_json::Value) {
            let request = Request::post(path)
                .header("authorization", format!("Bearer {TOKEN}"))
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap();
            parts(self.send(request).await).await
        }
    }

    /// Status, headers and the body as JSON (`null` when it is not JSON).
    pub async fn parts(response: Response) -> (StatusCode, HeaderMap, serde_json::Value) {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
            .await
            .unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, headers, json)
    }

    /// The body as text.
    pub async fn text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// An order for `POST /api/demo/orders`.
    pub fn order(number: &str) -> serde_json::Value {
        serde_json::json!({
            "order_number": number,
            "lms_user_id": 7,
            "email": "ada@example.com",
            "course_run_key": "course-v1:edX+DemoX+2024",
            "amount_cents": 4900,
        })
    }
}
