//! `/api/v1/services`: the external services this process calls, with their circuit breakers
//! and call counts (the same figures as `/metrics`, for operators and the console).

use axum::Router;
use axum::routing::get;
use coordinator::http::Json;
use coordinator_client::{LATENCY_BUCKETS, Outcome};
use schemars::JsonSchema;
use serde::Serialize;

use super::AppState;

/// The routes, relative to `/api/v1`.
pub(super) fn router() -> Router<AppState> {
    Router::new().route("/services", get(list))
}

/// Every external service a client was made for in this process.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Services {
    /// By name.
    pub services: Vec<Service>,
}

/// One external service, as this process has seen it since it started.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Service {
    /// Its name (`lms`, `commercetools`).
    pub service: String,
    /// Its circuit breaker: `closed` (calls go through), `open` (calls fail at once until the
    /// cool-down ends), `half_open` (one probe call decides).
    pub breaker: String,
    /// Times the breaker opened.
    pub breaker_opened: u64,
    /// Calls by outcome: `success`, `rejected` (4xx), `server_error` (5xx, 429), `timeout`,
    /// `connection`, `short_circuited` (not made: the breaker was open), `undecodable`.
    pub calls: std::collections::BTreeMap<String, u64>,
    /// The mean duration of the calls that were answered or timed out, in milliseconds.
    pub mean_ms: Option<f64>,
    /// The slowest latency bucket's upper bound that holds at least 99% of those calls, in
    /// milliseconds (`null` beyond the last bucket, 30 s).
    pub p99_ms_at_most: Option<f64>,
}

async fn list() -> Json<Services> {
    Json(Services {
        services: coordinator_client::services()
            .into_iter()
            .map(|s| {
                let timed: u64 = s.latency_buckets.iter().sum();
                let mut seen = 0;
                let p99 = (timed > 0)
                    .then(|| {
                        s.latency_buckets
                            .iter()
                            .zip(LATENCY_BUCKETS)
                            .find_map(|(n, bound)| {
                                seen += n;
                                (seen * 100 >= timed * 99).then_some(bound * 1000.0)
                            })
                    })
                    .flatten();
                Service {
                    service: s.service.to_owned(),
                    breaker: s.breaker.as_str().to_owned(),
                    breaker_opened: s.breaker_opened_total,
                    calls: Outcome::ALL
                        .iter()
                        .map(|o| (o.as_str().to_owned(), s.count(*o)))
                        .collect(),
                    mean_ms: (timed > 0)
                        .then(|| s.latency_sum.as_secs_f64() * 1000.0 / timed as f64),
                    p99_ms_at_most: p99,
                }
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use coordinator::testing::{FakeService, Reply};
    use coordinator_client::{Call, ServiceClient, ServiceConfig};

    use crate::http::testing;

    #[tokio::test]
    async fn services_show_breakers_and_call_counts() {
        let fake = FakeService::start().await;
        fake.on("GET", "/ok").reply(Reply::status(200));
        let client =
            ServiceClient::new(ServiceConfig::new("services-api-test", fake.url())).unwrap();
        client.send(Call::get("/ok")).await.unwrap();

        let app = testing::app(&[]).await;
        let (status, _, body) = app.get("/api/v1/services").await;
        assert_eq!(status, 200);
        let service = body["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["service"] == "services-api-test")
            .unwrap();
        assert_eq!(service["breaker"], "closed");
        assert_eq!(service["calls"]["success"], 1);
        assert_eq!(service["calls"]["timeout"], 0);
        assert!(service["mean_ms"].as_f64().unwrap() > 0.0);
    }
}
