//! Accepting connections: at most `[server] max_connections` at once, each closed when it goes
//! `[server] idle_timeout` without sending a complete request head (idle between requests, or
//! sending one slowly: a client cannot hold the server's sockets and memory), and every one told
//! to finish on shutdown: idle and half-sent ones are closed at once, those with a request in
//! flight once it is answered.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
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

/// Serves `app` on `listener` until `shutdown` resolves; then stops accepting, tells every
/// connection to finish, and returns once all have (bound the wait with a timeout: a request
/// in flight may take long).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
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
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                debug!(error = %e, "connection closed with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
