//! Inbound failure policy with wiremock as the FHIR server / CHT, for faults the real servers
//! will not produce on demand (500, 412, timeouts, garbage, refusals) — and the dead-letter store
//! and its replay command.

mod common;

use std::time::Duration;

use common::spawn_app;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn person() -> Value {
    json!({"doc": {"_id": "p-fault-1", "name": "Amina Njeri", "sex": "female", "date_of_birth": "1990-05-12"}})
}

fn report(form: &str) -> Value {
    json!({"doc": {"_id": "r-fault-1", "type": "data_record", "form": form, "reported_date": 1732000000000_i64,
        "fields": {"patient_uuid": "p-fault-1", "vitals": {"weight": "61.25", "muac": 23.5}, "notes": "ok"}}})
}

async fn post(app: &common::TestApp, path: &str, body: &Value) -> (u16, Value) {
    let r = app.http.post(app.url(path)).header("X-OpenHIM-TransactionID", "tx-fault").json(body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// A FHIR server that has the report's patient, no Observations yet, and takes one transaction.
async fn accept_one_report(fhir: &MockServer) {
    let answer = |body: Value| ResponseTemplate::new(200).set_body_json(body);
    Mock::given(method("GET"))
        .and(path("/Patient/p-fault-1"))
        .respond_with(answer(json!({"resourceType": "Patient", "id": "p-fault-1"})))
        .mount(fhir)
        .await;
    Mock::given(method("GET"))
        .and(path("/Observation"))
        .respond_with(answer(json!({"resourceType": "Bundle", "type": "searchset"})))
        .mount(fhir)
        .await;
    Mock::given(method("POST"))
        .and(path("/"))
        .respond_with(common::fhir_mock::TransactionEcho)
        .expect(1)
        .mount(fhir)
        .await;
}

fn inner(envelope: &Value) -> Value {
    serde_json::from_str(envelope["response"]["body"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn fhir_server_errors_and_conflicts_are_transient_and_nothing_is_dead_lettered() {
    // Server errors are answered at once (CHT or OpenHIM retries later); concurrency conflicts
    // (409, 412) and rate limits (429) are first retried by the store, four attempts in all.
    for (status, attempts) in [(500, 1), (503, 1), (412, 4), (409, 4), (429, 4)] {
        let expected = 502;
        let fhir = MockServer::start().await;
        Mock::given(method("PUT")).respond_with(ResponseTemplate::new(status)).expect(attempts).mount(&fhir).await;
        let app = spawn_app(&[("FHIR_URL", &fhir.uri())]).await;
        let (got, envelope) = post(&app, "/cht/patient", &person()).await;
        assert_eq!(got, expected, "FHIR {status}");
        assert_eq!(envelope["status"], "Failed");
        assert_eq!(inner(&envelope)["issue"][0]["code"], "transient");
        assert!(app.state.dead_letters.list(true).unwrap().is_empty(), "FHIR {status} must not dead-letter");
    }
}

#[tokio::test]
async fn a_slow_fhir_server_is_a_timeout_and_garbage_is_a_bad_gateway() {
    let fhir = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex("^/Patient/"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(2)))
        .mount(&fhir)
        .await;
    let app = spawn_app(&[("FHIR_URL", &fhir.uri()), ("FHIR_TIMEOUT_MS", "300")]).await;
    assert_eq!(post(&app, "/cht/encounter", &report("pregnancy_home_visit")).await.0, 504);

    let fhir = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/Patient/p-fault-1"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>proxy error</html>"))
        .mount(&fhir)
        .await;
    let app = spawn_app(&[("FHIR_URL", &fhir.uri())]).await;
    let (status, envelope) = post(&app, "/cht/encounter", &report("pregnancy_home_visit")).await;
    assert_eq!(status, 502);
    assert_eq!(envelope["status"], "Failed");
    assert!(app.state.dead_letters.list(true).unwrap().is_empty());
}

#[tokio::test]
async fn a_resource_the_fhir_server_refuses_is_dead_lettered_with_its_reason() {
    let fhir = MockServer::start().await;
    let refusal = json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid", "diagnostics": "Patient.birthDate out of range"}]});
    Mock::given(method("PUT")).respond_with(ResponseTemplate::new(422).set_body_json(refusal)).mount(&fhir).await;
    let app = spawn_app(&[("FHIR_URL", &fhir.uri())]).await;
    let (status, envelope) = post(&app, "/cht/patient", &person()).await;
    assert_eq!(status, 202, "2xx so CHT stops retrying");
    assert_eq!(envelope["status"], "Failed", "but the admin sees the failure");
    let outcome = inner(&envelope);
    assert!(outcome["issue"][0]["diagnostics"].as_str().unwrap().contains("birthDate out of range"), "{outcome}");
    let letters = app.state.dead_letters.list(false).unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].document_id.as_deref(), Some("p-fault-1"));
    assert_eq!(letters[0].transaction_id.as_deref(), Some("tx-fault"));
}

#[tokio::test]
async fn a_document_that_cannot_convert_is_dead_lettered_once_without_touching_fhir() {
    let fhir = MockServer::start().await;
    Mock::given(wiremock::matchers::any()).respond_with(ResponseTemplate::new(500)).expect(0).mount(&fhir).await;
    let app = spawn_app(&[("FHIR_URL", &fhir.uri())]).await;
    for _ in 0..3 {
        let (status, envelope) = post(&app, "/cht/encounter", &report("household_survey")).await;
        assert_eq!(status, 202);
        let outcome = inner(&envelope);
        assert_eq!(outcome["issue"][0]["expression"][0], "doc.form");
    }
    let letters = app.state.dead_letters.list(false).unwrap();
    assert_eq!(letters.len(), 1, "redeliveries update one letter");
    assert_eq!(letters[0].attempts, 3);
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"conversions_total{kind="encounter",outcome="dead_lettered"} 3"#), "{metrics}");
    assert!(metrics.contains("cht_fhir_mediator_dead_letters_pending 1"), "{metrics}");
    assert!(metrics.contains("cht_fhir_mediator_backfill_checkpoint_seq -1"), "no backfill yet: {metrics}");
    app.state.dead_letters.set_checkpoint(cht_fhir_mediator::backfill::CHECKPOINT, "2485-g1AAAA").unwrap();
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("cht_fhir_mediator_backfill_checkpoint_seq 2485"), "{metrics}");
    let (status, _) = post(&app, "/cht/patient", &json!({"doc": {"_id": "x", "type": "person"}})).await;
    assert_eq!(status, 202, "a person without a name");
}

#[tokio::test]
async fn a_report_whose_patient_neither_side_knows_yet_gets_503() {
    let fhir = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/Patient/p-fault-1"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&fhir)
        .await;
    Mock::given(method("GET"))
        .and(path("/Patient"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"resourceType": "Bundle", "type": "searchset"})))
        .mount(&fhir)
        .await;
    let cht = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/hydrate"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"id": "p-fault-1", "error": "not_found"}])))
        .mount(&cht)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("^/medic/_design/medic-client/_view/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"rows": []})))
        .mount(&cht)
        .await;
    let app = spawn_app(&[("FHIR_URL", &fhir.uri()), ("CHT_URL", &cht.uri())]).await;
    let (status, envelope) = post(&app, "/cht/encounter", &report("pregnancy_home_visit")).await;
    assert_eq!(status, 503);
    assert!(
        inner(&envelope)["issue"][0]["diagnostics"].as_str().unwrap().contains("neither in the FHIR server nor in CHT")
    );
    let names: Vec<&str> =
        envelope["orchestrations"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
    // The server's capabilities (read once: can it run batches? This one cannot say), then by
    // id, by its CHT document id and by short code as identifiers, then CHT.
    assert_eq!(
        names,
        [
            "FHIR GET metadata",
            "FHIR GET Patient/p-fault-1",
            "FHIR GET Patient",
            "FHIR GET Patient",
            "CHT hydrate contact",
            "CHT find contact by patient_id"
        ]
    );

    // CHT down: also transient.
    let app = spawn_app(&[("FHIR_URL", &fhir.uri()), ("CHT_URL", "http://127.0.0.1:9")]).await;
    assert_eq!(post(&app, "/cht/encounter", &report("pregnancy_home_visit")).await.0, 503);
    assert!(app.state.dead_letters.list(true).unwrap().is_empty());
}

#[tokio::test]
async fn floats_reach_the_fhir_server_with_their_exact_decimals() {
    let fhir = MockServer::start().await;
    accept_one_report(&fhir).await;
    let app = spawn_app(&[("FHIR_URL", &fhir.uri())]).await;
    let (status, _) = post(&app, "/cht/encounter", &report("pregnancy_home_visit")).await;
    assert_eq!(status, 200);
    let sent = fhir.received_requests().await.unwrap().into_iter().find(|r| r.method.as_str() == "POST").unwrap();
    let text = String::from_utf8(sent.body).unwrap();
    assert!(text.contains(r#""value":61.25"#) && text.contains(r#""value":23.5"#), "{text}");
    assert!(!text.contains("private::Number"));
    let bundle: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(bundle["type"], "transaction");
    let kinds: Vec<&str> =
        bundle["entry"].as_array().unwrap().iter().map(|e| e["resource"]["resourceType"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Encounter", "Observation", "Observation", "Observation"]);
}

#[tokio::test]
async fn malformed_json_and_wrong_content_type_are_400_and_415_not_dead_letters() {
    let app = spawn_app(&[]).await;
    let r = app
        .http
        .post(app.url("/cht/patient"))
        .header("content-type", "application/json")
        .body("{\"doc\": {")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r =
        app.http.post(app.url("/cht/encounter")).header("content-type", "text/csv").body("a,b").send().await.unwrap();
    assert_eq!(r.status(), 415);
    assert!(app.state.dead_letters.list(true).unwrap().is_empty());
}

#[tokio::test]
async fn replay_writes_a_dead_letter_once_the_mapping_is_fixed() {
    let fhir = MockServer::start().await;
    accept_one_report(&fhir).await;
    let db = std::env::temp_dir().join(format!("cht-fhir-mediator-test-replay-{}.sqlite3", uuid::Uuid::new_v4()));
    let db = db.to_str().unwrap();
    let app = spawn_app(&[("FHIR_URL", &fhir.uri()), ("DEAD_LETTER_DB", db)]).await;
    assert_eq!(post(&app, "/cht/encounter", &report("household_survey")).await.0, 202);
    let id = app.state.dead_letters.list(false).unwrap()[0].id.clone();

    // The interop engineer adds the missing form to the mappings and replays.
    let mut forms: Value = serde_json::from_str(cht_fhir_mediator::conversions::mapping::DEFAULT_FORMS_JSON).unwrap();
    forms["forms"]["household_survey"] = json!({"title": "Household survey", "observations": [
        {"field": "fields.notes", "type": "string", "code": {"code": "notes"}}]});
    let forms_file = std::env::temp_dir().join(format!("forms-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&forms_file, forms.to_string()).unwrap();
    let cli = |args: &[&str], forms: Option<&std::path::Path>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cht-fhir-mediator"));
        cmd.arg("dead-letters").args(args).env("DEAD_LETTER_DB", db).env("FHIR_URL", fhir.uri());
        if let Some(f) = forms {
            cmd.env("FORM_MAPPINGS_FILE", f);
        }
        cmd.output().unwrap()
    };
    let listed = cli(&["list"], None);
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&id[..12]));
    let shown = cli(&["show", &id[..8]], None);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("household_survey"));
    let still = cli(&["replay", &id], None);
    assert_eq!(still.status.code(), Some(1), "without the mapping it still fails");
    let fixed = cli(&["replay", "--all"], Some(&forms_file));
    assert!(
        fixed.status.success(),
        "{}{}",
        String::from_utf8_lossy(&fixed.stdout),
        String::from_utf8_lossy(&fixed.stderr)
    );
    assert!(String::from_utf8_lossy(&fixed.stdout).contains("written"));
    assert!(app.state.dead_letters.list(false).unwrap().is_empty(), "replayed letters are no longer pending");
}
