//! Seeding: an order as edX's checkout leaves it in commercetools, and its customer, from a
//! short [`OrderSpec`] (`POST /sandbox/commercetools/_orders`).

use coordinator::http::{Json, Problem, StatusCode};
use coordinator::id::{new_uuid, now_ms};
use coordinator::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::states::{PENDING, SANCTIONED};
use coordinator::time::format_time_ms;

use super::{LINE_ITEM_TYPE_ID, LMS_USER_ID_FIELD, field_text};
use crate::state::SandboxState;

/// The id of the customer custom type `2u-user_information`.
const CUSTOMER_TYPE_ID: &str = "3f8a2c6e-0b9d-4e1f-a7c4-5d2b8e1f6a09";
/// The id of the order custom type (`orderNumber`, `mobileOrder`).
const ORDER_TYPE_ID: &str = "1c5e8b2d-9f4a-4e7c-b0d3-6a2f9c1e5b80";
/// The key of the customer field holding the LMS username.
const LMS_USER_NAME_FIELD: &str = "edx-lms_user_name";
/// The price of every seeded line item, in US cents.
const ITEM_CENTS: u64 = 4900;

/// An order to seed (`POST /sandbox/commercetools/_orders`): who bought what. The order comes
/// out `Complete` and paid, every line item one unit in the pending fulfillment state, as
/// commercetools holds an order edX's checkout placed.
///
/// ```
/// use coordinator_sandbox::{ItemKind, OrderSpec};
///
/// let spec: OrderSpec = serde_json::from_value(serde_json::json!({
///     "order_number": "EDX-1001", "lms_user_id": 42, "username": "ada",
///     "email": "ada@example.com",
///     "items": [{"kind": "course", "sku": "course-v1:edX+DemoX+T1"}]
/// })).unwrap();
/// assert_eq!(spec.items[0].kind, ItemKind::Course);
/// assert_eq!(spec.items[0].mode, "verified");
/// assert!(!spec.sanctioned);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderSpec {
    /// The order number (`EDX-1001`), unique among the orders seeded.
    pub order_number: String,
    /// The learner's LMS user id; the customer with it is reused, or made.
    #[schemars(range(min = 1))]
    pub lms_user_id: u64,
    /// The learner's LMS username.
    pub username: String,
    /// The learner's email.
    pub email: String,
    /// What was bought, at least one item.
    pub items: Vec<ItemSpec>,
    /// Whether the order is stopped after a hit on the SDN list (its state is
    /// `2u-sdn-order-state`). Default false.
    #[serde(default)]
    pub sanctioned: bool,
}

/// One item of an [`OrderSpec`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemSpec {
    /// A course run (product type `edx_course`) or an entitlement to a course (product type
    /// `edx_course_entitlement`).
    pub kind: ItemKind,
    /// The variant's SKU: a course run key (`course-v1:edX+DemoX+T1`) for a course, the
    /// course's uuid for an entitlement.
    pub sku: String,
    /// The variant's `mode` attribute. Default `verified`.
    #[serde(default = "verified")]
    pub mode: String,
    /// The bundle (program) it was bought in: the line item's custom field `bundleId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_id: Option<String>,
    /// Whether the item was returned: the order gets a return of it, payment state
    /// `Initial`. Default false.
    #[serde(default)]
    pub returned: bool,
}

/// What an [`ItemSpec`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// A course run.
    Course,
    /// An entitlement to a course.
    Entitlement,
}

fn verified() -> String {
    "verified".to_owned()
}

impl OrderSpec {
    /// Reads and checks a spec; the error names the field at fault.
    fn read(spec: &Value) -> Result<Self, String> {
        const FIELDS: [&str; 6] = [
            "order_number",
            "lms_user_id",
            "username",
            "email",
            "items",
            "sanctioned",
        ];
        const ITEM_FIELDS: [&str; 5] = ["kind", "sku", "mode", "bundle_id", "returned"];
        let object = object_of(spec, "the body", &FIELDS)?;
        let order_number: String = required(object, "order_number", "order_number")?;
        let lms_user_id: u64 = required(object, "lms_user_id", "lms_user_id")?;
        let username: String = required(object, "username", "username")?;
        let email: String = required(object, "email", "email")?;
        let sanctioned = optional(object, "sanctioned", "sanctioned")?.unwrap_or(false);
        let texts = [
            ("order_number", &order_number),
            ("username", &username),
            ("email", &email),
        ];
        if let Some((field, _)) = texts.iter().find(|(_, v)| v.trim().is_empty()) {
            return Err(format!("`{field}` is empty"));
        }
        if lms_user_id == 0 {
            return Err("`lms_user_id` is 0; LMS user ids start at 1".to_owned());
        }
        if !email.contains('@') {
            return Err(format!("`email` {email:?} is not an email address"));
        }
        let entries = object
            .get("items")
            .and_then(Value::as_array)
            .filter(|items| !items.is_empty())
            .ok_or("`items` is missing or empty: list what was bought")?;
        let mut items = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let at = format!("items[{i}]");
            let item = object_of(entry, &at, &ITEM_FIELDS)?;
            let sku: String = required(item, "sku", &format!("{at}.sku"))?;
            if sku.trim().is_empty() {
                return Err(format!("`{at}.sku` is empty"));
            }
            items.push(ItemSpec {
                kind: required(item, "kind", &format!("{at}.kind"))?,
                sku,
                mode: optional(item, "mode", &format!("{at}.mode"))?.unwrap_or_else(verified),
                bundle_id: optional(item, "bundle_id", &format!("{at}.bundle_id"))?,
                returned: optional(item, "returned", &format!("{at}.returned"))?.unwrap_or(false),
            });
        }
        Ok(Self {
            order_number,
            lms_user_id,
            username,
            email,
            items,
            sanctioned,
        })
    }
}

/// `value` as an object with no other fields than `known`.
fn object_of<'a>(
    value: &'a Value,
    at: &str,
    known: &[&str],
) -> Result<&'a Map<String, Value>, String> {
    let object = value
        .as_object()
        .ok_or_else(|| format!("`{at}` is not an object"))?;
    match object.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(format!(
            "`{at}` has an unknown field `{unknown}`; the fields are {}",
            known.join(", ")
        )),
        None => Ok(object),
    }
}

fn optional<T: DeserializeOwned>(
    object: &Map<String, Value>,
    field: &str,
    at: &str,
) -> Result<Option<T>, String> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => serde_json::from_value(value.clone())
            .map(Some)
            .map_err(|e| format!("`{at}` is not valid: {e}")),
    }
}

fn required<T: DeserializeOwned>(
    object: &Map<String, Value>,
    field: &str,
    at: &str,
) -> Result<T, String> {
    optional(object, field, at)?.ok_or_else(|| format!("`{at}` is missing"))
}

/// `POST /_orders`: seeds an order, and its customer unless one has its LMS user id.
pub(crate) async fn seed_order(
    State(sandbox): State<SandboxState>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let spec = OrderSpec::read(&body)
        .map_err(|e| Problem::bad_request(format!("sandbox commercetools: {e}")))?;
    let now = format_time_ms(now_ms());
    let mut records = sandbox.lock();
    let records = &mut records.commercetools;
    if let Some(taken) = records
        .orders
        .values()
        .find(|o| o["orderNumber"] == spec.order_number.as_str())
    {
        return Err(Problem::bad_request(format!(
            "sandbox commercetools: `order_number` {:?} is taken by order {}; choose another",
            spec.order_number, taken["id"]
        )));
    }
    let lms_user_id = spec.lms_user_id.to_string();
    let customer_id = match records
        .customers
        .values()
        .find(|c| field_text(c, LMS_USER_ID_FIELD).as_deref() == Some(lms_user_id.as_str()))
    {
        Some(customer) => customer["id"].as_str().unwrap_or_default().to_owned(),
        None => {
            let customer = new_customer(&spec, &now);
            let id = customer["id"].as_str().unwrap_or_default().to_owned();
            records.customers.insert(id.clone(), customer);
            id
        }
    };
    let order = new_order(&spec, &customer_id, &now);
    let id = order["id"].as_str().unwrap_or_default().to_owned();
    records.orders.insert(id, order.clone());
    Ok((StatusCode::CREATED, Json(order)))
}

/// `GET /_orders`: the orders, oldest first.
pub(crate) async fn list_orders(State(sandbox): State<SandboxState>) -> Json<Vec<Value>> {
    Json(
        sandbox
            .lock()
            .commercetools
            .orders
            .values()
            .cloned()
            .collect(),
    )
}

fn new_customer(spec: &OrderSpec, now: &str) -> Value {
    json!({
        "id": new_uuid().to_string(),
        "version": 1,
        "versionModifiedAt": now,
        "createdAt": now,
        "lastModifiedAt": now,
        "email": spec.email,
        "addresses": [],
        "shippingAddressIds": [],
        "billingAddressIds": [],
        "isEmailVerified": true,
        "customerGroupAssignments": [],
        "stores": [],
        "authenticationMode": "Password",
        "custom": {
            "type": {"typeId": "type", "id": CUSTOMER_TYPE_ID},
            "fields": {
                LMS_USER_ID_FIELD: spec.lms_user_id,
                LMS_USER_NAME_FIELD: spec.username,
            }
        }
    })
}

fn money(cents: u64) -> Value {
    json!({"type": "centPrecision", "currencyCode": "USD", "centAmount": cents, "fractionDigits": 2})
}

/// A line item as commercetools holds it, its product type expanded.
fn new_line_item(item: &ItemSpec, now: &str) -> Value {
    let (type_id, type_key, type_name) = match item.kind {
        ItemKind::Course => (
            "2b7c9e4f-8a1d-4f6b-9c3e-5d2a0b8f1e74",
            "edx_course",
            "edX Course",
        ),
        ItemKind::Entitlement => (
            "4e9b1d6a-7c2f-4a8e-b5d3-9f0c2e7a1b46",
            "edx_course_entitlement",
            "edX Course Entitlement",
        ),
    };
    // A course run key's product is its course (`course-v1:edX+DemoX+T1` → `edX+DemoX`).
    let product_key = match item.sku.strip_prefix("course-v1:") {
        Some(run) => run.rsplit_once('+').map_or(run, |(course, _)| course),
        None => item.sku.as_str(),
    };
    let mut line_item = json!({
        "id": new_uuid().to_string(),
        "productId": new_uuid().to_string(),
        "productKey": product_key,
        "name": {"en-US": format!("Sandbox course {product_key}")},
        "productType": {
            "typeId": "product-type",
            "id": type_id,
            "obj": {
                "id": type_id,
                "version": 1,
                "key": type_key,
                "name": type_name,
                "description": format!("{type_name} (sandbox)"),
                "classifier": "Complex",
                "attributes": []
            }
        },
        "variant": {
            "id": 1,
            "sku": item.sku,
            "key": item.sku,
            "prices": [],
            "images": [],
            "attributes": [{"name": "mode", "value": item.mode}]
        },
        "price": {"id": new_uuid().to_string(), "value": money(ITEM_CENTS)},
        "quantity": 1,
        "discountedPricePerQuantity": [],
        "addedAt": now,
        "lastModifiedAt": now,
        "state": [{"quantity": 1, "state": PENDING.reference(false)}],
        "priceMode": "Platform",
        "lineItemMode": "Standard",
        "totalPrice": money(ITEM_CENTS),
        "taxedPricePortions": []
    });
    if let Some(bundle) = &item.bundle_id {
        line_item["custom"] = json!({
            "type": {"typeId": "type", "id": LINE_ITEM_TYPE_ID},
            "fields": {"bundleId": bundle}
        });
    }
    line_item
}

/// An order as commercetools holds it once edX's checkout placed it, its references expanded.
fn new_order(spec: &OrderSpec, customer_id: &str, now: &str) -> Value {
    let line_items: Vec<Value> = spec.items.iter().map(|i| new_line_item(i, now)).collect();
    let returns: Vec<Value> = spec
        .items
        .iter()
        .zip(&line_items)
        .filter(|(item, _)| item.returned)
        .map(|(_, line_item)| {
            json!({
                "type": "LineItemReturnItem",
                "id": new_uuid().to_string(),
                "quantity": 1,
                "lineItemId": line_item["id"],
                "shipmentState": "Returned",
                "paymentState": "Initial",
                "createdAt": now,
                "lastModifiedAt": now
            })
        })
        .collect();
    let total = money(ITEM_CENTS * line_items.len() as u64);
    let mut order = json!({
        "type": "Order",
        "id": new_uuid().to_string(),
        "version": 1,
        "versionModifiedAt": now,
        "lastMessageSequenceNumber": 1,
        "createdAt": now,
        "lastModifiedAt": now,
        "completedAt": now,
        "orderNumber": spec.order_number,
        "customerId": customer_id,
        "customerEmail": spec.email,
        "locale": "en-US",
        "totalPrice": total,
        "country": "US",
        "orderState": "Complete",
        "shipmentState": "Shipped",
        "paymentState": "Paid",
        "syncInfo": [],
        "returnInfo": [],
        "discountCodes": [],
        "directDiscounts": [],
        "lineItems": line_items,
        "customLineItems": [],
        "shippingMode": "Single",
        "shipping": [],
        "taxMode": "Disabled",
        "inventoryMode": "None",
        "origin": "Customer",
        "custom": {
            "type": {"typeId": "type", "id": ORDER_TYPE_ID},
            "fields": {"orderNumber": spec.order_number, "mobileOrder": false}
        },
        "paymentInfo": {"payments": [new_payment(customer_id, &total, now)]}
    });
    if !returns.is_empty() {
        order["returnInfo"] = json!([{"items": returns, "returnDate": now}]);
    }
    if spec.sanctioned {
        order["state"] = SANCTIONED.reference(true);
    }
    order
}

/// A reference to a payment by card through Stripe, expanded: it succeeded, one charge.
fn new_payment(customer_id: &str, total: &Value, now: &str) -> Value {
    let id = new_uuid().to_string();
    let processor_id = new_uuid().simple().to_string();
    let charge = json!({
        "id": new_uuid().to_string(),
        "timestamp": now,
        "type": "Charge",
        "amount": total,
        "interactionId": format!("ch_sandbox_{processor_id}"),
        "state": "Success"
    });
    json!({
        "typeId": "payment",
        "id": id,
        "obj": {
            "id": id,
            "version": 1,
            "createdAt": now,
            "lastModifiedAt": now,
            "key": format!("pi_sandbox_{processor_id}"),
            "customer": {"typeId": "customer", "id": customer_id},
            "interfaceId": format!("pi_sandbox_{processor_id}"),
            "amountPlanned": total,
            "paymentMethodInfo": {"paymentInterface": "stripe_edx", "method": "card", "name": {"en": "Card"}},
            "paymentStatus": {"interfaceCode": "succeeded", "interfaceText": "Succeeded"},
            "transactions": [charge],
            "interfaceInteractions": []
        }
    })
}
