//! The keys and names edX gave its objects in commercetools: workflow states, the customer's
//! custom type and its fields, line-item custom fields, and the references an order is read
//! with.
//!
//! They are data in the commercetools project, provisioned once; the flows name them through
//! these constants so that a typo is a compile error rather than a 404 at run time.

/// The key of the line-item state commercetools gives every new line item (built in, hence
/// not in the `2u-` format).
pub const INITIAL_STATE: &str = "Initial";

/// The line-item state of an item waiting to be fulfilled.
pub const FULFILLMENT_PENDING_STATE: &str = "2u-fulfillment-pending-state";

/// The line-item state of an item being fulfilled (the LMS called, no answer yet).
pub const FULFILLMENT_PROCESSING_STATE: &str = "2u-fulfillment-processing-state";

/// The line-item state of an item fulfilled (the learner is enrolled or entitled).
pub const FULFILLMENT_SUCCESS_STATE: &str = "2u-fulfillment-success-state";

/// The line-item state of an item whose fulfillment failed.
pub const FULFILLMENT_FAILURE_STATE: &str = "2u-fulfillment-failure-state";

/// The order (workflow) state of an order sanctioned after a hit on the SDN list.
pub const SDN_SANCTIONED_ORDER_STATE: &str = "2u-sdn-order-state";

/// The key of the customer custom type that holds the LMS identifiers.
pub const CUSTOMER_TYPE: &str = "2u-user_information";

/// The customer custom field holding the LMS user id (as text).
pub const LMS_USER_ID_FIELD: &str = "edx-lms_user_id";

/// The customer custom field holding the LMS username.
pub const LMS_USER_NAME_FIELD: &str = "edx-lms_user_name";

/// The line-item custom field holding the LMS entitlement id, set once a learner is entitled.
pub const LINE_ITEM_ENTITLEMENT_ID_FIELD: &str = "edxLMSEntitlementId";

/// The line-item custom field holding the bundle (program) a line item was bought in.
pub const LINE_ITEM_BUNDLE_ID_FIELD: &str = "bundleId";

/// The order custom field that marks an order placed in the mobile apps.
pub const ORDER_MOBILE_ORDER_FIELD: &str = "mobileOrder";

/// The references an order is read with ([`CommercetoolsClient::order_by_id`] and the others
/// that return an order): its workflow state, each line item's product type, its payments,
/// its discount codes and direct discounts. These are the original service's; the flows read
/// the state's key (sanctions), the product type's key (course or program), and the successful
/// payment's interface id (refunds).
///
/// [`CommercetoolsClient::order_by_id`]: crate::CommercetoolsClient::order_by_id
pub const ORDER_EXPANSION: &[&str] = &[
    "state",
    "lineItems[*].productType.obj",
    "paymentInfo.payments[*]",
    "discountCodes[*].discountCode",
    "directDiscounts[*]",
];
