//! The handlers of the commercetools flows. Each runs as a durable delivery (retried on its
//! own with backoff) and is safe to run again: what is already done is left out.
//!
//! 1. `commercetools.fulfill_order` (on `commercetools.fulfillment_requested`): enqueues one
//!    LMS task per line item pending or processing (`lms.enroll_in_course` for a course run,
//!    `lms.grant_entitlement` for an entitlement), keyed by order and line item so that each is
//!    fulfilled once whatever messages arrive twice or together, then moves the pending units
//!    to processing.
//! 2. `commercetools.record_fulfillment` (on `lms.fulfillment_completed`): moves the line item
//!    from processing (or still pending) to success (storing the entitlement's uuid) or failure, and on failure
//!    sends `commercetools.line_item_fulfillment_failed`.
//! 3. `commercetools.deactivate_sanctioned_learner` (on `commercetools.order_state_changed`):
//!    when the order is sanctioned, enqueues `lms.deactivate_user` for its learner, once.

use coordinator::handler::HandlerError;
use coordinator::prelude::*;
use coordinator::task::EnqueueOptions;
use coordinator_lms::{
    DEACTIVATE_USER, DeactivateUser, ENROLL_IN_COURSE, EnrollInCourse, FulfillmentCompleted,
    GRANT_ENTITLEMENT, GrantEntitlement,
};

use crate::actions::OrderAction;
use crate::client::{CommercetoolsClient, SetupError};
use crate::keys::{
    FULFILLMENT_FAILURE_STATE, FULFILLMENT_PENDING_STATE, FULFILLMENT_PROCESSING_STATE,
    FULFILLMENT_SUCCESS_STATE, LINE_ITEM_ENTITLEMENT_ID_FIELD,
};
use crate::order::{LineItem, Order};
use crate::signals::{
    FulfillmentRequested, LINE_ITEM_FULFILLMENT_FAILED, LineItemFulfillmentFailed,
    OrderStateChangedMessage,
};
use crate::state::StateIdentifier;

/// The product type of a line item that is an entitlement (a course within a program).
pub const ENTITLEMENT_PRODUCT_TYPE: &str = "edx_course_entitlement";

/// The source system named in enrollments.
pub const SOURCE_SYSTEM: &str = "commercetools";

/// The client, or why there is none (the settings are incomplete): the flows' handlers fail
/// saying which settings to set.
#[derive(Clone, Debug)]
pub struct Commercetools(Result<CommercetoolsClient, String>);

impl Commercetools {
    /// From the client made of the settings, or the reason it could not be made.
    pub fn new(client: Result<CommercetoolsClient, SetupError>) -> Self {
        Self(client.map_err(|e| e.to_string()))
    }

    fn client(&self) -> Result<&CommercetoolsClient, HandlerError> {
        self.0.as_ref().map_err(|e| HandlerError::msg(e.clone()))
    }
}

/// Which LMS call fulfills a line item.
enum Fulfillment {
    Enrollment { course_run_key: String },
    Entitlement { course_uuid: String },
}

fn fulfillment_of(item: &LineItem) -> Result<Fulfillment, HandlerError> {
    let sku = item.variant.sku.clone().ok_or_else(|| {
        HandlerError::msg(format!(
            "line item {} has no variant sku (the course run key or course uuid)",
            item.id
        ))
    })?;
    let product_type = item
        .product_type
        .as_ref()
        .and_then(|t| t.expanded())
        .and_then(|t| t.key.as_deref());
    Ok(if product_type == Some(ENTITLEMENT_PRODUCT_TYPE) {
        Fulfillment::Entitlement { course_uuid: sku }
    } else {
        Fulfillment::Enrollment {
            course_run_key: sku,
        }
    })
}

/// The course mode a line item bought (its variant's `mode` attribute; `verified` if none).
fn mode_of(item: &LineItem) -> String {
    item.attribute("mode")
        .and_then(|v| {
            v.as_str()
                .map(str::to_owned)
                .or_else(|| v.get("key").and_then(|k| k.as_str()).map(str::to_owned))
        })
        .unwrap_or_else(|| "verified".to_owned())
}

/// The learner of `order`: LMS user id and username, from its customer's custom fields.
async fn learner_of(
    ct: &CommercetoolsClient,
    order: &Order,
) -> Result<(u64, Personal<String>), HandlerError> {
    let customer_id = order
        .customer_id
        .as_deref()
        .ok_or_else(|| HandlerError::msg(format!("order {} has no customer", order.id)))?;
    let customer = ct.customer_by_id(customer_id).await?;
    let lms_user_id = customer.lms_user_id().ok_or_else(|| {
        HandlerError::msg(format!(
            "customer {customer_id} of order {} has no edx-lms_user_id",
            order.id
        ))
    })?;
    let username = customer.lms_user_name().ok_or_else(|| {
        HandlerError::msg(format!(
            "customer {customer_id} of order {} has no edx-lms_user_name",
            order.id
        ))
    })?;
    Ok((lms_user_id, Personal::new(username.to_owned())))
}

async fn fulfill_order(
    event: Event<FulfillmentRequested>,
    State(ct): State<Commercetools>,
) -> HandlerResult {
    let ct = ct.client()?;
    let pending = ct.state_by_key(FULFILLMENT_PENDING_STATE).await?;
    if event.to_state_id != pending.id {
        return Ok(format!(
            "ignored: the line item moved to state {}, not {FULFILLMENT_PENDING_STATE}",
            event.to_state_id
        )
        .into());
    }
    let processing = ct.state_by_key(FULFILLMENT_PROCESSING_STATE).await?;
    let order = ct.order_by_id(&event.order_id).await?;
    let (lms_user_id, username) = learner_of(ct, &order).await?;
    let order_number = order
        .order_number
        .clone()
        .unwrap_or_else(|| order.id.clone());
    let date_placed = order
        .completed_at
        .clone()
        .or_else(|| order.created_at.clone())
        .unwrap_or_default();
    let ctx = event.context();
    // The work first, then the state: an LMS task is enqueued (once) for every line item
    // pending or processing, before the pending ones move to processing. Stopped between the
    // two, the tasks still run, and their completion moves the line item from pending
    // straight to its final state; stopped before, the line items are still pending and this
    // delivery (retried, or retried by an operator once dead) starts again. A line item is
    // never left in processing without a task that will end it.
    let mut queued = 0;
    for item in order
        .line_items
        .iter()
        .filter(|item| item.quantity_in(&pending.id) > 0 || item.quantity_in(&processing.id) > 0)
    {
        // One task per line item, ever: a message delivered again, or the sibling line
        // items' messages, find it already enqueued.
        let once = EnqueueOptions::default().once(format!("{}:{}", order.id, item.id));
        match fulfillment_of(item)? {
            Fulfillment::Enrollment { course_run_key } => {
                let task = EnrollInCourse {
                    lms_user_id,
                    username: username.clone(),
                    course_run_key,
                    mode: mode_of(item),
                    email_opt_in: false,
                    order_number: order_number.clone(),
                    order_id: order.id.clone(),
                    line_item_id: item.id.clone(),
                    date_placed: date_placed.clone(),
                    source_system: SOURCE_SYSTEM.to_owned(),
                    credit_provider_id: None,
                };
                ctx.enqueue_with(&ENROLL_IN_COURSE, task, once).await?;
            }
            Fulfillment::Entitlement { course_uuid } => {
                let task = GrantEntitlement {
                    lms_user_id,
                    username: username.clone(),
                    course_uuid,
                    mode: mode_of(item),
                    email_opt_in: false,
                    order_number: order_number.clone(),
                    order_id: order.id.clone(),
                    line_item_id: item.id.clone(),
                };
                ctx.enqueue_with(&GRANT_ENTITLEMENT, task, once).await?;
            }
        }
        queued += 1;
    }
    // Every pending unit to processing (derived again from the order read after a conflict;
    // a line item whose task already ended is no longer pending, and is left alone).
    ct.update_order_from(order, |order| {
        order
            .line_items
            .iter()
            .filter_map(|item| {
                item.transition(&pending.id, StateIdentifier::id(processing.id.clone()))
            })
            .collect()
    })
    .await?;
    Ok(format!("order {order_number}: {queued} line item(s) being fulfilled").into())
}

async fn record_fulfillment(
    event: Event<FulfillmentCompleted>,
    State(ct): State<Commercetools>,
) -> HandlerResult {
    let ct = ct.client()?;
    let processing = ct.state_by_key(FULFILLMENT_PROCESSING_STATE).await?;
    let pending = ct.state_by_key(FULFILLMENT_PENDING_STATE).await?;
    let target = ct
        .state_by_key(if event.succeeded {
            FULFILLMENT_SUCCESS_STATE
        } else {
            FULFILLMENT_FAILURE_STATE
        })
        .await?;
    let order = ct
        .update_order(&event.order_id, |order| {
            let Some(item) = order.line_item(&event.line_item_id) else {
                return Vec::new();
            };
            // From processing; or from pending, when the task ended before the line item was
            // moved to processing. Neither: done already (this completion was delivered
            // before), nothing to send.
            let to = || StateIdentifier::id(target.id.clone());
            let Some(transition) = item
                .transition(&processing.id, to())
                .or_else(|| item.transition(&pending.id, to()))
            else {
                return Vec::new();
            };
            let mut actions = Vec::new();
            if let Some(uuid) = &event.entitlement_uuid {
                actions.push(OrderAction::set_line_item_field(
                    item.id.clone(),
                    LINE_ITEM_ENTITLEMENT_ID_FIELD,
                    uuid.clone(),
                ));
            }
            actions.push(transition);
            actions
        })
        .await?;
    if order.line_item(&event.line_item_id).is_none() {
        return Err(HandlerError::msg(format!(
            "order {} has no line item {}",
            event.order_id, event.line_item_id
        )));
    }
    if event.succeeded {
        return Ok(format!(
            "line item {} of order {} fulfilled",
            event.line_item_id, event.order_number
        )
        .into());
    }
    let error = event.error.clone().unwrap_or_default();
    let report = event
        .context()
        .send_robust(
            &LINE_ITEM_FULFILLMENT_FAILED,
            LineItemFulfillmentFailed {
                order_id: event.order_id.clone(),
                order_number: event.order_number.clone(),
                line_item_id: event.line_item_id.clone(),
                lms_user_id: event.lms_user_id,
                error: error.clone(),
            },
        )
        .await;
    report.accepted()?;
    Ok(format!(
        "line item {} of order {} failed: {error}",
        event.line_item_id, event.order_number
    )
    .into())
}

async fn deactivate_sanctioned_learner(
    event: Event<OrderStateChangedMessage>,
    State(ct): State<Commercetools>,
) -> HandlerResult {
    let ct = ct.client()?;
    let order = ct.order_by_id(&event.order_id).await?;
    if !order.is_sanctioned() {
        return Ok(format!("ignored: order {} is not sanctioned", order.id).into());
    }
    let (lms_user_id, username) = learner_of(ct, &order).await?;
    let order_number = order.order_number.clone();
    event
        .context()
        .enqueue_with(
            &DEACTIVATE_USER,
            DeactivateUser {
                username,
                lms_user_id: Some(lms_user_id),
                order_number: order_number.clone(),
            },
            EnqueueOptions::default().once(format!("sanctioned:{}", order.id)),
        )
        .await?;
    Ok(format!(
        "order {} is sanctioned: deactivating the LMS account of user {lms_user_id}",
        order_number.as_deref().unwrap_or(&order.id)
    )
    .into())
}

pub(crate) fn declare(ext: &mut ExtensionBuilder<'_>) {
    ext.handler(
        "commercetools.fulfill_order",
        "Enqueues one LMS task per pending or processing line item (an enrollment for a course run, an entitlement for a program's course), once per line item, then moves the pending line items to processing.",
        fulfill_order,
    )
    .enqueues(&ENROLL_IN_COURSE)
    .enqueues(&GRANT_ENTITLEMENT)
    .handler(
        "commercetools.record_fulfillment",
        "Moves a fulfilled line item from processing (or still pending) to success (with its entitlement's uuid) or failure; sends commercetools.line_item_fulfillment_failed on failure.",
        record_fulfillment,
    )
    .sends(&LINE_ITEM_FULFILLMENT_FAILED)
    .handler(
        "commercetools.deactivate_sanctioned_learner",
        "When the order is in the sanctioned state, enqueues lms.deactivate_user for its learner, once.",
        deactivate_sanctioned_learner,
    )
    .enqueues(&DEACTIVATE_USER);
}
