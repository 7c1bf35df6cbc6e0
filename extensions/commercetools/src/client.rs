//! [`CommercetoolsClient`]: the typed client of a commercetools project's HTTP API, over the
//! client kit's [`ServiceClient`] (service `commercetools`).
//!
//! Tokens come from the project's OAuth2 service (`{auth_url}/oauth/token`, client
//! credentials over HTTP Basic, the scopes space-separated in `scope`); timeouts, the breaker,
//! spans, statistics and the classification of failures ([`CallError`]) come with the kit.
//! Every call is named by its route template (`/{project}/orders/{id}`), so ids and order
//! numbers stay out of spans and metrics; the path segments themselves are percent-encoded.
//!
//! Updates are optimistic: an update names the order's version, and commercetools refuses it
//! with `409 ConcurrentModification` if the order changed since. [`CommercetoolsClient::update_order`]
//! then reads the order again and derives the actions afresh, so that work someone else did
//! meanwhile is not done twice.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use coordinator_client::{
    Auth, Call, CallError, ClientError, OAuth2, ServiceClient, ServiceConfig, path_segment,
};
use serde::Deserialize;
use tracing::debug;

use crate::actions::{OrderAction, OrderUpdate};
use crate::customer::Customer;
use crate::keys::{LMS_USER_ID_FIELD, ORDER_EXPANSION};
use crate::order::Order;
use crate::settings::{CommercetoolsSettings, SettingsError};
use crate::state::State;

/// The service's name in errors, spans, metrics and `/api/v1/services`.
pub const SERVICE: &str = "commercetools";

/// How many times an update refused with `409 ConcurrentModification` is tried again (after
/// reading the order again); the next refusal is returned.
pub const CONFLICT_RETRIES: u32 = 3;

/// The route templates, as spans, errors and metrics name the calls.
const ORDER_BY_ID: &str = "/{project}/orders/{id}";
const ORDER_BY_NUMBER: &str = "/{project}/orders/order-number={orderNumber}";
const CUSTOMERS: &str = "/{project}/customers";
const CUSTOMER_BY_ID: &str = "/{project}/customers/{id}";
const STATE_BY_KEY: &str = "/{project}/states/key={key}";
const STATE_BY_ID: &str = "/{project}/states/{id}";

/// A client could not be made from the settings.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Settings are missing or invalid (each one named, with its environment variable).
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The client kit refused the configuration.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// The client of one commercetools project: orders, customers, states. Cheap to clone; clones
/// share the token, the breaker and the cache of states.
///
/// ```no_run
/// use coordinator_commercetools::{
///     CommercetoolsClient, CommercetoolsSettings, FULFILLMENT_PROCESSING_STATE, StateIdentifier,
/// };
///
/// # async fn f(settings: CommercetoolsSettings, order_id: &str, from: &str)
/// # -> Result<(), Box<dyn std::error::Error>> {
/// let commercetools = CommercetoolsClient::new(&settings)?;
/// let processing = commercetools.state_by_key(FULFILLMENT_PROCESSING_STATE).await?;
/// // Every line item still in `from` moves to processing; on a conflict the order is read
/// // again and items someone else moved meanwhile are left alone.
/// let order = commercetools
///     .update_order(order_id, |order| {
///         order
///             .line_items
///             .iter()
///             .filter_map(|item| item.transition(from, StateIdentifier::from(&processing)))
///             .collect()
///     })
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct CommercetoolsClient {
    service: ServiceClient,
    /// The project key, percent-encoded as a path segment.
    project: Arc<str>,
    project_key: Arc<str>,
    states: Arc<Mutex<HashMap<String, State>>>,
}

impl fmt::Debug for CommercetoolsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommercetoolsClient")
            .field("service", &self.service)
            .field("project_key", &self.project_key)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Page<T> {
    results: Vec<T>,
}

impl CommercetoolsClient {
    /// A client of the project the settings name. Incomplete settings are refused with every
    /// missing setting named ([`CommercetoolsSettings::validate`]); nothing is called yet.
    pub fn new(settings: &CommercetoolsSettings) -> Result<Self, SetupError> {
        settings.validate()?;
        let text = |value: &Option<String>| value.as_deref().unwrap_or_default().trim().to_owned();
        let auth_url = text(&settings.auth_url);
        let token_url = format!("{}/oauth/token", auth_url.trim_end_matches('/'));
        let secret = settings
            .client_secret
            .clone()
            .unwrap_or_else(|| coordinator::config::Secret::new(String::new()));
        let oauth = OAuth2::new(token_url, text(&settings.client_id), secret)
            .scopes(settings.scopes.iter().cloned());
        let config = ServiceConfig::new(SERVICE, text(&settings.api_url))
            .timeout(settings.timeout.0)
            .auth(Auth::OAuth2(oauth));
        let service = ServiceClient::new(config)?;
        let project_key = settings.project();
        Ok(Self {
            service,
            project: path_segment(project_key).into(),
            project_key: project_key.into(),
            states: Arc::default(),
        })
    }

    /// The project key.
    pub fn project_key(&self) -> &str {
        &self.project_key
    }

    /// The client kit's client underneath, for calls this type does not offer.
    pub fn service(&self) -> &ServiceClient {
        &self.service
    }

    /// The order with this id, with the references the flows read expanded
    /// ([`ORDER_EXPANSION`]).
    pub async fn order_by_id(&self, id: &str) -> Result<Order, CallError> {
        let path = format!("/{}/orders/{}", self.project, path_segment(id));
        self.service
            .json(expanded(Call::get(ORDER_BY_ID).path(path)))
            .await
    }

    /// The order with this order number (`2U-104729`), expanded as
    /// [`order_by_id`](Self::order_by_id).
    pub async fn order_by_number(&self, order_number: &str) -> Result<Order, CallError> {
        let path = format!(
            "/{}/orders/order-number={}",
            self.project,
            path_segment(order_number)
        );
        self.service
            .json(expanded(Call::get(ORDER_BY_NUMBER).path(path)))
            .await
    }

    /// The customer with this id.
    pub async fn customer_by_id(&self, id: &str) -> Result<Customer, CallError> {
        let path = format!("/{}/customers/{}", self.project, path_segment(id));
        self.service
            .json(Call::get(CUSTOMER_BY_ID).path(path))
            .await
    }

    /// The customer tagged with this LMS user id (custom field `edx-lms_user_id`), if any.
    ///
    /// commercetools cannot make the field unique, so two customers may carry it: that is
    /// refused as a permanent [`CallError::Decode`] at `results`, as the original service
    /// refused it, since which account is meant cannot be told.
    pub async fn customer_by_lms_user_id(
        &self,
        lms_user_id: u64,
    ) -> Result<Option<Customer>, CallError> {
        let path = format!("/{}/customers", self.project);
        // The id goes in a predicate variable, never into the predicate's text; two results
        // are enough to tell "one" from "several".
        let call = Call::get(CUSTOMERS)
            .path(path)
            .query("where", format!("custom(fields({LMS_USER_ID_FIELD}=:id))"))
            .query("var.id", lms_user_id.to_string())
            .query("limit", "2");
        let mut page: Page<Customer> = self.service.json(call).await?;
        match page.results.len() {
            0 | 1 => Ok(page.results.pop()),
            found => Err(CallError::Decode {
                service: SERVICE,
                method: "GET",
                route: CUSTOMERS,
                path: "results".to_owned(),
                message: format!(
                    "{found} customers have the same {LMS_USER_ID_FIELD}, which must be unique; \
                     remove it from all but one customer in commercetools"
                ),
            }),
        }
    }

    /// The state with this key (`2u-fulfillment-success-state`). States do not change, so each
    /// is asked for once and then kept by this client (and its clones).
    pub async fn state_by_key(&self, key: &str) -> Result<State, CallError> {
        if let Some(state) = self.cached(|states| states.get(key).cloned()) {
            return Ok(state);
        }
        let path = format!("/{}/states/key={}", self.project, path_segment(key));
        let state: State = self
            .service
            .json(Call::get(STATE_BY_KEY).path(path))
            .await?;
        self.remember(&state);
        Ok(state)
    }

    /// The state with this id (a message names states by id), kept as
    /// [`state_by_key`](Self::state_by_key) keeps them.
    pub async fn state_by_id(&self, id: &str) -> Result<State, CallError> {
        if let Some(state) = self.cached(|states| states.values().find(|s| s.id == id).cloned()) {
            return Ok(state);
        }
        let path = format!("/{}/states/{}", self.project, path_segment(id));
        let state: State = self.service.json(Call::get(STATE_BY_ID).path(path)).await?;
        self.remember(&state);
        Ok(state)
    }

    fn cached<T>(&self, find: impl FnOnce(&HashMap<String, State>) -> Option<T>) -> Option<T> {
        find(&self.states.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn remember(&self, state: &State) {
        if let Some(key) = &state.key {
            self.states
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(key.clone(), state.clone());
        }
    }

    /// Reads the order, derives the update actions from it with `actions`, and sends them with
    /// the order's version; the updated order, expanded as [`order_by_id`](Self::order_by_id).
    ///
    /// When `actions` returns none, nothing is sent and the order read is returned. When
    /// commercetools refuses the update with `409 ConcurrentModification` (the order changed
    /// since it was read), the order is read again and `actions` called again on it, up to
    /// [`CONFLICT_RETRIES`] times: `actions` should leave out what is already done (see
    /// [`LineItem::transition`](crate::LineItem::transition)). After that, the last refusal is
    /// returned ([`is_concurrent_modification`] tells it apart).
    pub async fn update_order<F>(&self, order_id: &str, actions: F) -> Result<Order, CallError>
    where
        F: FnMut(&Order) -> Vec<OrderAction>,
    {
        let order = self.order_by_id(order_id).await?;
        self.update_order_from(order, actions).await
    }

    /// [`update_order`](Self::update_order), starting from an order already read (one request
    /// fewer when nothing changed meanwhile).
    pub async fn update_order_from<F>(
        &self,
        mut order: Order,
        mut actions: F,
    ) -> Result<Order, CallError>
    where
        F: FnMut(&Order) -> Vec<OrderAction>,
    {
        let mut conflicts = 0;
        loop {
            let todo = actions(&order);
            if todo.is_empty() {
                return Ok(order);
            }
            let path = format!("/{}/orders/{}", self.project, path_segment(&order.id));
            let call = expanded(Call::post(ORDER_BY_ID).path(path)).json(&OrderUpdate {
                version: order.version,
                actions: &todo,
            });
            match self.service.json(call).await {
                Err(e) if is_concurrent_modification(&e) && conflicts < CONFLICT_RETRIES => {
                    conflicts += 1;
                    debug!(
                        conflicts,
                        "commercetools: the order changed since it was read; reading it again"
                    );
                    order = self.order_by_id(&order.id).await?;
                }
                result => return result,
            }
        }
    }
}

/// Whether commercetools refused an update because the resource changed since it was read
/// (`409` with the code `ConcurrentModification`).
///
/// ```
/// use coordinator_client::CallError;
/// use coordinator_commercetools::is_concurrent_modification;
///
/// let e = CallError::Rejected {
///     service: "commercetools", method: "POST", route: "/{project}/orders/{id}", status: 409,
///     message: "Object o-1 has a different version than expected.".into(),
///     code: Some("ConcurrentModification".into()),
/// };
/// assert!(is_concurrent_modification(&e));
/// ```
pub fn is_concurrent_modification(error: &CallError) -> bool {
    error.status() == Some(409) && error.code() == Some("ConcurrentModification")
}

/// `call` with the references of [`ORDER_EXPANSION`] expanded.
fn expanded(call: Call) -> Call {
    ORDER_EXPANSION
        .iter()
        .fold(call, |call, path| call.query("expand", *path))
}

#[cfg(test)]
mod tests {
    use coordinator::config::Secret;

    use super::*;

    #[test]
    fn incomplete_settings_are_refused_naming_each_setting() {
        let e = CommercetoolsClient::new(&CommercetoolsSettings::default()).unwrap_err();
        assert!(matches!(e, SetupError::Settings(_)));
        assert!(
            e.to_string()
                .contains("COORDINATOR__EXTENSION__COMMERCETOOLS__API_URL"),
            "{e}"
        );
    }

    #[test]
    fn a_client_prints_neither_secret_nor_token() {
        let settings = CommercetoolsSettings {
            api_url: Some("https://api.us-central1.gcp.commercetools.com".into()),
            auth_url: Some("https://auth.us-central1.gcp.commercetools.com/".into()),
            project_key: Some("edx-prod".into()),
            client_id: Some("coordinator".into()),
            client_secret: Some(Secret::new("s3cret-value")),
            ..CommercetoolsSettings::default()
        };
        let client = CommercetoolsClient::new(&settings).unwrap();
        assert_eq!(client.project_key(), "edx-prod");
        assert_eq!(client.service().service(), SERVICE);
        let printed = format!("{client:?}");
        assert!(!printed.contains("s3cret-value"), "{printed}");
        assert!(printed.contains("edx-prod"), "{printed}");
    }
}
