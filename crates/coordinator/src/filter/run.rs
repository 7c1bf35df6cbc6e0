//! Running a filter: the data through each configured step in turn, each isolated like a
//! handler (errors, panics and timeouts become a [`FilterError`] naming the step).

use std::any::TypeId;
use std::sync::Arc;
use std::time::Instant;

use tracing::{Instrument, debug, debug_span, error};

use super::{AnyData, Filter, FilterError, FilterRun, Flow};
use crate::context::Context;
use crate::dispatch::Sender;
use crate::guard::{Guard, Guarded};
use crate::payload::Payload;

/// Runs `filter`'s pipeline on `data` as `ctx` (see [`Context::run_filter`]).
pub(crate) async fn run_filter<D: Payload>(
    ctx: &Context,
    filter: &Filter<D>,
    data: D,
) -> Result<FilterRun<D>, FilterError> {
    let name = filter.name();
    let not_declared = || FilterError::NotDeclared {
        filter: name,
        data_type: std::any::type_name::<D>(),
    };
    let slot = match ctx.runtime.wiring.filters.get(name) {
        Some(slot) if slot.data == TypeId::of::<D>() => slot,
        _ => return Err(not_declared()),
    };
    let sender = ctx.sender();
    let span = debug_span!("filter", filter = name, %sender);
    async {
        let mut data: AnyData = Box::new(data);
        let mut steps = Vec::with_capacity(slot.steps.len());
        let mut halted_by = None;
        for step in &slot.steps {
            let started = Instant::now();
            let context = Context::new(
                Arc::clone(&ctx.runtime),
                Sender::Step(step.name),
                step.extension,
            )
            .caused_by(ctx.cause());
            let guarded = Guard::new(step.call.call(context, data), slot.step_timeout)
                .instrument(debug_span!("step", step = step.name))
                .await;
            let elapsed = started.elapsed();
            let duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
            steps.push((step.name, elapsed));
            let failure = match guarded {
                Guarded::Finished(Ok(Flow::Continue(d))) => {
                    debug!(filter = name, step = step.name, duration_us, "step passed the data on");
                    data = d;
                    continue;
                }
                Guarded::Finished(Ok(Flow::Halt(d))) => {
                    debug!(filter = name, step = step.name, duration_us, "step halted the pipeline");
                    data = d;
                    halted_by = Some(step.name);
                    break;
                }
                Guarded::Finished(Err(e)) => FilterError::StepFailed {
                    filter: name,
                    step: step.name,
                    chain: e.chain(),
                },
                Guarded::Panicked { message, location } => FilterError::StepPanicked {
                    filter: name,
                    step: step.name,
                    message,
                    location,
                },
                Guarded::TimedOut => FilterError::StepTimedOut {
                    filter: name,
                    step: step.name,
                    timeout: slot.step_timeout,
                },
            };
            error!(filter = name, step = step.name, %sender, duration_us, error = %failure, "filter step failed");
            return Err(failure);
        }
        let data = *data.downcast::<D>().map_err(|_| not_declared())?;
        Ok(FilterRun {
            data,
            halted_by,
            steps,
        })
    }
    .instrument(span)
    .await
}
