//! The LMS extension's settings, from `[extension.lms]`: where the LMS is, how to get a token
//! from it, and how long a call may take.
//!
//! Every field has a default, so an absent table reads; the LMS URL and the client credentials
//! default to nothing, and [`LmsSettings::problems`] says which ones are missing (the client,
//! [`LmsClient::new`](crate::LmsClient::new), refuses to be made without them).

use std::time::Duration;

use coordinator::config::{ConfigDuration, Secret};
use coordinator::prelude::*;

/// The path of the LMS's OAuth2 token endpoint, used when `oauth2_url` is not set.
pub const DEFAULT_TOKEN_PATH: &str = "/oauth2/access_token";

/// How long a call to the LMS may take by default, answer included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The LMS extension's settings, from `[extension.lms]`.
///
/// ```
/// use coordinator_lms::LmsSettings;
///
/// let settings: LmsSettings = serde_json::from_value(serde_json::json!({
///     "url": "https://lms.example.com",
///     "client_id": "commerce-coordinator",
///     "client_secret": "s3cret",
///     "timeout": "10s",
/// }))
/// .unwrap();
/// assert_eq!(settings.token_url().as_deref(), Some("https://lms.example.com/oauth2/access_token"));
/// assert!(settings.problems().is_empty());
/// assert!(!format!("{settings:?}").contains("s3cret"));
/// ```
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LmsSettings {
    /// The LMS's base URL (`https://courses.edx.org`). Set it, or
    /// `COORDINATOR__EXTENSION__LMS__URL`; without it every LMS task fails, saying so.
    pub url: Option<String>,
    /// The LMS's OAuth2 token endpoint (`https://courses.edx.org/oauth2/access_token`). Default:
    /// `<url>/oauth2/access_token`.
    pub oauth2_url: Option<String>,
    /// The OAuth2 client id of the coordinator's service user on the LMS.
    /// `COORDINATOR__EXTENSION__LMS__CLIENT_ID`.
    pub client_id: Option<String>,
    /// Its client secret. Set it from the environment:
    /// `COORDINATOR__EXTENSION__LMS__CLIENT_SECRET`.
    #[schemars(with = "Option<String>")]
    pub client_secret: Option<Secret>,
    /// The LMS's legacy `EDX_API_KEY`, sent as `X-Edx-Api-Key` with enrollments and
    /// entitlements when set (the LMS then lets a server change an enrollment's mode and use
    /// expired modes). Optional. `COORDINATOR__EXTENSION__LMS__API_KEY`.
    #[schemars(with = "Option<String>")]
    pub api_key: Option<Secret>,
    /// The longest a call to the LMS may take, answer included. Default `"30s"`.
    #[schemars(with = "String")]
    pub timeout: ConfigDuration,
}

impl Default for LmsSettings {
    fn default() -> Self {
        Self {
            url: None,
            oauth2_url: None,
            client_id: None,
            client_secret: None,
            api_key: None,
            timeout: ConfigDuration(DEFAULT_TIMEOUT),
        }
    }
}

/// A setting the client cannot do without, and the variable that sets it.
const REQUIRED: [(&str, &str); 3] = [
    ("url", "COORDINATOR__EXTENSION__LMS__URL"),
    ("client_id", "COORDINATOR__EXTENSION__LMS__CLIENT_ID"),
    (
        "client_secret",
        "COORDINATOR__EXTENSION__LMS__CLIENT_SECRET",
    ),
];

impl LmsSettings {
    /// The token endpoint: `oauth2_url`, else `<url>/oauth2/access_token`; `None` when
    /// neither is set.
    pub fn token_url(&self) -> Option<String> {
        match (
            given(self.oauth2_url.as_deref()),
            given(self.url.as_deref()),
        ) {
            (Some(token_url), _) => Some(token_url.to_owned()),
            (None, Some(url)) => Some(format!("{}{DEFAULT_TOKEN_PATH}", url.trim_end_matches('/'))),
            (None, None) => None,
        }
    }

    /// What must be set before the LMS can be called, one line per missing setting, each
    /// naming the setting and its environment variable
    /// (`set [extension.lms] url (COORDINATOR__EXTENSION__LMS__URL)`). Empty when nothing is
    /// missing. Pure: it checks presence only (the client checks the URLs' shape).
    pub fn problems(&self) -> Vec<String> {
        let present = [
            given(self.url.as_deref()).is_some(),
            given(self.client_id.as_deref()).is_some(),
            given(self.client_secret.as_ref().map(Secret::expose)).is_some(),
        ];
        REQUIRED
            .iter()
            .zip(present)
            .filter(|(_, present)| !present)
            .map(|((name, var), _)| format!("set [extension.lms] {name} ({var})"))
            .collect()
    }
}

/// `value` unless it is absent or blank (an environment variable set to nothing).
fn given(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_absent_table_reads_as_the_defaults_and_says_what_to_set() {
        let settings: LmsSettings = serde_json::from_value(json!({})).unwrap();
        assert_eq!(settings.timeout.0, Duration::from_secs(30));
        assert_eq!(settings.token_url(), None);
        assert_eq!(
            settings.problems(),
            [
                "set [extension.lms] url (COORDINATOR__EXTENSION__LMS__URL)",
                "set [extension.lms] client_id (COORDINATOR__EXTENSION__LMS__CLIENT_ID)",
                "set [extension.lms] client_secret (COORDINATOR__EXTENSION__LMS__CLIENT_SECRET)",
            ]
        );
    }

    #[test]
    fn blank_values_count_as_missing() {
        let settings: LmsSettings = serde_json::from_value(json!({
            "url": " ", "client_id": "", "client_secret": "s"
        }))
        .unwrap();
        assert_eq!(settings.problems().len(), 2);
        assert_eq!(settings.token_url(), None);
    }

    #[test]
    fn the_token_endpoint_defaults_to_the_lms_own_and_can_be_set() {
        let mut settings = LmsSettings {
            url: Some("https://lms.example.com/".into()),
            ..LmsSettings::default()
        };
        assert_eq!(
            settings.token_url().as_deref(),
            Some("https://lms.example.com/oauth2/access_token")
        );
        settings.oauth2_url = Some("https://auth.example.com/oauth2/access_token".into());
        assert_eq!(
            settings.token_url().as_deref(),
            Some("https://auth.example.com/oauth2/access_token")
        );
    }

    #[test]
    fn unknown_fields_are_refused_and_durations_read_with_units() {
        let e = serde_json::from_value::<LmsSettings>(json!({"lms_url": "x"})).unwrap_err();
        assert!(e.to_string().contains("unknown field `lms_url`"), "{e}");
        let settings: LmsSettings = serde_json::from_value(json!({"timeout": "250ms"})).unwrap();
        assert_eq!(settings.timeout.0, Duration::from_millis(250));
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let settings: LmsSettings = serde_json::from_value(json!({
            "client_secret": "s3cret-value", "api_key": "key-value"
        }))
        .unwrap();
        let shown = format!("{settings:?}");
        assert!(
            !shown.contains("s3cret-value") && !shown.contains("key-value"),
            "{shown}"
        );
    }
}
