//! The dispatch log's stored form: what is kept of each [`DispatchReport`], and how it is queried.
//!
//! A stored dispatch has exactly what the report has: ids, names, outcomes and timings, never the
//! payload (reports do not carry it, so personal data cannot reach the log).

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::dispatch::report::{DispatchReport, Outcome};

/// One dispatch as stored in the dispatch log.
///
/// ```
/// use coordinator::dispatch_log::{DispatchStatus, StoredDispatch};
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
    /// How it ended: `ok`, `error`, `panicked` or `timed_out`; `queued` for a durable
    /// delivery stored to run as a task (`task_id`).
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
    /// When the signal is durable (`queued`): the task that delivers it to the handler, whose
    /// state and attempts say how the delivery went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>", extend("format" = "uuid"))]
    pub task_id: Option<Uuid>,
}

impl StoredHandlerRun {
    /// Whether the handler returned normally, or its durable delivery was stored.
    pub fn is_ok(&self) -> bool {
        self.status == "ok" || self.status == "queued"
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
                    task_id: None,
                };
                match &run.outcome {
                    Outcome::Ok { result } => stored.result.clone_from(result),
                    Outcome::Error { chain } => stored.error_chain.clone_from(chain),
                    Outcome::Panicked { message, location } => {
                        stored.panic_message = Some(message.clone());
                        stored.panic_location.clone_from(location);
                    }
                    Outcome::TimedOut { timeout_ms } => stored.timeout_ms = Some(*timeout_ms),
                    Outcome::Queued { task_id } => stored.task_id = Some(*task_id),
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

/// A durable dispatch as stored: the dispatch (each run `queued`, with its delivery's task id)
/// and the deliveries, one task per handler, with the ids the runs name. A backend stores them
/// in one transaction: a durable signal is sent entirely or not at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurableDispatch {
    /// The dispatch, for the dispatch log.
    pub dispatch: StoredDispatch,
    /// Each delivery's task id and task, in the dispatch's handler order.
    pub deliveries: Vec<(Uuid, crate::task::record::NewTask)>,
    /// The external event this dispatch answers, as (source, id): recorded in the inbox in
    /// the same transaction; when it was recorded before, nothing is stored.
    pub intake: Option<(String, String)>,
}

/// Which stored dispatches to list: every filter given must match. Newest first.
///
/// ```
/// use coordinator::dispatch_log::{DispatchQuery, DispatchStatus};
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

impl DispatchPage {
    /// The page made of the rows a list query returned, when it asked for `limit` of them: a
    /// full page points at the next one.
    pub fn from_items(items: Vec<StoredDispatch>, limit: u32) -> Self {
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
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::dispatch::report::{HandlerRun, Sender};
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
        assert_eq!(
            DispatchPage::from_items(vec![d.clone()], 1).next_before,
            Some(d.id)
        );
        assert_eq!(DispatchPage::from_items(vec![d], 2).next_before, None);
    }
}
