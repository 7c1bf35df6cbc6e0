//! The shapes commercetools resources share: references to other resources (expanded or
//! not), custom fields, and localized strings.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Text in several languages, by IETF language tag (`{"en-US": "Injury Prevention"}`).
pub type LocalizedString = BTreeMap<String, String>;

/// A reference to another resource: its type and id, and the resource itself (`obj`) when
/// the request expanded it.
///
/// ```
/// use coordinator_commercetools::{Reference, State};
///
/// let r: Reference<State> = serde_json::from_str(
///     r#"{"typeId": "state", "id": "9a6f3c1e-3c1d-4a4e-9e0b-3f1c2d4b5a61"}"#,
/// ).unwrap();
/// assert_eq!(r.type_id, "state");
/// assert!(r.obj.is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", bound(deserialize = "T: Deserialize<'de>"))]
pub struct Reference<T = Value> {
    /// The resource's type (`state`, `payment`, `product-type`, `type`).
    pub type_id: String,
    /// The resource's id.
    pub id: String,
    /// The resource, when it was expanded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub obj: Option<Box<T>>,
}

impl<T> Reference<T> {
    /// The expanded resource, if it was expanded.
    pub fn expanded(&self) -> Option<&T> {
        self.obj.as_deref()
    }
}

/// A resource's custom fields: the custom type they follow and the values.
///
/// Values may hold personal data (a customer's LMS username), so `Debug` prints the field
/// names only.
///
/// ```
/// use coordinator_commercetools::CustomFields;
///
/// let custom: CustomFields = serde_json::from_str(r#"{
///     "type": {"typeId": "type", "id": "0c6f5b8e-6a2d-4c1f-8d0a-2b7e9c3f4a15"},
///     "fields": {"edx-lms_user_id": "4127", "edx-lms_user_name": "ada"}
/// }"#).unwrap();
/// assert_eq!(custom.text("edx-lms_user_name"), Some("ada"));
/// assert!(!format!("{custom:?}").contains("ada"));
/// ```
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CustomFields {
    /// The custom type the fields follow.
    #[serde(rename = "type")]
    pub type_ref: Reference,
    /// The values, by field name.
    #[serde(default)]
    pub fields: BTreeMap<String, Value>,
}

impl CustomFields {
    /// The value of `field`, if set.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.fields.get(field)
    }

    /// The value of `field` if it is text.
    pub fn text(&self, field: &str) -> Option<&str> {
        self.get(field).and_then(Value::as_str)
    }

    /// The value of `field` if it is a boolean.
    pub fn flag(&self, field: &str) -> Option<bool> {
        self.get(field).and_then(Value::as_bool)
    }
}

impl fmt::Debug for CustomFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomFields")
            .field("type_ref", &self.type_ref)
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .finish()
    }
}
