//! The framework's own tables (the dispatch log, the task queue and its attempts, the inbox),
//! written once and typed per dialect.
//!
//! The SQL of each dialect is assembled at compile time from one text with the column types
//! that differ filled in, so the two backends cannot drift apart. The assembled text is exactly
//! what earlier versions applied: migrations are recorded with a checksum of their SQL, and the
//! checksums are pinned by a test below.

use coordinator::migration::{FRAMEWORK, Migration};

use crate::sql::Dialect;

/// The table that records applied migrations (the same SQL in every dialect).
pub const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS coordinator_migrations (
    extension TEXT NOT NULL,
    version BIGINT NOT NULL,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at_ms BIGINT NOT NULL,
    PRIMARY KEY (extension, version)
)";

/// Version 1, the dispatch log: `$id_pk` the primary key id column, `$id` an id column, `$ms`
/// a time in milliseconds.
macro_rules! dispatch_log {
    ($id_pk:literal, $id:literal, $ms:literal) => {
        concat!(
            "CREATE TABLE coordinator_dispatches (
    id ", $id_pk, ",
    signal TEXT NOT NULL,
    sender TEXT NOT NULL,
    sent_at_ms ", $ms, " NOT NULL,
    status TEXT NOT NULL,
    handlers TEXT NOT NULL
);
CREATE INDEX coordinator_dispatches_signal ON coordinator_dispatches (signal, id);
CREATE INDEX coordinator_dispatches_status ON coordinator_dispatches (status, id);
CREATE INDEX coordinator_dispatches_sent_at ON coordinator_dispatches (sent_at_ms);
CREATE TABLE coordinator_dispatch_runs (
    dispatch_id ", $id, " NOT NULL REFERENCES coordinator_dispatches (id),
    handler TEXT NOT NULL,
    status TEXT NOT NULL,
    PRIMARY KEY (dispatch_id, handler)
);
CREATE INDEX coordinator_dispatch_runs_handler ON coordinator_dispatch_runs (handler, dispatch_id, status);"
        )
    };
}

/// Version 2, durable tasks, their attempts, and the inbox of intake keys; `$serial_pk` an
/// auto-numbered primary key.
///
/// Times are milliseconds since the Unix epoch. The unique index on `(task, unique_key)` covers
/// only pending tasks, so a key can be used again once its task has finished. The partial index
/// on leases finds running tasks whose worker stopped renewing.
macro_rules! tasks {
    ($id_pk:literal, $id:literal, $ms:literal, $serial_pk:literal) => {
        concat!(
            "CREATE TABLE coordinator_tasks (
    id ", $id_pk, ",
    task TEXT NOT NULL,
    queue TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    run_at_ms ", $ms, " NOT NULL,
    lease_owner TEXT,
    lease_until_ms ", $ms, ",
    unique_key TEXT,
    origin_dispatch ", $id, ",
    result TEXT,
    last_error TEXT,
    created_at_ms ", $ms, " NOT NULL,
    updated_at_ms ", $ms, " NOT NULL,
    finished_at_ms ", $ms, "
);
CREATE INDEX coordinator_tasks_due ON coordinator_tasks (state, queue, run_at_ms);
CREATE INDEX coordinator_tasks_leases ON coordinator_tasks (lease_until_ms) WHERE state = 'running';
CREATE INDEX coordinator_tasks_by_state ON coordinator_tasks (state, id);
CREATE INDEX coordinator_tasks_by_queue ON coordinator_tasks (queue, id);
CREATE INDEX coordinator_tasks_by_task ON coordinator_tasks (task, id);
CREATE UNIQUE INDEX coordinator_tasks_unique ON coordinator_tasks (task, unique_key)
    WHERE state IN ('queued', 'retrying', 'running');
CREATE TABLE coordinator_task_attempts (
    id ", $serial_pk, ",
    task_id ", $id, " NOT NULL REFERENCES coordinator_tasks (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    worker TEXT NOT NULL,
    started_at_ms ", $ms, " NOT NULL,
    finished_at_ms ", $ms, ",
    status TEXT NOT NULL,
    error_chain TEXT
);
CREATE INDEX coordinator_task_attempts_task ON coordinator_task_attempts (task_id, attempt);
CREATE TABLE coordinator_inbox (
    source TEXT NOT NULL,
    external_id TEXT NOT NULL,
    received_at_ms ", $ms, " NOT NULL,
    PRIMARY KEY (source, external_id)
);"
        )
    };
}

/// Version 3: a partial index of the tasks waiting to run, in the order workers claim them.
///
/// Workers claim `WHERE state IN ('queued', 'retrying') AND run_at_ms <= now ORDER BY
/// run_at_ms, id LIMIT n`. Without this index that read sorted the whole backlog on every
/// claim (20 ms at 8,000 queued tasks); with it, it reads the first n entries. Succeeded tasks
/// leave the index, so it stays the size of the backlog. It replaces `coordinator_tasks_due`
/// (state, queue, run_at_ms), which no query reads any more and every write of a task paid for.
const READY_TASKS_INDEX: &str =
    "CREATE INDEX coordinator_tasks_ready ON coordinator_tasks (run_at_ms, id) \
WHERE state IN ('queued', 'retrying');
DROP INDEX coordinator_tasks_due;";

/// Version 4: an index of the unique keys in every state, so that enqueueing with an
/// idempotency key (`EnqueueOptions::once`) finds a task that already succeeded without reading
/// every task of that name; and the index that keeps keys unique among pending tasks made to
/// leave out the tasks with no key (most of them: every delivery of a durable signal), which it
/// was indexing for nothing on every insert.
const UNIQUE_KEYS_INDEX: &str = "CREATE INDEX coordinator_tasks_keys ON coordinator_tasks \
(task, unique_key) WHERE unique_key IS NOT NULL;
DROP INDEX coordinator_tasks_unique;
CREATE UNIQUE INDEX coordinator_tasks_unique ON coordinator_tasks (task, unique_key) \
WHERE unique_key IS NOT NULL AND state IN ('queued', 'retrying', 'running');";

/// Version 5: fewer indexes to write. Each durable order wrote about 34 b-tree entries, and
/// SQLite's one writer spent most of its time on them. Three indexes served no query that needs
/// them: the dispatch log finds old dispatches for the purge, and recent ones for `since`, by
/// their UUIDv7 ids (whose time is `sent_at_ms`), and a listing of tasks by queue or by name
/// reads the newest tasks backwards by id and stops at a page (a rare name scans further; the
/// state's index stays, for the listings of dead or running tasks among many succeeded ones).
/// See `docs/decisions/0013-lean-write-indexes.md`.
const LEAN_WRITE_INDEXES: &str = "DROP INDEX coordinator_tasks_by_queue;
DROP INDEX coordinator_tasks_by_task;
DROP INDEX coordinator_dispatches_sent_at;";

/// The dispatch log's and the task queue's tables on SQLite.
const SQLITE: [&str; 2] = [
    dispatch_log!("TEXT PRIMARY KEY NOT NULL", "TEXT", "INTEGER"),
    tasks!(
        "TEXT PRIMARY KEY NOT NULL",
        "TEXT",
        "INTEGER",
        "INTEGER PRIMARY KEY"
    ),
];

/// The same on PostgreSQL.
const POSTGRES: [&str; 2] = [
    dispatch_log!("UUID PRIMARY KEY", "UUID", "BIGINT"),
    tasks!(
        "UUID PRIMARY KEY",
        "UUID",
        "BIGINT",
        "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
    ),
];

/// The framework's own migrations in `dialect`'s SQL, recorded under the extension
/// `coordinator`.
pub fn framework_migrations(dialect: Dialect) -> Vec<Migration> {
    let [dispatch_log, tasks] = match dialect {
        Dialect::Sqlite => SQLITE,
        Dialect::Postgres => POSTGRES,
    };
    [
        Migration::portable(1, "create_dispatch_log", dispatch_log),
        Migration::portable(2, "create_tasks", tasks),
        Migration::portable(3, "index_ready_tasks", READY_TASKS_INDEX),
        Migration::portable(4, "index_unique_keys", UNIQUE_KEYS_INDEX),
        Migration::portable(5, "lean_write_indexes", LEAN_WRITE_INDEXES),
    ]
    .into_iter()
    .map(|m| Migration {
        extension: FRAMEWORK,
        ..m
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use coordinator::store::migrate::checksum;

    use super::*;

    #[test]
    fn the_framework_migrations_are_byte_for_byte_those_databases_recorded() {
        // Checksums recorded by every database migrated since the first release: if one of
        // these changes, every existing database refuses to start ("was edited").
        let expect = [
            (
                Dialect::Sqlite,
                [
                    "f8c00d307cbef4a3",
                    "7eea697857f57a42",
                    "d91fbae4af20f71a",
                    "fd60b0b179fecafe",
                    "3ae39c82c9a0fcf7",
                ],
            ),
            (
                Dialect::Postgres,
                [
                    "f5cfe777c136bac4",
                    "04df3bdd84e65eb7",
                    "d91fbae4af20f71a",
                    "fd60b0b179fecafe",
                    "3ae39c82c9a0fcf7",
                ],
            ),
        ];
        for (dialect, sums) in expect {
            let found: Vec<String> = framework_migrations(dialect)
                .iter()
                .map(|m| checksum(m.sql_for(dialect.backend()).unwrap()))
                .collect();
            assert_eq!(found, sums, "{dialect:?}");
        }
    }
}
