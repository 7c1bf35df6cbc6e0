//! What can go wrong with the store, each saying what failed and how to fix it.

use super::Backend;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// `[storage] url` names a database the coordinator cannot use.
    #[error(
        "unsupported storage url scheme \"{scheme}\": set [storage] url (or COORDINATOR__STORAGE__URL) \
         to sqlite://<path> (a local file, created on start) or postgres://<user>@<host>:<port>/<database>"
    )]
    UnsupportedUrl {
        /// The scheme found (the text before `:`), never the whole URL: it may hold a password.
        scheme: String,
    },

    /// `[storage] url` has a supported scheme but could not be parsed.
    #[error(
        "invalid {backend} storage url {url}: {source}; write sqlite://<path> or \
         postgres://<user>@<host>:<port>/<database>"
    )]
    InvalidUrl {
        /// The backend the scheme selected.
        backend: Backend,
        /// The URL without credentials.
        url: String,
        /// What the driver found wrong.
        source: sqlx::Error,
    },

    /// The folder of the SQLite file could not be created.
    #[error(
        "cannot create the folder {path} for the SQLite database: {source}; create it yourself or \
         point [storage] url at a writable location"
    )]
    CreateDir {
        /// The folder.
        path: String,
        /// Why it could not be created.
        source: std::io::Error,
    },

    /// The database could not be opened or reached.
    #[error(
        "cannot connect to the {backend} database at {url}: {source}; check that it is running and \
         reachable, and that [storage] url (or COORDINATOR__STORAGE__URL) is right"
    )]
    Connect {
        /// The backend.
        backend: Backend,
        /// The URL without credentials.
        url: String,
        /// The driver's error.
        source: sqlx::Error,
    },

    /// A query failed.
    #[error(
        "could not {action} in the {backend} database: {source}; check that the database is \
         reachable and migrated (`coordinator migrate`)"
    )]
    Database {
        /// What the store was doing (`insert dispatch reports`, `read applied migrations`).
        action: &'static str,
        /// The backend.
        backend: Backend,
        /// The driver's error.
        source: sqlx::Error,
    },

    /// A write waited too long for SQLite's one writer connection.
    #[error(
        "could not {action} in the sqlite database: the writer connection stayed busy for \
         {waited_ms} ms; a transaction (StoreTx) held it that long, or waited inside it for a \
         write made outside it: keep transactions short and write through the open transaction"
    )]
    WriterBusy {
        /// What the store was doing.
        action: &'static str,
        /// How long it waited.
        waited_ms: u64,
    },

    /// A migration that was applied has different SQL now.
    #[error(
        "migration {extension}/{version} was edited after it was applied; add a new version instead \
         (\"{name}\": recorded checksum {recorded}, now {current})"
    )]
    MigrationEdited {
        /// The extension that owns it.
        extension: String,
        /// Its version.
        version: u32,
        /// Its name.
        name: String,
        /// The checksum recorded when it was applied.
        recorded: String,
        /// The checksum of its SQL now.
        current: String,
    },

    /// A migration's SQL failed; its transaction was rolled back.
    #[error(
        "migration {extension}/{version} (\"{name}\") failed on {backend} and was rolled back: \
         {source}; fix its SQL for {backend} (it has not been recorded, so it runs again on the \
         next start)"
    )]
    MigrationFailed {
        /// The extension that owns it.
        extension: String,
        /// Its version.
        version: u32,
        /// Its name.
        name: String,
        /// The backend.
        backend: Backend,
        /// The driver's error.
        source: sqlx::Error,
    },

    /// The set of migrations given is inconsistent (a programmer error in an extension).
    #[error("migration {extension}/{version} (\"{name}\") cannot be applied: {reason}")]
    InvalidMigration {
        /// The extension that owns it.
        extension: String,
        /// Its version.
        version: u32,
        /// Its name.
        name: String,
        /// What is wrong and how to fix it.
        reason: String,
    },

    /// A stored row could not be read back.
    #[error(
        "stored dispatch {id} is unreadable: {reason}; the row was written by an incompatible \
         version or edited by hand: delete it"
    )]
    Corrupt {
        /// The dispatch id (or the raw id text when it is not a UUID).
        id: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A stored task row could not be read back.
    #[error(
        "stored task {id} is unreadable: {reason}; the row was written by an incompatible \
         version or edited by hand: cancel or delete it"
    )]
    CorruptTask {
        /// The task id (or the raw id text when it is not a UUID).
        id: String,
        /// What is wrong with it.
        reason: String,
    },

    /// An operation on a task named a task that does not exist.
    #[error("cannot {action} task {id}: there is no such task; check the id against the task list")]
    TaskNotFound {
        /// What was asked (`retry`, `cancel`).
        action: &'static str,
        /// The id given.
        id: uuid::Uuid,
    },

    /// An operation on a task is not possible in the task's current state.
    #[error("cannot {action} task {id}: it is {state}; only {allowed} tasks can be {done}")]
    TaskState {
        /// What was asked (`retry`, `cancel`).
        action: &'static str,
        /// The task.
        id: uuid::Uuid,
        /// Its state now.
        state: super::TaskState,
        /// The states in which the operation is possible.
        allowed: &'static str,
        /// The operation's past participle (`retried`, `cancelled`).
        done: &'static str,
    },

    /// Retrying a task would make two pending tasks with the same name and unique key.
    #[error(
        "cannot retry task {id}: task {pending} (\"{task}\", unique key \"{unique_key}\") is \
         pending with the same unique key; wait for it to finish or cancel it, then retry"
    )]
    DuplicatePendingTask {
        /// The task to retry.
        id: uuid::Uuid,
        /// The task's name.
        task: String,
        /// The shared unique key.
        unique_key: String,
        /// The pending task holding the key.
        pending: uuid::Uuid,
    },
}

impl StoreError {
    pub(crate) fn db(
        backend: Backend,
        action: &'static str,
    ) -> impl Fn(sqlx::Error) -> Self + Copy {
        move |source| StoreError::Database {
            action,
            backend,
            source,
        }
    }
}

impl StoreError {
    /// The same failure, for another caller that was waiting on the same operation (errors
    /// from the driver are not `Clone`: their text is kept).
    pub(crate) fn replicate(&self, action: &'static str) -> StoreError {
        match self {
            StoreError::WriterBusy { action, waited_ms } => StoreError::WriterBusy {
                action,
                waited_ms: *waited_ms,
            },
            other => StoreError::Database {
                action,
                backend: Backend::Sqlite,
                source: sqlx::Error::Protocol(other.to_string()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_url_names_both_accepted_forms() {
        let e = StoreError::UnsupportedUrl {
            scheme: "mysql".into(),
        }
        .to_string();
        assert!(e.contains("\"mysql\""), "{e}");
        assert!(e.contains("sqlite://<path>"), "{e}");
        assert!(e.contains("postgres://"), "{e}");
    }

    #[test]
    fn an_edited_migration_says_to_add_a_version() {
        let e = StoreError::MigrationEdited {
            extension: "demo".into(),
            version: 1,
            name: "create_refunds".into(),
            recorded: "a".into(),
            current: "b".into(),
        }
        .to_string();
        assert!(
            e.starts_with(
                "migration demo/1 was edited after it was applied; add a new version instead"
            ),
            "{e}"
        );
    }
}
