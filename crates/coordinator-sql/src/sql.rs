//! SQL text with its arguments, placeholders written for one dialect.

use uuid::Uuid;

/// The SQL dialect a statement is written in: where the backends differ in syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// SQLite: `?` placeholders, ids as TEXT, integers as INTEGER.
    Sqlite,
    /// PostgreSQL: `$n` placeholders, ids as UUID, times as BIGINT.
    Postgres,
}

impl Dialect {
    /// The backend's name, as `[storage] url` schemes and migrations name it.
    pub const fn backend(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgresql",
        }
    }
}

/// A value bound to a query; each backend binds it in its own type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arg {
    /// Text.
    Text(String),
    /// An integer (BIGINT).
    Int(i64),
    /// An id: TEXT on SQLite, UUID on PostgreSQL.
    Id(Uuid),
    /// A text that may be NULL.
    OptText(Option<String>),
    /// An id that may be NULL.
    OptId(Option<Uuid>),
}

/// SQL text with its arguments, placeholders written for one dialect.
///
/// ```
/// use coordinator_sql::{Arg, Dialect, Sql};
///
/// let mut sql = Sql::new(Dialect::Postgres, "SELECT id FROM coordinator_tasks WHERE queue = ");
/// sql.bind(Arg::Text("lms".into())).push(" AND id IN ").bind_list([Arg::Int(1), Arg::Int(2)]);
/// assert_eq!(sql.text, "SELECT id FROM coordinator_tasks WHERE queue = $1 AND id IN ($2, $3)");
/// ```
#[derive(Debug)]
pub struct Sql {
    dialect: Dialect,
    /// The statement.
    pub text: String,
    /// Its arguments, in placeholder order.
    pub args: Vec<Arg>,
    /// Whether the backend may keep it prepared for the next run (statements whose text
    /// varies with their data, such as multi-row inserts, should not crowd the cache).
    pub persistent: bool,
}

impl Sql {
    /// A statement starting with `text`.
    pub fn new(dialect: Dialect, text: &str) -> Self {
        Self {
            dialect,
            text: text.to_owned(),
            args: Vec::new(),
            persistent: true,
        }
    }

    /// The same statement, not kept prepared (its text varies from run to run).
    pub fn unprepared(mut self) -> Self {
        self.persistent = false;
        self
    }

    /// Its dialect.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Appends text.
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder for `arg`. Text is bound [`storable`]: the backends refuse (or
    /// truncate at) a NUL character, so one is stored escaped.
    pub fn bind(&mut self, arg: Arg) -> &mut Self {
        let arg = match arg {
            Arg::Text(s) if s.contains('\0') => Arg::Text(storable(&s)),
            Arg::OptText(Some(s)) if s.contains('\0') => Arg::OptText(Some(storable(&s))),
            other => other,
        };
        self.args.push(arg);
        match self.dialect {
            Dialect::Sqlite => self.text.push('?'),
            Dialect::Postgres => {
                self.text.push('$');
                self.text.push_str(&self.args.len().to_string());
            }
        }
        self
    }

    /// Appends `(p1, p2, …)`, a placeholder for each of `args` (which must not be empty).
    pub fn bind_list(&mut self, args: impl IntoIterator<Item = Arg>) -> &mut Self {
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

/// `text` as every backend can store it: each NUL character (which PostgreSQL refuses in text
/// and SQLite's functions read as the end of the text) written as the six characters
/// `\u0000`, the way JSON escapes it. The same text always gives the same result, so a unique
/// key or an inbox id that holds a NUL still deduplicates.
pub fn storable(text: &str) -> String {
    text.replace('\0', "\\u0000")
}

/// Milliseconds as stored (BIGINT).
pub fn ms_to_db(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_placeholders_are_question_marks() {
        let mut sql = Sql::new(Dialect::Sqlite, "x = ");
        sql.bind(Arg::Int(1))
            .push(" AND y IN ")
            .bind_list([Arg::Int(2), Arg::Int(3)]);
        assert_eq!(sql.text, "x = ? AND y IN (?, ?)");
        assert_eq!(sql.args.len(), 3);
    }

    #[test]
    fn text_with_a_nul_is_bound_escaped() {
        let mut sql = Sql::new(Dialect::Postgres, "x = ");
        sql.bind(Arg::Text("a\0b".into()))
            .push(", y = ")
            .bind(Arg::OptText(Some("\0".into())));
        assert_eq!(sql.args[0], Arg::Text("a\\u0000b".into()));
        assert_eq!(sql.args[1], Arg::OptText(Some("\\u0000".into())));
        assert_eq!(storable("plain"), "plain");
    }

    #[test]
    fn times_beyond_i64_are_clamped() {
        assert_eq!(ms_to_db(u64::MAX), i64::MAX);
        assert_eq!(ms_to_db(5), 5);
    }
}
