//! A connection of any SQL backend, as the shared queries use it: [`SqlConn`] to run
//! statements, [`RowRead`] to read the rows they return.
//!
//! Each backend implements both for its own connection and row types; the queries of
//! [`crate::tasks`], [`crate::inbox`] and [`crate::dispatches`] are written once against them.

use std::future::Future;

use coordinator::store::StoreError;
use uuid::Uuid;

use crate::sql::{Dialect, Sql};

/// A row-mapping function: reads one row into a `T`.
pub type RowMap<'m, T> = &'m (dyn Fn(&dyn RowRead) -> Result<T, StoreError> + Sync);

/// A connection (pooled, the writer, or an open transaction's) on which statements run.
pub trait SqlConn: Send {
    /// The dialect of this connection's database.
    fn dialect(&self) -> Dialect;

    /// Runs `sql`; returns the number of rows it changed. The driver's own error is returned
    /// as it is, for callers that tell its kinds apart (a unique violation).
    fn execute_raw(&mut self, sql: &Sql) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;

    /// Runs `sql` and reads every row it returns with `map`.
    fn fetch_raw<T: Send>(
        &mut self,
        sql: &Sql,
        map: RowMap<'_, T>,
    ) -> impl Future<Output = Result<Result<Vec<T>, StoreError>, sqlx::Error>> + Send;

    /// Runs several statements separated by `;`, without arguments (a migration).
    fn execute_script(&mut self, sql: &str)
    -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// A statement in this connection's dialect.
    fn sql(&self, text: &str) -> Sql {
        Sql::new(self.dialect(), text)
    }

    /// Runs `sql` as part of `action` (named in the error); returns the rows it changed.
    fn execute(
        &mut self,
        action: &'static str,
        sql: &Sql,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        let backend = self.dialect().backend();
        async move {
            self.execute_raw(sql)
                .await
                .map_err(|e| classify(backend, action, e))
        }
    }

    /// Runs `sql` as part of `action` and reads every row with `map`.
    fn fetch<T: Send>(
        &mut self,
        action: &'static str,
        sql: &Sql,
        map: RowMap<'_, T>,
    ) -> impl Future<Output = Result<Vec<T>, StoreError>> + Send {
        let backend = self.dialect().backend();
        async move {
            self.fetch_raw(sql, map)
                .await
                .map_err(|e| classify(backend, action, e))?
        }
    }
}

/// Reads the columns of a row of any backend by name (ids are TEXT on SQLite, UUID on
/// PostgreSQL; integers are BIGINT or INTEGER).
pub trait RowRead {
    /// A text column.
    fn text(&self, column: &str) -> Result<String, StoreError>;
    /// A text column that may be NULL.
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError>;
    /// An integer column.
    fn int(&self, column: &str) -> Result<i64, StoreError>;
    /// An integer column that may be NULL.
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError>;
    /// An id column.
    fn id(&self, column: &str) -> Result<Uuid, StoreError>;
    /// An id column that may be NULL.
    fn opt_id(&self, column: &str) -> Result<Option<Uuid>, StoreError>;
}

/// A driver's error as the store reports it: [`StoreError::Rejected`] when the database refused
/// the statement for the data it holds (a constraint, a value it cannot store), which trying
/// again would not change; [`StoreError::Database`] otherwise (the connection, a timeout, a
/// lock, a read-only file: the environment, which may be mended while the data waits).
pub fn classify(backend: &'static str, action: &'static str, e: sqlx::Error) -> StoreError {
    let rejected = match &e {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if backend == Dialect::Sqlite.backend() {
                // SQLite's extended result codes, whose low byte is the primary code: 18 too
                // big, 19 a constraint, 20 a datatype mismatch, 25 out of range.
                code.parse::<u32>()
                    .is_ok_and(|extended| matches!(extended & 0xff, 18 | 19 | 20 | 25))
            } else {
                // PostgreSQL's SQLSTATE (five characters, often all digits): class 22 data
                // exceptions (an invalid byte sequence, a value too long), class 23 integrity
                // constraint violations.
                code.starts_with("22") || code.starts_with("23")
            }
        }
        _ => false,
    };
    if rejected {
        StoreError::Rejected {
            action,
            backend,
            source: e.into(),
        }
    } else {
        StoreError::database(backend, action)(e)
    }
}

/// A stored task row that cannot be read back.
pub fn corrupt(id: &str, reason: impl Into<String>) -> StoreError {
    StoreError::CorruptTask {
        id: id.to_owned(),
        reason: reason.into(),
    }
}

/// A column that cannot be read as the type asked for.
pub fn column_error(column: &str, e: sqlx::Error) -> StoreError {
    corrupt("(unknown)", format!("column {column}: {e}"))
}

/// An id column's text as a UUID.
pub fn parse_id(column: &str, text: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(text).map_err(|e| corrupt(text, format!("{column} is not a UUID: {e}")))
}

/// A connection idle for this long is checked (pinged) before it is used again.
pub const PING_IDLE_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// The options every pool starts from.
///
/// sqlx pings a connection before handing it out; that is a round trip to the server (or to
/// SQLite's connection thread) on every operation, for nothing when the connection was in use
/// a moment ago. Only connections idle for [`PING_IDLE_AFTER`] or more are pinged (one that
/// the server closed meanwhile is then replaced instead of failing the operation).
pub fn pool_options<DB: sqlx::Database>(max_connections: u32) -> sqlx::pool::PoolOptions<DB> {
    sqlx::pool::PoolOptions::<DB>::new()
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IDLE_AFTER {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .max_connections(max_connections.max(1))
}

/// Implements [`SqlConn`] for a backend's connection type `$ty`, whose `&mut` driver
/// connection is `$conn` (with `$this` the `&mut self`), binding statements with `$query` and
/// reading rows through the [`RowRead`] wrapper `$row`. The backend crate must depend on
/// `sqlx` (with its driver) and `coordinator`.
#[macro_export]
macro_rules! impl_sql_conn {
    ($ty:ty, $dialect:expr, $query:path, $row:path, |$this:ident| $conn:expr) => {
        impl $crate::SqlConn for $ty {
            fn dialect(&self) -> $crate::Dialect {
                $dialect
            }

            async fn execute_raw(&mut self, sql: &$crate::Sql) -> Result<u64, ::sqlx::Error> {
                let $this = self;
                Ok($query(sql).execute($conn).await?.rows_affected())
            }

            async fn fetch_raw<T: Send>(
                &mut self,
                sql: &$crate::Sql,
                map: $crate::RowMap<'_, T>,
            ) -> Result<Result<Vec<T>, ::coordinator::store::StoreError>, ::sqlx::Error> {
                let $this = self;
                let rows = $query(sql).fetch_all($conn).await?;
                Ok(rows.iter().map(|row| map(&$row(row))).collect())
            }

            async fn execute_script(&mut self, sql: &str) -> Result<(), ::sqlx::Error> {
                let $this = self;
                // The executor's own method: `raw_sql`'s generic `execute` trips the compiler's
                // check that the future is `Send`.
                ::sqlx::Executor::execute($conn, ::sqlx::raw_sql(sql))
                    .await
                    .map(drop)
            }
        }
    };
}
