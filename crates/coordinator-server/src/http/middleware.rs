//! What every request goes through, outermost first:
//!
//! 1. [`observe`]: a request id (the caller's sane `X-Request-Id`, else a new UUIDv7) echoed in
//!    the response, a tracing span (request id, method, route, status, latency) around
//!    everything below so that every log line of the request carries the id, one log line when
//!    it is answered, and the HTTP metrics. The route template is filled in by
//!    [`record_route`], which runs per route once routing has matched (`unmatched` otherwise).
//! 2. [`catch_panic`]: a panicking route answers 500 instead of dropping the connection.
//! 3. [`problem_responses`]: any error response that is not already
//!    `application/problem+json` (axum's own plain-text rejections, 405s) becomes one, with the
//!    original text as detail (5xx texts are logged, not returned).
//! 4. [`time_out`]: `[server] request_timeout`, answered with 503.
//! 5. [`limit_body`]: the request's own limits (its target 414, its headers 431, its body
//!    `[server] body_limit_bytes` 413 and `[server] body_timeout` 408), with axum's
//!    `DefaultBodyLimit` behind it.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use coordinator::http::{PROBLEM_JSON, Problem};
use futures_util::FutureExt as _;
use tokio::time::Instant;
use tracing::{Instrument as _, error, field, info, info_span, warn};

use super::error::ApiError;
use super::metrics::Metrics;

/// The header that carries the request id.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request id of a request (in its extensions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub String);

/// The limits the middleware enforces, from `[server]`.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// `[server] body_limit_bytes`.
    pub body_limit: usize,
    /// `[server] request_timeout`.
    pub request_timeout: Duration,
    /// `[server] body_timeout`.
    pub body_timeout: Duration,
}

/// A caller's request id is used when it is short and plain (so that it cannot forge log
/// lines or blow up label values); otherwise a new one is made.
fn sane_request_id(value: &HeaderValue) -> Option<&str> {
    let text = value.to_str().ok()?;
    let plain =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/' | '+' | '=');
    (!text.is_empty() && text.len() <= 128 && text.chars().all(plain)).then_some(text)
}

/// The route template of a request, filled in by [`record_route`] once routing has matched.
#[derive(Clone, Debug, Default)]
struct RouteSlot(Arc<std::sync::OnceLock<String>>);

/// Request id, span, log line and metrics (see the module docs).
pub async fn observe(
    State(metrics): State<Arc<Metrics>>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let request_id = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(sane_request_id)
        .map_or_else(|| coordinator::id::new_uuid().to_string(), str::to_owned);
    let method = request.method().clone();
    let span = info_span!(
        "request",
        request_id = %request_id,
        method = %method,
        route = field::Empty,
        status = field::Empty,
        latency_ms = field::Empty,
    );
    let slot = RouteSlot::default();
    request.extensions_mut().insert(slot.clone());
    request
        .extensions_mut()
        .insert(RequestId(request_id.clone()));
    let in_flight = metrics.request_started();
    let mut response = next.run(request).instrument(span.clone()).await;
    drop(in_flight);
    let took = started.elapsed();
    let status = response.status();
    let route = slot.0.get().map_or("unmatched", String::as_str);
    span.record("status", status.as_u16());
    span.record(
        "latency_ms",
        field::display(format_args!("{:.3}", took.as_secs_f64() * 1000.0)),
    );
    span.in_scope(|| {
        // A 503 says "send it again" (the database did not take the work, a handler did not
        // make its work durable, the request timed out): its cause is logged where it happened,
        // so the answer itself is not a second warning.
        if status.is_server_error() && status != axum::http::StatusCode::SERVICE_UNAVAILABLE {
            warn!("request answered with a server error");
        } else {
            info!("request answered");
        }
    });
    metrics.http_request(route, &method, status, took);
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
    response
}

/// Per route: records the matched route template in the request's span and for the metrics.
pub async fn record_route(request: Request, next: Next) -> Response {
    if let Some(matched) = request.extensions().get::<MatchedPath>() {
        tracing::Span::current().record("route", matched.as_str());
        if let Some(slot) = request.extensions().get::<RouteSlot>() {
            let _ = slot.0.set(matched.as_str().to_owned());
        }
    }
    next.run(request).await
}

/// Answers 500 (and logs the panic) when a route panics.
pub async fn catch_panic(request: Request, next: Next) -> Response {
    match AssertUnwindSafe(next.run(request)).catch_unwind().await {
        Ok(response) => response,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic with a non-text payload".to_owned());
            error!(panic = %message, "a route panicked while serving the request");
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the server failed to handle the request; the error is logged with this request's id",
            )
            .into_response()
        }
    }
}

/// Turns every error response into `application/problem+json` (see the module docs).
pub async fn problem_responses(
    State(settings): State<Settings>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        // Whoever noticed (the Content-Length check, an extractor reading the body), say which
        // setting it is.
        return with_headers_of(
            &response,
            ApiError::BodyTooLarge {
                limit: settings.body_limit,
            }
            .into_response(),
        );
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    let original = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let detail = if status == StatusCode::METHOD_NOT_ALLOWED {
        let allowed = parts
            .headers
            .get(header::ALLOW)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map_or_else(String::new, |v| format!("; allowed: {v}"));
        format!("{method} is not allowed on {path}{allowed}")
    } else if status.is_server_error() {
        if !original.is_empty() {
            error!(status = status.as_u16(), response = %original, "internal error while serving the request");
        }
        "the server failed to handle the request; the error is logged with this request's id"
            .to_owned()
    } else if original.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        original
    };
    let mut converted = Problem::new(status, detail).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            converted.headers_mut().append(name, value.clone());
        }
    }
    converted
}

fn with_headers_of(original: &Response, mut new: Response) -> Response {
    for (name, value) in original.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.headers_mut().append(name, value.clone());
        }
    }
    new
}

/// Answers 503 when the request takes longer than `[server] request_timeout`.
pub async fn time_out(State(settings): State<Settings>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(settings.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            warn!(timeout = ?settings.request_timeout, "request timed out and was abandoned");
            ApiError::Timeout(settings.request_timeout).into_response()
        }
    }
}

/// The longest request target (path and query) accepted, in bytes.
pub const MAX_URI: usize = 8 * 1024;

/// The most header bytes (names and values) accepted.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// The most headers accepted.
pub const MAX_HEADER_COUNT: usize = 100;

/// The request's own limits: a target longer than [`MAX_URI`] is answered 414, headers past
/// [`MAX_HEADER_COUNT`] or [`MAX_HEADER_BYTES`] 431, a body larger than `[server]
/// body_limit_bytes` 413, and a body that does not arrive within `[server] body_timeout` 408
/// (the body is read here, whole, before the route runs).
pub async fn limit_body(
    State(settings): State<Settings>,
    request: Request,
    next: Next,
) -> Response {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    if target > MAX_URI {
        return ApiError::UriTooLong {
            length: target,
            limit: MAX_URI,
        }
        .into_response();
    }
    let headers = request.headers();
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers.len() > MAX_HEADER_COUNT || header_bytes > MAX_HEADER_BYTES {
        return ApiError::HeadersTooLarge {
            problem: format!(
                "{} headers of {header_bytes} bytes; at most {MAX_HEADER_COUNT} headers of \
                 {MAX_HEADER_BYTES} bytes are accepted",
                headers.len()
            ),
        }
        .into_response();
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > settings.body_limit as u64) {
        return ApiError::BodyTooLarge {
            limit: settings.body_limit,
        }
        .into_response();
    }
    let has_body = declared.is_some_and(|length| length > 0)
        || headers.contains_key(header::TRANSFER_ENCODING);
    if !has_body {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let read = tokio::time::timeout(
        settings.body_timeout,
        axum::body::to_bytes(body, settings.body_limit),
    )
    .await;
    match read {
        Err(_) => ApiError::BodyTimeout(settings.body_timeout).into_response(),
        Ok(Err(e)) if is_length_limit(&e) => ApiError::BodyTooLarge {
            limit: settings.body_limit,
        }
        .into_response(),
        Ok(Err(e)) => ApiError::BadBody(e.to_string()).into_response(),
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                .await
        }
    }
}

/// Whether reading a body failed because it passed the limit.
fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// The fallback: no route matches.
pub async fn not_found(request: Request) -> ApiError {
    ApiError::RouteNotFound {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;

    use super::*;
    use crate::http::testing::{self, TOKEN};
    use uuid::Uuid;

    fn post(path: &str, body: impl Into<Body>) -> Request<Body> {
        Request::post(path)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .body(body.into())
            .unwrap()
    }

    #[tokio::test]
    async fn bad_json_is_a_problem_that_says_line_and_column() {
        let app = testing::app(&[]).await;
        let response = app
            .send(post(
                "/api/demo/orders",
                "{\"order_number\": \"A\",\n \"lms_user_id\": }",
            ))
            .await;
        let (status, headers, body) = testing::parts(response).await;
        assert_eq!(status, 400);
        assert_eq!(headers["content-type"], PROBLEM_JSON);
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains("line 2 column"), "{detail}");
    }

    #[tokio::test]
    async fn an_unknown_route_is_a_404_problem() {
        let app = testing::app(&[]).await;
        let (status, headers, body) = app.get("/api/nothing/here").await;
        assert_eq!(status, 404);
        assert_eq!(headers["content-type"], PROBLEM_JSON);
        assert_eq!(
            body["detail"],
            "no route for GET /api/nothing/here; every route is listed at /api/openapi.json"
        );
        assert_eq!(body["status"], 404);
        assert_eq!(body["title"], "Not Found");
    }

    #[tokio::test]
    async fn a_wrong_method_is_a_405_problem_listing_the_allowed_ones() {
        let app = testing::app(&[]).await;
        let (status, headers, body) = app.get("/api/demo/orders").await;
        assert_eq!(status, 405, "{body}");
        assert_eq!(headers["content-type"], PROBLEM_JSON);
        assert!(headers.contains_key("allow"));
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.starts_with("GET is not allowed on /api/demo/orders; allowed: "),
            "{detail}"
        );
        assert!(detail.contains("POST"), "{detail}");
        let response = app
            .send(Request::delete("/health").body(Body::empty()).unwrap())
            .await;
        assert_eq!(response.status(), 405);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_a_413_problem_naming_the_setting() {
        let app = testing::app(&[("COORDINATOR__SERVER__BODY_LIMIT_BYTES", "64")]).await;
        let big = testing::order(&"X".repeat(100)).to_string();
        let (status, headers, body) =
            testing::parts(app.send(post("/api/demo/orders", big.clone())).await).await;
        assert_eq!(status, 413, "{body}");
        assert_eq!(headers["content-type"], PROBLEM_JSON);
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains("larger than 64 bytes"), "{detail}");
        assert!(detail.contains("[server] body_limit_bytes"), "{detail}");
        assert_eq!(body["limit_bytes"], 64);

        // Without Content-Length (a streamed body), the extractor notices; the answer is the same.
        let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(big)]);
        let (status, _, body) = testing::parts(
            app.send(post("/api/demo/orders", Body::from_stream(stream)))
                .await,
        )
        .await;
        assert_eq!(status, 413, "{body}");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("[server] body_limit_bytes")
        );
    }

    #[tokio::test]
    async fn a_request_over_the_timeout_is_a_503_problem() {
        let app = testing::app(&[("COORDINATOR__SERVER__REQUEST_TIMEOUT", "1ms")]).await;
        // The handler sleeps past the timeout (the demo's handlers are fast, so use a route
        // of our own wrapped in the same middleware).
        let slow = axum::Router::new()
            .route(
                "/slow",
                axum::routing::get(|| async {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    "late"
                }),
            )
            .layer(axum::middleware::from_fn_with_state(
                Settings {
                    body_limit: 10,
                    request_timeout: Duration::from_millis(1),
                    body_timeout: Duration::from_secs(1),
                },
                time_out,
            ));
        let response =
            tower::ServiceExt::oneshot(slow, Request::get("/slow").body(Body::empty()).unwrap())
                .await
                .unwrap();
        let (status, headers, body) = testing::parts(response).await;
        assert_eq!(status, 503);
        assert_eq!(headers["content-type"], PROBLEM_JSON);
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("[server] request_timeout")
        );
        drop(app);
    }

    #[tokio::test]
    async fn request_ids_are_echoed_or_made() {
        let app = testing::app(&[]).await;
        let response = app
            .send(
                Request::get("/health")
                    .header("x-request-id", "lms-req-42")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(response.headers()["x-request-id"], "lms-req-42");

        for bad in ["", "has spaces in it", &"x".repeat(200)] {
            let response = app
                .send(
                    Request::get("/health")
                        .header("x-request-id", bad)
                        .body(Body::empty())
                        .unwrap(),
                )
                .await;
            let id = response.headers()["x-request-id"].to_str().unwrap();
            let uuid = Uuid::parse_str(id).unwrap_or_else(|_| panic!("{bad:?} -> {id}"));
            assert_eq!(uuid.get_version_num(), 7);
        }
        // Errors carry one too.
        let (_, headers, _) = app.get("/nowhere").await;
        assert!(headers.contains_key("x-request-id"));
    }

    #[tokio::test]
    async fn plain_text_rejections_become_problems() {
        // A JSON body where the route expects a path parameter of another type: axum's own
        // plain-text rejection.
        let router = axum::Router::new()
            .route(
                "/n/{n}",
                axum::routing::get(
                    |axum::extract::Path(n): axum::extract::Path<u32>| async move { n.to_string() },
                ),
            )
            .layer(axum::middleware::from_fn_with_state(
                Settings {
                    body_limit: 10,
                    request_timeout: Duration::from_secs(1),
                    body_timeout: Duration::from_secs(1),
                },
                problem_responses,
            ));
        let response = tower::ServiceExt::oneshot(
            router,
            Request::get("/n/minus-one").body(Body::empty()).unwrap(),
        )
        .await
        .unwrap();
        let (status, headers, body) = testing::parts(response).await;
        assert_eq!(status, 400);
        assert_eq!(headers["content-type"], PROBLEM_JSON);
        assert!(
            body["detail"].as_str().unwrap().contains("Invalid URL"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn a_panicking_route_answers_500_without_details() {
        let router = axum::Router::new()
            .route(
                "/boom",
                axum::routing::get(|| async {
                    if true {
                        panic!("secret internals");
                    }
                    "unreachable"
                }),
            )
            .layer(axum::middleware::from_fn(catch_panic));
        let response =
            tower::ServiceExt::oneshot(router, Request::get("/boom").body(Body::empty()).unwrap())
                .await
                .unwrap();
        let (status, _, body) = testing::parts(response).await;
        assert_eq!(status, 500);
        assert!(!body.to_string().contains("secret"), "{body}");
    }
}
