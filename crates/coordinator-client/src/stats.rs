//! Per-service call statistics, kept for the process and read by `/metrics` and the catalog.
//!
//! Every [`ServiceClient`](crate::ServiceClient) registers its service here under its name
//! (clients of the same name share one entry). [`services`] reads them all.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use crate::breaker::{Breaker, BreakerState};

/// The upper bounds of the latency histogram's buckets, in seconds (the last bucket is +Inf).
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How a call ended, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx (or 3xx).
    Success,
    /// 4xx other than 429.
    Rejected,
    /// 5xx or 429.
    ServerError,
    /// No answer in time.
    Timeout,
    /// The connection failed.
    Connection,
    /// Not made: the breaker was open.
    ShortCircuited,
    /// The answer could not be decoded.
    Undecodable,
}

impl Outcome {
    /// Every outcome, in the order of the counters.
    pub const ALL: [Outcome; 7] = [
        Outcome::Success,
        Outcome::Rejected,
        Outcome::ServerError,
        Outcome::Timeout,
        Outcome::Connection,
        Outcome::ShortCircuited,
        Outcome::Undecodable,
    ];

    /// The label (`success`, `rejected`, `server_error`, `timeout`, `connection`,
    /// `short_circuited`, `undecodable`).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Rejected => "rejected",
            Outcome::ServerError => "server_error",
            Outcome::Timeout => "timeout",
            Outcome::Connection => "connection",
            Outcome::ShortCircuited => "short_circuited",
            Outcome::Undecodable => "undecodable",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The live counters of one service.
#[derive(Debug)]
pub(crate) struct ServiceStats {
    name: &'static str,
    breaker: Breaker,
    outcomes: [AtomicU64; 7],
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    latency_sum_us: AtomicU64,
}

impl ServiceStats {
    pub(crate) fn record(&self, outcome: Outcome, took: Option<Duration>) {
        self.outcomes[outcome.index()].fetch_add(1, Relaxed);
        if let Some(took) = took {
            let secs = took.as_secs_f64();
            let bucket = LATENCY_BUCKETS
                .iter()
                .position(|b| secs <= *b)
                .unwrap_or(LATENCY_BUCKETS.len());
            self.buckets[bucket].fetch_add(1, Relaxed);
            self.latency_sum_us
                .fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Relaxed);
        }
    }

    pub(crate) fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    fn snapshot(&self) -> ServiceSnapshot {
        ServiceSnapshot {
            service: self.name,
            breaker: self.breaker.state(),
            breaker_opened_total: self.breaker.opened_total(),
            calls: Outcome::ALL.map(|o| (o, self.outcomes[o.index()].load(Relaxed))),
            latency_buckets: std::array::from_fn(|i| self.buckets[i].load(Relaxed)),
            latency_sum: Duration::from_micros(self.latency_sum_us.load(Relaxed)),
        }
    }
}

/// One service's statistics at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSnapshot {
    /// The service's name (`lms`, `commercetools`).
    pub service: &'static str,
    /// Its breaker's state.
    pub breaker: BreakerState,
    /// How many times its breaker opened.
    pub breaker_opened_total: u64,
    /// Calls by outcome.
    pub calls: [(Outcome, u64); 7],
    /// Calls that got an answer or timed out, by latency bucket ([`LATENCY_BUCKETS`], then
    /// +Inf); not cumulative.
    pub latency_buckets: [u64; LATENCY_BUCKETS.len() + 1],
    /// The sum of those latencies.
    pub latency_sum: Duration,
}

impl ServiceSnapshot {
    /// Calls with this outcome.
    pub fn count(&self, outcome: Outcome) -> u64 {
        self.calls
            .iter()
            .find(|(o, _)| *o == outcome)
            .map_or(0, |(_, n)| *n)
    }
}

fn registry() -> &'static Mutex<Vec<Arc<ServiceStats>>> {
    static REGISTRY: OnceLock<Mutex<Vec<Arc<ServiceStats>>>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

/// The entry of service `name`, made with `breaker` if it has none yet.
pub(crate) fn register(name: &'static str, breaker: impl FnOnce() -> Breaker) -> Arc<ServiceStats> {
    let mut all = registry().lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(found) = all.iter().find(|s| s.name == name) {
        return Arc::clone(found);
    }
    let stats = Arc::new(ServiceStats {
        name,
        breaker: breaker(),
        outcomes: Default::default(),
        buckets: Default::default(),
        latency_sum_us: AtomicU64::new(0),
    });
    all.push(Arc::clone(&stats));
    stats
}

/// Every service a client was made for in this process, by name.
pub fn services() -> Vec<ServiceSnapshot> {
    let mut all: Vec<ServiceSnapshot> = registry()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|s| s.snapshot())
        .collect();
    all.sort_by_key(|s| s.service);
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::BreakerConfig;

    #[test]
    fn clients_of_one_service_share_its_entry_and_latencies_fall_in_buckets() {
        let a = register("stats-test", || Breaker::new(BreakerConfig::default()));
        let b = register("stats-test", || unreachable!("registered once"));
        a.record(Outcome::Success, Some(Duration::from_millis(3)));
        b.record(Outcome::ServerError, Some(Duration::from_millis(40)));
        b.record(Outcome::ShortCircuited, None);
        let snap = services()
            .into_iter()
            .find(|s| s.service == "stats-test")
            .unwrap();
        assert_eq!(snap.count(Outcome::Success), 1);
        assert_eq!(snap.count(Outcome::ServerError), 1);
        assert_eq!(snap.count(Outcome::ShortCircuited), 1);
        assert_eq!(snap.latency_buckets[0], 1, "3 ms <= 5 ms");
        assert_eq!(snap.latency_buckets[3], 1, "40 ms <= 50 ms");
        assert_eq!(snap.latency_sum, Duration::from_millis(43));
        assert_eq!(snap.breaker, BreakerState::Closed);
    }
}
