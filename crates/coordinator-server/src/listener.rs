//! Accepting connections: at most `[server] max_connections` at once, each closed when it goes
//! `[server] idle_timeout` without sending a complete request head (idle between requests, or
//! sending one slowly: a client cannot hold the server's sockets and memory), and every one told
//! to finish on shutdown: idle and half-sent ones are closed at once, those with a request in
//! flight once it is answered.
//!
//! On shutdown hyper closes a connection that is idle between two requests, but one that has
//! not sent a complete request head yet (a client that connected and sent nothing, or half a
//! head) counts for hyper as a request in progress: left to hyper, it would hold the shutdown
//! until `idle_timeout` closed it. So each connection counts its requests in flight (from the
//! moment its head has arrived until the response body is done), and a connection with none is
//! closed after [`DRAIN`], time enough to send the end of the response it was writing.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tracing::{debug, warn};

/// How the listener treats connections, from `[server]`.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `[server] idle_timeout`.
    pub idle_timeout: Duration,
    /// `[server] max_connections`.
    pub max_connections: usize,
}

/// Request heads larger than this (or with more headers than [`MAX_HEADERS`]) are refused by
/// the HTTP layer itself; the middleware answers smaller excesses as problems first.
const MAX_HEAD_BUFFER: usize = 64 * 1024;

/// The most headers the HTTP layer reads in one request.
const MAX_HEADERS: usize = 256;

/// On shutdown, how long a connection with no request in flight may go on (to finish writing a
/// response whose body is done) before it is closed.
const DRAIN: Duration = Duration::from_millis(250);

/// Serves `app` on `listener` until `shutdown` resolves; then stops accepting, tells every
/// connection to finish, and returns once all have (bound the wait with a timeout: a request
/// in flight may take long).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let max_connections = limits.max_connections.clamp(1, u32::MAX as usize);
    let permits = Arc::new(Semaphore::new(max_connections));
    let (stop, stopping) = watch::channel(false);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout)
        .keep_alive(true)
        .max_buf_size(MAX_HEAD_BUFFER)
        .max_headers(MAX_HEADERS);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A permit first: at the cap, connections wait in the kernel's listen queue.
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = Arc::clone(&permits).acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let stream = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait a moment rather than spin.
                    warn!(error = %e, "cannot accept a connection; trying again shortly");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let service = Counted {
            inner: TowerToHyperService::new(app.clone()),
            in_flight: Arc::clone(&in_flight),
        };
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let stopping = stopping.clone();
        tokio::spawn(async move {
            if let Err(e) = run_connection(connection, &in_flight, stopping).await {
                debug!(error = %e, "connection closed with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection holds a permit until it is done: all of them back, all are done.
    let _ = permits.acquire_many(max_connections as u32).await;
}

/// One connection, as hyper serves it.
type Connection = http1::Connection<TokioIo<TcpStream>, Counted<TowerToHyperService<Router>>>;

/// Serves one connection until it ends, or until shutdown and then as [`serve`] says.
async fn run_connection(
    connection: Connection,
    in_flight: &AtomicUsize,
    mut stopping: watch::Receiver<bool>,
) -> hyper::Result<()> {
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => return result,
        _ = stopping.wait_for(|stop| *stop) => {}
    }
    // Keep-alive off: an idle connection closes now, one with a request in flight once its
    // response is written.
    connection.as_mut().graceful_shutdown();
    tokio::select! {
        result = connection.as_mut() => return result,
        () = tokio::time::sleep(DRAIN) => {}
    }
    if in_flight.load(Ordering::Acquire) == 0 {
        // Waiting for a request head that may never come: closed.
        return Ok(());
    }
    connection.await
}

/// The app as a hyper service that counts the requests in flight on its connection.
struct Counted<S> {
    inner: S,
    in_flight: Arc<AtomicUsize>,
}

impl<S, R> hyper::service::Service<R> for Counted<S>
where
    S: hyper::service::Service<R, Response = axum::response::Response>,
    S::Future: Send + 'static,
{
    type Response = axum::response::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, request: R) -> Self::Future {
        // Counted from now (the head has arrived) until the response body is done, or dropped
        // unanswered.
        let guard = InFlight::start(&self.in_flight);
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| {
                Body::new(Tracked {
                    body,
                    _in_flight: guard,
                })
            }))
        })
    }
}

/// One request in flight, until dropped.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn start(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(count))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted in flight until it is done.
struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}
