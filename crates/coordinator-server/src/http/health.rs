//! `/health` (the process answers) and `/ready` (it can serve: the database answers and has every
//! migration applied).

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use coordinator::WorkerHealth;
use coordinator::http::Json;
use schemars::JsonSchema;
use serde::Serialize;
use tracing::error;

use super::AppState;
use super::error::ApiError;

/// The body of a successful `/health` or `/ready`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Status {
    /// `ok` (`/health`) or `ready` (`/ready`).
    pub status: &'static str,
}

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
}

async fn health() -> Json<Status> {
    Json(Status { status: "ok" })
}

async fn ready(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    if let Err(e) = state.store.ping().await {
        error!(error = %e, "not ready: the database does not answer");
        return Err(ApiError::NotReady(
            "the database does not answer; the error is logged with this request's id".to_owned(),
        ));
    }
    let pending = match state.store.pending_migrations(&state.migrations).await {
        Ok(pending) => pending,
        Err(e) => {
            error!(error = %e, "not ready: cannot read the applied migrations");
            return Err(ApiError::NotReady(
                "cannot read which migrations are applied; the error is logged with this request's id"
                    .to_owned(),
            ));
        }
    };
    if let Some(Err(problem)) = state.worker.as_ref().map(WorkerHealth::check) {
        error!(problem, "not ready: the task worker is stuck");
        return Err(ApiError::NotReady(problem));
    }
    if !pending.is_empty() {
        let names: Vec<String> = pending
            .iter()
            .map(|m| format!("{}/{} ({})", m.extension, m.version, m.name))
            .collect();
        return Err(ApiError::NotReady(format!(
            "{} migration(s) pending: {}; run `coordinator migrate` (or restart `coordinator serve`, which migrates)",
            names.len(),
            names.join(", ")
        )));
    }
    Ok(Json(Status { status: "ready" }))
}

#[cfg(test)]
mod tests {
    use crate::http::testing;

    #[tokio::test]
    async fn health_answers_ok() {
        let app = testing::app(&[]).await;
        let (status, _, body) = app.get("/health").await;
        assert_eq!(status, 200);
        assert_eq!(body, serde_json::json!({"status": "ok"}));
    }

    #[tokio::test]
    async fn ready_when_migrated_503_naming_pending_migrations_otherwise() {
        let app = testing::app_with(&[], false).await;
        let (status, headers, body) = app.get("/ready").await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(headers["content-type"], "application/problem+json");
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains("pending: coordinator/1"), "{detail}");
        assert!(detail.contains("coordinator migrate"), "{detail}");

        app.state
            .store
            .migrate(&app.state.migrations)
            .await
            .unwrap();
        let (status, _, body) = app.get("/ready").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "ready");
    }

    #[tokio::test]
    async fn not_ready_when_the_database_is_closed() {
        let app = testing::app(&[]).await;
        app.state.store.close().await;
        let (status, _, body) = app.get("/ready").await;
        assert_eq!(status, 503);
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("the database does not answer"),
            "{body}"
        );
    }
}
