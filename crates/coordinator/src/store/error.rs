//! What can go wrong with the store, each saying what failed and how to fix it.

/// A backend's own error (the database driver's), kept as the cause of a [`StoreError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// `[storage] url` names a database this binary has no backend for.
    #[error(
        "unsupported storage url scheme \"{scheme}\": set [storage] url (or COORDINATOR__STORAGE__URL) \
         to one of: {supported}"
    )]
    UnsupportedUrl {
        /// The scheme found (the text before `:`), never the whole URL: it may hold a password.
        scheme: String,
        /// The URL forms the binary's backends open, for the message.
        supported: String,
    },

    /// `[storage] url` has a supported scheme but could not be parsed.
    #[error(
        "invalid {backend} storage url {url}: {source}; write sqlite://<path> or \
         postgres://<user>@<host>:<port>/<database>"
    )]
    InvalidUrl {
        /// The backend the scheme selected (`sqlite`, `postgresql`).
        backend: &'static str,
        /// The URL without credentials.
        url: String,
        /// What the driver found wrong.
        source: BoxError,
    },

    /// The folder of a database file could not be created.
    #[error(
        "cannot create the folder {path} for the database: {source}; create it yourself or \
         point [storage] url at a writable location"
    )]
    CreateDir {
        /// The folder.
        path: String,
        /// Why it could not be created.
        source: std::io::Error,
    },

    /// A database file cannot be used where `[storage] url` points: it is a folder, it does not
    /// exist (for a command that only reads), or it cannot be written.
    #[error("cannot use the {backend} database {location}: {problem}; {fix}")]
    Unusable {
        /// The backend.
        backend: &'static str,
        /// The file (or URL without credentials).
        location: String,
        /// What is wrong.
        problem: String,
        /// How to fix it.
        fix: &'static str,
    },

    /// The database could not be opened or reached.
    #[error(
        "cannot connect to the {backend} database at {url}: {source}; check that it is running and \
         reachable, and that [storage] url (or COORDINATOR__STORAGE__URL) is right"
    )]
    Connect {
        /// The backend (`sqlite`, `postgresql`).
        backend: &'static str,
        /// The URL without credentials.
        url: String,
        /// The driver's error.
        source: BoxError,
    },

    /// A query failed.
    #[error(
        "could not {action} in the {backend} database: {source}; check that the database is \
         reachable and migrated (`coordinator migrate`)"
    )]
    Database {
        /// What the store was doing (`insert dispatch reports`, `read applied migrations`).
        action: &'static str,
        /// The backend (`sqlite`, `postgresql`).
        backend: &'static str,
        /// The driver's error.
        source: BoxError,
    },

    /// The database refused a statement because of what it holds (a constraint, a value it
    /// cannot store): sending it again would fail the same way.
    #[error(
        "the {backend} database refused to {action}: {source}; the data cannot be stored as it \
         is, so trying again will not help"
    )]
    Rejected {
        /// What the store was doing.
        action: &'static str,
        /// The backend.
        backend: &'static str,
        /// The database's error.
        source: BoxError,
    },

    /// A write waited too long for the backend's one writer connection (a backend that writes
    /// through one connection, such as SQLite).
    #[error(
        "could not {action} in the {backend} database: the writer connection stayed busy for \
         {waited_ms} ms; a transaction (StoreTx) held it that long, or waited inside it for a \
         write made outside it: keep transactions short and write through the open transaction"
    )]
    WriterBusy {
        /// The backend (one writer at a time: `sqlite`).
        backend: &'static str,
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
        /// The backend (`sqlite`, `postgresql`).
        backend: &'static str,
        /// The driver's error.
        source: BoxError,
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
        state: crate::task::record::TaskState,
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
    /// A closure that wraps a driver's error as a failed `action` on `backend`:
    /// `.map_err(StoreError::database("sqlite", "claim tasks"))`.
    pub fn database<E: Into<BoxError>>(
        backend: &'static str,
        action: &'static str,
    ) -> impl Fn(E) -> Self + Copy {
        move |source| StoreError::Database {
            action,
            backend,
            source: source.into(),
        }
    }

    /// Whether the database could not be reached or did not complete the operation (a lost
    /// connection, a busy writer, a timeout, a read-only file): trying again later may succeed.
    pub fn is_database(&self) -> bool {
        matches!(
            self,
            StoreError::Database { .. }
                | StoreError::Connect { .. }
                | StoreError::WriterBusy { .. }
        )
    }

    /// Whether the database refused the data itself ([`StoreError::Rejected`]): trying the
    /// same again fails the same way.
    pub fn is_rejected(&self) -> bool {
        matches!(self, StoreError::Rejected { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_url_names_both_accepted_forms() {
        let e = StoreError::UnsupportedUrl {
            scheme: "mysql".into(),
            supported: "sqlite://<path>, postgres://<user>@<host>:<port>/<database>".into(),
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
