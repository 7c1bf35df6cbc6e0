//! The tasks pass: each enabled task's policy, its declaration overridden by
//! `[tasks."<name>"]`, and the `[worker]` that runs them.

use std::sync::Arc;
use std::time::Duration;

use rustc_hash::FxHashMap;

use super::names::{Index, at_str};
use super::{TaskKind, WiredTask, WiringError, WiringWarning};
use crate::config::{Config, ConfigDuration};
use crate::extension::Declarations;
use crate::names;
use crate::task::RetryPolicy;

/// Resolves each enabled task's settings: its declaration, overridden by `[tasks."<name>"]`.
pub(super) fn compile(
    decls: &Declarations,
    config: &Config,
    tasks: &Index,
    errors: &mut Vec<WiringError>,
) -> FxHashMap<Box<str>, WiredTask> {
    for name in config.tasks.keys() {
        tasks.resolve(|| format!("[tasks.\"{name}\"]"), name, errors);
    }
    let mut wired = FxHashMap::default();
    for name in &tasks.names {
        let d = &decls.tasks[tasks.enabled[name]];
        let o = config.tasks.get(d.name).cloned().unwrap_or_default();
        let retry = retry_policy(
            o.max_attempts,
            o.initial_backoff,
            o.max_backoff,
            d.defaults.retry,
        );
        let timeout = o.timeout.map_or(d.defaults.timeout, |t| t.0);
        let queue = o.queue.unwrap_or_else(|| d.defaults.queue.to_owned());
        let at = if config.tasks.contains_key(d.name) {
            format!("[tasks.\"{}\"]", d.name)
        } else {
            format!("task \"{}\" declared at {}", d.name, at_str(d.at))
        };
        check_policy(&at, &retry, timeout, &queue, errors);
        wired.insert(
            d.name.into(),
            WiredTask {
                name: d.name,
                kind: TaskKind::Task,
                extension: d.extension_index,
                payload: d.payload.id,
                payload_name: d.payload.name,
                retry,
                timeout,
                queue,
                call: Arc::clone(&d.call),
            },
        );
    }
    wired
}

/// A retry policy: `defaults`, overridden by the settings given.
pub(super) fn retry_policy(
    max_attempts: Option<u32>,
    initial_backoff: Option<ConfigDuration>,
    max_backoff: Option<ConfigDuration>,
    defaults: RetryPolicy,
) -> RetryPolicy {
    RetryPolicy {
        max_attempts: max_attempts.unwrap_or(defaults.max_attempts),
        initial_backoff: initial_backoff.map_or(defaults.initial_backoff, |t| t.0),
        max_backoff: max_backoff.map_or(defaults.max_backoff, |t| t.0),
    }
}

/// Checks the policy, timeout and queue that tasks (or deliveries) of `at` run with.
pub(super) fn check_policy(
    at: &str,
    retry: &RetryPolicy,
    timeout: Duration,
    queue: &str,
    errors: &mut Vec<WiringError>,
) {
    let mut problem = |message: String| {
        errors.push(WiringError::Setting {
            at: at.to_owned(),
            message,
        });
    };
    if retry.max_attempts == 0 {
        problem("max_attempts is 0, so the task would never run; use 1 or more".to_owned());
    }
    if retry.initial_backoff > retry.max_backoff {
        problem(format!(
            "initial_backoff ({}) is longer than max_backoff ({}); make max_backoff at least initial_backoff",
            ConfigDuration(retry.initial_backoff),
            ConfigDuration(retry.max_backoff)
        ));
    }
    if timeout.is_zero() {
        problem(
            "a timeout of zero would fail every attempt; use a positive duration such as \"30s\""
                .to_owned(),
        );
    }
    if !names::is_snake_case(queue) {
        problem(format!(
            "queue \"{queue}\" is not a snake_case name; write \"{}\"",
            names::to_snake_case(queue)
        ));
    }
}

/// `[worker]`: sensible numbers, and queues that some task uses.
pub(super) fn check_worker(
    config: &Config,
    tasks: &FxHashMap<Box<str>, WiredTask>,
    errors: &mut Vec<WiringError>,
    warnings: &mut Vec<WiringWarning>,
) {
    let w = &config.worker;
    if w.concurrency == 0 {
        errors.push(WiringError::Setting {
            at: "[worker] concurrency".to_owned(),
            message: "0 would run no task; use 1 or more".to_owned(),
        });
    }
    for (key, d) in [("lease", w.lease), ("poll_interval", w.poll_interval)] {
        if d.0.is_zero() {
            errors.push(WiringError::ZeroTimeout {
                at: format!("[worker] {key}"),
            });
        }
    }
    for queue in &w.queues {
        if !tasks.values().any(|t| &t.queue == queue) {
            warnings.push(WiringWarning::IdleQueue {
                queue: queue.clone(),
            });
        }
    }
}
