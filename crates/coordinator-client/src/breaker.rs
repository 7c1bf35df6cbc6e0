//! A circuit breaker per external service.
//!
//! Closed, calls go through and consecutive transient failures are counted; at
//! [`BreakerConfig::failures`] in a row it opens. Open, calls fail at once with
//! [`CallError::Open`](crate::CallError::Open) (the task that made them waits for the end of the
//! cool-down instead of spending its attempts on a service that is down) until
//! [`BreakerConfig::cool_down`] has passed; then one call, the probe, goes through while the
//! others still wait. The probe's success closes the breaker, its failure opens it for another
//! cool-down. Any answer that shows the service is up (a success, or a refusal such as a 404)
//! counts as a success: only timeouts, connection errors, 5xx and 429 count as failures.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// When a breaker opens, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive transient failures that open the breaker. Default 5; 0 never opens it.
    pub failures: u32,
    /// How long it stays open before a probe. Default 30 s.
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failures: 5,
            cool_down: Duration::from_secs(30),
        }
    }
}

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail at once until the cool-down ends.
    Open,
    /// One probe call is going through; the others wait.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen,
}

/// A service's breaker. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Breaker {
    config: BreakerConfig,
    inner: Arc<Mutex<Inner>>,
    opened: Arc<std::sync::atomic::AtomicU64>,
}

/// Leave to make one call, given by [`Breaker::admit`]: report how it went with
/// [`Permit::succeeded`] or [`Permit::failed`]. Dropped without a report (the caller gave up),
/// a probe lets the next call probe again.
#[derive(Debug)]
#[must_use = "report the call's outcome to the breaker"]
pub struct Permit {
    breaker: Breaker,
    probe: bool,
    reported: bool,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            inner: Arc::new(Mutex::new(Inner::Closed { failures: 0 })),
            opened: Arc::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> BreakerConfig {
        self.config
    }

    /// Where it stands now.
    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen => BreakerState::HalfOpen,
        }
    }

    /// How many times it has opened.
    pub fn opened_total(&self) -> u64 {
        self.opened.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Leave to call, or how long until a call is allowed.
    pub fn admit(&self) -> Result<Permit, Duration> {
        let mut inner = self.lock();
        let probe = match *inner {
            Inner::Closed { .. } => false,
            Inner::Open { until } => {
                let now = Instant::now();
                if now < until {
                    return Err(until - now);
                }
                *inner = Inner::HalfOpen;
                true
            }
            // The probe is out: the others wait about as long as a call may take.
            Inner::HalfOpen => return Err(self.config.cool_down.min(Duration::from_secs(5))),
        };
        Ok(Permit {
            breaker: self.clone(),
            probe,
            reported: false,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn open(&self, inner: &mut Inner) {
        *inner = Inner::Open {
            until: Instant::now() + self.config.cool_down,
        };
        self.opened
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Permit {
    /// The call reached the service (a success or a refusal): the breaker closes.
    pub fn succeeded(mut self) {
        self.reported = true;
        *self.breaker.lock() = Inner::Closed { failures: 0 };
    }

    /// The call failed transiently: counted, and the breaker opens at the threshold (or at
    /// once, for a probe).
    pub fn failed(mut self) {
        self.reported = true;
        let breaker = self.breaker.clone();
        let mut inner = breaker.lock();
        match *inner {
            Inner::Closed { failures } => {
                let failures = failures + 1;
                if breaker.config.failures > 0 && failures >= breaker.config.failures {
                    breaker.open(&mut inner);
                } else {
                    *inner = Inner::Closed { failures };
                }
            }
            Inner::HalfOpen => breaker.open(&mut inner),
            // Opened meanwhile by another call: it stays open.
            Inner::Open { .. } => {}
        }
    }

    /// Whether this call is the probe of a breaker that was open.
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.probe && !self.reported {
            let mut inner = self.breaker.lock();
            if matches!(*inner, Inner::HalfOpen) {
                // No verdict: the next call probes.
                *inner = Inner::Open {
                    until: Instant::now(),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerConfig {
            failures: 3,
            cool_down: Duration::from_secs(10),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn it_opens_after_consecutive_failures_and_fails_fast_for_the_cool_down() {
        let b = breaker();
        b.admit().unwrap().failed();
        b.admit().unwrap().failed();
        assert_eq!(b.state(), BreakerState::Closed);
        b.admit().unwrap().failed();
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.opened_total(), 1);
        let wait = b.admit().unwrap_err();
        assert_eq!(wait, Duration::from_secs(10));
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(b.admit().unwrap_err(), Duration::from_secs(6));
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_count() {
        let b = breaker();
        b.admit().unwrap().failed();
        b.admit().unwrap().failed();
        b.admit().unwrap().succeeded();
        b.admit().unwrap().failed();
        b.admit().unwrap().failed();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_cool_down_one_probe_decides() {
        let b = breaker();
        for _ in 0..3 {
            b.admit().unwrap().failed();
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        let probe = b.admit().unwrap();
        assert!(probe.is_probe());
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.admit().is_err(), "only one probe at a time");
        probe.failed();
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.opened_total(), 2);

        tokio::time::advance(Duration::from_secs(10)).await;
        b.admit().unwrap().succeeded();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(!b.admit().unwrap().is_probe());
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_abandoned_without_a_verdict_lets_the_next_call_probe() {
        let b = breaker();
        for _ in 0..3 {
            b.admit().unwrap().failed();
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        drop(b.admit().unwrap());
        let next = b.admit().unwrap();
        assert!(next.is_probe());
        next.succeeded();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_failures_never_opens() {
        let b = Breaker::new(BreakerConfig {
            failures: 0,
            cool_down: Duration::from_secs(1),
        });
        for _ in 0..100 {
            b.admit().unwrap().failed();
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
