//! The names pass: which extensions run, and an index of every name they declare (valid, and
//! claimed once), through which the other passes resolve the names the configuration uses.

use rustc_hash::{FxHashMap, FxHashSet};

use super::WiringError;
use crate::config::Config;
use crate::extension::{Declarations, DeclaredAt, Kind};
use crate::names;

/// `file:line` of a declaration.
pub(super) fn at_str(at: DeclaredAt) -> String {
    format!("{}:{}", at.file(), at.line())
}

/// The enabled extensions: unique, well-named, and those `[extensions] enabled` lists exist.
pub(super) fn enabled_extensions(
    decls: &Declarations,
    config: &Config,
    errors: &mut Vec<WiringError>,
) -> FxHashSet<&'static str> {
    let mut by_name: FxHashMap<&'static str, &'static str> = FxHashMap::default();
    for ext in &decls.extensions {
        if !names::is_snake_case(ext.name) {
            errors.push(WiringError::InvalidExtensionName {
                name: ext.name.to_owned(),
                type_name: ext.type_name.to_owned(),
                suggestion: names::to_snake_case(ext.name),
            });
        }
        if let Some(first) = by_name.insert(ext.name, ext.type_name) {
            errors.push(WiringError::DuplicateExtension {
                name: ext.name.to_owned(),
                first: first.to_owned(),
                second: ext.type_name.to_owned(),
            });
        }
    }
    let mut enabled: FxHashSet<&'static str> = FxHashSet::default();
    let Some(list) = &config.extensions.enabled else {
        enabled.extend(decls.extensions.iter().map(|e| e.name));
        return enabled;
    };
    for name in list {
        match decls.extensions.iter().find(|e| e.name == name) {
            Some(ext) => {
                if !enabled.insert(ext.name) {
                    errors.push(WiringError::ExtensionListedTwice { name: name.clone() });
                }
            }
            None => {
                let mut available: Vec<&str> = decls.extensions.iter().map(|e| e.name).collect();
                available.sort_unstable();
                errors.push(WiringError::UnknownExtension {
                    name: name.clone(),
                    hint: names::hint(name, available.iter().copied()),
                    available: if available.is_empty() {
                        "(none)".to_owned()
                    } else {
                        available.join(", ")
                    },
                });
            }
        }
    }
    enabled
}

/// Every kind of declared name, indexed.
pub(super) struct Names {
    pub(super) signals: Index,
    pub(super) handlers: Index,
    pub(super) filters: Index,
    pub(super) steps: Index,
    pub(super) tasks: Index,
}

impl Names {
    /// Indexes the declarations of the enabled extensions, checking names and duplicates.
    pub(super) fn index(
        decls: &Declarations,
        enabled: &FxHashSet<&'static str>,
        errors: &mut Vec<WiringError>,
    ) -> Self {
        macro_rules! index {
            ($kind:expr, $list:expr) => {
                Index::build(
                    $kind,
                    $list.iter().map(|d| (d.name, d.extension, d.at)),
                    enabled,
                    errors,
                )
            };
        }
        Names {
            signals: index!(Kind::Signal, decls.signals),
            handlers: index!(Kind::Handler, decls.handlers),
            filters: index!(Kind::Filter, decls.filters),
            steps: index!(Kind::Step, decls.steps),
            tasks: index!(Kind::Task, decls.tasks),
        }
    }
}

/// One kind of declaration, indexed by name.
pub(super) struct Index {
    kind: Kind,
    /// Enabled declarations by name (the first, if a name is declared twice).
    pub(super) enabled: FxHashMap<&'static str, usize>,
    /// Names declared by disabled extensions, with the extension.
    disabled: FxHashMap<&'static str, &'static str>,
    /// The enabled names, in declaration order.
    pub(super) names: Vec<&'static str>,
}

impl Index {
    /// Adds (name, extension, declared at) for each declaration, checking names and duplicates.
    fn build(
        kind: Kind,
        decls: impl Iterator<Item = (&'static str, &'static str, DeclaredAt)>,
        enabled: &FxHashSet<&'static str>,
        errors: &mut Vec<WiringError>,
    ) -> Self {
        let mut index = Index {
            kind,
            enabled: FxHashMap::default(),
            disabled: FxHashMap::default(),
            names: Vec::new(),
        };
        let mut first_at: FxHashMap<&'static str, (&'static str, DeclaredAt)> =
            FxHashMap::default();
        for (i, (name, extension, at)) in decls.enumerate() {
            if !enabled.contains(extension) {
                index.disabled.entry(name).or_insert(extension);
                continue;
            }
            if let Some(problem) = names::dotted_name_problem(name, extension) {
                errors.push(WiringError::InvalidName {
                    kind,
                    name: name.to_owned(),
                    extension: extension.to_owned(),
                    at: at_str(at),
                    problem,
                });
            }
            match first_at.get(name) {
                Some((first, first_decl_at)) => errors.push(WiringError::DuplicateName {
                    kind,
                    name: name.to_owned(),
                    first: (*first).to_owned(),
                    first_at: at_str(first_decl_at),
                    second: extension.to_owned(),
                    second_at: at_str(at),
                }),
                None => {
                    first_at.insert(name, (extension, at));
                    index.enabled.insert(name, i);
                    index.names.push(name);
                }
            }
        }
        index
    }

    /// Looks up a configured name, recording an error if it is unknown or not enabled.
    pub(super) fn resolve(
        &self,
        at: impl FnOnce() -> String,
        name: &str,
        errors: &mut Vec<WiringError>,
    ) -> Option<usize> {
        if let Some(i) = self.enabled.get(name) {
            return Some(*i);
        }
        let at = at();
        if let Some(extension) = self.disabled.get(name) {
            errors.push(WiringError::NotEnabled {
                at,
                kind: self.kind,
                name: name.to_owned(),
                extension: (*extension).to_owned(),
            });
        } else {
            errors.push(WiringError::Unknown {
                at,
                kind: self.kind,
                name: name.to_owned(),
                hint: names::hint(name, self.names.iter().copied()),
            });
        }
        None
    }
}
