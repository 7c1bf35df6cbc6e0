//! Payloads: the typed data that signals carry and filters pass along, and [`Personal`] data
//! that reaches handlers but never logs or reports.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a signal payload or filter data type must be: serializable both ways (so that it can cross
/// a process boundary), described by a JSON schema (so that the catalog documents it), and
/// shareable between concurrently running handlers.
///
/// It is implemented for every type that meets the bounds: derive
/// `Serialize, Deserialize, JsonSchema` and you are done.
pub trait Payload:
    Serialize + for<'de> Deserialize<'de> + JsonSchema + Send + Sync + 'static
{
}

impl<T> Payload for T where
    T: Serialize + for<'de> Deserialize<'de> + JsonSchema + Send + Sync + 'static
{
}

/// Personal data about a learner (an email address, a name, a street address).
///
/// Handlers read it with [`Personal::expose`]. It prints as `[redacted]` with `{:?}` and `{}`, and
/// [`redacted_json`] (which the framework uses whenever it writes a payload to a log) replaces it
/// with `"[redacted]"`. Plain serialization, which carries the payload to a handler in another
/// process, keeps the value. Its JSON schema is the inner type's with `"x-personal-data": true`.
///
/// ```
/// use coordinator::payload::{redacted_json, Personal};
///
/// #[derive(serde::Serialize)]
/// struct Learner { id: u64, email: Personal<String> }
///
/// let learner = Learner { id: 7, email: Personal::new("ada@example.com".to_owned()) };
/// assert_eq!(learner.email.expose(), "ada@example.com");
/// assert_eq!(format!("{:?}", learner.email), "[redacted]");
/// assert_eq!(redacted_json(&learner)["email"], "[redacted]");
/// assert_eq!(serde_json::to_value(&learner).unwrap()["email"], "ada@example.com");
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Personal<T>(T);

/// How personal data is written wherever it would otherwise appear in full.
pub const REDACTED: &str = "[redacted]";

impl<T> Personal<T> {
    /// Marks `value` as personal data.
    pub const fn new(value: T) -> Self {
        Self(value)
    }

    /// The value, for the code that needs it (a handler calling another service).
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Takes the value out.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Personal<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T> fmt::Debug for Personal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> fmt::Display for Personal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

thread_local! {
    static REDACTING: Cell<u32> = const { Cell::new(0) };
}

impl<T: Serialize> Serialize for Personal<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if REDACTING.with(Cell::get) > 0 {
            serializer.serialize_str(REDACTED)
        } else {
            self.0.serialize(serializer)
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Personal<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Self)
    }
}

impl<T: JsonSchema> JsonSchema for Personal<T> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        format!("Personal_{}", T::schema_name()).into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut schema = generator.subschema_for::<T>();
        schema.insert("x-personal-data".to_owned(), true.into());
        schema
    }
}

/// Serializes `value` to JSON with every [`Personal`] field replaced by `"[redacted]"`.
///
/// This is the only form in which the framework writes payloads to logs.
pub fn redacted_json<T: Serialize + ?Sized>(value: &T) -> serde_json::Value {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            REDACTING.with(|r| r.set(r.get() - 1));
        }
    }
    REDACTING.with(|r| r.set(r.get() + 1));
    let _reset = Reset;
    serde_json::to_value(value)
        .unwrap_or_else(|e| serde_json::Value::String(format!("<unserializable payload: {e}>")))
}

/// The JSON schema of a payload type, as the catalog shows it.
pub(crate) fn schema_of<P: JsonSchema>() -> serde_json::Value {
    schemars::schema_for!(P).to_value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, JsonSchema)]
    struct Learner {
        id: u64,
        email: Personal<String>,
        addresses: Vec<Personal<String>>,
    }

    fn learner() -> Learner {
        Learner {
            id: 1,
            email: Personal::new("ada@example.com".into()),
            addresses: vec![Personal::new("1 Main St".into())],
        }
    }

    #[test]
    fn personal_data_is_redacted_in_debug_display_and_redacted_json() {
        let l = learner();
        assert_eq!(
            format!("{:?} {}", l.email, l.email),
            "[redacted] [redacted]"
        );
        let json = redacted_json(&l).to_string();
        assert!(!json.contains("ada@example.com"), "{json}");
        assert!(!json.contains("Main St"), "{json}");
        assert_eq!(redacted_json(&l)["id"], 1);
    }

    #[test]
    fn personal_data_survives_plain_serialization_for_transport() {
        let l = learner();
        let json = serde_json::to_string(&l).unwrap();
        let back: Learner = serde_json::from_str(&json).unwrap();
        assert_eq!(back.email.expose(), "ada@example.com");
    }

    #[test]
    fn redaction_ends_after_redacted_json_returns() {
        let l = learner();
        let _ = redacted_json(&l);
        assert_eq!(
            serde_json::to_value(&l).unwrap()["email"],
            "ada@example.com"
        );
    }

    #[test]
    fn schema_marks_personal_fields() {
        let schema = schema_of::<Learner>();
        assert_eq!(
            schema["properties"]["email"]["x-personal-data"], true,
            "{schema:#}"
        );
    }
}
