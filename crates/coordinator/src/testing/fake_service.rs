//! A fake of another company's HTTP service, served locally for tests.
//!
//! End-to-end tests and client tests talk to the real protocol but not to the real service (the
//! LMS, a payment processor): they start a [`FakeService`], script what it answers for each
//! method and path with [`Reply`]s, point the code under test at [`FakeService::url`], and then
//! assert on what was sent with [`FakeService::requests`]. Scripted sequences ("fail twice, then
//! succeed") and delays test retries and timeouts without a network.

use std::collections::VecDeque;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use tokio::sync::oneshot;

/// The largest request body the fake reads; a larger one is answered with 413.
const BODY_LIMIT: usize = 10 * 1024 * 1024;

/// A local HTTP/1 server that answers scripted replies per method and path and records every
/// request it receives.
///
/// It listens on `127.0.0.1` on a free port; dropping it stops the server. Script answers with
/// [`on`](FakeService::on): they are used in order, and the last one repeats once the others
/// are used up. A request nothing was scripted for is answered 404 with a JSON body
/// `{"fake": "no answer scripted for GET /path"}`, and recorded too.
///
/// ```
/// use coordinator::testing::{FakeService, RecordedRequest, Reply};
/// use serde_json::json;
/// # async fn client_post(url: &str, body: &str) -> (u16, String) {
/// #     use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// #     let rest = url.strip_prefix("http://").unwrap();
/// #     let (host, path) = rest.split_at(rest.find('/').unwrap());
/// #     let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
/// #     let request = format!(
/// #         "POST {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\
/// #          content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
/// #         body.len()
/// #     );
/// #     stream.write_all(request.as_bytes()).await.unwrap();
/// #     let mut response = String::new();
/// #     stream.read_to_string(&mut response).await.unwrap();
/// #     let (head, body) = response.split_once("\r\n\r\n").unwrap();
/// #     (head[9..12].parse().unwrap(), body.to_owned())
/// # }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let fake = FakeService::start().await;
/// // The LMS is down twice, then enrolls; the last answer repeats.
/// fake.on("POST", "/api/enrollment/v1/enrollment")
///     .reply_times(2, Reply::status(503))
///     .reply(Reply::json(200, json!({"is_active": true})));
/// // An answer computed from the request.
/// fake.on("POST", "/api/orders/{id}/echo")
///     .reply(Reply::from_fn(|req: &RecordedRequest| {
///         Reply::json(201, json!({"got": req.body_json()["sku"]}))
///     }));
///
/// // The code under test calls the fake instead of the real service.
/// let enroll = format!("{}/api/enrollment/v1/enrollment", fake.url());
/// assert_eq!(client_post(&enroll, "{}").await.0, 503);
/// assert_eq!(client_post(&enroll, "{}").await.0, 503);
/// assert_eq!(client_post(&enroll, "{}").await.0, 200);
/// assert_eq!(client_post(&enroll, "{}").await.0, 200);
/// let echo = format!("{}/api/orders/7/echo", fake.url());
/// assert_eq!(client_post(&echo, r#"{"sku": "A1"}"#).await, (201, r#"{"got":"A1"}"#.to_owned()));
///
/// assert_eq!(fake.count("POST", "/api/enrollment/v1/enrollment"), 4);
/// let sent = &fake.requests_to("POST", "/api/orders/{id}/echo")[0];
/// assert_eq!(sent.header("Content-Type"), Some("application/json"));
/// assert_eq!(sent.body_json(), json!({"sku": "A1"}));
/// # });
/// ```
pub struct FakeService {
    addr: SocketAddr,
    state: Shared,
    /// Tells the server to stop (graceful: answers in flight are finished) when dropped.
    _shutdown: oneshot::Sender<()>,
}

type Shared = Arc<Mutex<FakeState>>;

/// What the server and the test share: the scripts and the record.
#[derive(Default)]
struct FakeState {
    routes: Vec<Route>,
    requests: Vec<RecordedRequest>,
}

/// The answers scripted for one method and path pattern.
struct Route {
    method: String,
    pattern: Pattern,
    answers: VecDeque<Reply>,
    /// Whether the last answer has been served: it then repeats until another is scripted.
    repeating: bool,
}

impl Route {
    /// The next answer: the first not yet used, or the last one again.
    fn next_answer(&mut self) -> Option<Reply> {
        if self.answers.len() > 1 {
            self.answers.pop_front()
        } else {
            self.repeating = true;
            self.answers.front().cloned()
        }
    }

    fn push(&mut self, reply: Reply) {
        // An answer that has been repeating was the end of the old script; the new one follows it.
        if self.repeating {
            self.answers.pop_front();
            self.repeating = false;
        }
        self.answers.push_back(reply);
    }
}

impl FakeService {
    /// Starts a fake on `127.0.0.1`, on a free port.
    ///
    /// # Panics
    /// If no port can be bound (see [`try_start`](FakeService::try_start)), or when called
    /// outside a Tokio runtime.
    pub async fn start() -> FakeService {
        match FakeService::try_start().await {
            Ok(fake) => fake,
            Err(e) => panic!("FakeService::start: cannot listen on 127.0.0.1: {e}"),
        }
    }

    /// Starts a fake on `127.0.0.1`, on a free port, or says why it cannot listen.
    ///
    /// # Panics
    /// When called outside a Tokio runtime.
    pub async fn try_start() -> std::io::Result<FakeService> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let state = Shared::default();
        let router = axum::Router::new()
            .fallback(answer)
            .with_state(Arc::clone(&state));
        let (shutdown, stopped) = oneshot::channel::<()>();
        let server = axum::serve(listener, router).with_graceful_shutdown(async move {
            // Sent or dropped with the fake: either way, stop.
            let _ = stopped.await;
        });
        tokio::spawn(async move {
            if let Err(e) = server.await {
                tracing::warn!(%addr, error = %e, "the fake service stopped with an error");
            }
        });
        Ok(FakeService {
            addr,
            state,
            _shutdown: shutdown,
        })
    }

    /// The base URL, such as `http://127.0.0.1:40123` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the fake listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Scripts the answers to `method` (any case) on the paths that `path` matches; add them
    /// with [`Script::reply`]. Calling `on` again with the same method and pattern continues
    /// the same script.
    ///
    /// `path` is matched against the request's path, without its query string:
    /// - `/api/orders` matches exactly that path;
    /// - `/api/orders/{id}` matches any one non-empty segment in place of `{id}`;
    /// - `/static/*` (a trailing `*`) matches every path that starts with `/static/`.
    ///
    /// When several patterns match, the most specific wins: an exact path, then a `{param}`
    /// pattern, then the longest prefix; among equals, the first scripted. Patterns with no
    /// answer yet are ignored.
    ///
    /// # Panics
    /// If `path` does not start with `/`.
    #[track_caller]
    pub fn on(&self, method: &str, path: &str) -> Script {
        Script {
            state: Arc::clone(&self.state),
            method: method.to_ascii_uppercase(),
            pattern: Pattern::parse(path),
        }
    }

    /// Every request received so far, in order of arrival, answered or not.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state).requests.clone()
    }

    /// The requests received with `method` (any case) on the paths that `path` matches (a
    /// pattern, as in [`on`](FakeService::on)).
    ///
    /// # Panics
    /// If `path` does not start with `/`.
    #[track_caller]
    pub fn requests_to(&self, method: &str, path: &str) -> Vec<RecordedRequest> {
        let pattern = Pattern::parse(path);
        lock(&self.state)
            .requests
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && pattern.matches(&r.path))
            .cloned()
            .collect()
    }

    /// How many requests were received with `method` on the paths that `path` matches.
    ///
    /// # Panics
    /// If `path` does not start with `/`.
    #[track_caller]
    pub fn count(&self, method: &str, path: &str) -> usize {
        let pattern = Pattern::parse(path);
        lock(&self.state)
            .requests
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && pattern.matches(&r.path))
            .count()
    }

    /// Forgets every script and every recorded request.
    pub fn reset(&self) {
        let mut state = lock(&self.state);
        state.routes.clear();
        state.requests.clear();
    }
}

impl fmt::Debug for FakeService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeService")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn lock(state: &Shared) -> MutexGuard<'_, FakeState> {
    // A test that panicked while holding the lock left whole values behind; keep going.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The answers of a [`FakeService`] to one method and path pattern, from
/// [`FakeService::on`]. Each answer is added as soon as it is given.
pub struct Script {
    state: Shared,
    method: String,
    pattern: Pattern,
}

impl Script {
    /// Adds an answer, used once; the last answer of a script repeats for every later request.
    pub fn reply(self, reply: Reply) -> Self {
        self.reply_times(1, reply)
    }

    /// Adds an answer used `times` times in a row (none when `times` is 0).
    pub fn reply_times(self, times: usize, reply: Reply) -> Self {
        if times == 0 {
            return self;
        }
        let mut state = lock(&self.state);
        let index = match state
            .routes
            .iter()
            .position(|r| r.method == self.method && r.pattern.source == self.pattern.source)
        {
            Some(index) => index,
            None => {
                state.routes.push(Route {
                    method: self.method.clone(),
                    pattern: self.pattern.clone(),
                    answers: VecDeque::new(),
                    repeating: false,
                });
                state.routes.len() - 1
            }
        };
        for _ in 0..times {
            state.routes[index].push(reply.clone());
        }
        drop(state);
        self
    }
}

impl fmt::Debug for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Script")
            .field("method", &self.method)
            .field("path", &self.pattern.source)
            .finish_non_exhaustive()
    }
}

/// A path pattern of [`FakeService::on`].
#[derive(Clone, Debug)]
struct Pattern {
    source: String,
    kind: PatternKind,
}

#[derive(Clone, Debug)]
enum PatternKind {
    Exact,
    /// Segments after the leading `/`; `None` stands for a `{param}`.
    Segments(Vec<Option<String>>),
    Prefix(String),
}

impl Pattern {
    #[track_caller]
    fn parse(path: &str) -> Pattern {
        assert!(
            path.starts_with('/'),
            "the fake's path pattern \"{path}\" must start with `/`"
        );
        let kind = if let Some(prefix) = path.strip_suffix('*') {
            PatternKind::Prefix(prefix.to_owned())
        } else if path.contains('{') {
            PatternKind::Segments(
                path[1..]
                    .split('/')
                    .map(|s| {
                        let param = s.starts_with('{') && s.ends_with('}');
                        (!param).then(|| s.to_owned())
                    })
                    .collect(),
            )
        } else {
            PatternKind::Exact
        };
        Pattern {
            source: path.to_owned(),
            kind,
        }
    }

    fn matches(&self, path: &str) -> bool {
        match &self.kind {
            PatternKind::Exact => path == self.source,
            PatternKind::Prefix(prefix) => path.starts_with(prefix.as_str()),
            PatternKind::Segments(segments) => {
                let Some(rest) = path.strip_prefix('/') else {
                    return false;
                };
                let mut parts = rest.split('/');
                let all = segments
                    .iter()
                    .all(|segment| match (segment, parts.next()) {
                        (_, None) => false,
                        (None, Some(part)) => !part.is_empty(),
                        (Some(literal), Some(part)) => literal == part,
                    });
                all && parts.next().is_none()
            }
        }
    }

    /// Lower sorts first: exact, then `{param}`, then the longest prefix.
    fn rank(&self) -> (u8, std::cmp::Reverse<usize>) {
        match &self.kind {
            PatternKind::Exact => (0, std::cmp::Reverse(0)),
            PatternKind::Segments(_) => (1, std::cmp::Reverse(0)),
            PatternKind::Prefix(prefix) => (2, std::cmp::Reverse(prefix.len())),
        }
    }
}

/// One request the fake received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The method, upper case as sent (`POST`).
    pub method: String,
    /// The path as sent, without the query string, not percent-decoded.
    pub path: String,
    /// The raw query string, without the `?`, when the URL had one.
    pub query: Option<String>,
    /// Every header in order of arrival, names in lower case; values that are not UTF-8 are
    /// converted lossily.
    pub headers: Vec<(String, String)>,
    /// The body (empty when the request had none, or a body over 10 MiB).
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// The first value of the header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text, converted lossily when it is not UTF-8.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    ///
    /// # Panics
    /// If the body is not JSON: the test expected JSON and got something else.
    #[track_caller]
    pub fn body_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "the body of {} {} is not JSON ({e}): {:?}",
                self.method,
                self.path,
                self.body_text()
            )
        })
    }
}

/// One scripted answer of a [`FakeService`]: a status, headers and a body, or a function of
/// the request that makes them; optionally after a delay.
#[derive(Clone)]
pub struct Reply {
    kind: ReplyKind,
    headers: HeaderMap,
    delay: Option<Duration>,
}

type ReplyFn = dyn Fn(&RecordedRequest) -> Reply + Send + Sync;

#[derive(Clone)]
enum ReplyKind {
    Fixed { status: StatusCode, body: Vec<u8> },
    Computed(Arc<ReplyFn>),
}

impl Reply {
    /// An empty body with `status`.
    ///
    /// # Panics
    /// If `status` is not between 100 and 999.
    #[track_caller]
    pub fn status(status: u16) -> Reply {
        Reply::fixed(status, None, Vec::new())
    }

    /// A JSON body (`content-type: application/json`) with `status`.
    ///
    /// # Panics
    /// If `status` is not between 100 and 999.
    #[track_caller]
    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply::fixed(
            status,
            Some("application/json"),
            body.to_string().into_bytes(),
        )
    }

    /// A text body (`content-type: text/plain; charset=utf-8`) with `status`.
    ///
    /// # Panics
    /// If `status` is not between 100 and 999.
    #[track_caller]
    pub fn text(status: u16, body: impl Into<String>) -> Reply {
        Reply::fixed(
            status,
            Some("text/plain; charset=utf-8"),
            body.into().into_bytes(),
        )
    }

    /// An answer made from each request when it arrives: to echo what was sent, or count.
    /// Headers and a delay added to this reply apply on top of the one `f` returns. If `f`
    /// panics, the fake answers 500 with the panic's message.
    pub fn from_fn<F>(f: F) -> Reply
    where
        F: Fn(&RecordedRequest) -> Reply + Send + Sync + 'static,
    {
        Reply {
            kind: ReplyKind::Computed(Arc::new(f)),
            headers: HeaderMap::new(),
            delay: None,
        }
    }

    #[track_caller]
    fn fixed(status: u16, content_type: Option<&'static str>, body: Vec<u8>) -> Reply {
        let status = StatusCode::from_u16(status)
            .unwrap_or_else(|_| panic!("{status} is not an HTTP status code"));
        let mut headers = HeaderMap::new();
        if let Some(content_type) = content_type {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        Reply {
            kind: ReplyKind::Fixed { status, body },
            headers,
            delay: None,
        }
    }

    /// Adds a header. Several headers may have the same name (`set-cookie`), except
    /// `content-type`, which replaces the one the reply was made with.
    ///
    /// # Panics
    /// If `name` or `value` is not valid in a header.
    #[track_caller]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let name = HeaderName::try_from(name)
            .unwrap_or_else(|e| panic!("\"{name}\" is not a valid header name: {e}"));
        let value = HeaderValue::try_from(value)
            .unwrap_or_else(|e| panic!("\"{value}\" is not a valid header value: {e}"));
        if name == CONTENT_TYPE {
            self.headers.insert(name, value);
        } else {
            self.headers.append(name, value);
        }
        self
    }

    /// Waits `delay` before answering (the request is recorded at once): to test a client's
    /// timeout.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// The status, headers, body and delay of this reply to `request`.
    fn resolve(&self, request: &RecordedRequest) -> (StatusCode, HeaderMap, Vec<u8>, Duration) {
        let own_delay = self.delay.unwrap_or_default();
        match &self.kind {
            ReplyKind::Fixed { status, body } => {
                (*status, self.headers.clone(), body.clone(), own_delay)
            }
            ReplyKind::Computed(f) => {
                let made = catch_unwind(AssertUnwindSafe(|| f(request)));
                let (status, mut headers, body, delay) = match made {
                    Ok(reply) => reply.resolve(request),
                    Err(panic) => {
                        let message = panic
                            .downcast_ref::<&str>()
                            .map(|s| (*s).to_owned())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_default();
                        let reply = Reply::json(
                            500,
                            serde_json::json!({
                                "fake": format!("the reply function panicked: {message}")
                            }),
                        );
                        return reply.resolve(request);
                    }
                };
                for (name, value) in &self.headers {
                    if name == CONTENT_TYPE {
                        headers.insert(name, value.clone());
                    } else {
                        headers.append(name, value.clone());
                    }
                }
                (status, headers, body, delay + own_delay)
            }
        }
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Reply");
        match &self.kind {
            ReplyKind::Fixed { status, body } => d
                .field("status", status)
                .field("body", &String::from_utf8_lossy(body)),
            ReplyKind::Computed(_) => d.field("from_fn", &".."),
        };
        d.field("headers", &self.headers)
            .field("delay", &self.delay)
            .finish()
    }
}

/// The fake's only handler: records the request, then answers what was scripted for it.
async fn answer(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let (body, too_large) = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(bytes) => (bytes.to_vec(), false),
        Err(_) => (Vec::new(), true),
    };
    let recorded = RecordedRequest {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    };
    let scripted = {
        let mut state = lock(&shared);
        state.requests.push(recorded.clone());
        let method = recorded.method.to_ascii_uppercase();
        state
            .routes
            .iter_mut()
            .enumerate()
            .filter(|(_, r)| {
                r.method == method && !r.answers.is_empty() && r.pattern.matches(&recorded.path)
            })
            .min_by_key(|(i, r)| (r.pattern.rank(), *i))
            .and_then(|(_, r)| r.next_answer())
    };
    let reply = if too_large {
        Reply::json(
            413,
            serde_json::json!({"fake": format!("the request body is over {BODY_LIMIT} bytes")}),
        )
    } else {
        scripted.unwrap_or_else(|| {
            Reply::json(
                404,
                serde_json::json!({
                    "fake": format!("no answer scripted for {} {}", recorded.method, recorded.path)
                }),
            )
        })
    };
    let (status, headers, body, delay) = reply.resolve(&recorded);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A response as the raw-TCP client read it.
    #[derive(Debug)]
    struct Answer {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Answer {
        fn json(&self) -> serde_json::Value {
            serde_json::from_str(&self.body).expect("a JSON body")
        }

        fn headers(&self, name: &str) -> Vec<&str> {
            self.headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
                .collect()
        }
    }

    /// A minimal HTTP/1.1 client: one request per connection (`connection: close`).
    async fn send(
        fake: &FakeService,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Answer {
        let mut stream = tokio::net::TcpStream::connect(fake.addr()).await.unwrap();
        let mut request = format!(
            "{method} {target} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ncontent-length: {}\r\n",
            fake.addr(),
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let (head, body) = response
            .split_once("\r\n\r\n")
            .expect("a complete response");
        let mut lines = head.lines();
        let status = lines.next().unwrap()[9..12].parse().unwrap();
        let headers = lines
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.trim().to_ascii_lowercase(), v.trim().to_owned())
            })
            .collect();
        Answer {
            status,
            headers,
            body: body.to_owned(),
        }
    }

    async fn get(fake: &FakeService, target: &str) -> Answer {
        send(fake, "GET", target, &[], "").await
    }

    #[tokio::test]
    async fn url_is_the_local_address_without_trailing_slash() {
        let fake = FakeService::start().await;
        assert_eq!(
            fake.url(),
            format!("http://127.0.0.1:{}", fake.addr().port())
        );
        assert_ne!(fake.addr().port(), 0);
    }

    #[tokio::test]
    async fn answers_in_order_then_repeats_the_last_one() {
        let fake = FakeService::start().await;
        fake.on("GET", "/x")
            .reply_times(2, Reply::status(503))
            .reply(Reply::json(200, json!({"ok": true})));
        let statuses: Vec<u16> = [
            get(&fake, "/x").await.status,
            get(&fake, "/x").await.status,
            get(&fake, "/x").await.status,
            get(&fake, "/x").await.status,
        ]
        .into();
        assert_eq!(statuses, [503, 503, 200, 200]);
        let last = get(&fake, "/x").await;
        assert_eq!(last.json(), json!({"ok": true}));
        assert_eq!(last.headers("content-type"), ["application/json"]);
        assert_eq!(fake.count("GET", "/x"), 5);
    }

    #[tokio::test]
    async fn an_answer_scripted_later_replaces_the_repeating_one() {
        let fake = FakeService::start().await;
        fake.on("GET", "/x").reply(Reply::status(200));
        assert_eq!(get(&fake, "/x").await.status, 200);
        fake.on("get", "/x").reply(Reply::status(500));
        assert_eq!(get(&fake, "/x").await.status, 500);
        assert_eq!(get(&fake, "/x").await.status, 500);
    }

    #[tokio::test]
    async fn an_answer_scripted_before_use_follows_the_others() {
        let fake = FakeService::start().await;
        fake.on("GET", "/x").reply(Reply::status(201));
        fake.on("GET", "/x").reply(Reply::status(202));
        assert_eq!(get(&fake, "/x").await.status, 201);
        assert_eq!(get(&fake, "/x").await.status, 202);
        assert_eq!(get(&fake, "/x").await.status, 202);
    }

    #[tokio::test]
    async fn methods_are_scripted_separately() {
        let fake = FakeService::start().await;
        fake.on("POST", "/x").reply(Reply::status(201));
        assert_eq!(send(&fake, "POST", "/x", &[], "").await.status, 201);
        assert_eq!(get(&fake, "/x").await.status, 404);
    }

    #[tokio::test]
    async fn an_unscripted_request_is_answered_404_and_recorded() {
        let fake = FakeService::start().await;
        let answer = send(&fake, "DELETE", "/nothing/here?x=1", &[], "").await;
        assert_eq!(answer.status, 404);
        assert_eq!(
            answer.json(),
            json!({"fake": "no answer scripted for DELETE /nothing/here"})
        );
        assert_eq!(fake.count("DELETE", "/nothing/here"), 1);
    }

    #[tokio::test]
    async fn a_pattern_with_no_answer_yet_is_unscripted() {
        let fake = FakeService::start().await;
        let _script = fake.on("GET", "/x");
        assert_eq!(get(&fake, "/x").await.status, 404);
    }

    #[tokio::test]
    async fn records_method_path_query_headers_and_body() {
        let fake = FakeService::start().await;
        fake.on("POST", "/oauth2/access_token")
            .reply(Reply::json(200, json!({"access_token": "t"})));
        send(
            &fake,
            "POST",
            "/oauth2/access_token?token_type=jwt&x=%20",
            &[
                ("Content-Type", "application/json"),
                ("X-Request-Id", "abc"),
            ],
            r#"{"grant_type": "client_credentials"}"#,
        )
        .await;
        let requests = fake.requests();
        assert_eq!(requests.len(), 1);
        let sent = &requests[0];
        assert_eq!(sent.method, "POST");
        assert_eq!(sent.path, "/oauth2/access_token");
        assert_eq!(sent.query.as_deref(), Some("token_type=jwt&x=%20"));
        assert_eq!(sent.header("x-request-id"), Some("abc"));
        assert_eq!(sent.header("CONTENT-TYPE"), Some("application/json"));
        assert!(
            sent.headers
                .iter()
                .any(|(n, v)| n == "x-request-id" && v == "abc")
        );
        assert_eq!(sent.header("absent"), None);
        assert_eq!(
            sent.body_json(),
            json!({"grant_type": "client_credentials"})
        );
        assert_eq!(sent.body_text(), r#"{"grant_type": "client_credentials"}"#);
        assert_eq!(fake.requests_to("post", "/oauth2/access_token"), requests);
        assert!(fake.requests_to("GET", "/oauth2/access_token").is_empty());
    }

    #[tokio::test]
    async fn a_request_without_query_records_none() {
        let fake = FakeService::start().await;
        get(&fake, "/x").await;
        assert_eq!(fake.requests()[0].query, None);
        assert!(fake.requests()[0].body.is_empty());
    }

    #[tokio::test]
    #[should_panic(expected = "is not JSON")]
    async fn body_json_panics_on_a_body_that_is_not_json() {
        let fake = FakeService::start().await;
        send(&fake, "POST", "/x", &[], "a=1").await;
        fake.requests()[0].body_json();
    }

    #[tokio::test]
    async fn text_replies_and_added_headers_are_sent() {
        let fake = FakeService::start().await;
        fake.on("GET", "/t").reply(
            Reply::text(429, "slow down")
                .header("Retry-After", "3")
                .header("set-cookie", "a=1")
                .header("set-cookie", "b=2"),
        );
        fake.on("GET", "/h")
            .reply(Reply::text(200, "<p>").header("content-type", "text/html"));
        let answer = get(&fake, "/t").await;
        assert_eq!(answer.status, 429);
        assert_eq!(answer.body, "slow down");
        assert_eq!(answer.headers("retry-after"), ["3"]);
        assert_eq!(answer.headers("set-cookie"), ["a=1", "b=2"]);
        assert_eq!(
            answer.headers("content-type"),
            ["text/plain; charset=utf-8"]
        );
        assert_eq!(
            get(&fake, "/h").await.headers("content-type"),
            ["text/html"]
        );
    }

    #[tokio::test]
    async fn a_delayed_reply_waits_before_answering() {
        let fake = FakeService::start().await;
        fake.on("GET", "/slow")
            .reply(Reply::status(200).delay(Duration::from_millis(300)));
        let started = Instant::now();
        assert_eq!(get(&fake, "/slow").await.status, 200);
        assert!(started.elapsed() >= Duration::from_millis(300));
    }

    #[tokio::test]
    async fn a_client_timeout_fires_on_a_delayed_reply_and_the_request_is_recorded() {
        let fake = FakeService::start().await;
        fake.on("GET", "/slow")
            .reply(Reply::status(200).delay(Duration::from_secs(30)));
        let timed_out = tokio::time::timeout(Duration::from_millis(100), get(&fake, "/slow")).await;
        assert!(timed_out.is_err());
        assert_eq!(fake.count("GET", "/slow"), 1);
    }

    #[tokio::test]
    async fn from_fn_computes_the_reply_from_the_request() {
        let fake = FakeService::start().await;
        fake.on("POST", "/echo").reply(
            Reply::from_fn(|req: &RecordedRequest| {
                Reply::json(201, json!({"sku": req.body_json()["sku"], "q": req.query}))
                    .header("x-inner", "1")
            })
            .header("x-outer", "2"),
        );
        let answer = send(&fake, "POST", "/echo?a=b", &[], r#"{"sku": "A1"}"#).await;
        assert_eq!(answer.status, 201);
        assert_eq!(answer.json(), json!({"sku": "A1", "q": "a=b"}));
        assert_eq!(answer.headers("x-inner"), ["1"]);
        assert_eq!(answer.headers("x-outer"), ["2"]);
    }

    #[tokio::test]
    async fn a_panicking_reply_function_answers_500() {
        let fake = FakeService::start().await;
        fake.on("GET", "/boom")
            .reply(Reply::from_fn(|_: &RecordedRequest| panic!("no sku")));
        let answer = get(&fake, "/boom").await;
        assert_eq!(answer.status, 500);
        assert_eq!(
            answer.json(),
            json!({"fake": "the reply function panicked: no sku"})
        );
    }

    #[tokio::test]
    async fn reset_forgets_scripts_and_requests() {
        let fake = FakeService::start().await;
        fake.on("GET", "/x").reply(Reply::status(200));
        get(&fake, "/x").await;
        fake.reset();
        assert!(fake.requests().is_empty());
        assert_eq!(get(&fake, "/x").await.status, 404);
        assert_eq!(fake.requests().len(), 1);
    }

    #[tokio::test]
    async fn a_param_pattern_matches_one_segment() {
        let fake = FakeService::start().await;
        fake.on("GET", "/api/orders/{id}").reply(Reply::status(200));
        assert_eq!(get(&fake, "/api/orders/42").await.status, 200);
        assert_eq!(get(&fake, "/api/orders/42?x=1").await.status, 200);
        assert_eq!(get(&fake, "/api/orders/").await.status, 404);
        assert_eq!(get(&fake, "/api/orders").await.status, 404);
        assert_eq!(get(&fake, "/api/orders/42/lines").await.status, 404);
        assert_eq!(fake.count("GET", "/api/orders/{id}"), 2);
        assert_eq!(fake.count("GET", "/api/orders/42"), 2);
    }

    #[tokio::test]
    async fn a_prefix_pattern_matches_everything_under_it() {
        let fake = FakeService::start().await;
        fake.on("GET", "/static/*").reply(Reply::status(200));
        assert_eq!(get(&fake, "/static/a/b.css").await.status, 200);
        assert_eq!(get(&fake, "/static/").await.status, 200);
        assert_eq!(get(&fake, "/staticx").await.status, 404);
    }

    #[tokio::test]
    async fn the_most_specific_pattern_wins() {
        let fake = FakeService::start().await;
        fake.on("GET", "/*").reply(Reply::status(201));
        fake.on("GET", "/api/*").reply(Reply::status(202));
        fake.on("GET", "/api/orders/{id}").reply(Reply::status(203));
        fake.on("GET", "/api/orders/1").reply(Reply::status(204));
        assert_eq!(get(&fake, "/api/orders/1").await.status, 204);
        assert_eq!(get(&fake, "/api/orders/2").await.status, 203);
        assert_eq!(get(&fake, "/api/other").await.status, 202);
        assert_eq!(get(&fake, "/else").await.status, 201);
    }

    #[tokio::test]
    #[should_panic(expected = "must start with `/`")]
    async fn a_pattern_without_leading_slash_panics() {
        let fake = FakeService::start().await;
        fake.on("GET", "x");
    }

    #[tokio::test]
    async fn dropping_the_fake_stops_the_server() {
        let fake = FakeService::start().await;
        let addr = fake.addr();
        drop(fake);
        // The server task stops at its next turn; connecting then fails.
        let mut refused = false;
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(addr).await.is_err() {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            refused,
            "the fake still accepts connections after being dropped"
        );
    }
}
