//! The fake fulfillment service (the original's separate service that fulfills and revokes
//! order lines when forwarding is on), under `/sandbox/fulfillment`.

use coordinator::http::{Json, Problem};
use coordinator::prelude::*;
use serde_json::{Value, json};

use crate::state::SandboxState;

/// `POST /api/fulfill-order/`: accepts an order to fulfill.
pub(crate) async fn fulfill(
    State(sandbox): State<SandboxState>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, Problem> {
    sandbox.call("fulfillment").apply().await?;
    sandbox.lock().fulfillment.fulfilled.push(body);
    Ok(Json(json!({ "status": "accepted" })))
}

/// `POST /api/revoke-line/`: accepts a line to revoke.
pub(crate) async fn revoke(
    State(sandbox): State<SandboxState>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, Problem> {
    sandbox.call("fulfillment").apply().await?;
    sandbox.lock().fulfillment.revoked.push(body);
    Ok(Json(json!({ "status": "accepted" })))
}
