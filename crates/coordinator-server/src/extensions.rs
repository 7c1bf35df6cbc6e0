//! The extensions bundled with this crate: the one explicit list, each behind its Cargo feature.
//!
//! The `coordinator` binary runs them; a binary of your own composes them with its own through
//! [`App`](crate::App). To add an extension to the bundle, add its crate as an optional
//! dependency with a feature of the same name in `Cargo.toml` and one line here. Which of the
//! compiled-in extensions run is the configuration's business (`[extensions] enabled`).

use std::sync::Arc;

use coordinator::Extension;

/// Every bundled extension compiled in, in a fixed order.
pub fn bundled() -> Vec<Arc<dyn Extension>> {
    vec![
        #[cfg(feature = "demo")]
        Arc::new(coordinator_demo::DemoExtension::default()),
        #[cfg(feature = "lms")]
        Arc::new(coordinator_lms::LmsExtension),
        #[cfg(feature = "commercetools")]
        Arc::new(coordinator_commercetools::CommercetoolsExtension),
        #[cfg(feature = "sandbox")]
        Arc::new(coordinator_sandbox::SandboxExtension::default()),
    ]
}
