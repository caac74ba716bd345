//! Logs never carry request values (issue 9, finding 8): refusals are logged with their status,
//! the kind of problem and the element; a FHIR server's refusal that quotes values is not logged;
//! a panic is logged through `tracing` (JSON here, as `LOG_FORMAT=json` asks) with its location
//! only. One test in this binary: it installs the process's log subscriber and panic hook.

mod common;

use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Values a log line must never show.
const MARKERS: &[&str] =
    &["SecretName", "SECRETGENDER", "1990-5-12", "+254711000999", "SECRETNOTE", "SECRETPANIC", "SECRETMRN"];

#[tokio::test]
async fn refusals_and_panics_are_logged_without_request_values() {
    let logs = common::logs::capture();

    // A FHIR server that refuses everything, quoting what it was sent.
    let fhir = MockServer::start().await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(404)).mount(&fhir).await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": "invalid", "diagnostics": "name SecretName Wanjiru is not allowed"}]})))
        .mount(&fhir)
        .await;
    let app = common::spawn_app(&[("FHIR_URL", &fhir.uri()), ("LOG_LEVEL", "debug")]).await;
    let send = |path: &'static str, content_type: &'static str, body: String| {
        let request = app.http.post(app.url(path)).header("content-type", content_type).body(body);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let bad_patient = json!({"resourceType": "Patient", "id": "p1", "name": [{"text": "SecretName Wanjiru"}],
        "gender": "SECRETGENDER", "birthDate": "1990-5-12", "telecom": [{"system": "phone", "value": "+254711000999"}]});
    assert_eq!(send("/patient", "application/fhir+json", bad_patient.to_string()).await, 202, "a dead letter");
    assert_eq!(send("/fhir/Patient", "application/fhir+json", bad_patient.to_string()).await, 400);
    // A value of the wrong JSON type: parsers quote it in their messages.
    let wrong_type = json!({"resourceType": "Patient", "id": "p2", "active": "SecretName yes"});
    assert_eq!(send("/fhir/Patient", "application/fhir+json", wrong_type.to_string()).await, 400);
    let xml = r#"<Patient xmlns="http://hl7.org/fhir"><name><text value="SecretName Wanjiru"/></name><gender value="SECRETGENDER"/><birthDate value="1990-5-12"/></Patient>"#;
    assert_eq!(send("/fhir/Patient", "application/fhir+xml", xml.to_owned()).await, 400);
    let person = json!({"doc": {"_id": "p-priv", "type": "person", "name": "SecretName Wanjiru", "date_of_birth": "1990-5-12",
        "phone": "+254711000999"}});
    assert_eq!(send("/cht/patient", "application/json", person.to_string()).await, 202);
    let good_person =
        json!({"doc": {"_id": "p-priv2", "type": "person", "name": "SecretName Wanjiru", "phone": "+254711000999"}});
    assert_eq!(send("/cht/patient", "application/json", good_person.to_string()).await, 202, "refused by the server");
    let task = json!({"resourceType": "Task", "intent": "order", "status": "requested", "note": {"text": "SECRETNOTE"},
        "for": {"identifier": {"system": "https://emr/mrn", "value": format!("SECRETMRN{}", "9".repeat(5000))}}});
    assert_eq!(send("/fhir/Task", "application/fhir+json", task.to_string()).await, 400);

    // A panic anywhere (here: a thread of the test) goes through the hook. The default hook is
    // back right after, so this test's own assertion messages are readable.
    cht_fhir_mediator::telemetry::install_panic_hook();
    let _ = std::thread::spawn(|| panic!("SECRETPANIC: byte index 10 is out of range of `1990-5-12`")).join();
    let _ = std::panic::take_hook();

    let text = common::logs::text(&logs);
    for marker in MARKERS {
        let leaks: Vec<&str> = text.lines().filter(|l| l.contains(marker)).collect();
        assert!(leaks.is_empty(), "{marker} logged: {leaks:#?}");
    }
    let lines: Vec<Value> =
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}"))).collect();
    let refused: Vec<&Value> = lines.iter().filter(|l| l["message"] == "request refused").collect();
    assert!(refused.iter().any(|l| l["element"] == "Patient.gender" && l["status"] == 400), "{refused:#?}");
    let panic =
        lines.iter().find(|l| l["message"].as_str().is_some_and(|m| m.starts_with("panic"))).expect("panic logged");
    assert!(panic["location"].as_str().unwrap().contains("tests/log_privacy.rs"), "{panic}");
    assert!(lines.iter().any(|l| l["message"] == "document stored as a dead letter"));
}
