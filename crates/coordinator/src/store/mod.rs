//! Storage: one interface over two real backends, SQLite (the embedded default: a local file) and
//! PostgreSQL (for many processes on many machines).
//!
//! A [`Store`] is a connection pool of either kind. It runs versioned migrations (the framework's
//! own, then each extension's: see [`Store::migrate`]), keeps the dispatch log
//! ([`StoredDispatch`]), and holds the durable task queue ([`StoredTask`], [`Store::claim_tasks`],
//! [`StoreTx`] for enqueueing in the same transaction as other writes). Extensions that need their own queries reach the pool with
//! [`Store::sqlite_pool`] or [`Store::postgres_pool`]. See
//! `docs/decisions/0005-storage-interface.md` for why it is shaped this way.
//!
//! ```
//! use coordinator::config::{Secret, StorageConfig};
//! use coordinator::store::{Backend, DispatchQuery, Store};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let config = StorageConfig {
//!     url: Secret::new(format!("sqlite://{}/data/coordinator.db", dir.path().display())),
//!     max_connections: 2,
//! };
//! let store = Store::connect(&config).await.unwrap();
//! assert_eq!(store.backend(), Backend::Sqlite);
//! let applied = store.migrate(&[]).await.unwrap();
//! assert_eq!(applied[0].extension, "coordinator");
//! assert!(store.list_dispatches(&DispatchQuery::default()).await.unwrap().items.is_empty());
//! store.close().await;
//! # });
//! ```

mod dispatches;
mod error;
mod migrate;
mod postgres;
mod sqlite;
mod tasks;

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use crate::config::StorageConfig;
use crate::migration::Migration;

pub use dispatches::{
    DispatchPage, DispatchQuery, DispatchStatus, StoredDispatch, StoredHandlerRun,
};
pub use error::StoreError;
pub use tasks::{
    AttemptStatus, ClaimedTask, NewTask, StoreTx, StoredTask, TaskAttempt, TaskCount, TaskPage,
    TaskQuery, TaskState,
};

/// Which database a [`Store`] uses. Displays and serializes as `sqlite` or `postgresql`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Backend {
    /// SQLite: a local file (`sqlite://<path>`).
    #[serde(rename = "sqlite")]
    Sqlite,
    /// PostgreSQL (`postgres://` or `postgresql://`).
    #[serde(rename = "postgresql")]
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgresql",
        })
    }
}

/// The coordinator's database: a pool of SQLite or PostgreSQL connections. Cheap to clone (clones
/// share the pool).
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// Woken when this process enqueues a task, so that its workers claim it at once.
    pub(crate) enqueued: Arc<tokio::sync::Notify>,
    /// SQLite: enqueues waiting to be written together.
    enqueues: Arc<std::sync::Mutex<tasks::PendingEnqueues>>,
    /// PostgreSQL: a connection kept for enqueues made one at a time.
    pg_enqueuer: Arc<tokio::sync::Mutex<Option<(sqlx::PgConnection, std::time::Instant)>>>,
}

#[derive(Clone)]
enum Pool {
    Sqlite(sqlite::SqlitePools),
    Postgres(sqlx::PgPool),
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

/// A migration that [`Store::migrate`] applied.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AppliedMigration {
    /// The extension that owns it (`coordinator` for the framework's own tables).
    pub extension: String,
    /// Its version.
    pub version: u32,
    /// Its name.
    pub name: String,
}

/// A migration that is not applied yet.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PendingMigration {
    /// The extension that owns it (`coordinator` for the framework's own tables).
    pub extension: String,
    /// Its version.
    pub version: u32,
    /// Its name.
    pub name: String,
}

impl Store {
    /// Opens the database `config.url` names: `sqlite://<path>` (the folder and the file are
    /// created if missing; WAL journal, `synchronous=NORMAL`, `max_connections` readers and one
    /// writer through which every write of the coordinator queues, see
    /// `docs/decisions/0009-sqlite-single-writer.md`) or
    /// `postgres://…` / `postgresql://…`. Errors never show the URL's credentials.
    pub async fn connect(config: &StorageConfig) -> Result<Store, StoreError> {
        let url = config.url.expose();
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        let max_connections = config.max_connections.max(1);
        let pool = match scheme {
            "sqlite" => Pool::Sqlite(sqlite::connect(url, max_connections).await?),
            "postgres" | "postgresql" => {
                Pool::Postgres(postgres::connect(url, max_connections).await?)
            }
            _ => {
                return Err(StoreError::UnsupportedUrl {
                    scheme: if url.contains(':') {
                        scheme.to_owned()
                    } else {
                        "(none)".to_owned()
                    },
                });
            }
        };
        Ok(Store::new(pool))
    }

    fn new(pool: Pool) -> Store {
        Store {
            pool,
            enqueued: Arc::new(tokio::sync::Notify::new()),
            enqueues: Arc::default(),
            pg_enqueuer: Arc::default(),
        }
    }

    /// A SQLite store at `url` whose connections open when first used (the test harness's:
    /// it is built in synchronous code, within a Tokio runtime).
    pub(crate) fn sqlite_lazy(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        Ok(Store::new(Pool::Sqlite(sqlite::connect_lazy(
            url,
            max_connections.max(1),
        )?)))
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies the framework's own migrations, then `migrations` (extensions in the order they
    /// first appear, each extension's versions ascending), each version once and each in its own
    /// transaction, and records them in `coordinator_migrations`. Returns those it applied (none
    /// when the database is up to date).
    ///
    /// Refuses, before applying anything, if a migration that was applied has different SQL
    /// now. Concurrent processes migrate safely: PostgreSQL takes an advisory lock for the whole
    /// run, SQLite applies each migration under a write lock and re-checks it there.
    pub async fn migrate(
        &self,
        migrations: &[Migration],
    ) -> Result<Vec<AppliedMigration>, StoreError> {
        let plan = migrate::plan(self.backend(), migrations)?;
        match &self.pool {
            Pool::Sqlite(pools) => sqlite::migrate(&pools.write, &plan).await,
            Pool::Postgres(pool) => postgres::migrate(pool, &plan).await,
        }
    }

    /// The migrations [`Store::migrate`] would apply, in order, without applying any. Refuses,
    /// like `migrate`, if an applied migration was edited.
    pub async fn pending_migrations(
        &self,
        migrations: &[Migration],
    ) -> Result<Vec<PendingMigration>, StoreError> {
        let plan = migrate::plan(self.backend(), migrations)?;
        let recorded = match &self.pool {
            Pool::Sqlite(pools) => sqlite::recorded_migrations(&pools.read).await?,
            Pool::Postgres(pool) => postgres::recorded_migrations(pool).await?,
        };
        Ok(migrate::pending(&plan, &recorded)?
            .into_iter()
            .map(|p| PendingMigration {
                extension: p.extension.to_owned(),
                version: p.version,
                name: p.name.to_owned(),
            })
            .collect())
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Sqlite(pools) => sqlite::ping(&pools.read).await,
            Pool::Postgres(pool) => postgres::ping(pool).await,
        }
    }

    /// Stores dispatch reports, in one transaction with multi-row inserts. A dispatch whose id
    /// is already stored is left as it is, so retrying a batch is safe.
    pub async fn insert_dispatches(&self, batch: &[StoredDispatch]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        const INSERT: &str = "store dispatch reports";
        let statements = dispatches::insert_sql(self.backend(), batch)?;
        match &self.pool {
            Pool::Sqlite(pools) => {
                sqlite::execute_in_transaction(&pools.write, INSERT, &statements).await
            }
            Pool::Postgres(pool) => {
                postgres::execute_in_transaction(pool, INSERT, &statements).await
            }
        }
        .map(|_| ())
    }

    /// One page of stored dispatches matching `query`, newest first. Pass the page's
    /// `next_before` as the next query's `before` to read on.
    pub async fn list_dispatches(&self, query: &DispatchQuery) -> Result<DispatchPage, StoreError> {
        let (sql, limit) = dispatches::list_sql(self.backend(), query);
        let items = match &self.pool {
            Pool::Sqlite(pools) => sqlite::fetch_dispatches(&pools.read, &sql).await?,
            Pool::Postgres(pool) => postgres::fetch_dispatches(pool, &sql).await?,
        };
        Ok(dispatches::page(items, limit))
    }

    /// One stored dispatch, by id.
    pub async fn get_dispatch(&self, id: Uuid) -> Result<Option<StoredDispatch>, StoreError> {
        let sql = dispatches::get_sql(self.backend(), id);
        let items = match &self.pool {
            Pool::Sqlite(pools) => sqlite::fetch_dispatches(&pools.read, &sql).await?,
            Pool::Postgres(pool) => postgres::fetch_dispatches(pool, &sql).await?,
        };
        Ok(items.into_iter().next())
    }

    /// Deletes the dispatches sent before `older_than_ms` (milliseconds since the Unix epoch)
    /// and returns how many there were.
    pub async fn purge_dispatches(&self, older_than_ms: u64) -> Result<u64, StoreError> {
        const PURGE: &str = "purge old dispatch reports";
        let statements = dispatches::purge_sql(self.backend(), older_than_ms);
        let affected = match &self.pool {
            Pool::Sqlite(pools) => {
                sqlite::execute_in_transaction(&pools.write, PURGE, &statements).await?
            }
            Pool::Postgres(pool) => {
                postgres::execute_in_transaction(pool, PURGE, &statements).await?
            }
        };
        Ok(affected.last().copied().unwrap_or(0))
    }

    /// The SQLite pool, for an extension's own queries, when this is SQLite.
    ///
    /// It is the pool of readers. The coordinator makes its own writes on one connection of
    /// its own, so a write on this pool waits for SQLite's write lock (up to the 5 s busy
    /// timeout) while the coordinator writes; write in a [`StoreTx`] instead, which queues
    /// with the coordinator's writes.
    pub fn sqlite_pool(&self) -> Option<&sqlx::SqlitePool> {
        match &self.pool {
            Pool::Sqlite(pools) => Some(&pools.read),
            Pool::Postgres(_) => None,
        }
    }

    /// The PostgreSQL pool, for an extension's own queries, when this is PostgreSQL.
    pub fn postgres_pool(&self) -> Option<&sqlx::PgPool> {
        match &self.pool {
            Pool::Postgres(pool) => Some(pool),
            Pool::Sqlite(_) => None,
        }
    }

    /// Closes every connection, waiting for those in use to be returned. Clones are closed too.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(pools) => pools.close().await,
            Pool::Postgres(pool) => {
                if let Some((conn, _)) = self.pg_enqueuer.lock().await.take() {
                    let _ = sqlx::Connection::close(conn).await;
                }
                pool.close().await;
            }
        }
    }

    /// Wakes a worker of this process waiting for tasks (after a task was enqueued here).
    pub(crate) fn notify_enqueued(&self) {
        self.enqueued.notify_one();
    }

    /// Resolves when a task was enqueued in this process since the last call (or now, if one
    /// was enqueued before it was awaited).
    pub(crate) async fn enqueued(&self) {
        self.enqueued.notified().await;
    }
}

/// A connection idle for this long is checked (pinged) before it is used again.
pub(crate) const PING_IDLE_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// The options every pool starts from.
///
/// sqlx pings a connection before handing it out; that is a round trip to the server (or to
/// SQLite's connection thread) on every operation, for nothing when the connection was in use a
/// moment ago. Only connections idle for a second or more are pinged (one that the server
/// closed meanwhile is then replaced instead of failing the operation).
fn pool_options<DB: sqlx::Database>() -> sqlx::pool::PoolOptions<DB> {
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
}

/// Now, in milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `url` without its password and query (either may hold a secret), for messages.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.split(['?', '#']).next().unwrap_or_default().to_owned();
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    format!("{scheme}://{authority}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn backends_display_their_url_names() {
        assert_eq!(Backend::Sqlite.to_string(), "sqlite");
        assert_eq!(Backend::Postgres.to_string(), "postgresql");
        assert_eq!(
            serde_json::to_string(&Backend::Postgres).unwrap(),
            "\"postgresql\""
        );
    }

    #[test]
    fn redacted_urls_keep_no_password() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db.internal:5432/cc?sslmode=require&password=x"),
            "postgres://app:***@db.internal:5432/cc"
        );
        assert_eq!(
            redact_url("postgresql://app@db/cc"),
            "postgresql://app@db/cc"
        );
        assert_eq!(
            redact_url("sqlite://data/c.db?mode=rwc"),
            "sqlite://data/c.db"
        );
        assert_eq!(redact_url("postgres://h"), "postgres://h");
    }

    #[tokio::test]
    async fn an_unknown_scheme_is_refused_without_printing_the_url() {
        let config = StorageConfig {
            url: Secret::new("mysql://root:hunter2@localhost/cc"),
            max_connections: 1,
        };
        let e = Store::connect(&config).await.unwrap_err().to_string();
        assert!(e.contains("\"mysql\""), "{e}");
        assert!(e.contains("sqlite://") && e.contains("postgres://"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");

        let config = StorageConfig {
            url: Secret::new("just-a-path.db"),
            max_connections: 1,
        };
        let e = Store::connect(&config).await.unwrap_err().to_string();
        assert!(e.contains("(none)"), "{e}");
    }

    #[tokio::test]
    async fn a_sqlite_folder_that_cannot_be_created_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-folder");
        std::fs::write(&file, "").unwrap();
        let config = StorageConfig {
            url: Secret::new(format!("sqlite://{}/sub/c.db", file.display())),
            max_connections: 1,
        };
        let e = Store::connect(&config).await.unwrap_err();
        assert!(matches!(e, StoreError::CreateDir { .. }), "{e:?}");
        assert!(e.to_string().contains("not-a-folder/sub"), "{e}");
    }

    #[tokio::test]
    async fn an_in_memory_sqlite_database_is_refused_with_the_reason() {
        for url in ["sqlite::memory:", "sqlite://x.db?mode=memory"] {
            let config = StorageConfig {
                url: Secret::new(url.to_owned()),
                max_connections: 1,
            };
            let e = Store::connect(&config).await.unwrap_err();
            assert!(matches!(e, StoreError::InvalidUrl { .. }), "{e:?}");
            assert!(
                e.to_string()
                    .contains("in-memory database loses every task"),
                "{e}"
            );
        }
    }

    #[tokio::test]
    async fn a_postgres_connection_error_hides_the_password() {
        // Port 1 on loopback: nothing listens there, so the connection is refused quickly.
        let config = StorageConfig {
            url: Secret::new("postgres://app:hunter2@127.0.0.1:1/cc"),
            max_connections: 1,
        };
        let e = tokio::time::timeout(std::time::Duration::from_secs(60), Store::connect(&config))
            .await
            .expect("connect gives up within its acquire timeout")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("127.0.0.1:1/cc"), "{e}");
    }
}
