//! Versioned migrations: the framework's own first, then each extension's, each version once.
//!
//! This module plans and checks; the backends ([`super::sqlite`], [`super::postgres`]) run the
//! plan, each in its own way of keeping concurrent processes apart. What was applied is recorded
//! in `coordinator_migrations` with a checksum of the SQL, so that an edited migration is refused
//! instead of silently diverging between databases.

use std::collections::HashMap;

use super::{Backend, StoreError};
use crate::migration::Migration;

/// The extension name under which the framework's own migrations are recorded.
pub(crate) const FRAMEWORK: &str = "coordinator";

/// The table that records applied migrations (the same SQL on both backends).
pub(crate) const CREATE_MIGRATIONS_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS coordinator_migrations (
    extension TEXT NOT NULL,
    version BIGINT NOT NULL,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at_ms BIGINT NOT NULL,
    PRIMARY KEY (extension, version)
)";

/// The framework's own migrations: the dispatch log, then durable tasks and the inbox.
pub(crate) fn framework_migrations() -> Vec<Migration> {
    vec![
        dispatch_log_migration(),
        tasks_migration(),
        ready_tasks_index_migration(),
    ]
}

/// Version 3: a partial index of the tasks waiting to run, in the order workers claim them.
///
/// Workers claim `WHERE state IN ('queued', 'retrying') AND run_at_ms <= now ORDER BY
/// run_at_ms, id LIMIT n`. Without this index that read sorted the whole backlog on every
/// claim (20 ms at 8,000 queued tasks); with it, it reads the first n entries. Succeeded tasks
/// leave the index, so it stays the size of the backlog. It replaces `coordinator_tasks_due`
/// (state, queue, run_at_ms), which no query reads any more and every write of a task paid for.
fn ready_tasks_index_migration() -> Migration {
    Migration {
        extension: FRAMEWORK,
        ..Migration::portable(
            3,
            "index_ready_tasks",
            "CREATE INDEX coordinator_tasks_ready ON coordinator_tasks (run_at_ms, id) \
WHERE state IN ('queued', 'retrying');
DROP INDEX coordinator_tasks_due;",
        )
    }
}

/// Version 1: the dispatch log.
fn dispatch_log_migration() -> Migration {
    Migration {
        extension: FRAMEWORK,
        ..Migration::per_backend(
            1,
            "create_dispatch_log",
            "CREATE TABLE coordinator_dispatches (
    id TEXT PRIMARY KEY NOT NULL,
    signal TEXT NOT NULL,
    sender TEXT NOT NULL,
    sent_at_ms INTEGER NOT NULL,
    status TEXT NOT NULL,
    handlers TEXT NOT NULL
);
CREATE INDEX coordinator_dispatches_signal ON coordinator_dispatches (signal, id);
CREATE INDEX coordinator_dispatches_status ON coordinator_dispatches (status, id);
CREATE INDEX coordinator_dispatches_sent_at ON coordinator_dispatches (sent_at_ms);
CREATE TABLE coordinator_dispatch_runs (
    dispatch_id TEXT NOT NULL REFERENCES coordinator_dispatches (id),
    handler TEXT NOT NULL,
    status TEXT NOT NULL,
    PRIMARY KEY (dispatch_id, handler)
);
CREATE INDEX coordinator_dispatch_runs_handler ON coordinator_dispatch_runs (handler, dispatch_id, status);",
            "CREATE TABLE coordinator_dispatches (
    id UUID PRIMARY KEY,
    signal TEXT NOT NULL,
    sender TEXT NOT NULL,
    sent_at_ms BIGINT NOT NULL,
    status TEXT NOT NULL,
    handlers TEXT NOT NULL
);
CREATE INDEX coordinator_dispatches_signal ON coordinator_dispatches (signal, id);
CREATE INDEX coordinator_dispatches_status ON coordinator_dispatches (status, id);
CREATE INDEX coordinator_dispatches_sent_at ON coordinator_dispatches (sent_at_ms);
CREATE TABLE coordinator_dispatch_runs (
    dispatch_id UUID NOT NULL REFERENCES coordinator_dispatches (id),
    handler TEXT NOT NULL,
    status TEXT NOT NULL,
    PRIMARY KEY (dispatch_id, handler)
);
CREATE INDEX coordinator_dispatch_runs_handler ON coordinator_dispatch_runs (handler, dispatch_id, status);",
        )
    }
}

/// Version 2: durable tasks, their attempts, and the inbox of intake keys.
///
/// Times are milliseconds since the Unix epoch. The unique index on `(task, unique_key)` covers
/// only pending tasks, so a key can be used again once its task has finished. The partial index
/// on leases finds running tasks whose worker stopped renewing.
fn tasks_migration() -> Migration {
    Migration {
        extension: FRAMEWORK,
        ..Migration::per_backend(
            2,
            "create_tasks",
            "CREATE TABLE coordinator_tasks (
    id TEXT PRIMARY KEY NOT NULL,
    task TEXT NOT NULL,
    queue TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    run_at_ms INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until_ms INTEGER,
    unique_key TEXT,
    origin_dispatch TEXT,
    result TEXT,
    last_error TEXT,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    finished_at_ms INTEGER
);
CREATE INDEX coordinator_tasks_due ON coordinator_tasks (state, queue, run_at_ms);
CREATE INDEX coordinator_tasks_leases ON coordinator_tasks (lease_until_ms) WHERE state = 'running';
CREATE INDEX coordinator_tasks_by_state ON coordinator_tasks (state, id);
CREATE INDEX coordinator_tasks_by_queue ON coordinator_tasks (queue, id);
CREATE INDEX coordinator_tasks_by_task ON coordinator_tasks (task, id);
CREATE UNIQUE INDEX coordinator_tasks_unique ON coordinator_tasks (task, unique_key)
    WHERE state IN ('queued', 'retrying', 'running');
CREATE TABLE coordinator_task_attempts (
    id INTEGER PRIMARY KEY,
    task_id TEXT NOT NULL REFERENCES coordinator_tasks (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    worker TEXT NOT NULL,
    started_at_ms INTEGER NOT NULL,
    finished_at_ms INTEGER,
    status TEXT NOT NULL,
    error_chain TEXT
);
CREATE INDEX coordinator_task_attempts_task ON coordinator_task_attempts (task_id, attempt);
CREATE TABLE coordinator_inbox (
    source TEXT NOT NULL,
    external_id TEXT NOT NULL,
    received_at_ms INTEGER NOT NULL,
    PRIMARY KEY (source, external_id)
);",
            "CREATE TABLE coordinator_tasks (
    id UUID PRIMARY KEY,
    task TEXT NOT NULL,
    queue TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    run_at_ms BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until_ms BIGINT,
    unique_key TEXT,
    origin_dispatch UUID,
    result TEXT,
    last_error TEXT,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    finished_at_ms BIGINT
);
CREATE INDEX coordinator_tasks_due ON coordinator_tasks (state, queue, run_at_ms);
CREATE INDEX coordinator_tasks_leases ON coordinator_tasks (lease_until_ms) WHERE state = 'running';
CREATE INDEX coordinator_tasks_by_state ON coordinator_tasks (state, id);
CREATE INDEX coordinator_tasks_by_queue ON coordinator_tasks (queue, id);
CREATE INDEX coordinator_tasks_by_task ON coordinator_tasks (task, id);
CREATE UNIQUE INDEX coordinator_tasks_unique ON coordinator_tasks (task, unique_key)
    WHERE state IN ('queued', 'retrying', 'running');
CREATE TABLE coordinator_task_attempts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id UUID NOT NULL REFERENCES coordinator_tasks (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    worker TEXT NOT NULL,
    started_at_ms BIGINT NOT NULL,
    finished_at_ms BIGINT,
    status TEXT NOT NULL,
    error_chain TEXT
);
CREATE INDEX coordinator_task_attempts_task ON coordinator_task_attempts (task_id, attempt);
CREATE TABLE coordinator_inbox (
    source TEXT NOT NULL,
    external_id TEXT NOT NULL,
    received_at_ms BIGINT NOT NULL,
    PRIMARY KEY (source, external_id)
);",
        )
    }
}

/// One migration ready to run on a given backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Planned {
    pub(crate) extension: &'static str,
    pub(crate) version: u32,
    pub(crate) name: &'static str,
    /// The SQL for the backend the plan was made for.
    pub(crate) sql: &'static str,
    pub(crate) checksum: String,
}

/// A row of `coordinator_migrations`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Recorded {
    pub(crate) extension: String,
    pub(crate) version: u32,
    pub(crate) checksum: String,
}

/// The checksum of a migration's SQL: FNV-1a (64 bits), in hex. It detects edits, not attacks.
pub(crate) fn checksum(sql: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in sql.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Orders the framework's migrations and then `migrations` (extensions in the order they first
/// appear, each extension's versions ascending), and refuses an inconsistent set.
pub(crate) fn plan(backend: Backend, migrations: &[Migration]) -> Result<Vec<Planned>, StoreError> {
    let invalid = |m: &Migration, reason: String| StoreError::InvalidMigration {
        extension: m.extension.to_owned(),
        version: m.version,
        name: m.name.to_owned(),
        reason,
    };
    for m in migrations {
        if m.extension.is_empty() {
            return Err(invalid(
                m,
                "it names no extension; declare it with ExtensionBuilder::migration, which sets it"
                    .to_owned(),
            ));
        }
        if m.extension == FRAMEWORK {
            return Err(invalid(
                m,
                format!(
                    "the extension name \"{FRAMEWORK}\" is reserved for the framework's own tables"
                ),
            ));
        }
    }
    let framework = framework_migrations();
    let mut first_seen: HashMap<&str, usize> = HashMap::new();
    for m in framework.iter().chain(migrations) {
        let next = first_seen.len();
        first_seen.entry(m.extension).or_insert(next);
    }
    let mut all: Vec<&Migration> = framework.iter().chain(migrations).collect();
    all.sort_by_key(|m| (first_seen[m.extension], m.version));
    for pair in all.windows(2) {
        if pair[0].extension == pair[1].extension && pair[0].version == pair[1].version {
            return Err(invalid(
                pair[1],
                format!(
                    "version {} is declared twice (also \"{}\"); give each migration its own version",
                    pair[1].version, pair[0].name
                ),
            ));
        }
    }
    if let Some(m) = all.iter().find(|m| m.version == 0) {
        return Err(invalid(m, "versions start at 1".to_owned()));
    }
    Ok(all
        .into_iter()
        .map(|m| {
            let sql = match backend {
                Backend::Sqlite => m.sqlite,
                Backend::Postgres => m.postgres,
            };
            Planned {
                extension: m.extension,
                version: m.version,
                name: m.name,
                sql,
                checksum: checksum(sql),
            }
        })
        .collect())
}

/// Checks the plan against what was applied: refuses if an applied migration changed, and returns
/// the ones still to apply, in order.
pub(crate) fn pending<'p>(
    plan: &'p [Planned],
    recorded: &[Recorded],
) -> Result<Vec<&'p Planned>, StoreError> {
    let applied: HashMap<(&str, u32), &str> = recorded
        .iter()
        .map(|r| ((r.extension.as_str(), r.version), r.checksum.as_str()))
        .collect();
    let mut pending = Vec::new();
    for p in plan {
        match applied.get(&(p.extension, p.version)) {
            Some(recorded) => check_unchanged(p, recorded)?,
            None => pending.push(p),
        }
    }
    Ok(pending)
}

/// Refuses a migration whose SQL no longer matches the checksum recorded when it was applied.
pub(crate) fn check_unchanged(p: &Planned, recorded: &str) -> Result<(), StoreError> {
    if recorded == p.checksum {
        Ok(())
    } else {
        Err(StoreError::MigrationEdited {
            extension: p.extension.to_owned(),
            version: p.version,
            name: p.name.to_owned(),
            recorded: recorded.to_owned(),
            current: p.checksum.clone(),
        })
    }
}

/// Whether a version lower than one already applied is pending (two branches each added a
/// version): it is applied anyway, with a warning, since it cannot be applied "in order" any more.
pub(crate) fn warn_if_out_of_order(p: &Planned, recorded: &[Recorded]) {
    if let Some(max) = recorded
        .iter()
        .filter(|r| r.extension == p.extension)
        .map(|r| r.version)
        .max()
        .filter(|max| *max > p.version)
    {
        tracing::warn!(
            extension = p.extension,
            version = p.version,
            name = p.name,
            highest_applied = max,
            "applying a migration whose version is lower than one already applied; \
             check that it does not depend on the order"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(extension: &'static str, version: u32, name: &'static str) -> Migration {
        Migration {
            extension,
            ..Migration::portable(version, name, "SELECT 1")
        }
    }

    #[test]
    fn framework_migrations_come_first_then_extensions_by_version() {
        let plan = plan(
            Backend::Sqlite,
            &[
                ext("b", 2, "b2"),
                ext("a", 1, "a1"),
                ext("b", 1, "b1"),
                ext("a", 3, "a3"),
            ],
        )
        .unwrap();
        let order: Vec<_> = plan.iter().map(|p| (p.extension, p.version)).collect();
        assert_eq!(
            order,
            [
                ("coordinator", 1),
                ("coordinator", 2),
                ("coordinator", 3),
                ("b", 1),
                ("b", 2),
                ("a", 1),
                ("a", 3)
            ]
        );
    }

    #[test]
    fn the_plan_uses_each_backends_sql() {
        let m = Migration {
            extension: "demo",
            ..Migration::per_backend(1, "x", "SQLITE", "PG")
        };
        let lite = plan(Backend::Sqlite, std::slice::from_ref(&m)).unwrap();
        let pg = plan(Backend::Postgres, &[m]).unwrap();
        let (lite, pg) = (lite.last().unwrap(), pg.last().unwrap());
        assert_eq!(lite.sql, "SQLITE");
        assert_eq!(pg.sql, "PG");
        assert_ne!(lite.checksum, pg.checksum);
    }

    #[test]
    fn duplicate_versions_and_reserved_names_are_refused() {
        let e = plan(Backend::Sqlite, &[ext("a", 1, "x"), ext("a", 1, "y")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("declared twice"), "{e}");
        let e = plan(Backend::Sqlite, &[ext("coordinator", 2, "x")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("reserved"), "{e}");
        let e = plan(Backend::Sqlite, &[Migration::portable(1, "x", "")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("ExtensionBuilder::migration"), "{e}");
        let e = plan(Backend::Sqlite, &[ext("a", 0, "x")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("start at 1"), "{e}");
    }

    #[test]
    fn pending_skips_applied_and_refuses_edited() {
        let plan = plan(Backend::Sqlite, &[ext("a", 1, "x"), ext("a", 2, "y")]).unwrap();
        let rec = |e: &str, v, c: &str| Recorded {
            extension: e.to_owned(),
            version: v,
            checksum: c.to_owned(),
        };
        let recorded = [
            rec("coordinator", 1, &plan[0].checksum),
            rec("coordinator", 2, &plan[1].checksum),
            rec("coordinator", 3, &plan[2].checksum),
            rec("a", 1, &checksum("SELECT 1")),
        ];
        let todo = pending(&plan, &recorded).unwrap();
        assert_eq!(todo.len(), 1);
        assert_eq!((todo[0].extension, todo[0].version), ("a", 2));

        let edited = [rec("a", 1, "0000000000000000")];
        let e = pending(&plan, &edited).unwrap_err().to_string();
        assert!(
            e.starts_with("migration a/1 was edited after it was applied"),
            "{e}"
        );
    }

    #[test]
    fn checksums_are_stable() {
        // Recorded in databases: this value must never change.
        assert_eq!(checksum(""), "cbf29ce484222325");
        assert_eq!(checksum("a"), "af63dc4c8601ec8c");
    }
}
