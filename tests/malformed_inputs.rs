//! The malformed-input corpus (tests/fixtures/malformed: truncated JSON, wrong types, huge
//! strings, deep nesting, invalid UTF-8, non-finite numbers, wrong content types, broken XML,
//! wrong resources) and an oversize body, sent to every endpoint. Every one must get a 4xx
//! OperationOutcome or a dead letter (202) — never a panic, a 5xx, or a request that hangs.
//! The upstreams accept everything, so a 5xx could only be the mediator's own failure.

mod common;

use std::time::Duration;

use common::spawn_app;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ENDPOINTS: &[&str] = &[
    "/cht/patient",
    "/cht/encounter",
    "/patient",
    "/encounter",
    "/fhir/ServiceRequest",
    "/fhir/Task",
    "/fhir/Patient",
    "/fhir/Encounter",
    "/fhir/",
];

async fn accepting_upstreams() -> (MockServer, MockServer) {
    let ok = |body: Value| ResponseTemplate::new(200).set_body_json(body);
    let fhir = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex("^/[A-Za-z]+$"))
        .respond_with(ok(json!({"resourceType": "Bundle", "type": "searchset"})))
        .mount(&fhir)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("^/Patient/"))
        .respond_with(ok(json!({"resourceType": "Patient", "id": "p1"})))
        .mount(&fhir)
        .await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(404)).mount(&fhir).await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"resourceType": "Patient"})))
        .mount(&fhir)
        .await;
    Mock::given(method("POST")).respond_with(common::fhir_mock::TransactionEcho).mount(&fhir).await;
    let cht = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex("^/medic/_design/medic-client/_view/"))
        .respond_with(ok(json!({"rows": []})))
        .mount(&cht)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v2/records"))
        .respond_with(ok(json!({"success": true, "id": "rec-1"})))
        .mount(&cht)
        .await;
    Mock::given(method("GET")).respond_with(ok(json!([]))).mount(&cht).await;
    (fhir, cht)
}

#[tokio::test]
async fn every_malformed_input_gets_a_4xx_outcome_or_a_dead_letter() {
    let (fhir, cht) = accepting_upstreams().await;
    let app = spawn_app(&[("FHIR_URL", &fhir.uri()), ("CHT_URL", &cht.uri())]).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap();
    let index: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string("tests/fixtures/malformed/index.json").unwrap()).unwrap();
    let mut seen = 0;
    for input in &index {
        let file = input["file"].as_str().unwrap();
        let body = std::fs::read(format!("tests/fixtures/malformed/{file}")).unwrap();
        for endpoint in ENDPOINTS {
            let response = http
                .post(app.url(endpoint))
                .header("content-type", input["content_type"].as_str().unwrap())
                .body(body.clone())
                .send()
                .await
                .unwrap_or_else(|e| panic!("{file} → {endpoint}: no answer ({e})"));
            let status = response.status().as_u16();
            let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
            let answer: Value = response.json().await.unwrap_or(Value::Null);
            assert!(status < 500, "{file} → {endpoint}: {status} {answer}");
            if status >= 400 || status == 202 {
                assert_eq!(content_type.as_deref(), Some("application/fhir+json"), "{file} → {endpoint}");
                assert_eq!(answer["resourceType"], "OperationOutcome", "{file} → {endpoint}: {answer}");
                assert!(answer["issue"][0]["diagnostics"].as_str().is_some_and(|d| !d.is_empty()));
            }
            if status == 202 {
                // CHT pushes: its own (`/cht/*`) and the reference mediator's (`/patient`, `/encounter`).
                let cht_push = endpoint.starts_with("/cht/") || ["/patient", "/encounter"].contains(endpoint);
                assert!(cht_push, "only CHT pushes are dead-lettered: {file} → {endpoint}");
            }
            seen += 1;
        }
    }
    assert_eq!(seen, index.len() * ENDPOINTS.len());
    // Still serving.
    assert_eq!(http.get(app.url("/health/live")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn an_oversize_body_is_refused_with_413_on_every_endpoint() {
    let app = spawn_app(&[]).await;
    let big = format!("{{\"doc\": {{\"_id\": \"p1\", \"name\": \"{}\"}}}}", "x".repeat(6 * 1024 * 1024));
    for endpoint in ENDPOINTS {
        let response = app
            .http
            .post(app.url(endpoint))
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 413, "{endpoint}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["issue"][0]["code"], "too-long");
    }
}
