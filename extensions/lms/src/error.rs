//! Why the LMS client could not be made.
//!
//! Failed calls are [`CallError`](coordinator_client::CallError)s, classified by the client kit;
//! this is the one error of the extension's own: its configuration.

use coordinator_client::ClientError;

/// The LMS client cannot be made from the settings.
#[derive(Debug, thiserror::Error)]
pub enum LmsError {
    /// Settings it needs are missing.
    #[error("the LMS client is not configured: {}", .missing.join("; "))]
    NotConfigured {
        /// One line per missing setting, naming it and its environment variable
        /// (`set [extension.lms] url (COORDINATOR__EXTENSION__LMS__URL)`).
        missing: Vec<String>,
    },
    /// A URL is not usable (not an absolute http(s) URL).
    #[error("the LMS client cannot be made: {0}; check [extension.lms] url and oauth2_url")]
    Client(ClientError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_missing_setting_is_named() {
        let e = LmsError::NotConfigured {
            missing: vec!["set [extension.lms] url (X)".into(), "set y (Y)".into()],
        };
        assert_eq!(
            e.to_string(),
            "the LMS client is not configured: set [extension.lms] url (X); set y (Y)"
        );
    }
}
