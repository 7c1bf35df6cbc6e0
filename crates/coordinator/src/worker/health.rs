//! How a running worker is doing, for readiness probes.

use std::sync::Arc;
use std::time::Duration;

use crate::id::now_ms;

/// How a running worker is doing, for readiness probes: shared with the worker, cheap to
/// clone and to read.
#[derive(Clone, Debug, Default)]
pub struct WorkerHealth(Arc<HealthState>);

#[derive(Debug, Default)]
struct HealthState {
    /// Since when (ms since the Unix epoch) the store has not answered the worker; 0 when it
    /// does.
    failing_since_ms: std::sync::atomic::AtomicU64,
    /// Since when outcomes have been waiting to be recorded; 0 when none waits.
    unrecorded_since_ms: std::sync::atomic::AtomicU64,
    /// Since when the worker has been waiting for a store call to return (a claim blocked on
    /// a lock, a network that hangs without resetting); 0 when it is not waiting.
    calling_since_ms: std::sync::atomic::AtomicU64,
}

/// How long the store may fail the worker, or outcomes wait, before the worker is not ready.
pub const UNHEALTHY_AFTER: Duration = Duration::from_secs(10);

impl WorkerHealth {
    /// `Ok` while the worker reaches the store and records what it runs; otherwise what has
    /// gone wrong, and for how long (readiness answers 503 with it).
    pub fn check(&self) -> Result<(), String> {
        use std::sync::atomic::Ordering::Relaxed;
        let now = now_ms();
        let limit = u64::try_from(UNHEALTHY_AFTER.as_millis()).unwrap_or(u64::MAX);
        let since = |at: u64| {
            (at != 0)
                .then(|| now.saturating_sub(at))
                .filter(|d| *d >= limit)
        };
        if let Some(ms) = since(self.0.failing_since_ms.load(Relaxed)) {
            return Err(format!(
                "the task worker has not reached the store for {} s",
                ms / 1000
            ));
        }
        if let Some(ms) = since(self.0.unrecorded_since_ms.load(Relaxed)) {
            return Err(format!(
                "the task worker has not been able to record finished tasks for {} s",
                ms / 1000
            ));
        }
        if let Some(ms) = since(self.0.calling_since_ms.load(Relaxed)) {
            return Err(format!(
                "the task worker has waited {} s for the store to answer",
                ms / 1000
            ));
        }
        Ok(())
    }

    /// A store call starts.
    pub(super) fn calling(&self) {
        self.0
            .calling_since_ms
            .store(now_ms(), std::sync::atomic::Ordering::Relaxed);
    }

    /// The store call returned, whatever it answered.
    pub(super) fn returned(&self) {
        self.0
            .calling_since_ms
            .store(0, std::sync::atomic::Ordering::Relaxed);
    }

    pub(super) fn answered(&self) {
        self.0
            .failing_since_ms
            .store(0, std::sync::atomic::Ordering::Relaxed);
    }

    pub(super) fn failed(&self) {
        let _ = self.0.failing_since_ms.compare_exchange(
            0,
            now_ms(),
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// An outcome was recorded; `all` when none waits any more.
    pub(super) fn recorded(&self, all: bool) {
        let at = if all { 0 } else { now_ms() };
        self.0
            .unrecorded_since_ms
            .store(at, std::sync::atomic::Ordering::Relaxed);
    }

    /// An outcome is waiting to be recorded.
    pub(super) fn waiting(&self) {
        let _ = self.0.unrecorded_since_ms.compare_exchange(
            0,
            now_ms(),
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}
