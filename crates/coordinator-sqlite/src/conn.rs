//! SQLite connections and rows as the shared queries use them ([`SqlConn`], [`RowRead`]).

use coordinator::store::StoreError;
use coordinator_sql::conn::{column_error, parse_id};
use coordinator_sql::{Arg, Dialect, RowRead, Sql};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Row, Sqlite, SqliteConnection};
use uuid::Uuid;

use crate::writer::{Tx, WriteGuard};

/// A connection for reads (a pooled reader) or writes (the writer), as the shared queries use
/// it.
pub struct Conn(Kind);

enum Kind {
    Read(PoolConnection<Sqlite>),
    Write(WriteGuard),
}

impl Conn {
    pub(crate) fn read(conn: PoolConnection<Sqlite>) -> Self {
        Self(Kind::Read(conn))
    }

    pub(crate) fn write(conn: WriteGuard) -> Self {
        Self(Kind::Write(conn))
    }

    /// The writer back, when this is the writer.
    pub(crate) fn into_writer(self) -> Option<WriteGuard> {
        match self.0 {
            Kind::Write(c) => Some(c),
            Kind::Read(_) => None,
        }
    }

    fn raw(&mut self) -> &mut SqliteConnection {
        match &mut self.0 {
            Kind::Read(c) => c,
            Kind::Write(c) => c,
        }
    }
}

/// `sql` with its arguments bound (ids as their hyphenated text, which sorts like the UUID).
pub(crate) fn query(sql: &Sql) -> sqlx::query::Query<'_, Sqlite, SqliteArguments<'_>> {
    let mut q = sqlx::query(&sql.text);
    for arg in &sql.args {
        q = match arg {
            Arg::Text(s) => q.bind(s.as_str()),
            Arg::Int(i) => q.bind(*i),
            Arg::Id(id) => q.bind(id.hyphenated().to_string()),
            Arg::OptText(s) => q.bind(s.as_deref()),
            Arg::OptId(id) => q.bind(id.map(|id| id.hyphenated().to_string())),
        };
    }
    q.persistent(sql.persistent)
}

coordinator_sql::impl_sql_conn!(Conn, Dialect::Sqlite, query, Lite, |this| this.raw());
coordinator_sql::impl_sql_conn!(Tx, Dialect::Sqlite, query, Lite, |this| this.connection());

/// A SQLite row, read by column name.
struct Lite<'r>(&'r SqliteRow);

impl RowRead for Lite<'_> {
    fn text(&self, column: &str) -> Result<String, StoreError> {
        self.0.try_get(column).map_err(|e| column_error(column, e))
    }
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        self.0.try_get(column).map_err(|e| column_error(column, e))
    }
    fn int(&self, column: &str) -> Result<i64, StoreError> {
        self.0.try_get(column).map_err(|e| column_error(column, e))
    }
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        self.0.try_get(column).map_err(|e| column_error(column, e))
    }
    fn id(&self, column: &str) -> Result<Uuid, StoreError> {
        parse_id(column, &self.text(column)?)
    }
    fn opt_id(&self, column: &str) -> Result<Option<Uuid>, StoreError> {
        self.opt_text(column)?
            .map(|text| parse_id(column, &text))
            .transpose()
    }
}
