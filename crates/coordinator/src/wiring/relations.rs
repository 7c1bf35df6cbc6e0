//! The relations pass: what handlers and tasks say they enqueue and send exists, and what
//! they take from their extension's state is registered.

use rustc_hash::FxHashSet;

use super::WiringError;
use super::names::{Names, at_str};
use crate::extension::{Declarations, Kind};

/// The tasks and signals that handlers and tasks say they enqueue and send must exist.
pub(super) fn check(
    decls: &Declarations,
    names: &Names,
    enabled: &FxHashSet<&'static str>,
    errors: &mut Vec<WiringError>,
) {
    let (signals, tasks) = (&names.signals, &names.tasks);
    let who = decls
        .handlers
        .iter()
        .filter(|h| enabled.contains(h.extension))
        .map(|h| (Kind::Handler, h.name, h.at, &h.enqueues, &h.sends))
        .chain(
            decls
                .tasks
                .iter()
                .filter(|t| enabled.contains(t.extension))
                .map(|t| (Kind::Task, t.name, t.at, &t.enqueues, &t.sends)),
        );
    for (kind, name, at, enqueues, sends) in who {
        let at = || format!("{kind} \"{name}\" declared at {}", at_str(at));
        for task in enqueues.iter() {
            tasks.resolve(at, task, errors);
        }
        for signal in sends.iter() {
            signals.resolve(at, signal, errors);
        }
    }
}

/// Each handler, step and task takes only state its extension registers.
pub(super) fn check_state(
    decls: &Declarations,
    enabled: &FxHashSet<&'static str>,
    errors: &mut Vec<WiringError>,
) {
    let takers = decls
        .handlers
        .iter()
        .map(|h| (Kind::Handler, h.name, h.at, h.extension_index, &h.requires))
        .chain(
            decls
                .steps
                .iter()
                .map(|s| (Kind::Step, s.name, s.at, s.extension_index, &s.requires)),
        )
        .chain(
            decls
                .tasks
                .iter()
                .map(|t| (Kind::Task, t.name, t.at, t.extension_index, &t.requires)),
        );
    for (kind, name, at, extension, requires) in takers {
        let ext = &decls.extensions[extension];
        if !enabled.contains(ext.name) {
            continue;
        }
        for missing in requires.iter().filter(|r| !ext.state.contains(r.id)) {
            errors.push(WiringError::MissingState {
                kind,
                name: name.to_owned(),
                at: at_str(at),
                type_name: missing.name.to_owned(),
                extension: ext.name.to_owned(),
            });
        }
    }
}
