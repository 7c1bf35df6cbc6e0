//! `/api/v1`: the catalog and the dispatch log.

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use coordinator::Catalog;
use coordinator::dispatch_log::{DispatchQuery, DispatchStatus, StoredDispatch};
use coordinator::http::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::AppState;
use super::error::ApiError;
use super::paging;
use coordinator::time::parse_time_ms;

/// The routes, relative to `/api/v1`.
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/catalog", get(catalog))
        .route("/dispatches", get(list))
        .route("/dispatches/{id}", get(show))
}

async fn catalog(State(state): State<AppState>) -> Json<Catalog> {
    Json(state.coordinator.catalog())
}

/// One page of the dispatch log, newest first.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct DispatchList {
    /// The dispatches.
    pub items: Vec<StoredDispatch>,
    /// The URL of the next (older) page, with the same filters; `null` on the last page.
    pub next: Option<String>,
}

/// The query string of `GET /api/v1/dispatches`, as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListParams {
    signal: Option<String>,
    handler: Option<String>,
    status: Option<String>,
    since: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

/// The query parameters, for the OpenAPI document: (name, description, JSON schema).
pub(super) const LIST_PARAMETERS: &[(&str, &str, &str)] = &[
    (
        "signal",
        "Only dispatches of this signal (`demo.order_placed`).",
        r#"{"type": "string"}"#,
    ),
    (
        "handler",
        "Only dispatches in which this handler ran.",
        r#"{"type": "string"}"#,
    ),
    (
        "status",
        "`ok` or `failed`. With `handler`, the status of that handler's run.",
        r#"{"type": "string", "enum": ["ok", "failed"]}"#,
    ),
    (
        "since",
        "Only dispatches sent at or after this time: RFC 3339 (`2024-06-20T16:13:20Z`) or Unix milliseconds.",
        r#"{"anyOf": [{"type": "string", "format": "date-time"}, {"type": "integer", "minimum": 0, "maximum": 18446744073709551615}]}"#,
    ),
    (
        "before",
        "Only dispatches older than this dispatch id (the `next` link sets it).",
        r#"{"type": "string", "format": "uuid"}"#,
    ),
    (
        "limit",
        "The page size, 1 to 500. Default 50.",
        r#"{"type": "integer", "minimum": 1, "maximum": 500, "default": 50}"#,
    ),
];

impl ListParams {
    fn query(&self) -> Result<DispatchQuery, ApiError> {
        let bad = |name, problem: String| ApiError::BadParameter { name, problem };
        let mut query = DispatchQuery {
            signal: self.signal.clone().filter(|s| !s.is_empty()),
            handler: self.handler.clone().filter(|s| !s.is_empty()),
            ..DispatchQuery::default()
        };
        if let Some(status) = self.status.as_deref().filter(|s| !s.is_empty()) {
            query.status = Some(
                status
                    .parse::<DispatchStatus>()
                    .map_err(|e| bad("status", e))?,
            );
        }
        if let Some(since) = self.since.as_deref().filter(|s| !s.is_empty()) {
            query.since_ms = Some(parse_time_ms(since).map_err(|e| bad("since", e))?);
        }
        if let Some(before) = paging::before(self.before.as_deref(), "dispatch")? {
            query.before = Some(before);
        }
        if let Some(limit) = paging::limit(self.limit.as_deref(), DispatchQuery::MAX_LIMIT)? {
            query.limit = limit;
        }
        Ok(query)
    }

    /// The URL of the page after the one that ended with `last`.
    fn next_url(&self, last: Uuid) -> String {
        paging::next_url(
            "/api/v1/dispatches",
            &[
                ("signal", self.signal.as_deref()),
                ("handler", self.handler.as_deref()),
                ("status", self.status.as_deref()),
                ("since", self.since.as_deref()),
                ("limit", self.limit.as_deref()),
            ],
            last,
        )
    }
}

async fn list(
    State(state): State<AppState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<DispatchList>, ApiError> {
    let Query(params) = params.map_err(|e| {
        ApiError::BadQuery(format!(
            "{}; the parameters are signal, handler, status, since, before and limit",
            e.body_text()
        ))
    })?;
    let query = params.query()?;
    let page = state.store.list_dispatches(&query).await?;
    Ok(Json(DispatchList {
        next: page.next_before.map(|id| params.next_url(id)),
        items: page.items,
    }))
}

/// One dispatch, and for a durable one where each delivery stands now.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct DispatchDetail {
    /// The dispatch as logged when it was sent.
    #[serde(flatten)]
    pub dispatch: StoredDispatch,
    /// For a durable dispatch, each delivery's task as it is now (in handler order); empty
    /// otherwise. A delivery no longer in the store (finished, then purged by the retention)
    /// is left out.
    pub deliveries: Vec<Delivery>,
}

/// Where one delivery of a durable dispatch stands.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Delivery {
    /// The handler it delivers to.
    pub handler: String,
    /// Its task id; the whole task is at `/api/v1/tasks/{id}`.
    #[schemars(with = "String", extend("format" = "uuid"))]
    pub task_id: Uuid,
    /// `queued`, `running`, `retrying`, `succeeded`, `dead` or `cancelled`.
    pub state: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// Attempts in all.
    pub max_attempts: u32,
    /// The handler's summary, once it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// The error chain of the last failed attempt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_error: Vec<String>,
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DispatchDetail>, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::InvalidDispatchId(id))?;
    let dispatch = state
        .store
        .get_dispatch(id)
        .await?
        .ok_or(ApiError::DispatchNotFound(id))?;
    let mut deliveries = Vec::new();
    for run in &dispatch.handlers {
        let Some(task_id) = run.task_id else { continue };
        if let Some(task) = state.store.get_task(task_id).await? {
            deliveries.push(Delivery {
                handler: run.handler.clone(),
                task_id,
                state: task.state.to_string(),
                attempts: task.attempts,
                max_attempts: task.max_attempts,
                result: task.result,
                last_error: task.last_error,
            });
        }
    }
    Ok(Json(DispatchDetail {
        dispatch,
        deliveries,
    }))
}

#[cfg(test)]
mod tests {
    use coordinator::{DispatchReport, HandlerRun, Outcome, Sender};

    use super::*;
    use crate::http::testing;

    fn dispatch(signal: &'static str, ok: bool, sent_at_ms: u64) -> StoredDispatch {
        let id = Uuid::now_v7();
        let outcome = if ok {
            Outcome::Ok { result: None }
        } else {
            Outcome::Error {
                chain: vec!["down".into()],
            }
        };
        StoredDispatch::from(&DispatchReport {
            id,
            signal,
            sender: Sender::Extension("demo"),
            sent_at_ms,
            handlers: vec![HandlerRun {
                handler: "demo.enroll_learner",
                outcome,
                duration: std::time::Duration::from_micros(5),
            }],
        })
    }

    #[tokio::test]
    async fn dispatches_are_listed_newest_first_with_a_next_link() {
        let app = testing::app(&[]).await;
        let mut stored = Vec::new();
        for i in 0..5 {
            let d = dispatch("demo.order_placed", i % 2 == 0, 1_000 + i);
            stored.push(d.clone());
            app.state.store.insert_dispatches(&[d]).await.unwrap();
        }
        app.state
            .store
            .insert_dispatches(&[dispatch("demo.payment_refunded", true, 2_000)])
            .await
            .unwrap();

        let (status, _, page) = app
            .get("/api/v1/dispatches?signal=demo.order_placed&limit=2")
            .await;
        assert_eq!(status, 200, "{page}");
        let ids: Vec<&str> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [stored[4].id.to_string(), stored[3].id.to_string()]);
        let next = page["next"].as_str().unwrap();
        assert!(
            next.starts_with("/api/v1/dispatches?signal=demo.order_placed&limit=2&before="),
            "{next}"
        );

        let (_, _, second) = app.get(next).await;
        assert_eq!(second["items"][0]["id"], stored[2].id.to_string());
        let (_, _, third) = app.get(second["next"].as_str().unwrap()).await;
        assert_eq!(third["items"].as_array().unwrap().len(), 1);
        assert!(third["next"].is_null(), "{third}");

        let (_, _, failed) = app.get("/api/v1/dispatches?status=failed").await;
        assert_eq!(failed["items"].as_array().unwrap().len(), 2, "{failed}");
        let (_, _, recent) = app
            .get("/api/v1/dispatches?since=1970-01-01T00:00:01.003Z")
            .await;
        assert_eq!(recent["items"].as_array().unwrap().len(), 3, "{recent}");
    }

    #[tokio::test]
    async fn bad_parameters_are_400_problems_naming_the_parameter() {
        let app = testing::app(&[]).await;
        for (query, expected) in [
            ("status=broken", "query parameter `status`"),
            ("since=yesterday", "query parameter `since`"),
            ("before=42", "query parameter `before`"),
            ("limit=0", "query parameter `limit`"),
            ("limit=lots", "from 1 to 500"),
            ("sort=asc", "unknown field `sort`"),
        ] {
            let (status, headers, body) = app.get(&format!("/api/v1/dispatches?{query}")).await;
            assert_eq!(status, 400, "{query}: {body}");
            assert_eq!(headers["content-type"], "application/problem+json");
            let detail = body["detail"].as_str().unwrap();
            assert!(detail.contains(expected), "{query}: {detail}");
        }
    }

    #[tokio::test]
    async fn one_dispatch_by_id_404_when_unknown_400_when_not_a_uuid() {
        let app = testing::app(&[]).await;
        let d = dispatch("demo.order_placed", false, 5);
        app.state
            .store
            .insert_dispatches(std::slice::from_ref(&d))
            .await
            .unwrap();
        let (status, _, body) = app.get(&format!("/api/v1/dispatches/{}", d.id)).await;
        assert_eq!(status, 200);
        assert_eq!(body["handlers"][0]["error_chain"][0], "down");

        let unknown = Uuid::now_v7();
        let (status, _, body) = app.get(&format!("/api/v1/dispatches/{unknown}")).await;
        assert_eq!(status, 404);
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains(&unknown.to_string())
        );

        let (status, _, body) = app.get("/api/v1/dispatches/not-a-uuid").await;
        assert_eq!(status, 400);
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("\"not-a-uuid\" is not a dispatch id")
        );
    }

    #[tokio::test]
    async fn the_catalog_is_served_as_json() {
        let app = testing::app(&[]).await;
        let (status, _, catalog) = app.get("/api/v1/catalog").await;
        assert_eq!(status, 200);
        assert!(
            catalog["signals"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["name"] == "demo.order_placed")
        );
    }
}
