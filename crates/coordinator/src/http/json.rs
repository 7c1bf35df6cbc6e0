//! JSON bodies, and the extractors of the framework's own values: the [`Context`] and
//! [`State`].

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::problem::Problem;
use crate::context::Context;
use crate::state::{State, missing_state};

/// JSON request and response bodies. A body that is not valid JSON is rejected with a 400
/// [`Problem`], one not of the expected shape with a 422, one without a JSON `Content-Type` with
/// a 415, each saying where it is wrong (line, column, field).
///
/// A number with a zero fraction (`7.0`, `1e3`) is accepted where an integer is expected: JSON has
/// one number type, and the JSON Schema of the OpenAPI document counts such a number an integer.
#[derive(Clone, Copy, Debug, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                MISSING_JSON_CONTENT_TYPE,
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| json_problem(&e.into()))?;
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(value)) => Ok(Self(value)),
            // Only a body refused for its shape is read again, so a valid body is parsed once.
            Err(rejection @ JsonRejection::JsonDataError(_)) => {
                with_integral_numbers(&bytes).ok_or_else(|| json_problem(&rejection))
            }
            Err(rejection) => Err(json_problem(&rejection)),
        }
    }
}

/// Whether the `Content-Type` is JSON: `application/json` or `application/<anything>+json`,
/// with any parameters.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    let subtype = subtype.to_ascii_lowercase();
    kind.eq_ignore_ascii_case("application")
        && (subtype == "json" || (subtype.len() > 5 && subtype.ends_with("+json")))
}

const MISSING_JSON_CONTENT_TYPE: &str =
    "the request body must be JSON: send the header `Content-Type: application/json`";

/// `body` read as `T` once every number with a zero fraction is an integer; `None` when there
/// is none, or `T` still does not read it.
fn with_integral_numbers<T: DeserializeOwned>(body: &[u8]) -> Option<Json<T>> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    if !integral_numbers(&mut value) {
        return None;
    }
    serde_json::from_value(value).ok().map(Json)
}

/// Turns every number with a zero fraction that fits an `i64` or a `u64` into that integer;
/// whether any was turned.
fn integral_numbers(value: &mut Value) -> bool {
    match value {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => {
            // 2^64 and -2^63 as floats: bounds within which an integral float converts exactly.
            const U64_END: f64 = 18_446_744_073_709_551_616.0;
            const I64_MIN: f64 = -9_223_372_036_854_775_808.0;
            let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0) else {
                return false;
            };
            let integer = if (0.0..U64_END).contains(&f) {
                serde_json::Number::from(f as u64)
            } else if (I64_MIN..0.0).contains(&f) {
                serde_json::Number::from(f as i64)
            } else {
                return false;
            };
            *n = integer;
            true
        }
        // Every element is visited (no short circuit): each may hold a number to turn.
        Value::Array(items) => {
            let mut any = false;
            for item in items {
                any |= integral_numbers(item);
            }
            any
        }
        Value::Object(map) => {
            let mut any = false;
            for item in map.values_mut() {
                any |= integral_numbers(item);
            }
            any
        }
        _ => false,
    }
}

fn json_problem(rejection: &JsonRejection) -> Problem {
    let status = rejection.status();
    let detail = match rejection {
        JsonRejection::MissingJsonContentType(_) => MISSING_JSON_CONTENT_TYPE.to_owned(),
        JsonRejection::JsonSyntaxError(e) => {
            format!("the request body is not valid JSON: {}", source_text(e))
        }
        JsonRejection::JsonDataError(e) => {
            format!(
                "the request body does not have the expected shape: {}",
                source_text(e)
            )
        }
        other => other.body_text(),
    };
    Problem::new(status, detail)
}

/// The innermost cause's text (serde's "line 1 column 7"-style message).
fn source_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        last = s.to_string();
        cur = s.source();
    }
    last
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Context {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Context>().cloned().ok_or_else(|| {
            tracing::error!(
                "a route asked for a Context but was not mounted by the coordinator server"
            );
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the route is not mounted by the coordinator server",
            )
        })
    }
}

impl<T, S> FromRequestParts<S> for State<T>
where
    T: Clone + Send + Sync + 'static,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let context = Context::from_request_parts(parts, state).await?;
        context.state::<T>().map(State).ok_or_else(|| {
            let message = missing_state::<T>(&context);
            tracing::error!("{message}");
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, message)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::header;

    use crate::http::PROBLEM_JSON;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Order {
        number: String,
        amount: u64,
    }

    async fn problem_for(body: &str, content_type: &str) -> (StatusCode, serde_json::Value) {
        let req = Request::builder()
            .method("POST")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body.to_owned()))
            .unwrap();
        let problem = Json::<Order>::from_request(req, &()).await.unwrap_err();
        let response = problem.into_response();
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn bad_json_says_where_it_is_bad() {
        let (status, body) =
            problem_for("{\"number\": \"A\",\n \"amount\": }", "application/json").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.starts_with("the request body is not valid JSON: "),
            "{detail}"
        );
        assert!(detail.contains("line 2 column"), "{detail}");
    }

    #[tokio::test]
    async fn a_body_of_the_wrong_shape_names_the_field() {
        let (status, body) = problem_for(
            "{\"number\": \"A\", \"amount\": \"ten\"}",
            "application/json",
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains("amount"), "{detail}");
    }

    async fn order_from(body: &str, content_type: &str) -> Result<Order, StatusCode> {
        let req = Request::builder()
            .method("POST")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body.to_owned()))
            .unwrap();
        Json::<Order>::from_request(req, &())
            .await
            .map(|Json(order)| order)
            .map_err(|problem| problem.status())
    }

    #[tokio::test]
    async fn a_number_with_a_zero_fraction_is_an_integer() {
        let order = order_from(r#"{"number": "A", "amount": 4900.0}"#, "application/json")
            .await
            .unwrap();
        assert_eq!(order.amount, 4900);
        let order = order_from(r#"{"number": "A", "amount": 1e3}"#, "application/json")
            .await
            .unwrap();
        assert_eq!(order.amount, 1000);
        for (amount, status) in [
            ("4900.5", StatusCode::UNPROCESSABLE_ENTITY),
            ("-1.0", StatusCode::UNPROCESSABLE_ENTITY),
            ("1e20", StatusCode::UNPROCESSABLE_ENTITY),
        ] {
            let body = format!(r#"{{"number": "A", "amount": {amount}}}"#);
            assert_eq!(
                order_from(&body, "application/json").await.unwrap_err(),
                status,
                "{amount}"
            );
        }
    }

    #[tokio::test]
    async fn json_media_types_with_parameters_and_suffixes_are_json() {
        let body = r#"{"number": "A", "amount": 1}"#;
        for json in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/merge-patch+json",
        ] {
            assert!(order_from(body, json).await.is_ok(), "{json}");
        }
        for other in [
            "text/json",
            "application/jsonx",
            "application/+json",
            "json",
        ] {
            assert_eq!(
                order_from(body, other).await.unwrap_err(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{other}"
            );
        }
    }

    #[tokio::test]
    async fn a_missing_content_type_says_which_header_to_send() {
        let (status, body) = problem_for("{}", "text/plain").await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("Content-Type: application/json")
        );
    }
}
