//! The dispatch log's write path: every dispatch report reaches the store without ever slowing
//! or blocking the code that sent the signal.
//!
//! [`DispatchLog`] is a [`DispatchObserver`]: it hands each report to a bounded in-memory buffer
//! and returns at once. When the buffer is full the report is dropped and counted, never waited
//! for. [`DispatchLogWriter::run`] empties the buffer in batches into the [`Store`], each batch
//! written once its oldest report has waited `flush_interval` since it was buffered (so that a
//! crash loses at most that, and the batch being written), purges reports older than the
//! retention, and on shutdown writes everything still buffered. See
//! `docs/decisions/0006-dispatch-log-write-path.md`.
//!
//! ```
//! use std::sync::Arc;
//! use coordinator::config::DispatchLogConfig;
//! use coordinator::dispatch_log::dispatch_log;
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let store = coordinator_sqlite::connect(&format!("sqlite://{}/c.db", dir.path().display()), 2)
//!     .await
//!     .unwrap();
//! store.migrate(&[]).await.unwrap();
//!
//! let (log, writer) = dispatch_log(&DispatchLogConfig::default());
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let writing = tokio::spawn(writer.run(store.clone(), async move { let _ = stopped.await; }));
//! // Give `log` to the coordinator: `Coordinator::builder().observe(log.clone())`.
//! let _ = stop.send(());
//! writing.await.unwrap();
//! assert_eq!(log.stats().dropped(), 0);
//! # });
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::config::DispatchLogConfig;
use crate::dispatch::{DispatchObserver, DispatchReport};
use crate::id::now_ms;
use crate::store::Store;

pub(crate) mod record;

pub use record::{
    DispatchPage, DispatchQuery, DispatchStatus, DurableDispatch, StoredDispatch, StoredHandlerRun,
};

/// The least time between two warnings about dropped reports.
const WARN_EVERY: Duration = Duration::from_secs(10);
/// How often old reports are purged (also once when the writer starts).
const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// The waits before each retry of a batch that failed to write; after the last, it is dropped.
const RETRY_DELAYS: [Duration; 3] = [
    Duration::from_millis(100),
    Duration::from_millis(500),
    Duration::from_secs(2),
];

/// Creates the dispatch log: the observer to give the coordinator
/// ([`CoordinatorBuilder::observe`](crate::CoordinatorBuilder::observe)) and the writer to run
/// on a task of its own.
pub fn dispatch_log(config: &DispatchLogConfig) -> (Arc<DispatchLog>, DispatchLogWriter) {
    let capacity = config.buffer.max(1);
    let (tx, rx) = mpsc::channel(capacity);
    let stats = Arc::new(DispatchLogStats {
        capacity,
        buffered: AtomicUsize::new(0),
        dropped: AtomicU64::new(0),
        written: AtomicU64::new(0),
        write_errors: AtomicU64::new(0),
    });
    let log = Arc::new(DispatchLog {
        tx,
        stats: Arc::clone(&stats),
        warnings: DropWarnings {
            origin: std::time::Instant::now(),
            last_ms: AtomicU64::new(NEVER),
            unreported: AtomicU64::new(0),
        },
    });
    let writer = DispatchLogWriter {
        rx,
        stats,
        batch_size: config.batch_size.max(1),
        flush_interval: config.flush_interval.0,
        retention: config.retention.0,
    };
    (log, writer)
}

/// A report in the buffer, and when it was buffered (its batch is due `flush_interval` after the
/// oldest report's).
struct Buffered {
    report: StoredDispatch,
    at: Instant,
}

/// The observer half of the dispatch log: buffers each report for the writer, never waits.
pub struct DispatchLog {
    tx: mpsc::Sender<Buffered>,
    stats: Arc<DispatchLogStats>,
    warnings: DropWarnings,
}

impl fmt::Debug for DispatchLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DispatchLog")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl DispatchLog {
    /// The counters of this log, shared with its writer (for metrics and `/ready`).
    pub fn stats(&self) -> Arc<DispatchLogStats> {
        Arc::clone(&self.stats)
    }

    fn dropped(&self, writer_stopped: bool) {
        let total = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        self.warnings.unreported.fetch_add(1, Ordering::Relaxed);
        let now = u64::try_from(self.warnings.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.warnings.last_ms.load(Ordering::Relaxed);
        let due = last == NEVER || now.saturating_sub(last) >= WARN_EVERY.as_millis() as u64;
        // One sender wins the right to warn; the others only count.
        if !due
            || self
                .warnings
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let dropped = self.warnings.unreported.swap(0, Ordering::Relaxed);
        if writer_stopped {
            warn!(
                dropped,
                dropped_total = total,
                "dispatch reports dropped: the dispatch log writer has stopped (expected only \
                 while shutting down)"
            );
        } else {
            warn!(
                dropped,
                dropped_total = total,
                buffer = self.stats.capacity,
                "dispatch log buffer is full: {dropped} dispatch report(s) dropped since the last \
                 warning; raise [dispatch_log] buffer, or check that the database keeps up"
            );
        }
    }
}

impl DispatchObserver for DispatchLog {
    fn dispatched(&self, report: &DispatchReport) {
        // A durable dispatch was stored with its deliveries, in their transaction.
        if report.is_stored() {
            return;
        }
        // Reserve first, so that a full buffer costs no conversion.
        match self.tx.try_reserve() {
            Ok(permit) => {
                self.stats.buffered.fetch_add(1, Ordering::Relaxed);
                permit.send(Buffered {
                    report: StoredDispatch::from(report),
                    at: Instant::now(),
                });
            }
            Err(TrySendError::Full(())) => self.dropped(false),
            Err(TrySendError::Closed(())) => self.dropped(true),
        }
    }
}

const NEVER: u64 = u64::MAX;

/// Rate-limits the warning about dropped reports.
struct DropWarnings {
    origin: std::time::Instant,
    /// When the last warning was logged, in ms since `origin` (`NEVER` before the first).
    last_ms: AtomicU64,
    /// Drops since the last warning.
    unreported: AtomicU64,
}

/// Counters of a dispatch log, updated without locks.
#[derive(Debug)]
pub struct DispatchLogStats {
    capacity: usize,
    buffered: AtomicUsize,
    dropped: AtomicU64,
    written: AtomicU64,
    write_errors: AtomicU64,
}

impl DispatchLogStats {
    /// How many reports the buffer holds at most (`[dispatch_log] buffer`).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many reports wait in the buffer now.
    pub fn buffered(&self) -> usize {
        self.buffered.load(Ordering::Relaxed)
    }

    /// How many reports were lost: the buffer was full (or the writer had stopped), or their
    /// batch could not be written after every retry.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// How many reports were written to the store.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// How many attempts to write a batch failed (each retry counts).
    pub fn write_errors(&self) -> u64 {
        self.write_errors.load(Ordering::Relaxed)
    }
}

/// The writer half of the dispatch log: moves buffered reports into the store. Run it once,
/// on a task of its own, with [`DispatchLogWriter::run`].
pub struct DispatchLogWriter {
    rx: mpsc::Receiver<Buffered>,
    stats: Arc<DispatchLogStats>,
    batch_size: usize,
    flush_interval: Duration,
    retention: Duration,
}

impl fmt::Debug for DispatchLogWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DispatchLogWriter")
            .field("batch_size", &self.batch_size)
            .field("flush_interval", &self.flush_interval)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl DispatchLogWriter {
    /// Writes buffered reports to `store` until `shutdown` resolves, then writes everything
    /// still buffered and returns.
    ///
    /// Reports are written in batches of up to `batch_size`, a batch once its oldest report has
    /// been buffered for `flush_interval` (at once, then, if it waited that long while the
    /// previous batch was written). A batch that fails is logged and retried with backoff a
    /// few times, then dropped (and counted). Reports older than `retention` are purged when the
    /// writer starts and every hour. Resolve `shutdown` after the coordinator has stopped
    /// sending (after in-flight requests finished) to lose nothing; if the database may be down
    /// then, bound the wait with a timeout, since each failing batch is retried for about 2.6 s.
    /// It also returns early, with nothing left to write, if every [`DispatchLog`] is dropped.
    pub async fn run(mut self, store: Store, shutdown: impl Future<Output = ()> + Send) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut batch = Vec::with_capacity(self.batch_size.min(4096));
        self.purge(&store).await;
        let mut next_purge = Instant::now() + PURGE_EVERY;
        'run: loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break 'run,
                () = tokio::time::sleep_until(next_purge) => {
                    self.purge(&store).await;
                    next_purge = Instant::now() + PURGE_EVERY;
                    continue 'run;
                }
                received = self.rx.recv_many(&mut batch, self.batch_size) => {
                    if received == 0 {
                        debug!("every dispatch log sender is gone; the writer stops");
                        return;
                    }
                    self.took(received);
                }
            }
            // Fill the batch until it is full or its oldest report has waited long enough since
            // it was buffered: reports buffered while the previous batch was being written have
            // waited already, and are not made to wait a whole interval more (a crash would
            // lose that much more).
            let deadline = batch.first().map_or_else(Instant::now, |b| b.at) + self.flush_interval;
            let mut stopping = false;
            while batch.len() < self.batch_size {
                let room = self.batch_size - batch.len();
                tokio::select! {
                    biased;
                    () = &mut shutdown => {
                        stopping = true;
                        break;
                    }
                    () = tokio::time::sleep_until(deadline) => break,
                    received = self.rx.recv_many(&mut batch, room) => {
                        if received == 0 {
                            break;
                        }
                        self.took(received);
                    }
                }
            }
            // What is buffered already joins the batch, deadline passed or not.
            while batch.len() < self.batch_size {
                let Ok(buffered) = self.rx.try_recv() else {
                    break;
                };
                batch.push(buffered);
                self.took(1);
            }
            self.write(&store, &mut batch).await;
            if stopping {
                break 'run;
            }
        }
        // Shutting down: refuse new reports and write everything already buffered.
        self.rx.close();
        loop {
            let received = self.rx.recv_many(&mut batch, self.batch_size).await;
            if received == 0 {
                break;
            }
            self.took(received);
            self.write(&store, &mut batch).await;
        }
        info!(
            written = self.stats.written(),
            dropped = self.stats.dropped(),
            write_errors = self.stats.write_errors(),
            "dispatch log writer stopped"
        );
    }

    fn took(&self, received: usize) {
        self.stats.buffered.fetch_sub(received, Ordering::Relaxed);
    }

    /// Writes the batch (retrying), then empties it.
    async fn write(&self, store: &Store, batch: &mut Vec<Buffered>) {
        if batch.is_empty() {
            return;
        }
        let reports: Vec<StoredDispatch> = batch.drain(..).map(|b| b.report).collect();
        let count = reports.len() as u64;
        for attempt in 0..=RETRY_DELAYS.len() {
            match store.insert_dispatches(&reports).await {
                Ok(()) => {
                    self.stats.written.fetch_add(count, Ordering::Relaxed);
                    return;
                }
                Err(e) => {
                    self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                    if let Some(delay) = RETRY_DELAYS.get(attempt) {
                        error!(error = %e, reports = count, attempt = attempt + 1,
                            retry_in_ms = delay.as_millis() as u64,
                            "cannot write dispatch reports; retrying");
                        tokio::time::sleep(*delay).await;
                    } else {
                        error!(error = %e, reports = count, attempts = attempt + 1,
                            "cannot write dispatch reports; giving up and dropping them");
                    }
                }
            }
        }
        self.stats.dropped.fetch_add(count, Ordering::Relaxed);
    }

    async fn purge(&self, store: &Store) {
        let cutoff =
            now_ms().saturating_sub(u64::try_from(self.retention.as_millis()).unwrap_or(u64::MAX));
        match store.purge_dispatches(cutoff).await {
            Ok(0) => {}
            Ok(purged) => info!(
                purged,
                retention = ?self.retention,
                "purged dispatch reports older than the retention"
            ),
            Err(e) => {
                error!(error = %e, "cannot purge old dispatch reports; will try again in an hour")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigDuration;
    use crate::dispatch::Sender;

    fn report() -> DispatchReport {
        DispatchReport {
            id: uuid::Uuid::nil(),
            signal: "demo.x",
            sender: Sender::Extension("demo"),
            sent_at_ms: 1,
            handlers: Vec::new(),
        }
    }

    fn config(buffer: usize) -> DispatchLogConfig {
        DispatchLogConfig {
            buffer,
            batch_size: 10,
            flush_interval: ConfigDuration(Duration::from_millis(10)),
            ..DispatchLogConfig::default()
        }
    }

    #[test]
    fn a_full_buffer_drops_and_counts_without_waiting() {
        let (log, _writer) = dispatch_log(&config(3));
        for _ in 0..10 {
            log.dispatched(&report());
        }
        let stats = log.stats();
        assert_eq!(stats.capacity(), 3);
        assert_eq!(stats.buffered(), 3);
        assert_eq!(stats.dropped(), 7);
        assert_eq!(stats.written(), 0);
    }

    #[test]
    fn a_stopped_writer_counts_drops_too() {
        let (log, writer) = dispatch_log(&config(3));
        drop(writer);
        log.dispatched(&report());
        assert_eq!(log.stats().dropped(), 1);
        assert_eq!(log.stats().buffered(), 0);
    }

    #[test]
    fn a_zero_buffer_is_raised_to_one() {
        let (log, _writer) = dispatch_log(&config(0));
        assert_eq!(log.stats().capacity(), 1);
    }

    #[test]
    fn warnings_are_rate_limited() {
        let (log, _writer) = dispatch_log(&config(1));
        for _ in 0..5 {
            log.dispatched(&report());
        }
        // The first drop warned; the next three wait for the next warning.
        assert_eq!(log.warnings.unreported.load(Ordering::Relaxed), 3);
        assert_ne!(log.warnings.last_ms.load(Ordering::Relaxed), NEVER);
    }
}
