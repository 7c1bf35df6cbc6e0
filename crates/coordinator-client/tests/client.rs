//! The client kit against a fake service on a local port: tokens, classification, breaker,
//! timeouts, decoding, and what never leaves the process in logs.

use std::time::Duration;

use coordinator::config::Secret;
use coordinator::task::TaskError;
use coordinator::testing::{FakeService, Reply};
use coordinator_client::{
    Auth, BreakerConfig, BreakerState, Call, CallError, Credentials, ForTask, OAuth2, Outcome,
    ServiceClient, ServiceConfig, TransientKind, services,
};
use serde::Deserialize;
use serde_json::json;

const TOKEN_PATH: &str = "/oauth/token";

fn token_reply(token: &str, expires_in: u64) -> Reply {
    Reply::json(
        200,
        json!({"access_token": token, "token_type": "Bearer", "expires_in": expires_in}),
    )
}

/// A client of `fake` named `name`, with OAuth2 against the fake's token endpoint.
fn oauth_client(fake: &FakeService, name: &'static str) -> ServiceClient {
    ServiceClient::new(
        ServiceConfig::new(name, fake.url())
            .timeout(Duration::from_millis(500))
            .auth(Auth::OAuth2(
                OAuth2::new(
                    format!("{}{TOKEN_PATH}", fake.url()),
                    "client-1",
                    Secret::new("s3cret-value"),
                )
                .scopes(["manage_orders:edx"]),
            )),
    )
    .unwrap()
}

#[derive(Debug, Deserialize)]
struct Order {
    id: String,
    version: u64,
}

#[tokio::test]
async fn a_token_is_fetched_once_and_sent_on_every_call() {
    let fake = FakeService::start().await;
    fake.on("POST", TOKEN_PATH)
        .reply(token_reply("tok-1", 3600));
    fake.on("GET", "/edx/orders/{id}")
        .reply(Reply::json(200, json!({"id": "o-1", "version": 4})));
    let client = oauth_client(&fake, "ct-token-once");

    for _ in 0..3 {
        let order: Order = client
            .json(Call::get("/edx/orders/{id}").path("/edx/orders/o-1"))
            .await
            .unwrap();
        assert_eq!((order.id.as_str(), order.version), ("o-1", 4));
    }
    assert_eq!(fake.count("POST", TOKEN_PATH), 1);
    let calls = fake.requests_to("GET", "/edx/orders/o-1");
    assert_eq!(calls.len(), 3);
    assert!(
        calls
            .iter()
            .all(|r| r.header("authorization") == Some("Bearer tok-1"))
    );
    // The token request: client credentials over HTTP Basic, the scopes in the form.
    let token = &fake.requests_to("POST", TOKEN_PATH)[0];
    assert!(token.header("authorization").unwrap().starts_with("Basic "));
    let form = token.body_text();
    assert!(form.contains("grant_type=client_credentials"), "{form}");
    assert!(form.contains("scope=manage_orders%3Aedx"), "{form}");
}

#[tokio::test]
async fn credentials_in_the_body_and_a_jwt_token_type_as_the_edx_lms_wants() {
    let fake = FakeService::start().await;
    fake.on("POST", "/oauth2/access_token").reply(Reply::json(
        200,
        json!({"access_token": "jwt-abc", "token_type": "JWT", "expires_in": 3600}),
    ));
    fake.on("POST", "/api/enrollment/v1/enrollment")
        .reply(Reply::json(200, json!({"is_active": true})));
    let client = ServiceClient::new(
        ServiceConfig::new("lms-body", fake.url()).auth(Auth::OAuth2(
            OAuth2::new(
                format!("{}/oauth2/access_token", fake.url()),
                "lms-client",
                Secret::new("lms-secret"),
            )
            .credentials(Credentials::Body)
            .extra("token_type", "jwt"),
        )),
    )
    .unwrap();
    client
        .send(Call::post("/api/enrollment/v1/enrollment").json(&json!({"user": "ada"})))
        .await
        .unwrap();
    let token = &fake.requests_to("POST", "/oauth2/access_token")[0];
    assert_eq!(token.header("authorization"), None);
    let form = token.body_text();
    for field in [
        "client_id=lms-client",
        "client_secret=lms-secret",
        "token_type=jwt",
    ] {
        assert!(form.contains(field), "{form}");
    }
    let call = &fake.requests_to("POST", "/api/enrollment/v1/enrollment")[0];
    assert_eq!(call.header("authorization"), Some("JWT jwt-abc"));
    assert_eq!(call.header("content-type"), Some("application/json"));
    assert_eq!(call.body_json(), json!({"user": "ada"}));
}

#[tokio::test]
async fn a_401_fetches_a_new_token_once_then_the_call_succeeds() {
    let fake = FakeService::start().await;
    fake.on("POST", TOKEN_PATH)
        .reply_times(1, token_reply("revoked", 3600))
        .reply(token_reply("fresh", 3600));
    fake.on("GET", "/x")
        .reply_times(1, Reply::json(401, json!({"message": "invalid_token"})))
        .reply(Reply::json(200, json!({})));
    let client = oauth_client(&fake, "ct-401-once");
    client.send(Call::get("/x")).await.unwrap();
    assert_eq!(fake.count("POST", TOKEN_PATH), 2);
    let auths: Vec<_> = fake
        .requests_to("GET", "/x")
        .iter()
        .map(|r| r.header("authorization").unwrap().to_owned())
        .collect();
    assert_eq!(auths, ["Bearer revoked", "Bearer fresh"]);
}

#[tokio::test]
async fn a_401_with_a_new_token_too_is_permanent() {
    let fake = FakeService::start().await;
    fake.on("POST", TOKEN_PATH).reply(token_reply("t", 3600));
    fake.on("GET", "/x")
        .reply(Reply::json(401, json!({"message": "insufficient_scope"})));
    let client = oauth_client(&fake, "ct-401-twice");
    let e = client.send(Call::get("/x")).await.unwrap_err();
    assert!(
        matches!(e, CallError::Rejected { status: 401, .. }),
        "{e:?}"
    );
    assert_eq!(fake.count("GET", "/x"), 2, "tried once more, not forever");
}

#[tokio::test]
async fn refused_client_credentials_are_permanent_and_say_what_to_check() {
    let fake = FakeService::start().await;
    fake.on("POST", TOKEN_PATH).reply(Reply::json(
        401,
        json!({"error": "invalid_client", "error_description": "Client authentication failed"}),
    ));
    let client = oauth_client(&fake, "ct-bad-credentials");
    let e = client.send(Call::get("/x")).await.unwrap_err();
    let text = e.to_string();
    assert!(text.contains("Client authentication failed"), "{text}");
    assert!(
        text.contains("check the service's client id, secret and scopes"),
        "{text}"
    );
    assert!(!text.contains("s3cret-value"), "{text}");
    assert!(matches!(
        Err::<(), _>(e).for_task().unwrap_err(),
        TaskError::Abort(_)
    ));
    assert_eq!(fake.count("GET", "/x"), 0);
}

#[tokio::test]
async fn a_409_is_a_refusal_with_the_services_code_for_the_caller_to_reread() {
    let fake = FakeService::start().await;
    fake.on("POST", "/orders/o-1").reply(Reply::json(
        409,
        json!({"statusCode": 409, "message": "Object o-1 has a different version than expected. Expected: 3 - Actual: 4.",
               "errors": [{"code": "ConcurrentModification", "message": "Object o-1 has a different version than expected. Expected: 3 - Actual: 4.", "currentVersion": 4}]}),
    ));
    let client = ServiceClient::new(ServiceConfig::new("ct-409", fake.url())).unwrap();
    let e = client
        .send(
            Call::post("/orders/{id}")
                .path("/orders/o-1")
                .json(&json!({"version": 3})),
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(409));
    assert_eq!(e.code(), Some("ConcurrentModification"));
    assert!(!e.is_transient());
    assert!(
        e.to_string()
            .contains("ct-409: POST /orders/{id} was refused with status 409"),
        "{e}"
    );
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_after_that_wait() {
    let fake = FakeService::start().await;
    fake.on("GET", "/x")
        .reply(Reply::json(429, json!({"message": "slow down"})).header("Retry-After", "12"));
    let client = ServiceClient::new(ServiceConfig::new("rate-limited", fake.url())).unwrap();
    let e = client.send(Call::get("/x")).await.unwrap_err();
    assert!(
        matches!(
            e,
            CallError::Transient {
                kind: TransientKind::TooManyRequests,
                status: Some(429),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(matches!(
        e.into_task_error(),
        TaskError::RetryAfter(d, _) if d == Duration::from_secs(12)
    ));
}

#[tokio::test]
async fn a_5xx_is_transient_and_the_next_call_can_succeed() {
    let fake = FakeService::start().await;
    fake.on("POST", "/api/fulfill-order/")
        .reply_times(2, Reply::status(503))
        .reply(Reply::json(200, json!({"ok": true})));
    let client = ServiceClient::new(ServiceConfig::new("fulfillment-5xx", fake.url())).unwrap();
    for _ in 0..2 {
        let e = client
            .send(Call::post("/api/fulfill-order/"))
            .await
            .unwrap_err();
        assert!(e.is_transient(), "{e:?}");
        assert!(matches!(e.into_task_error(), TaskError::Retry(_)));
    }
    client
        .send(Call::post("/api/fulfill-order/"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_slow_answer_times_out_as_transient() {
    let fake = FakeService::start().await;
    fake.on("GET", "/slow")
        .reply(Reply::json(200, json!({})).delay(Duration::from_secs(5)));
    let client = ServiceClient::new(
        ServiceConfig::new("slow-service", fake.url()).timeout(Duration::from_millis(200)),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let e = client.send(Call::get("/slow")).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        matches!(
            e,
            CallError::Transient {
                kind: TransientKind::Timeout,
                ..
            }
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn nothing_listening_is_a_connection_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = ServiceClient::new(ServiceConfig::new("nobody-home", url)).unwrap();
    let e = client.send(Call::get("/x")).await.unwrap_err();
    assert!(
        matches!(
            e,
            CallError::Transient {
                kind: TransientKind::Connection,
                ..
            }
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn an_undecodable_body_is_permanent_and_names_the_field() {
    let fake = FakeService::start().await;
    fake.on("GET", "/edx/orders/o-1")
        .reply(Reply::json(200, json!({"id": "o-1", "version": "four"})));
    let client = ServiceClient::new(ServiceConfig::new("ct-decode", fake.url())).unwrap();
    let e = client
        .json::<Order>(Call::get("/edx/orders/{id}").path("/edx/orders/o-1"))
        .await
        .unwrap_err();
    match &e {
        CallError::Decode { path, .. } => assert_eq!(path, "version"),
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("`version`"), "{e}");
    assert!(matches!(e.into_task_error(), TaskError::Abort(_)));
}

#[tokio::test]
async fn the_breaker_opens_after_repeated_failures_and_a_probe_closes_it() {
    let fake = FakeService::start().await;
    fake.on("GET", "/x")
        .reply_times(3, Reply::status(502))
        .reply(Reply::json(200, json!({})));
    let client = ServiceClient::new(ServiceConfig::new("breaker-test", fake.url()).breaker(
        BreakerConfig {
            failures: 3,
            cool_down: Duration::from_millis(300),
        },
    ))
    .unwrap();
    for _ in 0..3 {
        assert!(
            client
                .send(Call::get("/x"))
                .await
                .unwrap_err()
                .is_transient()
        );
    }
    assert_eq!(client.breaker_state(), BreakerState::Open);
    let e = client.send(Call::get("/x")).await.unwrap_err();
    let CallError::Open { retry_in, .. } = e else {
        panic!("{e:?}")
    };
    assert!(retry_in <= Duration::from_millis(300));
    assert_eq!(fake.count("GET", "/x"), 3, "the open breaker made no call");
    tokio::time::sleep(Duration::from_millis(350)).await;
    client.send(Call::get("/x")).await.unwrap();
    assert_eq!(client.breaker_state(), BreakerState::Closed);

    let stats = services()
        .into_iter()
        .find(|s| s.service == "breaker-test")
        .unwrap();
    assert_eq!(stats.count(Outcome::ServerError), 3);
    assert_eq!(stats.count(Outcome::ShortCircuited), 1);
    assert_eq!(stats.count(Outcome::Success), 1);
    assert_eq!(stats.breaker_opened_total, 1);
    assert_eq!(stats.latency_buckets.iter().sum::<u64>(), 4);
}

#[tokio::test]
async fn refusals_do_not_open_the_breaker() {
    let fake = FakeService::start().await;
    fake.on("GET", "/missing").reply(Reply::status(404));
    let client = ServiceClient::new(ServiceConfig::new("refusals", fake.url()).breaker(
        BreakerConfig {
            failures: 2,
            cool_down: Duration::from_secs(60),
        },
    ))
    .unwrap();
    for _ in 0..5 {
        let e = client.send(Call::get("/missing")).await.unwrap_err();
        assert!(
            matches!(e, CallError::Rejected { status: 404, .. }),
            "{e:?}"
        );
    }
    assert_eq!(client.breaker_state(), BreakerState::Closed);
}

#[tokio::test]
async fn query_parameters_and_headers_are_sent() {
    let fake = FakeService::start().await;
    fake.on("POST", "/v1/refunds")
        .reply(Reply::json(200, json!({"id": "re_1"})));
    let client = ServiceClient::new(
        ServiceConfig::new("stripe-like", fake.url()).auth(Auth::Bearer(Secret::new("sk_test_1"))),
    )
    .unwrap();
    client
        .send(
            Call::post("/v1/refunds")
                .query("expand[]", "charge")
                .form(&[("payment_intent", "pi_1")])
                .header("Idempotency-Key", "refund-o-1"),
        )
        .await
        .unwrap();
    let r = &fake.requests_to("POST", "/v1/refunds")[0];
    assert_eq!(r.query.as_deref(), Some("expand%5B%5D=charge"));
    assert_eq!(r.header("idempotency-key"), Some("refund-o-1"));
    assert_eq!(r.header("authorization"), Some("Bearer sk_test_1"));
    assert_eq!(r.body_text(), "payment_intent=pi_1");
}

#[test]
fn a_clients_debug_output_shows_no_secret() {
    let client = ServiceClient::new(
        ServiceConfig::new("debug-test", "https://api.example.com")
            .auth(Auth::Bearer(Secret::new("sk_live_123"))),
    )
    .unwrap();
    let text = format!("{client:?}");
    assert!(
        text.contains("debug-test") && !text.contains("sk_live_123"),
        "{text}"
    );
}
