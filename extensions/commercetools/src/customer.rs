//! Customers: who placed an order, and the LMS account edX tagged them with (the custom type
//! `2u-user_information`). Email and names are [`Personal`]: they print as `[redacted]`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use coordinator::Personal;

use crate::keys::{LMS_USER_ID_FIELD, LMS_USER_NAME_FIELD};
use crate::reference::CustomFields;

/// A customer.
///
/// ```
/// use coordinator_commercetools::Customer;
///
/// let customer: Customer = serde_json::from_str(r#"{
///     "id": "b8e2d4f6-1a3c-4e5b-8d7f-9a0b1c2d3e4f", "version": 2,
///     "email": "ada@example.com", "firstName": "Ada", "lastName": "Lovelace",
///     "custom": {"type": {"typeId": "type", "id": "0c6f5b8e-6a2d-4c1f-8d0a-2b7e9c3f4a15"},
///                "fields": {"edx-lms_user_id": "4127", "edx-lms_user_name": "ada"}}
/// }"#).unwrap();
/// assert_eq!(customer.lms_user_id(), Some(4127));
/// assert_eq!(customer.lms_user_name(), Some("ada"));
/// let printed = format!("{customer:?}");
/// assert!(!printed.contains("ada@example.com") && !printed.contains("Lovelace"));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    /// Its id.
    pub id: String,
    /// Its version.
    pub version: u64,
    /// Its email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Personal<String>>,
    /// Its first name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<Personal<String>>,
    /// Its last name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<Personal<String>>,
    /// Its custom fields (`edx-lms_user_id`, `edx-lms_user_name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<CustomFields>,
}

impl Customer {
    /// The LMS user id edX tagged the customer with (stored as text; a number is read too).
    pub fn lms_user_id(&self) -> Option<u64> {
        match self.custom.as_ref()?.get(LMS_USER_ID_FIELD)? {
            Value::String(text) => text.trim().parse().ok(),
            Value::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    /// The LMS username edX tagged the customer with.
    pub fn lms_user_name(&self) -> Option<&str> {
        self.custom.as_ref()?.text(LMS_USER_NAME_FIELD)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_customer_without_custom_fields_has_no_lms_account() {
        let c: Customer = serde_json::from_value(json!({"id": "c-1", "version": 1})).unwrap();
        assert_eq!(c.lms_user_id(), None);
        assert_eq!(c.lms_user_name(), None);
        assert_eq!(c.email, None);
    }

    #[test]
    fn a_numeric_lms_user_id_is_read_too() {
        let c: Customer = serde_json::from_value(json!({
            "id": "c-1", "version": 1,
            "custom": {"type": {"typeId": "type", "id": "t"}, "fields": {"edx-lms_user_id": 7}}
        }))
        .unwrap();
        assert_eq!(c.lms_user_id(), Some(7));
    }
}
