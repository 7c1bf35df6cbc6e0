//! OAuth2 client-credentials tokens: fetched on first use, kept until shortly before they
//! expire, fetched by one caller at a time when many need one, and dropped when the service
//! says it no longer accepts them (a 401), so that the next call fetches a new one.

use std::time::Duration;

use coordinator::config::Secret;
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// How the client proves who it is to the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Credentials {
    /// HTTP Basic authentication with the client id and secret (RFC 6749's preference;
    /// commercetools).
    #[default]
    Basic,
    /// `client_id` and `client_secret` in the form body (the edX LMS).
    Body,
}

/// An OAuth2 client-credentials grant.
#[derive(Debug, Clone)]
pub struct OAuth2 {
    /// The token endpoint (`https://auth.europe-west1.gcp.commercetools.com/oauth/token`,
    /// `https://lms.example.com/oauth2/access_token`).
    pub token_url: String,
    /// The client id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: Secret,
    /// Scopes asked for (sent space-separated as `scope`; none: no `scope`).
    pub scopes: Vec<String>,
    /// How the credentials are sent.
    pub credentials: Credentials,
    /// More form fields (the edX LMS wants `token_type=jwt`).
    pub extra: Vec<(String, String)>,
}

impl OAuth2 {
    /// A grant with HTTP Basic credentials, no scopes and no extra fields.
    pub fn new(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: Secret,
    ) -> Self {
        Self {
            token_url: token_url.into(),
            client_id: client_id.into(),
            client_secret,
            scopes: Vec::new(),
            credentials: Credentials::Basic,
            extra: Vec::new(),
        }
    }

    /// Asks for these scopes.
    pub fn scopes(mut self, scopes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Sends the credentials this way.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// Adds a form field to the token request.
    pub fn extra(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.push((name.into(), value.into()));
        self
    }

    /// The form fields of a token request.
    pub(crate) fn form(&self) -> Vec<(String, String)> {
        let mut form = vec![("grant_type".to_owned(), "client_credentials".to_owned())];
        if !self.scopes.is_empty() {
            form.push(("scope".to_owned(), self.scopes.join(" ")));
        }
        if self.credentials == Credentials::Body {
            form.push(("client_id".to_owned(), self.client_id.clone()));
            form.push((
                "client_secret".to_owned(),
                self.client_secret.expose().to_owned(),
            ));
        }
        form.extend(self.extra.iter().cloned());
        form
    }
}

/// A token endpoint's answer (RFC 6749, section 5.1).
#[derive(Deserialize)]
pub(crate) struct TokenAnswer {
    pub(crate) access_token: String,
    #[serde(default)]
    pub(crate) token_type: Option<String>,
    #[serde(default)]
    pub(crate) expires_in: Option<u64>,
}

/// An access token and when to stop using it.
#[derive(Clone)]
pub(crate) struct Token {
    /// `Bearer` or `JWT`: the `Authorization` scheme.
    pub(crate) scheme: String,
    pub(crate) value: Secret,
    refresh_at: Instant,
    /// Which fetch made it (to drop only that one on a 401).
    generation: u64,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("scheme", &self.scheme)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// Used when the endpoint does not say how long a token lasts.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

/// The longest a token is given back before it expires.
const MAX_MARGIN: Duration = Duration::from_secs(60);

impl Token {
    pub(crate) fn from_answer(answer: TokenAnswer, generation: u64) -> Self {
        let lifetime = answer
            .expires_in
            .map_or(DEFAULT_LIFETIME, Duration::from_secs);
        // Given back a minute early, or halfway through a short life.
        let margin = (lifetime / 2).min(MAX_MARGIN);
        let scheme = match answer.token_type.as_deref() {
            Some(t) if t.eq_ignore_ascii_case("jwt") => "JWT".to_owned(),
            _ => "Bearer".to_owned(),
        };
        Self {
            scheme,
            value: Secret::new(answer.access_token),
            refresh_at: Instant::now() + lifetime - margin,
            generation,
        }
    }

    fn fresh(&self) -> bool {
        Instant::now() < self.refresh_at
    }

    /// The `Authorization` header's value.
    pub(crate) fn header(&self) -> String {
        format!("{} {}", self.scheme, self.value.expose())
    }
}

/// The token of one client: one at a time is fetched.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    slot: Mutex<Slot>,
}

#[derive(Debug, Default)]
struct Slot {
    token: Option<Token>,
    fetched: u64,
}

impl TokenCache {
    /// The cached token if it is fresh, else the one `fetch` gets (callers arriving meanwhile
    /// wait for it rather than fetching their own).
    pub(crate) async fn get<F, Fut, E>(&self, fetch: F) -> Result<Token, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<TokenAnswer, E>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some(token) = slot.token.as_ref().filter(|t| t.fresh()) {
            return Ok(token.clone());
        }
        let answer = fetch().await?;
        slot.fetched += 1;
        let token = Token::from_answer(answer, slot.fetched);
        slot.token = Some(token.clone());
        Ok(token)
    }

    /// Drops `token` if it is still the cached one (the service refused it).
    pub(crate) async fn refused(&self, token: &Token) {
        let mut slot = self.slot.lock().await;
        if slot
            .token
            .as_ref()
            .is_some_and(|t| t.generation == token.generation)
        {
            slot.token = None;
        }
    }

    /// How many tokens were fetched.
    #[cfg(test)]
    pub(crate) async fn fetched(&self) -> u64 {
        self.slot.lock().await.fetched
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn answer(expires_in: u64) -> TokenAnswer {
        TokenAnswer {
            access_token: "t0k3n".into(),
            token_type: Some("bearer".into()),
            expires_in: Some(expires_in),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_is_kept_until_a_minute_before_it_expires() {
        let cache = TokenCache::default();
        let fetches = AtomicU32::new(0);
        let get = || async {
            fetches.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ()>(answer(3600))
        };
        let t = cache.get(get).await.unwrap();
        assert_eq!(t.header(), "Bearer t0k3n");
        tokio::time::advance(Duration::from_secs(3600 - 61)).await;
        cache.get(get).await.unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(2)).await;
        cache.get(get).await.unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_lived_token_is_renewed_halfway() {
        let cache = TokenCache::default();
        cache
            .get(|| async { Ok::<_, ()>(answer(10)) })
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(5)).await;
        cache
            .get(|| async { Ok::<_, ()>(answer(10)) })
            .await
            .unwrap();
        assert_eq!(cache.fetched().await, 2);
    }

    #[tokio::test]
    async fn many_callers_at_once_wait_for_one_fetch() {
        let cache = Arc::new(TokenCache::default());
        let fetches = Arc::new(AtomicU32::new(0));
        let mut joins = Vec::new();
        for _ in 0..20 {
            let (cache, fetches) = (Arc::clone(&cache), Arc::clone(&fetches));
            joins.push(tokio::spawn(async move {
                cache
                    .get(|| async {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok::<_, ()>(answer(3600))
                    })
                    .await
                    .unwrap()
            }));
        }
        for j in joins {
            j.await.unwrap();
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_refused_token_is_dropped_once_and_a_newer_one_kept() {
        let cache = TokenCache::default();
        let old = cache
            .get(|| async { Ok::<_, ()>(answer(3600)) })
            .await
            .unwrap();
        cache.refused(&old).await;
        let new = cache
            .get(|| async { Ok::<_, ()>(answer(3600)) })
            .await
            .unwrap();
        // A second caller that held the old token reports it refused too: the new one stays.
        cache.refused(&old).await;
        let again = cache
            .get(|| async { Err::<TokenAnswer, _>("not fetched") })
            .await
            .unwrap();
        assert_eq!(again.generation, new.generation);
    }

    #[test]
    fn the_form_carries_credentials_only_when_asked_and_never_shows_the_secret() {
        let basic = OAuth2::new("https://a/token", "id", Secret::new("s3cret")).scopes(["a", "b"]);
        assert_eq!(
            basic.form(),
            [
                ("grant_type".to_owned(), "client_credentials".to_owned()),
                ("scope".to_owned(), "a b".to_owned())
            ]
        );
        let body = OAuth2::new("https://a/token", "id", Secret::new("s3cret"))
            .credentials(Credentials::Body)
            .extra("token_type", "jwt");
        assert!(
            body.form()
                .contains(&("client_secret".to_owned(), "s3cret".to_owned()))
        );
        assert!(!format!("{body:?}").contains("s3cret"));
        let jwt = Token::from_answer(
            TokenAnswer {
                access_token: "tok-VALUE-123".into(),
                token_type: Some("JWT".into()),
                expires_in: None,
            },
            1,
        );
        assert_eq!(jwt.header(), "JWT tok-VALUE-123");
        assert!(!format!("{jwt:?}").contains("tok-VALUE-123"));
    }
}
