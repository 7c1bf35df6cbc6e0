//! Database migrations that extensions (and the framework itself) ship.

/// One versioned schema change, in the SQL of each storage backend.
///
/// Versions are per extension and applied in increasing order, each once; the store records
/// which ran. Never edit a migration that has shipped: add a new version.
///
/// ```
/// use coordinator::migration::Migration;
///
/// // The same SQL works on both backends:
/// let m = Migration::portable(1, "create_refunds", "CREATE TABLE demo_refunds (id TEXT PRIMARY KEY)");
/// // Or one statement per backend:
/// let m2 = Migration::per_backend(
///     2,
///     "add_amount",
///     "ALTER TABLE demo_refunds ADD COLUMN amount INTEGER",
///     "ALTER TABLE demo_refunds ADD COLUMN amount BIGINT",
/// );
/// assert_eq!(m2.version, 2);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Migration {
    /// The extension that owns it (`coordinator` for the framework's own tables).
    pub extension: &'static str,
    /// Its version within the extension, from 1.
    pub version: u32,
    /// A short snake_case description.
    pub name: &'static str,
    /// The SQL for SQLite (several statements may be separated by `;`).
    pub sqlite: &'static str,
    /// The SQL for PostgreSQL.
    pub postgres: &'static str,
}

impl Migration {
    /// A migration whose SQL is the same on SQLite and PostgreSQL.
    pub const fn portable(version: u32, name: &'static str, sql: &'static str) -> Self {
        Self {
            extension: "",
            version,
            name,
            sqlite: sql,
            postgres: sql,
        }
    }

    /// A migration with SQL for each backend.
    pub const fn per_backend(
        version: u32,
        name: &'static str,
        sqlite: &'static str,
        postgres: &'static str,
    ) -> Self {
        Self {
            extension: "",
            version,
            name,
            sqlite,
            postgres,
        }
    }
}
