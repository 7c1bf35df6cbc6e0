//! HTTP for extensions: routes declared through the extension builder ([`Route`]), the
//! [`Context`](crate::Context) and [`State`](crate::State) extractors, JSON bodies ([`Json`]),
//! and errors as `application/problem+json` ([`Problem`]).
//!
//! The host mounts each extension's routes under `/api/<extension>/` (or its [`Mounts`]). A
//! route handler takes a `Context` like any other axum extractor and sends signals or runs
//! filters with its extension as the sender, without plumbing. What a route needs from axum is
//! re-exported here, so an extension does not depend on axum itself.
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

pub(crate) mod caller;
pub(crate) mod json;
pub(crate) mod mount;
pub(crate) mod problem;
pub(crate) mod route;

pub use caller::{Caller, CallerKind};
pub use json::Json;
pub use mount::extension_routes;
pub use problem::{PROBLEM_JSON, Problem};
pub use route::{Access, Mounts, Route};

/// What route handlers use from axum, re-exported: extract headers, the raw body, query and
/// path parameters; answer with a status, headers, any response.
pub use axum::body::{Body, Bytes};
pub use axum::extract::{Path, Query};
pub use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header};
pub use axum::response::{IntoResponse, Redirect, Response};
