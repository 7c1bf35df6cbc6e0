//! The extensions compiled into this binary: the one explicit list, each behind its Cargo feature.
//!
//! To add an extension, add its crate as an optional dependency with a feature of the same name
//! in `Cargo.toml` and one line here. Which of the compiled-in extensions run is the
//! configuration's business (`[extensions] enabled`).

use coordinator::Extension;

/// Every extension compiled into the binary, in a fixed order.
pub fn all() -> Vec<Box<dyn Extension>> {
    vec![
        #[cfg(feature = "demo")]
        Box::new(coordinator_demo::DemoExtension::default()),
    ]
}
