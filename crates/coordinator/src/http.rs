//! HTTP for extensions: routes declared through the extension builder, the [`Context`]
//! extractor, and errors as `application/problem+json` ([`Problem`]).
//!
//! The server mounts each extension's routes under `/api/<extension>/`. A route handler takes a
//! [`Context`] like any other axum extractor and sends signals or runs filters with its extension
//! as the sender, without plumbing.
//!
//! ```
//! use coordinator::http::{Json, Problem, Route};
//! use coordinator::prelude::*;
//!
//! #[derive(Debug, Serialize, Deserialize, JsonSchema)]
//! pub struct Ping { pub n: u32 }
//!
//! async fn ping(ctx: Context, Json(body): Json<Ping>) -> Result<Json<Ping>, Problem> {
//!     let _ = ctx.sender(); // `Sender::Extension("...")`: the extension that owns the route.
//!     Ok(Json(body))
//! }
//!
//! let route = Route::post("/ping", ping).doc("Echoes a ping.").request::<Ping>().response::<Ping>();
//! assert_eq!(route.path(), "/ping");
//! ```

use std::fmt;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::handler::Handler;
use axum::http::{HeaderValue, Method, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::coordinator::Context;
use crate::payload::schema_of;

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Requires the API credentials (`Authorization: Bearer <JWT or API token>`). The default.
    Api,
    /// No framework authentication: the route authenticates callers itself (a webhook checks its
    /// signature) or is deliberately public.
    Public,
}

/// One HTTP route of an extension: method, path (relative to `/api/<extension>`), handler,
/// access, and what the OpenAPI document says about it.
#[derive(Clone)]
pub struct Route {
    pub(crate) method: Method,
    pub(crate) path: &'static str,
    pub(crate) access: Access,
    pub(crate) doc: &'static str,
    pub(crate) request_schema: Option<fn() -> serde_json::Value>,
    pub(crate) response_schema: Option<fn() -> serde_json::Value>,
    pub(crate) router: MethodRouter,
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

macro_rules! route_constructor {
    ($name:ident, $method:ident, $filter:ident) => {
        #[doc = concat!("A `", stringify!($method), "` route at `path` (relative to `/api/<extension>`).")]
        pub fn $name<H, T>(path: &'static str, handler: H) -> Self
        where
            H: Handler<T, ()>,
            T: 'static,
        {
            Self::new(Method::$method, MethodFilter::$filter, path, handler)
        }
    };
}

impl Route {
    fn new<H, T>(method: Method, filter: MethodFilter, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, ()>,
        T: 'static,
    {
        Self {
            method,
            path,
            access: Access::Api,
            doc: "",
            request_schema: None,
            response_schema: None,
            router: on(filter, handler),
        }
    }

    route_constructor!(get, GET, GET);
    route_constructor!(post, POST, POST);
    route_constructor!(put, PUT, PUT);
    route_constructor!(patch, PATCH, PATCH);
    route_constructor!(delete, DELETE, DELETE);

    /// What the route does, for the OpenAPI document and the catalog.
    pub fn doc(mut self, doc: &'static str) -> Self {
        self.doc = doc;
        self
    }

    /// Makes the route public: the framework does not authenticate callers (a webhook route
    /// checks its own signature instead).
    pub fn public(mut self) -> Self {
        self.access = Access::Public;
        self
    }

    /// Documents the JSON request body.
    pub fn request<T: schemars::JsonSchema>(mut self) -> Self {
        self.request_schema = Some(schema_of::<T>);
        self
    }

    /// Documents the JSON response body.
    pub fn response<T: schemars::JsonSchema>(mut self) -> Self {
        self.response_schema = Some(schema_of::<T>);
        self
    }

    /// The HTTP method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path, relative to `/api/<extension>`.
    pub fn path(&self) -> &'static str {
        self.path
    }

    /// Who may call it.
    pub fn access(&self) -> Access {
        self.access
    }

    /// What it does.
    pub fn description(&self) -> &'static str {
        self.doc
    }

    /// The JSON schema of the request body, if documented.
    pub fn request_schema(&self) -> Option<serde_json::Value> {
        self.request_schema.map(|f| f())
    }

    /// The JSON schema of the response body, if documented.
    pub fn response_schema(&self) -> Option<serde_json::Value> {
        self.response_schema.map(|f| f())
    }

    /// The axum method router that serves it.
    pub fn method_router(&self) -> MethodRouter {
        self.router.clone()
    }
}

/// The paths the server itself serves; no extension may be mounted on or under them.
pub const CORE_PATHS: &[&str] = &[
    "/health",
    "/ready",
    "/metrics",
    "/api/v1",
    "/api/openapi.json",
];

/// Every enabled extension's routes, each extension's under its mount (`/api/<extension>`
/// unless `[server.mounts]` says otherwise), with a
/// [`Context`] (sending as that extension) available to every handler. `protect` wraps the
/// routes that require API credentials ([`Access::Api`]); the server passes its authentication
/// layer, tests may pass the identity.
pub fn extension_routes(
    coordinator: &crate::Coordinator,
    protect: impl Fn(MethodRouter) -> MethodRouter,
) -> axum::Router {
    let mut app = axum::Router::new();
    for (extension, routes) in coordinator.routes() {
        let mut router = axum::Router::new();
        for route in routes {
            let method_router = match route.access {
                Access::Api => protect(route.router),
                Access::Public => route.router,
            };
            router = router.route(route.path, method_router);
        }
        app = app.nest(
            &coordinator.config().server.mount_of(extension),
            router.layer(axum::Extension(coordinator.context(extension))),
        );
    }
    app
}

/// An error response in the shape of RFC 9457 (`application/problem+json`).
///
/// `detail` is for the caller: say what was wrong with the request and how to fix it. Internal
/// causes are logged with [`Problem::internal`], never returned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Problem {
    /// A URI naming the kind of problem; `about:blank` when the status says it all.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem (the status's reason phrase by default).
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request, and how to fix it.
    pub detail: String,
    /// More members (such as `errors`, a list of problems found in the body).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Problem {
    /// A problem with `status` and `detail`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank".to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            extra: serde_json::Map::new(),
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    /// 401: credentials are missing or invalid.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, detail)
    }

    /// 403: the credentials are valid but do not allow this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }

    /// 404: nothing here.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    /// 422: well-formed, but not acceptable.
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }

    /// 500: logs `error` with its chain at ERROR and answers with a generic detail.
    pub fn internal(error: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = vec![error.to_string()];
        let mut cur = error.source();
        while let Some(e) = cur {
            chain.push(e.to_string());
            cur = e.source();
        }
        tracing::error!(error = %chain.join(": "), "internal error while serving a request");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the server failed to handle the request; the error is logged with this request's id",
        )
    }

    /// Adds a member to the body.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.title, self.detail)
    }
}

impl std::error::Error for Problem {}

/// The media type of problem responses.
pub const PROBLEM_JSON: &str = "application/problem+json";

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        response
    }
}

/// JSON request and response bodies. A body that is not valid JSON, or not of the expected
/// shape, is rejected with a 400 [`Problem`] saying where it is wrong (line, column, field).
#[derive(Clone, Copy, Debug, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_problem(&rejection)),
        }
    }
}

fn json_problem(rejection: &JsonRejection) -> Problem {
    let status = rejection.status();
    let detail = match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            "the request body must be JSON: send the header `Content-Type: application/json`"
                .to_owned()
        }
        JsonRejection::JsonSyntaxError(e) => {
            format!("the request body is not valid JSON: {}", source_text(e))
        }
        JsonRejection::JsonDataError(e) => {
            format!(
                "the request body does not have the expected shape: {}",
                source_text(e)
            )
        }
        other => other.body_text(),
    };
    Problem::new(status, detail)
}

/// The innermost cause's text (serde's "line 1 column 7"-style message).
fn source_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        last = s.to_string();
        cur = s.source();
    }
    last
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Context {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Context>().cloned().ok_or_else(|| {
            tracing::error!(
                "a route asked for a Context but was not mounted by the coordinator server"
            );
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the route is not mounted by the coordinator server",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Order {
        number: String,
        amount: u64,
    }

    async fn problem_for(body: &str, content_type: &str) -> (StatusCode, serde_json::Value) {
        let req = Request::builder()
            .method("POST")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body.to_owned()))
            .unwrap();
        let problem = Json::<Order>::from_request(req, &()).await.unwrap_err();
        let response = problem.into_response();
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn bad_json_says_where_it_is_bad() {
        let (status, body) =
            problem_for("{\"number\": \"A\",\n \"amount\": }", "application/json").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.starts_with("the request body is not valid JSON: "),
            "{detail}"
        );
        assert!(detail.contains("line 2 column"), "{detail}");
    }

    #[tokio::test]
    async fn a_body_of_the_wrong_shape_names_the_field() {
        let (status, body) = problem_for(
            "{\"number\": \"A\", \"amount\": \"ten\"}",
            "application/json",
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains("amount"), "{detail}");
    }

    #[tokio::test]
    async fn a_missing_content_type_says_which_header_to_send() {
        let (status, body) = problem_for("{}", "text/plain").await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("Content-Type: application/json")
        );
    }
}
