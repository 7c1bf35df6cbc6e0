//! Database migrations: the schema changes that extensions (and the framework itself) ship.
//!
//! A [`Migration`] carries SQL for the backends it supports, by backend name (`sqlite`,
//! `postgresql`). The store plans and applies them
//! ([`store::migrate`](crate::store::migrate)).

/// The extension name under which the framework's own migrations are recorded.
pub const FRAMEWORK: &str = "coordinator";

/// One versioned schema change, in the SQL of each storage backend it supports.
///
/// Versions are per extension and applied in increasing order, each once; the store records
/// which ran. Never edit a migration that has shipped: add a new version.
///
/// ```
/// use coordinator::migration::Migration;
///
/// // The same SQL works on every backend:
/// let m = Migration::portable(1, "create_refunds", "CREATE TABLE demo_refunds (id TEXT PRIMARY KEY)");
/// assert_eq!(m.sql_for("postgresql"), Some("CREATE TABLE demo_refunds (id TEXT PRIMARY KEY)"));
/// // Or SQL per backend, by the backend's name:
/// let m2 = Migration::per_backend(
///     2,
///     "add_amount",
///     &[
///         ("sqlite", "ALTER TABLE demo_refunds ADD COLUMN amount INTEGER"),
///         ("postgresql", "ALTER TABLE demo_refunds ADD COLUMN amount BIGINT"),
///     ],
/// );
/// assert_eq!(m2.sql_for("sqlite"), Some("ALTER TABLE demo_refunds ADD COLUMN amount INTEGER"));
/// assert_eq!(m2.sql_for("mysql"), None);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Migration {
    /// The extension that owns it (`coordinator` for the framework's own tables).
    pub extension: &'static str,
    /// Its version within the extension, from 1.
    pub version: u32,
    /// A short snake_case description.
    pub name: &'static str,
    /// Its SQL (several statements may be separated by `;`).
    pub sql: MigrationSql,
}

/// The SQL of a [`Migration`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MigrationSql {
    /// The same SQL on every backend.
    Portable(&'static str),
    /// SQL per backend, by backend name.
    PerBackend(&'static [(&'static str, &'static str)]),
}

impl Migration {
    /// A migration whose SQL is the same on every backend.
    pub const fn portable(version: u32, name: &'static str, sql: &'static str) -> Self {
        Self {
            extension: "",
            version,
            name,
            sql: MigrationSql::Portable(sql),
        }
    }

    /// A migration with SQL for each backend it supports, as `(backend name, SQL)` pairs.
    pub const fn per_backend(
        version: u32,
        name: &'static str,
        sql: &'static [(&'static str, &'static str)],
    ) -> Self {
        Self {
            extension: "",
            version,
            name,
            sql: MigrationSql::PerBackend(sql),
        }
    }

    /// The SQL for the backend named `backend`, if the migration has some.
    pub fn sql_for(&self, backend: &str) -> Option<&'static str> {
        match self.sql {
            MigrationSql::Portable(sql) => Some(sql),
            MigrationSql::PerBackend(all) => {
                all.iter().find(|(b, _)| *b == backend).map(|(_, sql)| *sql)
            }
        }
    }
}
