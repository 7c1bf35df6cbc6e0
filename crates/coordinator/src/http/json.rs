//! JSON bodies, and the extractors of the framework's own values: the [`Context`] and
//! [`State`].

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{StatusCode, request::Parts};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::problem::Problem;
use crate::context::Context;
use crate::state::{State, missing_state};

/// JSON request and response bodies. A body that is not valid JSON, or not of the expected
/// shape, is rejected with a 400 [`Problem`] saying where it is wrong (line, column, field).
#[derive(Clone, Copy, Debug, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_problem(&rejection)),
        }
    }
}

fn json_problem(rejection: &JsonRejection) -> Problem {
    let status = rejection.status();
    let detail = match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            "the request body must be JSON: send the header `Content-Type: application/json`"
                .to_owned()
        }
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
