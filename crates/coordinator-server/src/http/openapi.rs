//! `/api/openapi.json`: an OpenAPI 3.1 document of every route, built from the same data the
//! router is built from (the core routes listed here, each extension's [`Route`]s with their
//! docs, schemas and access), with JSON schemas from `schemars`.
//!
//! See `docs/decisions/0007-http-api.md` for why it is assembled by hand rather than by an
//! OpenAPI framework.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use coordinator::http::{Access, Json, Problem, Route, StatusCode};
use coordinator::task::StoredTask;
use coordinator::{Catalog, Coordinator};
use serde_json::{Map, Value, json};

use super::AppState;
use super::dispatches::{DispatchDetail, DispatchList, LIST_PARAMETERS};
use super::health::Status;
use super::tasks::{LIST_PARAMETERS as TASK_LIST_PARAMETERS, TaskList};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(openapi))
}

async fn openapi(State(state): State<AppState>) -> Json<Value> {
    Json(document(&state.coordinator))
}

const PROBLEM_JSON: &str = "application/problem+json";

/// Collects schemas into `components.schemas`, rewriting references to point there.
#[derive(Default)]
struct Schemas {
    components: Map<String, Value>,
}

impl Schemas {
    /// A reference to the schema of `T`.
    fn of<T: schemars::JsonSchema>(&mut self) -> Value {
        self.add(schemars::schema_for!(T).to_value(), "")
    }

    /// Moves a root schema's `$defs` (and the schema itself, when it has a title) into the
    /// components and returns what to put where the schema is used. A name taken by a different
    /// schema gets `prefix` (then a number) in front.
    fn add(&mut self, mut schema: Value, prefix: &str) -> Value {
        let defs = schema
            .as_object_mut()
            .and_then(|o| {
                o.remove("$schema");
                o.remove("$defs")
            })
            .and_then(|d| match d {
                Value::Object(map) => Some(map),
                _ => None,
            })
            .unwrap_or_default();
        let mut defs: Vec<(String, Value)> = defs.into_iter().collect();
        // References to the schema's own definitions point at the components instead.
        rewrite_refs(&mut schema, "#/$defs/", &[]);
        bound_integers(&mut schema);
        for (_, def) in &mut defs {
            rewrite_refs(def, "#/$defs/", &[]);
            bound_integers(def);
        }
        let renames: Vec<(String, String)> = defs
            .iter()
            .map(|(name, def)| (name.clone(), self.free_name(name, prefix, def)))
            .filter(|(name, target)| name != target)
            .collect();
        if !renames.is_empty() {
            rewrite_refs(&mut schema, COMPONENTS, &renames);
            for (_, def) in &mut defs {
                rewrite_refs(def, COMPONENTS, &renames);
            }
        }
        for (name, def) in defs {
            let target = renames
                .iter()
                .find(|(from, _)| *from == name)
                .map_or(name, |(_, to)| to.clone());
            self.components.entry(target).or_insert(def);
        }
        match schema
            .get("title")
            .and_then(Value::as_str)
            .map(str::to_owned)
        {
            Some(title) => {
                let target = self.free_name(&title, prefix, &schema);
                self.components.entry(target.clone()).or_insert(schema);
                json!({ "$ref": format!("{COMPONENTS}{target}") })
            }
            None => schema,
        }
    }

    fn free_name(&self, name: &str, prefix: &str, schema: &Value) -> String {
        let mut candidate = name.to_owned();
        let mut n = 1;
        while let Some(existing) = self.components.get(&candidate) {
            if same_schema(existing, schema) {
                break;
            }
            candidate = match (n, prefix.is_empty()) {
                (1, false) => format!("{prefix}_{name}"),
                (_, false) => format!("{prefix}_{name}_{n}"),
                (_, true) => format!("{name}_{n}"),
            };
            n += 1;
        }
        candidate
    }
}

/// Whether two schemas are the same but for their titles (a root schema has one, the same
/// schema among another's `$defs` does not).
fn same_schema(a: &Value, b: &Value) -> bool {
    let untitled = |v: &Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("title");
        }
        v
    };
    a == b || untitled(a) == untitled(b)
}

const COMPONENTS: &str = "#/components/schemas/";

/// Rewrites every `$ref` that starts with `from` to point at `#/components/schemas/`, renamed
/// per `renames`.
fn rewrite_refs(value: &mut Value, from: &str, renames: &[(String, String)]) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get_mut("$ref") {
                if let Some(name) = reference.strip_prefix(from) {
                    let target = renames
                        .iter()
                        .find(|(old, _)| old == name)
                        .map_or(name, |(_, new)| new.as_str());
                    *reference = format!("{COMPONENTS}{target}");
                }
            }
            for v in map.values_mut() {
                rewrite_refs(v, from, renames);
            }
        }
        Value::Array(items) => {
            for v in items {
                rewrite_refs(v, from, renames);
            }
        }
        _ => {}
    }
}

/// Makes the range of every integer format `schemars` writes (`uint64` for a `u64`, ...)
/// explicit with `minimum` and `maximum`: in JSON Schema a format is only an annotation, so a
/// client (or a fuzzer) reading the document would take 2^70 for a valid `u64`, which the server
/// refuses. Bounds already there are kept.
fn bound_integers(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let integer = match map.get("type") {
                Some(Value::String(t)) => t == "integer",
                Some(Value::Array(types)) => types.iter().any(|t| t == "integer"),
                _ => false,
            };
            let range: Option<(Value, Value)> = match map.get("format").and_then(Value::as_str) {
                _ if !integer => None,
                Some("uint8") => Some((0.into(), u8::MAX.into())),
                Some("uint16") => Some((0.into(), u16::MAX.into())),
                Some("uint32") => Some((0.into(), u32::MAX.into())),
                Some("uint64" | "uint") => Some((0.into(), u64::MAX.into())),
                Some("int8") => Some((i8::MIN.into(), i8::MAX.into())),
                Some("int16") => Some((i16::MIN.into(), i16::MAX.into())),
                Some("int32") => Some((i32::MIN.into(), i32::MAX.into())),
                Some("int64" | "int") => Some((i64::MIN.into(), i64::MAX.into())),
                _ => None,
            };
            if let Some((minimum, maximum)) = range {
                map.entry("minimum").or_insert(minimum);
                map.entry("maximum").or_insert(maximum);
            }
            for v in map.values_mut() {
                bound_integers(v);
            }
        }
        Value::Array(items) => {
            for v in items {
                bound_integers(v);
            }
        }
        _ => {}
    }
}

/// The 503 of a route that reads or writes the database.
const UNAVAILABLE: &str = "The database did not answer, or the request took longer than [server] \
    request_timeout; the detail says which. Nothing was done when the database did not answer: \
    send the request again after `Retry-After`.";

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

fn problem_response(description: &str, problem: &Value) -> Value {
    json!({ "description": description, "content": { PROBLEM_JSON: { "schema": problem } } })
}

/// The OpenAPI path of an axum path: `{id}` stays, `{*rest}` becomes `{rest}`.
fn openapi_path(path: &str) -> String {
    path.replace("{*", "{")
}

/// An optional query parameter with its schema (JSON text, written by hand beside the
/// parameter). The list routes read an empty value (`?status=`) as no value, as their `next`
/// links do: `allowEmptyValue` says so.
fn query_parameter(name: &str, description: &str, schema: &str) -> Value {
    let schema: Value = serde_json::from_str(schema)
        .unwrap_or_else(|e| panic!("the schema of query parameter {name} is not JSON: {e}"));
    json!({
        "name": name,
        "in": "query",
        "required": false,
        "description": format!("{description} An empty value is the same as none."),
        "schema": schema,
        "allowEmptyValue": true
    })
}

/// The names of the parameters in a path template.
fn path_parameters(path: &str) -> Vec<String> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| name.trim_start_matches('*').to_owned())
        .collect()
}

/// The OpenAPI 3.1 document of every route `coordinator` serves.
pub fn document(coordinator: &Coordinator) -> Value {
    let mut schemas = Schemas::default();
    let problem = schemas.of::<Problem>();
    let catalog = schemas.of::<Catalog>();
    let stored = schemas.of::<DispatchDetail>();
    let list = schemas.of::<DispatchList>();
    let status = schemas.of::<Status>();
    let task = schemas.of::<StoredTask>();
    let task_list = schemas.of::<TaskList>();

    let unauthorized = problem_response(
        "Missing or invalid credentials (the detail says which); see `WWW-Authenticate`",
        &problem,
    );
    let forbidden = problem_response("The token lacks the required scope", &problem);
    let unavailable = problem_response(UNAVAILABLE, &problem);
    let secured = json!([{ "bearer": [] }]);
    let mut paths = Map::new();

    paths.insert(
        "/health".into(),
        json!({ "get": {
            "operationId": "health",
            "summary": "The process answers.",
            "tags": ["operations"],
            "security": [],
            "responses": { "200": { "description": "Alive", "content": json_content(status.clone()) } }
        }}),
    );
    paths.insert(
        "/ready".into(),
        json!({ "get": {
            "operationId": "ready",
            "summary": "The service can serve: the database answers and every migration is applied.",
            "tags": ["operations"],
            "security": [],
            "responses": {
                "200": { "description": "Ready", "content": json_content(status) },
                "503": problem_response("Not ready; the detail says why (database, pending migrations)", &problem)
            }
        }}),
    );
    paths.insert(
        "/metrics".into(),
        json!({ "get": {
            "operationId": "metrics",
            "summary": "Prometheus metrics in the OpenMetrics text format.",
            "tags": ["operations"],
            "security": [],
            "responses": { "200": {
                "description": "The metrics",
                "content": { super::metrics::CONTENT_TYPE: { "schema": { "type": "string" } } }
            } }
        }}),
    );
    paths.insert(
        "/api/openapi.json".into(),
        json!({ "get": {
            "operationId": "openapi",
            "summary": "This document.",
            "tags": ["operations"],
            "security": [],
            "responses": { "200": { "description": "The OpenAPI document", "content": json_content(json!({ "type": "object" })) } }
        }}),
    );
    paths.insert(
        "/api/v1/catalog".into(),
        json!({ "get": {
            "operationId": "catalog",
            "summary": "Every extension, signal, handler, filter and step, and how they are wired.",
            "tags": ["catalog"],
            "security": secured,
            "responses": {
                "200": { "description": "The catalog", "content": json_content(catalog) },
                "401": unauthorized, "403": forbidden
            }
        }}),
    );
    let services = schemas.of::<super::services::Services>();
    paths.insert(
        "/api/v1/services".into(),
        json!({ "get": {
            "operationId": "list_services",
            "summary": "The external services this process calls: each circuit breaker's state and the calls by outcome.",
            "tags": ["operations"],
            "security": secured,
            "responses": {
                "200": { "description": "Every service a client was made for", "content": json_content(services) },
                "401": unauthorized, "403": forbidden
            }
        }}),
    );
    let list_parameters: Vec<Value> = LIST_PARAMETERS
        .iter()
        .map(|(name, description, schema)| query_parameter(name, description, schema))
        .collect();
    paths.insert(
        "/api/v1/dispatches".into(),
        json!({ "get": {
            "operationId": "list_dispatches",
            "summary": "The dispatch log, newest first, one page at a time (follow `next`).",
            "tags": ["dispatches"],
            "security": secured,
            "parameters": list_parameters,
            "responses": {
                "200": { "description": "One page", "content": json_content(list) },
                "400": problem_response("A query parameter is not acceptable; the detail names it", &problem),
                "401": unauthorized, "403": forbidden, "503": unavailable
            }
        }}),
    );
    paths.insert(
        "/api/v1/dispatches/{id}".into(),
        json!({ "get": {
            "operationId": "get_dispatch",
            "summary": "One dispatch: its signal, sender and every handler's outcome; for a durable one, where each delivery stands.",
            "tags": ["dispatches"],
            "security": secured,
            "parameters": [{ "name": "id", "in": "path", "required": true, "description": "The dispatch id (a UUID)", "schema": { "type": "string", "format": "uuid" } }],
            "responses": {
                "200": { "description": "The dispatch", "content": json_content(stored) },
                "400": problem_response("The id is not a UUID", &problem),
                "401": unauthorized, "403": forbidden,
                "404": problem_response("No dispatch has this id", &problem),
                "503": unavailable
            }
        }}),
    );

    let task_parameters: Vec<Value> = TASK_LIST_PARAMETERS
        .iter()
        .map(|(name, description, schema)| query_parameter(name, description, schema))
        .collect();
    paths.insert(
        "/api/v1/tasks".into(),
        json!({ "get": {
            "operationId": "list_tasks",
            "summary": "The durable task queue, newest first, one page at a time (follow `next`). Payloads have their personal data redacted.",
            "tags": ["tasks"],
            "security": secured,
            "parameters": task_parameters,
            "responses": {
                "200": { "description": "One page (tasks without their attempt history)", "content": json_content(task_list) },
                "400": problem_response("A query parameter is not acceptable; the detail names it", &problem),
                "401": unauthorized, "403": forbidden, "503": unavailable
            }
        }}),
    );
    let task_id = json!([{ "name": "id", "in": "path", "required": true, "description": "The task id (a UUID)", "schema": { "type": "string", "format": "uuid" } }]);
    paths.insert(
        "/api/v1/tasks/{id}".into(),
        json!({ "get": {
            "operationId": "get_task",
            "summary": "One task: its state, payload (personal data redacted) and every attempt with its error chain.",
            "tags": ["tasks"],
            "security": secured,
            "parameters": task_id,
            "responses": {
                "200": { "description": "The task", "content": json_content(task.clone()) },
                "400": problem_response("The id is not a UUID", &problem),
                "401": unauthorized, "403": forbidden,
                "404": problem_response("No task has this id", &problem),
                "503": unavailable
            }
        }}),
    );
    for (action, summary, allowed) in [
        (
            "retry",
            "Queues a dead or cancelled task again, to run now with its attempts reset (its history is kept).",
            "The task is not dead or cancelled (the problem's `state` says what it is), or another pending task holds its unique key (`pending_task`)",
        ),
        (
            "cancel",
            "Cancels a queued, retrying or running task: it will not run again. A running attempt finishes, but its outcome is not recorded.",
            "The task has already finished (the problem's `state` says how)",
        ),
    ] {
        paths.insert(
            format!("/api/v1/tasks/{{id}}/{action}"),
            json!({ "post": {
                "operationId": format!("{action}_task"),
                "summary": summary,
                "tags": ["tasks"],
                "security": secured,
                "parameters": task_id,
                "responses": {
                    "200": { "description": "The task as it is now", "content": json_content(task.clone()) },
                    "400": problem_response("The id is not a UUID", &problem),
                    "401": unauthorized, "403": forbidden,
                    "404": problem_response("No task has this id", &problem),
                    "409": problem_response(allowed, &problem),
                    "503": unavailable
                }
            }}),
        );
    }

    let mut tags = vec![
        json!({ "name": "operations", "description": "Health, readiness, metrics and this document." }),
        json!({ "name": "catalog", "description": "The running system's description of itself." }),
        json!({ "name": "dispatches", "description": "The dispatch log: every send_robust and how each handler ended." }),
        json!({ "name": "tasks", "description": "The durable task queue: inspect tasks and their attempts, retry dead ones, cancel pending ones." }),
    ];
    let catalog_entries = coordinator.catalog();
    for (extension, routes) in coordinator.routes() {
        let doc = catalog_entries
            .extensions
            .iter()
            .find(|e| e.name == extension)
            .map_or("", |e| e.doc.as_str());
        tags.push(json!({ "name": extension, "description": doc }));
        let mount = coordinator.mount_of(extension);
        for route in &routes {
            let path = openapi_path(&format!("{mount}{}", route.path()));
            let operation = extension_operation(extension, route, &path, &mut schemas, &problem);
            let entry = paths
                .entry(path)
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(methods) = entry {
                methods.insert(route.method().as_str().to_ascii_lowercase(), operation);
            }
        }
    }

    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Commerce Coordinator",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Brokers messages between a learning platform and commerce systems. \
                Errors are application/problem+json (RFC 9457). Every response carries an \
                X-Request-Id header (the caller's, when it sends a plain one); quote it when \
                reporting a problem."
        },
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "One of the API tokens of [auth] api_tokens, or a JWT \
                        verified with [auth.jwt] (HS256 or RS256; exp required). edX's \
                        `Authorization: JWT <token>` is accepted too."
                },
                "edx_jwt_cookie": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "edx-jwt-cookie-header-payload",
                    "description": "A learner's edX JWT split across two cookies: \
                        edx-jwt-cookie-header-payload (header.payload) and \
                        edx-jwt-cookie-signature (the signature); learner routes only."
                }
            }
        }
    })
}

/// The OpenAPI security requirement of a route's access level.
fn security_of(access: Access) -> Value {
    match access {
        Access::Api | Access::Administrator => json!([{ "bearer": [] }]),
        Access::Learner => json!([{ "bearer": [] }, { "edx_jwt_cookie": [] }]),
        Access::Public => json!([]),
    }
}

fn extension_operation(
    extension: &str,
    route: &Route,
    path: &str,
    schemas: &mut Schemas,
    problem: &Value,
) -> Value {
    let method = route.method().as_str().to_ascii_lowercase();
    let operation_id: String = format!("{extension}_{method}{path}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect::<String>()
        .split('_')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("_");
    let mut operation = Map::new();
    operation.insert("operationId".into(), operation_id.into());
    operation.insert("tags".into(), json!([extension]));
    let doc = route.description();
    if !doc.is_empty() {
        let summary = doc.split_inclusive(". ").next().unwrap_or(doc).trim();
        operation.insert("summary".into(), summary.into());
        operation.insert("description".into(), doc.into());
    }
    let parameters: Vec<Value> = path_parameters(path)
        .into_iter()
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    if !parameters.is_empty() {
        operation.insert("parameters".into(), parameters.into());
    }
    if let Some(schema) = route.request_schema() {
        operation.insert(
            "requestBody".into(),
            json!({ "required": true, "content": json_content(schemas.add(schema, extension)) }),
        );
    }
    let mut responses = Map::new();
    let success = match route.response_schema() {
        Some(schema) => {
            json!({ "description": "Success", "content": json_content(schemas.add(schema, extension)) })
        }
        None => json!({ "description": "Success" }),
    };
    responses.insert("2XX".into(), success);
    // What the host answers for every route (the route's own problems are added below).
    let mut errors: Vec<(StatusCode, String)> = Vec::new();
    if route.request_schema().is_some() {
        errors.extend([
            (
                StatusCode::BAD_REQUEST,
                "The body is not valid JSON (the detail says where)".to_owned(),
            ),
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                "The body is larger than [server] body_limit_bytes".to_owned(),
            ),
            (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "The body is not sent as `Content-Type: application/json`".to_owned(),
            ),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "The body is not of the documented shape (the detail names the field)".to_owned(),
            ),
        ]);
    }
    match route.access() {
        Access::Api => {
            operation.insert("security".into(), security_of(Access::Api));
            errors.extend([
                (
                    StatusCode::UNAUTHORIZED,
                    "Missing or invalid credentials (the detail says which)".to_owned(),
                ),
                (
                    StatusCode::FORBIDDEN,
                    "The token lacks the required scope".to_owned(),
                ),
            ]);
        }
        Access::Administrator => {
            operation.insert("security".into(), security_of(Access::Administrator));
            errors.extend([
                (
                    StatusCode::UNAUTHORIZED,
                    "Missing or invalid credentials (the detail says which)".to_owned(),
                ),
                (
                    StatusCode::FORBIDDEN,
                    "The caller is not an administrator (a JWT without administrator: true), \
                     or the token lacks the required scope"
                        .to_owned(),
                ),
            ]);
        }
        Access::Learner => {
            operation.insert("security".into(), security_of(Access::Learner));
            errors.extend([
                (
                    StatusCode::UNAUTHORIZED,
                    "Missing or invalid credentials (the detail says which)".to_owned(),
                ),
                (
                    StatusCode::FORBIDDEN,
                    "The credentials name no learner (an API token, or a JWT without user_id)"
                        .to_owned(),
                ),
            ]);
        }
        Access::Public => {
            operation.insert("security".into(), json!([]));
        }
    }
    errors.push((StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE.to_owned()));
    for (status, when) in route.problems() {
        match errors.iter_mut().find(|(s, _)| s == status) {
            Some((_, description)) => {
                if !description.ends_with('.') {
                    description.push('.');
                }
                description.push_str(" Or: ");
                description.push_str(when);
            }
            None => errors.push((*status, (*when).to_owned())),
        }
    }
    errors.sort_by_key(|(status, _)| *status);
    for (status, description) in errors {
        responses.insert(
            status.as_str().to_owned(),
            problem_response(&description, problem),
        );
    }
    operation.insert("responses".into(), responses.into());
    Value::Object(operation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::testing;

    #[tokio::test]
    async fn the_document_lists_every_route_with_its_security() {
        let app = testing::app(&[]).await;
        let (status, _, doc) = app.get("/api/openapi.json").await;
        assert_eq!(status, 200);
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().unwrap();
        for path in [
            "/health",
            "/ready",
            "/metrics",
            "/api/openapi.json",
            "/api/v1/catalog",
            "/api/v1/services",
            "/api/v1/dispatches",
            "/api/v1/dispatches/{id}",
            "/api/v1/tasks",
            "/api/v1/tasks/{id}",
            "/api/v1/tasks/{id}/retry",
            "/api/v1/tasks/{id}/cancel",
        ] {
            assert!(paths.contains_key(path), "{path} missing");
        }
        // Every extension route, at its mount, with its method.
        for (extension, routes) in app.state.coordinator.routes() {
            for route in routes {
                let path = format!(
                    "{}{}",
                    app.state.coordinator.mount_of(extension),
                    route.path()
                );
                let method = route.method().as_str().to_ascii_lowercase();
                let operation = &doc["paths"][&path][&method];
                assert!(operation.is_object(), "{method} {path} missing");
                assert_eq!(operation["description"], route.description());
                let security = security_of(route.access());
                assert_eq!(operation["security"], security, "{path}");
                assert_eq!(
                    operation["requestBody"].is_object(),
                    route.request_schema().is_some(),
                    "{path}"
                );
            }
        }
        let orders = &doc["paths"]["/api/demo/orders"]["post"];
        assert_eq!(
            orders["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/OrderPlaced"
        );
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["OrderPlaced"]["properties"]["email"]["x-personal-data"],
            true
        );
        assert!(
            schemas.get("StoredDispatch_1").is_none(),
            "one schema, two names"
        );
        for name in [
            "StoredDispatch",
            "DispatchList",
            "Catalog",
            "Problem",
            "Dispatched",
            "StoredTask",
            "TaskList",
            "TaskAttempt",
        ] {
            assert!(schemas[name].is_object(), "no schema {name}");
        }
        // Every reference resolves.
        let text = doc.to_string();
        for reference in text.split("\"$ref\":\"").skip(1) {
            let target = reference.split('"').next().unwrap();
            let name = target
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("{target}"));
            assert!(schemas[name].is_object(), "dangling {target}");
        }
        assert_eq!(doc["paths"]["/health"]["get"]["security"], json!([]));
    }

    #[tokio::test]
    async fn mounted_extensions_are_documented_at_their_mount() {
        let app = testing::app(&[("COORDINATOR__SERVER__MOUNTS__DEMO", "/lms")]).await;
        let (_, _, doc) = app.get("/api/openapi.json").await;
        assert!(
            doc["paths"]["/lms/orders"]["post"].is_object(),
            "{:#}",
            doc["paths"]
        );
        assert!(doc["paths"].get("/api/demo/orders").is_none());
        let (status, _, _) = app.post("/lms/orders", testing::order("EDX-9")).await;
        assert_eq!(status, 202);
    }

    #[tokio::test]
    async fn extension_routes_document_every_error_they_answer_with() {
        let app = testing::app(&[]).await;
        let (_, _, doc) = app.get("/api/openapi.json").await;
        let responses = |path: &str| doc["paths"][path]["post"]["responses"].clone();
        let orders = responses("/api/demo/orders");
        let statuses: Vec<&String> = orders.as_object().unwrap().keys().collect();
        assert_eq!(
            statuses,
            ["2XX", "400", "401", "403", "413", "415", "422", "503"],
            "no catch-all `default`: a status not listed is a bug the fuzz run finds"
        );
        for (status, response) in orders.as_object().unwrap() {
            if status != "2XX" {
                assert!(
                    response["content"][PROBLEM_JSON].is_object(),
                    "{status}: {response}"
                );
            }
        }
        // A public route has none of the host's credential errors, but its own.
        let webhook = responses("/api/demo/webhooks/payments");
        assert!(webhook.get("403").is_none(), "{webhook}");
        let refused = webhook["401"]["description"].as_str().unwrap();
        assert!(refused.contains("X-Demo-Signature"), "{refused}");
        // A route's own problem joins the host's of the same status.
        assert_eq!(
            responses("/api/demo/payment-page")["403"]["description"],
            "The token lacks the required scope. Or: Payments from the learner's country are not accepted"
        );
        assert!(responses("/api/demo/payment-page")["502"].is_object());
    }

    #[tokio::test]
    async fn integers_have_their_range_and_list_parameters_may_be_empty() {
        let app = testing::app(&[]).await;
        let (_, _, doc) = app.get("/api/openapi.json").await;
        let order = &doc["components"]["schemas"]["OrderPlaced"]["properties"];
        assert_eq!(order["amount_cents"]["minimum"], 0);
        assert_eq!(order["amount_cents"]["maximum"], u64::MAX);
        for path in ["/api/v1/dispatches", "/api/v1/tasks"] {
            for parameter in doc["paths"][path]["get"]["parameters"].as_array().unwrap() {
                assert_eq!(parameter["allowEmptyValue"], true, "{path}: {parameter}");
            }
        }
    }

    #[test]
    fn integer_formats_become_minimum_and_maximum() {
        let mut schema = json!({ "type": "object", "properties": {
            "a": { "type": "integer", "format": "uint64", "minimum": 0 },
            "b": { "type": ["integer", "null"], "format": "int32" },
            "c": { "type": "integer", "format": "uint8", "maximum": 9 },
            "d": { "type": "string", "format": "uint64" },
            "e": { "type": "array", "items": { "type": "integer", "format": "int64" } }
        }});
        bound_integers(&mut schema);
        let p = &schema["properties"];
        assert_eq!(
            (&p["a"]["minimum"], &p["a"]["maximum"]),
            (&json!(0), &json!(u64::MAX))
        );
        assert_eq!(
            (&p["b"]["minimum"], &p["b"]["maximum"]),
            (&json!(i32::MIN), &json!(i32::MAX))
        );
        assert_eq!(p["c"]["maximum"], 9, "a bound already there is kept");
        assert!(p["d"].get("maximum").is_none(), "only integers");
        assert_eq!(p["e"]["items"]["maximum"], i64::MAX);
    }

    #[test]
    fn colliding_schema_names_are_kept_apart() {
        let mut schemas = Schemas::default();
        let a = schemas.add(json!({"title": "Thing", "type": "string"}), "a");
        let b = schemas.add(json!({"title": "Thing", "type": "integer"}), "b");
        let again = schemas.add(json!({"title": "Thing", "type": "string"}), "c");
        assert_eq!(a["$ref"], "#/components/schemas/Thing");
        assert_eq!(b["$ref"], "#/components/schemas/b_Thing");
        assert_eq!(again, a);
    }

    #[test]
    fn path_parameters_are_found() {
        assert_eq!(path_parameters("/api/x/{id}/items/{*rest}"), ["id", "rest"]);
        assert_eq!(openapi_path("/a/{*rest}"), "/a/{rest}");
    }
}
