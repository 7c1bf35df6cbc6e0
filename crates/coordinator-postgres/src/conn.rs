//! PostgreSQL connections and rows as the shared queries use them ([`SqlConn`], [`RowRead`]).

use coordinator::store::StoreError;
use coordinator_sql::conn::column_error;
use coordinator_sql::{Arg, Dialect, RowRead, Sql};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{PgConnection, Postgres, Row};
use uuid::Uuid;

/// A pooled connection, as the shared queries use it.
pub struct Conn(pub(crate) PoolConnection<Postgres>);

/// An open transaction on a pooled connection; rolled back if dropped before it commits.
///
/// An extension's own queries in a [`StoreTx`](coordinator::store::StoreTx) run on its
/// connection: `tx.backend_tx::<coordinator_postgres::Tx>().map(|tx| tx.connection())`.
#[derive(Debug)]
pub struct Tx(pub(crate) sqlx::Transaction<'static, Postgres>);

impl Tx {
    /// The connection this transaction runs on.
    pub fn connection(&mut self) -> &mut PgConnection {
        &mut self.0
    }
}

/// `sql` with its arguments bound.
pub(crate) fn query(sql: &Sql) -> sqlx::query::Query<'_, Postgres, PgArguments> {
    let mut q = sqlx::query(&sql.text);
    for arg in &sql.args {
        q = match arg {
            Arg::Text(s) => q.bind(s.as_str()),
            Arg::Int(i) => q.bind(*i),
            Arg::Id(id) => q.bind(*id),
            Arg::OptText(s) => q.bind(s.as_deref()),
            Arg::OptId(id) => q.bind(*id),
        };
    }
    q.persistent(sql.persistent)
}

coordinator_sql::impl_sql_conn!(Conn, Dialect::Postgres, query, Pg, |this| &mut *this.0);
coordinator_sql::impl_sql_conn!(Tx, Dialect::Postgres, query, Pg, |this| &mut *this.0);

/// A connection taken out of the pool (the one kept for enqueues).
pub(crate) struct Detached<'c>(pub(crate) &'c mut PgConnection);

coordinator_sql::impl_sql_conn!(Detached<'_>, Dialect::Postgres, query, Pg, |this| {
    &mut *this.0
});

/// A PostgreSQL row, read by column name.
struct Pg<'r>(&'r PgRow);

impl RowRead for Pg<'_> {
    fn text(&self, column: &str) -> Result<String, StoreError> {
        self.0.try_get(column).map_err(|e| column_error(column, e))
    }
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        self.0.try_get(column).map_err(|e| column_error(column, e))
    }
    fn int(&self, column: &str) -> Result<i64, StoreError> {
        self.0
            .try_get::<i64, _>(column)
            .or_else(|_| self.0.try_get::<i32, _>(column).map(i64::from))
            .map_err(|e| column_error(column, e))
    }
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        self.0
            .try_get::<Option<i64>, _>(column)
            .or_else(|_| {
                self.0
                    .try_get::<Option<i32>, _>(column)
                    .map(|v| v.map(i64::from))
            })
            .map_err(|e| column_error(column, e))
    }
    fn id(&self, column: &str) -> Result<Uuid, StoreError> {
        self.0.try_get(column).map_err(|e| column_error(column, e))
    }
    fn opt_id(&self, column: &str) -> Result<Option<Uuid>, StoreError> {
        self.0.try_get(column).map_err(|e| column_error(column, e))
    }
}
