//! The filters pass: `[filters."<name>"]` gives each filter a pipeline of steps of its data
//! type, with a step timeout.

use std::any::TypeId;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use super::names::Names;
use super::{FilterSlot, Validation, WiredStep, WiringError, WiringWarning};
use crate::config::Config;
use crate::extension::{Declarations, Kind};

/// Compiles `[filters]` into a slot per enabled filter (declared but unwired filters get an
/// empty pipeline, with a warning; so do steps in no pipeline).
pub(super) fn compile(
    decls: &Declarations,
    config: &Config,
    names: &Names,
    v: &mut Validation,
) -> FxHashMap<&'static str, FilterSlot> {
    let errors = &mut v.errors;
    if config.timeouts.step.0.is_zero() {
        errors.push(WiringError::ZeroTimeout {
            at: "[timeouts] step".to_owned(),
        });
    }
    let mut wired_filters: FxHashMap<&'static str, FilterSlot> = FxHashMap::default();
    let mut used_steps: FxHashSet<usize> = FxHashSet::default();
    let mut filter_by_type: Option<FxHashMap<TypeId, &'static str>> = None;
    for (filter_name, fc) in &config.filters {
        let at = || format!("[filters.\"{filter_name}\"] pipeline");
        let filter = names
            .filters
            .resolve(at, filter_name, errors)
            .map(|i| &decls.filters[i]);
        if fc.pipeline.is_empty() {
            errors.push(WiringError::Empty {
                at: at(),
                what: "pipeline",
                item: "step",
                owner: "filter",
                consequence: "returns its input unchanged",
            });
        }
        let step_timeout = fc.step_timeout.map_or(config.timeouts.step.0, |t| t.0);
        if step_timeout.is_zero() {
            errors.push(WiringError::ZeroTimeout {
                at: format!("[filters.\"{filter_name}\"] step_timeout"),
            });
        }
        let mut seen: FxHashMap<&str, usize> = FxHashMap::default();
        let mut wired = Vec::with_capacity(fc.pipeline.len());
        for (pos, step_name) in fc.pipeline.iter().enumerate() {
            let item_at = || format!("[filters.\"{filter_name}\"] pipeline item {}", pos + 1);
            if let Some(first) = seen.insert(step_name, pos + 1) {
                errors.push(WiringError::ListedTwice {
                    at: item_at(),
                    kind: Kind::Step,
                    name: step_name.clone(),
                    first,
                });
                continue;
            }
            let Some(si) = names.steps.resolve(item_at, step_name, errors) else {
                continue;
            };
            used_steps.insert(si);
            let step = &decls.steps[si];
            let Some(filter) = filter else { continue };
            if step.data.id != filter.data.id {
                let by_type = filter_by_type.get_or_insert_with(|| {
                    let mut m = FxHashMap::default();
                    for name in &names.filters.names {
                        let d = &decls.filters[names.filters.enabled[name]];
                        m.entry(d.data.id).or_insert(d.name);
                    }
                    m
                });
                errors.push(WiringError::TypeMismatch {
                    at: item_at(),
                    kind: Kind::Step,
                    name: step_name.clone(),
                    its_type: step.data.name.to_owned(),
                    target_kind: Kind::Filter,
                    target: filter_name.clone(),
                    target_type: filter.data.name.to_owned(),
                    suggestion: by_type
                        .get(&step.data.id)
                        .map(|f| format!(" (such as \"{f}\")"))
                        .unwrap_or_default(),
                });
                continue;
            }
            wired.push(WiredStep {
                name: step.name,
                extension: step.extension_index,
                call: Arc::clone(&step.call),
            });
        }
        if let Some(filter) = filter {
            wired_filters.insert(
                filter.name,
                FilterSlot {
                    data: filter.data.id,
                    step_timeout,
                    steps: wired.into_boxed_slice(),
                },
            );
        }
    }

    // Declared but not wired: allowed, with a warning; such a filter gets an empty pipeline,
    // so that running it is valid and returns its input.
    for name in &names.filters.names {
        let d = &decls.filters[names.filters.enabled[name]];
        wired_filters.entry(d.name).or_insert_with(|| {
            v.warnings.push(WiringWarning::UnwiredFilter {
                filter: d.name.to_owned(),
                extension: d.extension.to_owned(),
            });
            FilterSlot {
                data: d.data.id,
                step_timeout: config.timeouts.step.0,
                steps: Box::new([]),
            }
        });
    }
    for name in &names.steps.names {
        let i = names.steps.enabled[name];
        if !used_steps.contains(&i) {
            let d = &decls.steps[i];
            v.warnings.push(WiringWarning::UnusedStep {
                step: d.name.to_owned(),
                extension: d.extension.to_owned(),
            });
        }
    }
    wired_filters
}
