//! The sandbox: in-process fakes of the services the coordinator calls, so that every flow runs
//! on a fresh machine with no account anywhere.
//!
//! Mounted at `/sandbox` in the embedded default configuration (`[server.mounts] sandbox =
//! "/sandbox"`); the clients of the LMS, commercetools and the fulfillment service point there.
//! Each fake answers at the real service's paths:
//!
//! | path | fakes |
//! | --- | --- |
//! | `POST /sandbox/lms/oauth2/access_token` | the LMS's OAuth2 token endpoint |
//! | `POST /sandbox/lms/api/enrollment/v1/enrollment` | enrollments |
//! | `POST /sandbox/lms/api/entitlements/v1/entitlements/` | entitlements (answers a uuid) |
//! | `POST /sandbox/lms/api/user/v1/accounts/{username}/deactivate/` | account deactivation |
//! | `POST /sandbox/fulfillment/api/fulfill-order/`, `.../api/revoke-line/` | the fulfillment service |
//! | `POST /sandbox/commercetools/oauth/token` | commercetools' OAuth2 service |
//! | `GET`/`POST /sandbox/commercetools/{project}/orders/{id}` | orders and their updates |
//! | `GET /sandbox/commercetools/{project}/customers`, `.../customers/{id}` | customers |
//! | `GET /sandbox/commercetools/{project}/states/{id}` | workflow states |
//! | `POST`/`GET /sandbox/commercetools/_orders` | seeds an order ([`OrderSpec`]); lists them |
//! | `GET /sandbox/_state` | everything the fakes recorded, and the knobs |
//! | `POST`/`DELETE /sandbox/_knobs/{service}` | make a service fail, refuse or slow down ([`Knob`]) |
//!
//! The sandbox's routes are public: never enable the extension in a real deployment.

mod commercetools;
mod fulfillment;
mod knobs;
mod lms;
mod state;

use coordinator::http::{Json, Route, StatusCode};
use coordinator::prelude::*;

pub use commercetools::{COMMERCETOOLS_TOKEN, ItemKind, ItemSpec, OrderSpec};
pub use knobs::{Knob, SERVICES};
pub use lms::LMS_TOKEN;
pub use state::{CommercetoolsRecords, FulfillmentRecords, LmsRecords, Records, SandboxState};

/// The sandbox extension. Its state can be shared with a test ([`SandboxExtension::with_state`]).
#[derive(Clone, Debug, Default)]
pub struct SandboxExtension {
    state: SandboxState,
}

impl SandboxExtension {
    /// A sandbox whose records the caller can read.
    pub fn with_state(state: SandboxState) -> Self {
        Self { state }
    }
}

async fn records(State(sandbox): State<SandboxState>) -> Json<Records> {
    Json(sandbox.records())
}

impl Extension for SandboxExtension {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    fn doc(&self) -> &'static str {
        "In-process fakes of the LMS, commercetools and the fulfillment service, with failure \
         knobs, so that every flow runs on a fresh machine. Public routes: never enable it in a real deployment."
    }

    fn build(&self, ext: &mut ExtensionBuilder<'_>) {
        ext.state(self.state.clone());
        ext.route(
            Route::post("/lms/oauth2/access_token", lms::token)
                .public()
                .doc("The fake LMS's OAuth2 token endpoint: any client credentials get a token (token_type JWT).")
                .response::<serde_json::Value>(),
        )
        .route(
            Route::post("/lms/api/enrollment/v1/enrollment", lms::enroll)
                .public()
                .doc("The fake LMS's enrollment API: records the enrollment of `user` in `course_details.course_id` and answers it. Requires the sandbox token.")
                .request::<serde_json::Value>()
                .response::<serde_json::Value>()
                .problem(StatusCode::UNAUTHORIZED, "No sandbox LMS token")
                .problem(StatusCode::BAD_REQUEST, "The body has no user or course_details.course_id"),
        )
        .route(
            Route::post("/lms/api/entitlements/v1/entitlements/", lms::entitle)
                .public()
                .doc("The fake LMS's entitlements API: grants `user` an entitlement to `course_uuid` and answers it with its uuid. Requires the sandbox token.")
                .request::<serde_json::Value>()
                .response::<serde_json::Value>()
                .problem(StatusCode::UNAUTHORIZED, "No sandbox LMS token")
                .problem(StatusCode::BAD_REQUEST, "The body has no user or course_uuid"),
        )
        .route(
            Route::post("/lms/api/user/v1/accounts/{username}/deactivate/", lms::deactivate)
                .public()
                .doc("The fake LMS's account deactivation. Requires the sandbox token.")
                .response::<serde_json::Value>()
                .problem(StatusCode::UNAUTHORIZED, "No sandbox LMS token"),
        )
        .route(
            Route::post("/fulfillment/api/fulfill-order/", fulfillment::fulfill)
                .public()
                .doc("The fake fulfillment service: accepts an order to fulfill.")
                .request::<serde_json::Value>()
                .response::<serde_json::Value>(),
        )
        .route(
            Route::post("/fulfillment/api/revoke-line/", fulfillment::revoke)
                .public()
                .doc("The fake fulfillment service: accepts a line to revoke.")
                .request::<serde_json::Value>()
                .response::<serde_json::Value>(),
        )
        .route(
            Route::post("/commercetools/oauth/token", commercetools::token)
                .public()
                .doc("The fake commercetools' OAuth2 token endpoint: any client credentials get a Bearer token for the scopes asked (form field `scope`). Point the commercetools client's `auth_url` at `/sandbox/commercetools`.")
                .response::<serde_json::Value>(),
        )
        .route(
            Route::get("/commercetools/{project}/orders/{id}", commercetools::order)
                .public()
                .doc("The fake commercetools' order by id, or by number when the segment is `order-number={number}`, with the references the client expands already filled in (`expand` is ignored). Any project key. Requires the sandbox token.")
                .response::<serde_json::Value>()
                .problem(StatusCode::UNAUTHORIZED, "No sandbox commercetools token (commercetools' error shape)")
                .problem(StatusCode::NOT_FOUND, "No such order (commercetools' error shape, code ResourceNotFound)"),
        )
        .route(
            Route::post("/commercetools/{project}/orders/{id}", commercetools::update_order)
                .public()
                .doc("The fake commercetools' order update: `{\"version\", \"actions\"}` with transitionLineItemState, setLineItemCustomField and setReturnPaymentState, applied all or none; answers the order at its new version. Requires the sandbox token.")
                .request::<serde_json::Value>()
                .response::<serde_json::Value>()
                .problem(StatusCode::UNAUTHORIZED, "No sandbox commercetools token")
                .problem(StatusCode::NOT_FOUND, "No such order (code ResourceNotFound)")
                .problem(StatusCode::CONFLICT, "The version is not the order's (code ConcurrentModification, with currentVersion)")
                .problem(StatusCode::BAD_REQUEST, "An action cannot be applied (InvalidOperation: too few units in fromState, no such line item or return item, an action not faked) or is malformed (InvalidJsonInput)"),
        )
        .route(
            Route::get("/commercetools/{project}/customers", commercetools::customers)
                .public()
                .doc("The fake commercetools' customer query: a page (`limit`, `offset`) of the customers, those with the LMS user id of `where=custom(fields(edx-lms_user_id=:id))` and `var.id` when there is a predicate. Requires the sandbox token.")
                .response::<serde_json::Value>()
                .problem(StatusCode::UNAUTHORIZED, "No sandbox commercetools token")
                .problem(StatusCode::BAD_REQUEST, "A predicate the fake cannot evaluate, or an unbound variable (code InvalidInput)"),
        )
        .route(
            Route::get("/commercetools/{project}/customers/{id}", commercetools::customer)
                .public()
                .doc("The fake commercetools' customer by id. Requires the sandbox token.")
                .response::<serde_json::Value>()
                .problem(StatusCode::UNAUTHORIZED, "No sandbox commercetools token")
                .problem(StatusCode::NOT_FOUND, "No such customer (code ResourceNotFound)"),
        )
        .route(
            Route::get("/commercetools/{project}/states/{id}", commercetools::state)
                .public()
                .doc("The fake commercetools' workflow state by id, or by key when the segment is `key={key}`: the four fulfillment states of line items and the sanctioned order state. Requires the sandbox token.")
                .response::<serde_json::Value>()
                .problem(StatusCode::UNAUTHORIZED, "No sandbox commercetools token")
                .problem(StatusCode::NOT_FOUND, "No such state (code ResourceNotFound)"),
        )
        .route(
            Route::post("/commercetools/_orders", commercetools::seed_order)
                .public()
                .doc("Seeds the fake commercetools with an order (Complete, paid, every line item pending) and its customer, reused by LMS user id; answers the order (201).")
                .request::<OrderSpec>()
                .response::<serde_json::Value>()
                .problem(StatusCode::BAD_REQUEST, "The spec is not valid (the field is named), or its order number is taken"),
        )
        .route(
            Route::get("/commercetools/_orders", commercetools::list_orders)
                .public()
                .doc("The fake commercetools' orders, oldest first, as its API answers them.")
                .response::<Vec<serde_json::Value>>(),
        )
        .route(
            Route::get("/_state", records)
                .public()
                .doc("Everything the fake services recorded, and their knobs.")
                .response::<Records>(),
        )
        .route(
            Route::post("/_knobs/{service}", knobs::set)
                .public()
                .doc("Makes a fake service (lms, commercetools, fulfillment) fail its next calls, fail always, refuse (a 4xx status) or answer slowly.")
                .request::<Knob>()
                .response::<Knob>()
                .problem(StatusCode::NOT_FOUND, "No such sandbox service")
                .problem(StatusCode::BAD_REQUEST, "The knob's status is not 400-599, or its delay is over 60 s"),
        )
        .route(
            Route::delete("/_knobs/{service}", knobs::reset)
                .public()
                .doc("Resets a fake service's knob: it answers normally again.")
                .problem(StatusCode::NOT_FOUND, "No such sandbox service"),
        );
    }
}

#[cfg(test)]
mod tests;
