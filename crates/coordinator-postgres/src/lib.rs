//! The coordinator's PostgreSQL backend: one database for many processes on many machines.
//!
//! Claims are one statement with `FOR UPDATE SKIP LOCKED`, so workers in any number of
//! processes share the queue without waiting for each other; migrations run under an advisory
//! lock; enqueues made one at a time use a connection kept for them. Everything else is the
//! shared SQL of `coordinator-sql`.

mod claim;
mod conn;
mod enqueue;
mod migrate;

use std::str::FromStr;

use coordinator::dispatch_log::DurableDispatch;
use coordinator::store::migrate::{AppliedMigration, Planned, Recorded};
use coordinator::store::{Store, StoreError, redact_url};
use coordinator::task::{ClaimedTask, NewTask};
use coordinator_sql::conn::pool_options;
use coordinator_sql::tasks::claim::Claim;
use coordinator_sql::tasks::enqueue::{DISPATCH_ACTION, insert_dispatch};
use coordinator_sql::{Dialect, SqlDriver, SqlStore};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool, Postgres};
use uuid::Uuid;

pub use conn::Tx;

use crate::conn::Conn;
use crate::enqueue::Kept;

/// The backend's name, as `[storage] url` schemes and migrations name it.
pub const NAME: &str = Dialect::Postgres.backend();

/// A store on a PostgreSQL database.
pub type PostgresStore = SqlStore<PostgresDriver>;

/// Connects to the PostgreSQL database `url` names (`postgres://` or `postgresql://`), with a
/// pool of at most `max_connections` (and one more kept for enqueues). It fails at once when
/// the server is down or refuses the credentials. Errors never show the URL's password.
pub async fn connect(url: &str, max_connections: u32) -> Result<Store, StoreError> {
    let options = PgConnectOptions::from_str(url).map_err(|source| StoreError::InvalidUrl {
        backend: NAME,
        url: redact_url(url),
        source: source.into(),
    })?;
    let connect_error = |source: sqlx::Error| StoreError::Connect {
        backend: NAME,
        url: redact_url(url),
        source: source.into(),
    };
    // One direct connection first: it fails at once when the server is down or refuses us,
    // where the pool would keep retrying until its acquire timeout.
    PgConnection::connect_with(&options)
        .await
        .map_err(connect_error)?
        .close()
        .await
        .map_err(connect_error)?;
    let pool = pool_options::<Postgres>(max_connections).connect_lazy_with(options);
    Ok(Store::new(PostgresStore::new(PostgresDriver {
        pool,
        kept: Kept::default(),
    })))
}

/// The connection pool of `store`, when it is a PostgreSQL store, for an extension's own
/// queries.
pub fn pool(store: &Store) -> Option<&PgPool> {
    store
        .backend_as::<PostgresStore>()
        .map(|s| &s.driver().pool)
}

/// The PostgreSQL driver: a pool, and the connection kept for enqueues.
pub struct PostgresDriver {
    pool: PgPool,
    kept: Kept,
}

impl std::fmt::Debug for PostgresDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresDriver").finish_non_exhaustive()
    }
}

impl PostgresDriver {
    async fn conn(&self, action: &'static str) -> Result<Conn, StoreError> {
        let conn = self
            .pool
            .acquire()
            .await
            .map_err(StoreError::database(NAME, action))?;
        Ok(Conn(conn))
    }
}

impl SqlDriver for PostgresDriver {
    const DIALECT: Dialect = Dialect::Postgres;
    type Conn = Conn;
    type Tx = Tx;

    async fn read(&self, action: &'static str) -> Result<Conn, StoreError> {
        self.conn(action).await
    }

    async fn write(&self, action: &'static str) -> Result<Conn, StoreError> {
        self.conn(action).await
    }

    async fn begin(&self, action: &'static str) -> Result<Tx, StoreError> {
        let tx = self
            .pool
            .begin()
            .await
            .map_err(StoreError::database(NAME, action))?;
        Ok(Tx(tx))
    }

    async fn commit(tx: Tx) -> Result<(), sqlx::Error> {
        tx.0.commit().await
    }

    async fn rollback(tx: Tx) -> Result<(), sqlx::Error> {
        tx.0.rollback().await
    }

    async fn enqueue(&self, task: &NewTask) -> Result<Uuid, StoreError> {
        enqueue::enqueue(&self.pool, &self.kept, task).await
    }

    async fn enqueue_dispatch(&self, dispatch: &DurableDispatch) -> Result<bool, StoreError> {
        let mut tx = self.begin(DISPATCH_ACTION).await?;
        let stored = insert_dispatch(&mut tx, dispatch).await?;
        tx.0.commit()
            .await
            .map_err(StoreError::database(NAME, DISPATCH_ACTION))?;
        Ok(stored)
    }

    async fn claim(&self, claim: Claim<'_>) -> Result<Vec<ClaimedTask>, StoreError> {
        let mut conn = self.conn(coordinator_sql::tasks::claim::ACTION).await?;
        claim::claim(&mut conn, claim).await
    }

    async fn apply_migrations(
        &self,
        plan: &[Planned],
    ) -> Result<Vec<AppliedMigration>, StoreError> {
        migrate::apply_migrations(&self.pool, plan).await
    }

    async fn recorded_migrations(&self) -> Result<Vec<Recorded>, StoreError> {
        migrate::recorded_migrations(&self.pool).await
    }

    async fn close(&self) {
        if let Some((conn, _)) = self.kept.lock().await.take() {
            let _ = conn.close().await;
        }
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connection_error_hides_the_password() {
        // Port 1 on loopback: nothing listens there, so the connection is refused quickly.
        let e = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            connect("postgres://app:hunter2@127.0.0.1:1/cc", 1),
        )
        .await
        .expect("connect gives up within its acquire timeout")
        .unwrap_err()
        .to_string();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("127.0.0.1:1/cc"), "{e}");
    }
}
