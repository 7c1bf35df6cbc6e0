//! PostgreSQL connections and rows as the shared queries use them ([`SqlConn`], [`RowRead`]).

use coordinator::store::StoreError;
use coordinator_sql::conn::column_error;
use coordinator_sql::{Arg, Dialect, RowMap, RowRead, Sql, SqlConn};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{Executor as _, PgConnection, Postgres, Row};
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
    q
}

async fn execute(conn: &mut PgConnection, sql: &Sql) -> Result<u64, sqlx::Error> {
    Ok(query(sql).execute(conn).await?.rows_affected())
}

async fn fetch<T>(
    conn: &mut PgConnection,
    sql: &Sql,
    map: RowMap<'_, T>,
) -> Result<Result<Vec<T>, StoreError>, sqlx::Error> {
    let rows = query(sql).fetch_all(conn).await?;
    Ok(rows.iter().map(|row| map(&Pg(row))).collect())
}

/// Runs several statements (`raw_sql`'s generic `execute` trips the compiler's check that the
/// future is `Send`; the executor's own method does not).
async fn script(conn: &mut PgConnection, sql: &str) -> Result<(), sqlx::Error> {
    conn.execute(sqlx::raw_sql(sql)).await.map(drop)
}

macro_rules! pg_conn {
    ($ty:ty, |$this:ident| $conn:expr) => {
        impl SqlConn for $ty {
            fn dialect(&self) -> Dialect {
                Dialect::Postgres
            }
            async fn execute_raw(&mut self, sql: &Sql) -> Result<u64, sqlx::Error> {
                let $this = self;
                execute($conn, sql).await
            }
            async fn fetch_raw<T: Send>(
                &mut self,
                sql: &Sql,
                map: RowMap<'_, T>,
            ) -> Result<Result<Vec<T>, StoreError>, sqlx::Error> {
                let $this = self;
                fetch($conn, sql, map).await
            }
            async fn execute_script(&mut self, sql: &str) -> Result<(), sqlx::Error> {
                let $this = self;
                script($conn, sql).await
            }
        }
    };
}

pg_conn!(Conn, |this| &mut *this.0);
pg_conn!(Tx, |this| &mut *this.0);

/// A connection taken out of the pool (the one kept for enqueues).
pub(crate) struct Detached<'c>(pub(crate) &'c mut PgConnection);

pg_conn!(Detached<'_>, |this| &mut *this.0);

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
