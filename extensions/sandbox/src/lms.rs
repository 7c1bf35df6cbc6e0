//! The fake LMS: OAuth2 tokens, enrollments, entitlements, account deactivation, at the paths
//! the real LMS serves (under `/sandbox/lms`).

use coordinator::http::{HeaderMap, Json, Path, Problem, StatusCode, header};
use coordinator::prelude::*;
use serde_json::{Value, json};

use crate::state::SandboxState;

/// The access token the fake LMS hands out (and requires).
pub const LMS_TOKEN: &str = "sandbox-lms-token";

/// A token answer, as the LMS's `/oauth2/access_token` gives it (`token_type=jwt` asked).
pub(crate) async fn token() -> Json<Value> {
    Json(json!({
        "access_token": LMS_TOKEN,
        "token_type": "JWT",
        "expires_in": 3600,
        "scope": "read write"
    }))
}

/// Refuses a call without the token, like the LMS does.
fn authorized(headers: &HeaderMap) -> Result<(), Problem> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if value == format!("JWT {LMS_TOKEN}") || value == format!("Bearer {LMS_TOKEN}") {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "sandbox LMS: send the token from /sandbox/lms/oauth2/access_token as \
             `Authorization: JWT <token>`",
        ))
    }
}

/// Counts a call and applies the LMS knob.
async fn called(sandbox: &SandboxState, route: &str, headers: &HeaderMap) -> Result<(), Problem> {
    authorized(headers)?;
    *sandbox
        .lock()
        .lms
        .calls
        .entry(route.to_owned())
        .or_default() += 1;
    sandbox.call("lms").apply().await
}

fn text<'a>(body: &'a Value, pointer: &str) -> Result<&'a str, Problem> {
    body.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            Problem::bad_request(format!(
                "sandbox LMS: the body has no {pointer} (a non-empty string)"
            ))
        })
}

/// `POST /api/enrollment/v1/enrollment`: enrolls (or updates the enrollment of) a user.
pub(crate) async fn enroll(
    State(sandbox): State<SandboxState>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Json<Value>, Problem> {
    called(&sandbox, "enrollment", &headers).await?;
    let user = text(&body, "/user")?.to_owned();
    let course = text(&body, "/course_details/course_id")?.to_owned();
    let mode = body
        .get("mode")
        .and_then(Value::as_str)
        .unwrap_or("audit")
        .to_owned();
    let is_active = body
        .get("is_active")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let answer = json!({
        "created": "2026-01-01T00:00:00Z",
        "mode": mode,
        "is_active": is_active,
        "course_details": { "course_id": course },
        "user": user,
    });
    sandbox
        .lock()
        .lms
        .enrollments
        .insert(format!("{user} {course}"), body);
    Ok(Json(answer))
}

/// `POST /api/entitlements/v1/entitlements/`: grants an entitlement to a program's course.
pub(crate) async fn entitle(
    State(sandbox): State<SandboxState>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    called(&sandbox, "entitlements", &headers).await?;
    let user = text(&body, "/user")?.to_owned();
    let course_uuid = text(&body, "/course_uuid")?.to_owned();
    let uuid = coordinator::id::new_uuid().to_string();
    let mut answer = body.clone();
    if let Some(map) = answer.as_object_mut() {
        map.insert("uuid".into(), json!(uuid));
        map.insert("user".into(), json!(user));
        map.insert("course_uuid".into(), json!(course_uuid));
    }
    sandbox.lock().lms.entitlements.insert(uuid, answer.clone());
    Ok((StatusCode::CREATED, Json(answer)))
}

/// `POST /api/user/v1/accounts/{username}/deactivate/`: deactivates an account.
pub(crate) async fn deactivate(
    State(sandbox): State<SandboxState>,
    headers: HeaderMap,
    Path(username): Path<String>,
) -> Result<Json<Value>, Problem> {
    called(&sandbox, "deactivate", &headers).await?;
    sandbox.lock().lms.deactivated.push(username.clone());
    Ok(Json(json!({ "username": username, "is_active": false })))
}
