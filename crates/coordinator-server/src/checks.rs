//! The server's own configuration checks: what `coordinator serve` needs beyond valid wiring.
//!
//! They are pure (no I/O) and report through the same [`Validation`] as the wiring, as
//! [`WiringError::Setting`], so that `coordinator check` and `coordinator serve` list every
//! problem at once. Messages never contain a secret.

use std::net::SocketAddr;

use coordinator::{CoordinatorBuilder, Validation, WiringError};

use crate::settings::{AppConfig, AuthConfig};

/// Validates the wiring (through `builder`) and the server settings of `config`: every problem.
pub fn validate(builder: &CoordinatorBuilder, config: &AppConfig) -> Validation {
    let mut validation = builder.validate();
    validation.errors.extend(server_settings(config));
    validation
}

/// The problems in the server's settings: `[server]`, `[storage] url`, `[auth]`.
pub fn server_settings(config: &AppConfig) -> Vec<WiringError> {
    let mut errors = Vec::new();
    let mut push = |at: &str, message: String| {
        errors.push(WiringError::Setting {
            at: at.to_owned(),
            message,
        });
    };

    let server = &config.server;
    if let Err(e) = server.bind.parse::<SocketAddr>() {
        push(
            "[server] bind",
            format!(
                "\"{}\" is not a socket address ({e}); write an IP address and a port, e.g. \
                 \"127.0.0.1:8140\" (this machine only) or \"0.0.0.0:8140\" (every interface)",
                server.bind
            ),
        );
    }
    if let Some((bind, Err(e))) = config
        .worker
        .bind
        .as_ref()
        .map(|bind| (bind, bind.parse::<SocketAddr>()))
    {
        push(
            "[worker] bind",
            format!(
                "\"{bind}\" is not a socket address ({e}); write an IP address and a port, e.g. \
                 \"0.0.0.0:8141\", or leave it unset for a worker without HTTP"
            ),
        );
    }
    if server.body_limit_bytes == 0 {
        push(
            "[server] body_limit_bytes",
            "a limit of 0 refuses every request body; use a positive size such as 1048576 (1 MiB)"
                .to_owned(),
        );
    }
    if server.request_timeout.0.is_zero() {
        push(
            "[server] request_timeout",
            "a timeout of zero would fail every request; use a positive duration such as \"30s\""
                .to_owned(),
        );
    }

    let url = config.storage.url.expose();
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    match scheme {
        Some(scheme) if crate::storage::supports(scheme) => {}
        // Only the scheme is shown: the rest of the URL may hold a password.
        Some(other) => push(
            "[storage] url",
            format!(
                "the scheme \"{other}\" is not supported; write {}",
                crate::storage::supported()
            ),
        ),
        None => push(
            "[storage] url",
            format!("is not a URL; write {}", crate::storage::supported()),
        ),
    }

    if let Some(problem) = crate::logging::level_problem(&config.log.level) {
        push("[log] level", problem);
    }
    auth_settings(&config.auth, &mut push);
    errors
}

fn auth_settings(auth: &AuthConfig, push: &mut impl FnMut(&str, String)) {
    for (i, token) in auth.api_tokens.iter().enumerate() {
        if token.expose().trim().is_empty() {
            push(
                "[auth] api_tokens",
                format!(
                    "item {} is empty; remove it or set a long random token",
                    i + 1
                ),
            );
        }
    }
    let Some(jwt) = &auth.jwt else { return };
    match (&jwt.hs256_secret, &jwt.rs256_public_key) {
        (Some(_), Some(_)) => push(
            "[auth.jwt]",
            "both hs256_secret and rs256_public_key are set; set exactly one: the shared secret \
             of HS256 tokens or the PEM public key of RS256 tokens"
                .to_owned(),
        ),
        (None, None) => push(
            "[auth.jwt]",
            "neither hs256_secret nor rs256_public_key is set; set exactly one (the secret from \
             the environment: COORDINATOR__AUTH__JWT__HS256_SECRET), or remove [auth.jwt]"
                .to_owned(),
        ),
        (Some(secret), None) if secret.expose().is_empty() => push(
            "[auth.jwt] hs256_secret",
            "is empty; set a long random secret (from the environment: \
             COORDINATOR__AUTH__JWT__HS256_SECRET)"
                .to_owned(),
        ),
        (None, Some(pem)) => {
            if let Err(e) = jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes()) {
                push(
                    "[auth.jwt] rs256_public_key",
                    format!(
                        "is not an RSA public key in PEM form ({e}); paste the whole key, from \
                         \"-----BEGIN PUBLIC KEY-----\" to \"-----END PUBLIC KEY-----\""
                    ),
                );
            }
        }
        (Some(_), None) => {}
    }
    if jwt
        .required_scope
        .as_deref()
        .is_some_and(|s| s.trim().is_empty())
    {
        push(
            "[auth.jwt] required_scope",
            "is empty; name the scope tokens must grant, or remove the key".to_owned(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(toml: &str) -> Vec<String> {
        let config = AppConfig::from_toml(toml).unwrap();
        server_settings(&config)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn the_defaults_pass() {
        assert!(problems("").is_empty());
    }

    #[test]
    fn every_server_problem_is_reported_at_once() {
        let found = problems(
            r#"
            [server]
            bind = "localhost"
            body_limit_bytes = 0
            request_timeout = "0s"
            [storage]
            url = "mysql://root:hunter2@db/cc"
            [auth]
            api_tokens = [""]
            [auth.jwt]
            hs256_secret = "s3cret"
            rs256_public_key = "x"
            "#,
        );
        let all = found.join("\n");
        assert_eq!(found.len(), 6, "{all}");
        assert!(
            all.contains("[server] bind: \"localhost\" is not a socket address"),
            "{all}"
        );
        assert!(all.contains("[server] body_limit_bytes"), "{all}");
        assert!(all.contains("[server] request_timeout"), "{all}");
        assert!(
            all.contains("the scheme \"mysql\" is not supported"),
            "{all}"
        );
        assert!(all.contains("[auth] api_tokens: item 1 is empty"), "{all}");
        assert!(all.contains("set exactly one"), "{all}");
        assert!(!all.contains("hunter2") && !all.contains("s3cret"), "{all}");
    }

    #[test]
    fn an_rs256_key_must_be_pem() {
        let found = problems("[auth.jwt]\nrs256_public_key = \"not a key\"\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("[auth.jwt] rs256_public_key: is not an RSA public key"));
        let pem = include_str!("../tests/fixtures/jwt-rs256-public.pem");
        let ok = format!("[auth.jwt]\nrs256_public_key = '''\n{pem}'''\n");
        assert!(problems(&ok).is_empty());
    }

    #[test]
    fn jwt_needs_one_key() {
        let found = problems("[auth.jwt]\nissuer = \"me\"\n");
        assert!(
            found[0].contains("neither hs256_secret nor rs256_public_key"),
            "{found:?}"
        );
    }
}
