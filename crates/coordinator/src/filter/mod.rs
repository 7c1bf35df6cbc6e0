//! Filters: named request/response pipelines whose steps come from configuration.
//!
//! A caller that needs an answer (where to send a learner to pay, say) runs a filter with some
//! data. Each configured step receives the data and returns it, possibly changed
//! ([`Flow::Continue`]), or stops the pipeline with it ([`Flow::Halt`]), or fails. A failure is
//! always an error naming the step: pipelines never fail silently. The runner is in `run.rs`.

pub(crate) mod run;

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::context::Context;
use crate::handler::{BoxFuture, HandlerError};
use crate::payload::Payload;
use crate::state::{FromContext, Requirement};

/// A filter: a named pipeline that passes data of type `D` through the steps configured for it.
///
/// Declare it as a `static` and register it with
/// [`ExtensionBuilder::filter`](crate::ExtensionBuilder::filter); its name is
/// `<extension>.<thing>_requested`.
///
/// ```
/// use coordinator::prelude::*;
///
/// #[derive(Debug, Serialize, Deserialize, JsonSchema)]
/// pub struct PaymentPage { pub sku: String, pub url: Option<String> }
///
/// pub static PAYMENT_PAGE_REQUESTED: Filter<PaymentPage> = Filter::new(
///     "lms.payment_page_redirect_requested",
///     "Where to send a learner who wants to pay for a SKU.",
/// );
/// ```
pub struct Filter<D> {
    name: &'static str,
    doc: &'static str,
    data: PhantomData<fn() -> D>,
}

impl<D: Payload> Filter<D> {
    /// Defines a filter. Validation at start-up checks the name.
    pub const fn new(name: &'static str, doc: &'static str) -> Self {
        Self {
            name,
            doc,
            data: PhantomData,
        }
    }

    /// The filter's full name.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// What the filter answers, for the catalog.
    pub const fn doc(&self) -> &'static str {
        self.doc
    }
}

impl<D> fmt::Debug for Filter<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filter")
            .field("name", &self.name)
            .field("data", &std::any::type_name::<D>())
            .finish()
    }
}

/// What a step decides: pass the data on to the next step, or stop the pipeline with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow<D> {
    /// Pass the data to the next step (or return it, after the last step).
    Continue(D),
    /// Stop here: the remaining steps do not run and the caller gets this data.
    Halt(D),
}

/// The error a step returns: any error, with its chain of causes.
pub type StepError = HandlerError;

/// What a step returns.
pub type StepResult<D> = Result<Flow<D>, StepError>;

/// The result of running a filter: the final data, which step halted the pipeline (if one did),
/// and how long each step that ran took.
#[derive(Debug)]
pub struct FilterRun<D> {
    /// The data as the last step that ran returned it.
    pub data: D,
    /// The step that returned [`Flow::Halt`], if any.
    pub halted_by: Option<&'static str>,
    /// Each step that ran, in order, with its duration.
    pub steps: Vec<(&'static str, Duration)>,
}

impl<D> FilterRun<D> {
    /// Just the data.
    pub fn into_data(self) -> D {
        self.data
    }
}

/// Why a filter produced no answer. Every variant names the filter and, where one is to blame,
/// the step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// A step returned an error.
    #[error("filter \"{filter}\" failed at step \"{step}\": {}", chain.join(": "))]
    StepFailed {
        /// The filter.
        filter: &'static str,
        /// The step that failed.
        step: &'static str,
        /// The error and its causes, outermost first.
        chain: Vec<String>,
    },
    /// A step panicked.
    #[error("filter \"{filter}\" failed at step \"{step}\": the step panicked at {}: {message}", location.as_deref().unwrap_or("an unknown location"))]
    StepPanicked {
        /// The filter.
        filter: &'static str,
        /// The step that panicked.
        step: &'static str,
        /// The panic message.
        message: String,
        /// Where it panicked (`file:line:column`).
        location: Option<String>,
    },
    /// A step did not finish within its timeout.
    #[error(
        "filter \"{filter}\" failed at step \"{step}\": the step did not finish within {timeout:?}; raise [filters.\"{filter}\"] step_timeout if it is legitimately slow"
    )]
    StepTimedOut {
        /// The filter.
        filter: &'static str,
        /// The step that was too slow.
        step: &'static str,
        /// The timeout it exceeded.
        timeout: Duration,
    },
    /// The filter is not declared by an enabled extension with this data type.
    #[error(
        "filter \"{filter}\" with data `{data_type}` is not declared by any enabled extension; declare it with ExtensionBuilder::filter and enable its extension"
    )]
    NotDeclared {
        /// The filter.
        filter: &'static str,
        /// The data type it was run with.
        data_type: &'static str,
    },
}

/// Filter data before it is downcast to its type.
#[doc(hidden)]
pub type AnyData = Box<dyn Any + Send>;

/// A step with its data type erased.
#[doc(hidden)]
pub trait ErasedStep: Send + Sync {
    /// Runs the step on the data.
    fn call(&self, context: Context, data: AnyData) -> BoxFuture<Result<Flow<AnyData>, StepError>>;
}

/// A function that can be a step of filters of `D`: `async fn(Context, D, ...) -> StepResult<D>`,
/// where each further argument is a [`FromContext`] (a [`State<T>`](crate::State) of the
/// extension). `Args` is the tuple of those further arguments' types; it is inferred.
pub trait IntoStep<D, Args>: Send + Sync + Sized + 'static {
    /// The state types it takes, checked at start-up.
    #[doc(hidden)]
    fn requirements() -> Vec<Requirement>;

    /// The step with its types erased.
    #[doc(hidden)]
    fn into_erased(self) -> Arc<dyn ErasedStep>;
}

struct TypedStep<D, F, Args> {
    f: F,
    types: PhantomData<fn(D, Args)>,
}

macro_rules! step_arity {
    ($($arg:ident),*) => {
        impl<D, F, Fut, $($arg,)*> IntoStep<D, ($($arg,)*)> for F
        where
            D: Payload,
            F: Fn(Context, D, $($arg,)*) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = StepResult<D>> + Send + 'static,
            $($arg: FromContext,)*
        {
            fn requirements() -> Vec<Requirement> {
                let all: &[Option<Requirement>] = &[$($arg::requirement(),)*];
                all.iter().flatten().copied().collect()
            }

            fn into_erased(self) -> Arc<dyn ErasedStep> {
                Arc::new(TypedStep::<D, F, ($($arg,)*)> { f: self, types: PhantomData })
            }
        }

        impl<D, F, Fut, $($arg,)*> ErasedStep for TypedStep<D, F, ($($arg,)*)>
        where
            D: Payload,
            F: Fn(Context, D, $($arg,)*) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = StepResult<D>> + Send + 'static,
            $($arg: FromContext,)*
        {
            #[allow(non_snake_case)]
            fn call(&self, context: Context, data: AnyData) -> BoxFuture<Result<Flow<AnyData>, StepError>> {
                let taken = (|| {
                    // Unreachable after wiring checked step and filter types; reported, not
                    // panicked.
                    let data = data.downcast::<D>().map_err(|_| {
                        StepError::msg(format!(
                            "internal error: filter data is not a {}",
                            std::any::type_name::<D>()
                        ))
                    })?;
                    Ok::<_, StepError>((*data, $($arg::from_context(&context)?,)*))
                })();
                let (data, $($arg,)*) = match taken {
                    Ok(taken) => taken,
                    Err(e) => return Box::pin(std::future::ready(Err(e))),
                };
                let fut = (self.f)(context, data, $($arg,)*);
                Box::pin(async move {
                    Ok(match fut.await? {
                        Flow::Continue(d) => Flow::Continue(Box::new(d) as AnyData),
                        Flow::Halt(d) => Flow::Halt(Box::new(d) as AnyData),
                    })
                })
            }
        }
    };
}

step_arity!();
step_arity!(A1);
step_arity!(A1, A2);
step_arity!(A1, A2, A3);
