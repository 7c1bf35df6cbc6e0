//! SQLite connections and rows as the shared queries use them ([`SqlConn`], [`RowRead`]).

use coordinator::store::StoreError;
use coordinator_sql::conn::{column_error, parse_id};
use coordinator_sql::{Arg, Dialect, RowMap, RowRead, Sql, SqlConn};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Executor as _, Row, Sqlite, SqliteConnection};
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
    q
}

async fn execute(conn: &mut SqliteConnection, sql: &Sql) -> Result<u64, sqlx::Error> {
    Ok(query(sql).execute(conn).await?.rows_affected())
}

async fn fetch<T>(
    conn: &mut SqliteConnection,
    sql: &Sql,
    map: RowMap<'_, T>,
) -> Result<Result<Vec<T>, StoreError>, sqlx::Error> {
    let rows = query(sql).fetch_all(conn).await?;
    Ok(rows.iter().map(|row| map(&Lite(row))).collect())
}

/// Runs several statements (`raw_sql`'s generic `execute` trips the compiler's check that the
/// future is `Send`; the executor's own method does not).
async fn script(conn: &mut SqliteConnection, sql: &str) -> Result<(), sqlx::Error> {
    conn.execute(sqlx::raw_sql(sql)).await.map(drop)
}

impl SqlConn for Conn {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }
    async fn execute_raw(&mut self, sql: &Sql) -> Result<u64, sqlx::Error> {
        execute(self.raw(), sql).await
    }
    async fn fetch_raw<T: Send>(
        &mut self,
        sql: &Sql,
        map: RowMap<'_, T>,
    ) -> Result<Result<Vec<T>, StoreError>, sqlx::Error> {
        fetch(self.raw(), sql, map).await
    }
    async fn execute_script(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        script(self.raw(), sql).await
    }
}

impl SqlConn for Tx {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }
    async fn execute_raw(&mut self, sql: &Sql) -> Result<u64, sqlx::Error> {
        execute(self.connection(), sql).await
    }
    async fn fetch_raw<T: Send>(
        &mut self,
        sql: &Sql,
        map: RowMap<'_, T>,
    ) -> Result<Result<Vec<T>, StoreError>, sqlx::Error> {
        fetch(self.connection(), sql, map).await
    }
    async fn execute_script(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        script(self.connection(), sql).await
    }
}

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
