//! The dispatch log's stored form: what is kept of each [`DispatchReport`], and how it is queried.
//!
//! A stored dispatch has exactly what the report has: ids, names, outcomes and timings, never the
//! payload (reports do not carry it, so personal data cannot reach the log).

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Backend, StoreError};
use crate::dispatch::{DispatchReport, Outcome};

/// One dispatch as stored in the dispatch log.
///
/// ```
/// use coordinator::store::{DispatchStatus, StoredDispatch};
/// use coordinator::{DispatchReport, HandlerRun, Outcome, Sender};
///
/// let report = DispatchReport {
///     id: uuid::Uuid::nil(),
///     signal: "demo.order_placed",
///     sender: Sender::Extension("demo"),
///     sent_at_ms: 1,
///     handlers: vec![HandlerRun {
///         handler: "demo.enroll_learner",
///         outcome: Outcome::Error { chain: vec!["LMS down".into()] },
///         duration: std::time::Duration::from_micros(40),
///     }],
/// };
/// let stored = StoredDispatch::from(&report);
/// assert_eq!(stored.status, DispatchStatus::Failed);
/// assert_eq!(stored.sender, "extension:demo");
/// assert_eq!(stored.handlers[0].status, "error");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StoredDispatch {
    /// The dispatch id (a UUIDv7: ids sort by time).
    #[schemars(with = "String", extend("format" = "uuid"))]
    pub id: Uuid,
    /// The signal sent (`stripe.payment_refunded`).
    pub signal: String,
    /// Who sent it: `extension:<name>`, `handler:<name>` or `step:<name>`.
    pub sender: String,
    /// When it was sent, in milliseconds since the Unix epoch.
    pub sent_at_ms: u64,
    /// `failed` when any handler did not return normally.
    pub status: DispatchStatus,
    /// One entry per handler that ran, in configuration order.
    pub handlers: Vec<StoredHandlerRun>,
}

/// Whether every handler of a dispatch returned normally.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DispatchStatus {
    /// Every handler returned normally (or there was none).
    Ok,
    /// At least one handler returned an error, panicked or timed out.
    Failed,
}

impl DispatchStatus {
    /// `ok` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            DispatchStatus::Ok => "ok",
            DispatchStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for DispatchStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DispatchStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ok" => Ok(DispatchStatus::Ok),
            "failed" => Ok(DispatchStatus::Failed),
            other => Err(format!(
                "unknown dispatch status \"{other}\": write ok or failed"
            )),
        }
    }
}

/// One handler's run within a stored dispatch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StoredHandlerRun {
    /// The handler (`commercetools.refund_from_stripe`).
    pub handler: String,
    /// How it ended: `ok`, `error`, `panicked` or `timed_out`.
    pub status: String,
    /// How long it ran, in microseconds.
    pub duration_us: u64,
    /// The handler's summary of what it did, when it returned normally and gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// When it returned an error: the error and its causes, outermost first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_chain: Vec<String>,
    /// When it panicked: the panic message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub panic_message: Option<String>,
    /// When it panicked: where (`file:line:column`), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub panic_location: Option<String>,
    /// When it timed out: the timeout, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

impl StoredHandlerRun {
    /// Whether the handler returned normally.
    pub fn is_ok(&self) -> bool {
        self.status == "ok"
    }
}

impl From<&DispatchReport> for StoredDispatch {
    fn from(report: &DispatchReport) -> Self {
        let handlers: Vec<StoredHandlerRun> = report
            .handlers
            .iter()
            .map(|run| {
                let mut stored = StoredHandlerRun {
                    handler: run.handler.to_owned(),
                    status: run.outcome.status().to_owned(),
                    duration_us: u64::try_from(run.duration.as_micros()).unwrap_or(u64::MAX),
                    result: None,
                    error_chain: Vec::new(),
                    panic_message: None,
                    panic_location: None,
                    timeout_ms: None,
                };
                match &run.outcome {
                    Outcome::Ok { result } => stored.result.clone_from(result),
                    Outcome::Error { chain } => stored.error_chain.clone_from(chain),
                    Outcome::Panicked { message, location } => {
                        stored.panic_message = Some(message.clone());
                        stored.panic_location.clone_from(location);
                    }
                    Outcome::TimedOut { timeout_ms } => stored.timeout_ms = Some(*timeout_ms),
                }
                stored
            })
            .collect();
        StoredDispatch {
            id: report.id,
            signal: report.signal.to_owned(),
            sender: report.sender.to_string(),
            sent_at_ms: report.sent_at_ms,
            status: if report.all_ok() {
                DispatchStatus::Ok
            } else {
                DispatchStatus::Failed
            },
            handlers,
        }
    }
}

/// Which stored dispatches to list: every filter given must match. Newest first.
///
/// ```
/// use coordinator::store::{DispatchQuery, DispatchStatus};
///
/// // The last 50 dispatches in which `demo.enroll_learner` did not return normally:
/// let q = DispatchQuery {
///     handler: Some("demo.enroll_learner".into()),
///     status: Some(DispatchStatus::Failed),
///     ..DispatchQuery::default()
/// };
/// assert_eq!(q.limit, 50);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct DispatchQuery {
    /// Only dispatches of this signal.
    pub signal: Option<String>,
    /// Only dispatches in which this handler ran.
    pub handler: Option<String>,
    /// Only dispatches with this status. With `handler`, the status of that handler's run:
    /// `failed` lists the dispatches in which that handler did not return normally.
    pub status: Option<DispatchStatus>,
    /// Only dispatches sent at or after this time, in milliseconds since the Unix epoch.
    pub since_ms: Option<u64>,
    /// Only dispatches older than this one: pass the previous page's `next_before`.
    #[schemars(with = "Option<String>", extend("format" = "uuid"))]
    pub before: Option<Uuid>,
    /// The most dispatches returned, 1 to 500 (values outside are clamped). Default 50.
    pub limit: u32,
}

impl DispatchQuery {
    /// The default page size.
    pub const DEFAULT_LIMIT: u32 = 50;
    /// The largest page size.
    pub const MAX_LIMIT: u32 = 500;

    /// The page size used: `limit` clamped to 1..=500.
    pub fn effective_limit(&self) -> u32 {
        self.limit.clamp(1, Self::MAX_LIMIT)
    }
}

impl Default for DispatchQuery {
    fn default() -> Self {
        Self {
            signal: None,
            handler: None,
            status: None,
            since_ms: None,
            before: None,
            limit: Self::DEFAULT_LIMIT,
        }
    }
}

/// One page of stored dispatches, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DispatchPage {
    /// The dispatches.
    pub items: Vec<StoredDispatch>,
    /// When the page is full, the id to pass as `before` for the next (older) page.
    #[schemars(with = "Option<String>", extend("format" = "uuid"))]
    pub next_before: Option<Uuid>,
}

/// A value bound to a query; each backend binds it in its own type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Arg {
    Text(String),
    Int(i64),
    /// TEXT on SQLite, UUID on PostgreSQL.
    Id(Uuid),
    /// A text that may be NULL.
    OptText(Option<String>),
    /// An id that may be NULL.
    OptId(Option<Uuid>),
}

/// SQL text with its arguments, placeholders written for one backend.
#[derive(Debug)]
pub(crate) struct Sql {
    backend: Backend,
    pub(crate) text: String,
    pub(crate) args: Vec<Arg>,
}

impl Sql {
    pub(crate) fn new(backend: Backend, text: &str) -> Self {
        Self {
            backend,
            text: text.to_owned(),
            args: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder for `arg`.
    pub(crate) fn bind(&mut self, arg: Arg) -> &mut Self {
        self.args.push(arg);
        match self.backend {
            Backend::Sqlite => self.text.push('?'),
            Backend::Postgres => {
                self.text.push('$');
                self.text.push_str(&self.args.len().to_string());
            }
        }
        self
    }

    /// Appends `(p1, p2, …)`, a placeholder for each of `args` (which must not be empty).
    pub(crate) fn bind_list(&mut self, args: impl IntoIterator<Item = Arg>) -> &mut Self {
        self.push("(");
        for (i, arg) in args.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(arg);
        }
        self.push(")")
    }
}

/// Milliseconds as stored (BIGINT).
pub(crate) fn ms_to_db(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

const COLUMNS: &str = "d.id, d.signal, d.sender, d.sent_at_ms, d.status, d.handlers";

/// The list query and the page size it asks for.
pub(crate) fn list_sql(backend: Backend, query: &DispatchQuery) -> (Sql, u32) {
    let limit = query.effective_limit();
    let mut sql = Sql::new(
        backend,
        &format!("SELECT {COLUMNS} FROM coordinator_dispatches d"),
    );
    // With a handler, the runs table drives the query through its (handler, dispatch_id) index,
    // and its primary key (dispatch_id, handler) means one row per dispatch.
    let id_column = if let Some(handler) = &query.handler {
        sql.push(" JOIN coordinator_dispatch_runs r ON r.dispatch_id = d.id AND r.handler = ")
            .bind(Arg::Text(handler.clone()));
        match query.status {
            Some(DispatchStatus::Ok) => sql.push(" AND r.status = 'ok'"),
            Some(DispatchStatus::Failed) => sql.push(" AND r.status <> 'ok'"),
            None => &mut sql,
        };
        "r.dispatch_id"
    } else {
        "d.id"
    };
    sql.push(" WHERE 1 = 1");
    if let Some(signal) = &query.signal {
        sql.push(" AND d.signal = ").bind(Arg::Text(signal.clone()));
    }
    if let (Some(status), None) = (query.status, &query.handler) {
        sql.push(" AND d.status = ")
            .bind(Arg::Text(status.as_str().to_owned()));
    }
    if let Some(since) = query.since_ms {
        sql.push(" AND d.sent_at_ms >= ")
            .bind(Arg::Int(ms_to_db(since)));
    }
    if let Some(before) = query.before {
        sql.push(&format!(" AND {id_column} < "))
            .bind(Arg::Id(before));
    }
    sql.push(&format!(" ORDER BY {id_column} DESC LIMIT "))
        .bind(Arg::Int(i64::from(limit)));
    (sql, limit)
}

/// The query for one dispatch by id.
pub(crate) fn get_sql(backend: Backend, id: Uuid) -> Sql {
    let mut sql = Sql::new(
        backend,
        &format!("SELECT {COLUMNS} FROM coordinator_dispatches d WHERE d.id = "),
    );
    sql.bind(Arg::Id(id));
    sql
}

/// Rows per multi-row INSERT: well under both backends' limits on bound parameters.
const ROWS_PER_INSERT: usize = 1000;

/// The multi-row INSERTs of a batch: the dispatches first, then their runs. Inserting a dispatch
/// that is already stored does nothing, so a retried batch is harmless.
pub(crate) fn insert_sql(
    backend: Backend,
    batch: &[StoredDispatch],
) -> Result<Vec<Sql>, StoreError> {
    let mut statements = Vec::new();
    for chunk in batch.chunks(ROWS_PER_INSERT) {
        let mut sql = Sql::new(
            backend,
            "INSERT INTO coordinator_dispatches (id, signal, sender, sent_at_ms, status, handlers) VALUES ",
        );
        for (i, d) in chunk.iter().enumerate() {
            let handlers = serde_json::to_string(&d.handlers).map_err(|e| StoreError::Corrupt {
                id: d.id.to_string(),
                reason: format!("its handler runs do not serialize: {e}"),
            })?;
            sql.push(if i == 0 { "(" } else { ", (" })
                .bind(Arg::Id(d.id))
                .push(", ")
                .bind(Arg::Text(d.signal.clone()))
                .push(", ")
                .bind(Arg::Text(d.sender.clone()))
                .push(", ")
                .bind(Arg::Int(ms_to_db(d.sent_at_ms)))
                .push(", ")
                .bind(Arg::Text(d.status.as_str().to_owned()))
                .push(", ")
                .bind(Arg::Text(handlers))
                .push(")");
        }
        sql.push(" ON CONFLICT DO NOTHING");
        statements.push(sql);
    }
    let runs: Vec<(Uuid, &StoredHandlerRun)> = batch
        .iter()
        .flat_map(|d| d.handlers.iter().map(move |h| (d.id, h)))
        .collect();
    for chunk in runs.chunks(ROWS_PER_INSERT) {
        let mut sql = Sql::new(
            backend,
            "INSERT INTO coordinator_dispatch_runs (dispatch_id, handler, status) VALUES ",
        );
        for (i, (id, run)) in chunk.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" })
                .bind(Arg::Id(*id))
                .push(", ")
                .bind(Arg::Text(run.handler.clone()))
                .push(", ")
                .bind(Arg::Text(run.status.clone()))
                .push(")");
        }
        sql.push(" ON CONFLICT DO NOTHING");
        statements.push(sql);
    }
    Ok(statements)
}

/// Purges dispatches sent before a time: their runs first, then the dispatches.
pub(crate) fn purge_sql(backend: Backend, older_than_ms: u64) -> [Sql; 2] {
    let cutoff = Arg::Int(ms_to_db(older_than_ms));
    let mut runs = Sql::new(
        backend,
        "DELETE FROM coordinator_dispatch_runs WHERE dispatch_id IN \
         (SELECT id FROM coordinator_dispatches WHERE sent_at_ms < ",
    );
    runs.bind(cutoff.clone()).push(")");
    let mut dispatches = Sql::new(
        backend,
        "DELETE FROM coordinator_dispatches WHERE sent_at_ms < ",
    );
    dispatches.bind(cutoff);
    [runs, dispatches]
}

/// Builds a [`StoredDispatch`] from the columns of a row.
pub(crate) fn from_row(
    id: Uuid,
    signal: String,
    sender: String,
    sent_at_ms: i64,
    status: &str,
    handlers: &str,
) -> Result<StoredDispatch, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        id: id.to_string(),
        reason,
    };
    Ok(StoredDispatch {
        id,
        signal,
        sender,
        sent_at_ms: u64::try_from(sent_at_ms)
            .map_err(|_| corrupt(format!("negative sent_at_ms {sent_at_ms}")))?,
        status: status.parse().map_err(corrupt)?,
        handlers: serde_json::from_str(handlers)
            .map_err(|e| corrupt(format!("its handlers column is not the expected JSON: {e}")))?,
    })
}

/// A page from the rows of a list query.
pub(crate) fn page(items: Vec<StoredDispatch>, limit: u32) -> DispatchPage {
    let full = items.len() >= limit as usize;
    DispatchPage {
        next_before: if full {
            items.last().map(|d| d.id)
        } else {
            None
        },
        items,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::dispatch::{HandlerRun, Sender};

    fn report(outcomes: Vec<Outcome>) -> DispatchReport {
        DispatchReport {
            id: Uuid::nil(),
            signal: "demo.order_placed",
            sender: Sender::Handler("demo.h"),
            sent_at_ms: 42,
            handlers: outcomes
                .into_iter()
                .zip(["demo.a", "demo.b", "demo.c", "demo.d"])
                .map(|(outcome, handler)| HandlerRun {
                    handler,
                    outcome,
                    duration: Duration::from_micros(7),
                })
                .collect(),
        }
    }

    #[test]
    fn every_outcome_converts_with_its_details() {
        let stored = StoredDispatch::from(&report(vec![
            Outcome::Ok {
                result: Some("task-1".into()),
            },
            Outcome::Error {
                chain: vec!["outer".into(), "inner".into()],
            },
            Outcome::Panicked {
                message: "boom".into(),
                location: Some("src/x.rs:1:2".into()),
            },
            Outcome::TimedOut { timeout_ms: 5000 },
        ]));
        assert_eq!(stored.status, DispatchStatus::Failed);
        assert_eq!(stored.sender, "handler:demo.h");
        let h = &stored.handlers;
        assert_eq!(h[0].result.as_deref(), Some("task-1"));
        assert!(h[0].is_ok());
        assert_eq!(h[1].error_chain, ["outer", "inner"]);
        assert_eq!(h[2].panic_message.as_deref(), Some("boom"));
        assert_eq!(h[2].panic_location.as_deref(), Some("src/x.rs:1:2"));
        assert_eq!(h[3].timeout_ms, Some(5000));
        assert_eq!(
            h.iter().map(|r| r.status.as_str()).collect::<Vec<_>>(),
            ["ok", "error", "panicked", "timed_out"]
        );
        assert!(h.iter().all(|r| r.duration_us == 7));
    }

    #[test]
    fn a_dispatch_with_no_handlers_is_ok() {
        assert_eq!(
            StoredDispatch::from(&report(vec![])).status,
            DispatchStatus::Ok
        );
    }

    #[test]
    fn stored_dispatches_round_trip_through_json() {
        let stored = StoredDispatch::from(&report(vec![Outcome::Ok { result: None }]));
        let json = serde_json::to_value(&stored).unwrap();
        assert_eq!(json["status"], "ok");
        assert!(json["handlers"][0].get("error_chain").is_none());
        let back: StoredDispatch = serde_json::from_value(json).unwrap();
        assert_eq!(back, stored);
    }

    #[test]
    fn query_limits_are_clamped() {
        let q = |limit| DispatchQuery {
            limit,
            ..DispatchQuery::default()
        };
        assert_eq!(q(0).effective_limit(), 1);
        assert_eq!(q(10_000).effective_limit(), 500);
        assert_eq!(DispatchQuery::default().effective_limit(), 50);
        let parsed: DispatchQuery = serde_json::from_str(r#"{"status":"failed"}"#).unwrap();
        assert_eq!(parsed.status, Some(DispatchStatus::Failed));
        assert_eq!(parsed.limit, 50);
    }

    #[test]
    fn list_sql_numbers_postgres_placeholders() {
        let q = DispatchQuery {
            signal: Some("a.b".into()),
            handler: Some("a.h".into()),
            status: Some(DispatchStatus::Failed),
            since_ms: Some(5),
            before: Some(Uuid::nil()),
            limit: 10,
        };
        let (sql, limit) = list_sql(Backend::Postgres, &q);
        assert_eq!(limit, 10);
        assert_eq!(sql.args.len(), 5);
        assert!(sql.text.contains("r.handler = $1"), "{}", sql.text);
        assert!(sql.text.contains("r.status <> 'ok'"), "{}", sql.text);
        assert!(
            sql.text.ends_with("ORDER BY r.dispatch_id DESC LIMIT $5"),
            "{}",
            sql.text
        );
        let (lite, _) = list_sql(Backend::Sqlite, &q);
        assert!(!lite.text.contains('$'), "{}", lite.text);
    }

    #[test]
    fn schemas_document_ids_as_uuid_strings() {
        let schema = serde_json::to_value(schemars::schema_for!(DispatchPage)).unwrap();
        let text = schema.to_string();
        assert!(text.contains(r#""format":"uuid""#), "{text}");
        let query = serde_json::to_value(schemars::schema_for!(DispatchQuery)).unwrap();
        assert_eq!(query["properties"]["before"]["format"], "uuid", "{query}");
        assert_eq!(query["properties"]["limit"]["default"], 50, "{query}");
    }

    #[test]
    fn a_full_page_points_at_the_next() {
        let d = StoredDispatch::from(&report(vec![]));
        assert_eq!(page(vec![d.clone()], 1).next_before, Some(d.id));
        assert_eq!(page(vec![d], 2).next_before, None);
    }
}
