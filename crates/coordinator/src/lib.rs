//! The Commerce Coordinator framework.
//!
//! Everything an extension author uses lives here: the [`Extension`] trait and its
//! [`ExtensionBuilder`], typed [`Signal`]s and [`Filter`]s, the configuration ([`Config`]) whose
//! wiring is validated at start-up ([`Coordinator::builder`]), robust dispatch
//! ([`Context::send_robust`], the only way to send), durable background tasks
//! ([`Context::enqueue`], run by a [`Worker`] from the [`Store`], whose backends are crates of
//! their own), the [`Catalog`] that documents
//! it all, and a test harness ([`testing`]).
//!
//! The crate knows nothing about commerce: commerce lives in extensions.
//!
//! ```
//! use coordinator::prelude::*;
//! use coordinator::{Config, Coordinator};
//!
//! #[derive(Debug, Serialize, Deserialize, JsonSchema)]
//! pub struct OrderPlaced { pub order_number: String }
//!
//! pub static ORDER_PLACED: Signal<OrderPlaced> =
//!     Signal::new("shop.order_placed", "An order was placed and paid for.");
//!
//! async fn enroll_learner(event: Event<OrderPlaced>) -> HandlerResult {
//!     Ok(format!("enrolled for {}", event.order_number).into())
//! }
//!
//! struct ShopExtension;
//! impl Extension for ShopExtension {
//!     fn name(&self) -> &'static str { "shop" }
//!     fn build(&self, ext: &mut ExtensionBuilder<'_>) {
//!         ext.signal(&ORDER_PLACED)
//!             .handler("shop.enroll_learner", "Enrolls the learner.", enroll_learner);
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let config = Config::from_toml(r#"
//!     [signals]
//!     "shop.order_placed" = ["shop.enroll_learner"]
//! "#).unwrap();
//! let coordinator = Coordinator::builder().extension(ShopExtension).config(config).build().unwrap();
//! let report = coordinator
//!     .context("shop")
//!     .send_robust(&ORDER_PLACED, OrderPlaced { order_number: "EDX-1".into() })
//!     .await;
//! assert!(report.all_ok());
//! # });
//! ```
#![warn(missing_docs)]

pub mod catalog;
pub mod config;
mod context;
mod coordinator;
pub mod dispatch;
pub mod dispatch_log;
pub mod extension;
pub mod filter;
mod guard;
pub mod handler;
pub mod http;
pub mod id;
pub mod migration;
pub mod names;
pub mod payload;
pub mod signal;
mod state;
pub mod store;
pub mod task;
pub mod testing;
pub mod time;
pub mod wiring;
pub mod worker;

pub use catalog::Catalog;
pub use config::{Config, ConfigError};
pub use context::Context;
pub use coordinator::{BuildError, Coordinator, CoordinatorBuilder};
pub use dispatch::{
    DELIVERY_PREFIX, DispatchObserver, DispatchReport, HandlerRun, NotAccepted, Outcome, SendError,
    Sender, delivery_task,
};
pub use dispatch_log::{DispatchLog, DispatchLogStats, DispatchLogWriter};
pub use extension::{Extension, ExtensionBuilder};
pub use filter::{Filter, FilterError, FilterRun, Flow, StepError, StepResult};
pub use handler::{Event, HandlerError, HandlerResult, Summary};
pub use payload::{Payload, Personal};
pub use signal::Signal;
pub use state::{FromContext, Requirement, State};
pub use store::{Store, StoreError, StoreTx};
pub use wiring::{Validation, WiringError, WiringWarning};
pub use worker::{TaskObserver, Worker, WorkerHealth};

/// Everything an extension needs: `use coordinator::prelude::*;`.
pub mod prelude {
    pub use crate::http::{Json, Problem, Route, StatusCode};
    pub use crate::migration::Migration;
    pub use crate::task::{
        EnqueueError, EnqueueOptions, Received, Task, TaskContext, TaskError, TaskResult,
    };
    pub use crate::{
        Context, DispatchReport, Event, Extension, ExtensionBuilder, Filter, Flow, HandlerError,
        HandlerResult, Outcome, Payload, Personal, Sender, Signal, State, StepError, StepResult,
        Summary,
    };
    pub use schemars::JsonSchema;
    pub use serde::{Deserialize, Serialize};
}

/// Re-exported so that extension crates derive with the same versions as the framework.
pub use schemars;
