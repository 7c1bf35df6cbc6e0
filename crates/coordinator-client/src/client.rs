//! [`ServiceClient`]: calls to one external service, with its timeouts, token, breaker,
//! statistics and spans.

use std::sync::Arc;
use std::time::Duration;

use coordinator::config::Secret;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, RETRY_AFTER};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tracing::{Instrument, debug, field, info_span, warn};

use crate::breaker::{Breaker, BreakerConfig, BreakerState};
use crate::error::{CallError, TransientKind, clip};
use crate::stats::{self, Outcome, ServiceStats};
use crate::token::{OAuth2, Token, TokenAnswer, TokenCache};

/// The largest answer body read; a longer one is an error.
pub const BODY_LIMIT: usize = 16 * 1024 * 1024;

/// How a client authenticates to its service.
#[derive(Debug, Clone, Default)]
pub enum Auth {
    /// No `Authorization` header.
    #[default]
    None,
    /// A fixed token: `Authorization: Bearer <token>` (Stripe's secret key).
    Bearer(Secret),
    /// HTTP Basic with a user and password (PayPal's client id and secret).
    Basic {
        /// The user (a client id).
        user: String,
        /// The password (a client secret).
        password: Secret,
    },
    /// OAuth2 client-credentials tokens, fetched and renewed as needed.
    OAuth2(OAuth2),
}

/// What a [`ServiceClient`] calls and how.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The service's name in errors, spans and metrics (`lms`, `commercetools`).
    pub name: &'static str,
    /// The base URL every call's path is appended to (`https://lms.example.com`).
    pub base_url: String,
    /// The longest a call may take, answer included. Default 30 s.
    pub timeout: Duration,
    /// The longest connecting may take. Default 5 s.
    pub connect_timeout: Duration,
    /// How to authenticate.
    pub auth: Auth,
    /// When the breaker opens.
    pub breaker: BreakerConfig,
}

impl ServiceConfig {
    /// A service at `base_url` with the default timeouts and breaker, no authentication.
    pub fn new(name: &'static str, base_url: impl Into<String>) -> Self {
        Self {
            name,
            base_url: base_url.into(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            auth: Auth::None,
            breaker: BreakerConfig::default(),
        }
    }

    /// Sets the total timeout of a call.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the authentication.
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// Sets the breaker.
    pub fn breaker(mut self, breaker: BreakerConfig) -> Self {
        self.breaker = breaker;
        self
    }
}

/// A client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL is not an absolute http(s) URL.
    #[error(
        "{service}: the URL {url:?} is not an absolute http:// or https:// URL; set the \
         service's URL in its extension's settings"
    )]
    BadUrl {
        /// The service.
        service: &'static str,
        /// The URL given.
        url: String,
    },
    /// The HTTP client could not be built (TLS roots).
    #[error("{service}: the HTTP client could not be built: {message}")]
    Build {
        /// The service.
        service: &'static str,
        /// Why.
        message: String,
    },
}

/// One call: method, route template, the path to call, and what to send.
///
/// The route template (`/{project}/orders/{id}`) names the call in spans, errors and metrics
/// (so that ids and personal data stay out of them); the path is what is called.
#[derive(Debug, Clone)]
pub struct Call {
    method: reqwest::Method,
    route: &'static str,
    path: Option<String>,
    query: Vec<(String, String)>,
    body: Result<Option<Body>, String>,
    headers: Vec<(&'static str, String)>,
}

#[derive(Debug, Clone)]
enum Body {
    Json(Vec<u8>),
    Form(String),
}

impl Call {
    fn new(method: reqwest::Method, route: &'static str) -> Self {
        Self {
            method,
            route,
            path: None,
            query: Vec::new(),
            body: Ok(None),
            headers: Vec::new(),
        }
    }

    /// A GET of `route` (also the path, unless [`Call::path`] sets one).
    pub fn get(route: &'static str) -> Self {
        Self::new(reqwest::Method::GET, route)
    }

    /// A POST.
    pub fn post(route: &'static str) -> Self {
        Self::new(reqwest::Method::POST, route)
    }

    /// A PUT.
    pub fn put(route: &'static str) -> Self {
        Self::new(reqwest::Method::PUT, route)
    }

    /// A DELETE.
    pub fn delete(route: &'static str) -> Self {
        Self::new(reqwest::Method::DELETE, route)
    }

    /// The path to call, when the route is a template (`/orders/{id}` → `/orders/42`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Adds a query parameter.
    pub fn query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }

    /// Sends `body` as JSON.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        self.body = serde_json::to_vec(body)
            .map(|b| Some(Body::Json(b)))
            .map_err(|e| format!("the body does not serialize to JSON: {e}"));
        self
    }

    /// Sends these fields as `application/x-www-form-urlencoded`.
    pub fn form(mut self, fields: &[(&str, &str)]) -> Self {
        let mut form = reqwest::Url::parse("http://form.invalid/").expect("a valid URL");
        form.query_pairs_mut().extend_pairs(fields);
        self.body = Ok(Some(Body::Form(
            form.query().unwrap_or_default().to_owned(),
        )));
        self
    }

    /// Adds a header (`Idempotency-Key`). Its value is never logged.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The method, as text.
    fn method_str(&self) -> &'static str {
        match self.method {
            reqwest::Method::GET => "GET",
            reqwest::Method::POST => "POST",
            reqwest::Method::PUT => "PUT",
            reqwest::Method::DELETE => "DELETE",
            reqwest::Method::PATCH => "PATCH",
            _ => "OTHER",
        }
    }
}

/// A service's answer (2xx or 3xx), read whole.
#[derive(Debug, Clone)]
pub struct Answer {
    service: &'static str,
    method: &'static str,
    route: &'static str,
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    /// The status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// A header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body decoded from JSON; a body of another shape is a permanent
    /// [`CallError::Decode`] naming where it differs.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, CallError> {
        let de = &mut serde_json::Deserializer::from_slice(&self.body);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            CallError::Decode {
                service: self.service,
                method: self.method,
                route: self.route,
                path,
                message: e.into_inner().to_string(),
            }
        })
    }
}

/// A client of one external service: pooled connections, timeouts on every call, the
/// service's authentication, its circuit breaker, a span and statistics per call. Cheap to
/// clone.
///
/// ```no_run
/// use coordinator_client::{Call, ServiceClient, ServiceConfig};
///
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let lms = ServiceClient::new(ServiceConfig::new("lms", "https://lms.example.com"))?;
/// let answer = lms
///     .send(Call::post("/api/enrollment/v1/enrollment").json(&serde_json::json!({"mode": "verified"})))
///     .await?;
/// let enrollment: serde_json::Value = answer.json()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ServiceClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: ServiceConfig,
    base: String,
    http: reqwest::Client,
    tokens: TokenCache,
    stats: Arc<ServiceStats>,
}

impl std::fmt::Debug for ServiceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceClient")
            .field("service", &self.inner.config.name)
            .field("base_url", &self.inner.base)
            .finish_non_exhaustive()
    }
}

impl ServiceClient {
    /// A client for `config`'s service. Clients of the same service name share one breaker
    /// and one entry in the statistics.
    pub fn new(config: ServiceConfig) -> Result<Self, ClientError> {
        let name = config.name;
        let base = config.base_url.trim_end_matches('/').to_owned();
        let url_ok = reqwest::Url::parse(&base)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
        if !url_ok {
            return Err(ClientError::BadUrl {
                service: name,
                url: config.base_url.clone(),
            });
        }
        if let Auth::OAuth2(oauth) = &config.auth {
            if !reqwest::Url::parse(&oauth.token_url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            {
                return Err(ClientError::BadUrl {
                    service: name,
                    url: oauth.token_url.clone(),
                });
            }
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("commerce-coordinator/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Build {
                service: name,
                message: e.to_string(),
            })?;
        let breaker = config.breaker;
        let stats = stats::register(name, || Breaker::new(breaker));
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                base,
                http,
                tokens: TokenCache::default(),
                stats,
            }),
        })
    }

    /// The service's name.
    pub fn service(&self) -> &'static str {
        self.inner.config.name
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// The breaker's state now.
    pub fn breaker_state(&self) -> BreakerState {
        self.inner.stats.breaker().state()
    }

    /// Makes `call` and decodes its JSON answer.
    pub async fn json<T: DeserializeOwned>(&self, call: Call) -> Result<T, CallError> {
        self.send(call).await?.json()
    }

    /// Makes `call`: its answer when the status is 2xx or 3xx, else the failure classified
    /// (see [`CallError`]). A 401 with an OAuth2 token drops the token and tries once more
    /// with a new one.
    pub async fn send(&self, call: Call) -> Result<Answer, CallError> {
        let inner = &self.inner;
        let (service, method, route) = (inner.config.name, call.method_str(), call.route);
        let permit = match inner.stats.breaker().admit() {
            Ok(permit) => permit,
            Err(retry_in) => {
                inner.stats.record(Outcome::ShortCircuited, None);
                return Err(CallError::Open { service, retry_in });
            }
        };
        let span = info_span!(
            "external_call",
            service,
            method,
            route,
            status = field::Empty,
            duration_ms = field::Empty,
            tries = field::Empty,
        );
        let started = Instant::now();
        let result = self.call_with_token(&call).instrument(span.clone()).await;
        let took = started.elapsed();
        let (outcome, tries) = match &result {
            Ok((_, tries)) => (Outcome::Success, *tries),
            Err((e, tries)) => (outcome_of(e), *tries),
        };
        match outcome {
            Outcome::ServerError | Outcome::Timeout | Outcome::Connection => permit.failed(),
            _ => permit.succeeded(),
        }
        let timed = !matches!(outcome, Outcome::Connection);
        inner.stats.record(outcome, timed.then_some(took));
        let duration_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        span.record("duration_ms", duration_ms)
            .record("tries", tries);
        let _entered = span.enter();
        match result {
            Ok((answer, _)) => {
                span.record("status", answer.status);
                debug!(status = answer.status, duration_ms, "external call");
                Ok(answer)
            }
            Err((error, _)) => {
                if let Some(status) = error.status() {
                    span.record("status", status);
                }
                // The service's message stays in the error (and the task's chain): it may
                // quote the request, so it is not logged here.
                warn!(
                    outcome = outcome.as_str(),
                    status = error.status(),
                    duration_ms,
                    breaker = inner.stats.breaker().state().as_str(),
                    "external call failed"
                );
                Err(error)
            }
        }
    }

    /// The call, with a token when the service uses OAuth2 (a new one once after a 401); the
    /// number of tries made.
    async fn call_with_token(&self, call: &Call) -> Result<(Answer, u32), (CallError, u32)> {
        let oauth = match &self.inner.config.auth {
            Auth::OAuth2(oauth) => Some(oauth),
            _ => None,
        };
        let Some(oauth) = oauth else {
            return self
                .call_once(call, None)
                .await
                .map(|a| (a, 1))
                .map_err(|e| (e, 1));
        };
        let mut tries = 0;
        loop {
            tries += 1;
            let token = self
                .inner
                .tokens
                .get(|| self.fetch_token(oauth, call))
                .await
                .map_err(|e| (e, tries))?;
            match self.call_once(call, Some(&token)).await {
                Err(CallError::Rejected { status: 401, .. }) if tries == 1 => {
                    self.inner.tokens.refused(&token).await;
                }
                other => return other.map(|a| (a, tries)).map_err(|e| (e, tries)),
            }
        }
    }

    /// Asks the token endpoint for a token. Its failures are the call's, classified the same
    /// way (a refusal names the token endpoint: check the client id and secret).
    async fn fetch_token(&self, oauth: &OAuth2, call: &Call) -> Result<TokenAnswer, CallError> {
        const ROUTE: &str = "(token)";
        let (service, method) = (self.inner.config.name, call.method_str());
        let mut request = self
            .inner
            .http
            .post(&oauth.token_url)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&oauth.form());
        if oauth.credentials == crate::token::Credentials::Basic {
            request = request.basic_auth(&oauth.client_id, Some(oauth.client_secret.expose()));
        }
        let answer = self
            .exchange(request, "POST", ROUTE)
            .await
            .map_err(|e| match e {
                CallError::Rejected {
                    status,
                    message,
                    code,
                    ..
                } => CallError::Rejected {
                    service,
                    method,
                    route: call.route,
                    status,
                    message: format!(
                        "the token endpoint refused the client credentials ({message}); check the \
                     service's client id, secret and scopes"
                    ),
                    code,
                },
                other => other,
            })?;
        answer.json()
    }

    async fn call_once(&self, call: &Call, token: Option<&Token>) -> Result<Answer, CallError> {
        let (service, method, route) = (self.inner.config.name, call.method_str(), call.route);
        let path = call.path.as_deref().unwrap_or(route);
        let url = if path.starts_with('/') {
            format!("{}{path}", self.inner.base)
        } else {
            format!("{}/{path}", self.inner.base)
        };
        let mut request = self.inner.http.request(call.method.clone(), &url);
        if !call.query.is_empty() {
            request = request.query(&call.query);
        }
        match &call.body {
            Ok(None) => {}
            Ok(Some(Body::Json(bytes))) => {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(bytes.clone());
            }
            Ok(Some(Body::Form(text))) => {
                request = request
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(text.clone());
            }
            Err(message) => {
                return Err(CallError::Request {
                    service,
                    method,
                    route,
                    message: message.clone(),
                });
            }
        }
        for (name, value) in &call.headers {
            request = request.header(*name, value);
        }
        let authorization = match (&self.inner.config.auth, token) {
            (_, Some(token)) => Some(token.header()),
            (Auth::Bearer(secret), None) => Some(format!("Bearer {}", secret.expose())),
            (Auth::Basic { .. }, None) | (Auth::None, None) | (Auth::OAuth2(_), None) => None,
        };
        if let Some(value) = authorization {
            let mut value = HeaderValue::from_str(&value).map_err(|_| CallError::Request {
                service,
                method,
                route,
                message: "the token is not a valid header value".to_owned(),
            })?;
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
        } else if let Auth::Basic { user, password } = &self.inner.config.auth {
            request = request.basic_auth(user, Some(password.expose()));
        }
        self.exchange(request, method, route).await
    }

    /// Sends `request` and reads the answer: 2xx/3xx as an [`Answer`], the rest classified.
    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
        method: &'static str,
        route: &'static str,
    ) -> Result<Answer, CallError> {
        let service = self.inner.config.name;
        let transport = |e: reqwest::Error| {
            let kind = if e.is_timeout() {
                TransientKind::Timeout
            } else {
                TransientKind::Connection
            };
            CallError::Transient {
                service,
                method,
                route,
                kind,
                status: None,
                retry_after: None,
                message: transport_message(e),
            }
        };
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let headers = std::mem::take(response.headers_mut());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > BODY_LIMIT {
                return Err(CallError::Decode {
                    service,
                    method,
                    route,
                    path: ".".to_owned(),
                    message: format!("the answer is larger than {BODY_LIMIT} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        if status < 400 {
            return Ok(Answer {
                service,
                method,
                route,
                status,
                headers,
                body,
            });
        }
        let (message, code) = service_message(&body, status);
        if status == 429 || status >= 500 {
            Err(CallError::Transient {
                service,
                method,
                route,
                kind: if status == 429 {
                    TransientKind::TooManyRequests
                } else {
                    TransientKind::ServerError
                },
                status: Some(status),
                retry_after: retry_after(&headers),
                message,
            })
        } else {
            Err(CallError::Rejected {
                service,
                method,
                route,
                status,
                message,
                code,
            })
        }
    }
}

/// `text` percent-encoded as one path segment of a call's path: every byte but RFC 3986's
/// unreserved characters (`A-Z a-z 0-9 - . _ ~`) is escaped, so that an id, an order number or a
/// username can never add a segment or a query.
///
/// ```
/// assert_eq!(coordinator_client::path_segment("2U/7 x?y=1#é"), "2U%2F7%20x%3Fy%3D1%23%C3%A9");
/// ```
pub fn path_segment(text: &str) -> String {
    use std::fmt::Write as _;
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    encoded
}

/// How a failed call is counted.
fn outcome_of(error: &CallError) -> Outcome {
    match error {
        CallError::Transient { kind, .. } => match kind {
            TransientKind::Timeout => Outcome::Timeout,
            TransientKind::Connection => Outcome::Connection,
            TransientKind::ServerError | TransientKind::TooManyRequests => Outcome::ServerError,
        },
        CallError::Rejected { .. } | CallError::Request { .. } => Outcome::Rejected,
        CallError::Open { .. } => Outcome::ShortCircuited,
        CallError::Decode { .. } => Outcome::Undecodable,
    }
}

/// The transport error's text with its causes, without the URL (which may hold ids).
fn transport_message(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    clip(&text)
}

/// `Retry-After` in seconds (an HTTP date is not read: the policy's backoff applies).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// The service's own error message and code, from the common shapes of JSON error bodies
/// (commercetools, Stripe, PayPal, the edX LMS, OAuth2), else the body's text.
fn service_message(body: &[u8], status: u16) -> (String, Option<String>) {
    use serde_json::Value;
    let text = |v: &Value| v.as_str().map(str::to_owned);
    if let Ok(json) = serde_json::from_slice::<Value>(body) {
        let error = json.get("error");
        let first = json.get("errors").and_then(|e| e.get(0));
        let message = [
            json.get("message"),
            error.and_then(|e| e.get("message")),
            first.and_then(|e| e.get("message")),
            json.get("detail"),
            json.get("error_description"),
            json.get("developer_message"),
            error.filter(|e| e.is_string()),
        ]
        .into_iter()
        .flatten()
        .find_map(text);
        let code = [
            first.and_then(|e| e.get("code")),
            error.and_then(|e| e.get("code")),
            json.get("code"),
            json.get("name"),
            error.filter(|e| e.is_string()),
        ]
        .into_iter()
        .flatten()
        .find_map(text);
        if let Some(message) = message {
            return (clip(&message), code);
        }
        return (clip(&json.to_string()), code);
    }
    let body = String::from_utf8_lossy(body);
    if body.trim().is_empty() {
        let reason = reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("no reason given");
        (format!("{reason} (empty body)"), None)
    } else {
        (clip(&body), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_messages_are_read_from_each_services_error_shape() {
        let cases: [(&str, &str, Option<&str>); 6] = [
            (
                r#"{"statusCode":409,"message":"Object 1 has a different version","errors":[{"code":"ConcurrentModification","message":"Object 1 has a different version","currentVersion":3}]}"#,
                "Object 1 has a different version",
                Some("ConcurrentModification"),
            ),
            (
                r#"{"error":{"code":"charge_already_refunded","message":"Charge ch_1 has already been refunded."}}"#,
                "Charge ch_1 has already been refunded.",
                Some("charge_already_refunded"),
            ),
            (
                r#"{"name":"UNPROCESSABLE_ENTITY","message":"The requested action could not be performed.","details":[]}"#,
                "The requested action could not be performed.",
                Some("UNPROCESSABLE_ENTITY"),
            ),
            (
                r#"{"message":"Course mode is expired"}"#,
                "Course mode is expired",
                None,
            ),
            (
                r#"{"error":"invalid_client","error_description":"Client authentication failed"}"#,
                "Client authentication failed",
                Some("invalid_client"),
            ),
            ("<html>Bad Gateway</html>", "<html>Bad Gateway</html>", None),
        ];
        for (body, message, code) in cases {
            let (m, c) = service_message(body.as_bytes(), 400);
            assert_eq!(m, message, "{body}");
            assert_eq!(c.as_deref(), code, "{body}");
        }
        assert_eq!(
            service_message(b"", 503).0,
            "Service Unavailable (empty body)"
        );
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static(" 7 "));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn bad_urls_are_refused_with_the_setting_to_fix() {
        for url in ["", "lms.example.com", "ftp://x", "http://"] {
            let e = ServiceClient::new(ServiceConfig::new("lms", url)).unwrap_err();
            assert!(e.to_string().contains("not an absolute http"), "{url}: {e}");
        }
    }

    #[test]
    fn path_segments_escape_all_but_the_unreserved_characters() {
        assert_eq!(
            path_segment("7506b6f1-8fe2-440d-ac76-4f62dfbd3775"),
            "7506b6f1-8fe2-440d-ac76-4f62dfbd3775"
        );
        assert_eq!(path_segment("ada_lovelace-1.x~"), "ada_lovelace-1.x~");
        assert_eq!(
            path_segment("a b/c?d#e@f+g%"),
            "a%20b%2Fc%3Fd%23e%40f%2Bg%25"
        );
        assert_eq!(path_segment("2U/7 x?y=1#é"), "2U%2F7%20x%3Fy%3D1%23%C3%A9");
        assert_eq!(path_segment("zoë"), "zo%C3%AB");
    }

    #[test]
    fn forms_are_url_encoded() {
        let call = Call::post("/x").form(&[("a", "b c"), ("sku", "x&amount=0")]);
        match call.body {
            Ok(Some(Body::Form(text))) => assert_eq!(text, "a=b+c&sku=x%26amount%3D0"),
            other => panic!("{other:?}"),
        }
    }
}
