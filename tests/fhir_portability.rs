//! FHIR servers that differ from the one in CI (issue 10), played by wiremock where a real
//! server will not behave so on demand: update-as-create refused (Medplum, Google Cloud
//! Healthcare), a transaction run as a non-atomic batch with failing entries, conditional writes
//! meeting duplicates (412) or serialisation failures (409), a Task changed between its read and
//! its update (If-Match), and refusal reasons in `details.text`.

mod common;

use common::fhir_mock::TransactionEcho;
use common::spawn_app;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, path_regex, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const DOC: &str = "https://cht.example.org/fhir/identifier/document-id";

fn ok(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

fn person(id: &str) -> Value {
    json!({"doc": {"_id": id, "type": "person", "name": "Amina Njeri", "sex": "female"}})
}

async fn post(app: &common::TestApp, path: &str, body: &Value) -> (u16, Value) {
    let r = app.http.post(app.url(path)).header("X-OpenHIM-TransactionID", "tx-port").json(body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// A CapabilityStatement like Medplum's for an ordinary project client: conditional update, no
/// update-as-create.
/// A FHIR server that has Patient `id` and no Observations (what a report's write reads first).
async fn patient_without_observations(fhir: &MockServer, id: &str) {
    Mock::given(method("GET"))
        .and(path(format!("/Patient/{id}")))
        .respond_with(ok(json!({"resourceType": "Patient", "id": id})))
        .mount(fhir)
        .await;
    Mock::given(method("GET"))
        .and(path("/Observation"))
        .respond_with(ok(json!({"resourceType": "Bundle", "type": "searchset"})))
        .mount(fhir)
        .await;
}

async fn no_update_create(fhir: &MockServer) {
    let resource = |kind: &str| json!({"type": kind, "conditionalUpdate": true, "conditionalCreate": true});
    let kinds = ["Patient", "Encounter", "Observation", "Task", "ServiceRequest"];
    Mock::given(method("GET"))
        .and(path("/metadata"))
        .respond_with(ok(json!({"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1",
            "rest": [{"mode": "server", "resource": kinds.map(resource)}]})))
        .mount(fhir)
        .await;
}

#[tokio::test]
async fn where_the_server_refuses_client_ids_auto_writes_by_identifier() {
    let fhir = MockServer::start().await;
    no_update_create(&fhir).await;
    // Medplum: `PUT Patient/{new id}` is 404 for a project client; the conditional PUT creates.
    Mock::given(method("PUT"))
        .and(path("/Patient"))
        .and(query_param("identifier", format!("{DOC}|p-medplum")))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"resourceType": "Patient", "id": "srv-1"})))
        .expect(1)
        .mount(&fhir)
        .await;
    Mock::given(method("PUT"))
        .and(path_regex("^/Patient/"))
        .respond_with(ResponseTemplate::new(404))
        .expect(0)
        .mount(&fhir)
        .await;
    let app = spawn_app(&[("FHIR_URL", &fhir.uri()), ("FHIR_WRITE_MODE", "auto")]).await;
    let (status, _) = post(&app, "/cht/patient", &person("p-medplum")).await;
    assert_eq!(status, 201);
    let put = fhir.received_requests().await.unwrap().into_iter().find(|r| r.method.as_str() == "PUT").unwrap();
    let sent: Value = serde_json::from_slice(&put.body).unwrap();
    assert!(sent.get("id").is_none(), "the server assigns the id");
}

#[tokio::test]
async fn a_transaction_run_as_a_batch_with_failing_entries_is_never_a_success() {
    let fhir = MockServer::start().await;
    patient_without_observations(&fhir, "p-batch").await;
    // Medplum without its transaction-bundles feature: HTTP 200, every entry 404.
    Mock::given(method("POST"))
        .and(path("/"))
        .respond_with(ok(json!({"resourceType": "Bundle", "type": "batch-response", "entry": [
            {"response": {"status": "404", "outcome": {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-found", "details": {"text": "Not found"}}]}}},
            {"response": {"status": "404"}}, {"response": {"status": "404"}}, {"response": {"status": "404"}}]})))
        .mount(&fhir)
        .await;
    let app = spawn_app(&[("FHIR_URL", &fhir.uri())]).await;
    let report = json!({"doc": {"_id": "r-batch", "type": "data_record", "form": "pregnancy_home_visit", "reported_date": 1732000000000_i64,
        "fields": {"patient_uuid": "p-batch", "vitals": {"weight": "61.25", "muac": 23.5}, "notes": "ok"}}});
    let (status, envelope) = post(&app, "/cht/encounter", &report).await;
    assert_eq!(status, 502, "{envelope}");
    assert_eq!(envelope["status"], "Failed");
    let said = envelope["response"]["body"].as_str().unwrap();
    assert!(said.contains("batch-response"), "{said}");
    assert!(app.state.dead_letters.list(true).unwrap().is_empty(), "transient: CHT delivers again");

    // A real transaction-response with one failing entry: refused, with that entry's reason.
    let fhir = MockServer::start().await;
    patient_without_observations(&fhir, "p-batch").await;
    Mock::given(method("POST"))
        .and(path("/"))
        .respond_with(ok(json!({"resourceType": "Bundle", "type": "transaction-response", "entry": [
            {"response": {"status": "201"}}, {"response": {"status": "422 Unprocessable", "outcome": {"resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "invalid", "details": {"text": "Observation.code: unknown code system"}, "expression": ["Observation.code"]}]}}},
            {"response": {"status": "201"}}, {"response": {"status": "201"}}]})))
        .mount(&fhir)
        .await;
    let app = spawn_app(&[("FHIR_URL", &fhir.uri())]).await;
    let (status, envelope) = post(&app, "/cht/encounter", &report).await;
    assert_eq!(status, 202, "a refusal is a dead letter: {envelope}");
    let letter = &app.state.dead_letters.list(false).unwrap()[0];
    assert!(
        letter.reason.contains("unknown code system (at Observation.code)"),
        "the reason from details.text: {}",
        letter.reason
    );
}

#[tokio::test]
async fn a_conditional_write_meeting_duplicates_repairs_them_and_goes_through() {
    let fhir = MockServer::start().await;
    // Two replicas raced: two Patients carry the key. The conditional PUT says 412 once.
    Mock::given(method("PUT"))
        .and(path("/Patient"))
        .respond_with(ResponseTemplate::new(412))
        .up_to_n_times(1)
        .mount(&fhir)
        .await;
    Mock::given(method("PUT"))
        .and(path("/Patient"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"resourceType": "Patient", "id": "older"})))
        .mount(&fhir)
        .await;
    Mock::given(method("GET"))
        .and(path("/Patient"))
        .respond_with(ok(json!({"resourceType": "Bundle", "type": "searchset", "entry": [
            {"resource": {"resourceType": "Patient", "id": "newer", "meta": {"lastUpdated": "2026-11-21T10:00:01Z"}}},
            {"resource": {"resourceType": "Patient", "id": "older", "meta": {"lastUpdated": "2026-11-21T10:00:00Z"}}}]})))
        .mount(&fhir)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/Patient/newer"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&fhir)
        .await;
    let app = spawn_app(&[("FHIR_URL", &fhir.uri()), ("FHIR_WRITE_MODE", "conditional")]).await;
    let (status, body) = post(&app, "/cht/patient", &person("p-dup")).await;
    assert_eq!(status, 200, "written once the duplicate is gone: {body}");
}

#[tokio::test]
async fn serialisation_failures_are_retried_a_bounded_number_of_times() {
    let fhir = MockServer::start().await;
    Mock::given(method("PUT")).respond_with(ResponseTemplate::new(409)).up_to_n_times(2).mount(&fhir).await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"resourceType": "Patient"})))
        .mount(&fhir)
        .await;
    let app = spawn_app(&[("FHIR_URL", &fhir.uri())]).await;
    let (status, body) = post(&app, "/cht/patient", &person("p-409")).await;
    assert_eq!(status, 201, "the third try goes through: {body}");

    let always = MockServer::start().await;
    Mock::given(method("PUT")).respond_with(ResponseTemplate::new(409)).expect(4).mount(&always).await;
    let app = spawn_app(&[("FHIR_URL", &always.uri())]).await;
    assert_eq!(post(&app, "/cht/patient", &person("p-409b")).await.0, 502, "then a transient failure, for CHT's retry");
}

/// The follow-up Task as the outbound side left it, at `version`, with `extra` elements.
fn received_task(version: &str, extra: Value) -> Value {
    let mut task = json!({"resourceType": "Task", "id": "t-race", "status": "received", "intent": "order",
        "meta": {"versionId": version}, "for": {"reference": "Patient/p-race"},
        "identifier": [{"system": DOC, "value": "rec-race"}]});
    for (k, v) in extra.as_object().unwrap() {
        task[k] = v.clone();
    }
    task
}

#[tokio::test]
async fn a_task_changed_between_read_and_write_keeps_both_changes() {
    let fhir = MockServer::start().await;
    patient_without_observations(&fhir, "p-race").await;
    // The Task is read at version 1; by the time the report is written, the requester has added
    // a note (version 2). The server refuses the stale If-Match as HFS does (the whole
    // transaction, 400); the mediator reads again and applies the outcome to version 2.
    Mock::given(method("GET"))
        .and(path("/Task/t-race"))
        .respond_with(ok(received_task("1", json!({}))))
        .up_to_n_times(1)
        .mount(&fhir)
        .await;
    let noted = json!({"note": [{"text": "patient phoned the clinic"}]});
    Mock::given(method("GET"))
        .and(path("/Task/t-race"))
        .respond_with(ok(received_task("2", noted.clone())))
        .mount(&fhir)
        .await;
    Mock::given(method("POST"))
        .and(path("/"))
        .and(wiremock::matchers::body_string_contains("W/\\\"1\\\""))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": "processing", "details": {"text": "Transaction failed at entry 4: Entry failed with status 412"}}]})))
        .mount(&fhir)
        .await;
    Mock::given(method("POST")).and(path("/")).respond_with(TransactionEcho).mount(&fhir).await;
    let app = spawn_app(&[("FHIR_URL", &fhir.uri())]).await;
    let outcome = json!({"doc": {"_id": "r-race", "type": "data_record", "form": "interop_follow_up", "reported_date": 1732100000000_i64,
        "fields": {"patient_uuid": "p-race", "inputs": {"task_id": "t-race", "source_id": "rec-race"},
            "follow_up": {"patient_found": "yes", "outcome": "returned_to_care"}}}});
    let (status, body) = post(&app, "/cht/encounter", &outcome).await;
    assert_eq!(status, 200, "{body}");
    let transactions: Vec<Value> = fhir
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == "POST")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(transactions.len(), 2, "tried at version 1, then at version 2");
    let last = transactions.last().unwrap();
    let task = last["entry"].as_array().unwrap().iter().find(|e| e["resource"]["resourceType"] == "Task").unwrap();
    assert_eq!(task["request"]["ifMatch"], "W/\"2\"");
    assert_eq!(task["resource"]["status"], "completed", "the CHW's outcome");
    assert_eq!(task["resource"]["note"], noted["note"], "and the requester's change");
}

#[tokio::test]
async fn the_follow_up_tasks_received_update_is_read_modify_write() {
    let fhir = MockServer::start().await;
    let requested = json!({"resourceType": "Task", "id": "t-out", "status": "requested", "intent": "order", "meta": {"versionId": "1"},
        "for": {"reference": "Patient/p-out"}, "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]}});
    let mut changed = requested.clone();
    changed["meta"]["versionId"] = json!("2");
    changed["priority"] = json!("urgent");
    Mock::given(method("GET")).and(path("/Task/t-out")).respond_with(ok(requested)).up_to_n_times(1).mount(&fhir).await;
    Mock::given(method("GET")).and(path("/Task/t-out")).respond_with(ok(changed)).mount(&fhir).await;
    Mock::given(method("GET"))
        .and(path("/Patient/p-out"))
        .respond_with(ok(json!({"resourceType": "Patient", "id": "p-out", "identifier": [
            {"system": "https://cht.example.org/fhir/identifier/document-id", "value": "p-out"}]})))
        .mount(&fhir)
        .await;
    Mock::given(method("PUT"))
        .and(path("/Task/t-out"))
        .and(header("if-match", "W/\"1\""))
        .respond_with(ResponseTemplate::new(412))
        .mount(&fhir)
        .await;
    Mock::given(method("PUT"))
        .and(path("/Task/t-out"))
        .and(header("if-match", "W/\"2\""))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&fhir)
        .await;
    let cht = MockServer::start().await;
    let view = || path("/medic/_design/medic-client/_view/reports_by_subject");
    Mock::given(method("GET")).and(view()).respond_with(ok(json!({"rows": []}))).up_to_n_times(1).mount(&cht).await;
    let record = json!({"_id": "rec-out", "_rev": "1-a", "type": "data_record", "form": "INTEROP_FOLLOW_UP",
        "fields": {"task_id": "t-out", "patient_uuid": "p-out"}});
    Mock::given(method("GET"))
        .and(view())
        .respond_with(ok(json!({"rows": [{"id": "rec-out", "doc": record}]})))
        .mount(&cht)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v2/records"))
        .respond_with(ok(json!({"success": true, "id": "rec-out"})))
        .mount(&cht)
        .await;
    let app = spawn_app(&[("FHIR_URL", &fhir.uri()), ("CHT_URL", &cht.uri())]).await;
    let task = json!({"resourceType": "Task", "id": "t-out", "status": "requested", "intent": "order", "for": {"reference": "Patient/p-out"}});
    let r = app.http.post(app.url("/fhir/Task")).json(&task).send().await.unwrap();
    let status = r.status();
    assert_eq!(status, 201, "{}", r.text().await.unwrap());
    let puts: Vec<Value> = fhir
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == "PUT")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    let last = puts.last().unwrap();
    assert_eq!(
        (last["status"].as_str(), last["priority"].as_str()),
        (Some("received"), Some("urgent")),
        "both changes kept"
    );
}

/// Medplum validates against the StructureDefinitions uploaded to it and refuses every write that
/// declares one without a `snapshot` — what `fhir-profiles/` before snapshots caused. The refusal
/// is a dead letter that says what to do, not a retry storm and not a 2xx.
#[tokio::test]
async fn a_server_missing_a_profiles_snapshot_refuses_with_a_reason_the_operator_can_act_on() {
    let fhir = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": "invalid", "details": {"text": "No snapshot defined for StructureDefinition 'CHTPatient'"}}]})))
        .expect(1)
        .mount(&fhir)
        .await;
    let app = spawn_app(&[("FHIR_URL", &fhir.uri())]).await;
    let (status, envelope) = post(&app, "/cht/patient", &person("p-snap")).await;
    assert_eq!(status, 202, "{envelope}");
    let letter = &app.state.dead_letters.list(false).unwrap()[0];
    assert!(letter.reason.contains("No snapshot defined for StructureDefinition 'CHTPatient'"), "{}", letter.reason);
}

/// A server like HFS: update-as-create and the `batch` interaction declared.
async fn runs_batches(fhir: &MockServer) {
    let resource = |kind: &str| json!({"type": kind, "updateCreate": true, "conditionalUpdate": true});
    let kinds = ["Patient", "Encounter", "Observation", "Task", "ServiceRequest"];
    Mock::given(method("GET"))
        .and(path("/metadata"))
        .respond_with(ok(json!({"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1",
            "rest": [{"mode": "server", "resource": kinds.map(resource), "interaction": [{"code": "transaction"}, {"code": "batch"}]}]})))
        .mount(fhir)
        .await;
}

/// `POST /` of a batch Bundle answered with `answer`.
async fn mount_batch(fhir: &MockServer, answer: Value) {
    Mock::given(method("POST"))
        .and(path("/"))
        .and(wiremock::matchers::body_partial_json(json!({"type": "batch"})))
        .respond_with(ok(answer))
        .mount(fhir)
        .await;
}

/// `POST /` of a transaction Bundle, echoed as written, expected `times` times.
async fn mount_transactions(fhir: &MockServer, times: u64) {
    Mock::given(method("POST"))
        .and(path("/"))
        .and(wiremock::matchers::body_partial_json(json!({"type": "transaction"})))
        .respond_with(TransactionEcho)
        .expect(times)
        .mount(fhir)
        .await;
}

fn pregnancy_visit(id: &str, patient: &str) -> Value {
    json!({"doc": {"_id": id, "type": "data_record", "form": "pregnancy_home_visit", "reported_date": 1732000000000_i64,
        "fields": {"patient_uuid": patient, "vitals": {"weight": "61.25", "muac": 23.5}, "notes": "ok"}}})
}

#[tokio::test]
async fn a_server_that_runs_batches_reads_a_reports_patient_and_observations_in_one_round_trip() {
    let fhir = MockServer::start().await;
    runs_batches(&fhir).await;
    let stale = json!({"resourceType": "Observation", "id": "obs-stale", "status": "final"});
    mount_batch(&fhir, json!({"resourceType": "Bundle", "type": "batch-response", "entry": [
            {"resource": {"resourceType": "Patient", "id": "p-one-trip"}, "response": {"status": "200 OK"}},
            {"resource": {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": stale, "search": {"mode": "match"}}]},
             "response": {"status": "200 OK"}}]})).await;
    mount_transactions(&fhir, 1).await;
    let app = spawn_app(&[("FHIR_URL", &fhir.uri())]).await;
    let (status, envelope) = post(&app, "/cht/encounter", &pregnancy_visit("r-one-trip", "p-one-trip")).await;
    assert_eq!(status, 200, "{envelope}");
    let calls: Vec<String> = fhir
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() != "/metadata")
        .map(|r| format!("{} {}", r.method, r.url.path()))
        .collect();
    assert_eq!(calls, ["POST /", "POST /"], "one batch of reads, one transaction");
    let batch: Value = serde_json::from_slice(&fhir.received_requests().await.unwrap()[1].body).unwrap();
    let urls: Vec<&str> =
        batch["entry"].as_array().unwrap().iter().map(|e| e["request"]["url"].as_str().unwrap()).collect();
    assert_eq!(urls[0], "Patient/p-one-trip");
    assert!(urls[1].starts_with("Observation?encounter=Encounter%2F"), "{urls:?}");
    // The stale Observation the batch's search found is deleted in the transaction.
    let written: Value = serde_json::from_slice(&fhir.received_requests().await.unwrap()[2].body).unwrap();
    assert!(
        written["entry"].as_array().unwrap().iter().any(|e| e["request"]["url"] == "Observation?_id=obs-stale"),
        "{written}"
    );
    let names: Vec<String> =
        envelope["orchestrations"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap().to_owned()).collect();
    assert!(names.iter().any(|n| n == "FHIR POST batch of 2 reads"), "{names:?}");
}

#[tokio::test]
async fn a_batch_answer_that_does_not_answer_every_read_is_never_acted_on() {
    for (answer, what) in [
        (
            json!({"resourceType": "Bundle", "type": "batch-response", "entry": [
            {"resource": {"resourceType": "Patient", "id": "p-short"}, "response": {"status": "200 OK"}}]}),
            "one entry for two reads",
        ),
        (json!({"resourceType": "Bundle", "type": "transaction-response", "entry": []}), "not a batch-response"),
        (
            json!({"resourceType": "Bundle", "type": "batch-response", "entry": [
            {"resource": {"resourceType": "Patient", "id": "p-short"}, "response": {"status": "200 OK"}},
            {"response": {"status": "500 Internal Server Error"}}]}),
            "the search failed",
        ),
        (
            json!({"resourceType": "Bundle", "type": "batch-response", "entry": [
            {"resource": {"resourceType": "Observation", "id": "o"}, "response": {"status": "200 OK"}},
            {"resource": {"resourceType": "Bundle", "type": "searchset"}, "response": {"status": "200 OK"}}]}),
            "not the Patient read",
        ),
    ] {
        let fhir = MockServer::start().await;
        runs_batches(&fhir).await;
        Mock::given(method("POST"))
            .and(path("/"))
            .and(wiremock::matchers::body_partial_json(json!({"type": "batch"})))
            .respond_with(ok(answer))
            .mount(&fhir)
            .await;
        Mock::given(method("POST"))
            .and(path("/"))
            .and(wiremock::matchers::body_partial_json(json!({"type": "transaction"})))
            .respond_with(TransactionEcho)
            .expect(0)
            .mount(&fhir)
            .await;
        let app = spawn_app(&[("FHIR_URL", &fhir.uri())]).await;
        let (status, envelope) = post(&app, "/cht/encounter", &pregnancy_visit("r-short", "p-short")).await;
        assert_eq!(status, 502, "{what}: {envelope}");
        assert_eq!(envelope["status"], "Failed", "{what}");
        assert!(app.state.dead_letters.list(true).unwrap().is_empty(), "{what}: transient, CHT delivers again");
    }
}

#[tokio::test]
async fn a_patient_the_batch_does_not_find_is_looked_up_by_identifier_as_before() {
    let fhir = MockServer::start().await;
    runs_batches(&fhir).await;
    mount_batch(
        &fhir,
        json!({"resourceType": "Bundle", "type": "batch-response", "entry": [
            {"response": {"status": "404 Not Found"}},
            {"resource": {"resourceType": "Bundle", "type": "searchset"}, "response": {"status": "200 OK"}}]}),
    )
    .await;
    // Registered by the EMR under a server id, known by its short code.
    Mock::given(method("GET"))
        .and(path("/Patient"))
        .and(query_param("identifier", "https://cht.example.org/fhir/identifier/patient-id|10456"))
        .respond_with(ok(json!({"resourceType": "Bundle", "type": "searchset", "entry": [
            {"resource": {"resourceType": "Patient", "id": "srv-77"}}]})))
        .mount(&fhir)
        .await;
    Mock::given(method("GET"))
        .and(path("/Patient"))
        .respond_with(ok(json!({"resourceType": "Bundle", "type": "searchset"})))
        .mount(&fhir)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("^/Patient/"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&fhir)
        .await;
    mount_transactions(&fhir, 1).await;
    let app = spawn_app(&[("FHIR_URL", &fhir.uri())]).await;
    let (status, envelope) = post(&app, "/cht/encounter", &pregnancy_visit("r-code", "10456")).await;
    assert_eq!(status, 200, "{envelope}");
    let written = fhir.received_requests().await.unwrap().into_iter().last().unwrap();
    let written: Value = serde_json::from_slice(&written.body).unwrap();
    assert_eq!(written["entry"][0]["resource"]["subject"]["reference"], "Patient/srv-77", "{written}");
}
