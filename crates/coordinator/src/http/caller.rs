//! Who is calling a route: [`Caller`], put in the request by the host once it authenticated the
//! credentials the route's [`Access`](super::Access) asks for, and taken by handlers like any
//! extractor.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;

use super::problem::Problem;
use crate::payload::Personal;

/// How the caller proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallerKind {
    /// One of the configured API tokens: a trusted service (which one is not recorded).
    ApiToken,
    /// A JSON Web Token, in the `Authorization` header (`Bearer` or edX's `JWT` scheme).
    Jwt,
    /// An edX JWT split across the `edx-jwt-cookie-header-payload` and
    /// `edx-jwt-cookie-signature` cookies (a learner's browser).
    JwtCookie,
}

/// The authenticated caller of a route.
///
/// ```
/// use coordinator::http::{Caller, Problem, Route};
///
/// async fn my_orders(caller: Caller) -> Result<String, Problem> {
///     let user = caller.require_lms_user_id()?;
///     Ok(format!("orders of LMS user {user}"))
/// }
/// let route = Route::get("/orders", my_orders).learner();
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// How it authenticated.
    pub kind: CallerKind,
    /// The token's `sub` claim.
    pub subject: Option<String>,
    /// The LMS user id (edX's `user_id` claim).
    pub lms_user_id: Option<u64>,
    /// The LMS username (edX's `preferred_username` claim).
    pub username: Option<String>,
    /// The email address (personal data: redacted in logs and `Debug`).
    pub email: Option<Personal<String>>,
    /// Whether the caller is an administrator (edX's `administrator` claim; the original's
    /// `IsAdminUser`). A static API token counts as one: it is a trusted service's.
    pub administrator: bool,
    /// The scopes granted (the `scope`, `scp` or edX's `scopes` claims).
    pub scopes: Vec<String>,
}

impl Caller {
    /// A trusted service calling with a static API token.
    pub fn service() -> Self {
        Self {
            kind: CallerKind::ApiToken,
            subject: None,
            lms_user_id: None,
            username: None,
            email: None,
            administrator: true,
            scopes: Vec::new(),
        }
    }

    /// Whether the token grants `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// The LMS user id, or a 403 problem saying the credentials name no learner.
    pub fn require_lms_user_id(&self) -> Result<u64, Problem> {
        self.lms_user_id.ok_or_else(|| {
            Problem::new(
                StatusCode::FORBIDDEN,
                "These credentials name no learner: the token has no user_id claim; sign in \
                 to the LMS as the learner",
            )
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Problem;

    /// The caller the host authenticated; a route that does not authenticate (a public route)
    /// has none, and a handler that asks for one answers 401.
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            Problem::new(
                StatusCode::UNAUTHORIZED,
                "This route does not authenticate its callers, so no caller is known; declare \
                 it with .learner(), .administrator() or the default API access",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callers_email_is_redacted_in_debug_output() {
        let caller = Caller {
            kind: CallerKind::Jwt,
            subject: Some("s".into()),
            lms_user_id: Some(7),
            username: Some("ada".into()),
            email: Some(Personal::new("ada@example.com".into())),
            administrator: false,
            scopes: vec!["read".into()],
        };
        let text = format!("{caller:?}");
        assert!(!text.contains("ada@example.com"), "{text}");
        assert!(caller.has_scope("read") && !caller.has_scope("write"));
        assert_eq!(caller.require_lms_user_id().unwrap(), 7);
        assert_eq!(
            Caller::service()
                .require_lms_user_id()
                .unwrap_err()
                .status(),
            StatusCode::FORBIDDEN
        );
    }
}
