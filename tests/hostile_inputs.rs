//! What a hostile probe found (issue 9), one test per finding: each failed before its fix.
//! Upstreams are wiremock servers that accept everything, so any 5xx or crash is the mediator's.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::spawn_app;
use serde_json::{Value, json};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("tests/fixtures/malformed/{name}")).unwrap()
}

async fn accepting_fhir() -> MockServer {
    let fhir = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex("^/Patient/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"resourceType": "Patient", "id": "p1"})))
        .mount(&fhir)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"resourceType": "Bundle", "type": "searchset"})))
        .mount(&fhir)
        .await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"resourceType": "Patient", "id": "p1"})))
        .mount(&fhir)
        .await;
    Mock::given(method("POST")).respond_with(common::fhir_mock::TransactionEcho).mount(&fhir).await;
    fhir
}

async fn post(app: &common::TestApp, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let response = app.http.post(app.url(path)).header("content-type", content_type).body(body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn expressions(outcome: &Value) -> Vec<String> {
    outcome["issue"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|i| i["expression"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e.as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn deeply_nested_xml_is_refused_and_the_process_keeps_serving() {
    let fhir = accepting_fhir().await;
    let app = spawn_app(&[("FHIR_URL", &fhir.uri())]).await;
    for file in ["deep_xml_extensions.xml", "deep_xml_unknown.xml"] {
        for endpoint in ["/fhir/Patient", "/fhir/ServiceRequest", "/fhir/Task", "/fhir/Encounter", "/fhir/"] {
            let (status, outcome) = post(&app, endpoint, "application/fhir+xml", fixture(file)).await;
            assert_eq!(status, 400, "{file} → {endpoint}: {outcome}");
            let said = outcome["issue"][0]["diagnostics"].as_str().unwrap();
            assert!(said.contains("nested more than 64 levels"), "{said}");
        }
    }
    let (status, _) = post(&app, "/fhir/Patient", "application/fhir+json", fixture("deep_json_64.json")).await;
    assert_eq!(status, 400);
    assert_eq!(app.http.get(app.url("/health/live")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn empty_arrays_are_refused_naming_the_element_never_a_panic() {
    let fhir = accepting_fhir().await;
    let app = spawn_app(&[("FHIR_URL", &fhir.uri())]).await;
    // The reference mediator's pushes (`/patient`) are taken as they come: what its `expr`
    // mappings leave empty is dropped, not refused.
    let (status, _) = post(&app, "/patient", "application/fhir+json", fixture("empty_array_patient.json")).await;
    assert_eq!(status, 201);
    let put = fhir.received_requests().await.unwrap().into_iter().find(|r| r.method.as_str() == "PUT").unwrap();
    assert!(!String::from_utf8_lossy(&put.body).contains("telecom"), "the empty telecom is dropped");
    for (endpoint, file, element) in [
        ("/fhir/Patient", "empty_array_patient.json", "Patient.telecom"),
        ("/fhir/ServiceRequest", "empty_array_service_request.json", "ServiceRequest.note"),
        ("/service-request", "empty_array_service_request.json", "ServiceRequest.note"),
    ] {
        let (status, outcome) = post(&app, endpoint, "application/fhir+json", fixture(file)).await;
        assert_eq!(status, 400, "{endpoint}: {outcome}");
        assert!(expressions(&outcome).iter().any(|e| e == element), "{endpoint}: {outcome}");
    }
    // A CHT report whose copied valueQuantity carries an empty array: the Observation would not be
    // valid FHIR, so the report is a dead letter naming it.
    let (status, outcome) =
        post(&app, "/cht/encounter", "application/json", fixture("empty_array_in_copied_quantity.json")).await;
    assert_eq!(status, 202, "{outcome}");
    assert!(expressions(&outcome).iter().any(|e| e.ends_with("valueQuantity.extension")), "{outcome}");
}

#[tokio::test]
async fn cht_dates_and_times_that_used_to_panic_become_dead_letters_naming_the_field() {
    let fhir = accepting_fhir().await;
    let app = spawn_app(&[("FHIR_URL", &fhir.uri())]).await;
    for file in ["person_dob_unpadded.json", "person_dob_three_digit_year.json", "person_dob_multibyte.json"] {
        let (status, outcome) = post(&app, "/cht/patient", "application/json", fixture(file)).await;
        assert_eq!(status, 202, "{file}: {outcome}");
        assert_eq!(outcome["issue"][0]["expression"][0], "doc.date_of_birth", "{file}");
    }
    let (status, outcome) = post(&app, "/cht/encounter", "application/json", fixture("time_multibyte.json")).await;
    assert_eq!(status, 202, "{outcome}");
    assert_eq!(outcome["issue"][0]["expression"][0], "observations[0].valueTime");
}

#[tokio::test]
async fn shapes_fhirbolt_let_through_are_refused_naming_each_element() {
    let fhir = accepting_fhir().await;
    let app = spawn_app(&[("FHIR_URL", &fhir.uri())]).await;
    // `/patient` is a CHT push: refused as a dead letter (CHT would retry a 400 for ever).
    let (status, outcome) = post(&app, "/patient", "application/fhir+json", fixture("loose_shapes_patient.json")).await;
    assert_eq!(status, 202, "{outcome}");
    assert_eq!(expressions(&outcome), ["Patient.name[0].given", "Patient.gender", "Patient.birthDate"]);
    let (status, outcome) =
        post(&app, "/fhir/Patient", "application/fhir+json", fixture("loose_shapes_patient.json")).await;
    assert_eq!(status, 400, "{outcome}");
    assert_eq!(expressions(&outcome), ["Patient.name[0].given", "Patient.gender", "Patient.birthDate"]);
    let (status, outcome) =
        post(&app, "/fhir/Task", "application/fhir+json", fixture("note_as_object_task.json")).await;
    assert_eq!(status, 400, "{outcome}");
    assert_eq!(expressions(&outcome), ["Task.note"]);
    assert!(fhir.received_requests().await.unwrap().iter().all(|r| r.method.as_str() != "PUT"), "nothing written");
}

#[tokio::test]
async fn ids_made_of_dots_never_reach_a_url() {
    let fhir = accepting_fhir().await;
    let app = spawn_app(&[("FHIR_URL", &fhir.uri())]).await;
    // No usable id and no CHT identifier to derive one from: a dead letter naming the identifier.
    let (status, outcome) = post(&app, "/patient", "application/fhir+json", fixture("dots_id_patient.json")).await;
    assert_eq!(status, 202, "{outcome}");
    assert_eq!(expressions(&outcome), ["Patient.identifier"]);
    let (status, outcome) = post(&app, "/fhir/Patient", "application/fhir+json", fixture("dots_id_patient.json")).await;
    assert_eq!(status, 400, "{outcome}");
    assert_eq!(expressions(&outcome), ["Patient.id"]);
    let (status, outcome) =
        post(&app, "/fhir/ServiceRequest", "application/fhir+json", fixture("dots_subject_service_request.json")).await;
    assert_eq!(status, 400, "{outcome}");
    assert_eq!(expressions(&outcome), ["ServiceRequest.subject"]);
    // A CHT person whose _id is `..` gets a UUID for its FHIR id, not `PUT /`.
    let person = json!({"doc": {"_id": "..", "type": "person", "name": "A"}});
    let (status, _) = post(&app, "/cht/patient", "application/json", person.to_string().into_bytes()).await;
    assert_eq!(status, 201);
    let puts: Vec<String> = fhir
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "PUT")
        .map(|r| r.url.path().to_owned())
        .collect();
    assert_eq!(puts.len(), 1);
    assert!(puts[0].starts_with("/Patient/") && puts[0].len() == "/Patient/".len() + 36, "{puts:?}");
}

#[tokio::test]
async fn a_search_value_too_long_for_a_url_is_refused_naming_the_element() {
    let fhir = accepting_fhir().await;
    let app = spawn_app(&[("FHIR_URL", &fhir.uri())]).await;
    let (status, outcome) =
        post(&app, "/fhir/ServiceRequest", "application/fhir+json", fixture("huge_identifier_service_request.json"))
            .await;
    assert_eq!(status, 400, "{outcome}");
    assert_eq!(expressions(&outcome), ["ServiceRequest.subject.identifier.value"]);
    assert!(!outcome.to_string().contains(&fhir.uri()), "the answer does not name the FHIR server");
    assert!(fhir.received_requests().await.unwrap().is_empty(), "nothing was sent");
    // A CHT follow-up report naming a 70 KB record id: a dead letter naming the field, not a 502.
    let report = json!({"doc": {"_id": "r-huge", "type": "data_record", "form": "interop_follow_up",
        "reported_date": 1700000000000_i64, "fields": {"patient_uuid": "p1", "follow_up": {"outcome": "returned_to_care"},
        "inputs": {"source_id": "x".repeat(70_000), "contact": {"_id": "p1"}}}}});
    let (status, outcome) = post(&app, "/cht/encounter", "application/json", report.to_string().into_bytes()).await;
    assert_eq!(status, 202, "{outcome}");
    assert_eq!(outcome["issue"][0]["expression"][0], "doc.fields.inputs.source_id");
}

#[tokio::test]
async fn a_fhir_server_answering_an_array_for_a_task_is_a_502_never_a_200_or_a_panic() {
    let fhir = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex("^/Task/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([1, 2, 3])))
        .mount(&fhir)
        .await;
    let app = spawn_app(&[("FHIR_URL", &fhir.uri())]).await;
    let task = json!({"resourceType": "Task", "id": "t1", "status": "requested", "intent": "order",
        "for": {"reference": "Patient/p1"}});
    let (status, outcome) = post(&app, "/fhir/Task", "application/fhir+json", task.to_string().into_bytes()).await;
    assert_eq!(status, 502, "{outcome}");
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    let report = json!({"doc": {"_id": "r-1", "type": "data_record", "form": "interop_follow_up",
        "reported_date": 1700000000000_i64, "fields": {"patient_uuid": "p1", "follow_up": {"outcome": "returned_to_care"},
        "inputs": {"task_id": "t1", "source_id": "rec-1", "contact": {"_id": "p1"}}}}});
    Mock::given(method("GET"))
        .and(path_regex("^/Patient/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"resourceType": "Patient", "id": "p1"})))
        .mount(&fhir)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("^/Observation$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"resourceType": "Bundle", "type": "searchset"})))
        .mount(&fhir)
        .await;
    let (status, _) = post(&app, "/cht/encounter", "application/json", report.to_string().into_bytes()).await;
    assert_eq!(status, 502, "transient: CHT delivers again once the server answers properly");
}

#[tokio::test]
async fn invented_methods_do_not_add_metric_label_sets() {
    let app = spawn_app(&[]).await;
    for i in 0..300 {
        let invented = reqwest::Method::from_bytes(format!("M{i:04}X").as_bytes()).unwrap();
        let _ = app.http.request(invented, app.url("/cht/patient")).send().await.unwrap();
    }
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let methods: std::collections::BTreeSet<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("cht_fhir_mediator_http_requests_total{"))
        .filter_map(|l| l.split("method=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(methods, ["other"].into_iter().collect(), "{metrics}");
    assert!(metrics.len() < 64 * 1024, "metrics stay small: {} bytes", metrics.len());
}

#[tokio::test]
async fn the_dead_letter_store_is_capped_and_says_so_with_507() {
    let fhir = accepting_fhir().await;
    let app = spawn_app(&[("FHIR_URL", &fhir.uri()), ("DEAD_LETTER_MAX_COUNT", "3")]).await;
    let unconvertible = |i: usize| json!({"doc": {"_id": format!("p-{i}"), "type": "person"}}).to_string().into_bytes();
    for i in 0..3 {
        assert_eq!(post(&app, "/cht/patient", "application/json", unconvertible(i)).await.0, 202);
    }
    let (status, outcome) = post(&app, "/cht/patient", "application/json", unconvertible(3)).await;
    assert_eq!(status, 507, "{outcome}");
    assert!(outcome["issue"][0]["diagnostics"].as_str().unwrap().contains("DEAD_LETTER_MAX_COUNT"));
    // A redelivery of a stored document is still taken (it updates its letter).
    assert_eq!(post(&app, "/cht/patient", "application/json", unconvertible(0)).await.0, 202);
    // OpenHIM sees the refusal as Failed.
    let enveloped = app
        .http
        .post(app.url("/cht/patient"))
        .header("content-type", "application/json")
        .header("x-openhim-transactionid", "tx-full")
        .body(unconvertible(4))
        .send()
        .await
        .unwrap();
    let envelope: Value = enveloped.json().await.unwrap();
    assert_eq!(envelope["status"], "Failed");
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("cht_fhir_mediator_dead_letters_refused_total 2"), "{metrics}");
}

/// Sends `head` on a raw connection and returns what came back before the server closed it
/// (or `None` if it was still open after `wait`).
fn raw(port: u16, head: &[u8], wait: Duration) -> (Option<String>, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    stream.write_all(head).unwrap();
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => (Some(String::from_utf8_lossy(&answer).into_owned()), started.elapsed()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => (Some(String::new()), started.elapsed()),
        Err(_) => (None, started.elapsed()),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_headers_and_idle_connections_are_closed() {
    let app = spawn_app(&[("HEADER_READ_TIMEOUT_MS", "500")]).await;
    let port = app.port;
    let (closed, after) = tokio::task::spawn_blocking(move || {
        raw(port, b"POST /cht/patient HTTP/1.1\r\nHost: x\r\nContent-Ty", Duration::from_secs(5))
    })
    .await
    .unwrap();
    assert!(closed.is_some(), "a slow-header connection is closed");
    assert!(after < Duration::from_secs(3), "within the header timeout: {after:?}");
    // A keep-alive connection left silent after its request is let go by the idle timeout.
    let app = spawn_app(&[("HEADER_READ_TIMEOUT_MS", "30000"), ("IDLE_TIMEOUT_MS", "700")]).await;
    let port = app.port;
    let (answer, after) = tokio::task::spawn_blocking(move || {
        raw(port, b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n", Duration::from_secs(5))
    })
    .await
    .unwrap();
    assert!(answer.unwrap().starts_with("HTTP/1.1 200"));
    assert!(after < Duration::from_secs(3), "idle connection closed: {after:?}");
    // A connection that never sends a byte is let go by the header timeout too, not the idle one
    // (hyper's own header timer starts with the first byte).
    let app = spawn_app(&[("HEADER_READ_TIMEOUT_MS", "500"), ("IDLE_TIMEOUT_MS", "60000")]).await;
    let port = app.port;
    let (closed, after) = tokio::task::spawn_blocking(move || raw(port, b"", Duration::from_secs(5))).await.unwrap();
    assert_eq!(closed.as_deref(), Some(""), "a silent connection is closed, unanswered");
    assert!(after < Duration::from_secs(3), "within the header timeout: {after:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_over_the_limit_are_closed_and_the_probes_answer_once_they_go() {
    let app = spawn_app(&[("MAX_CONNECTIONS", "20"), ("HEADER_READ_TIMEOUT_MS", "60000")]).await;
    let port = app.port;
    let silent: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (refused, _) = tokio::task::spawn_blocking(move || {
        raw(port, b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n", Duration::from_secs(3))
    })
    .await
    .unwrap();
    assert_eq!(refused.as_deref(), Some(""), "the 21st connection is closed at once, unanswered");
    drop(silent);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.http.get(app.url("/health/live")).send().await.unwrap().status(), 200);
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("cht_fhir_mediator_connections_refused_total 1"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_never_arrives_gets_408_and_an_oversize_declared_one_413_at_once() {
    let app = spawn_app(&[("BODY_READ_TIMEOUT_MS", "300")]).await;
    let port = app.port;
    let (answer, after) = tokio::task::spawn_blocking(move || {
        let head = b"POST /cht/patient HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"doc\":";
        raw(port, head, Duration::from_secs(5))
    })
    .await
    .unwrap();
    let answer = answer.expect("answered and closed");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(after < Duration::from_secs(2), "{after:?}");
    let (answer, after) = tokio::task::spawn_blocking(move || {
        let head = b"POST /cht/patient HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 104857600\r\n\r\n";
        raw(port, head, Duration::from_secs(5))
    })
    .await
    .unwrap();
    assert!(answer.expect("answered").starts_with("HTTP/1.1 413"));
    assert!(after < Duration::from_millis(250), "at once, not after waiting for the body: {after:?}");
}

#[tokio::test]
async fn the_basic_scheme_of_route_credentials_is_case_insensitive() {
    let fhir = accepting_fhir().await;
    let app = spawn_app(&[("FHIR_URL", &fhir.uri()), ("ROUTE_USERNAME", "route"), ("ROUTE_PASSWORD", "s3cret")]).await;
    let person = json!({"doc": {"_id": "p-case", "type": "person", "name": "A"}});
    for scheme in ["Basic", "basic", "BASIC"] {
        use base64::Engine;
        let token = base64::engine::general_purpose::STANDARD.encode("route:s3cret");
        let response = app
            .http
            .post(app.url("/cht/patient"))
            .header("authorization", format!("{scheme} {token}"))
            .json(&person)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{scheme}");
    }
    let wrong = app.http.post(app.url("/cht/patient")).header("authorization", "Bearer x").json(&person).send();
    assert_eq!(wrong.await.unwrap().status(), 401);
    assert_eq!(
        fhir.received_requests().await.unwrap().iter().filter(|r| r.url.path().starts_with("/Patient")).count(),
        3
    );
}
