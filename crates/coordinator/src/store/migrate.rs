//! The migration plan: the framework's migrations and then the extensions', checked against
//! what the database recorded.
//!
//! [`plan`] orders them for one backend, and [`pending`] compares the plan with what the
//! database recorded. Backends run the plan, each in its own way of keeping concurrent
//! processes apart; what was applied is recorded in `coordinator_migrations` with a checksum of
//! the SQL, so that an edited migration is refused instead of silently diverging between
//! databases.

use std::collections::HashMap;

use super::StoreError;
use crate::migration::{FRAMEWORK, Migration};

/// A migration that [`Store::migrate`](super::Store::migrate) applied.
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

/// One migration ready to run on a given backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    /// The extension that owns it.
    pub extension: &'static str,
    /// Its version.
    pub version: u32,
    /// Its name.
    pub name: &'static str,
    /// The SQL for the backend the plan was made for.
    pub sql: &'static str,
    /// The checksum of that SQL ([`checksum`]).
    pub checksum: String,
}

impl Planned {
    /// What the store reports once this migration is applied.
    pub fn applied(&self) -> AppliedMigration {
        AppliedMigration {
            extension: self.extension.to_owned(),
            version: self.version,
            name: self.name.to_owned(),
        }
    }
}

/// A row of `coordinator_migrations`: a migration the database recorded as applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The extension that owns it.
    pub extension: String,
    /// Its version.
    pub version: u32,
    /// The checksum of its SQL when it was applied.
    pub checksum: String,
}

/// The checksum of a migration's SQL: FNV-1a (64 bits), in hex. It detects edits, not attacks.
pub fn checksum(sql: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in sql.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Orders `framework` (the backend's own migrations) and then `migrations` (extensions in the
/// order they first appear, each extension's versions ascending) for the backend named
/// `backend`, and refuses an inconsistent set or one without SQL for this backend.
pub fn plan(
    backend: &'static str,
    framework: &[Migration],
    migrations: &[Migration],
) -> Result<Vec<Planned>, StoreError> {
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
    all.into_iter()
        .map(|m| {
            let sql = m.sql_for(backend).ok_or_else(|| {
                invalid(
                    m,
                    format!(
                        "it has no SQL for {backend}; add (\"{backend}\", \"...\") to its \
                         Migration::per_backend list"
                    ),
                )
            })?;
            Ok(Planned {
                extension: m.extension,
                version: m.version,
                name: m.name,
                sql,
                checksum: checksum(sql),
            })
        })
        .collect()
}

/// Checks the plan against what was applied: refuses if an applied migration changed, and returns
/// the ones still to apply, in order.
pub fn pending<'p>(
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

/// The migrations of `plan` not applied yet, as reported by
/// [`Store::pending_migrations`](super::Store::pending_migrations).
pub fn pending_report(
    plan: &[Planned],
    recorded: &[Recorded],
) -> Result<Vec<PendingMigration>, StoreError> {
    Ok(pending(plan, recorded)?
        .into_iter()
        .map(|p| PendingMigration {
            extension: p.extension.to_owned(),
            version: p.version,
            name: p.name.to_owned(),
        })
        .collect())
}

/// Refuses a migration whose SQL no longer matches the checksum recorded when it was applied.
pub fn check_unchanged(p: &Planned, recorded: &str) -> Result<(), StoreError> {
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
pub fn warn_if_out_of_order(p: &Planned, recorded: &[Recorded]) {
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

    fn framework() -> Vec<Migration> {
        (1..=3)
            .map(|v| ext(FRAMEWORK, v, "framework"))
            .collect::<Vec<_>>()
    }

    #[test]
    fn framework_migrations_come_first_then_extensions_by_version() {
        let plan = plan(
            "sqlite",
            &framework(),
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
            ..Migration::per_backend(1, "x", &[("sqlite", "SQLITE"), ("postgresql", "PG")])
        };
        let lite = plan("sqlite", &[], std::slice::from_ref(&m)).unwrap();
        let pg = plan("postgresql", &[], std::slice::from_ref(&m)).unwrap();
        let (lite, pg) = (lite.last().unwrap(), pg.last().unwrap());
        assert_eq!(lite.sql, "SQLITE");
        assert_eq!(pg.sql, "PG");
        assert_ne!(lite.checksum, pg.checksum);
        let e = plan("mysql", &[], &[m]).unwrap_err().to_string();
        assert!(e.contains("it has no SQL for mysql"), "{e}");
    }

    #[test]
    fn duplicate_versions_and_reserved_names_are_refused() {
        let e = plan("sqlite", &[], &[ext("a", 1, "x"), ext("a", 1, "y")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("declared twice"), "{e}");
        let e = plan("sqlite", &[], &[ext("coordinator", 2, "x")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("reserved"), "{e}");
        let e = plan("sqlite", &[], &[Migration::portable(1, "x", "")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("ExtensionBuilder::migration"), "{e}");
        let e = plan("sqlite", &[], &[ext("a", 0, "x")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("start at 1"), "{e}");
    }

    #[test]
    fn pending_skips_applied_and_refuses_edited() {
        let plan = plan(
            "sqlite",
            &framework(),
            &[ext("a", 1, "x"), ext("a", 2, "y")],
        )
        .unwrap();
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
