//! The edX LMS extension (issue 9): being built.

use coordinator::prelude::*;

/// The LMS extension.
#[derive(Clone, Debug, Default)]
pub struct LmsExtension;

impl Extension for LmsExtension {
    fn name(&self) -> &'static str {
        "lms"
    }

    fn doc(&self) -> &'static str {
        "The edX LMS: enrollments, entitlements and account deactivation."
    }

    fn build(&self, _ext: &mut ExtensionBuilder<'_>) {}
}
