//! Handlers: async functions connected to signals by configuration.

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;

use uuid::Uuid;

use crate::context::Context;
use crate::dispatch::report::Sender;
use crate::payload::Payload;
use crate::state::{FromContext, Requirement};

/// What a handler returns: a short [`Summary`] of what it did (the id of the task it enqueued,
/// say), or the error that stopped it.
pub type HandlerResult = Result<Summary, HandlerError>;

/// One delivery of a signal to a handler: the payload (through `Deref`) and where it came from.
///
/// From an event a handler can send further signals and run filters, with itself as the sender:
/// `event.context().send_robust(&OTHER_SIGNAL, payload)`.
pub struct Event<P> {
    payload: Arc<P>,
    dispatch_id: Uuid,
    signal: &'static str,
    sender: Sender,
    context: Context,
}

impl<P> Event<P> {
    /// The payload. `Event<P>` also dereferences to it.
    pub fn payload(&self) -> &P {
        &self.payload
    }

    /// The payload, shared with the other handlers of this dispatch.
    pub fn shared_payload(&self) -> Arc<P> {
        Arc::clone(&self.payload)
    }

    /// The id of the dispatch that delivered this event.
    pub fn dispatch_id(&self) -> Uuid {
        self.dispatch_id
    }

    /// The name of the signal.
    pub fn signal(&self) -> &'static str {
        self.signal
    }

    /// Who sent the signal.
    pub fn sender(&self) -> Sender {
        self.sender
    }

    /// A context whose sender is this handler, for sending signals and running filters.
    pub fn context(&self) -> &Context {
        &self.context
    }
}

impl<P> Deref for Event<P> {
    type Target = P;
    fn deref(&self) -> &P {
        &self.payload
    }
}

impl<P: fmt::Debug> fmt::Debug for Event<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("signal", &self.signal)
            .field("dispatch_id", &self.dispatch_id)
            .field("sender", &self.sender)
            .field("payload", &self.payload)
            .finish()
    }
}

/// A short description of what a handler did, recorded in the dispatch report (the id of the
/// task it enqueued, for example). Keep it short and free of personal data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary(Option<Cow<'static, str>>);

impl Summary {
    /// Nothing worth recording.
    pub const fn none() -> Self {
        Self(None)
    }

    /// The text, if any.
    pub fn as_str(&self) -> Option<&str> {
        self.0.as_deref()
    }

    pub(crate) fn into_string(self) -> Option<String> {
        self.0.map(Cow::into_owned)
    }
}

impl From<()> for Summary {
    fn from((): ()) -> Self {
        Self(None)
    }
}

impl From<&'static str> for Summary {
    fn from(s: &'static str) -> Self {
        Self(Some(Cow::Borrowed(s)))
    }
}

impl From<String> for Summary {
    fn from(s: String) -> Self {
        Self(Some(Cow::Owned(s)))
    }
}

impl From<Uuid> for Summary {
    fn from(id: Uuid) -> Self {
        Self(Some(Cow::Owned(id.to_string())))
    }
}

/// The error a handler (or filter step) returns: any error, with its chain of causes kept.
///
/// `?` converts every `std::error::Error` into it; [`HandlerError::msg`] makes one from text.
/// The dispatch report records the whole chain (`error.to_string()` of each cause).
pub struct HandlerError(Box<dyn std::error::Error + Send + Sync + 'static>);

impl HandlerError {
    /// An error with just a message.
    pub fn msg(message: impl fmt::Display) -> Self {
        Self(message.to_string().into())
    }

    /// Wraps an already boxed error.
    pub fn from_boxed(error: Box<dyn std::error::Error + Send + Sync + 'static>) -> Self {
        Self(error)
    }

    /// The error and each of its causes, outermost first.
    pub fn chain(&self) -> Vec<String> {
        let mut chain = Vec::new();
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&*self.0);
        while let Some(e) = cur {
            chain.push(e.to_string());
            cur = e.source();
        }
        chain
    }

    /// The underlying error.
    pub fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for HandlerError {
    fn from(error: E) -> Self {
        Self(Box::new(error))
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.chain().join(": "))
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A boxed, sendable future (what erased functions return).
#[doc(hidden)]
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The payload as handlers receive it before it is downcast to its type.
#[doc(hidden)]
pub type AnyPayload = Arc<dyn Any + Send + Sync>;

/// A handler with its payload type erased, so that handlers of every type can be stored together.
#[doc(hidden)]
pub trait ErasedHandler: Send + Sync {
    /// Runs the handler on one delivery.
    fn call(
        &self,
        payload: AnyPayload,
        dispatch_id: Uuid,
        signal: &'static str,
        sender: Sender,
        context: Context,
    ) -> BoxFuture<HandlerResult>;
}

/// A function that can handle events carrying `P`: `async fn(Event<P>, ...) -> Result<O, E>`,
/// where each further argument is a [`FromContext`] (a [`State<T>`](crate::State) of the
/// extension, or the [`Context`]), `O` converts into a [`Summary`] and `E` into a
/// [`HandlerError`]. `Args` is the tuple of those further arguments' types; it is inferred.
pub trait IntoHandler<P, Args>: Send + Sync + Sized + 'static {
    /// The state types it takes, checked at start-up.
    #[doc(hidden)]
    fn requirements() -> Vec<Requirement>;

    /// The handler with its types erased.
    #[doc(hidden)]
    fn into_erased(self) -> Arc<dyn ErasedHandler>;
}

pub(crate) struct TypedHandler<P, F, Args> {
    f: F,
    types: PhantomData<fn(P, Args)>,
}

/// The payload as `P`, or the error that it is not (unreachable after the wiring checks).
fn downcast<P: Payload>(payload: AnyPayload) -> Result<Arc<P>, HandlerError> {
    // Wiring checks payload types at start-up, and dispatch checks the signal's type before
    // calling, so this is unreachable; report it rather than panic if it ever is.
    payload.downcast::<P>().map_err(|_| {
        HandlerError::msg(format!(
            "internal error: payload is not a {}",
            std::any::type_name::<P>()
        ))
    })
}

macro_rules! handler_arity {
    ($($arg:ident),*) => {
        impl<P, F, Fut, O, E, $($arg,)*> IntoHandler<P, ($($arg,)*)> for F
        where
            P: Payload,
            F: Fn(Event<P>, $($arg,)*) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = Result<O, E>> + Send + 'static,
            O: Into<Summary>,
            E: Into<HandlerError>,
            $($arg: FromContext,)*
        {
            fn requirements() -> Vec<Requirement> {
                let all: &[Option<Requirement>] = &[$($arg::requirement(),)*];
                all.iter().flatten().copied().collect()
            }

            fn into_erased(self) -> Arc<dyn ErasedHandler> {
                Arc::new(TypedHandler::<P, F, ($($arg,)*)> { f: self, types: PhantomData })
            }
        }

        impl<P, F, Fut, O, E, $($arg,)*> ErasedHandler for TypedHandler<P, F, ($($arg,)*)>
        where
            P: Payload,
            F: Fn(Event<P>, $($arg,)*) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = Result<O, E>> + Send + 'static,
            O: Into<Summary>,
            E: Into<HandlerError>,
            $($arg: FromContext,)*
        {
            #[allow(non_snake_case)]
            fn call(
                &self,
                payload: AnyPayload,
                dispatch_id: Uuid,
                signal: &'static str,
                sender: Sender,
                context: Context,
            ) -> BoxFuture<HandlerResult> {
                let taken = (|| {
                    Ok::<_, HandlerError>((downcast::<P>(payload)?, $($arg::from_context(&context)?,)*))
                })();
                let (payload, $($arg,)*) = match taken {
                    Ok(taken) => taken,
                    Err(e) => return Box::pin(std::future::ready(Err(e))),
                };
                let event = Event { payload, dispatch_id, signal, sender, context };
                let fut = (self.f)(event, $($arg,)*);
                Box::pin(async move { fut.await.map(Into::into).map_err(Into::into) })
            }
        }
    };
}

handler_arity!();
handler_arity!(A1);
handler_arity!(A1, A2);
handler_arity!(A1, A2, A3);
handler_arity!(A1, A2, A3, A4);

/// The type of a payload or filter data, for wiring checks and messages.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TypeInfo {
    pub(crate) id: TypeId,
    pub(crate) name: &'static str,
    pub(crate) schema: fn() -> serde_json::Value,
    /// Reads a stored payload (a durable delivery's) back into its type.
    pub(crate) decode: fn(serde_json::Value) -> Result<AnyPayload, serde_json::Error>,
    /// A stored payload with its personal data redacted; `None` if it is not of this type.
    pub(crate) redact: fn(&serde_json::Value) -> Option<serde_json::Value>,
}

impl TypeInfo {
    pub(crate) fn of<P: Payload>() -> Self {
        Self {
            id: TypeId::of::<P>(),
            name: std::any::type_name::<P>(),
            schema: crate::payload::schema_of::<P>,
            decode: |value| Ok(Arc::new(serde_json::from_value::<P>(value)?) as AnyPayload),
            redact: |value| {
                P::deserialize(value)
                    .ok()
                    .map(|p| crate::payload::redacted_json(&p))
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("CRM request failed")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn handler_error_keeps_the_whole_chain() {
        let e: HandlerError = Outer(std::io::Error::other("connection refused")).into();
        assert_eq!(e.chain(), ["CRM request failed", "connection refused"]);
        assert_eq!(format!("{e:?}"), "CRM request failed: connection refused");
    }

    #[test]
    fn summaries_from_common_types() {
        assert_eq!(Summary::from(()).as_str(), None);
        assert_eq!(Summary::from("x").as_str(), Some("x"));
        assert_eq!(Summary::from(Uuid::nil()).as_str().unwrap().len(), 36);
    }
}
