//! The commercetools extension (issue 9): being built.

use coordinator::prelude::*;

/// The commercetools extension.
#[derive(Clone, Debug, Default)]
pub struct CommercetoolsExtension;

impl Extension for CommercetoolsExtension {
    fn name(&self) -> &'static str {
        "commercetools"
    }

    fn doc(&self) -> &'static str {
        "commercetools: orders, line-item states, customers."
    }

    fn build(&self, _ext: &mut ExtensionBuilder<'_>) {}
}
