//! Prometheus metrics, served at `/metrics` in the OpenMetrics text format.
//!
//! | metric | labels | what |
//! | --- | --- | --- |
//! | `coordinator_dispatches_total` | signal | dispatches (one per `send_robust`) |
//! | `coordinator_handler_runs_total` | signal, handler, status | handler runs by outcome |
//! | `coordinator_handler_duration_seconds` | signal, handler | how long handlers ran |
//! | `coordinator_http_requests_total` | route, method, status | HTTP requests answered |
//! | `coordinator_http_request_duration_seconds` | route, method | how long requests took |
//! | `coordinator_http_requests_in_flight` | | requests being served now |
//! | `coordinator_dispatch_log_buffered` | | reports waiting for the writer |
//! | `coordinator_dispatch_log_capacity` | | the most that can wait |
//! | `coordinator_dispatch_log_dropped_total` | | reports lost |
//! | `coordinator_dispatch_log_written_total` | | reports stored |
//! | `coordinator_dispatch_log_write_errors_total` | | failed write attempts |
//! | `coordinator_task_queue_depth` | queue, state | tasks in the store, counted at each scrape |
//! | `coordinator_task_counts_errors_total` | | scrapes at which the tasks could not be counted |
//! | `coordinator_task_attempts_total` | task, status | task attempts this process recorded |
//! | `coordinator_task_duration_seconds` | task, status | how long those attempts ran |
//! | `coordinator_tasks_dead_total` | task, queue | tasks this process found dead |
//! | `coordinator_external_calls_total` | service, outcome | calls to external services by outcome |
//! | `coordinator_external_call_duration_seconds` | service | how long those calls took |
//! | `coordinator_external_breaker_state` | service | 0 closed, 1 open, 2 half-open (probing) |
//! | `coordinator_external_breaker_opened_total` | service | times the service's breaker opened |
//!
//! `route` is the route template (`/api/v1/dispatches/{id}`) or `unmatched`, so that the number
//! of series stays bounded whatever clients ask for. A task attempt's `status` is what its
//! worker recorded: `succeeded`, `retrying`, `dead`, `postponed` (not run: `TaskError::Postpone`,
//! not counted), `released` (given back at shutdown) or
//! `lost` (its outcome was discarded: the task was cancelled or another worker took it over).
//! The queue depth covers every task in the store (all processes'), the task counters only the
//! attempts of this process's worker.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use coordinator::task::{TaskCount, TaskState};
use coordinator::{DispatchLogStats, DispatchObserver, DispatchReport, TaskObserver};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tracing::error;

use super::AppState;

/// The OpenMetrics text media type, which Prometheus reads.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SignalLabels {
    signal: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    signal: &'static str,
    handler: &'static str,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandlerLabels {
    signal: &'static str,
    handler: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskRunLabels {
    task: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskQueueLabels {
    task: String,
    queue: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric of the process, and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    dispatches: Family<SignalLabels, Counter>,
    handler_runs: Family<RunLabels, Counter>,
    handler_duration: HistogramFamily<HandlerLabels>,
    http_requests: Family<RequestLabels, Counter>,
    http_duration: HistogramFamily<RouteLabels>,
    in_flight: Gauge,
    task_attempts: Family<TaskRunLabels, Counter>,
    task_duration: HistogramFamily<TaskRunLabels>,
    tasks_dead: Family<TaskQueueLabels, Counter>,
    queue_depth: Arc<QueueDepth>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn handler_histogram() -> Histogram {
    // 100 µs to ~26 s.
    Histogram::new(exponential_buckets(0.000_1, 4.0, 10))
}

fn task_histogram() -> Histogram {
    // 1 ms to ~4.8 h: tasks call other services, with timeouts up to hours.
    Histogram::new(exponential_buckets(0.001, 4.0, 13))
}

fn request_histogram() -> Histogram {
    // 1 ms to ~33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Metrics {
    /// A registry with every metric at zero; `dispatch_log` (when the log is enabled) is read at
    /// each scrape.
    pub fn new(dispatch_log: Option<Arc<DispatchLogStats>>) -> Self {
        let mut registry = Registry::with_prefix("coordinator");
        let dispatches = Family::default();
        registry.register(
            "dispatches",
            "Dispatches (send_robust calls), by signal",
            dispatches.clone(),
        );
        let handler_runs = Family::default();
        registry.register(
            "handler_runs",
            "Handler runs, by signal, handler and status (ok, error, panicked, timed_out; queued: a durable delivery stored)",
            handler_runs.clone(),
        );
        let handler_duration: HistogramFamily<HandlerLabels> =
            Family::new_with_constructor(handler_histogram);
        registry.register(
            "handler_duration_seconds",
            "How long handlers ran, by signal and handler",
            handler_duration.clone(),
        );
        let http_requests = Family::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            http_requests.clone(),
        );
        let http_duration: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(request_histogram);
        registry.register(
            "http_request_duration_seconds",
            "How long HTTP requests took, by route template and method",
            http_duration.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "http_requests_in_flight",
            "HTTP requests being served now",
            in_flight.clone(),
        );
        if let Some(stats) = dispatch_log {
            registry.register_collector(Box::new(DispatchLogCollector(stats)));
        }
        let task_attempts = Family::default();
        registry.register(
            "task_attempts",
            "Task attempts recorded by this process's worker, by task and status (succeeded, \
             retrying, dead, released, lost)",
            task_attempts.clone(),
        );
        let task_duration: HistogramFamily<TaskRunLabels> =
            Family::new_with_constructor(task_histogram);
        registry.register(
            "task_duration_seconds",
            "How long task attempts ran, by task and recorded status",
            task_duration.clone(),
        );
        let tasks_dead = Family::default();
        registry.register(
            "tasks_dead",
            "Tasks this process's worker found dead (attempts exhausted or a permanent failure), \
             by task and queue",
            tasks_dead.clone(),
        );
        let queue_depth = Arc::new(QueueDepth::default());
        registry.register_collector(Box::new(QueueDepthCollector(Arc::clone(&queue_depth))));
        registry.register_collector(Box::new(ExternalCallsCollector));
        Self {
            registry,
            dispatches,
            handler_runs,
            handler_duration,
            http_requests,
            http_duration,
            in_flight,
            task_attempts,
            task_duration,
            tasks_dead,
            queue_depth,
        }
    }

    /// Sets the task counts the next render shows as `coordinator_task_queue_depth`, or `None`
    /// when they could not be read (the series are left out and the error counted).
    pub fn set_task_counts(&self, counts: Option<Vec<TaskCount>>) {
        let mut depth = self
            .queue_depth
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match counts {
            Some(counts) => {
                depth.queues.extend(counts.iter().map(|c| c.queue.clone()));
                depth.counts = Some(counts);
            }
            None => {
                depth.counts = None;
                depth.errors += 1;
            }
        }
    }

    /// Counts one answered HTTP request.
    pub fn http_request(&self, route: &str, method: &Method, status: StatusCode, took: Duration) {
        let method = method_label(method);
        self.http_requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method,
                status: status.as_u16(),
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
                method,
            })
            .observe(took.as_secs_f64());
    }

    /// A request started; the guard counts it as finished when dropped.
    pub fn request_started(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// The metrics in the OpenMetrics text format.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// Counts a request as in flight while it lives.
#[derive(Debug)]
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A bounded label for any method: clients can send any token as a method.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

impl DispatchObserver for Metrics {
    fn dispatched(&self, report: &DispatchReport) {
        let signal = report.signal;
        self.dispatches
            .get_or_create(&SignalLabels { signal })
            .inc();
        for run in &report.handlers {
            let handler = run.handler;
            self.handler_runs
                .get_or_create(&RunLabels {
                    signal,
                    handler,
                    status: run.outcome.status(),
                })
                .inc();
            self.handler_duration
                .get_or_create(&HandlerLabels { signal, handler })
                .observe(run.duration.as_secs_f64());
        }
    }
}

impl TaskObserver for Metrics {
    fn task_finished(
        &self,
        task: &str,
        queue: &str,
        status: &str,
        _attempt: u32,
        duration: Duration,
    ) {
        let status = task_status_label(status);
        let labels = TaskRunLabels {
            task: task.to_owned(),
            status,
        };
        self.task_attempts.get_or_create(&labels).inc();
        self.task_duration
            .get_or_create(&labels)
            .observe(duration.as_secs_f64());
        if status == "dead" {
            self.tasks_dead
                .get_or_create(&TaskQueueLabels {
                    task: task.to_owned(),
                    queue: queue.to_owned(),
                })
                .inc();
        }
    }
}

/// A bounded label for a recorded attempt's status.
fn task_status_label(status: &str) -> &'static str {
    match status {
        "succeeded" => "succeeded",
        "retrying" => "retrying",
        "dead" => "dead",
        "released" => "released",
        "postponed" => "postponed",
        "lost" => "lost",
        _ => "other",
    }
}

/// The task counts read at the latest scrape, and every queue seen since the process started
/// (so that a queue that empties shows zeros instead of vanishing).
#[derive(Debug, Default)]
struct QueueDepth {
    inner: Mutex<QueueDepthInner>,
}

#[derive(Debug, Default)]
struct QueueDepthInner {
    counts: Option<Vec<TaskCount>>,
    queues: BTreeSet<String>,
    errors: u64,
}

#[derive(Debug)]
struct QueueDepthCollector(Arc<QueueDepth>);

impl Collector for QueueDepthCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let depth = self.0.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let errors = ConstCounter::new(depth.errors);
        let metric = encoder.encode_descriptor(
            "task_counts_errors",
            "Scrapes at which the tasks in the store could not be counted (the error is logged)",
            None,
            errors.metric_type(),
        )?;
        errors.encode(metric)?;
        let Some(counts) = &depth.counts else {
            return Ok(());
        };
        let mut family = encoder.encode_descriptor(
            "task_queue_depth",
            "Tasks in the store, by queue and state, counted at this scrape",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for queue in &depth.queues {
            for state in TaskState::ALL {
                let count = counts
                    .iter()
                    .find(|c| &c.queue == queue && c.state == state)
                    .map_or(0, |c| c.count);
                let labels = [("queue", queue.as_str()), ("state", state.as_str())];
                let gauge = ConstGauge::new(i64::try_from(count).unwrap_or(i64::MAX));
                gauge.encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// Reads the dispatch log's counters at each scrape.
#[derive(Debug)]
struct DispatchLogCollector(Arc<DispatchLogStats>);

impl Collector for DispatchLogCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = &self.0;
        let gauges = [
            (
                "dispatch_log_buffered",
                "Dispatch reports waiting in memory for the writer",
                stats.buffered(),
            ),
            (
                "dispatch_log_capacity",
                "The most dispatch reports that can wait ([dispatch_log] buffer)",
                stats.capacity(),
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        let counters = [
            (
                "dispatch_log_dropped",
                "Dispatch reports lost: the buffer was full, or their batch could not be written",
                stats.dropped(),
            ),
            (
                "dispatch_log_written",
                "Dispatch reports written to the database",
                stats.written(),
            ),
            (
                "dispatch_log_write_errors",
                "Failed attempts to write a batch of dispatch reports (each retry counts)",
                stats.write_errors(),
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        Ok(())
    }
}

/// Reads the external services' call statistics and breakers at each scrape
/// ([`coordinator_client::services`]).
#[derive(Debug)]
struct ExternalCallsCollector;

/// A histogram read from counters kept elsewhere.
#[derive(Debug)]
struct ConstHistogram {
    sum: f64,
    count: u64,
    /// Upper bounds and cumulative counts.
    buckets: Vec<(f64, u64)>,
}

impl EncodeMetric for ConstHistogram {
    fn encode(&self, mut encoder: prometheus_client::encoding::MetricEncoder) -> std::fmt::Result {
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            self.sum,
            self.count,
            &self.buckets,
            None,
        )
    }

    fn metric_type(&self) -> prometheus_client::metrics::MetricType {
        prometheus_client::metrics::MetricType::Histogram
    }
}

impl Collector for ExternalCallsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use coordinator_client::{BreakerState, LATENCY_BUCKETS, Outcome};
        let services = coordinator_client::services();
        if services.is_empty() {
            return Ok(());
        }
        let mut calls = encoder.encode_descriptor(
            "external_calls",
            "Calls to external services, by service and outcome (success, rejected, \
             server_error, timeout, connection, short_circuited: not made, its breaker open; \
             undecodable)",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for s in &services {
            for outcome in Outcome::ALL {
                let labels = [("service", s.service), ("outcome", outcome.as_str())];
                ConstCounter::new(s.count(outcome)).encode(calls.encode_family(&labels)?)?;
            }
        }
        let mut durations = encoder.encode_descriptor(
            "external_call_duration_seconds",
            "How long calls to external services took (answered or timed out), by service",
            None,
            prometheus_client::metrics::MetricType::Histogram,
        )?;
        for s in &services {
            let mut cumulative = 0;
            let mut buckets: Vec<(f64, u64)> = LATENCY_BUCKETS
                .iter()
                .zip(&s.latency_buckets)
                .map(|(bound, n)| {
                    cumulative += n;
                    (*bound, cumulative)
                })
                .collect();
            let count = s.latency_buckets.iter().sum();
            buckets.push((f64::INFINITY, count));
            let histogram = ConstHistogram {
                sum: s.latency_sum.as_secs_f64(),
                count,
                buckets,
            };
            histogram.encode(durations.encode_family(&[("service", s.service)])?)?;
        }
        let mut state = encoder.encode_descriptor(
            "external_breaker_state",
            "Each external service's circuit breaker: 0 closed, 1 open, 2 half-open (one probe)",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for s in &services {
            let value = match s.breaker {
                BreakerState::Closed => 0,
                BreakerState::Open => 1,
                BreakerState::HalfOpen => 2,
            };
            ConstGauge::new(value).encode(state.encode_family(&[("service", s.service)])?)?;
        }
        let mut opened = encoder.encode_descriptor(
            "external_breaker_opened",
            "Times each external service's circuit breaker opened",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for s in &services {
            ConstCounter::new(s.breaker_opened_total)
                .encode(opened.encode_family(&[("service", s.service)])?)?;
        }
        Ok(())
    }
}

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<AppState>) -> Response {
    let counts = match state.store.task_counts().await {
        Ok(counts) => Some(counts),
        Err(e) => {
            error!(error = %e, "cannot count the tasks for coordinator_task_queue_depth");
            None
        }
    };
    state.metrics.set_task_counts(counts);
    match state.metrics.render() {
        Ok(text) => {
            let mut response = text.into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
            response
        }
        Err(e) => {
            error!(error = %e, "cannot render the metrics");
            coordinator::http::Problem::internal(&e).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;

    use crate::http::testing;

    #[tokio::test]
    async fn metrics_count_dispatches_handlers_requests_and_the_dispatch_log() {
        let app = testing::app(&[]).await;
        let (status, _, _) = app.post("/api/demo/orders", testing::order("EDX-7")).await;
        assert_eq!(status, 202);
        let _ = app.get("/api/v1/dispatches/not-a-uuid").await;
        let _ = app.get("/no/such/path").await;

        let response = app
            .send(Request::get("/metrics").body(Body::empty()).unwrap())
            .await;
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/openmetrics-text")
        );
        let text = testing::text(response).await;
        for line in [
            "coordinator_dispatches_total{signal=\"demo.order_placed\"} 1",
            // demo.order_placed is durable: each delivery is stored, to run as a task.
            "coordinator_handler_runs_total{signal=\"demo.order_placed\",handler=\"demo.enroll_learner\",status=\"queued\"} 1",
            "coordinator_handler_runs_total{signal=\"demo.order_placed\",handler=\"demo.notify_unreachable_crm\",status=\"queued\"} 1",
            "coordinator_handler_runs_total{signal=\"demo.order_placed\",handler=\"demo.audit_with_bug\",status=\"queued\"} 1",
            "coordinator_handler_duration_seconds_count{signal=\"demo.order_placed\",handler=\"demo.enroll_learner\"} 1",
            "coordinator_http_requests_total{route=\"/api/demo/orders\",method=\"POST\",status=\"202\"} 1",
            "coordinator_http_requests_total{route=\"/api/v1/dispatches/{id}\",method=\"GET\",status=\"400\"} 1",
            "coordinator_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1",
            "coordinator_http_request_duration_seconds_count{route=\"/api/demo/orders\",method=\"POST\"} 1",
            "coordinator_http_requests_in_flight 1",
            // The four deliveries wait for a worker; nothing runs them here.
            "coordinator_task_queue_depth{queue=\"default\",state=\"queued\"} 4",
            "coordinator_task_queue_depth{queue=\"default\",state=\"succeeded\"} 0",
            // The durable dispatch was stored with its deliveries, not through the buffer.
            "coordinator_dispatch_log_buffered 0",
            "coordinator_dispatch_log_capacity 10000",
            "coordinator_dispatch_log_dropped_total 0",
            "coordinator_dispatch_log_written_total 0",
            "coordinator_dispatch_log_write_errors_total 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[tokio::test]
    async fn task_metrics_count_attempts_dead_tasks_and_the_queue_depth_at_scrape() {
        use coordinator::TaskObserver as _;
        use coordinator::task::NewTask;
        use std::time::Duration;

        let app = testing::app(&[]).await;
        let scrape = || async {
            testing::text(
                app.send(Request::get("/metrics").body(Body::empty()).unwrap())
                    .await,
            )
            .await
        };
        let text = scrape().await;
        assert!(
            text.contains("coordinator_task_counts_errors_total 0"),
            "{text}"
        );
        assert!(!text.contains("coordinator_task_queue_depth{"), "{text}");

        for queue in ["lms", "lms", "default"] {
            let task = NewTask {
                queue: queue.to_owned(),
                ..NewTask::new("demo.some_task", "{}")
            };
            app.state.store.enqueue_task(&task).await.unwrap();
        }
        let metrics = &app.state.metrics;
        metrics.task_finished(
            "demo.some_task",
            "lms",
            "succeeded",
            1,
            Duration::from_millis(3),
        );
        metrics.task_finished(
            "demo.some_task",
            "lms",
            "retrying",
            1,
            Duration::from_millis(5),
        );
        metrics.task_finished("demo.some_task", "lms", "dead", 2, Duration::from_millis(5));
        let text = scrape().await;
        for line in [
            "coordinator_task_queue_depth{queue=\"lms\",state=\"queued\"} 2",
            "coordinator_task_queue_depth{queue=\"lms\",state=\"dead\"} 0",
            "coordinator_task_queue_depth{queue=\"default\",state=\"queued\"} 1",
            "coordinator_task_attempts_total{task=\"demo.some_task\",status=\"succeeded\"} 1",
            "coordinator_task_attempts_total{task=\"demo.some_task\",status=\"retrying\"} 1",
            "coordinator_task_attempts_total{task=\"demo.some_task\",status=\"dead\"} 1",
            "coordinator_task_duration_seconds_count{task=\"demo.some_task\",status=\"dead\"} 1",
            "coordinator_tasks_dead_total{task=\"demo.some_task\",queue=\"lms\"} 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }

        // The store gone: no depth (rather than a stale one), and the failure counted.
        app.state.store.close().await;
        let text = scrape().await;
        assert!(
            text.contains("coordinator_task_counts_errors_total 1"),
            "{text}"
        );
        assert!(!text.contains("coordinator_task_queue_depth{"), "{text}");
    }

    #[tokio::test]
    async fn external_calls_and_breakers_are_in_the_metrics() {
        use coordinator::testing::{FakeService, Reply};
        use coordinator_client::{BreakerConfig, Call, ServiceClient, ServiceConfig};
        let fake = FakeService::start().await;
        fake.on("GET", "/up").reply(Reply::status(200));
        fake.on("GET", "/down").reply(Reply::status(503));
        let client = ServiceClient::new(
            ServiceConfig::new("metrics-test-service", fake.url()).breaker(BreakerConfig {
                failures: 2,
                cool_down: std::time::Duration::from_secs(60),
            }),
        )
        .unwrap();
        client.send(Call::get("/up")).await.unwrap();
        for _ in 0..3 {
            client.send(Call::get("/down")).await.unwrap_err();
        }
        let text = super::Metrics::new(None).render().unwrap();
        for line in [
            "coordinator_external_calls_total{service=\"metrics-test-service\",outcome=\"success\"} 1",
            "coordinator_external_calls_total{service=\"metrics-test-service\",outcome=\"server_error\"} 2",
            "coordinator_external_calls_total{service=\"metrics-test-service\",outcome=\"short_circuited\"} 1",
            "coordinator_external_call_duration_seconds_count{service=\"metrics-test-service\"} 3",
            "coordinator_external_call_duration_seconds_bucket{le=\"+Inf\",service=\"metrics-test-service\"} 3",
            "coordinator_external_breaker_state{service=\"metrics-test-service\"} 1",
            "coordinator_external_breaker_opened_total{service=\"metrics-test-service\"} 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
