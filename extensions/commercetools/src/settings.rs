//! The extension's settings, from `[extension.commercetools]`: where the project's API and
//! its OAuth2 service are, which project, and the API client's credentials and scopes (the
//! original service's `COMMERCETOOLS_CONFIG`).
//!
//! Every value may come from the environment,
//! `COORDINATOR__EXTENSION__COMMERCETOOLS__<SETTING>`; the secret should. Nothing is required
//! to start the coordinator (the extension may be compiled in and unused), but
//! [`CommercetoolsClient::new`](crate::CommercetoolsClient::new) refuses incomplete settings,
//! naming every setting to set at once ([`CommercetoolsSettings::validate`]).

use std::fmt;
use std::time::Duration;

use coordinator::config::{ConfigDuration, Secret};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};

/// The prefix of the environment variables that set these settings.
pub const ENV_PREFIX: &str = "COORDINATOR__EXTENSION__COMMERCETOOLS__";

/// How long a call to commercetools may take by default, answer included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The commercetools extension's settings, from `[extension.commercetools]`.
///
/// ```
/// use coordinator_commercetools::CommercetoolsSettings;
///
/// let settings: CommercetoolsSettings = toml::from_str(r#"
///     api_url = "https://api.us-central1.gcp.commercetools.com"
///     auth_url = "https://auth.us-central1.gcp.commercetools.com"
///     project_key = "edx-prod"
///     client_id = "coordinator"
///     client_secret = "from the environment, in production"
///     scopes = ["manage_orders:edx-prod", "view_customers:edx-prod", "view_states:edx-prod"]
///     timeout = "10s"
/// "#).unwrap();
/// assert!(settings.validate().is_ok());
/// assert_eq!(settings.timeout.0, std::time::Duration::from_secs(10));
/// ```
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CommercetoolsSettings {
    /// The project's HTTP API, without the project key
    /// (`https://api.us-central1.gcp.commercetools.com`). Environment:
    /// `COORDINATOR__EXTENSION__COMMERCETOOLS__API_URL`.
    pub api_url: Option<String>,
    /// The OAuth2 service that grants tokens, without `/oauth/token`
    /// (`https://auth.us-central1.gcp.commercetools.com`). Environment:
    /// `COORDINATOR__EXTENSION__COMMERCETOOLS__AUTH_URL`.
    pub auth_url: Option<String>,
    /// The project key, the first segment of every API path (`edx-prod`). Environment:
    /// `COORDINATOR__EXTENSION__COMMERCETOOLS__PROJECT_KEY`.
    pub project_key: Option<String>,
    /// The API client's id. Environment: `COORDINATOR__EXTENSION__COMMERCETOOLS__CLIENT_ID`.
    pub client_id: Option<String>,
    /// The API client's secret. Set it from the environment:
    /// `COORDINATOR__EXTENSION__COMMERCETOOLS__CLIENT_SECRET`.
    #[schemars(with = "Option<String>")]
    pub client_secret: Option<Secret>,
    /// The scopes asked for with each token (`manage_orders:edx-prod`): a list, or one string
    /// of scopes separated by spaces as commercetools shows them. None: every scope of the API
    /// client.
    #[serde(deserialize_with = "scopes")]
    #[schemars(with = "Vec<String>")]
    pub scopes: Vec<String>,
    /// How long a call may take, answer included. Default `"30s"`.
    #[schemars(with = "String")]
    pub timeout: ConfigDuration,
}

impl Default for CommercetoolsSettings {
    fn default() -> Self {
        Self {
            api_url: None,
            auth_url: None,
            project_key: None,
            client_id: None,
            client_secret: None,
            scopes: Vec::new(),
            timeout: ConfigDuration(DEFAULT_TIMEOUT),
        }
    }
}

/// Scopes as a list, or as one string separated by spaces (how commercetools shows them, and
/// how an environment variable most easily sets them).
fn scopes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scopes {
        List(Vec<String>),
        Text(String),
    }
    let scopes = match Scopes::deserialize(deserializer).map_err(|_| {
        serde::de::Error::custom(
            "scopes are a list of strings, or one string of scopes separated by spaces",
        )
    })? {
        Scopes::List(list) => list,
        Scopes::Text(text) => text.split_whitespace().map(str::to_owned).collect(),
    };
    Ok(scopes
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect())
}

/// A setting that is not usable, found by [`CommercetoolsSettings::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingProblem {
    /// The setting is absent or blank.
    Missing {
        /// Its name in `[extension.commercetools]`.
        setting: &'static str,
        /// What a value looks like.
        example: &'static str,
    },
    /// The setting is not an absolute `http://` or `https://` URL.
    NotAUrl {
        /// Its name in `[extension.commercetools]`.
        setting: &'static str,
        /// The value given (URLs are not secret).
        value: String,
    },
}

impl SettingProblem {
    /// The setting's name in `[extension.commercetools]`.
    pub fn setting(&self) -> &'static str {
        match self {
            SettingProblem::Missing { setting, .. } | SettingProblem::NotAUrl { setting, .. } => {
                setting
            }
        }
    }

    /// The environment variable that sets it (`COORDINATOR__EXTENSION__COMMERCETOOLS__API_URL`).
    pub fn env_var(&self) -> String {
        env_var(self.setting())
    }
}

impl fmt::Display for SettingProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingProblem::Missing { setting, example } => write!(
                f,
                "`{setting}` is not set: set it in [extension.commercetools] or with {} \
                 (for example {example})",
                env_var(setting)
            ),
            SettingProblem::NotAUrl { setting, value } => write!(
                f,
                "`{setting}` is {value:?}, not an absolute http:// or https:// URL: fix it in \
                 [extension.commercetools] or {}",
                env_var(setting)
            ),
        }
    }
}

/// The environment variable of `setting`.
fn env_var(setting: &str) -> String {
    format!("{ENV_PREFIX}{}", setting.to_ascii_uppercase())
}

/// The settings cannot make a client: every problem, each naming its setting and environment
/// variable. The secret's value is never shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the commercetools settings are incomplete: {}",
    problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
)]
pub struct SettingsError {
    /// What is wrong, one entry per setting.
    pub problems: Vec<SettingProblem>,
}

impl CommercetoolsSettings {
    /// Checks, without any I/O, that the settings can make a client: every required setting
    /// set and not blank, both URLs absolute http(s) URLs. Every problem is reported at once.
    ///
    /// ```
    /// use coordinator_commercetools::CommercetoolsSettings;
    ///
    /// let e = CommercetoolsSettings::default().validate().unwrap_err();
    /// assert_eq!(e.problems.len(), 5);
    /// assert!(e.to_string().contains("COORDINATOR__EXTENSION__COMMERCETOOLS__API_URL"));
    /// ```
    pub fn validate(&self) -> Result<(), SettingsError> {
        let mut problems = Vec::new();
        let mut required = |setting, value: Option<&str>, example| match value
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            None => {
                problems.push(SettingProblem::Missing { setting, example });
                None
            }
            Some(v) => Some(v.to_owned()),
        };
        let api_url = required(
            "api_url",
            self.api_url.as_deref(),
            "https://api.us-central1.gcp.commercetools.com",
        );
        let auth_url = required(
            "auth_url",
            self.auth_url.as_deref(),
            "https://auth.us-central1.gcp.commercetools.com",
        );
        required("project_key", self.project_key.as_deref(), "edx-prod");
        required(
            "client_id",
            self.client_id.as_deref(),
            "the API client's id",
        );
        required(
            "client_secret",
            self.client_secret.as_ref().map(Secret::expose),
            "the API client's secret, from the environment",
        );
        for (setting, url) in [("api_url", api_url), ("auth_url", auth_url)] {
            if let Some(url) = url.filter(|u| !is_http_url(u)) {
                problems.push(SettingProblem::NotAUrl {
                    setting,
                    value: url,
                });
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SettingsError { problems })
        }
    }

    /// The project key, trimmed (empty when not set).
    pub(crate) fn project(&self) -> &str {
        self.project_key.as_deref().map_or("", str::trim)
    }
}

/// Whether `url` looks like an absolute http(s) URL with a host (the client kit checks it
/// fully).
fn is_http_url(url: &str) -> bool {
    ["http://", "https://"].iter().any(|scheme| {
        url.strip_prefix(scheme)
            .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete() -> CommercetoolsSettings {
        CommercetoolsSettings {
            api_url: Some("https://api.us-central1.gcp.commercetools.com".into()),
            auth_url: Some("https://auth.us-central1.gcp.commercetools.com".into()),
            project_key: Some("edx-prod".into()),
            client_id: Some("coordinator".into()),
            client_secret: Some(Secret::new("s3cret-value")),
            scopes: vec!["manage_orders:edx-prod".into()],
            timeout: ConfigDuration(DEFAULT_TIMEOUT),
        }
    }

    #[test]
    fn complete_settings_validate() {
        assert_eq!(complete().validate(), Ok(()));
    }

    #[test]
    fn every_missing_setting_is_named_with_its_environment_variable() {
        let e = CommercetoolsSettings::default().validate().unwrap_err();
        let named: Vec<_> = e.problems.iter().map(SettingProblem::setting).collect();
        assert_eq!(
            named,
            [
                "api_url",
                "auth_url",
                "project_key",
                "client_id",
                "client_secret"
            ]
        );
        let text = e.to_string();
        for var in [
            "COORDINATOR__EXTENSION__COMMERCETOOLS__API_URL",
            "COORDINATOR__EXTENSION__COMMERCETOOLS__AUTH_URL",
            "COORDINATOR__EXTENSION__COMMERCETOOLS__PROJECT_KEY",
            "COORDINATOR__EXTENSION__COMMERCETOOLS__CLIENT_ID",
            "COORDINATOR__EXTENSION__COMMERCETOOLS__CLIENT_SECRET",
        ] {
            assert!(text.contains(var), "{text}");
        }
    }

    #[test]
    fn blank_values_are_missing_and_urls_must_be_http() {
        let mut s = complete();
        s.project_key = Some("  ".into());
        s.client_secret = Some(Secret::new(""));
        s.api_url = Some("api.us-central1.gcp.commercetools.com".into());
        let e = s.validate().unwrap_err();
        assert_eq!(
            e.problems,
            [
                SettingProblem::Missing {
                    setting: "project_key",
                    example: "edx-prod"
                },
                SettingProblem::Missing {
                    setting: "client_secret",
                    example: "the API client's secret, from the environment"
                },
                SettingProblem::NotAUrl {
                    setting: "api_url",
                    value: "api.us-central1.gcp.commercetools.com".into()
                },
            ]
        );
        assert_eq!(
            e.problems[2].env_var(),
            "COORDINATOR__EXTENSION__COMMERCETOOLS__API_URL"
        );
    }

    #[test]
    fn the_secret_never_shows() {
        let s = complete();
        assert!(!format!("{s:?}").contains("s3cret-value"));
        let mut bad = complete();
        bad.api_url = None;
        assert!(!bad.validate().unwrap_err().to_string().contains("s3cret"));
    }

    #[test]
    fn scopes_are_a_list_or_a_string_separated_by_spaces() {
        let list: CommercetoolsSettings =
            toml::from_str(r#"scopes = ["manage_orders:p", " view_states:p "]"#).unwrap();
        assert_eq!(list.scopes, ["manage_orders:p", "view_states:p"]);
        let text: CommercetoolsSettings =
            toml::from_str(r#"scopes = "manage_orders:p  view_states:p""#).unwrap();
        assert_eq!(text.scopes, ["manage_orders:p", "view_states:p"]);
        let e = toml::from_str::<CommercetoolsSettings>("scopes = 3").unwrap_err();
        assert!(e.to_string().contains("list of strings"), "{e}");
    }

    #[test]
    fn defaults_and_unknown_fields() {
        let empty: CommercetoolsSettings = toml::from_str("").unwrap();
        assert_eq!(empty.timeout.0, DEFAULT_TIMEOUT);
        assert!(empty.scopes.is_empty());
        let e = toml::from_str::<CommercetoolsSettings>("apiUrl = \"x\"").unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }
}
