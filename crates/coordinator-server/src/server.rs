//! `coordinator serve` and `coordinator migrate`.
//!
//! Serving, in order: validate the configuration (wiring and server settings, every problem at
//! once), build the coordinator with the dispatch log and the metrics as observers, connect the
//! store, apply pending migrations, start the dispatch log writer, bind, log
//! `listening on http://ADDR`, serve. On SIGTERM or SIGINT: stop accepting, let in-flight
//! requests finish within `[server] shutdown_grace`, stop the dispatch log writer (it writes
//! everything buffered), close the store.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use coordinator::dispatch_log::dispatch_log;
use coordinator::store::{AppliedMigration, PendingMigration, Store};
use coordinator::{
    Config, Coordinator, DispatchLogWriter, Extension, StoreError, Validation, WiringError,
};
use tokio::net::TcpListener;
use tracing::{error, info, warn};

use crate::checks;
use crate::http::{self, AppState, Auth, Metrics};

/// A validated configuration, built into everything the server runs except the database.
#[derive(Debug)]
pub struct Prepared {
    /// The coordinator, observed by the dispatch log and the metrics.
    pub coordinator: Coordinator,
    /// The metrics registry (also an observer of the coordinator).
    pub metrics: Arc<Metrics>,
    /// The compiled `[auth]`.
    pub auth: Arc<Auth>,
    /// The dispatch log writer to run, unless `[dispatch_log] enabled = false`.
    pub dispatch_log_writer: Option<DispatchLogWriter>,
}

impl Prepared {
    /// The state of the router, over `store`.
    pub fn state(&self, store: Store) -> AppState {
        AppState {
            coordinator: self.coordinator.clone(),
            store,
            metrics: Arc::clone(&self.metrics),
            auth: Arc::clone(&self.auth),
            migrations: self.coordinator.migrations().into(),
        }
    }
}

/// Validates `config` against `extensions` (wiring and server settings) and builds everything
/// but the database. On any error, returns every problem.
pub fn prepare(
    config: Config,
    extensions: Vec<Box<dyn Extension>>,
) -> Result<Prepared, Validation> {
    let builder = Coordinator::builder()
        .extensions(extensions)
        .config(config.clone());
    let validation = checks::validate(&builder, &config);
    if !validation.is_valid() {
        return Err(validation);
    }
    // The checks above report any problem of `[auth]`; this cannot fail after them.
    let auth = Auth::from_config(&config.auth).map_err(|e| Validation {
        errors: vec![WiringError::Setting {
            at: "[auth.jwt]".to_owned(),
            message: e.to_string(),
        }],
        warnings: Vec::new(),
    })?;
    let (builder, writer, stats) = if config.dispatch_log.enabled {
        let (log, writer) = dispatch_log(&config.dispatch_log);
        let stats = log.stats();
        (builder.observe(log), Some(writer), Some(stats))
    } else {
        (builder, None, None)
    };
    let metrics = Arc::new(Metrics::new(stats));
    let coordinator = builder
        .observe(Arc::clone(&metrics) as Arc<dyn coordinator::DispatchObserver>)
        .build()
        .map_err(|e| e.validation)?;
    Ok(Prepared {
        coordinator,
        metrics,
        auth: Arc::new(auth),
        dispatch_log_writer: writer,
    })
}

/// Why the server could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The configuration has problems (all of them are here).
    #[error("{} problem(s) in the configuration", .0.errors.len())]
    Invalid(Validation),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The address cannot be listened on.
    #[error(
        "cannot listen on {addr} ([server] bind): {source}; choose a free port, or stop the \
         process that uses it"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The signal handlers cannot be installed.
    #[error("cannot listen for SIGTERM/SIGINT: {0}")]
    Signals(std::io::Error),
    /// The server failed while serving.
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// Runs the server until SIGTERM or SIGINT, then shuts down gracefully.
pub async fn serve(
    config: Config,
    extensions: Vec<Box<dyn Extension>>,
    origin: &str,
) -> Result<(), ServeError> {
    let mut prepared = prepare(config, extensions).map_err(ServeError::Invalid)?;
    for w in prepared.coordinator.warnings() {
        warn!("{origin}: {w}");
    }
    let config = prepared.coordinator.config().clone();
    let addr: SocketAddr = config.server.bind.parse().map_err(|_| {
        ServeError::Invalid(Validation {
            errors: checks::server_settings(&config),
            warnings: Vec::new(),
        })
    })?;

    let store = Store::connect(&config.storage).await?;
    let applied = store.migrate(&prepared.coordinator.migrations()).await?;
    log_applied(&applied);

    let (stop_writer, writer_stopped) = tokio::sync::oneshot::channel::<()>();
    let writer = prepared.dispatch_log_writer.take().map(|writer| {
        tokio::spawn(writer.run(store.clone(), async move {
            let _ = writer_stopped.await;
        }))
    });

    let shutdown = shutdown_signal().map_err(ServeError::Signals)?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let local = listener.local_addr().map_err(ServeError::Serve)?;
    let app = http::router(prepared.state(store.clone()));
    info!(backend = %store.backend(), "listening on http://{local}");

    let (begin_shutdown, shutdown_begun) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown_begun.await;
            })
            .into_future(),
    );
    let grace = config.server.shutdown_grace.0;
    let served = tokio::select! {
        result = &mut server => Some(result),
        signal = shutdown => {
            info!(signal, grace = ?grace, "shutting down: no new connections; waiting for requests in flight");
            let _ = begin_shutdown.send(());
            match tokio::time::timeout(grace, &mut server).await {
                Ok(result) => Some(result),
                Err(_) => {
                    warn!(grace = ?grace, "requests still in flight after [server] shutdown_grace were abandoned");
                    server.abort();
                    None
                }
            }
        }
    };
    let outcome = match served {
        Some(Ok(Ok(()))) | None => Ok(()),
        Some(Ok(Err(e))) => Err(ServeError::Serve(e)),
        Some(Err(join)) => Err(ServeError::Serve(std::io::Error::other(join))),
    };

    // Nothing sends any more: write every buffered report, then close the database.
    let _ = stop_writer.send(());
    if let Some(writer) = writer {
        if let Err(e) = writer.await {
            error!(error = %e, "the dispatch log writer failed while stopping");
        }
    }
    store.close().await;
    info!("stopped");
    outcome
}

/// Resolves with the signal's name on SIGTERM or SIGINT. The handlers are installed at once, so
/// a signal that arrives before the future is polled is not lost.
fn shutdown_signal() -> std::io::Result<impl Future<Output = &'static str>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = terminate.recv() => "SIGTERM",
                _ = interrupt.recv() => "SIGINT",
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        })
    }
}

fn log_applied(applied: &[AppliedMigration]) {
    // The store logs each migration it applies.
    if applied.is_empty() {
        info!("the database is up to date");
    } else {
        info!(applied = applied.len(), "the database is migrated");
    }
}

/// What `coordinator migrate` did or would do.
#[derive(Debug)]
pub enum MigrateOutcome {
    /// Applied these.
    Applied(Vec<AppliedMigration>),
    /// Would apply these (`--dry-run`).
    Pending(Vec<PendingMigration>),
}

/// Applies the pending migrations of the framework and every enabled extension, or with
/// `dry_run` lists them without applying any.
pub async fn migrate(
    config: Config,
    extensions: Vec<Box<dyn Extension>>,
    dry_run: bool,
) -> Result<MigrateOutcome, ServeError> {
    let builder = Coordinator::builder()
        .extensions(extensions)
        .config(config.clone());
    let validation = checks::validate(&builder, &config);
    if !validation.is_valid() {
        return Err(ServeError::Invalid(validation));
    }
    let coordinator = builder
        .build()
        .map_err(|e| ServeError::Invalid(e.validation))?;
    let store = Store::connect(&config.storage).await?;
    let migrations = coordinator.migrations();
    let outcome = if dry_run {
        store
            .pending_migrations(&migrations)
            .await
            .map(MigrateOutcome::Pending)
    } else {
        store
            .migrate(&migrations)
            .await
            .map(MigrateOutcome::Applied)
    };
    store.close().await;
    Ok(outcome?)
}
