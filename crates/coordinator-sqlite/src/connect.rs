//! Opening a SQLite database: the file (and its folder), WAL mode, a pool of readers and the
//! writer, and the background checkpointer.

use std::str::FromStr;
use std::time::Duration;

use coordinator::store::{StoreError, redact_url};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};

use coordinator_sql::conn::pool_options;

use crate::NAME;
use crate::writer::{BUSY_TIMEOUT, Writer};

/// The connections of one SQLite database: a pool of readers, and one writer.
#[derive(Clone, Debug)]
pub(crate) struct Pools {
    pub(crate) read: SqlitePool,
    pub(crate) write: Writer,
}

impl Pools {
    pub(crate) async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

/// Whether [`open`] may create the file (and its folder).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Create {
    /// Create what is missing (`serve`, `worker`, `migrate`).
    IfMissing,
    /// The database must exist (commands that only read it).
    Never,
}

/// Opens the database at `url` now: the writer first (it creates the file and sets WAL mode
/// before readers open it), then one reader; then checks that the file can be written, so that
/// a read-only file refuses to start instead of losing every write.
pub(crate) async fn open(
    url: &str,
    max_connections: u32,
    create: Create,
) -> Result<Pools, StoreError> {
    let pools = open_with(url, max_connections, create)?;
    let connect_error = |source: sqlx::Error| StoreError::Connect {
        backend: NAME,
        url: redact_url(url),
        source: source.into(),
    };
    match pools.write.lock("open the database").await {
        Ok(writer) => drop(writer),
        Err(StoreError::Database { source, .. }) if cannot_open(&*source) => {
            return Err(StoreError::Unusable {
                backend: NAME,
                location: file_of(url),
                problem: format!("it cannot be opened or created ({source})"),
                fix: "check that its folder exists and that this user may write the file, its \
                      -wal and -shm files and the folder (SQLite creates files beside it), or \
                      point [storage] url (COORDINATOR__STORAGE__URL) at a writable location",
            });
        }
        Err(StoreError::Database { source, .. }) => {
            return Err(StoreError::Connect {
                backend: NAME,
                url: redact_url(url),
                source,
            });
        }
        Err(e) => return Err(e),
    }
    pools.read.acquire().await.map_err(connect_error)?;
    writable(&pools, url).await?;
    Ok(pools)
}

/// Whether SQLite could not open (or create) the file: `SQLITE_CANTOPEN` (14), whatever its
/// extended code.
fn cannot_open(source: &(dyn std::error::Error + 'static)) -> bool {
    match source.downcast_ref::<sqlx::Error>() {
        Some(sqlx::Error::Database(db)) => db
            .code()
            .and_then(|code| code.parse::<u32>().ok())
            .is_some_and(|code| code & 0xff == 14),
        _ => false,
    }
}

/// Refuses a database that opens but cannot be written (a read-only file or folder): SQLite
/// then opens it read-only and fails every write later.
///
/// Taking the write lock proves nothing: SQLite opens a file it may not write read-only and
/// still grants `BEGIN IMMEDIATE` (in WAL mode that lock lives in the `-shm` file, which may be
/// writable). So the probe writes: it sets the header's `user_version` to the value it has,
/// then rolls back, which changes nothing on a writable file and fails on a read-only one.
async fn writable(pools: &Pools, url: &str) -> Result<(), StoreError> {
    let mut writer = pools
        .write
        .lock("check that the database can be written")
        .await?;
    let probe = async {
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&mut *writer)
            .await?;
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *writer).await?;
        let written = sqlx::query(&format!("PRAGMA user_version = {version}"))
            .execute(&mut *writer)
            .await;
        let rolled_back = sqlx::query("ROLLBACK").execute(&mut *writer).await;
        written?;
        rolled_back
    }
    .await;
    probe.map(drop).map_err(|e| StoreError::Unusable {
        backend: NAME,
        location: file_of(url),
        problem: format!("it cannot be written ({e})"),
        fix: "make the file, its -wal and -shm files and their folder writable by this user, or \
              point [storage] url (COORDINATOR__STORAGE__URL) at a writable location",
    })
}

/// The file `url` names, for messages.
fn file_of(url: &str) -> String {
    SqliteConnectOptions::from_str(url).map_or_else(
        |_| redact_url(url),
        |o| o.get_filename().display().to_string(),
    )
}

/// Connections opened when first used. They must be created within a Tokio runtime, which
/// runs the pool's maintenance.
pub(crate) fn open_lazy(url: &str, max_connections: u32) -> Result<Pools, StoreError> {
    open_with(url, max_connections, Create::IfMissing)
}

fn open_with(url: &str, max_connections: u32, create: Create) -> Result<Pools, StoreError> {
    if in_memory(url) {
        return Err(StoreError::InvalidUrl {
            backend: NAME,
            url: redact_url(url),
            source: "an in-memory database loses every task and dispatch report when the process \
                     stops, and cannot be shared by the coordinator's reader and writer connections"
                .into(),
        });
    }
    let options = options(url, create)?;
    let read = pool_options::<Sqlite>(max_connections).connect_lazy_with(options.clone());
    // Only the writer sets WAL mode (it persists in the file): a reader that switched the
    // journal mode while the writer was creating the file could fail with "database is locked".
    let mut writer_options = options.journal_mode(SqliteJournalMode::Wal);
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        // Checkpoints move to a reader connection in the background: the writer's commits no
        // longer pay for copying the WAL into the database now and then.
        writer_options = writer_options.pragma("wal_autocheckpoint", "0");
        runtime.spawn(checkpoint_in_background(read.clone()));
    }
    Ok(Pools {
        read,
        write: Writer::new(writer_options),
    })
}

/// How often the background checkpointer copies the WAL into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Copies what the WAL holds into the database, every [`CHECKPOINT_EVERY`], until the pool is
/// closed.
///
/// By default the connection whose commit makes the WAL pass 1,000 pages runs the checkpoint
/// itself, inside that commit: with one writer, that was one write in a few hundred waiting
/// milliseconds (the task benchmark's enqueue p99 of 4 ms). A `PASSIVE` checkpoint on another
/// connection runs beside the writer without blocking it; the WAL starts over from its
/// beginning once a checkpoint has caught up.
async fn checkpoint_in_background(read: SqlitePool) {
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + CHECKPOINT_EVERY,
        CHECKPOINT_EVERY,
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if read.is_closed() {
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&read)
            .await
        {
            if read.is_closed() {
                return;
            }
            tracing::debug!(error = %e, "background WAL checkpoint failed; trying again");
        }
    }
}

/// Whether `url` names an in-memory database (`sqlite::memory:`, `mode=memory`).
fn in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// The connection options of `url` (a reader's), with its folder created when `create` says.
fn options(url: &str, create: Create) -> Result<SqliteConnectOptions, StoreError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|source| StoreError::InvalidUrl {
            backend: NAME,
            url: redact_url(url),
            source: source.into(),
        })?
        .create_if_missing(create == Create::IfMissing)
        .busy_timeout(BUSY_TIMEOUT)
        .synchronous(SqliteSynchronous::Normal);
    let file = options.get_filename();
    let unusable = |problem: String, fix| StoreError::Unusable {
        backend: NAME,
        location: file.display().to_string(),
        problem,
        fix,
    };
    if file.is_dir() {
        return Err(unusable(
            "it is a folder, not a file".to_owned(),
            "name a file in it, such as sqlite://<folder>/coordinator.db",
        ));
    }
    if create == Create::Never {
        if !file.exists() {
            return Err(unusable(
                "there is no database file there".to_owned(),
                "check [storage] url (COORDINATOR__STORAGE__URL), or create the database with \
                 `coordinator migrate` (or by starting `coordinator serve`)",
            ));
        }
        return Ok(options);
    }
    if let Some(folder) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder).map_err(|source| StoreError::CreateDir {
            path: folder.display().to_string(),
            source,
        })?;
    }
    Ok(options)
}
