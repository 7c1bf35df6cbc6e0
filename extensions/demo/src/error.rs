//! The demo extension's errors.

/// What can go wrong in the demo's sandbox systems.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The sandbox CRM never answers (on purpose).
    #[error("could not notify the CRM about order {order_number}")]
    CrmUnreachable {
        /// The order.
        order_number: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The sandbox processor's dispute API never answers (on purpose), so dispute events are
    /// retried until their attempts run out: the demo of a task that dies.
    #[error("could not fetch dispute {event_id} from the payment processor")]
    DisputeServiceUnreachable {
        /// The event.
        event_id: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A payment page was asked for without a processor having been chosen.
    #[error(
        "no payment processor was chosen for SKU {sku}; put demo.choose_processor before demo.build_redirect_url in the pipeline"
    )]
    NoProcessor {
        /// The SKU.
        sku: String,
    },
}
