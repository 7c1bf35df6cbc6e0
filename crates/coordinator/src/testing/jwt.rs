//! JSON Web Tokens for tests: signed HS256 tokens with any claims, edX-like claims, and edX's
//! split JWT cookie.
//!
//! Tests of routes that authenticate callers, and fakes of the LMS that hand out tokens, need
//! real tokens that a verifier accepts: [`mint_hs256`] signs any claims with a shared secret,
//! [`edx_claims`] builds the claims the edX LMS puts in its tokens, and [`split_cookie`] cuts a
//! token into the two cookies the LMS sets for browsers.
//!
//! ```
//! use coordinator::testing::{edx_claims, mint_hs256, split_cookie};
//!
//! let claims = edx_claims(42, "learner").administrator(true).build();
//! assert_eq!(claims["user_id"], 42);
//! let token = mint_hs256(b"lms-secret", &claims);
//! let (header_payload, signature) = split_cookie(&token);
//! assert_eq!(format!("{header_payload}.{signature}"), token);
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::hmac;

/// The cookie that holds `header.payload` of the LMS's split JWT cookie.
pub const EDX_HEADER_PAYLOAD_COOKIE: &str = "edx-jwt-cookie-header-payload";

/// The cookie that holds the signature of the LMS's split JWT cookie.
pub const EDX_SIGNATURE_COOKIE: &str = "edx-jwt-cookie-signature";

/// The header of every token [`mint_hs256`] makes.
const HS256_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// Signs `claims` with HMAC-SHA256 and `secret`: a compact JWT (`header.payload.signature`,
/// base64url without padding) with the header `{"alg":"HS256","typ":"JWT"}`.
///
/// ```
/// let token = coordinator::testing::mint_hs256(b"secret", &serde_json::json!({"sub": "lms"}));
/// assert!(token.starts_with("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."));
/// assert_eq!(token.split('.').count(), 3);
/// ```
pub fn mint_hs256(secret: &[u8], claims: &serde_json::Value) -> String {
    let mut token = base64url(HS256_HEADER.as_bytes());
    token.push('.');
    token.push_str(&base64url(claims.to_string().as_bytes()));
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let signature = base64url(hmac::sign(&key, token.as_bytes()).as_ref());
    token.push('.');
    token.push_str(&signature);
    token
}

/// The two halves of a token as the LMS stores it in its split JWT cookie: `header.payload`
/// (the [`EDX_HEADER_PAYLOAD_COOKIE`]) and the signature (the [`EDX_SIGNATURE_COOKIE`]).
///
/// ```
/// let (header_payload, signature) = coordinator::testing::split_cookie("aaa.bbb.ccc");
/// assert_eq!((header_payload, signature), ("aaa.bbb", "ccc"));
/// ```
///
/// # Panics
/// If `jwt` is not a compact JWT (three parts separated by dots).
#[track_caller]
pub fn split_cookie(jwt: &str) -> (&str, &str) {
    match jwt.rsplit_once('.') {
        Some((header_payload, signature)) if header_payload.contains('.') => {
            (header_payload, signature)
        }
        _ => panic!("split_cookie: \"{jwt}\" is not a compact JWT (header.payload.signature)"),
    }
}

/// A `cookie` request header carrying `jwt` as the LMS's split JWT cookie, as a browser
/// logged in to the LMS sends it.
///
/// ```
/// let cookie = coordinator::testing::edx_cookie_header("aaa.bbb.ccc");
/// assert_eq!(
///     cookie,
///     "edx-jwt-cookie-header-payload=aaa.bbb; edx-jwt-cookie-signature=ccc"
/// );
/// ```
///
/// # Panics
/// If `jwt` is not a compact JWT.
#[track_caller]
pub fn edx_cookie_header(jwt: &str) -> String {
    let (header_payload, signature) = split_cookie(jwt);
    format!("{EDX_HEADER_PAYLOAD_COOKIE}={header_payload}; {EDX_SIGNATURE_COOKIE}={signature}")
}

/// Starts the claims of an edX LMS token for the user `lms_user_id` named `username`; see
/// [`EdxClaims`] for the defaults.
pub fn edx_claims(lms_user_id: u64, username: &str) -> EdxClaims {
    EdxClaims {
        lms_user_id,
        username: username.to_owned(),
        email: format!("{username}@example.com"),
        administrator: false,
        scopes: ["read", "write", "email", "profile"]
            .map(str::to_owned)
            .into(),
        issuer: "http://localhost:18000/oauth2".to_owned(),
        audience: "lms-key".to_owned(),
        expires: Expires::In(Duration::from_secs(3600)),
        extra: serde_json::Map::new(),
    }
}

/// The claims of an edX LMS token, from [`edx_claims`].
///
/// By default: `sub` is 32 hex digits derived from the user id (the LMS uses an anonymous id of
/// that shape), `user_id` the LMS user id, `preferred_username` the username, `email`
/// `<username>@example.com`, `administrator` false, `scopes` `["read", "write", "email",
/// "profile"]`, `iss` `http://localhost:18000/oauth2` and `aud` `lms-key` (the LMS devstack's),
/// `iat` now and `exp` an hour later; plus `version` `1.2.0`, `email_verified` true,
/// `is_restricted` false and `filters` empty, as the LMS sends them.
///
/// ```
/// use coordinator::testing::edx_claims;
///
/// let claims = edx_claims(7, "staff")
///     .administrator(true)
///     .scopes(["read", "write"])
///     .issuer("https://lms.test/oauth2")
///     .claim("tracking_context", serde_json::json!({"lms_user_id": 7}))
///     .build();
/// assert_eq!(claims["preferred_username"], "staff");
/// assert_eq!(claims["administrator"], true);
/// assert_eq!(claims["scopes"], serde_json::json!(["read", "write"]));
/// assert_eq!(claims["iss"], "https://lms.test/oauth2");
/// assert_eq!(claims["tracking_context"]["lms_user_id"], 7);
/// ```
#[derive(Clone, Debug)]
pub struct EdxClaims {
    lms_user_id: u64,
    username: String,
    email: String,
    administrator: bool,
    scopes: Vec<String>,
    issuer: String,
    audience: String,
    expires: Expires,
    extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Clone, Copy, Debug)]
enum Expires {
    In(Duration),
    Expired,
}

impl EdxClaims {
    /// Sets `email`.
    pub fn email(mut self, email: &str) -> Self {
        email.clone_into(&mut self.email);
        self
    }

    /// Sets `administrator` (the LMS's staff flag).
    pub fn administrator(mut self, administrator: bool) -> Self {
        self.administrator = administrator;
        self
    }

    /// Sets `scopes`.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Sets `iss`.
    pub fn issuer(mut self, issuer: &str) -> Self {
        issuer.clone_into(&mut self.issuer);
        self
    }

    /// Sets `aud`.
    pub fn audience(mut self, audience: &str) -> Self {
        audience.clone_into(&mut self.audience);
        self
    }

    /// Makes `exp` `lifetime` after `iat` (an hour by default).
    pub fn expires_in(mut self, lifetime: Duration) -> Self {
        self.expires = Expires::In(lifetime);
        self
    }

    /// Makes the token expired: `iat` two hours ago and `exp` an hour ago.
    pub fn expired(mut self) -> Self {
        self.expires = Expires::Expired;
        self
    }

    /// Sets any other claim, or replaces one of the above (`sub`, `name`, `nbf`).
    pub fn claim(mut self, name: &str, value: serde_json::Value) -> Self {
        self.extra.insert(name.to_owned(), value);
        self
    }

    /// The claims, as a JSON object; `iat` and `exp` count from now.
    pub fn build(self) -> serde_json::Value {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let (iat, exp) = match self.expires {
            Expires::In(lifetime) => (now, now.saturating_add(lifetime.as_secs())),
            Expires::Expired => (now.saturating_sub(7200), now.saturating_sub(3600)),
        };
        let mut claims = serde_json::json!({
            "sub": format!("{:032x}", self.lms_user_id),
            "user_id": self.lms_user_id,
            "preferred_username": self.username,
            "email": self.email,
            "email_verified": true,
            "administrator": self.administrator,
            "scopes": self.scopes,
            "filters": [],
            "is_restricted": false,
            "version": "1.2.0",
            "iss": self.issuer,
            "aud": self.audience,
            "iat": iat,
            "exp": exp,
        });
        if let Some(object) = claims.as_object_mut() {
            object.extend(self.extra);
        }
        claims
    }

    /// The claims signed with HS256 and `secret` ([`mint_hs256`]).
    pub fn mint(self, secret: &[u8]) -> String {
        mint_hs256(secret, &self.build())
    }
}

/// Base64url without padding (RFC 4648, section 5), as JWTs use it.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let group = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        // n bytes make n + 1 characters: 6 bits each, the last one padded with zero bits.
        for i in 0..=chunk.len() {
            let index = (group >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[index as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Decodes base64url without padding; `None` on a character outside the alphabet.
    fn decode(text: &str) -> Option<Vec<u8>> {
        let mut bits = 0u32;
        let mut count = 0;
        let mut out = Vec::new();
        for c in text.bytes() {
            let value = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'-' => 62,
                b'_' => 63,
                _ => return None,
            };
            bits = (bits << 6) | u32::from(value);
            count += 6;
            if count >= 8 {
                count -= 8;
                out.push((bits >> count) as u8);
                bits &= (1 << count) - 1;
            }
        }
        Some(out)
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn base64url_matches_the_rfc_4648_vectors_without_padding() {
        let vectors = [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base64url(plain.as_bytes()), encoded, "{plain:?}");
            assert_eq!(decode(encoded).unwrap(), plain.as_bytes());
        }
        // The two characters that differ from standard base64.
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn a_minted_token_verifies_and_carries_the_claims() {
        let claims = json!({"sub": "lms", "scope": "coordinator:api", "exp": 2_000_000_000u64});
        let token = mint_hs256(b"shared-secret", &claims);
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert!(!token.contains('='), "no padding: {token}");

        let header: serde_json::Value = serde_json::from_slice(&decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header, json!({"alg": "HS256", "typ": "JWT"}));
        let payload: serde_json::Value =
            serde_json::from_slice(&decode(parts[1]).unwrap()).unwrap();
        assert_eq!(payload, claims);

        let signed = format!("{}.{}", parts[0], parts[1]);
        let signature = decode(parts[2]).unwrap();
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"shared-secret");
        assert!(hmac::verify(&key, signed.as_bytes(), &signature).is_ok());
        let other = hmac::Key::new(hmac::HMAC_SHA256, b"another-secret");
        assert!(hmac::verify(&other, signed.as_bytes(), &signature).is_err());
    }

    #[test]
    fn the_signature_matches_a_known_token() {
        // jwt.io's example: its header and payload, signed with "your-256-bit-secret".
        let known = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
                     eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.\
                     SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
        let (signed, signature) = split_cookie(known);
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"your-256-bit-secret");
        assert_eq!(
            base64url(hmac::sign(&key, signed.as_bytes()).as_ref()),
            signature
        );
        let minted = mint_hs256(b"your-256-bit-secret", &json!({}));
        assert!(minted.starts_with("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."));
    }

    #[test]
    fn split_cookie_halves_join_back_into_the_token() {
        let token = edx_claims(42, "learner").mint(b"lms-secret");
        let (header_payload, signature) = split_cookie(&token);
        assert_eq!(header_payload.split('.').count(), 2);
        assert!(!signature.contains('.'));
        assert_eq!(format!("{header_payload}.{signature}"), token);
        assert_eq!(
            edx_cookie_header(&token),
            format!(
                "edx-jwt-cookie-header-payload={header_payload}; \
                 edx-jwt-cookie-signature={signature}"
            )
        );
    }

    #[test]
    #[should_panic(expected = "is not a compact JWT")]
    fn split_cookie_panics_on_a_token_without_three_parts() {
        split_cookie("header.signature");
    }

    #[test]
    fn edx_claims_have_the_lms_shape_by_default() {
        let before = now();
        let claims = edx_claims(42, "learner").build();
        assert_eq!(claims["sub"], "0000000000000000000000000000002a");
        assert_eq!(claims["user_id"], 42);
        assert_eq!(claims["preferred_username"], "learner");
        assert_eq!(claims["email"], "learner@example.com");
        assert_eq!(claims["administrator"], false);
        assert_eq!(
            claims["scopes"],
            json!(["read", "write", "email", "profile"])
        );
        assert_eq!(claims["iss"], "http://localhost:18000/oauth2");
        assert_eq!(claims["aud"], "lms-key");
        let iat = claims["iat"].as_u64().unwrap();
        assert!((before..=now()).contains(&iat));
        assert_eq!(claims["exp"].as_u64().unwrap(), iat + 3600);
    }

    #[test]
    fn edx_claims_builder_sets_each_claim() {
        let claims = edx_claims(1, "staff")
            .email("staff@lms.test")
            .administrator(true)
            .scopes(["read"])
            .issuer("https://lms.test/oauth2")
            .audience("coordinator")
            .expires_in(Duration::from_secs(60))
            .claim("sub", json!("custom"))
            .claim("name", json!("Staff Member"))
            .build();
        assert_eq!(claims["email"], "staff@lms.test");
        assert_eq!(claims["administrator"], true);
        assert_eq!(claims["scopes"], json!(["read"]));
        assert_eq!(claims["iss"], "https://lms.test/oauth2");
        assert_eq!(claims["aud"], "coordinator");
        assert_eq!(
            claims["exp"].as_u64().unwrap(),
            claims["iat"].as_u64().unwrap() + 60
        );
        assert_eq!(claims["sub"], "custom");
        assert_eq!(claims["name"], "Staff Member");
    }

    #[test]
    fn expired_edx_claims_expired_an_hour_ago() {
        let claims = edx_claims(1, "late").expired().build();
        let exp = claims["exp"].as_u64().unwrap();
        assert!(exp < now());
        assert!(claims["iat"].as_u64().unwrap() < exp);
    }

    #[test]
    fn minted_edx_claims_decode_to_the_built_claims() {
        let token = edx_claims(9, "learner").administrator(true).mint(b"s");
        let payload = token.split('.').nth(1).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&decode(payload).unwrap()).unwrap();
        assert_eq!(claims["user_id"], 9);
        assert_eq!(claims["administrator"], true);
    }
}
