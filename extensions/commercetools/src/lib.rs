//! The commercetools extension (issue 9): edX's orders live in commercetools, and this
//! extension turns what happens to them into work for the LMS.
//!
//! What it has so far:
//!
//! - [`CommercetoolsSettings`], from `[extension.commercetools]`: the project's API and OAuth2
//!   URLs, project key, API client and scopes.
//! - [`CommercetoolsClient`], the typed client of the project's HTTP API over the client kit:
//!   orders by id or number (with the references the flows read expanded), customers by LMS
//!   user id, workflow states by key (kept once read), and order updates that read the order
//!   again and re-derive their actions when someone else changed it meanwhile.
//! - The resources as commercetools returns them ([`Order`], [`LineItem`], [`Customer`],
//!   [`State`]), with personal data ([`Personal`](coordinator::Personal)) that never prints, and
//!   the update actions ([`OrderAction`]).
//! - The messages EventBridge forwards to the extension's routes ([`messages`]), with a
//!   validation that names the field at fault.
//! - The keys edX gave its states and custom fields ([`keys`]).
//!
//! The routes and flows that use them come next. When the settings are complete, `build`
//! shares a [`CommercetoolsClient`] with them as state.

mod actions;
mod client;
mod customer;
pub mod keys;
pub mod messages;
mod order;
mod reference;
mod settings;
mod state;

use coordinator::prelude::{Extension, ExtensionBuilder};

pub mod handlers;
pub mod routes;
pub mod signals;

pub use actions::OrderAction;
pub use client::{
    CONFLICT_RETRIES, CommercetoolsClient, SERVICE, SetupError, is_concurrent_modification,
};
pub use customer::Customer;
pub use keys::{
    FULFILLMENT_FAILURE_STATE, FULFILLMENT_PENDING_STATE, FULFILLMENT_PROCESSING_STATE,
    FULFILLMENT_SUCCESS_STATE, ORDER_EXPANSION, SDN_SANCTIONED_ORDER_STATE,
};
pub use messages::{
    EventBridgeEvent, LineItemStateTransition, Message, MessageError, OrderStateChanged,
    ReturnInfoAdded,
};
pub use order::{
    Attribute, Image, ItemState, LineItem, Money, Order, OrderState, Payment, PaymentInfo,
    PaymentMethodInfo, PaymentStatus, Price, ProductType, ReturnInfo, ReturnItem, Transaction,
    Variant,
};
pub use reference::{CustomFields, LocalizedString, Reference};
pub use settings::{
    CommercetoolsSettings, DEFAULT_TIMEOUT, ENV_PREFIX, SettingProblem, SettingsError,
};
pub use state::{State, StateIdentifier, StateReference, StateType};

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

    fn build(&self, ext: &mut ExtensionBuilder<'_>) {
        let settings: CommercetoolsSettings = ext.settings();
        // Incomplete settings refuse the start, naming each setting to set
        // (`CommercetoolsClient::new`'s error).
        let client = CommercetoolsClient::new(&settings);
        match &client {
            Ok(client) => {
                ext.state(client.clone());
            }
            // Refuses the start, naming each setting to set.
            Err(e) => {
                ext.settings_problem(e.to_string());
            }
        }
        ext.state(handlers::Commercetools::new(client));
        ext.state(settings);
        ext.signal(&signals::FULFILLMENT_REQUESTED)
            .signal(&signals::ORDER_STATE_CHANGED)
            .signal(&signals::ORDER_RETURNED)
            .signal(&signals::LINE_ITEM_FULFILLMENT_FAILED);
        handlers::declare(ext);
        routes::declare(ext);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The standard checks, with the LMS extension beside it (its flows enqueue the LMS's
    /// tasks, which must exist).
    fn check_extension(extension: CommercetoolsExtension, config: &str) -> Vec<String> {
        coordinator::testing::check_extension_with(
            extension,
            vec![Box::new(coordinator_lms::LmsExtension)],
            config,
            &[],
        )
    }

    const EXAMPLE: &str = r#"
[extension.commercetools]
api_url = "https://api.us-central1.gcp.commercetools.com"
auth_url = "https://auth.us-central1.gcp.commercetools.com"
project_key = "edx-prod"
client_id = "coordinator"
client_secret = "from-the-environment"
scopes = ["manage_orders:edx-prod", "view_customers:edx-prod", "view_states:edx-prod"]
timeout = "10s"

[extension.lms]
url = "https://lms.example.com"
client_id = "coordinator"
client_secret = "from-the-environment"
"#;

    #[test]
    fn passes_the_standard_extension_checks_with_an_example_configuration() {
        let problems = check_extension(CommercetoolsExtension, EXAMPLE);
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn missing_settings_refuse_the_start_naming_each() {
        let problems = check_extension(CommercetoolsExtension, "").join("\n");
        for variable in [
            "COORDINATOR__EXTENSION__COMMERCETOOLS__API_URL",
            "COORDINATOR__EXTENSION__COMMERCETOOLS__AUTH_URL",
            "COORDINATOR__EXTENSION__COMMERCETOOLS__PROJECT_KEY",
            "COORDINATOR__EXTENSION__COMMERCETOOLS__CLIENT_ID",
            "COORDINATOR__EXTENSION__COMMERCETOOLS__CLIENT_SECRET",
            "COORDINATOR__EXTENSION__LMS__URL",
        ] {
            assert!(
                problems.contains(variable),
                "{variable} not named in:\n{problems}"
            );
        }
    }

    #[test]
    fn an_unknown_setting_is_reported_at_start_up() {
        let problems = check_extension(
            CommercetoolsExtension,
            "[extension.commercetools]\napi_ulr = \"https://x\"\n",
        );
        assert!(
            problems.iter().any(|p| p.contains("api_ulr")),
            "{problems:#?}"
        );
    }
}
