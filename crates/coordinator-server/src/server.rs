//! `coordinator serve`, `coordinator worker` and `coordinator migrate`.
//!
//! Serving, in order: validate the configuration (wiring and server settings, every problem at
//! once), connect the store, build the coordinator over it with the dispatch log and the metrics
//! as observers, apply pending migrations, start the dispatch log writer, bind, start the
//! embedded worker (`[worker] embedded`), log `listening on http://ADDR`, serve. On SIGTERM or
//! SIGINT: stop accepting and stop claiming tasks; let in-flight requests finish within
//! `[server] shutdown_grace` and running tasks within `[worker] shutdown_grace` (the tasks still
//! running then are given back to the queue); stop the dispatch log writer (it writes
//! everything buffered); close the store.
//!
//! `coordinator worker` is the same without the HTTP server: it checks that the database is
//! migrated (it does not migrate), runs a worker and the dispatch log writer (tasks send
//! signals too), and stops the same way.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use coordinator::dispatch_log::dispatch_log;
use coordinator::store::Store;
use coordinator::store::migrate::{AppliedMigration, PendingMigration};
use coordinator::{
    Coordinator, CoordinatorBuilder, DispatchLogWriter, Extension, StoreError, TaskObserver,
    Validation, WiringError, Worker, WorkerHealth,
};
use tokio::net::TcpListener;
use tracing::{error, info, warn};

use crate::checks;
use crate::http::{self, AppState, Auth, Metrics};
use crate::settings::AppConfig;

/// A configuration validated against the extensions (wiring and server settings), not built
/// yet: the coordinator is built once the store is connected ([`Validated::prepare`]), so that
/// a configuration with problems is refused before any database is touched.
pub struct Validated {
    builder: CoordinatorBuilder,
    config: AppConfig,
}

impl std::fmt::Debug for Validated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validated").finish_non_exhaustive()
    }
}

/// A coordinator builder for `config` over `extensions`, with the server's mounts.
pub fn builder(config: &AppConfig, extensions: Vec<Arc<dyn Extension>>) -> CoordinatorBuilder {
    Coordinator::builder()
        .shared_extensions(extensions)
        .config(config.framework.clone())
        .mounts(config.mounts())
}

/// Validates `config` against `extensions`: the wiring and the server's own settings. On any
/// error, returns every problem. Does no I/O.
pub fn validate(
    config: AppConfig,
    extensions: Vec<Arc<dyn Extension>>,
) -> Result<Validated, Validation> {
    let builder = builder(&config, extensions);
    let validation = checks::validate(&builder, &config);
    if !validation.is_valid() {
        return Err(validation);
    }
    Ok(Validated { builder, config })
}

impl Validated {
    /// The configuration.
    pub fn config(&self) -> &AppConfig {
        &self.config
    }

    /// Builds the coordinator over `store` (where tasks are enqueued), observed by the dispatch
    /// log (unless `[dispatch_log] enabled = false`) and the metrics.
    pub fn prepare(self, store: Store) -> Result<Prepared, Validation> {
        let Validated { builder, config } = self;
        // The checks report any problem of `[auth]`; this cannot fail after them.
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
            .store(store.clone())
            .build()
            .map_err(|e| e.validation)?;
        Ok(Prepared {
            coordinator,
            store,
            metrics,
            auth: Arc::new(auth),
            config: Arc::new(config),
            worker_health: WorkerHealth::default(),
            dispatch_log_writer: writer,
        })
    }
}

/// Everything the server and the worker run, built over a connected store.
#[derive(Debug)]
pub struct Prepared {
    /// The coordinator, with the store, observed by the dispatch log and the metrics.
    pub coordinator: Coordinator,
    /// The database (the coordinator's store).
    pub store: Store,
    /// The metrics registry (also an observer of the coordinator and its workers).
    pub metrics: Arc<Metrics>,
    /// The compiled `[auth]`.
    pub auth: Arc<Auth>,
    /// The configuration (with the server's own sections).
    pub config: Arc<AppConfig>,
    /// The health of the worker this process runs (embedded in `serve`, or `coordinator
    /// worker`), which `/ready` reports.
    pub worker_health: WorkerHealth,
    /// The dispatch log writer to run, unless `[dispatch_log] enabled = false`.
    pub dispatch_log_writer: Option<DispatchLogWriter>,
}

impl Prepared {
    /// The state of the router.
    pub fn state(&self) -> AppState {
        AppState {
            coordinator: self.coordinator.clone(),
            store: self.store.clone(),
            metrics: Arc::clone(&self.metrics),
            auth: Arc::clone(&self.auth),
            config: Arc::clone(&self.config),
            migrations: self.coordinator.migrations().into(),
            worker: self
                .config
                .worker
                .embedded
                .then(|| self.worker_health.clone()),
        }
    }
}

/// Validates `config` against `extensions`, then builds everything over `store`; see
/// [`validate`] and [`Validated::prepare`].
pub fn prepare(
    config: AppConfig,
    extensions: Vec<Arc<dyn Extension>>,
    store: Store,
) -> Result<Prepared, Validation> {
    validate(config, extensions)?.prepare(store)
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
    /// The database lacks migrations (`coordinator worker` and `coordinator tasks` do not apply them).
    #[error(
        "the database is not migrated: {} migration(s) pending ({}); run `coordinator migrate` \
         (or start `coordinator serve`, which migrates), then run this command again",
        .0.len(),
        .0.iter().map(|m| format!("{}/{} {}", m.extension, m.version, m.name)).collect::<Vec<_>>().join(", ")
    )]
    NotMigrated(Vec<PendingMigration>),
}

/// Runs the server until SIGTERM or SIGINT, then shuts down gracefully.
pub async fn serve(
    config: AppConfig,
    extensions: Vec<Arc<dyn Extension>>,
    origin: &str,
) -> Result<(), ServeError> {
    let (config, store, mut prepared) = connect_prepared(config, extensions, origin).await?;
    let addr = bind_address(&config, &config.server.bind)?;
    let applied = store.migrate(&prepared.coordinator.migrations()).await?;
    log_applied(&applied);

    let writer = Background::dispatch_log_writer(&mut prepared);
    let shutdown = shutdown_signal().map_err(ServeError::Signals)?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let local = listener.local_addr().map_err(ServeError::Serve)?;
    let app = http::router(prepared.state());
    let worker = config
        .worker
        .embedded
        .then(|| Background::worker(&prepared, "embedded"));
    info!(backend = %store.backend(), "listening on http://{local}");

    let (begin_shutdown, shutdown_begun) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(crate::listener::serve(
        listener,
        app,
        limits(&config),
        async move {
            let _ = shutdown_begun.await;
        },
    ));
    let grace = config.server.shutdown_grace.0;
    let (served, signal) = tokio::select! {
        result = &mut server => (Some(result), None),
        signal = shutdown => (None, Some(signal)),
    };
    // The worker stops at the same time as the listener: it finishes (or gives back) its
    // running tasks within [worker] shutdown_grace while the requests in flight finish.
    let worker_stopped = worker.map(Background::stop);
    let served = match (served, signal) {
        (Some(result), _) => Some(result),
        (None, signal) => {
            info!(signal = signal.unwrap_or("?"), grace = ?grace, "shutting down: no new connections; waiting for requests in flight");
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
        Some(Ok(())) | None => Ok(()),
        Some(Err(join)) => Err(ServeError::Serve(std::io::Error::other(join))),
    };
    if let Some(stopped) = worker_stopped {
        stopped.await;
    }

    // Nothing sends any more: write every buffered report, then close the database.
    if let Some(writer) = writer {
        writer.stop().await;
    }
    store.close().await;
    info!("stopped");
    outcome
}

/// Runs tasks only (`coordinator worker`) until SIGTERM or SIGINT, then lets running tasks
/// finish within `[worker] shutdown_grace`, gives the rest back, and returns.
///
/// It does not migrate: it refuses to start while a migration is pending (run
/// `coordinator migrate`, or start `coordinator serve`, which migrates).
pub async fn worker(
    config: AppConfig,
    extensions: Vec<Arc<dyn Extension>>,
    origin: &str,
) -> Result<(), ServeError> {
    let (config, store, mut prepared) = connect_prepared(config, extensions, origin).await?;
    let pending = store
        .pending_migrations(&prepared.coordinator.migrations())
        .await?;
    if !pending.is_empty() {
        store.close().await;
        return Err(ServeError::NotMigrated(pending));
    }
    let shutdown = shutdown_signal().map_err(ServeError::Signals)?;
    // `/health`, `/ready` and `/metrics`, when [worker] bind asks for them.
    let operations = match &config.worker.bind {
        Some(bind) => {
            let addr = bind_address(&config, bind)?;
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::Bind { addr, source })?;
            let local = listener.local_addr().map_err(ServeError::Serve)?;
            info!("worker operations (/health, /ready, /metrics) on http://{local}");
            let mut state = prepared.state();
            state.worker = Some(prepared.worker_health.clone());
            let app = http::operations_router(state);
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let handle = tokio::spawn(crate::listener::serve(
                listener,
                app,
                limits(&config),
                async move {
                    let _ = stopped.await;
                },
            ));
            Some(Background {
                what: "the worker's operations endpoint",
                stop,
                handle,
            })
        }
        None => None,
    };
    let writer = Background::dispatch_log_writer(&mut prepared);
    let worker = Background::worker(&prepared, "standalone");
    let signal = shutdown.await;
    info!(signal, grace = ?config.worker.shutdown_grace.0, "shutting down: no more claims; waiting for running tasks");
    worker.stop().await;
    if let Some(operations) = operations {
        operations.stop().await;
    }
    if let Some(writer) = writer {
        writer.stop().await;
    }
    store.close().await;
    info!("stopped");
    Ok(())
}

/// Validates the configuration, connects to the store and prepares the coordinator the way
/// `serve` and `worker` both run it; logs the configuration's warnings.
async fn connect_prepared(
    config: AppConfig,
    extensions: Vec<Arc<dyn Extension>>,
    origin: &str,
) -> Result<(AppConfig, Store, Prepared), ServeError> {
    let validated = validate(config, extensions).map_err(ServeError::Invalid)?;
    let config = validated.config().clone();
    let store = crate::storage::connect(&config.storage).await?;
    let prepared = validated
        .prepare(store.clone())
        .map_err(ServeError::Invalid)?;
    for w in prepared.coordinator.warnings() {
        warn!("{origin}: {w}");
    }
    Ok((config, store, prepared))
}

/// How the listener treats connections, from `[server]`.
fn limits(config: &AppConfig) -> crate::listener::Limits {
    crate::listener::Limits {
        idle_timeout: config.server.idle_timeout.0,
        max_connections: config.server.max_connections,
    }
}

/// `bind` as a socket address. Validation has checked it; this only turns it into one (and
/// reports the settings' problems again if it is not).
fn bind_address(config: &AppConfig, bind: &str) -> Result<SocketAddr, ServeError> {
    bind.parse().map_err(|_| {
        ServeError::Invalid(Validation {
            errors: checks::server_settings(config),
            warnings: Vec::new(),
        })
    })
}

/// A task running in the background until told to stop: the dispatch log writer or a worker.
struct Background {
    what: &'static str,
    stop: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<()>,
}

impl Background {
    /// Starts the dispatch log writer, if the log is enabled.
    fn dispatch_log_writer(prepared: &mut Prepared) -> Option<Self> {
        let writer = prepared.dispatch_log_writer.take()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(writer.run(prepared.store.clone(), async move {
            let _ = stopped.await;
        }));
        Some(Self {
            what: "the dispatch log writer",
            stop,
            handle,
        })
    }

    /// Starts a worker of `[worker]`, observed by the metrics.
    fn worker(prepared: &Prepared, kind: &str) -> Self {
        let config = prepared.coordinator.config().worker.clone();
        let worker = Worker::new(prepared.coordinator.clone(), config.clone())
            .observe(Arc::clone(&prepared.metrics) as Arc<dyn TaskObserver>)
            .with_health(prepared.worker_health.clone());
        let queues = if config.queues.is_empty() {
            "every queue".to_owned()
        } else {
            config.queues.join(", ")
        };
        info!(
            backend = %prepared.store.backend(),
            concurrency = config.concurrency,
            prefetch = config.prefetch,
            "{kind} worker {} started, queues: {queues}",
            worker.id()
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(worker.run(async move {
            let _ = stopped.await;
        }));
        Self {
            what: "the worker",
            stop,
            handle,
        }
    }

    /// Tells it to stop; the future resolves once it has.
    fn stop(self) -> impl Future<Output = ()> {
        let _ = self.stop.send(());
        async move {
            if let Err(e) = self.handle.await {
                error!(error = %e, "{} failed while stopping", self.what);
            }
        }
    }
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
    config: AppConfig,
    extensions: Vec<Arc<dyn Extension>>,
    dry_run: bool,
) -> Result<MigrateOutcome, ServeError> {
    let Validated { builder, config } =
        validate(config, extensions).map_err(ServeError::Invalid)?;
    let coordinator = builder
        .build()
        .map_err(|e| ServeError::Invalid(e.validation))?;
    let store = crate::storage::connect(&config.storage).await?;
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

/// Validates `config`, connects the store and builds the coordinator over it, without
/// observers, for the commands that operate on the store (`coordinator tasks`).
pub async fn open(
    config: AppConfig,
    extensions: Vec<Arc<dyn Extension>>,
) -> Result<Coordinator, ServeError> {
    let Validated { builder, config } =
        validate(config, extensions).map_err(ServeError::Invalid)?;
    // The database must exist and be migrated: these commands read and operate it, they
    // never create it.
    let store = crate::storage::connect_existing(&config.storage).await?;
    let coordinator = builder
        .store(store.clone())
        .build()
        .map_err(|e| ServeError::Invalid(e.validation))?;
    let pending = store.pending_migrations(&coordinator.migrations()).await?;
    if !pending.is_empty() {
        store.close().await;
        return Err(ServeError::NotMigrated(pending));
    }
    Ok(coordinator)
}
