//! Who may call `/api/v1/*` and the extension routes that require credentials, and who the
//! caller is ([`Caller`], put in the request for the route's handler).
//!
//! A caller sends `Authorization: Bearer <token>` (or edX's `Authorization: JWT <token>`), where
//! the token is one of the static `[auth] api_tokens` (compared in constant time) or a JSON Web
//! Token verified with `[auth.jwt]` (HS256 with a shared secret, or RS256 with a public key;
//! `exp` required, `iss` and `aud` checked when configured, `leeway` tolerated,
//! `required_scope` enforced). Learner routes also take edX's split JWT cookie
//! (`edx-jwt-cookie-header-payload` + `edx-jwt-cookie-signature`). The JWT's edX claims make
//! the [`Caller`]: `sub`, `user_id` (the LMS user id), `preferred_username`, `email`,
//! `administrator`, and the scopes (`scope`, `scp` or `scopes`).
//!
//! | route access | accepts | refuses with 403 |
//! | --- | --- | --- |
//! | API (the default, `/api/v1/*`) | an API token or a JWT | a JWT without the required scope |
//! | administrator | an API token, or a JWT with `administrator: true` | other JWTs |
//! | learner | a JWT naming an LMS user, in the header or the cookie | API tokens, JWTs without `user_id` |
//!
//! Every refusal says what is wrong (401, or 403) and never repeats the token.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use coordinator::config::Secret;
use coordinator::http::{Access, Caller, CallerKind};
use coordinator::payload::Personal;

use crate::settings::AuthConfig;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tracing::info;

use super::error::ApiError;

/// The compiled `[auth]` settings.
pub struct Auth {
    api_tokens: Vec<Secret>,
    jwt: Option<JwtVerifier>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("api_tokens", &self.api_tokens.len())
            .field("jwt", &self.jwt.as_ref().map(|j| j.algorithm))
            .finish()
    }
}

struct JwtVerifier {
    algorithm: Algorithm,
    key: DecodingKey,
    validation: Validation,
    issuer: Option<String>,
    audience: Option<String>,
    required_scope: Option<String>,
}

/// The cookie holding an edX JWT's header and payload (`header.payload`).
pub const EDX_HEADER_PAYLOAD_COOKIE: &str = "edx-jwt-cookie-header-payload";

/// The cookie holding an edX JWT's signature.
pub const EDX_SIGNATURE_COOKIE: &str = "edx-jwt-cookie-signature";

/// Why a request was refused. Messages never contain the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No credentials are configured, so nothing can be accepted.
    #[error(
        "this API requires credentials, and none are configured on the server; set static \
         tokens with COORDINATOR__AUTH__API_TOKENS='[\"...\"]' (or [auth] api_tokens), or \
         configure JSON Web Tokens in [auth.jwt]; then send `Authorization: Bearer <token>`"
    )]
    NotConfigured,
    /// The request has no `Authorization` header.
    #[error("no Authorization header; send `Authorization: Bearer <token>`")]
    MissingHeader,
    /// A learner route got neither an `Authorization` header nor edX's JWT cookies.
    #[error(
        "no credentials: send `Authorization: JWT <token>` (or Bearer), or the learner's edX \
         JWT cookies (edx-jwt-cookie-header-payload and edx-jwt-cookie-signature)"
    )]
    MissingLearnerCredentials,
    /// The `Authorization` header is not `Bearer <token>`.
    #[error(
        "the Authorization header is not a Bearer token; send `Authorization: Bearer <token>` \
         (an API token or a JWT) or `Authorization: JWT <token>`"
    )]
    NotBearer,
    /// The token is neither a configured API token nor (when JWTs are configured) a JWT.
    #[error("unknown token: it is not one of the configured API tokens{jwt_hint}")]
    UnknownToken {
        /// Added when JWTs are accepted too.
        jwt_hint: &'static str,
    },
    /// The JWT's `exp` is past (beyond the leeway).
    #[error("the JWT has expired (its exp claim is in the past); get a new token")]
    Expired,
    /// The JWT's `nbf` is in the future (beyond the leeway).
    #[error("the JWT is not valid yet (its nbf claim is in the future); check the issuer's clock")]
    NotYetValid,
    /// The JWT lacks a claim that is required.
    #[error("the JWT has no {claim} claim; {why}")]
    MissingClaim {
        /// The claim.
        claim: String,
        /// Why it is required.
        why: String,
    },
    /// The JWT's `iss` is not the configured issuer.
    #[error("the JWT has the wrong issuer: its iss claim is not \"{expected}\"")]
    WrongIssuer {
        /// The configured issuer.
        expected: String,
    },
    /// The JWT's `aud` does not include the configured audience.
    #[error("the JWT has the wrong audience: its aud claim does not include \"{expected}\"")]
    WrongAudience {
        /// The configured audience (or a note that none is configured).
        expected: String,
    },
    /// The JWT's signature does not verify with the configured key.
    #[error(
        "the JWT has a bad signature: it does not verify with the configured {algorithm} key; \
         check that the token was issued for this server"
    )]
    BadSignature {
        /// `HS256` or `RS256`.
        algorithm: &'static str,
    },
    /// The JWT is signed with another algorithm than the configured one.
    #[error("the JWT is signed with another algorithm than {expected}, the only one accepted")]
    WrongAlgorithm {
        /// The configured algorithm.
        expected: &'static str,
    },
    /// The JWT is not signed (`alg: none`).
    #[error(
        "the JWT is unsigned (its header says alg none); only tokens signed with {expected} are \
         accepted"
    )]
    Unsigned {
        /// The configured algorithm.
        expected: &'static str,
    },
    /// The token looks like a JWT but cannot be decoded.
    #[error("the token is not a valid JWT ({0})")]
    Malformed(String),
    /// The route requires an administrator and the caller is not one.
    #[error(
        "this route requires an administrator: the JWT's administrator claim is not true; call \
         with a staff user's token or a configured API token"
    )]
    NotAdministrator,
    /// The route requires a learner and the credentials name none.
    #[error("this route is for learners: {0}; call with the learner's JWT (header or edX cookies)")]
    NotALearner(&'static str),
    /// The JWT is valid but does not grant the required scope.
    #[error(
        "the token does not grant the scope \"{0}\" that this API requires (in its scope or scp \
         claim); ask for a token with that scope"
    )]
    MissingScope(String),
}

impl AuthError {
    /// 403 for valid credentials that do not grant this route, 401 otherwise.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::MissingScope(_)
            | AuthError::NotAdministrator
            | AuthError::NotALearner(_) => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750).
    pub fn www_authenticate(&self) -> String {
        match self {
            AuthError::NotConfigured
            | AuthError::MissingHeader
            | AuthError::MissingLearnerCredentials
            | AuthError::NotBearer => "Bearer realm=\"coordinator\"".to_owned(),
            AuthError::NotAdministrator | AuthError::NotALearner(_) => {
                "Bearer realm=\"coordinator\", error=\"insufficient_scope\"".to_owned()
            }
            AuthError::MissingScope(scope) => format!(
                "Bearer realm=\"coordinator\", error=\"insufficient_scope\", scope=\"{scope}\""
            ),
            _ => "Bearer realm=\"coordinator\", error=\"invalid_token\"".to_owned(),
        }
    }
}

/// The claims the server reads itself; `exp`, `nbf`, `iss` and `aud` are checked by the decoder.
#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    scope: Option<String>,
    scp: Option<Scopes>,
    /// edX: the scopes as a list.
    scopes: Option<Vec<String>>,
    /// edX: the LMS user id (a number, sometimes sent as text).
    user_id: Option<serde_json::Value>,
    /// edX: the LMS username.
    preferred_username: Option<String>,
    /// edX: the email (personal data).
    email: Option<String>,
    /// edX: whether the user is staff.
    administrator: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Scopes {
    One(String),
    Many(Vec<String>),
}

impl Claims {
    /// Every scope granted, from `scope`, `scp` and `scopes`.
    fn all_scopes(&self) -> Vec<String> {
        let mut all: Vec<String> = Vec::new();
        if let Some(s) = &self.scope {
            all.extend(s.split_whitespace().map(str::to_owned));
        }
        match &self.scp {
            Some(Scopes::One(s)) => all.extend(s.split_whitespace().map(str::to_owned)),
            Some(Scopes::Many(list)) => all.extend(list.iter().cloned()),
            None => {}
        }
        if let Some(list) = &self.scopes {
            all.extend(list.iter().cloned());
        }
        all.dedup();
        all
    }

    fn grants(&self, scope: &str) -> bool {
        self.all_scopes().iter().any(|s| s == scope)
    }

    /// The caller these claims describe.
    fn into_caller(self, kind: CallerKind) -> Caller {
        let lms_user_id = match &self.user_id {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        Caller {
            kind,
            scopes: self.all_scopes(),
            subject: self.sub,
            lms_user_id,
            username: self.preferred_username,
            email: self.email.map(Personal::new),
            administrator: self.administrator.unwrap_or(false),
        }
    }
}

/// `[auth.jwt]` could not be used (`coordinator check` reports the same problems).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[auth.jwt]: {0}")]
pub struct AuthConfigError(String);

impl Auth {
    /// Compiles `[auth]`.
    pub fn from_config(config: &AuthConfig) -> Result<Self, AuthConfigError> {
        let jwt = match &config.jwt {
            None => None,
            Some(jwt) => {
                let (algorithm, key) = match (&jwt.hs256_secret, &jwt.rs256_public_key) {
                    (Some(secret), None) => (
                        Algorithm::HS256,
                        DecodingKey::from_secret(secret.expose().as_bytes()),
                    ),
                    (None, Some(pem)) => (
                        Algorithm::RS256,
                        DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| {
                            AuthConfigError(format!(
                                "rs256_public_key is not an RSA public key in PEM form: {e}"
                            ))
                        })?,
                    ),
                    _ => {
                        return Err(AuthConfigError(
                            "set exactly one of hs256_secret and rs256_public_key".to_owned(),
                        ));
                    }
                };
                let mut validation = Validation::new(algorithm);
                validation.leeway = jwt.leeway.0.as_secs();
                validation.validate_exp = true;
                validation.validate_nbf = true;
                let mut required: HashSet<String> = HashSet::from(["exp".to_owned()]);
                if let Some(issuer) = &jwt.issuer {
                    validation.set_issuer(&[issuer]);
                    required.insert("iss".to_owned());
                }
                match &jwt.audience {
                    Some(audience) => {
                        validation.set_audience(&[audience]);
                        required.insert("aud".to_owned());
                    }
                    None => validation.validate_aud = false,
                }
                validation.required_spec_claims = required;
                Some(JwtVerifier {
                    algorithm,
                    key,
                    validation,
                    issuer: jwt.issuer.clone(),
                    audience: jwt.audience.clone(),
                    required_scope: jwt.required_scope.clone(),
                })
            }
        };
        Ok(Self {
            api_tokens: config.api_tokens.clone(),
            jwt,
        })
    }

    /// Whether any credentials are configured.
    pub fn is_configured(&self) -> bool {
        !self.api_tokens.is_empty() || self.jwt.is_some()
    }

    /// Checks the request's credentials for a route of `access`: the caller, or why not.
    pub fn authenticate(&self, headers: &HeaderMap, access: Access) -> Result<Caller, AuthError> {
        if !self.is_configured() {
            return Err(AuthError::NotConfigured);
        }
        let caller = match headers.get(header::AUTHORIZATION) {
            Some(value) => {
                let value = value.to_str().map_err(|_| AuthError::NotBearer)?;
                let token = match value.split_once(' ') {
                    Some((scheme, token))
                        if scheme.eq_ignore_ascii_case("bearer")
                            || scheme.eq_ignore_ascii_case("jwt") =>
                    {
                        token.trim()
                    }
                    _ => return Err(AuthError::NotBearer),
                };
                if token.is_empty() {
                    return Err(AuthError::NotBearer);
                }
                self.token(token)?
            }
            None if access == Access::Learner => match edx_cookie_token(headers) {
                Some(token) => match &self.jwt {
                    Some(jwt) => jwt.verify(&token, CallerKind::JwtCookie)?,
                    None => return Err(AuthError::UnknownToken { jwt_hint: "" }),
                },
                None => return Err(AuthError::MissingLearnerCredentials),
            },
            None => return Err(AuthError::MissingHeader),
        };
        match access {
            Access::Administrator if !caller.administrator => Err(AuthError::NotAdministrator),
            Access::Learner if caller.kind == CallerKind::ApiToken => {
                Err(AuthError::NotALearner("an API token names no learner"))
            }
            Access::Learner if caller.lms_user_id.is_none() => Err(AuthError::NotALearner(
                "the JWT has no user_id claim (the LMS user id)",
            )),
            _ => Ok(caller),
        }
    }

    /// An API token or a JWT from the `Authorization` header.
    fn token(&self, token: &str) -> Result<Caller, AuthError> {
        // Every token is compared, whatever matches, so that timing tells nothing.
        let known = self.api_tokens.iter().fold(false, |found, t| {
            found | constant_time_eq(t.expose(), token)
        });
        if known {
            return Ok(Caller::service());
        }
        match &self.jwt {
            Some(jwt) if token.split('.').count() == 3 => jwt.verify(token, CallerKind::Jwt),
            Some(_) => Err(AuthError::UnknownToken {
                jwt_hint: ", nor a JWT",
            }),
            None => Err(AuthError::UnknownToken { jwt_hint: "" }),
        }
    }
}

/// The JWT of edX's split cookie (`header.payload` + `.` + signature), when both halves are
/// sent.
fn edx_cookie_token(headers: &HeaderMap) -> Option<String> {
    let (mut header_payload, mut signature) = (None, None);
    for value in headers.get_all(header::COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';') {
            if let Some((name, v)) = pair.trim().split_once('=') {
                match name.trim() {
                    EDX_HEADER_PAYLOAD_COOKIE => header_payload = Some(v.trim().to_owned()),
                    EDX_SIGNATURE_COOKIE => signature = Some(v.trim().to_owned()),
                    _ => {}
                }
            }
        }
    }
    Some(format!("{}.{}", header_payload?, signature?))
}

impl JwtVerifier {
    fn algorithm_name(&self) -> &'static str {
        match self.algorithm {
            Algorithm::RS256 => "RS256",
            _ => "HS256",
        }
    }

    fn verify(&self, token: &str, kind: CallerKind) -> Result<Caller, AuthError> {
        self.precheck(token)?;
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| self.explain(e.into_kind()))?;
        if let Some(scope) = &self.required_scope {
            if !data.claims.grants(scope) {
                return Err(AuthError::MissingScope(scope.clone()));
            }
        }
        Ok(data.claims.into_caller(kind))
    }

    /// Reads the header and the claims before the decoder does, so that the error names the
    /// real cause: an unsigned token (`alg: none`), a header or claims that are not JSON, a
    /// time claim that is not a number (the decoder reports it missing).
    fn precheck(&self, token: &str) -> Result<(), AuthError> {
        use base64::Engine as _;
        let part = |text: &str, what: &str| -> Result<serde_json::Value, AuthError> {
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(text.trim_end_matches('='))
                .map_err(|_| AuthError::Malformed(format!("its {what} is not base64url")))?;
            serde_json::from_slice(&bytes)
                .map_err(|e| AuthError::Malformed(format!("its {what} is not JSON ({e})")))
        };
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed(
                "a JWT is three base64url parts separated by dots".to_owned(),
            ));
        };
        let header = part(header, "header")?;
        match header.get("alg").and_then(|a| a.as_str()) {
            None => {
                return Err(AuthError::Malformed(
                    "its header has no alg (a string)".to_owned(),
                ));
            }
            Some(alg) if alg.eq_ignore_ascii_case("none") => {
                return Err(AuthError::Unsigned {
                    expected: self.algorithm_name(),
                });
            }
            Some(_) => {}
        }
        let claims = part(claims, "claims")?;
        let Some(claims) = claims.as_object() else {
            return Err(AuthError::Malformed(
                "its claims are not a JSON object".to_owned(),
            ));
        };
        for claim in ["exp", "nbf", "iat"] {
            match claims.get(claim) {
                None | Some(serde_json::Value::Number(_)) => {}
                Some(other) => {
                    return Err(AuthError::Malformed(format!(
                        "its {claim} claim is {}, not a number of seconds since the Unix epoch",
                        json_kind(other)
                    )));
                }
            }
        }
        Ok(())
    }

    fn explain(&self, kind: ErrorKind) -> AuthError {
        match kind {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidIssuer => AuthError::WrongIssuer {
                expected: self.issuer.clone().unwrap_or_default(),
            },
            ErrorKind::InvalidAudience => AuthError::WrongAudience {
                expected: self.audience.clone().unwrap_or_default(),
            },
            ErrorKind::InvalidSignature => AuthError::BadSignature {
                algorithm: self.algorithm_name(),
            },
            ErrorKind::InvalidAlgorithm => AuthError::WrongAlgorithm {
                expected: self.algorithm_name(),
            },
            ErrorKind::MissingRequiredClaim(claim) => {
                let why = match claim.as_str() {
                    "exp" => "tokens must expire: ask the issuer for a token with exp".to_owned(),
                    "iss" => format!(
                        "this API requires iss = \"{}\"",
                        self.issuer.as_deref().unwrap_or_default()
                    ),
                    "aud" => format!(
                        "this API requires aud to include \"{}\"",
                        self.audience.as_deref().unwrap_or_default()
                    ),
                    _ => "this API requires it".to_owned(),
                };
                AuthError::MissingClaim { claim, why }
            }
            ErrorKind::Base64(_) | ErrorKind::Utf8(_) | ErrorKind::InvalidToken => {
                AuthError::Malformed("its parts are not base64url-encoded JSON".to_owned())
            }
            ErrorKind::Json(e) => AuthError::Malformed(format!("its claims do not parse: {e}")),
            other => AuthError::Malformed(format!("{other:?}")),
        }
    }
}

/// What kind of JSON value `v` is, for messages.
fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Compares two strings in time that depends only on their lengths.
fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Middleware: refuses the request unless [`Auth::authenticate`] accepts it for the access
/// level in the state, and puts the [`Caller`] in the request for the handler.
pub async fn require_credentials(
    State((auth, access)): State<(Arc<Auth>, Access)>,
    mut request: Request,
    next: Next,
) -> Response {
    match auth.authenticate(request.headers(), access) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(e) => {
            info!(reason = %e, access = access.as_str(), "request refused: not authenticated");
            ApiError::from(e).into_response()
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::{SystemTime, UNIX_EPOCH};

    use axum::body::Body;
    use axum::http::Request;
    use jsonwebtoken::{EncodingKey, Header};

    use super::*;
    use crate::http::testing::{self, TOKEN};

    pub const HS256_SECRET: &str = "an-hs256-secret-for-tests-only";
    pub const RSA_PRIVATE: &str = include_str!("../../tests/fixtures/jwt-rs256-private.pem");
    pub const RSA_PUBLIC: &str = include_str!("../../tests/fixtures/jwt-rs256-public.pem");

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    pub fn hs256(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(HS256_SECRET.as_bytes()),
        )
        .unwrap()
    }

    /// A token with `alg: none` and no signature, as an attacker would send it.
    fn unsigned(claims: &serde_json::Value) -> String {
        use base64::Engine as _;
        let b64 = |v: &serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        format!(
            "{}.{}.",
            b64(&serde_json::json!({"alg": "none", "typ": "JWT"})),
            b64(claims)
        )
    }

    fn rs256(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            &claims,
            &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    const HS256_CONFIG: &[(&str, &str)] = &[
        ("COORDINATOR__AUTH__API_TOKENS", "[\"static-token\"]"),
        ("COORDINATOR__AUTH__JWT__HS256_SECRET", HS256_SECRET),
        ("COORDINATOR__AUTH__JWT__ISSUER", "https://issuer.test"),
        ("COORDINATOR__AUTH__JWT__AUDIENCE", "coordinator"),
        ("COORDINATOR__AUTH__JWT__REQUIRED_SCOPE", "coordinator:api"),
        ("COORDINATOR__AUTH__JWT__LEEWAY", "0s"),
    ];

    fn good_claims() -> serde_json::Value {
        serde_json::json!({
            "sub": "lms",
            "iss": "https://issuer.test",
            "aud": "coordinator",
            "exp": now() + 600,
            "scope": "openid coordinator:api",
        })
    }

    fn with(
        mut claims: serde_json::Value,
        key: &str,
        value: serde_json::Value,
    ) -> serde_json::Value {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(key);
        } else {
            claims[key] = value;
        }
        claims
    }

    /// `GET /api/v1/catalog` with `authorization` (none when `None`): status, detail, challenge.
    async fn call(app: &testing::TestApp, authorization: Option<&str>) -> (u16, String, String) {
        let mut request = Request::get("/api/v1/catalog");
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = app.send(request.body(Body::empty()).unwrap()).await;
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let (status, _, body) = testing::parts(response).await;
        if !status.is_success() {
            assert_eq!(content_type, "application/problem+json");
        }
        (
            status.as_u16(),
            body["detail"].as_str().unwrap_or_default().to_owned(),
            challenge,
        )
    }

    #[tokio::test]
    async fn no_configured_credentials_says_how_to_configure_them() {
        let app = testing::app(&[("COORDINATOR__AUTH__API_TOKENS", "[]")]).await;
        let (status, detail, challenge) = call(&app, Some("Bearer anything")).await;
        assert_eq!(status, 401);
        assert!(
            detail.contains("COORDINATOR__AUTH__API_TOKENS='[\"...\"]'"),
            "{detail}"
        );
        assert!(challenge.starts_with("Bearer"), "{challenge}");
    }

    #[tokio::test]
    async fn each_401_says_what_is_wrong() {
        let app = testing::app(HS256_CONFIG).await;
        let cases: Vec<(Option<String>, &str)> = vec![
            (None, "no Authorization header"),
            (Some("Basic dXNlcjpwYXNz".into()), "not a Bearer token"),
            (Some("Bearer nope".into()), "unknown token"),
            (
                Some(format!(
                    "Bearer {}",
                    hs256(with(good_claims(), "exp", (now() - 60).into()))
                )),
                "has expired",
            ),
            (
                Some(format!(
                    "Bearer {}",
                    hs256(with(good_claims(), "exp", serde_json::Value::Null))
                )),
                "no exp claim",
            ),
            (
                Some(format!(
                    "Bearer {}",
                    hs256(with(good_claims(), "iss", "https://evil.test".into()))
                )),
                "wrong issuer",
            ),
            (
                Some(format!(
                    "Bearer {}",
                    hs256(with(good_claims(), "aud", "someone-else".into()))
                )),
                "wrong audience",
            ),
            (
                Some(format!("Bearer {}", rs256(good_claims()))),
                "another algorithm",
            ),
            (Some("Bearer a.b.c".into()), "not a valid JWT"),
            (
                Some(format!(
                    "Bearer {}",
                    hs256(with(good_claims(), "exp", "tomorrow".into()))
                )),
                "its exp claim is a string, not a number",
            ),
            (
                Some(format!("Bearer {}", unsigned(&good_claims()))),
                "unsigned (its header says alg none)",
            ),
            (
                Some("Bearer eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln".into()),
                "its claims is not JSON",
            ),
        ];
        for (authorization, expected) in cases {
            let (status, detail, challenge) = call(&app, authorization.as_deref()).await;
            assert_eq!(status, 401, "{authorization:?}: {detail}");
            assert!(detail.contains(expected), "{authorization:?}: {detail}");
            assert!(challenge.starts_with("Bearer"), "{challenge}");
            if let Some(a) = &authorization {
                let token = a.split_once(' ').unwrap().1;
                assert!(!detail.contains(token), "the token leaked: {detail}");
            }
        }
        // A bad signature: signed with another secret.
        let forged = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &good_claims(),
            &EncodingKey::from_secret(b"another secret"),
        )
        .unwrap();
        let (status, detail, _) = call(&app, Some(&format!("Bearer {forged}"))).await;
        assert_eq!(status, 401);
        assert!(detail.contains("bad signature"), "{detail}");
    }

    #[tokio::test]
    async fn a_valid_jwt_without_the_required_scope_is_forbidden() {
        let app = testing::app(HS256_CONFIG).await;
        let token = hs256(with(good_claims(), "scope", "openid".into()));
        let (status, detail, challenge) = call(&app, Some(&format!("Bearer {token}"))).await;
        assert_eq!(status, 403, "{detail}");
        assert!(detail.contains("\"coordinator:api\""), "{detail}");
        assert!(challenge.contains("insufficient_scope"), "{challenge}");
        // `scp` as an array grants it too.
        let token = hs256(with(
            with(good_claims(), "scope", serde_json::Value::Null),
            "scp",
            serde_json::json!(["coordinator:api"]),
        ));
        let (status, detail, _) = call(&app, Some(&format!("Bearer {token}"))).await;
        assert_eq!(status, 200, "{detail}");
    }

    #[tokio::test]
    async fn static_tokens_and_hs256_jwts_are_accepted() {
        let app = testing::app(HS256_CONFIG).await;
        assert_eq!(call(&app, Some("Bearer static-token")).await.0, 200);
        assert_eq!(call(&app, Some("bearer static-token")).await.0, 200);
        let token = hs256(good_claims());
        assert_eq!(call(&app, Some(&format!("Bearer {token}"))).await.0, 200);

        let app = testing::app(&[]).await;
        assert_eq!(call(&app, Some(&format!("Bearer {TOKEN}"))).await.0, 200);
    }

    #[tokio::test]
    async fn rs256_jwts_are_accepted_with_the_public_key() {
        let app = testing::app(&[
            ("COORDINATOR__AUTH__JWT__RS256_PUBLIC_KEY", RSA_PUBLIC),
            ("COORDINATOR__AUTH__JWT__LEEWAY", "5s"),
        ])
        .await;
        let claims = serde_json::json!({"sub": "lms", "exp": now() + 60});
        let (status, detail, _) = call(&app, Some(&format!("Bearer {}", rs256(claims)))).await;
        assert_eq!(status, 200, "{detail}");
        // Within the leeway, an expired token still passes.
        let claims = serde_json::json!({"exp": now() - 2});
        assert_eq!(
            call(&app, Some(&format!("Bearer {}", rs256(claims))))
                .await
                .0,
            200
        );
        // An HS256 token signed with the public key as secret (algorithm confusion) is refused.
        let confused = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"exp": now() + 60}),
            &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()),
        )
        .unwrap();
        assert_eq!(call(&app, Some(&format!("Bearer {confused}"))).await.0, 401);
    }

    #[tokio::test]
    async fn public_routes_need_no_credentials() {
        let app = testing::app(&[("COORDINATOR__AUTH__API_TOKENS", "[]")]).await;
        for path in ["/health", "/metrics", "/api/openapi.json"] {
            let response = app
                .send(Request::get(path).body(Body::empty()).unwrap())
                .await;
            assert_eq!(response.status(), 200, "{path}");
        }
    }

    #[tokio::test]
    async fn extension_routes_that_require_credentials_check_them() {
        let app = testing::app(&[]).await;
        let request = Request::post("/api/demo/orders")
            .header("content-type", "application/json")
            .body(Body::from(testing::order("EDX-1").to_string()))
            .unwrap();
        let (status, headers, body) = testing::parts(app.send(request).await).await;
        assert_eq!(status, 401, "{body}");
        assert!(headers.contains_key("www-authenticate"));
        let (status, _, body) = app.post("/api/demo/orders", testing::order("EDX-1")).await;
        assert_eq!(status, 202, "{body}");
    }

    #[test]
    fn constant_time_eq_compares_whole_strings() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
    }

    /// `[auth]` with the test API token and HS256 JWTs.
    fn both() -> Auth {
        Auth::from_config(&AuthConfig {
            api_tokens: vec![Secret::new(TOKEN)],
            jwt: Some(crate::settings::JwtConfig {
                hs256_secret: Some(Secret::new(HS256_SECRET)),
                rs256_public_key: None,
                issuer: None,
                audience: None,
                required_scope: None,
                leeway: coordinator::config::ConfigDuration(std::time::Duration::from_secs(0)),
            }),
        })
        .unwrap()
    }

    fn edx_claims(extra: serde_json::Value) -> serde_json::Value {
        let mut claims = serde_json::json!({
            "sub": "2f2b1c", "exp": now() + 600, "user_id": 42,
            "preferred_username": "ada", "email": "ada@example.com",
            "administrator": false, "scopes": ["user_id", "email"], "scope": "read"
        });
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims
    }

    fn headers(pairs: &[(header::HeaderName, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(name, value.parse().unwrap());
        }
        h
    }

    #[test]
    fn an_edx_jwt_in_the_jwt_scheme_makes_the_caller() {
        let token = hs256(edx_claims(serde_json::json!({})));
        let caller = both()
            .authenticate(
                &headers(&[(header::AUTHORIZATION, format!("JWT {token}"))]),
                Access::Api,
            )
            .unwrap();
        assert_eq!(caller.kind, CallerKind::Jwt);
        assert_eq!(caller.lms_user_id, Some(42));
        assert_eq!(caller.username.as_deref(), Some("ada"));
        assert_eq!(caller.email.as_ref().unwrap().expose(), "ada@example.com");
        assert!(!caller.administrator);
        assert_eq!(caller.scopes, ["read", "user_id", "email"]);
        // A user id sent as text is read too.
        let token = hs256(edx_claims(serde_json::json!({"user_id": "77"})));
        let caller = both()
            .authenticate(
                &headers(&[(header::AUTHORIZATION, format!("Bearer {token}"))]),
                Access::Api,
            )
            .unwrap();
        assert_eq!(caller.lms_user_id, Some(77));
    }

    #[test]
    fn administrator_routes_take_admin_jwts_and_api_tokens_only() {
        let auth = both();
        let admin = hs256(edx_claims(serde_json::json!({"administrator": true})));
        let learner = hs256(edx_claims(serde_json::json!({})));
        let call = |value: String| {
            auth.authenticate(
                &headers(&[(header::AUTHORIZATION, value)]),
                Access::Administrator,
            )
        };
        assert!(call(format!("JWT {admin}")).unwrap().administrator);
        assert_eq!(call(format!("Bearer {TOKEN}")).unwrap(), Caller::service());
        let refused = call(format!("JWT {learner}")).unwrap_err();
        assert_eq!(refused, AuthError::NotAdministrator);
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert!(!refused.to_string().contains(&learner));
    }

    #[test]
    fn learner_routes_take_the_edx_split_cookie_and_refuse_api_tokens() {
        let auth = both();
        let token = hs256(edx_claims(serde_json::json!({})));
        let (header_payload, signature) = token.rsplit_once('.').unwrap();
        let cookie = format!(
            "other=1; {EDX_HEADER_PAYLOAD_COOKIE}={header_payload}; {EDX_SIGNATURE_COOKIE}={signature}"
        );
        let caller = auth
            .authenticate(
                &headers(&[(header::COOKIE, cookie.clone())]),
                Access::Learner,
            )
            .unwrap();
        assert_eq!(caller.kind, CallerKind::JwtCookie);
        assert_eq!(caller.lms_user_id, Some(42));
        // The cookie counts on learner routes only.
        assert_eq!(
            auth.authenticate(&headers(&[(header::COOKIE, cookie)]), Access::Api),
            Err(AuthError::MissingHeader)
        );
        // Half a cookie, or none: told what to send.
        let half = format!("{EDX_HEADER_PAYLOAD_COOKIE}={header_payload}");
        let e = auth
            .authenticate(&headers(&[(header::COOKIE, half)]), Access::Learner)
            .unwrap_err();
        assert_eq!(e, AuthError::MissingLearnerCredentials);
        assert!(e.to_string().contains("edx-jwt-cookie-signature"), "{e}");
        // A forged signature is refused.
        let forged = format!(
            "{EDX_HEADER_PAYLOAD_COOKIE}={header_payload}; {EDX_SIGNATURE_COOKIE}=AAAA{signature}"
        );
        assert!(matches!(
            auth.authenticate(&headers(&[(header::COOKIE, forged)]), Access::Learner),
            Err(AuthError::BadSignature { .. } | AuthError::Malformed(_))
        ));
        // An API token names no learner; nor does a JWT without user_id.
        let e = auth
            .authenticate(
                &headers(&[(header::AUTHORIZATION, format!("Bearer {TOKEN}"))]),
                Access::Learner,
            )
            .unwrap_err();
        assert_eq!(e.status(), StatusCode::FORBIDDEN);
        let anonymous = hs256(serde_json::json!({"sub": "svc", "exp": now() + 600}));
        let e = auth
            .authenticate(
                &headers(&[(header::AUTHORIZATION, format!("JWT {anonymous}"))]),
                Access::Learner,
            )
            .unwrap_err();
        assert!(e.to_string().contains("no user_id claim"), "{e}");
    }
}
