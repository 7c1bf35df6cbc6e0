//! Shared state, registered once on the extension builder and taken by type by the extension's
//! handlers, filter steps, tasks and routes: [`State<T>`], as in axum and bevy.
//!
//! ```
//! use coordinator::prelude::*;
//!
//! #[derive(Clone)]
//! struct Lms { base_url: String }
//!
//! #[derive(Debug, Serialize, Deserialize, JsonSchema)]
//! pub struct OrderPlaced { pub order_number: String }
//!
//! async fn enroll(event: Event<OrderPlaced>, State(lms): State<Lms>) -> HandlerResult {
//!     Ok(format!("{} for {}", lms.base_url, event.order_number).into())
//! }
//!
//! struct Shop;
//! impl Extension for Shop {
//!     fn name(&self) -> &'static str { "shop" }
//!     fn build(&self, ext: &mut ExtensionBuilder<'_>) {
//!         ext.state(Lms { base_url: "https://lms.example".into() })
//!             .handler("shop.enroll", "Enrolls.", enroll);
//!     }
//! }
//! ```
//!
//! A handler, step or task that takes a `State<T>` its extension did not register is refused
//! at start-up, with every other problem. A route cannot be inspected that way: it answers 500
//! naming the missing type (and `testing::check_extension` reports it).

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::context::Context;
use crate::handler::HandlerError;

/// A value of type `T` that the extension registered with
/// [`ExtensionBuilder::state`](crate::ExtensionBuilder::state), cloned for each use (wrap what
/// is expensive to clone in an `Arc`; clients usually are cheap handles already).
#[derive(Clone, Copy, Debug, Default)]
pub struct State<T>(pub T);

impl<T> std::ops::Deref for State<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// The state values of one extension, by type.
#[derive(Clone, Default)]
pub(crate) struct StateMap(FxHashMap<TypeId, (Arc<dyn Any + Send + Sync>, &'static str)>);

impl fmt::Debug for StateMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.values().map(|(_, name)| name))
            .finish()
    }
}

impl StateMap {
    pub(crate) fn insert<T: Send + Sync + 'static>(&mut self, value: T) -> Option<&'static str> {
        self.0
            .insert(
                TypeId::of::<T>(),
                (Arc::new(value), std::any::type_name::<T>()),
            )
            .map(|(_, name)| name)
    }

    pub(crate) fn get<T: 'static>(&self) -> Option<&T> {
        self.0
            .get(&TypeId::of::<T>())
            .and_then(|(value, _)| value.downcast_ref::<T>())
    }

    pub(crate) fn contains(&self, id: TypeId) -> bool {
        self.0.contains_key(&id)
    }
}

/// A state type that a handler, step or task takes, checked at start-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub(crate) id: TypeId,
    pub(crate) name: &'static str,
}

impl Requirement {
    /// The extension must register a value of type `T`.
    pub fn of<T: 'static>() -> Self {
        Self {
            id: TypeId::of::<T>(),
            name: std::any::type_name::<T>(),
        }
    }
}

/// What a handler, filter step or task can take besides its input: its extension's
/// [`State`], or its [`Context`].
pub trait FromContext: Sized + Send + 'static {
    /// The state type it needs from the extension, if any (checked at start-up).
    fn requirement() -> Option<Requirement>;

    /// Takes it from the context of the run.
    fn from_context(context: &Context) -> Result<Self, HandlerError>;
}

impl<T: Clone + Send + Sync + 'static> FromContext for State<T> {
    fn requirement() -> Option<Requirement> {
        Some(Requirement::of::<T>())
    }

    fn from_context(context: &Context) -> Result<Self, HandlerError> {
        context
            .state::<T>()
            .map(State)
            .ok_or_else(|| HandlerError::msg(missing_state::<T>(context)))
    }
}

impl FromContext for Context {
    fn requirement() -> Option<Requirement> {
        None
    }

    fn from_context(context: &Context) -> Result<Self, HandlerError> {
        Ok(context.clone())
    }
}

/// What to say when `T` is not registered by the extension of `context`.
pub(crate) fn missing_state<T>(context: &Context) -> String {
    format!(
        "{} asks for State<{}>, which its extension does not register; call \
         `ext.state(value)` in the extension's build",
        context.sender(),
        std::any::type_name::<T>()
    )
}
