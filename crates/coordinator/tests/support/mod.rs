//! Helpers shared by the integration suites: a database per test on each backend, the macro that
//! runs a test function once per backend (`store.rs`, `tasks.rs`), and a log capture
//! (`logging.rs`, `task_logging.rs`).
//!
//! PostgreSQL is found at `COORDINATOR_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). When it cannot be reached its tests are skipped
//! with a note, unless `COORDINATOR_REQUIRE_POSTGRES=1`, which makes them fail instead.
#![allow(dead_code, unused_macros)] // Each suite uses a part.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use coordinator::store::Store;
use sqlx::Connection;

// ---------------------------------------------------------------------------------------------
// Databases

pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A database for one test, removed when dropped (even when the test panics).
pub struct TestDb {
    pub store: Store,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    _schema: Option<PgSchema>,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("a temporary folder");
        // A folder that does not exist yet: connect creates it.
        let url = format!("sqlite://{}/data/coordinator.db", dir.path().display());
        let store = connect(&url).await;
        assert_eq!(store.backend(), "sqlite");
        assert!(dir.path().join("data/coordinator.db").is_file());
        TestDb {
            store,
            url,
            _dir: Some(dir),
            _schema: None,
        }
    }

    /// `None` (with a note) when PostgreSQL is unreachable and not required.
    pub async fn postgres() -> Option<TestDb> {
        let admin_url = std::env::var("COORDINATOR_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
        let required = std::env::var("COORDINATOR_REQUIRE_POSTGRES").as_deref() == Ok("1");
        let mut admin = match tokio::time::timeout(
            Duration::from_secs(5),
            sqlx::PgConnection::connect(&admin_url),
        )
        .await
        {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return unreachable(required, &admin_url, &e.to_string()),
            Err(_) => return unreachable(required, &admin_url, "timed out after 5s"),
        };
        let schema = format!("cc_test_{}", unique());
        sqlx::raw_sql(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut admin)
            .await
            .expect("create a test schema");
        let _ = admin.close().await;
        let guard = PgSchema {
            admin_url: admin_url.clone(),
            schema: schema.clone(),
        };
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{sep}options=-c%20search_path%3D{schema}");
        let store = connect(&url).await;
        assert_eq!(store.backend(), "postgresql");
        let current: String = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(coordinator_postgres::pool(&store).unwrap())
            .await
            .unwrap();
        assert_eq!(
            current, schema,
            "the pool's connections use the test schema"
        );
        Some(TestDb {
            store,
            url,
            _dir: None,
            _schema: Some(guard),
        })
    }

    /// The URL of the PostgreSQL server itself, for an administrator's connection (`None` on
    /// SQLite).
    pub fn admin_url(&self) -> Option<&str> {
        self._schema.as_ref().map(|s| s.admin_url.as_str())
    }

    /// Another store on the same database with at most `max_connections`; on PostgreSQL its
    /// connections carry `application_name`, to find them in `pg_stat_activity`.
    pub async fn reopen_named(&self, application_name: &str, max_connections: u32) -> Store {
        let url = match self.store.backend() {
            "postgresql" => format!("{}&application_name={application_name}", self.url),
            _ => self.url.clone(),
        };
        connect_with(&url, max_connections).await
    }

    /// Another store on the same database (another process, say).
    pub async fn reopen(&self) -> Store {
        connect(&self.url).await
    }

    pub async fn migrated(&self) -> &Store {
        self.store.migrate(&[]).await.expect("migrations apply");
        &self.store
    }

    pub async fn finish(self) {
        self.store.close().await;
    }
}

pub async fn connect(url: &str) -> Store {
    connect_with(url, 4).await
}

/// A store on `url` with the backend of its scheme.
pub async fn connect_with(url: &str, max_connections: u32) -> Store {
    let connected = if url.starts_with("sqlite:") {
        coordinator_sqlite::connect(url, max_connections).await
    } else {
        coordinator_postgres::connect(url, max_connections).await
    };
    connected.unwrap_or_else(|e| panic!("{e}"))
}

fn unreachable(required: bool, url: &str, why: &str) -> Option<TestDb> {
    // Never print a password the URL may hold.
    let url = match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((user, host)) => format!(
                "{scheme}://{}@{host}",
                user.split(':').next().unwrap_or_default()
            ),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    };
    assert!(
        !required,
        "COORDINATOR_REQUIRE_POSTGRES=1 but PostgreSQL at {url} is unreachable: {why}; start it \
         or point COORDINATOR_TEST_POSTGRES_URL at a server"
    );
    eprintln!(
        "note: skipping a PostgreSQL test: {url} is unreachable ({why}); set \
         COORDINATOR_TEST_POSTGRES_URL, or COORDINATOR_REQUIRE_POSTGRES=1 to fail instead"
    );
    None
}

/// Drops its schema when dropped.
struct PgSchema {
    admin_url: String,
    schema: String,
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (url, schema) = (self.admin_url.clone(), self.schema.clone());
        // Drop cannot await: a thread with its own runtime does the work.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&url).await {
                    let _ = sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                        .execute(&mut conn)
                        .await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

/// Unique within the process and across processes (pid, clock, counter).
pub fn unique() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{}_{}_{}",
        std::process::id(),
        nanos,
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

// ---------------------------------------------------------------------------------------------
// Each test above, once per backend.

/// Defines, for each named `async fn(&TestDb)`, a test on SQLite (`sqlite::<name>`) and one on
/// PostgreSQL (`postgres::<name>`). With `multi_thread:` first, the tests run on a
/// multi-threaded runtime.
macro_rules! on_each_backend {
    (multi_thread: $($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = $crate::support::TestDb::sqlite().await;
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(db) = $crate::support::TestDb::postgres().await else {
                        return;
                    };
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
    };
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = $crate::support::TestDb::sqlite().await;
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(db) = $crate::support::TestDb::postgres().await else {
                        return;
                    };
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Logs

/// A `tracing` writer into a shared buffer, to assert on what was logged.
#[derive(Clone, Default)]
pub struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
