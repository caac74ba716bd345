//! The HTTP service itself: status, health, metrics, limits and the OpenHIM envelope, with the
//! mediator started on port 0 and wiremock standing in where the point is an upstream fault.

mod common;

use std::time::Duration;

use common::spawn_app;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn upstreams_up() -> (MockServer, MockServer) {
    let fhir = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/metadata"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"resourceType": "CapabilityStatement"})))
        .mount(&fhir)
        .await;
    let cht = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/info"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"version": "4.17.0"})))
        .mount(&cht)
        .await;
    (fhir, cht)
}

#[tokio::test]
async fn root_reports_status_version_and_uptime() {
    let app = spawn_app(&[]).await;
    let body: Value = app.http.get(app.url("/")).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["urn"], "urn:mediator:cht-fhir-mediator");
    assert!(body["uptime_seconds"].is_u64());
    assert_eq!(body["openhim"]["enabled"], false);
}

#[tokio::test]
async fn liveness_is_independent_of_upstreams_but_readiness_is_not() {
    let app = spawn_app(&[("FHIR_URL", "http://127.0.0.1:9"), ("CHT_URL", "http://127.0.0.1:9")]).await;
    let live = app.http.get(app.url("/health/live")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    let ready = app.http.get(app.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"]["fhir"]["ok"], false);
    assert!(body["checks"]["fhir"]["detail"].as_str().unwrap().contains("could not be reached"), "{body}");
}

#[tokio::test]
async fn ready_when_fhir_and_cht_answer_and_credentials_are_not_shown() {
    let (fhir, cht) = upstreams_up().await;
    let cht_url = cht.uri().replace("http://", "http://probe:pw-in-url@");
    let app = spawn_app(&[
        ("FHIR_URL", &fhir.uri()),
        ("CHT_URL", &cht_url),
        ("CHT_USERNAME", "medic"),
        ("CHT_PASSWORD", "pw"),
    ])
    .await;
    let ready = app.http.get(app.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let text = ready.text().await.unwrap();
    assert!(!text.contains("pw-in-url") && !text.contains("\"pw\""), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["cht"]["ok"], true);
}

#[tokio::test]
async fn readiness_reports_rejected_upstream_credentials() {
    let fhir = MockServer::start().await;
    Mock::given(method("GET")).and(path("/metadata")).respond_with(ResponseTemplate::new(401)).mount(&fhir).await;
    let (_, cht) = upstreams_up().await;
    let app = spawn_app(&[("FHIR_URL", &fhir.uri()), ("CHT_URL", &cht.uri())]).await;
    let body: Value = app.http.get(app.url("/health/ready")).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["checks"]["fhir"]["detail"], "HTTP 401");
    assert_eq!(body["status"], "not_ready");
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status_and_upstream_calls_by_outcome() {
    let fhir = MockServer::start().await;
    Mock::given(method("PUT")).respond_with(ResponseTemplate::new(500)).mount(&fhir).await;
    let app = spawn_app(&[("FHIR_URL", &fhir.uri())]).await;
    app.http.get(app.url("/health/live")).send().await.unwrap();
    app.http.get(app.url("/health/live")).send().await.unwrap();
    app.http.get(app.url("/no/such/path/with-an-id-123")).send().await.unwrap();
    app.http.post(app.url("/patient")).json(&json!({"resourceType": "Patient", "id": "p1"})).send().await.unwrap();
    let text = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains(r#"http_requests_total{method="GET",route="/health/live",status="200"} 2"#), "{text}");
    assert!(text.contains(r#"route="unmatched",status="404"} 1"#), "{text}");
    assert!(!text.contains("with-an-id-123"), "raw paths must not become labels");
    assert!(text.contains(r#"http_requests_total{method="POST",route="/patient",status="502"} 1"#), "{text}");
    assert!(text.contains(r#"upstream_requests_total{target="fhir",outcome="5xx"} 1"#), "{text}");
    assert!(text.contains("http_request_duration_seconds_bucket"), "{text}");
}

#[tokio::test]
async fn unknown_paths_and_methods_get_operation_outcomes() {
    let app = spawn_app(&[]).await;
    let response = app.http.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["content-type"], "application/fhir+json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["resourceType"], "OperationOutcome");
    assert_eq!(body["issue"][0]["code"], "not-found");
    let response = app.http.get(app.url("/patient")).send().await.unwrap();
    assert_eq!(response.status(), 405);
}

#[tokio::test]
async fn oversize_bodies_get_413_with_an_operation_outcome() {
    let app = spawn_app(&[("BODY_LIMIT_BYTES", "1024")]).await;
    let big = json!({"resourceType": "Patient", "id": "p1", "text": "x".repeat(4096)});
    let response = app.http.post(app.url("/patient")).json(&big).send().await.unwrap();
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["issue"][0]["code"], "too-long");
}

#[tokio::test]
async fn wrong_content_type_gets_415_and_malformed_json_gets_400() {
    let app = spawn_app(&[]).await;
    let response =
        app.http.post(app.url("/patient")).header("content-type", "text/plain").body("{}").send().await.unwrap();
    assert_eq!(response.status(), 415);
    let response = app
        .http
        .post(app.url("/patient"))
        .header("content-type", "application/json")
        .body("{\"resourceType\":")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(body["issue"][0]["diagnostics"].as_str().unwrap().contains("not valid JSON"));
}

#[tokio::test]
async fn request_id_is_the_openhim_transaction_id_or_a_new_uuid() {
    let app = spawn_app(&[]).await;
    let response = app.http.get(app.url("/health/live")).send().await.unwrap();
    let id = response.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    let response =
        app.http.get(app.url("/health/live")).header("X-OpenHIM-TransactionID", "65f0c0ffee").send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "65f0c0ffee");
}

#[tokio::test]
async fn openhim_requests_get_the_envelope_with_one_orchestration_per_upstream_call() {
    let fhir = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/Patient/p1"))
        .and(header("x-openhim-transactionid", "tx-1"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"resourceType": "Patient", "id": "p1"})))
        .expect(1)
        .mount(&fhir)
        .await;
    let app = spawn_app(&[("FHIR_URL", &fhir.uri()), ("FHIR_USERNAME", "u"), ("FHIR_PASSWORD", "fhir-secret")]).await;
    let response = app
        .http
        .post(app.url("/patient"))
        .header("X-OpenHIM-TransactionID", "tx-1")
        .json(&json!({"resourceType": "Patient", "id": "p1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["content-type"], "application/json+openhim");
    let envelope: Value = response.json().await.unwrap();
    assert_eq!(envelope["x-mediator-urn"], "urn:mediator:cht-fhir-mediator");
    assert_eq!(envelope["status"], "Successful");
    assert_eq!(envelope["response"]["status"], 201);
    assert_eq!(envelope["response"]["headers"]["content-type"], "application/fhir+json");
    let inner: Value = serde_json::from_str(envelope["response"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(inner["id"], "p1");
    let orchestrations = envelope["orchestrations"].as_array().unwrap();
    assert_eq!(orchestrations.len(), 1);
    let o = &orchestrations[0];
    assert_eq!(o["name"], "FHIR PUT Patient/p1");
    assert_eq!(o["request"]["method"], "PUT");
    assert_eq!(o["request"]["path"], "/Patient/p1");
    assert_eq!(o["request"]["host"], "127.0.0.1");
    assert!(o["request"]["timestamp"].is_string());
    assert!(o["request"]["headers"].get("authorization").is_none(), "credentials never recorded");
    assert_eq!(o["response"]["status"], 201);
    assert!(!envelope.to_string().contains("fhir-secret"));
}

#[tokio::test]
async fn upstream_failure_is_never_reported_as_success() {
    let fhir = MockServer::start().await;
    Mock::given(method("PUT")).respond_with(ResponseTemplate::new(500).set_body_string("db locked")).mount(&fhir).await;
    let app = spawn_app(&[("FHIR_URL", &fhir.uri())]).await;
    let send = |tx: &'static str| {
        app.http
            .post(app.url("/patient"))
            .header("X-OpenHIM-TransactionID", tx)
            .json(&json!({"resourceType": "Patient", "id": "p1"}))
            .send()
    };
    let response = send("tx-500").await.unwrap();
    assert_eq!(response.status(), 502);
    let envelope: Value = response.json().await.unwrap();
    assert_eq!(envelope["status"], "Failed");
    assert_eq!(envelope["error"]["message"], "FHIR server answered 500", "a top-level error makes OpenHIM auto-retry");
    assert_eq!(envelope["orchestrations"][0]["response"]["status"], 500);

    // Unreachable FHIR server: 503 and an orchestration carrying the error, no response.
    let app = spawn_app(&[("FHIR_URL", "http://127.0.0.1:9")]).await;
    let response = app
        .http
        .post(app.url("/patient"))
        .header("X-OpenHIM-TransactionID", "tx-503")
        .json(&json!({"resourceType": "Patient", "id": "p1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let envelope: Value = response.json().await.unwrap();
    assert_eq!(envelope["status"], "Failed");
    assert!(envelope["orchestrations"][0]["error"]["message"].is_string());
    assert!(envelope["orchestrations"][0].get("response").is_none());
}

#[tokio::test]
async fn slow_upstream_answers_504_inside_the_request_budget() {
    let fhir = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(201).set_delay(Duration::from_secs(3)))
        .mount(&fhir)
        .await;
    let app = spawn_app(&[("FHIR_URL", &fhir.uri()), ("FHIR_TIMEOUT_MS", "300")]).await;
    let started = std::time::Instant::now();
    let response =
        app.http.post(app.url("/patient")).json(&json!({"resourceType": "Patient", "id": "p1"})).send().await.unwrap();
    assert_eq!(response.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(2), "answered after {:?}", started.elapsed());
}

#[tokio::test]
async fn an_upstream_just_under_the_timeout_succeeds() {
    let fhir = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"resourceType": "Patient"}))
                .set_delay(Duration::from_millis(700)),
        )
        .mount(&fhir)
        .await;
    let app = spawn_app(&[("FHIR_URL", &fhir.uri()), ("FHIR_TIMEOUT_MS", "1000")]).await;
    let response =
        app.http.post(app.url("/patient")).json(&json!({"resourceType": "Patient", "id": "p1"})).send().await.unwrap();
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn graceful_shutdown_finishes_the_request_in_flight() {
    let fhir = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(201).set_delay(Duration::from_millis(500)))
        .mount(&fhir)
        .await;
    let mut app = spawn_app(&[("FHIR_URL", &fhir.uri())]).await;
    let in_flight = app.http.post(app.url("/patient")).json(&json!({"resourceType": "Patient", "id": "p1"})).send();
    let handle = tokio::spawn(in_flight);
    tokio::time::sleep(Duration::from_millis(150)).await;
    app.stop();
    let response = handle.await.unwrap().unwrap();
    assert_eq!(response.status(), 201);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(app.http.get(app.url("/health/live")).send().await.is_err(), "no new connections after shutdown");
}

#[tokio::test]
async fn with_route_credentials_requests_without_them_get_401_but_probes_stay_open() {
    let fhir = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"resourceType": "Patient"})))
        .mount(&fhir)
        .await;
    let app = spawn_app(&[
        ("FHIR_URL", &fhir.uri()),
        ("ROUTE_USERNAME", "openhim-route"),
        ("ROUTE_PASSWORD", "r0ute-s3cret"),
    ])
    .await;
    let patient = json!({"resourceType": "Patient", "id": "p1"});
    for auth in [None, Some(("openhim-route", "wrong")), Some(("someone", "r0ute-s3cret"))] {
        // Headers OpenHIM would add prove nothing: anyone can send them.
        let mut request = app
            .http
            .post(app.url("/patient"))
            .header("X-OpenHIM-ClientID", "cht-outbound")
            .header("X-OpenHIM-TransactionID", "tx-forged")
            .header("X-Forwarded-For", "127.0.0.1")
            .json(&patient);
        if let Some((user, password)) = auth {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{auth:?}");
        assert!(response.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["issue"][0]["code"], "login");
    }
    let ok = app
        .http
        .post(app.url("/patient"))
        .basic_auth("openhim-route", Some("r0ute-s3cret"))
        .json(&patient)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 201);
    for open in ["/", "/health/live", "/metrics"] {
        assert_eq!(app.http.get(app.url(open)).send().await.unwrap().status(), 200, "{open}");
    }
    assert_eq!(fhir.received_requests().await.unwrap().len(), 1, "refused requests never reached the FHIR server");
}
