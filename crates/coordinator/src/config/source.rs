//! Reading a configuration: the file (or embedded text) and the `COORDINATOR__*` overrides,
//! section by section, every problem reported at once; the framework's sections as a
//! [`Config`], the host's as its own types.

use std::path::Path;

use serde::de::DeserializeOwned;

use super::{Config, ConfigError, ENV_PREFIX};

/// A configuration file and its environment overrides, from which the framework reads its
/// [`Config`] and the host application its own sections.
///
/// Every problem is reported at once: each section is read on its own, so an error in one does
/// not hide an error in another, and each points at its line (when no override is set). A
/// value set by an environment variable is read as TOML where the setting is a number, a list
/// or a flag, and as the text given where the setting is a string, whatever it looks like
/// (`0x7f3a9b` stays `"0x7f3a9b"`); and no message shows a value an override set.
///
/// ```
/// use coordinator::config::ConfigSource;
///
/// #[derive(Debug, Default, serde::Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct Server { bind: Option<String> }
///
/// let source = ConfigSource::new("app.toml", "[server]\nbind = \"0.0.0.0:1\"\n", Vec::new());
/// let config = source.framework(&["server"]).unwrap();
/// let server: Server = source.section("server").unwrap();
/// assert_eq!(server.bind.as_deref(), Some("0.0.0.0:1"));
/// assert!(!format!("{config:?}").contains("0.0.0.0:1"), "the framework keeps none of it");
/// assert!(source.framework(&[]).unwrap_err().to_string().contains("unknown section `server`"));
/// ```
#[derive(Debug, Clone)]
pub struct ConfigSource {
    origin: String,
    text: String,
    overrides: Vec<(String, String)>,
}

/// An environment override as applied: the key it set, the text given, and
/// whether that text read as a TOML scalar other than a string (a setting that is a string
/// then gets the text as given).
#[derive(Debug, Clone)]
struct Applied {
    path: Vec<String>,
    raw: String,
    read_as_scalar: bool,
}

/// The document the sections are read from: the text itself (errors then point at a line), or
/// the table with the overrides applied.
enum Document<'t> {
    Text(&'t str, toml::Spanned<toml::de::DeTable<'t>>),
    Merged(toml::Table, Vec<Applied>),
}

impl ConfigSource {
    /// `text`, read from `origin` (a name for messages), with the `COORDINATOR__*` variables of
    /// `env` (others are ignored).
    pub fn new(origin: &str, text: &str, env: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut overrides: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        overrides.sort();
        Self {
            origin: origin.to_owned(),
            text: text.to_owned(),
            overrides,
        }
    }

    /// Reads the file at `path`, with the overrides of `env`.
    pub fn read(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self::new(&path.display().to_string(), &text, env))
    }

    /// The framework's configuration. Top-level sections other than the framework's must be
    /// among `host_sections` (the host application reads them with
    /// [`ConfigSource::section`]); any other is refused, naming the variable that set it if one
    /// did. Every problem of every section is reported in one error.
    pub fn framework(&self, host_sections: &[&str]) -> Result<Config, ConfigError> {
        self.framework_and(host_sections, |_| ())
            .map(|(config, ())| config)
    }

    /// The framework's configuration and the host's sections (`host_sections`, each read by
    /// `read_host` through a [`SectionReader`]), with every problem of both in one error.
    pub fn framework_and<H>(
        &self,
        host_sections: &[&str],
        read_host: impl FnOnce(&mut SectionReader<'_>) -> H,
    ) -> Result<(Config, H), ConfigError> {
        let doc = self.document()?;
        let mut problems = Vec::new();
        for unknown in doc.keys().into_iter().filter(|k| {
            !FRAMEWORK_SECTIONS.contains(&k.as_str()) && !host_sections.contains(&k.as_str())
        }) {
            problems.push(self.unknown_section(&unknown, host_sections));
        }
        macro_rules! section {
            ($name:literal) => {
                self.read_section(&doc, $name).unwrap_or_else(|problem| {
                    problems.push(problem);
                    Default::default()
                })
            };
        }
        let mut config = Config {
            extensions: section!("extensions"),
            timeouts: section!("timeouts"),
            signals: section!("signals"),
            handlers: section!("handlers"),
            filters: section!("filters"),
            tasks: section!("tasks"),
            worker: section!("worker"),
            storage: section!("storage"),
            dispatch_log: section!("dispatch_log"),
            extension: section!("extension"),
            host: toml::Table::new(),
            string_overrides: Vec::new(),
        };
        if let Document::Merged(_, applied) = &doc {
            // Extension settings are read by the extensions (at build): they get the same
            // treatment of overridden text there.
            config.string_overrides = applied
                .iter()
                .filter(|a| a.read_as_scalar && a.path.first().is_some_and(|s| s == "extension"))
                .map(|a| (a.path[1..].to_vec(), a.raw.clone()))
                .collect();
        }
        let mut reader = SectionReader {
            source: self,
            doc: &doc,
            problems,
        };
        let host = read_host(&mut reader);
        self.finish(reader.problems)?;
        Ok((config, host))
    }

    /// One of the host application's sections, as `T` (its default when the section is
    /// absent). Errors point at their line when no override is set.
    pub fn section<T: DeserializeOwned + Default>(&self, name: &str) -> Result<T, ConfigError> {
        let doc = self.document()?;
        let result = self.read_section(&doc, name);
        result.map_err(|problem| self.invalid(vec![problem]))
    }

    /// Where the configuration came from, and the overriding variables if any are set.
    pub fn origin_with_overrides(&self) -> String {
        if self.overrides.is_empty() {
            return self.origin.clone();
        }
        let names: Vec<&str> = self.overrides.iter().map(|(k, _)| k.as_str()).collect();
        format!("{} with overrides from {}", self.origin, names.join(", "))
    }

    fn finish(&self, problems: Vec<String>) -> Result<(), ConfigError> {
        if problems.is_empty() {
            Ok(())
        } else {
            Err(self.invalid(problems))
        }
    }

    fn invalid(&self, problems: Vec<String>) -> ConfigError {
        let message = match problems.as_slice() {
            [one] => one.clone(),
            many => format!(
                "{} problems:\n{}",
                many.len(),
                many.iter()
                    .map(|p| format!("  - {}", p.replace('\n', "\n    ")))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        };
        ConfigError::Invalid {
            origin: self.origin_with_overrides(),
            message: self.scrub(&message),
        }
    }

    /// `message` without any value an override set (it may be a secret).
    fn scrub(&self, message: &str) -> String {
        let mut message = message.to_owned();
        for (var, value) in &self.overrides {
            if value.len() >= 3 {
                message = message.replace(value.as_str(), &format!("(the value of {var})"));
            }
        }
        message
    }

    fn document(&self) -> Result<Document<'_>, ConfigError> {
        if self.overrides.is_empty() {
            let doc = toml::de::DeTable::parse(&self.text)
                .map_err(|e| self.invalid(vec![located(&self.text, e.message(), e.span())]))?;
            return Ok(Document::Text(&self.text, doc));
        }
        let mut table: toml::Table =
            toml::from_str(&self.text).map_err(|e| ConfigError::Invalid {
                origin: self.origin.clone(),
                message: located(&self.text, e.message(), e.span()),
            })?;
        let mut applied = Vec::with_capacity(self.overrides.len());
        for (var, value) in &self.overrides {
            applied.push(apply_override(&mut table, var, value)?);
        }
        Ok(Document::Merged(table, applied))
    }

    fn unknown_section(&self, unknown: &str, host_sections: &[&str]) -> String {
        let mut expected: Vec<&str> = FRAMEWORK_SECTIONS.to_vec();
        expected.extend(host_sections);
        let set_by = self
            .overrides
            .iter()
            .find(|(var, _)| {
                var[ENV_PREFIX.len()..]
                    .split("__")
                    .next()
                    .is_some_and(|first| first.eq_ignore_ascii_case(unknown))
            })
            .map(|(var, _)| format!(" (set by {var})"))
            .unwrap_or_default();
        format!(
            "unknown section `{unknown}`{set_by}; the sections are {}{}",
            expected
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", "),
            crate::names::hint(unknown, expected.iter().copied()),
        )
    }

    /// Section `name` of `doc` as a `T` (its default when absent), or the problem, located.
    fn read_section<T: DeserializeOwned + Default>(
        &self,
        doc: &Document<'_>,
        name: &str,
    ) -> Result<T, String> {
        match doc {
            Document::Text(text, table) => {
                let Some((_, value)) = table.get_ref().iter().find(|(k, _)| k.get_ref() == name)
                else {
                    return Ok(T::default());
                };
                T::deserialize(toml::de::ValueDeserializer::from(value.clone()))
                    .map_err(|e| format!("[{name}] {}", located(text, e.message(), e.span())))
            }
            Document::Merged(table, applied) => {
                let Some(value) = table.get(name) else {
                    return Ok(T::default());
                };
                let mut value = value.clone();
                read_overridden(&mut value, name, applied).map_err(|e| format!("[{name}] {e}"))
            }
        }
    }
}

impl Document<'_> {
    /// The top-level keys.
    fn keys(&self) -> Vec<String> {
        match self {
            Document::Text(_, table) => table
                .get_ref()
                .iter()
                .map(|(k, _)| k.get_ref().to_string())
                .collect(),
            Document::Merged(table, _) => table.keys().cloned().collect(),
        }
    }
}

/// Reads the host's sections for [`ConfigSource::framework_and`], collecting their problems
/// with the framework's.
pub struct SectionReader<'s> {
    source: &'s ConfigSource,
    doc: &'s Document<'s>,
    problems: Vec<String>,
}

impl SectionReader<'_> {
    /// Section `name` as a `T` (its default when absent, or when it has a problem, which is
    /// reported with every other).
    pub fn section<T: DeserializeOwned + Default>(&mut self, name: &str) -> T {
        self.source
            .read_section(self.doc, name)
            .unwrap_or_else(|problem| {
                self.problems.push(problem);
                T::default()
            })
    }
}

/// `value` (a section set from the merged table, `path` its key) as a `T`; a setting that is
/// a string and that an override set to text that reads as another scalar gets the text as
/// given, and it is read again.
fn read_overridden<T: DeserializeOwned>(
    value: &mut toml::Value,
    section: &str,
    applied: &[Applied],
) -> Result<T, String> {
    for _ in 0..=applied.len() {
        match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(read) => return Ok(read),
            Err(e) => {
                let mut at: Vec<String> = vec![section.to_owned()];
                at.extend(e.path().iter().filter_map(|segment| match segment {
                    serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                    _ => None,
                }));
                let Some(overridden) = applied.iter().find(|a| a.read_as_scalar && a.path == at)
                else {
                    let mut path = e.path().to_string();
                    let inner = e.into_inner().to_string();
                    // An unknown field's path ends with it, which the message names already.
                    if inner.starts_with("unknown field") {
                        path = path
                            .rsplit_once('.')
                            .map_or(String::new(), |(p, _)| p.to_owned());
                    }
                    return Err(if path == "." || path.is_empty() {
                        inner
                    } else {
                        format!("{path}: {inner}")
                    });
                };
                set_path(
                    value,
                    &overridden.path[1..],
                    toml::Value::String(overridden.raw.clone()),
                );
            }
        }
    }
    Err("the overrides could not be read".to_owned())
}

/// Sets `path` (keys below `value`) to `new`.
fn set_path(value: &mut toml::Value, path: &[String], new: toml::Value) {
    let mut cur = value;
    for key in path {
        let Some(next) = cur.as_table_mut().and_then(|t| t.get_mut(key)) else {
            return;
        };
        cur = next;
    }
    *cur = new;
}

/// Extension settings (`[extension.<name>]`, `table`) as a `T`, with the overrides of
/// `string_overrides` (paths below `extension`) read as given where `T` wants a string.
pub(crate) fn read_extension_settings<T: DeserializeOwned>(
    extension: &str,
    table: toml::Table,
    string_overrides: &[(Vec<String>, String)],
) -> Result<T, String> {
    let applied: Vec<Applied> = string_overrides
        .iter()
        .filter(|(path, _)| path.first().is_some_and(|e| e == extension))
        .map(|(path, raw)| Applied {
            path: path.clone(),
            raw: raw.clone(),
            read_as_scalar: true,
        })
        .collect();
    let mut value = toml::Value::Table(table);
    read_overridden(&mut value, extension, &applied).map_err(|e| {
        // No message shows a value an override set.
        applied.iter().filter(|a| a.raw.len() >= 3).fold(e, |e, a| {
            e.replace(a.raw.as_str(), "(a value set by the environment)")
        })
    })
}

/// `message` with the line and column where `span` starts in `text`.
fn located(text: &str, message: &str, span: Option<std::ops::Range<usize>>) -> String {
    let message = message.trim_end();
    let Some(span) = span else {
        return message.to_owned();
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("at line {line}, column {column}: {message}")
}

/// The framework's top-level sections.
pub const FRAMEWORK_SECTIONS: &[&str] = &[
    "extensions",
    "timeouts",
    "signals",
    "handlers",
    "filters",
    "tasks",
    "worker",
    "storage",
    "dispatch_log",
    "extension",
];

/// Tables whose keys are dotted `<extension>.<name>` names.
const NAME_KEYED: &[&str] = &["signals", "handlers", "filters", "tasks"];

fn apply_override(table: &mut toml::Table, var: &str, value: &str) -> Result<Applied, ConfigError> {
    let err = |message: String| ConfigError::Env {
        var: var.to_owned(),
        message,
    };
    let rest = &var[ENV_PREFIX.len()..];
    let mut segments: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
    if segments.iter().any(String::is_empty) {
        return Err(err(format!(
            "empty key segment; write {ENV_PREFIX}<SECTION>__<KEY>, e.g. {ENV_PREFIX}SERVER__BIND"
        )));
    }
    if NAME_KEYED.contains(&segments[0].as_str()) {
        if segments.len() < 3 {
            return Err(err(format!(
                "a {} entry is named <extension>.<name>; write {ENV_PREFIX}{}__<EXTENSION>__<NAME>",
                segments[0],
                segments[0].to_ascii_uppercase()
            )));
        }
        let name = format!("{}.{}", segments[1], segments[2]);
        segments.splice(1..3, [name]);
    }
    let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()));
    let read_as_scalar = matches!(
        parsed,
        toml::Value::Integer(_)
            | toml::Value::Float(_)
            | toml::Value::Boolean(_)
            | toml::Value::Datetime(_)
    );
    let (last, parents) = segments.split_last().expect("at least one segment");
    let mut cur = table;
    for (depth, seg) in parents.iter().enumerate() {
        let entry = cur
            .entry(seg.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry.as_table_mut().ok_or_else(|| {
            err(format!(
                "{} is not a table, so it has no key \"{}\"",
                segments[..=depth].join("."),
                segments[depth + 1]
            ))
        })?;
    }
    cur.insert(last.clone(), parsed);
    Ok(Applied {
        path: segments,
        raw: value.to_owned(),
        read_as_scalar,
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Server {
        bind: Option<String>,
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn host_sections_are_the_hosts_and_others_are_refused_with_a_hint() {
        let source = ConfigSource::new("f.toml", "[server]\nbind = \"x\"\n[sever]\n", Vec::new());
        let e = source.framework(&["server"]).unwrap_err().to_string();
        assert!(e.starts_with("f.toml: unknown section `sever`"), "{e}");
        assert!(e.contains("did you mean \"server\""), "{e}");
        let ok = ConfigSource::new("f.toml", "[server]\nbind = \"x\"\n", Vec::new());
        assert!(ok.framework(&["server"]).is_ok());
        let server: Server = ok.section("server").unwrap();
        assert_eq!(server.bind.as_deref(), Some("x"));
    }

    #[test]
    fn the_framework_sections_are_the_fields_of_config() {
        let value = toml::Value::try_from(Config::default()).unwrap();
        let mut fields: Vec<&str> = value
            .as_table()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut listed = FRAMEWORK_SECTIONS.to_vec();
        fields.sort_unstable();
        listed.sort_unstable();
        assert_eq!(fields, listed);
    }

    #[test]
    fn a_host_sections_errors_point_at_their_line() {
        let source = ConfigSource::new("f.toml", "[worker]\n[server]\nbnid = \"x\"\n", Vec::new());
        let e = source.section::<Server>("server").unwrap_err().to_string();
        assert!(e.contains("unknown field `bnid`"), "{e}");
        assert!(e.contains("line 3"), "{e}");
    }

    #[test]
    fn every_problem_of_every_section_is_reported_at_once_with_its_line() {
        let text = "[worker]\nconcurency = 1\n[timeouts]\nhandler = \"5\"\n[nope]\n";
        let e = ConfigSource::new("f.toml", text, Vec::new())
            .framework(&[])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("f.toml: 3 problems:"), "{e}");
        assert!(e.contains("unknown section `nope`"), "{e}");
        assert!(
            e.contains("[worker] at line 2, column 1: unknown field `concurency`"),
            "{e}"
        );
        assert!(
            e.contains("[timeouts] at line 4, column 11: invalid duration \"5\""),
            "{e}"
        );
    }

    #[test]
    fn overridden_text_stays_text_where_a_setting_is_a_string() {
        for digits in ["98765432109876", "0x7f3a9b", "31415926535", "true", "1.5"] {
            let config = ConfigSource::new(
                "f.toml",
                "",
                env(&[
                    ("COORDINATOR__STORAGE__URL", digits),
                    ("COORDINATOR__WORKER__CONCURRENCY", "3"),
                    ("COORDINATOR__WORKER__QUEUES", "[\"lms\"]"),
                ]),
            )
            .framework(&[])
            .unwrap_or_else(|e| panic!("{digits}: {e}"));
            assert_eq!(config.storage.url.expose(), digits);
            assert_eq!(config.worker.concurrency, 3, "numbers stay numbers");
            assert_eq!(config.worker.queues, ["lms"], "lists stay lists");
        }
    }

    #[test]
    fn no_message_shows_a_secret() {
        // A number where a secret goes, in a file: refused without the value.
        let e = ConfigSource::new("f.toml", "[storage]\nurl = 123456789\n", Vec::new())
            .framework(&[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("a secret must be a quoted string"), "{e}");
        assert!(!e.contains("123456789"), "{e}");
        // A wrong value set by the environment: the message names the variable, not the value.
        let e = ConfigSource::new(
            "f.toml",
            "",
            env(&[("COORDINATOR__WORKER__CONCURRENCY", "hunter2-secret")]),
        )
        .framework(&[])
        .unwrap_err()
        .to_string();
        assert!(!e.contains("hunter2-secret"), "{e}");
        assert!(
            e.contains("(the value of COORDINATOR__WORKER__CONCURRENCY)"),
            "{e}"
        );
    }
}
