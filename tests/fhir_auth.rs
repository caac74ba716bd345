//! FHIR server authentication beyond Basic (issue 10.7), against a REAL OAuth2 token endpoint
//! (tests/support/token-server.mjs on @node-oauth/oauth2-server): the stand-in FHIR server
//! (wiremock) answers only requests whose bearer token that endpoint issued and still honours,
//! and 401 to anything else, as a resource server behind OAuth2 does. Every test also checks
//! that no secret or token reached the log (captured for the whole binary) or an answer.

mod common;

use common::token_server::TokenServer;
use serde_json::{Value, json};
use wiremock::matchers::{any, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CLIENT: &str = "cht-mediator";

/// A FHIR server taking `PUT Patient/{id}` and `GET metadata` with a token `tokens` honours.
async fn fhir_behind(tokens: &TokenServer) -> MockServer {
    let fhir = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(tokens.honoured())
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"resourceType": "Patient", "id": "p1"})))
        .mount(&fhir)
        .await;
    Mock::given(method("GET"))
        .and(path("/metadata"))
        .and(tokens.honoured())
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"resourceType": "CapabilityStatement"})))
        .mount(&fhir)
        .await;
    refuse_the_rest(&fhir).await;
    fhir
}

async fn refuse_the_rest(fhir: &MockServer) {
    Mock::given(any()).respond_with(ResponseTemplate::new(401)).with_priority(10).mount(fhir).await;
}

/// The settings of the mediator as `tokens`' client with `secret`, writing to `fhir`.
fn oauth(fhir: &str, tokens: &TokenServer, secret: &str) -> Vec<(String, String)> {
    let env = [
        ("FHIR_URL", fhir),
        ("FHIR_AUTH", "oauth2"),
        ("FHIR_OAUTH_TOKEN_URL", &tokens.token_url()),
        ("FHIR_OAUTH_CLIENT_ID", CLIENT),
        ("FHIR_OAUTH_CLIENT_SECRET", secret),
    ];
    env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

async fn spawn_oauth(fhir: &str, tokens: &TokenServer, secret: &str, extra: &[(&str, &str)]) -> common::TestApp {
    let env = oauth(fhir, tokens, secret);
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.extend_from_slice(extra);
    common::spawn_app(&env).await
}

/// `POST /patient` (the reference's path: one `PUT Patient/p1`): the status and the envelope.
async fn write(app: &common::TestApp) -> (u16, Value) {
    let body = json!({"resourceType": "Patient", "id": "p1"});
    // The transaction id makes the answer OpenHIM's envelope, with the orchestrations.
    let request = app.http.post(app.url("/patient")).header("X-OpenHIM-TransactionID", "tx-auth");
    let response = request.json(&body).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn ready(app: &common::TestApp) -> (u16, Value) {
    let response = app.http.get(app.url("/health/ready")).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn puts(fhir: &MockServer) -> usize {
    fhir.received_requests().await.unwrap().iter().filter(|r| r.method.as_str() == "PUT").count()
}

/// None of `secrets` (nor any token `tokens` issued) is in the log or in `answers`.
async fn assert_not_leaked(tokens: Option<&TokenServer>, secrets: &[&str], answers: &[&Value]) {
    let mut hidden: Vec<String> = secrets.iter().map(|s| s.to_string()).collect();
    if let Some(tokens) = tokens {
        let issued = tokens.stats().await["tokens"].as_array().cloned().unwrap_or_default();
        hidden.extend(issued.iter().filter_map(|t| t.as_str().map(str::to_owned)));
    }
    let log = common::logs::text(&common::logs::capture());
    for secret in &hidden {
        assert!(!log.contains(secret.as_str()), "{secret} logged");
        for answer in answers {
            assert!(!answer.to_string().contains(secret.as_str()), "{secret} in an answer: {answer}");
        }
    }
}

#[tokio::test]
async fn oauth2_writes_succeed_with_one_token_shared_by_concurrent_calls() {
    common::logs::capture();
    let secret = "SECRETCLIENT-one";
    let tokens = TokenServer::start(CLIENT, secret, 3600);
    let fhir = fhir_behind(&tokens).await;
    let app = spawn_oauth(&fhir.uri(), &tokens, secret, &[("FHIR_OAUTH_SCOPE", "system/Patient.write")]).await;

    // Eight at once on a cold cache: one token fetch, the others wait for it.
    let results = futures::future::join_all((0..8).map(|_| write(&app))).await;
    assert!(results.iter().all(|(status, _)| *status == 201), "{results:?}");
    let (status, envelope) = write(&app).await;
    assert_eq!(status, 201, "{envelope}");
    let stats = tokens.stats().await;
    assert_eq!(stats["issued"], 1, "one token for every call: {stats}");
    assert_eq!((stats["basic"].as_u64(), stats["post"].as_u64()), (Some(1), Some(0)), "client_secret_basic");
    assert_eq!(stats["scopes"], json!(["system/Patient.write"]));
    assert_eq!(puts(&fhir).await, 9, "no call was refused and retried");
    let recorded = &envelope["orchestrations"][0]["request"]["headers"];
    assert!(recorded.is_object() && recorded.get("authorization").is_none(), "{recorded}");

    let (status, body) = ready(&app).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["fhir"]["auth"], "oauth2");
    assert_eq!(tokens.stats().await["issued"], 1, "readiness uses the same cached token");
    assert_not_leaked(Some(&tokens), &[secret], &[&envelope, &body]).await;
}

#[tokio::test]
async fn an_expired_token_is_replaced_before_it_is_used() {
    common::logs::capture();
    let secret = "SECRETCLIENT-two";
    let tokens = TokenServer::start(CLIENT, secret, 2);
    let fhir = fhir_behind(&tokens).await;
    let app = spawn_oauth(&fhir.uri(), &tokens, secret, &[]).await;
    assert_eq!(write(&app).await.0, 201);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (status, envelope) = write(&app).await;
    assert_eq!(status, 201, "{envelope}");
    assert_eq!(tokens.stats().await["issued"], 2, "a new token after expiry");
    assert_eq!(puts(&fhir).await, 2, "renewed before it was sent, not after a 401");
    assert_not_leaked(Some(&tokens), &[secret], &[&envelope]).await;
}

#[tokio::test]
async fn a_401_renews_the_token_once_and_retries_once() {
    common::logs::capture();
    let secret = "SECRETCLIENT-three";
    let tokens = TokenServer::start(CLIENT, secret, 3600);
    let fhir = fhir_behind(&tokens).await;
    let app = spawn_oauth(&fhir.uri(), &tokens, secret, &[]).await;
    assert_eq!(write(&app).await.0, 201);
    // The endpoint revokes the token long before it expires: the FHIR server answers 401.
    tokens.revoke_all().await;
    let (status, envelope) = write(&app).await;
    assert_eq!(status, 201, "{envelope}");
    assert_eq!(tokens.stats().await["issued"], 2);
    assert_eq!(puts(&fhir).await, 3, "first write, the refused one, its one retry");
    let statuses: Vec<&Value> =
        envelope["orchestrations"].as_array().unwrap().iter().map(|o| &o["response"]["status"]).collect();
    assert_eq!(statuses, [&json!(401), &json!(201)], "both attempts recorded");

    // A server that refuses every token: one renewal, one retry, then a transient failure that
    // is not dead-lettered (the credentials are wrong, not the document).
    let refusing = MockServer::start().await;
    refuse_the_rest(&refusing).await;
    let app = spawn_oauth(&refusing.uri(), &tokens, secret, &[]).await;
    let (status, envelope) = write(&app).await;
    assert_eq!(status, 502, "{envelope}");
    assert_eq!(puts(&refusing).await, 2, "one retry only");
    assert_eq!(tokens.stats().await["issued"], 4);
    assert_not_leaked(Some(&tokens), &[secret], &[&envelope]).await;

    let cht_push = json!({"doc": {"_id": "p-auth-1", "type": "person", "name": "Amina Njeri"}});
    let response = app.http.post(app.url("/cht/patient")).json(&cht_push).send().await.unwrap();
    assert_eq!(response.status(), 502, "CHT delivers again later");
    assert!(app.state.dead_letters.list(true).unwrap().is_empty(), "refused credentials are never a dead letter");
}

#[tokio::test]
async fn a_refused_client_secret_is_a_clear_failure_that_never_shows_the_secret() {
    common::logs::capture();
    let tokens = TokenServer::start(CLIENT, "SECRETCLIENT-right", 3600);
    let fhir = fhir_behind(&tokens).await;
    let wrong = "SECRETCLIENT-wrong";
    let app = spawn_oauth(&fhir.uri(), &tokens, wrong, &[]).await;

    // Eight at once: they share the one refusal instead of each asking the endpoint again.
    let results = futures::future::join_all((0..8).map(|_| write(&app))).await;
    assert!(results.iter().all(|(status, _)| *status == 502), "{results:?}");
    assert_eq!(tokens.stats().await["refused"], 1, "no herd on a refusing endpoint");
    let (status, envelope) = write(&app).await;
    assert_eq!(status, 502, "{envelope}");
    assert_eq!(envelope["status"], "Failed");
    let outcome: Value = serde_json::from_str(envelope["response"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(outcome["issue"][0]["code"], "security");
    let said = outcome["issue"][0]["diagnostics"].as_str().unwrap();
    let named = format!("fhir token endpoint gave no access token: {} answered 401 invalid_client", tokens.token_url());
    assert!(said.contains(&named), "the endpoint and its status: {said}");
    assert_eq!(puts(&fhir).await, 0, "nothing sent to the FHIR server without a token");

    let (status, body) = ready(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["checks"]["fhir"]["auth"], "oauth2");
    let detail = body["checks"]["fhir"]["detail"].as_str().unwrap();
    assert!(detail.contains("invalid_client"), "{detail}");
    assert_eq!(tokens.stats().await["refused"], 3, "asked again by each later call: no failure is kept");

    let check = |secret: &'static str| {
        let mut env = oauth(&fhir.uri(), &tokens, secret);
        env.push((
            "DEAD_LETTER_DB".into(),
            std::env::temp_dir().join(common::unique("auth-check")).display().to_string(),
        ));
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_cht-fhir-mediator"))
                .arg("check")
                .envs(env)
                .output()
                .unwrap();
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
        })
    };
    let refused = check(wrong).await.unwrap();
    assert!(
        refused.contains("FAIL  fhir    authentication (oauth2)") && refused.contains("invalid_client"),
        "{refused}"
    );
    let granted = check("SECRETCLIENT-right").await.unwrap();
    assert!(
        granted.contains(
            "ok    fhir    authentication: oauth2 (client_secret_basic, client cht-mediator): token obtained"
        ),
        "{granted}"
    );
    assert!(granted.contains("ok    fhir    ") && granted.contains("answers: FHIR"), "{granted}");
    for text in [&refused, &granted] {
        assert!(!text.contains("SECRETCLIENT"), "{text}");
    }
    assert_not_leaked(
        Some(&tokens),
        &[wrong, "SECRETCLIENT-right"],
        &[&envelope, &body, &json!(refused), &json!(granted)],
    )
    .await;
}

#[tokio::test]
async fn client_secret_post_sends_the_credentials_in_the_form() {
    common::logs::capture();
    let secret = "SECRETCLIENT-post";
    let tokens = TokenServer::start(CLIENT, secret, 3600);
    let fhir = fhir_behind(&tokens).await;
    let app = spawn_oauth(&fhir.uri(), &tokens, secret, &[("FHIR_OAUTH_CLIENT_AUTH", "post")]).await;
    let (status, envelope) = write(&app).await;
    assert_eq!(status, 201, "{envelope}");
    let stats = tokens.stats().await;
    assert_eq!((stats["post"].as_u64(), stats["basic"].as_u64()), (Some(1), Some(0)), "{stats}");
    assert_not_leaked(Some(&tokens), &[secret], &[&envelope]).await;
}

#[tokio::test]
async fn a_static_bearer_token_and_basic_credentials_are_sent_as_configured() {
    common::logs::capture();
    let fhir = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(header("authorization", "Bearer SECRETBEARER-static"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"resourceType": "Patient", "id": "p1"})))
        .mount(&fhir)
        .await;
    // Basic: `u` / `SECRETBASIC`.
    Mock::given(method("PUT"))
        .and(header("authorization", "Basic dTpTRUNSRVRCQVNJQw=="))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"resourceType": "Patient", "id": "p1"})))
        .mount(&fhir)
        .await;
    refuse_the_rest(&fhir).await;
    let uri = fhir.uri();
    let bearer = [("FHIR_URL", uri.as_str()), ("FHIR_AUTH", "bearer"), ("FHIR_BEARER_TOKEN", "SECRETBEARER-static")];
    let (status, bearer_answer) = write(&common::spawn_app(&bearer).await).await;
    assert_eq!(status, 201, "{bearer_answer}");
    // FHIR_AUTH unset with a username is Basic, as before FHIR_AUTH existed; and so is `basic`.
    for auth in ["auto", "basic"] {
        let basic =
            [("FHIR_URL", uri.as_str()), ("FHIR_AUTH", auth), ("FHIR_USERNAME", "u"), ("FHIR_PASSWORD", "SECRETBASIC")];
        assert_eq!(write(&common::spawn_app(&basic).await).await.0, 201, "FHIR_AUTH={auth}");
    }
    let none = [("FHIR_URL", uri.as_str())];
    assert_eq!(write(&common::spawn_app(&none).await).await.0, 502, "no credentials: refused, transiently");
    assert_not_leaked(None, &["SECRETBEARER-static", "SECRETBASIC", "dTpTRUNSRVRCQVNJQw"], &[&bearer_answer]).await;
}
