//! Renderings of the catalog: tables, Markdown, and flow graphs.
//!
//! Every rendering is a pure function of a [`Catalog`] value that walks it in its (sorted) order
//! and writes no timestamp, so one catalog always renders to the same text: `docs/signals.md` is
//! compared byte for byte with a fresh `coordinator docs` in a test.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::str::FromStr;
use std::time::Duration;

use serde_json::Value;

use super::Catalog;
use crate::config::ConfigDuration;
use crate::extension::Kind;

/// The flow graph formats `coordinator graph` can write.
///
/// ```
/// use coordinator::catalog::GraphFormat;
///
/// assert_eq!("dot".parse::<GraphFormat>(), Ok(GraphFormat::Dot));
/// assert_eq!(GraphFormat::Mermaid.to_string(), "mermaid");
/// assert!("svg".parse::<GraphFormat>().unwrap_err().to_string().contains("\"mermaid\""));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphFormat {
    /// Mermaid `flowchart`, which GitHub renders in Markdown.
    Mermaid,
    /// Graphviz dot.
    Dot,
}

impl GraphFormat {
    /// Every format, in the order help texts list them.
    pub const ALL: [GraphFormat; 2] = [GraphFormat::Mermaid, GraphFormat::Dot];

    /// The name as written on the command line: `mermaid` or `dot`.
    pub const fn as_str(self) -> &'static str {
        match self {
            GraphFormat::Mermaid => "mermaid",
            GraphFormat::Dot => "dot",
        }
    }
}

impl fmt::Display for GraphFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GraphFormat {
    type Err = GraphFormatError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GraphFormat::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| GraphFormatError {
                given: s.to_owned(),
            })
    }
}

/// A graph format name that is neither `mermaid` nor `dot`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown graph format \"{given}\"; use \"mermaid\" (a flowchart that GitHub renders in Markdown) or \"dot\" (for Graphviz: `dot -Tsvg`)"
)]
pub struct GraphFormatError {
    /// The name given.
    pub given: String,
}

impl Catalog {
    /// The signals as a plain-text table with aligned columns: name, declaring extension, payload
    /// type (its last path segment) and connected handlers, one signal per line after a header.
    ///
    /// ```
    /// use coordinator::prelude::*;
    /// use coordinator::{Config, Coordinator};
    ///
    /// #[derive(Debug, Serialize, Deserialize, JsonSchema)]
    /// pub struct Pinged { pub n: u32 }
    /// static PINGED: Signal<Pinged> = Signal::new("ping.pinged", "A ping.");
    ///
    /// struct PingExtension;
    /// impl Extension for PingExtension {
    ///     fn name(&self) -> &'static str { "ping" }
    ///     fn build(&self, ext: &mut ExtensionBuilder<'_>) {
    ///         ext.signal(&PINGED).handler("ping.log_ping", "Logs it.",
    ///             |_: Event<Pinged>| async { Ok::<_, HandlerError>(()) });
    ///     }
    /// }
    ///
    /// let config = Config::from_toml(r#"signals."ping.pinged" = ["ping.log_ping"]"#).unwrap();
    /// let catalog = Coordinator::builder().extension(PingExtension).config(config).build()
    ///     .unwrap().catalog();
    /// assert_eq!(catalog.signals_table(), "\
    /// NAME         EXTENSION  PAYLOAD  HANDLERS
    /// ping.pinged  ping       Pinged   ping.log_ping
    /// ");
    /// ```
    pub fn signals_table(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .signals
            .iter()
            .map(|s| {
                vec![
                    s.name.clone(),
                    s.extension.clone(),
                    short_type(&s.payload_type),
                    match (s.handlers.is_empty(), s.durable) {
                        (true, _) => "(none)".to_owned(),
                        (false, false) => s.handlers.join(", "),
                        (false, true) => format!("{} (durable)", s.handlers.join(", ")),
                    },
                ]
            })
            .collect();
        text_table(&["NAME", "EXTENSION", "PAYLOAD", "HANDLERS"], &rows)
    }

    /// Everything about one signal, as plain text: its extension, doc and payload type, each
    /// connected handler with its doc and timeout, the payload's fields (personal data marked)
    /// and its JSON schema. `None` if the catalog has no signal of that name.
    pub fn signal_details(&self, name: &str) -> Option<String> {
        let signal = self.signal(name)?;
        let mut out = String::new();
        let _ = writeln!(out, "signal     {}", signal.name);
        let _ = writeln!(out, "extension  {}", signal.extension);
        let _ = writeln!(out, "payload    {}", signal.payload_type);
        let _ = writeln!(out);
        let _ = writeln!(out, "{}", or_undocumented(&signal.doc));
        let _ = writeln!(out);
        if signal.handlers.is_empty() {
            let _ = writeln!(
                out,
                "handlers: none; no [signals] entry connects a handler, so nothing receives it"
            );
        } else if signal.durable {
            let _ = writeln!(
                out,
                "handlers ({}, in configuration order; durable: each delivery is stored when \
                 the signal is sent, and a worker runs it as a task, retried on its own):",
                signal.handlers.len()
            );
            for h in &signal.handlers {
                match self
                    .handler(h)
                    .and_then(|e| e.delivery.as_ref().map(|d| (e, d)))
                {
                    Some((entry, d)) => {
                        let _ = writeln!(
                            out,
                            "  {h}  (task {}, queue {}, {} attempts, timeout {})",
                            d.task,
                            d.queue,
                            d.max_attempts,
                            millis(entry.timeout_ms)
                        );
                        let _ = writeln!(out, "      {}", or_undocumented(&entry.doc));
                    }
                    None => {
                        let _ = writeln!(out, "  {h}  (not declared by an enabled extension)");
                    }
                }
            }
        } else {
            let _ = writeln!(
                out,
                "handlers ({}, in configuration order; they run concurrently):",
                signal.handlers.len()
            );
            for h in &signal.handlers {
                match self.handler(h) {
                    Some(entry) => {
                        let _ = writeln!(out, "  {h}  (timeout {})", millis(entry.timeout_ms));
                        let _ = writeln!(out, "      {}", or_undocumented(&entry.doc));
                    }
                    None => {
                        let _ = writeln!(out, "  {h}  (not declared by an enabled extension)");
                    }
                }
            }
        }
        let _ = writeln!(out);
        let fields = fields(&signal.payload_schema);
        if fields.is_empty() {
            let _ = writeln!(
                out,
                "payload: {} (no named fields)",
                type_label(&signal.payload_schema)
            );
        } else {
            let _ = writeln!(out, "payload fields:");
            let rows: Vec<Vec<String>> = fields
                .iter()
                .map(|f| {
                    vec![
                        f.name.to_owned(),
                        f.type_label.clone(),
                        yes_no(f.required).to_owned(),
                        yes_no(f.personal).to_owned(),
                        f.description.clone(),
                    ]
                })
                .collect();
            let table = text_table(
                &["FIELD", "TYPE", "REQUIRED", "PERSONAL DATA", "DESCRIPTION"],
                &rows,
            );
            for line in table.lines() {
                let _ = writeln!(out, "  {line}");
            }
            let personal: Vec<&str> = fields
                .iter()
                .filter(|f| f.personal)
                .map(|f| f.name)
                .collect();
            if !personal.is_empty() {
                let _ = writeln!(
                    out,
                    "  personal data (handlers can read it; logs and reports show \"[redacted]\"): {}",
                    personal.join(", ")
                );
            }
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "payload JSON schema:");
        let schema = serde_json::to_string_pretty(&signal.payload_schema)
            .unwrap_or_else(|e| format!("<cannot render the schema: {e}>"));
        let _ = writeln!(out, "{schema}");
        Some(out)
    }

    /// The flow between extensions, signals, handlers, filters and steps, as a Mermaid
    /// `flowchart LR` or a Graphviz `digraph`.
    ///
    /// Each extension is a subgraph (a cluster in dot) holding what it declares. Edges go from each
    /// signal to every handler connected to it, and from each filter through its steps in pipeline
    /// order. Signals, handlers, filters and steps have different shapes. Node ids are the kind and
    /// the name with every character other than ASCII letters, digits and `_` replaced (`.` by
    /// `__`, which a valid name never contains, so ids stay unique); the names themselves are
    /// quoted labels.
    ///
    /// ```
    /// use coordinator::catalog::{Catalog, GraphFormat};
    ///
    /// let empty = Catalog { extensions: vec![], signals: vec![], handlers: vec![],
    ///                       filters: vec![], steps: vec![], tasks: vec![] };
    /// assert!(empty.graph(GraphFormat::Mermaid).starts_with("flowchart LR\n"));
    /// assert!(empty.graph(GraphFormat::Dot).starts_with("digraph coordinator {\n"));
    /// ```
    pub fn graph(&self, format: GraphFormat) -> String {
        let mut clusters: BTreeMap<&str, Vec<(Kind, &str)>> = BTreeMap::new();
        let entries = self
            .signals
            .iter()
            .map(|s| (&s.extension, Kind::Signal, &s.name))
            .chain(
                self.handlers
                    .iter()
                    .map(|h| (&h.extension, Kind::Handler, &h.name)),
            )
            .chain(
                self.filters
                    .iter()
                    .map(|f| (&f.extension, Kind::Filter, &f.name)),
            )
            .chain(
                self.steps
                    .iter()
                    .map(|s| (&s.extension, Kind::Step, &s.name)),
            )
            .chain(
                self.tasks
                    .iter()
                    .map(|t| (&t.extension, Kind::Task, &t.name)),
            );
        for (extension, kind, name) in entries {
            clusters
                .entry(extension.as_str())
                .or_default()
                .push((kind, name.as_str()));
        }

        let mut edges: Vec<(String, String)> = Vec::new();
        let mut edge = |from: String, to: String| {
            if !edges.iter().any(|(f, t)| *f == from && *t == to) {
                edges.push((from, to));
            }
        };
        for s in &self.signals {
            for h in &s.handlers {
                edge(node_id(Kind::Signal, &s.name), node_id(Kind::Handler, h));
            }
        }
        for h in &self.handlers {
            for t in &h.enqueues {
                edge(node_id(Kind::Handler, &h.name), node_id(Kind::Task, t));
            }
            for sig in &h.sends {
                edge(node_id(Kind::Handler, &h.name), node_id(Kind::Signal, sig));
            }
        }
        for t in &self.tasks {
            for next in &t.enqueues {
                edge(node_id(Kind::Task, &t.name), node_id(Kind::Task, next));
            }
            for sig in &t.sends {
                edge(node_id(Kind::Task, &t.name), node_id(Kind::Signal, sig));
            }
        }
        for f in &self.filters {
            let mut previous = node_id(Kind::Filter, &f.name);
            for step in &f.pipeline {
                let id = node_id(Kind::Step, step);
                edge(previous, id.clone());
                previous = id;
            }
        }

        match format {
            GraphFormat::Mermaid => mermaid(&clusters, &edges),
            GraphFormat::Dot => dot(&clusters, &edges),
        }
    }

    /// The generated reference committed as `docs/signals.md`: per extension, its doc, signals
    /// (doc, payload type, a table of payload fields with personal data marked, handlers),
    /// handlers, filters (with their pipelines) and steps, then the Mermaid flow graph.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        out.push_str("# Signals, handlers and filters\n\n");
        out.push_str(
            "<!-- Generated by `coordinator docs`. Do not edit this file by hand. -->\n\n",
        );
        out.push_str(
            "This reference is generated by `coordinator docs` from the extensions compiled into \
             the binary and its configuration. Do not edit it by hand: change the extensions or \
             the configuration, then regenerate it with \
             `coordinator docs --output docs/signals.md`.\n\n",
        );

        out.push_str("## Extensions\n\n");
        let rows: Vec<Vec<String>> = self
            .extensions
            .iter()
            .map(|e| {
                let count = |n: usize| n.to_string();
                vec![
                    format!("[`{0}`](#extension-{0})", e.name),
                    yes_no(e.enabled).to_owned(),
                    count(
                        self.signals
                            .iter()
                            .filter(|s| s.extension == e.name)
                            .count(),
                    ),
                    count(
                        self.handlers
                            .iter()
                            .filter(|h| h.extension == e.name)
                            .count(),
                    ),
                    count(
                        self.filters
                            .iter()
                            .filter(|f| f.extension == e.name)
                            .count(),
                    ),
                    count(self.steps.iter().filter(|s| s.extension == e.name).count()),
                ]
            })
            .collect();
        if rows.is_empty() {
            out.push_str("No extension is compiled into the binary.\n\n");
        } else {
            markdown_table(
                &mut out,
                &[
                    "extension",
                    "enabled",
                    "signals",
                    "handlers",
                    "filters",
                    "steps",
                ],
                &rows,
            );
        }

        for e in &self.extensions {
            let _ = writeln!(out, "## Extension `{}`\n", e.name);
            let _ = writeln!(out, "{}\n", or_undocumented(&e.doc));
            if !e.enabled {
                out.push_str(
                    "Not enabled by this configuration, so what it declares is not listed. \
                     Add it to `[extensions] enabled` to run it.\n\n",
                );
                continue;
            }
            self.markdown_signals(&mut out, &e.name);
            self.markdown_handlers(&mut out, &e.name);
            self.markdown_filters(&mut out, &e.name);
            self.markdown_steps(&mut out, &e.name);
            self.markdown_tasks(&mut out, &e.name);
        }

        out.push_str("## Flow\n\n");
        out.push_str(
            "Signals (stadiums) are delivered to every handler (rectangles) they point to; handlers \
             and tasks (double rectangles) point to the tasks they enqueue and the signals they \
             send; filters (hexagons) pass their data through their steps (rounded boxes) in \
             order.\n\n",
        );
        out.push_str("```mermaid\n");
        out.push_str(&self.graph(GraphFormat::Mermaid));
        out.push_str("```\n");
        out
    }

    fn markdown_signals(&self, out: &mut String, extension: &str) {
        let mut signals = self
            .signals
            .iter()
            .filter(|s| s.extension == extension)
            .peekable();
        if signals.peek().is_none() {
            return;
        }
        out.push_str("### Signals\n\n");
        for s in signals {
            let _ = writeln!(out, "#### `{}`\n", s.name);
            let _ = writeln!(out, "{}\n", or_undocumented(&s.doc));
            let _ = writeln!(out, "- Payload: `{}`", s.payload_type);
            let _ = writeln!(
                out,
                "- Handlers: {}\n",
                code_list(&s.handlers, "none; nothing receives it")
            );
            markdown_fields(out, "Payload", &s.payload_schema);
        }
    }

    fn markdown_handlers(&self, out: &mut String, extension: &str) {
        let mut handlers = self
            .handlers
            .iter()
            .filter(|h| h.extension == extension)
            .peekable();
        if handlers.peek().is_none() {
            return;
        }
        out.push_str("### Handlers\n\n");
        for h in handlers {
            let _ = writeln!(out, "#### `{}`\n", h.name);
            let _ = writeln!(out, "{}\n", or_undocumented(&h.doc));
            let _ = writeln!(out, "- Payload: `{}`", h.payload_type);
            let _ = writeln!(
                out,
                "- Signals: {}",
                code_list(&h.signals, "none; it is not connected, so it never runs")
            );
            if !h.enqueues.is_empty() {
                let _ = writeln!(out, "- Enqueues: {}", code_list(&h.enqueues, ""));
            }
            if !h.sends.is_empty() {
                let _ = writeln!(out, "- Sends: {}", code_list(&h.sends, ""));
            }
            if let Some(d) = &h.delivery {
                let _ = writeln!(
                    out,
                    "- Durable deliveries: task `{}` on queue `{}`, {} attempts, backoff {} to {}",
                    d.task,
                    d.queue,
                    d.max_attempts,
                    millis(d.initial_backoff_ms),
                    millis(d.max_backoff_ms)
                );
            }
            let _ = writeln!(out, "- Timeout: {}\n", millis(h.timeout_ms));
        }
    }

    fn markdown_tasks(&self, out: &mut String, extension: &str) {
        let mut tasks = self
            .tasks
            .iter()
            .filter(|t| t.extension == extension)
            .peekable();
        if tasks.peek().is_none() {
            return;
        }
        out.push_str("### Tasks\n\n");
        for t in tasks {
            let _ = writeln!(out, "#### `{}`\n", t.name);
            let _ = writeln!(out, "{}\n", or_undocumented(&t.doc));
            let _ = writeln!(out, "- Payload: `{}`", t.payload_type);
            let _ = writeln!(out, "- Queue: `{}`", t.queue);
            let _ = writeln!(
                out,
                "- Attempts: {} (backoff from {} up to {}, with jitter)",
                t.max_attempts,
                millis(t.initial_backoff_ms),
                millis(t.max_backoff_ms)
            );
            let _ = writeln!(out, "- Timeout: {}", millis(t.timeout_ms));
            let _ = writeln!(
                out,
                "- Enqueued by: {}",
                code_list(&t.enqueued_by, "none declared")
            );
            if !t.enqueues.is_empty() {
                let _ = writeln!(out, "- Enqueues: {}", code_list(&t.enqueues, ""));
            }
            let _ = writeln!(out, "- Sends: {}\n", code_list(&t.sends, "none"));
            markdown_fields(out, "Payload", &t.payload_schema);
        }
    }

    fn markdown_filters(&self, out: &mut String, extension: &str) {
        let mut filters = self
            .filters
            .iter()
            .filter(|f| f.extension == extension)
            .peekable();
        if filters.peek().is_none() {
            return;
        }
        out.push_str("### Filters\n\n");
        for f in filters {
            let _ = writeln!(out, "#### `{}`\n", f.name);
            let _ = writeln!(out, "{}\n", or_undocumented(&f.doc));
            let _ = writeln!(out, "- Data: `{}`", f.data_type);
            let _ = writeln!(out, "- Step timeout: {}\n", millis(f.step_timeout_ms));
            if f.pipeline.is_empty() {
                out.push_str("Pipeline: none; the filter returns its input unchanged.\n\n");
            } else {
                out.push_str("Pipeline, in order:\n\n");
                for (i, step) in f.pipeline.iter().enumerate() {
                    let _ = writeln!(out, "{}. `{step}`", i + 1);
                }
                out.push('\n');
            }
            markdown_fields(out, "Data", &f.data_schema);
        }
    }

    fn markdown_steps(&self, out: &mut String, extension: &str) {
        let mut steps = self
            .steps
            .iter()
            .filter(|s| s.extension == extension)
            .peekable();
        if steps.peek().is_none() {
            return;
        }
        out.push_str("### Steps\n\n");
        for s in steps {
            let _ = writeln!(out, "#### `{}`\n", s.name);
            let _ = writeln!(out, "{}\n", or_undocumented(&s.doc));
            let _ = writeln!(out, "- Data: `{}`", s.data_type);
            let _ = writeln!(
                out,
                "- Filters: {}\n",
                code_list(&s.filters, "none; it is in no pipeline, so it never runs")
            );
        }
    }
}

/// One property of a payload's JSON schema.
struct Field<'a> {
    name: &'a str,
    type_label: String,
    required: bool,
    description: String,
    personal: bool,
}

/// The named properties of an object schema, in the schema's order.
fn fields(schema: &Value) -> Vec<Field<'_>> {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    properties
        .iter()
        .map(|(name, property)| Field {
            name,
            type_label: type_label(property),
            required: required.contains(&name.as_str()),
            description: property
                .get("description")
                .and_then(Value::as_str)
                .map(|d| d.split_whitespace().collect::<Vec<_>>().join(" "))
                .unwrap_or_default(),
            personal: is_personal(property),
        })
        .collect()
}

/// Whether a schema, or one it is made of (array items, map values, alternatives), is marked
/// `"x-personal-data": true` (see [`crate::Personal`]). References to definitions are not
/// followed: a type is personal where it is used as such, not everywhere.
fn is_personal(schema: &Value) -> bool {
    if schema.get("x-personal-data").and_then(Value::as_bool) == Some(true) {
        return true;
    }
    let nested = ["items", "additionalProperties"]
        .iter()
        .filter_map(|k| schema.get(k))
        .any(is_personal);
    nested
        || ["anyOf", "oneOf", "allOf", "prefixItems"]
            .iter()
            .filter_map(|k| schema.get(k).and_then(Value::as_array))
            .flatten()
            .any(is_personal)
}

/// A short human description of a schema's type: `string`, `integer (uint64)`,
/// `array of string`, `string or null`, the name of a referenced definition.
fn type_label(schema: &Value) -> String {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        return reference.rsplit('/').next().unwrap_or(reference).to_owned();
    }
    if let Some(constant) = schema.get("const") {
        return constant.to_string();
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let values: Vec<String> = values.iter().map(Value::to_string).collect();
        return format!("one of {}", values.join(", "));
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(alternatives) = schema.get(key).and_then(Value::as_array) {
            let labels: Vec<String> = alternatives.iter().map(type_label).collect();
            return labels.join(" or ");
        }
    }
    if let Some([only]) = schema
        .get("allOf")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    {
        return type_label(only);
    }
    match schema.get("type") {
        Some(Value::String(t)) => single_type_label(t, schema),
        Some(Value::Array(types)) => {
            let labels: Vec<String> = types
                .iter()
                .filter_map(Value::as_str)
                .map(|t| single_type_label(t, schema))
                .collect();
            labels.join(" or ")
        }
        _ => "any".to_owned(),
    }
}

fn single_type_label(t: &str, schema: &Value) -> String {
    match (t, schema.get("items"), schema.get("additionalProperties")) {
        ("array", Some(items), _) if items.is_object() => format!("array of {}", type_label(items)),
        ("object", _, Some(values)) if values.is_object() => {
            format!("map of {}", type_label(values))
        }
        ("array" | "object" | "null", _, _) => t.to_owned(),
        _ => match schema.get("format").and_then(Value::as_str) {
            Some(format) => format!("{t} ({format})"),
            None => t.to_owned(),
        },
    }
}

/// A Markdown table of a schema's fields, or a line giving its type when it has none.
fn markdown_fields(out: &mut String, what: &str, schema: &Value) {
    let fields = fields(schema);
    if fields.is_empty() {
        let _ = writeln!(out, "{what} type: {}.\n", type_label(schema));
        return;
    }
    let rows: Vec<Vec<String>> = fields
        .iter()
        .map(|f| {
            vec![
                format!("`{}`", f.name),
                f.type_label.clone(),
                yes_no(f.required).to_owned(),
                f.description.clone(),
                yes_no(f.personal).to_owned(),
            ]
        })
        .collect();
    markdown_table(
        out,
        &["field", "type", "required", "description", "personal data"],
        &rows,
    );
}

fn markdown_table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = String>| {
        out.push('|');
        for cell in cells {
            let _ = write!(out, " {} |", cell);
        }
        out.push('\n');
    };
    line(out, &mut header.iter().map(|h| (*h).to_owned()));
    line(out, &mut header.iter().map(|_| "---".to_owned()));
    for row in rows {
        line(
            out,
            &mut row
                .iter()
                .map(|c| c.replace('|', "\\|").replace(['\r', '\n'], " ")),
        );
    }
    out.push('\n');
}

/// Left-aligned columns two spaces apart, with no trailing spaces.
fn text_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (cell, width) in cells.zip(&widths) {
            let _ = write!(text, "{cell:<width$}  ");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// The last path segment of every path in a Rust type name:
/// `alloc::vec::Vec<my_ext::Refund>` becomes `Vec<Refund>`.
fn short_type(type_name: &str) -> String {
    let mut out = String::with_capacity(type_name.len());
    let mut path = String::new();
    let flush = |path: &mut String, out: &mut String| {
        out.push_str(path.rsplit("::").next().unwrap_or_default());
        path.clear();
    };
    for c in type_name.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            path.push(c);
        } else {
            flush(&mut path, &mut out);
            out.push(c);
        }
    }
    flush(&mut path, &mut out);
    out
}

/// `kind_name`, with every character that is not an ASCII letter, digit or `_` replaced: `.` by
/// `__` (which a valid snake_case name never contains, so distinct names keep distinct ids) and
/// anything else by `_`.
fn node_id(kind: Kind, name: &str) -> String {
    format!("{kind}_{}", sanitize(name))
}

fn sanitize(name: &str) -> String {
    let mut id = String::with_capacity(name.len() + 2);
    for c in name.chars() {
        match c {
            c if c.is_ascii_alphanumeric() || c == '_' => id.push(c),
            '.' => id.push_str("__"),
            _ => id.push('_'),
        }
    }
    id
}

fn mermaid(clusters: &BTreeMap<&str, Vec<(Kind, &str)>>, edges: &[(String, String)]) -> String {
    // Mermaid has no escape for `"` inside a quoted label but accepts the entity code.
    let label = |s: &str| s.replace('"', "#quot;");
    let mut out = String::from("flowchart LR\n");
    out.push_str(
        "    %% signals: stadiums; handlers: rectangles; tasks: double rectangles; filters: hexagons; steps: rounded boxes\n",
    );
    for (extension, nodes) in clusters {
        let _ = writeln!(
            out,
            "    subgraph ext_{} [\"{}\"]",
            sanitize(extension),
            label(extension)
        );
        for (kind, name) in nodes {
            let (open, close) = match kind {
                Kind::Signal => ("([\"", "\"])"),
                Kind::Handler => ("[\"", "\"]"),
                Kind::Filter => ("{{\"", "\"}}"),
                Kind::Step => ("(\"", "\")"),
                Kind::Task => ("[[\"", "\"]]"),
            };
            let _ = writeln!(
                out,
                "        {}{open}{}{close}",
                node_id(*kind, name),
                label(name)
            );
        }
        out.push_str("    end\n");
    }
    for (from, to) in edges {
        let _ = writeln!(out, "    {from} --> {to}");
    }
    out
}

fn dot(clusters: &BTreeMap<&str, Vec<(Kind, &str)>>, edges: &[(String, String)]) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut out = String::from("digraph coordinator {\n");
    out.push_str("    rankdir=LR;\n");
    out.push_str("    node [fontname=\"Helvetica\", fontsize=11];\n");
    for (extension, nodes) in clusters {
        let _ = writeln!(out, "    subgraph cluster_{} {{", sanitize(extension));
        let _ = writeln!(out, "        label={};", quote(extension));
        for (kind, name) in nodes {
            let shape = match kind {
                Kind::Signal => "shape=ellipse",
                Kind::Handler => "shape=box",
                Kind::Filter => "shape=hexagon",
                Kind::Step => "shape=box, style=rounded",
                Kind::Task => "shape=box, peripheries=2",
            };
            let _ = writeln!(
                out,
                "        {} [label={}, {shape}];",
                node_id(*kind, name),
                quote(name)
            );
        }
        out.push_str("    }\n");
    }
    for (from, to) in edges {
        let _ = writeln!(out, "    {from} -> {to};");
    }
    out.push_str("}\n");
    out
}

fn millis(ms: u64) -> ConfigDuration {
    ConfigDuration(Duration::from_millis(ms))
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn or_undocumented(doc: &str) -> &str {
    if doc.trim().is_empty() {
        "(undocumented)"
    } else {
        doc
    }
}

/// `` `a`, `b` `` or `none` when empty.
fn code_list(names: &[String], none: &str) -> String {
    if names.is_empty() {
        return none.to_owned();
    }
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    quoted.join(", ")
}

#[cfg(test)]
mod tests {
    use schemars::JsonSchema;

    use super::*;
    use crate::catalog::{ExtensionEntry, FilterEntry, HandlerEntry, SignalEntry, StepEntry};
    use crate::payload::{Personal, schema_of};

    /// A payload with one field of each interesting shape.
    #[allow(dead_code)]
    #[derive(JsonSchema)]
    struct SeatBought {
        /// The order.
        order_number: String,
        /// The learner's email.
        email: Personal<String>,
        /// Coupons applied | if any.
        coupons: Vec<String>,
        /// The learner's name, when known.
        name: Option<Personal<String>>,
        /// Seats bought.
        seats: u32,
    }

    #[allow(dead_code)]
    #[derive(JsonSchema)]
    struct Quote {
        /// The SKU.
        sku: String,
    }

    fn catalog() -> Catalog {
        Catalog {
            extensions: vec![
                ExtensionEntry {
                    name: "idle".into(),
                    doc: "Compiled in, not enabled.".into(),
                    enabled: false,
                },
                ExtensionEntry {
                    name: "shop".into(),
                    doc: "Sells seats.".into(),
                    enabled: true,
                },
            ],
            signals: vec![
                SignalEntry {
                    name: "shop.seat_bought".into(),
                    doc: "A seat was bought.".into(),
                    extension: "shop".into(),
                    payload_type: "shop::signals::SeatBought".into(),
                    payload_schema: schema_of::<SeatBought>(),
                    handlers: vec!["shop.enroll_learner".into(), "shop.send_receipt".into()],
                    durable: false,
                },
                SignalEntry {
                    name: "shop.seat_refunded".into(),
                    doc: String::new(),
                    extension: "shop".into(),
                    payload_type: "alloc::vec::Vec<shop::signals::SeatBought>".into(),
                    payload_schema: schema_of::<Vec<SeatBought>>(),
                    handlers: vec![],
                    durable: false,
                },
            ],
            handlers: vec![
                HandlerEntry {
                    name: "shop.enroll_learner".into(),
                    doc: "Enrolls the learner.".into(),
                    extension: "shop".into(),
                    payload_type: "shop::signals::SeatBought".into(),
                    signals: vec!["shop.seat_bought".into()],
                    timeout_ms: 2000,
                    enqueues: vec![],
                    sends: vec![],
                    delivery: None,
                },
                HandlerEntry {
                    name: "shop.send_receipt".into(),
                    doc: "Emails a \"receipt\".".into(),
                    extension: "shop".into(),
                    payload_type: "shop::signals::SeatBought".into(),
                    signals: vec!["shop.seat_bought".into()],
                    timeout_ms: 250,
                    enqueues: vec![],
                    sends: vec![],
                    delivery: None,
                },
            ],
            filters: vec![FilterEntry {
                name: "shop.quote_requested".into(),
                doc: "What a seat costs.".into(),
                extension: "shop".into(),
                data_type: "shop::filters::Quote".into(),
                data_schema: schema_of::<Quote>(),
                pipeline: vec!["shop.apply_coupon".into(), "shop.add_tax".into()],
                step_timeout_ms: 1000,
            }],
            steps: vec![
                StepEntry {
                    name: "shop.add_tax".into(),
                    doc: "Adds tax.".into(),
                    extension: "shop".into(),
                    data_type: "shop::filters::Quote".into(),
                    filters: vec!["shop.quote_requested".into()],
                },
                StepEntry {
                    name: "shop.apply_coupon".into(),
                    doc: "Applies a coupon.".into(),
                    extension: "shop".into(),
                    data_type: "shop::filters::Quote".into(),
                    filters: vec!["shop.quote_requested".into()],
                },
            ],
            tasks: vec![],
        }
    }

    #[test]
    fn graph_format_parses_its_names_and_explains_unknown_ones() {
        assert_eq!("mermaid".parse(), Ok(GraphFormat::Mermaid));
        assert_eq!("Dot".parse(), Ok(GraphFormat::Dot));
        let e = "svg".parse::<GraphFormat>().unwrap_err().to_string();
        assert!(
            e.contains("\"svg\"") && e.contains("\"mermaid\"") && e.contains("\"dot\""),
            "{e}"
        );
        for f in GraphFormat::ALL {
            assert_eq!(f.to_string().parse(), Ok(f));
        }
    }

    #[test]
    fn short_type_keeps_the_last_segment_of_every_path() {
        assert_eq!(short_type("shop::signals::SeatBought"), "SeatBought");
        assert_eq!(
            short_type("alloc::vec::Vec<shop::signals::SeatBought>"),
            "Vec<SeatBought>"
        );
        assert_eq!(
            short_type("core::option::Option<(u32, a::B)>"),
            "Option<(u32, B)>"
        );
        assert_eq!(short_type("u64"), "u64");
    }

    #[test]
    fn signals_table_aligns_columns_and_marks_signals_without_handlers() {
        let table = catalog().signals_table();
        assert_eq!(
            table,
            "\
NAME                EXTENSION  PAYLOAD          HANDLERS
shop.seat_bought    shop       SeatBought       shop.enroll_learner, shop.send_receipt
shop.seat_refunded  shop       Vec<SeatBought>  (none)
"
        );
    }

    #[test]
    fn signal_details_show_handlers_fields_personal_data_and_schema() {
        let c = catalog();
        let details = c.signal_details("shop.seat_bought").unwrap();
        for expected in [
            "signal     shop.seat_bought",
            "extension  shop",
            "payload    shop::signals::SeatBought",
            "A seat was bought.",
            "shop.enroll_learner  (timeout 2s)",
            "Enrolls the learner.",
            "shop.send_receipt  (timeout 250ms)",
            "payload JSON schema:",
            "\"x-personal-data\": true",
            "personal data (handlers can read it; logs and reports show \"[redacted]\"): email, name",
        ] {
            assert!(
                details.contains(expected),
                "missing {expected:?} in:\n{details}"
            );
        }
        let row = |field: &str| -> Vec<&str> {
            let line = details.lines().find(|l| l.trim_start().starts_with(field));
            line.unwrap().split_whitespace().collect()
        };
        // FIELD TYPE REQUIRED PERSONAL-DATA DESCRIPTION
        assert_eq!(row("email ")[..4], ["email", "string", "yes", "yes"]);
        assert_eq!(
            row("seats ")[..5],
            ["seats", "integer", "(uint32)", "yes", "no"]
        );
        assert!(c.signal_details("shop.nope").is_none());
        let none = c.signal_details("shop.seat_refunded").unwrap();
        assert!(none.contains("(undocumented)"), "{none}");
        assert!(none.contains("handlers: none"), "{none}");
        assert!(
            none.contains("payload: array of SeatBought (no named fields)"),
            "{none}"
        );
    }

    #[test]
    fn schema_fields_describe_types_requirement_and_personal_data() {
        let schema = schema_of::<SeatBought>();
        let fields = fields(&schema);
        let by_name = |n: &str| fields.iter().find(|f| f.name == n).unwrap();
        assert_eq!(by_name("coupons").type_label, "array of string");
        assert!(by_name("email").personal && by_name("email").required);
        assert!(by_name("name").personal, "{schema:#}");
        assert!(!by_name("name").required, "{schema:#}");
        assert!(!by_name("seats").personal);
        assert_eq!(by_name("coupons").description, "Coupons applied | if any.");
    }

    #[test]
    fn mermaid_graph_has_clusters_shapes_and_edges_in_pipeline_order() {
        let g = catalog().graph(GraphFormat::Mermaid);
        assert!(g.starts_with("flowchart LR\n"), "{g}");
        for expected in [
            "    subgraph ext_shop [\"shop\"]\n",
            "        signal_shop__seat_bought([\"shop.seat_bought\"])\n",
            "        handler_shop__send_receipt[\"shop.send_receipt\"]\n",
            "        filter_shop__quote_requested{{\"shop.quote_requested\"}}\n",
            "        step_shop__add_tax(\"shop.add_tax\")\n",
            "    end\n",
            "    signal_shop__seat_bought --> handler_shop__enroll_learner\n\
             \x20   signal_shop__seat_bought --> handler_shop__send_receipt\n\
             \x20   filter_shop__quote_requested --> step_shop__apply_coupon\n\
             \x20   step_shop__apply_coupon --> step_shop__add_tax\n",
        ] {
            assert!(g.contains(expected), "missing {expected:?} in:\n{g}");
        }
        // Extensions with nothing enabled get no empty subgraph.
        assert!(!g.contains("idle"), "{g}");
        assert_eq!(g, catalog().graph(GraphFormat::Mermaid));
    }

    #[test]
    fn dot_graph_quotes_labels_and_clusters_by_extension() {
        let mut c = catalog();
        c.handlers[1].name = "shop.say \"hi\"".into();
        c.signals[0].handlers[1] = "shop.say \"hi\"".into();
        let g = c.graph(GraphFormat::Dot);
        assert!(
            g.starts_with("digraph coordinator {\n    rankdir=LR;\n"),
            "{g}"
        );
        assert!(g.ends_with("}\n"), "{g}");
        for expected in [
            "    subgraph cluster_shop {\n        label=\"shop\";\n",
            "        signal_shop__seat_bought [label=\"shop.seat_bought\", shape=ellipse];\n",
            "        handler_shop__say__hi_ [label=\"shop.say \\\"hi\\\"\", shape=box];\n",
            "        filter_shop__quote_requested [label=\"shop.quote_requested\", shape=hexagon];\n",
            "        step_shop__add_tax [label=\"shop.add_tax\", shape=box, style=rounded];\n",
            "    signal_shop__seat_bought -> handler_shop__say__hi_;\n",
            "    filter_shop__quote_requested -> step_shop__apply_coupon;\n\
             \x20   step_shop__apply_coupon -> step_shop__add_tax;\n",
        ] {
            assert!(g.contains(expected), "missing {expected:?} in:\n{g}");
        }
    }

    #[test]
    fn node_ids_of_different_names_never_collide() {
        assert_ne!(
            node_id(Kind::Signal, "a.b_c"),
            node_id(Kind::Signal, "a_b.c")
        );
        assert_ne!(node_id(Kind::Signal, "a.b"), node_id(Kind::Handler, "a.b"));
    }

    #[test]
    fn markdown_documents_every_extension_and_ends_with_the_graph() {
        let c = catalog();
        let md = c.markdown();
        assert!(md.starts_with("# Signals, handlers and filters\n"), "{md}");
        for expected in [
            "Do not edit this file by hand",
            "`coordinator docs`",
            "| [`shop`](#extension-shop) | yes | 2 | 2 | 1 | 2 |\n",
            "## Extension `idle`\n\nCompiled in, not enabled.\n\nNot enabled by this configuration",
            "## Extension `shop`\n\nSells seats.\n\n### Signals\n\n#### `shop.seat_bought`\n\nA seat was bought.\n\n",
            "- Payload: `shop::signals::SeatBought`\n- Handlers: `shop.enroll_learner`, `shop.send_receipt`\n",
            "| field | type | required | description | personal data |\n| --- | --- | --- | --- | --- |\n",
            "| `email` | string | yes | The learner's email. | yes |\n",
            "| `coupons` | array of string | yes | Coupons applied \\| if any. | no |\n",
            "- Handlers: none; nothing receives it\n",
            "### Handlers\n\n#### `shop.enroll_learner`\n\nEnrolls the learner.\n\n- Payload: `shop::signals::SeatBought`\n- Signals: `shop.seat_bought`\n- Timeout: 2s\n",
            "### Filters\n\n#### `shop.quote_requested`\n",
            "- Step timeout: 1s\n",
            "Pipeline, in order:\n\n1. `shop.apply_coupon`\n2. `shop.add_tax`\n",
            "| `sku` | string | yes | The SKU. | no |\n",
            "### Steps\n\n#### `shop.add_tax`\n\nAdds tax.\n\n- Data: `shop::filters::Quote`\n- Filters: `shop.quote_requested`\n",
        ] {
            assert!(md.contains(expected), "missing {expected:?} in:\n{md}");
        }
        let graph = format!("```mermaid\n{}```\n", c.graph(GraphFormat::Mermaid));
        assert!(md.ends_with(&graph), "{md}");
        assert!(
            md.lines().all(|l| l == l.trim_end()),
            "trailing whitespace in:\n{md}"
        );
        assert!(!md.contains("\n\n\n"), "{md}");
        assert_eq!(md, catalog().markdown());
    }
}
