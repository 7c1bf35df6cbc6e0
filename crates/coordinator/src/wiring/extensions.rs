//! The extensions pass: each enabled extension's own parts, its settings table, its state and
//! its migrations (its routes have a pass of their own, [`super::routes`]).

use rustc_hash::{FxHashMap, FxHashSet};

use super::WiringError;
use crate::config::Config;
use crate::extension::Declarations;
use crate::names;

/// `[extension.<name>]` tables name enabled extensions that take settings.
pub(super) fn check_settings_tables(
    decls: &Declarations,
    config: &Config,
    enabled: &FxHashSet<&'static str>,
    errors: &mut Vec<WiringError>,
) {
    for name in config.extension.keys() {
        let problem = match decls.extensions.iter().find(|e| e.name == name) {
            None => Some(format!(
                "there is no extension \"{name}\"{}; remove this table",
                names::hint(name, decls.extensions.iter().map(|e| e.name))
            )),
            Some(e) if !enabled.contains(e.name) => Some(format!(
                "extension \"{name}\" is not enabled; add it to [extensions] enabled or remove this table"
            )),
            Some(e) if e.settings_schema.is_none() => Some(format!(
                "extension \"{name}\" takes no settings; remove this table"
            )),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            errors.push(WiringError::StraySettings {
                name: name.clone(),
                problem,
            });
        }
    }
}

/// Each enabled extension: its settings read, its state registered once per type, its
/// migrations of distinct positive versions.
pub(super) fn check_parts(
    decls: &Declarations,
    enabled: &FxHashSet<&'static str>,
    errors: &mut Vec<WiringError>,
) {
    for ext in decls.extensions.iter().filter(|e| enabled.contains(e.name)) {
        for message in ext.settings_error.iter().chain(&ext.settings_problems) {
            errors.push(WiringError::InvalidSettings {
                extension: ext.name.to_owned(),
                message: message.clone(),
            });
        }
        for type_name in &ext.state_twice {
            errors.push(WiringError::StateTwice {
                extension: ext.name.to_owned(),
                type_name: (*type_name).to_owned(),
            });
        }
        let mut versions: FxHashMap<u32, &str> = FxHashMap::default();
        for m in &ext.migrations {
            let problem = if m.version == 0 {
                Some("has version 0; versions start at 1".to_owned())
            } else {
                versions.insert(m.version, m.name).map(|other| {
                    format!(
                        "reuses the version of migration \"{other}\"; give it the next free version"
                    )
                })
            };
            if let Some(problem) = problem {
                errors.push(WiringError::InvalidMigration {
                    extension: ext.name.to_owned(),
                    version: m.version,
                    name: m.name.to_owned(),
                    problem,
                });
            }
        }
    }
}
