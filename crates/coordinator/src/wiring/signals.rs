//! The signals pass: `[signals]` connects each signal to handlers of its payload type, with the
//! timeouts of `[timeouts]` and `[handlers."<name>"]`; each handler of a durable signal gets
//! its delivery task (`deliver:<handler>`), retried and queued as `[handlers."<name>"]` says.

use std::any::TypeId;
use std::sync::Arc;
use std::time::Duration;

use rustc_hash::{FxHashMap, FxHashSet};

use super::names::Names;
use super::tasks::{check_policy, retry_policy};
use super::{
    DeliveryTarget, SignalSlot, TaskKind, Validation, WiredHandler, WiredTask, WiringError,
    WiringWarning,
};
use crate::config::Config;
use crate::extension::{Declarations, Kind};
use crate::task::RetryPolicy;
use crate::task::delivery::{Delivery, delivery_task};

/// Compiles `[signals]` into a slot per enabled signal (declared but unwired signals get an
/// empty one, with a warning; so do handlers connected to nothing).
pub(super) fn compile(
    decls: &Declarations,
    config: &Config,
    names: &Names,
    tasks: &mut FxHashMap<Box<str>, WiredTask>,
    v: &mut Validation,
) -> FxHashMap<&'static str, SignalSlot> {
    let errors = &mut v.errors;
    let handler_timeout = handler_timeouts(config, names, errors);
    let default_timeout = config.timeouts.handler.0;
    let mut wired_signals: FxHashMap<&'static str, SignalSlot> = FxHashMap::default();
    let mut connected: FxHashSet<usize> = FxHashSet::default();
    let mut signal_by_type: Option<FxHashMap<TypeId, &'static str>> = None;
    for (signal_name, signal_config) in &config.signals {
        let list = &signal_config.handlers;
        let at = || format!("[signals] \"{signal_name}\"");
        let signal = names
            .signals
            .resolve(at, signal_name, errors)
            .map(|i| &decls.signals[i]);
        let durable = signal_config.durable || signal.is_some_and(|s| s.durable);
        if list.is_empty() {
            errors.push(WiringError::Empty {
                at: at(),
                what: "handler list",
                item: "handler",
                owner: "signal",
                consequence: "simply has no handlers",
            });
        }
        let mut seen: FxHashMap<&str, usize> = FxHashMap::default();
        let mut wired = Vec::with_capacity(list.len());
        for (pos, handler_name) in list.iter().enumerate() {
            let item_at = || format!("[signals] \"{signal_name}\" item {}", pos + 1);
            if let Some(first) = seen.insert(handler_name, pos + 1) {
                errors.push(WiringError::ListedTwice {
                    at: item_at(),
                    kind: Kind::Handler,
                    name: handler_name.clone(),
                    first,
                });
                continue;
            }
            let Some(hi) = names.handlers.resolve(item_at, handler_name, errors) else {
                continue;
            };
            let handler = &decls.handlers[hi];
            connected.insert(hi);
            let Some(signal) = signal else { continue };
            if handler.payload.id != signal.payload.id {
                let by_type = signal_by_type.get_or_insert_with(|| {
                    let mut m = FxHashMap::default();
                    for name in &names.signals.names {
                        let d = &decls.signals[names.signals.enabled[name]];
                        m.entry(d.payload.id).or_insert(d.name);
                    }
                    m
                });
                errors.push(WiringError::TypeMismatch {
                    at: item_at(),
                    kind: Kind::Handler,
                    name: handler_name.clone(),
                    its_type: handler.payload.name.to_owned(),
                    target_kind: Kind::Signal,
                    target: signal_name.clone(),
                    target_type: signal.payload.name.to_owned(),
                    suggestion: by_type
                        .get(&handler.payload.id)
                        .map(|s| format!(" (such as \"{s}\")"))
                        .unwrap_or_default(),
                });
                continue;
            }
            let timeout = handler_timeout.get(&hi).copied().unwrap_or(default_timeout);
            let delivery = durable.then(|| delivery(decls, config, hi, timeout, tasks, errors));
            wired.push(WiredHandler {
                name: handler.name,
                extension: handler.extension_index,
                timeout,
                call: Arc::clone(&handler.call),
                delivery,
            });
        }
        if let Some(signal) = signal {
            wired_signals.insert(
                signal.name,
                SignalSlot {
                    payload: signal.payload.id,
                    handlers: wired.into_boxed_slice(),
                    durable,
                },
            );
        }
    }

    // Declared but not wired: allowed, with a warning; such a signal still gets an (empty)
    // slot, so that sending it is valid and does nothing.
    for name in &names.signals.names {
        let d = &decls.signals[names.signals.enabled[name]];
        wired_signals.entry(d.name).or_insert_with(|| {
            v.warnings.push(WiringWarning::UnwiredSignal {
                signal: d.name.to_owned(),
                extension: d.extension.to_owned(),
            });
            SignalSlot {
                payload: d.payload.id,
                handlers: Box::new([]),
                durable: d.durable,
            }
        });
    }
    for (name, hc) in &config.handlers {
        if hc.has_delivery_settings() && !tasks.contains_key(delivery_task(name).as_str()) {
            v.warnings.push(WiringWarning::UnusedDeliverySettings {
                handler: name.clone(),
            });
        }
    }
    for name in &names.handlers.names {
        let i = names.handlers.enabled[name];
        if !connected.contains(&i) {
            let d = &decls.handlers[i];
            v.warnings.push(WiringWarning::UnusedHandler {
                handler: d.name.to_owned(),
                extension: d.extension.to_owned(),
            });
        }
    }
    wired_signals
}

/// The delivery target of handler `hi` for a durable signal, its delivery task wired the
/// first time: retried and queued as `[handlers."<name>"]` says, with the handler's timeout.
fn delivery(
    decls: &Declarations,
    config: &Config,
    hi: usize,
    timeout: std::time::Duration,
    tasks: &mut FxHashMap<Box<str>, WiredTask>,
    errors: &mut Vec<WiringError>,
) -> DeliveryTarget {
    let handler = &decls.handlers[hi];
    let task = delivery_task(handler.name);
    let wired = tasks
        .entry(task.clone().into_boxed_str())
        .or_insert_with(|| {
            let hc = config
                .handlers
                .get(handler.name)
                .cloned()
                .unwrap_or_default();
            let retry = retry_policy(
                hc.max_attempts,
                hc.initial_backoff,
                hc.max_backoff,
                RetryPolicy::DEFAULT,
            );
            let queue = hc.queue.unwrap_or_else(|| "default".to_owned());
            let at = format!("[handlers.\"{}\"]", handler.name);
            check_policy(&at, &retry, timeout, &queue, errors);
            WiredTask {
                name: handler.name,
                kind: TaskKind::Delivery,
                extension: handler.extension_index,
                payload: handler.payload.id,
                payload_name: handler.payload.name,
                retry,
                timeout,
                queue,
                call: Arc::new(Delivery::new(
                    handler.name,
                    Arc::clone(&handler.call),
                    handler.payload,
                )),
            }
        });
    DeliveryTarget {
        task: task.into_boxed_str(),
        queue: wired.queue.clone(),
        max_attempts: wired.retry.max_attempts,
    }
}

/// `[timeouts] handler` and each `[handlers."<name>"]` timeout, by handler.
fn handler_timeouts(
    config: &Config,
    names: &Names,
    errors: &mut Vec<WiringError>,
) -> FxHashMap<usize, Duration> {
    if config.timeouts.handler.0.is_zero() {
        errors.push(WiringError::ZeroTimeout {
            at: "[timeouts] handler".to_owned(),
        });
    }
    let mut timeouts = FxHashMap::default();
    for (name, hc) in &config.handlers {
        let at = || format!("[handlers.\"{name}\"]");
        let Some(i) = names.handlers.resolve(at, name, errors) else {
            continue;
        };
        if let Some(t) = hc.timeout {
            if t.0.is_zero() {
                errors.push(WiringError::ZeroTimeout {
                    at: format!("[handlers.\"{name}\"] timeout"),
                });
            }
            timeouts.insert(i, t.0);
        }
    }
    timeouts
}
