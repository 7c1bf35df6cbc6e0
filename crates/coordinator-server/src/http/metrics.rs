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
//!
//! `route` is the route template (`/api/v1/dispatches/{id}`) or `unmatched`, so that the number
//! of series stays bounded whatever clients ask for.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use coordinator::{DispatchLogStats, DispatchObserver, DispatchReport};
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
            "Handler runs, by signal, handler and status (ok, error, panicked, timed_out)",
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
        Self {
            registry,
            dispatches,
            handler_runs,
            handler_duration,
            http_requests,
            http_duration,
            in_flight,
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

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<AppState>) -> Response {
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
            "coordinator_dispatches_total{signal=\"demo.learner_enrolled\"} 1",
            "coordinator_handler_runs_total{signal=\"demo.order_placed\",handler=\"demo.enroll_learner\",status=\"ok\"} 1",
            "coordinator_handler_runs_total{signal=\"demo.order_placed\",handler=\"demo.notify_unreachable_crm\",status=\"error\"} 1",
            "coordinator_handler_runs_total{signal=\"demo.order_placed\",handler=\"demo.audit_with_bug\",status=\"panicked\"} 1",
            "coordinator_handler_duration_seconds_count{signal=\"demo.order_placed\",handler=\"demo.enroll_learner\"} 1",
            "coordinator_http_requests_total{route=\"/api/demo/orders\",method=\"POST\",status=\"202\"} 1",
            "coordinator_http_requests_total{route=\"/api/v1/dispatches/{id}\",method=\"GET\",status=\"400\"} 1",
            "coordinator_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1",
            "coordinator_http_request_duration_seconds_count{route=\"/api/demo/orders\",method=\"POST\"} 1",
            "coordinator_http_requests_in_flight 1",
            // Nothing runs the writer here: both reports wait in the buffer.
            "coordinator_dispatch_log_buffered 2",
            "coordinator_dispatch_log_capacity 10000",
            "coordinator_dispatch_log_dropped_total 0",
            "coordinator_dispatch_log_written_total 0",
            "coordinator_dispatch_log_write_errors_total 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
