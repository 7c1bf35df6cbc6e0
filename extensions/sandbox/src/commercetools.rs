//! The fake commercetools: the OAuth2 token endpoint and the part of a project's HTTP API that
//! the coordinator's commercetools client calls, under `/sandbox/commercetools`, which is both
//! the client's `api_url` and its `auth_url`.
//!
//! | path (under `/sandbox/commercetools`) | fakes |
//! | --- | --- |
//! | `POST /oauth/token` | the OAuth2 service: any client credentials get [`COMMERCETOOLS_TOKEN`] |
//! | `GET /{project}/orders/{id}`, `.../orders/order-number={number}` | an order |
//! | `POST /{project}/orders/{id}` | an order update (three actions, optimistic versions) |
//! | `GET /{project}/customers/{id}`, `.../customers?where=...` | customers, by id or LMS user id |
//! | `GET /{project}/states/{id}`, `.../states/key={key}` | the five workflow states edX uses |
//! | `POST /_orders`, `GET /_orders` | seeds an order and its customer ([`OrderSpec`]); lists them |
//!
//! Every project key reads the same orders. The API's calls need the token and go through the
//! `commercetools` knob; its own refusals have commercetools' shape (`{"statusCode",
//! "message", "errors": [{"code", "message"}]}`), so that the client classifies them as it
//! classifies the real ones. Expansions are not computed: orders are stored with the
//! references the client expands (each line item's product type, the order's state) already
//! filled in, and `expand` parameters are ignored.

mod actions;
mod seed;
mod states;

use coordinator::http::{
    HeaderMap, IntoResponse, Json, Path, Problem, Query, Response, StatusCode,
};
use coordinator::id::now_ms;
use coordinator::prelude::*;
use coordinator::time::format_time_ms;
use serde_json::{Value, json};

use crate::state::{CommercetoolsRecords, SandboxState};

pub use seed::{ItemKind, ItemSpec, OrderSpec};
pub(crate) use seed::{list_orders, seed_order};

use actions::apply;
use states::WorkflowState;

/// The access token the fake commercetools hands out (and requires, as `Bearer`).
pub const COMMERCETOOLS_TOKEN: &str = "sandbox-ct-token";

/// The key of the customer field holding the LMS user id.
const LMS_USER_ID_FIELD: &str = "edx-lms_user_id";
/// The id of the line-item custom type (`bundleId`, `edxLMSEntitlementId`).
const LINE_ITEM_TYPE_ID: &str = "6e1a9d4c-3b7f-4c2e-a8d5-0f9b2e6c1a37";
/// The most customers a query answers (commercetools' maximum `limit`).
const MAX_LIMIT: usize = 500;

/// The route templates, as the sandbox counts calls (the client's names for them).
const ORDER_BY_ID: &str = "GET /{project}/orders/{id}";
const ORDER_BY_NUMBER: &str = "GET /{project}/orders/order-number={orderNumber}";
const UPDATE_ORDER: &str = "POST /{project}/orders/{id}";
const CUSTOMERS: &str = "GET /{project}/customers";
const CUSTOMER_BY_ID: &str = "GET /{project}/customers/{id}";
const STATE_BY_KEY: &str = "GET /{project}/states/key={key}";
const STATE_BY_ID: &str = "GET /{project}/states/{id}";

/// What a call to the fake API is refused with: commercetools' error shape, or the failure its
/// knob injected (a problem, as every fake's knob answers).
#[derive(Debug, thiserror::Error)]
pub(crate) enum CommercetoolsError {
    /// A refusal as commercetools words it.
    #[error("{status} {code}: {message}")]
    Refused {
        status: StatusCode,
        code: &'static str,
        message: String,
        /// The order's version, on a `ConcurrentModification`.
        current_version: Option<u64>,
    },
    /// The knob's failure.
    #[error(transparent)]
    Injected(#[from] Problem),
}

impl CommercetoolsError {
    fn refused(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::Refused {
            status,
            code,
            message: message.into(),
            current_version: None,
        }
    }

    fn not_found(what: &str) -> Self {
        Self::refused(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!("The Resource with {what} was not found."),
        )
    }

    fn invalid_operation(message: impl Into<String>) -> Self {
        Self::refused(StatusCode::BAD_REQUEST, "InvalidOperation", message)
    }

    fn invalid_input(message: impl Into<String>) -> Self {
        Self::refused(StatusCode::BAD_REQUEST, "InvalidInput", message)
    }

    fn invalid_json(message: impl Into<String>) -> Self {
        Self::refused(
            StatusCode::BAD_REQUEST,
            "InvalidJsonInput",
            format!(
                "Request body does not contain valid JSON. {}",
                message.into()
            ),
        )
    }
}

impl IntoResponse for CommercetoolsError {
    fn into_response(self) -> Response {
        match self {
            Self::Refused {
                status,
                code,
                message,
                current_version,
            } => {
                let mut error = json!({"code": code, "message": message});
                if let Some(version) = current_version {
                    error["currentVersion"] = json!(version);
                }
                let body = json!({
                    "statusCode": status.as_u16(),
                    "message": message,
                    "errors": [error],
                });
                (status, Json(body)).into_response()
            }
            Self::Injected(problem) => problem.into_response(),
        }
    }
}

/// `POST /oauth/token`: grants the token to any client, for the scopes asked (form field
/// `scope`), as commercetools' OAuth2 service answers a client-credentials grant.
pub(crate) async fn token(body: String) -> Json<Value> {
    let scope = form_value(&body, "scope")
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "manage_project:sandbox".to_owned());
    Json(json!({
        "access_token": COMMERCETOOLS_TOKEN,
        "token_type": "Bearer",
        "expires_in": 172_800,
        "scope": scope,
    }))
}

/// The value of `name` in an `application/x-www-form-urlencoded` body.
fn form_value(body: &str, name: &str) -> Option<String> {
    body.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (form_decode(key) == name).then(|| form_decode(value))
    })
}

fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 2;
            }
            (byte, _) => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Refuses a call without the token, as commercetools does.
fn authorized(headers: &HeaderMap) -> Result<(), CommercetoolsError> {
    let value = headers
        .get(coordinator::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if value == format!("Bearer {COMMERCETOOLS_TOKEN}") {
        Ok(())
    } else {
        Err(CommercetoolsError::refused(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "sandbox commercetools: send the token from /sandbox/commercetools/oauth/token as \
             `Authorization: Bearer <token>`",
        ))
    }
}

/// Checks the token, counts the call and applies the commercetools knob.
async fn called(
    sandbox: &SandboxState,
    route: &str,
    headers: &HeaderMap,
) -> Result<(), CommercetoolsError> {
    authorized(headers)?;
    *sandbox
        .lock()
        .commercetools
        .calls
        .entry(route.to_owned())
        .or_default() += 1;
    sandbox.call("commercetools").apply().await?;
    Ok(())
}

/// The id of the order `segment` names (`{id}` or `order-number={number}`), or a 404.
fn order_id(records: &CommercetoolsRecords, segment: &str) -> Result<String, CommercetoolsError> {
    match segment.strip_prefix("order-number=") {
        Some(number) => records
            .orders
            .iter()
            .find(|(_, order)| order["orderNumber"] == number)
            .map(|(id, _)| id.clone())
            .ok_or_else(|| CommercetoolsError::not_found(&format!("order number '{number}'"))),
        None if records.orders.contains_key(segment) => Ok(segment.to_owned()),
        None => Err(CommercetoolsError::not_found(&format!("ID '{segment}'"))),
    }
}

/// `GET /{project}/orders/{id}` and `GET /{project}/orders/order-number={number}`.
pub(crate) async fn order(
    State(sandbox): State<SandboxState>,
    headers: HeaderMap,
    Path((_project, segment)): Path<(String, String)>,
) -> Result<Json<Value>, CommercetoolsError> {
    let route = if segment.starts_with("order-number=") {
        ORDER_BY_NUMBER
    } else {
        ORDER_BY_ID
    };
    called(&sandbox, route, &headers).await?;
    let records = sandbox.lock();
    let id = order_id(&records.commercetools, &segment)?;
    Ok(Json(records.commercetools.orders[&id].clone()))
}

/// `POST /{project}/orders/{id}`: applies `{"version", "actions"}` if the version is the
/// order's, all actions or none.
pub(crate) async fn update_order(
    State(sandbox): State<SandboxState>,
    headers: HeaderMap,
    Path((_project, segment)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, CommercetoolsError> {
    called(&sandbox, UPDATE_ORDER, &headers).await?;
    let version = body
        .get("version")
        .and_then(Value::as_u64)
        .ok_or_else(|| CommercetoolsError::invalid_json("version: Missing required value"))?;
    let actions = body
        .get("actions")
        .and_then(Value::as_array)
        .ok_or_else(|| CommercetoolsError::invalid_json("actions: Missing required value"))?;
    let mut records = sandbox.lock();
    let id = order_id(&records.commercetools, &segment)?;
    let stored = &records.commercetools.orders[&id];
    let current = stored["version"].as_u64().unwrap_or_default();
    if version != current {
        let message = format!(
            "Object {id} has a different version than expected. Expected: {version} - Actual: \
             {current}."
        );
        return Err(CommercetoolsError::Refused {
            status: StatusCode::CONFLICT,
            code: "ConcurrentModification",
            message,
            current_version: Some(current),
        });
    }
    if actions.is_empty() {
        return Ok(Json(stored.clone()));
    }
    let mut order = stored.clone();
    for action in actions {
        apply(&mut order, action)?;
    }
    let now = format_time_ms(now_ms());
    order["version"] = json!(current + 1);
    order["versionModifiedAt"] = json!(now);
    order["lastModifiedAt"] = json!(now);
    records.commercetools.orders.insert(id, order.clone());
    records.commercetools.updates += 1;
    Ok(Json(order))
}

/// `GET /{project}/customers/{id}`.
pub(crate) async fn customer(
    State(sandbox): State<SandboxState>,
    headers: HeaderMap,
    Path((_project, id)): Path<(String, String)>,
) -> Result<Json<Value>, CommercetoolsError> {
    called(&sandbox, CUSTOMER_BY_ID, &headers).await?;
    sandbox
        .lock()
        .commercetools
        .customers
        .get(&id)
        .cloned()
        .map(Json)
        .ok_or_else(|| CommercetoolsError::not_found(&format!("ID '{id}'")))
}

/// `GET /{project}/customers`: a page of the customers, those whose `edx-lms_user_id` is
/// the one the `where` predicate names (`custom(fields(edx-lms_user_id=:id))` with `var.id`,
/// or the value written in the predicate) when there is a predicate.
pub(crate) async fn customers(
    State(sandbox): State<SandboxState>,
    headers: HeaderMap,
    Path(_project): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, CommercetoolsError> {
    called(&sandbox, CUSTOMERS, &headers).await?;
    let wanted = lms_user_id_wanted(&query)?;
    let number = |name: &str, default: usize| -> Result<usize, CommercetoolsError> {
        match query.iter().find(|(k, _)| k == name) {
            None => Ok(default),
            Some((_, v)) => v.trim().parse().map_err(|_| {
                CommercetoolsError::invalid_input(format!(
                    "The value '{v}' is not valid for field '{name}': a non-negative integer \
                     is required."
                ))
            }),
        }
    };
    let limit = number("limit", 20)?.min(MAX_LIMIT);
    let offset = number("offset", 0)?;
    let records = sandbox.lock();
    let matching: Vec<&Value> = records
        .commercetools
        .customers
        .values()
        .filter(|c| {
            wanted
                .as_deref()
                .is_none_or(|w| field_text(c, LMS_USER_ID_FIELD).as_deref() == Some(w))
        })
        .collect();
    let results: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(limit)
        .map(|c| (*c).clone())
        .collect();
    Ok(Json(json!({
        "limit": limit,
        "offset": offset,
        "count": results.len(),
        "total": matching.len(),
        "results": results,
    })))
}

/// The customer custom field `name` as text (the LMS user id may be stored as text or as a
/// number).
fn field_text(customer: &Value, name: &str) -> Option<String> {
    match &customer["custom"]["fields"][name] {
        Value::String(text) => Some(text.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The LMS user id the query's `where` predicates ask for, if they ask; a predicate on
/// anything else is refused, since the fake cannot evaluate it.
fn lms_user_id_wanted(query: &[(String, String)]) -> Result<Option<String>, CommercetoolsError> {
    let mut wanted = None;
    for (_, predicate) in query.iter().filter(|(k, _)| k == "where") {
        let value = predicate
            .split_once(LMS_USER_ID_FIELD)
            .and_then(|(_, rest)| rest.trim_start().strip_prefix('='))
            .map(|rest| rest.split(')').next().unwrap_or_default().trim())
            .filter(|value| !value.is_empty())
            .ok_or_else(|| {
                CommercetoolsError::invalid_input(format!(
                    "sandbox commercetools: the predicate '{predicate}' is not faked; it \
                     evaluates custom(fields({LMS_USER_ID_FIELD}=:id)) with var.id, or with \
                     the id written in place of :id"
                ))
            })?;
        let value = match value.strip_prefix(':') {
            Some(variable) => query
                .iter()
                .find(|(k, _)| k.strip_prefix("var.") == Some(variable))
                .map(|(_, v)| v.trim().to_owned())
                .ok_or_else(|| {
                    CommercetoolsError::invalid_input(format!(
                        "The predicate names the variable :{variable}, but the query has no \
                         var.{variable}."
                    ))
                })?,
            None => value.trim_matches('"').to_owned(),
        };
        wanted = Some(value);
    }
    Ok(wanted)
}

/// `GET /{project}/states/{id}` and `GET /{project}/states/key={key}`.
pub(crate) async fn state(
    State(sandbox): State<SandboxState>,
    headers: HeaderMap,
    Path((_project, segment)): Path<(String, String)>,
) -> Result<Json<Value>, CommercetoolsError> {
    match segment.strip_prefix("key=") {
        Some(key) => {
            called(&sandbox, STATE_BY_KEY, &headers).await?;
            WorkflowState::by_key(key)
                .ok_or_else(|| CommercetoolsError::not_found(&format!("key '{key}'")))
        }
        None => {
            called(&sandbox, STATE_BY_ID, &headers).await?;
            WorkflowState::by_id(&segment)
                .ok_or_else(|| CommercetoolsError::not_found(&format!("ID '{segment}'")))
        }
    }
    .map(|state| Json(state.json()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicates_on_the_lms_user_id_are_read_with_or_without_a_variable() {
        let query = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let with_var = query(&[
            ("where", "custom(fields(edx-lms_user_id=:id))"),
            ("var.id", "42"),
        ]);
        assert_eq!(
            lms_user_id_wanted(&with_var).unwrap().as_deref(),
            Some("42")
        );
        let written = query(&[("where", "custom(fields(edx-lms_user_id = \"7\"))")]);
        assert_eq!(lms_user_id_wanted(&written).unwrap().as_deref(), Some("7"));
        assert_eq!(lms_user_id_wanted(&query(&[("limit", "2")])).unwrap(), None);
        assert!(lms_user_id_wanted(&query(&[("where", "email=\"a@b\"")])).is_err());
        let unbound = query(&[("where", "custom(fields(edx-lms_user_id=:id))")]);
        assert!(lms_user_id_wanted(&unbound).is_err());
    }

    #[test]
    fn the_token_echoes_the_scopes_asked_for() {
        assert_eq!(
            form_value(
                "grant_type=client_credentials&scope=manage_orders%3Ax+view_states%3Ax",
                "scope"
            )
            .as_deref(),
            Some("manage_orders:x view_states:x")
        );
        assert_eq!(form_value("grant_type=client_credentials", "scope"), None);
        assert_eq!(form_decode("100%"), "100%");
    }
}
