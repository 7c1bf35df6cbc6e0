//! `/api/v1/tasks`: the durable task queue, for operators: list and inspect tasks (with every
//! attempt's error chain), retry a dead or cancelled task, cancel a pending one.

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use coordinator::http::Json;
use coordinator::task::{StoredTask, TaskQuery, TaskState};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tracing::info;
use uuid::Uuid;

use super::AppState;
use super::error::ApiError;
use super::paging;

/// The routes, relative to `/api/v1`.
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/tasks", get(list))
        .route("/tasks/{id}", get(show))
        .route("/tasks/{id}/retry", post(retry))
        .route("/tasks/{id}/cancel", post(cancel))
}

/// One page of the task queue, newest first.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct TaskList {
    /// The tasks, without their attempt history (read one task for it).
    pub items: Vec<StoredTask>,
    /// The URL of the next (older) page, with the same filters; `null` on the last page.
    pub next: Option<String>,
}

/// The query string of `GET /api/v1/tasks`, as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListParams {
    state: Option<String>,
    queue: Option<String>,
    task: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

/// The query parameters, for the OpenAPI document: (name, description).
pub(super) const LIST_PARAMETERS: &[(&str, &str, &str)] = &[
    (
        "state",
        "Only tasks in this state: `queued`, `running`, `succeeded`, `retrying`, `dead` or `cancelled`.",
        r#"{"type": "string", "enum": ["queued", "running", "succeeded", "retrying", "dead", "cancelled"]}"#,
    ),
    (
        "queue",
        "Only tasks on this queue.",
        r#"{"type": "string"}"#,
    ),
    (
        "task",
        "Only tasks of this name (`demo.enroll_in_course`; `deliver:<handler>` for the deliveries of durable signals).",
        r#"{"type": "string"}"#,
    ),
    (
        "before",
        "Only tasks older than this task id (the `next` link sets it).",
        r#"{"type": "string", "format": "uuid"}"#,
    ),
    (
        "limit",
        "The page size, 1 to 500. Default 50.",
        r#"{"type": "integer", "minimum": 1, "maximum": 500, "default": 50}"#,
    ),
];

impl ListParams {
    fn query(&self) -> Result<TaskQuery, ApiError> {
        let bad = |name, problem: String| ApiError::BadParameter { name, problem };
        let mut query = TaskQuery {
            queue: self.queue.clone().filter(|s| !s.is_empty()),
            task: self.task.clone().filter(|s| !s.is_empty()),
            ..TaskQuery::default()
        };
        if let Some(state) = self.state.as_deref().filter(|s| !s.is_empty()) {
            query.state = Some(state.parse::<TaskState>().map_err(|e| bad("state", e))?);
        }
        if let Some(before) = paging::before(self.before.as_deref(), "task")? {
            query.before = Some(before);
        }
        if let Some(limit) = paging::limit(self.limit.as_deref(), TaskQuery::MAX_LIMIT)? {
            query.limit = limit;
        }
        Ok(query)
    }

    /// The URL of the page after the one that ended with `last`.
    fn next_url(&self, last: Uuid) -> String {
        paging::next_url(
            "/api/v1/tasks",
            &[
                ("state", self.state.as_deref()),
                ("queue", self.queue.as_deref()),
                ("task", self.task.as_deref()),
                ("limit", self.limit.as_deref()),
            ],
            last,
        )
    }
}

async fn list(
    State(state): State<AppState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<TaskList>, ApiError> {
    let Query(params) = params.map_err(|e| {
        ApiError::BadQuery(format!(
            "{}; the parameters are state, queue, task, before and limit",
            e.body_text()
        ))
    })?;
    let query = params.query()?;
    let page = state.store.list_tasks(&query).await?;
    Ok(Json(TaskList {
        next: page.next_before.map(|id| params.next_url(id)),
        items: page
            .items
            .into_iter()
            .map(|task| redacted(&state, task))
            .collect(),
    }))
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<StoredTask>, ApiError> {
    let id = task_id(id)?;
    state
        .store
        .get_task(id)
        .await?
        .map(|task| Json(redacted(&state, task)))
        .ok_or(ApiError::TaskNotFound(id))
}

async fn retry(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<StoredTask>, ApiError> {
    let id = task_id(id)?;
    state.store.retry_task(id).await?;
    info!(task_id = %id, "task queued again by an operator (API)");
    current(&state, id).await
}

async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<StoredTask>, ApiError> {
    let id = task_id(id)?;
    state.store.cancel_task(id).await?;
    info!(task_id = %id, "task cancelled by an operator (API)");
    current(&state, id).await
}

/// The task as it is now, after an operation on it.
async fn current(state: &AppState, id: Uuid) -> Result<Json<StoredTask>, ApiError> {
    state
        .store
        .get_task(id)
        .await?
        .map(|task| Json(redacted(state, task)))
        .ok_or(ApiError::TaskNotFound(id))
}

fn task_id(id: String) -> Result<Uuid, ApiError> {
    Uuid::parse_str(&id).map_err(|_| ApiError::InvalidTaskId(id))
}

/// The task with the personal data of its payload masked.
fn redacted(state: &AppState, mut task: StoredTask) -> StoredTask {
    task.payload = state.coordinator.redact_task_payload(&task);
    task
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use coordinator::task::NewTask;

    use super::*;
    use crate::http::testing;

    async fn enqueue(app: &testing::TestApp, task: &str, queue: &str) -> Uuid {
        let new = NewTask {
            queue: queue.to_owned(),
            ..NewTask::new(task, r#"{"email":"ada@example.com"}"#)
        };
        app.state.store.enqueue_task(&new).await.unwrap()
    }

    #[tokio::test]
    async fn tasks_are_listed_newest_first_with_filters_and_a_next_link() {
        let app = testing::app(&[]).await;
        let mut ids = Vec::new();
        for i in 0..5 {
            let queue = if i % 2 == 0 { "lms" } else { "default" };
            ids.push(enqueue(&app, "demo.unknown_task", queue).await);
        }
        let (status, _, page) = app.get("/api/v1/tasks?queue=lms&limit=2").await;
        assert_eq!(status, 200, "{page}");
        let listed: Vec<&str> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap())
            .collect();
        assert_eq!(listed, [ids[4].to_string(), ids[2].to_string()]);
        assert_eq!(page["items"][0]["state"], "queued");
        let next = page["next"].as_str().unwrap();
        assert!(
            next.starts_with("/api/v1/tasks?queue=lms&limit=2&before="),
            "{next}"
        );
        let (_, _, second) = app.get(next).await;
        assert_eq!(second["items"][0]["id"], ids[0].to_string());
        assert!(second["next"].is_null(), "{second}");

        let (_, _, queued) = app
            .get("/api/v1/tasks?state=queued&task=demo.unknown_task")
            .await;
        assert_eq!(queued["items"].as_array().unwrap().len(), 5);
        let (_, _, dead) = app.get("/api/v1/tasks?state=dead").await;
        assert!(dead["items"].as_array().unwrap().is_empty(), "{dead}");
    }

    #[tokio::test]
    async fn bad_parameters_are_400_problems_naming_the_parameter() {
        let app = testing::app(&[]).await;
        for (query, expected) in [
            ("state=zombie", "query parameter `state`"),
            ("state=zombie", "retrying"),
            ("before=42", "is not a task id"),
            ("limit=0", "from 1 to 500"),
            ("sort=asc", "unknown field `sort`"),
        ] {
            let (status, headers, body) = app.get(&format!("/api/v1/tasks?{query}")).await;
            assert_eq!(status, 400, "{query}: {body}");
            assert_eq!(headers["content-type"], "application/problem+json");
            let detail = body["detail"].as_str().unwrap();
            assert!(detail.contains(expected), "{query}: {detail}");
        }
    }

    #[tokio::test]
    async fn one_task_with_its_history_and_no_personal_data() {
        let app = testing::app(&[]).await;
        let id = enqueue(&app, "demo.unknown_task", "default").await;
        let claimed = app
            .state
            .store
            .claim_tasks("w-1", &[], 1, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(claimed[0].id, id);
        let chain = vec!["LMS answered 503".to_owned(), "connection reset".to_owned()];
        app.state
            .store
            .fail_task(
                id,
                "w-1",
                1,
                &chain,
                None,
                coordinator::task::AttemptStatus::Error,
            )
            .await
            .unwrap();

        let (status, _, task) = app.get(&format!("/api/v1/tasks/{id}")).await;
        assert_eq!(status, 200, "{task}");
        assert_eq!(task["state"], "dead");
        assert_eq!(task["history"][0]["worker"], "w-1");
        assert_eq!(task["history"][0]["error_chain"], serde_json::json!(chain));
        assert_eq!(task["last_error"], serde_json::json!(chain));
        // No extension declares the task, so its payload cannot be read: it is masked whole.
        assert_eq!(task["payload"], "[redacted]");
        assert!(!task.to_string().contains("ada@example.com"), "{task}");
        let (_, _, page) = app.get("/api/v1/tasks").await;
        assert!(!page.to_string().contains("ada@example.com"), "{page}");

        let unknown = Uuid::now_v7();
        let (status, _, body) = app.get(&format!("/api/v1/tasks/{unknown}")).await;
        assert_eq!(status, 404);
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains(&unknown.to_string())
        );
        let (status, _, body) = app.get("/api/v1/tasks/not-a-uuid").await;
        assert_eq!(status, 400);
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("\"not-a-uuid\" is not a task id")
        );
    }

    #[tokio::test]
    async fn retry_and_cancel_follow_the_state_or_answer_409() {
        let app = testing::app(&[]).await;
        let id = enqueue(&app, "demo.unknown_task", "default").await;

        let (status, headers, body) = app
            .post(&format!("/api/v1/tasks/{id}/retry"), serde_json::json!({}))
            .await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(headers["content-type"], "application/problem+json");
        assert_eq!(body["state"], "queued");
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.contains("it is queued; only dead or cancelled tasks can be retried"),
            "{detail}"
        );

        let (status, _, task) = app
            .post(&format!("/api/v1/tasks/{id}/cancel"), serde_json::json!({}))
            .await;
        assert_eq!(status, 200, "{task}");
        assert_eq!(task["state"], "cancelled");

        let (status, _, body) = app
            .post(&format!("/api/v1/tasks/{id}/cancel"), serde_json::json!({}))
            .await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["state"], "cancelled");

        let (status, _, task) = app
            .post(&format!("/api/v1/tasks/{id}/retry"), serde_json::json!({}))
            .await;
        assert_eq!(status, 200, "{task}");
        assert_eq!(task["state"], "queued");
        assert_eq!(task["attempts"], 0);

        let unknown = Uuid::now_v7();
        let (status, _, body) = app
            .post(
                &format!("/api/v1/tasks/{unknown}/retry"),
                serde_json::json!({}),
            )
            .await;
        assert_eq!(status, 404, "{body}");
        assert!(body["detail"].as_str().unwrap().contains("no such task"));
    }

    #[tokio::test]
    async fn the_task_routes_require_credentials() {
        let app = testing::app(&[]).await;
        for (method, path) in [
            ("GET", "/api/v1/tasks".to_owned()),
            ("GET", format!("/api/v1/tasks/{}", Uuid::now_v7())),
            ("POST", format!("/api/v1/tasks/{}/retry", Uuid::now_v7())),
            ("POST", format!("/api/v1/tasks/{}/cancel", Uuid::now_v7())),
        ] {
            let request = axum::http::Request::builder()
                .method(method)
                .uri(&path)
                .body(axum::body::Body::empty())
                .unwrap();
            let response = app.send(request).await;
            assert_eq!(response.status(), 401, "{method} {path}");
        }
    }
}
