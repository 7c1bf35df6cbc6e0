//! Typed signals: named, documented events.

use std::fmt;
use std::marker::PhantomData;

use crate::payload::Payload;

/// A signal: a named, documented event that carries a payload of type `P`.
///
/// Declare each signal once, as a `static` in the crate of the extension that sends it, and
/// register it in that extension's [`build`](crate::Extension::build) with
/// [`ExtensionBuilder::signal`](crate::ExtensionBuilder::signal). The name is
/// `<extension>.<snake_case_event>`, in the past tense (`stripe.payment_refunded`).
///
/// ```
/// use coordinator::prelude::*;
///
/// /// A refund was issued in Stripe.
/// #[derive(Debug, Serialize, Deserialize, JsonSchema)]
/// pub struct PaymentRefunded { pub payment_intent_id: String, pub amount_cents: u64 }
///
/// pub static PAYMENT_REFUNDED: Signal<PaymentRefunded> =
///     Signal::new("stripe.payment_refunded", "Stripe refunded (part of) a payment.");
/// assert_eq!(PAYMENT_REFUNDED.name(), "stripe.payment_refunded");
/// ```
pub struct Signal<P> {
    name: &'static str,
    doc: &'static str,
    durable: bool,
    // `fn() -> P` keeps `Signal<P>` Send + Sync whatever `P` is, so it can be a `static`.
    payload: PhantomData<fn() -> P>,
}

impl<P: Payload> Signal<P> {
    /// Defines a signal. Validation at start-up checks the name.
    pub const fn new(name: &'static str, doc: &'static str) -> Self {
        Self {
            name,
            doc,
            durable: false,
            payload: PhantomData,
        }
    }

    /// Makes the signal durable whatever the configuration says: each delivery is stored
    /// (with the sender's own writes, when it is sent with
    /// [`Context::send_in`](crate::Context::send_in)) and run from storage by the workers,
    /// each retried on its own. Declare it so for a signal the extension sends in a
    /// transaction; the configuration can make any other signal durable
    /// (`[signals."<name>"] durable = true`).
    pub const fn durable(mut self) -> Self {
        self.durable = true;
        self
    }

    /// Whether the declaration makes it durable.
    pub const fn is_durable(&self) -> bool {
        self.durable
    }

    /// The signal's full name, `<extension>.<event>`.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// What the signal means, for the catalog.
    pub const fn doc(&self) -> &'static str {
        self.doc
    }

    /// The Rust type of the payload, as shown in errors and the catalog.
    pub fn payload_type(&self) -> &'static str {
        std::any::type_name::<P>()
    }
}

impl<P> fmt::Debug for Signal<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signal")
            .field("name", &self.name)
            .field("payload", &std::any::type_name::<P>())
            .finish()
    }
}
