//! OpenHIM API client behaviour a real core will not show on demand (scheme fallback, salt
//! caching, re-registration after 404, odd heartbeat answers), with wiremock as the core.

mod common;

use std::sync::Arc;
use std::time::Duration;

use cht_fhir_mediator::metrics::Metrics;
use cht_fhir_mediator::openhim::auth::{TokenHeaders, passhash};
use cht_fhir_mediator::openhim::client::{Heartbeat, OpenhimClient, OpenhimError};
use serde_json::json;
use wiremock::matchers::{header_exists, method, path};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

const SALT: &str = "user-salt-1";
const PASSWORD: &str = "openhim-password";

/// Accepts only requests whose token headers are right for `PASSWORD` (as openhim-core checks).
struct ValidToken;

impl Match for ValidToken {
    fn matches(&self, request: &Request) -> bool {
        let h = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let (Some(user), Some(ts), Some(salt), Some(token)) =
            (h("auth-username"), h("auth-ts"), h("auth-salt"), h("auth-token"))
        else {
            return false;
        };
        TokenHeaders::compute(&user, &passhash(SALT, PASSWORD), &ts, &salt).token == token && user == "root@openhim.org"
    }
}

const HEARTBEAT: &str = "/mediators/urn%3Amediator%3Acht-fhir-mediator/heartbeat";

/// Mounts a core answering `/mediators` with `registration` and heartbeats with `heartbeat`;
/// mocks mounted earlier take precedence, so a test can add first answers before calling this.
async fn mount_core(server: &MockServer, registration: u16, heartbeat: u16) {
    Mock::given(method("POST"))
        .and(path("/mediators"))
        .respond_with(ResponseTemplate::new(registration))
        .mount(server)
        .await;
    Mock::given(method("POST")).and(path(HEARTBEAT)).respond_with(ResponseTemplate::new(heartbeat)).mount(server).await;
}

/// A mediator registering with the wiremock core, plus `extra` settings.
async fn spawn_registering(server: &MockServer, extra: &[(&str, &str)]) -> common::TestApp {
    let uri = server.uri();
    let mut env = vec![("OPENHIM_API_URL", uri.as_str()), ("OPENHIM_PASSWORD", PASSWORD), ("OPENHIM_REGISTER", "true")];
    env.extend_from_slice(extra);
    common::spawn_app(&env).await
}

/// Requests the wiremock core received on `path`.
async fn received(server: &MockServer, path: &str) -> Vec<Request> {
    server.received_requests().await.unwrap_or_default().into_iter().filter(|r| r.url.path() == path).collect()
}

fn client(server: &MockServer, scheme: &str) -> OpenhimClient {
    let settings = common::settings(&[
        ("OPENHIM_API_URL", &server.uri()),
        ("OPENHIM_PASSWORD", PASSWORD),
        ("OPENHIM_AUTH", scheme),
        ("OPENHIM_TIMEOUT_MS", "2000"),
    ]);
    OpenhimClient::new(&settings.openhim, reqwest::Client::new(), Arc::new(Metrics::new()))
}

async fn mount_salt(server: &MockServer, times: u64) {
    Mock::given(method("GET"))
        .and(path("/authenticate/root%40openhim.org"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"salt": SALT, "ts": "2026-11-21T06:00:00.000Z"})))
        .expect(times)
        .mount(server)
        .await;
}

#[tokio::test]
async fn auto_scheme_falls_back_to_token_on_401_and_remembers_it() {
    let server = MockServer::start().await;
    mount_salt(&server, 1).await;
    Mock::given(header_exists("authorization")).respond_with(ResponseTemplate::new(401)).expect(1).mount(&server).await;
    Mock::given(method("GET"))
        .and(path("/mediators"))
        .and(ValidToken)
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .expect(3)
        .mount(&server)
        .await;
    let client = client(&server, "auto");
    for _ in 0..3 {
        assert_eq!(client.get_json("/mediators").await.unwrap(), json!([]));
    }
    // expectations (1 basic attempt, 1 salt fetch, 3 token calls) are verified on drop
}

#[tokio::test]
async fn auto_scheme_keeps_basic_when_the_core_accepts_it() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/mediators"))
        .and(header_exists("authorization"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .expect(2)
        .mount(&server)
        .await;
    mount_salt(&server, 0).await;
    let client = client(&server, "auto");
    client.get_json("/mediators").await.unwrap();
    client.get_json("/mediators").await.unwrap();
}

#[tokio::test]
async fn basic_scheme_never_tries_token_and_reports_401() {
    let server = MockServer::start().await;
    mount_salt(&server, 0).await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(401)).mount(&server).await;
    let err = client(&server, "basic").get_json("/mediators").await.unwrap_err();
    assert!(matches!(err, OpenhimError::Unauthorized { .. }), "{err}");
}

#[tokio::test]
async fn token_scheme_refetches_the_salt_once_when_refused() {
    let server = MockServer::start().await;
    mount_salt(&server, 2).await;
    Mock::given(method("GET"))
        .and(path("/mediators"))
        .respond_with(ResponseTemplate::new(401))
        .expect(2)
        .mount(&server)
        .await;
    let err = client(&server, "token").get_json("/mediators").await.unwrap_err();
    assert!(matches!(err, OpenhimError::Unauthorized { .. }), "{err}");
}

#[tokio::test]
async fn unknown_user_is_reported_clearly() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/authenticate/root%40openhim.org"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    let err = client(&server, "token").get_json("/mediators").await.unwrap_err();
    assert!(err.to_string().contains("no token credentials"), "{err}");
}

#[tokio::test]
async fn heartbeat_answers_are_read_as_openhim_sends_them() {
    let server = MockServer::start().await;
    let hb = HEARTBEAT;
    let client = client(&server, "basic");
    let urn = "urn:mediator:cht-fhir-mediator";
    for (answer, expected) in [
        (ResponseTemplate::new(200), Heartbeat::NoChange),
        (ResponseTemplate::new(200).set_body_string("OK"), Heartbeat::NoChange),
        (
            ResponseTemplate::new(200).set_body_json(json!({"fhirUrl": "http://x"})),
            Heartbeat::Config(json!({"fhirUrl": "http://x"}).as_object().unwrap().clone()),
        ),
    ] {
        let guard = Mock::given(method("POST")).and(path(hb)).respond_with(answer).mount_as_scoped(&server).await;
        assert_eq!(client.heartbeat(urn, Duration::from_secs(3), false).await.unwrap(), expected);
        drop(guard);
    }
    let _guard = Mock::given(method("POST"))
        .and(path(hb))
        .respond_with(ResponseTemplate::new(404))
        .mount_as_scoped(&server)
        .await;
    assert!(matches!(client.heartbeat(urn, Duration::from_secs(3), false).await, Err(OpenhimError::NotRegistered)));
}

#[tokio::test]
async fn every_heartbeat_asks_for_config_and_an_unchanged_one_is_applied_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).and(path("/mediators")).respond_with(ResponseTemplate::new(201)).mount(&server).await;
    // The core answers every `config: true` heartbeat with the whole config.
    let config = json!({"chtTimeoutMs": 2500});
    Mock::given(method("POST"))
        .and(path(HEARTBEAT))
        .respond_with(ResponseTemplate::new(200).set_body_json(config))
        .mount(&server)
        .await;
    let app = spawn_registering(&server, &[("OPENHIM_HEARTBEAT_INTERVAL_MS", "100")]).await;
    let beats = common::eventually(Duration::from_secs(5), "four heartbeats", || async {
        let beats: Vec<serde_json::Value> =
            received(&server, HEARTBEAT).await.iter().map(|r| serde_json::from_slice(&r.body).unwrap()).collect();
        (beats.len() >= 4).then_some(beats)
    })
    .await;
    assert!(beats.iter().all(|b| b["config"] == true && b["uptime"].is_number()), "{beats:?}");
    assert_eq!(app.state.live.current().cht.timeout, Duration::from_millis(2500));
    assert_eq!(app.state.live.status().revision, 1, "the same config is applied once, not on every heartbeat");
}

#[tokio::test]
async fn a_404_heartbeat_triggers_registration_again() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(HEARTBEAT))
        .respond_with(ResponseTemplate::new(404))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount_core(&server, 201, 200).await;
    let app = spawn_registering(&server, &[("OPENHIM_HEARTBEAT_INTERVAL_MS", "100")]).await;
    common::eventually(Duration::from_secs(5), "a second registration", || async {
        (received(&server, "/mediators").await.len() >= 2).then_some(())
    })
    .await;
    assert!(app.state.openhim.get().registered);
}

#[tokio::test]
async fn registration_retries_with_backoff_while_openhim_fails() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/mediators"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    mount_core(&server, 201, 200).await;
    let app = spawn_registering(&server, &[("OPENHIM_RETRY_MAX_MS", "1500")]).await;
    // the service answers while registration is still being retried
    assert_eq!(app.http.get(app.url("/health/live")).send().await.unwrap().status(), 200);
    common::eventually(Duration::from_secs(10), "registration after two failures", || async {
        app.state.openhim.get().registered.then_some(())
    })
    .await;
    assert_eq!(received(&server, "/mediators").await.len(), 3);
}

#[tokio::test]
async fn the_registrations_own_defaults_handed_back_are_not_a_console_config() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).and(path("/mediators")).respond_with(ResponseTemplate::new(201)).mount(&server).await;
    let app = spawn_registering(&server, &[("OPENHIM_HEARTBEAT_INTERVAL_MS", "100")]).await;
    // What the mediator registered with as its `config`: the core returns exactly that at the
    // first heartbeats (OpenHIM 8.5 does), before any edit.
    let registration = common::eventually(Duration::from_secs(5), "the registration", || async {
        let posted = received(&server, "/mediators").await;
        posted.first().map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).unwrap())
    })
    .await;
    let defaults = registration["config"].clone();
    let heartbeats = Mock::given(method("POST"))
        .and(path(HEARTBEAT))
        .respond_with(ResponseTemplate::new(200).set_body_json(defaults.clone()))
        .mount_as_scoped(&server)
        .await;
    common::eventually(Duration::from_secs(5), "heartbeats answered with the defaults", || async {
        (received(&server, HEARTBEAT).await.len() >= 3).then_some(())
    })
    .await;
    let status = app.state.live.status();
    assert_eq!((status.origin, status.revision), (cht_fhir_mediator::state::ConfigOrigin::Settings, 0));
    drop(heartbeats);
    // An edit that differs is a console config.
    let mut edited = defaults.clone();
    edited["chtTimeoutMs"] = json!(2500);
    let _edited = Mock::given(method("POST"))
        .and(path(HEARTBEAT))
        .respond_with(ResponseTemplate::new(200).set_body_json(edited))
        .mount_as_scoped(&server)
        .await;
    common::eventually(Duration::from_secs(5), "the edit applied", || async {
        (app.state.live.status().origin == cht_fhir_mediator::state::ConfigOrigin::Console).then_some(())
    })
    .await;
    assert_eq!(app.state.live.status().revision, 1);
}
