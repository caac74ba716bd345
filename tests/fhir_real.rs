//! Contract tests of the inbound side against the REAL FHIR server (HFS) and the CHT stand-in on
//! pouchdb-server (scripts/stack.sh): idempotent patients under redelivery and concurrency, the
//! exact current set of Observations after a changed redelivery, a report before its patient,
//! referral and LTFU-outcome Tasks, and the FHIR server stopped mid-test.
//!
//! Every test uses fresh ids, so reruns against the same stack do not interfere. The test that
//! stops the FHIR server takes the lock exclusively; the others share it.

mod common;

use std::time::Duration;

use common::{Stack, TestApp, spawn_on_stack, stack, unique};
use serde_json::{Value, json};
use tokio::sync::RwLock;

static FHIR_UP: RwLock<()> = RwLock::const_new(());
const DOC_SYSTEM: &str = "https://cht.example.org/fhir/identifier/document-id";

async fn post(app: &TestApp, path: &str, body: &Value) -> (u16, Value) {
    let r = app.http.post(app.url(path)).json(body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn fhir_get(stack: &Stack, path: &str) -> (u16, Value) {
    stack.fhir_read(path).await
}

async fn fhir_put(stack: &Stack, path: &str, body: &Value) {
    let r = reqwest::Client::new().put(format!("{}/{path}", stack.fhir_url)).json(body).send().await.unwrap();
    assert!(r.status().is_success(), "PUT {path}: {}", r.status());
}

/// `POST [type]`: the server gives the id (every server allows that; not every one a client id).
async fn fhir_create(stack: &Stack, resource: &Value) -> String {
    let kind = resource["resourceType"].as_str().unwrap();
    let r = reqwest::Client::new().post(format!("{}/{kind}", stack.fhir_url)).json(resource).send().await.unwrap();
    assert_eq!(r.status(), 201, "POST {kind}");
    let created: Value = r.json().await.unwrap();
    created["id"].as_str().unwrap().to_owned()
}

async fn search(stack: &Stack, query: &str) -> Vec<Value> {
    let (status, bundle) = fhir_get(stack, query).await;
    assert_eq!(status, 200, "{query}: {bundle}");
    common::bundle_resources(&bundle)
}

/// The one `kind` the server has with `system|value` (whatever id it gave it: the tests run in
/// both write modes).
async fn only(stack: &Stack, kind: &str, system: &str, value: &str) -> Value {
    let found = search(stack, &format!("{kind}?identifier={system}|{value}")).await;
    assert_eq!(found.len(), 1, "exactly one {kind} {value}: {found:?}");
    found.into_iter().next().unwrap()
}

async fn count(stack: &Stack, kind: &str, system: &str, value: &str) -> usize {
    search(stack, &format!("{kind}?identifier={system}|{value}")).await.len()
}

/// The Observations of report `report`'s Encounter.
async fn observations_of(stack: &Stack, report: &str) -> Vec<Value> {
    let encounters = search(stack, &format!("Encounter?identifier={DOC_SYSTEM}|{report}")).await;
    let Some(encounter) = encounters.first() else { return Vec::new() };
    search(stack, &format!("Observation?encounter=Encounter/{}", encounter["id"].as_str().unwrap())).await
}

fn person(id: &str, name: &str) -> Value {
    json!({"doc": {"_id": id, "type": "person", "name": name, "sex": "female", "date_of_birth": "1990-05-12",
        "phone": "+254700000001", "patient_id": id.split('-').nth(1).unwrap_or("1"), "parent": {"_id": "hh-1"}}})
}

fn visit(report: &str, patient: &str, weight: &str, notes: Option<&str>) -> Value {
    let mut fields = json!({"patient_uuid": patient, "vitals": {"weight": weight, "muac": 23.5}, "pregnancy": {"weeks_pregnant": "24"}});
    if let Some(n) = notes {
        fields["notes"] = json!(n);
    }
    json!({"doc": {"_id": report, "type": "data_record", "form": "pregnancy_home_visit", "reported_date": 1732000000000_i64, "fields": fields}})
}

#[tokio::test]
async fn a_patient_delivered_again_and_again_and_concurrently_is_one_patient() {
    let Some(stack) = stack() else { return };
    let _up = FHIR_UP.read().await;
    let app = spawn_on_stack(&stack).await;
    let id = unique("pat");
    for _ in 0..10 {
        assert_eq!(post(&app, "/cht/patient", &person(&id, "Amina Njeri")).await.0 / 100, 2);
    }
    let concurrent = (0..20).map(|_| {
        let (http, url, body) = (app.http.clone(), app.url("/cht/patient"), person(&id, "Amina Njeri"));
        tokio::spawn(async move { http.post(url).json(&body).send().await.unwrap().status().as_u16() })
    });
    for status in futures_join(concurrent).await {
        assert_eq!(status / 100, 2, "a concurrent duplicate failed with {status}");
    }
    let patient = only(&stack, "Patient", DOC_SYSTEM, &id).await;
    assert!(patient["meta"]["versionId"].as_str().unwrap().parse::<u32>().unwrap() >= 1);
    assert_eq!(patient["name"][0]["family"], "Njeri");
}

/// Twenty copies of one report at once, from two mediator replicas that share nothing (no
/// in-process lock covers them): one Encounter, its Observations once each.
#[tokio::test]
async fn a_report_delivered_concurrently_by_two_replicas_is_one_encounter() {
    let Some(stack) = stack() else { return };
    let _up = FHIR_UP.read().await;
    let replicas = [spawn_on_stack(&stack).await, spawn_on_stack(&stack).await];
    let (patient, report) = (unique("pat"), unique("rep"));
    assert_eq!(post(&replicas[0], "/cht/patient", &person(&patient, "Mary Wanjiru")).await.0 / 100, 2);
    let copies = (0..20).map(|i| {
        let app = &replicas[i % 2];
        let (http, url, body) =
            (app.http.clone(), app.url("/cht/encounter"), visit(&report, &patient, "61.25", Some("n")));
        tokio::spawn(async move { http.post(url).json(&body).send().await.unwrap().status().as_u16() })
    });
    for status in futures_join(copies).await {
        assert_eq!(status, 200, "a concurrent copy failed with {status}");
    }
    assert_eq!(count(&stack, "Encounter", DOC_SYSTEM, &report).await, 1);
    let observations = observations_of(&stack, &report).await;
    assert_eq!(observations.len(), 4, "weight, muac, weeks, notes — once each: {observations:?}");
}

async fn futures_join(handles: impl Iterator<Item = tokio::task::JoinHandle<u16>>) -> Vec<u16> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn a_redelivered_report_leaves_exactly_the_current_observations() {
    let Some(stack) = stack() else { return };
    let _up = FHIR_UP.read().await;
    let app = spawn_on_stack(&stack).await;
    let (patient, report) = (unique("pat"), unique("rep"));
    assert_eq!(post(&app, "/cht/patient", &person(&patient, "Grace Akinyi")).await.0 / 100, 2);
    let observations = || observations_of(&stack, &report);

    for _ in 0..3 {
        let (status, body) =
            post(&app, "/cht/encounter", &visit(&report, &patient, "61.25", Some("first visit"))).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(observations().await.len(), 4, "weight, muac, weeks, notes — once each");
    assert_eq!(search(&stack, &format!("Encounter?identifier={DOC_SYSTEM}|{report}")).await.len(), 1);

    // The CHW edits the report: weight corrected, notes removed (sent as OpenHIM would, to see
    // the calls made).
    let r = app
        .http
        .post(app.url("/cht/encounter"))
        .header("X-OpenHIM-TransactionID", unique("tx"))
        .json(&visit(&report, &patient, "62.5", None))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let envelope: Value = r.json().await.unwrap();
    let calls: Vec<&str> =
        envelope["orchestrations"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
    // With client ids on a server that runs batches (HFS, HAPI), the patient and the Encounter's
    // Observations are read in one batch: two round trips in all, the transaction the second.
    let (_, metadata) = fhir_get(&stack, "metadata").await;
    let batches = metadata["rest"][0]["interaction"].as_array().into_iter().flatten().any(|i| i["code"] == "batch");
    let mode = std::env::var("TEST_FHIR_WRITE_MODE").unwrap_or_default();
    let client_ids = mode == "client-ids" || ((mode.is_empty() || mode == "auto") && stack.fhir_service == "hfs");
    if batches && client_ids {
        assert_eq!(calls, ["FHIR POST batch of 2 reads", "FHIR POST transaction"], "{envelope}");
    } else {
        assert!(calls.len() >= 3 && !calls.iter().any(|c| c.contains("batch")), "{calls:?}");
    }
    let current = observations().await;
    assert_eq!(current.len(), 3, "the removed answer does not linger: {current:?}");
    let weight = current.iter().find(|o| o["code"]["coding"][0]["code"] == "29463-7").unwrap();
    assert_eq!(weight["valueQuantity"]["value"].to_string(), "62.5");
    assert!(current.iter().all(|o| o["valueString"].is_null()));
}

#[tokio::test]
async fn a_report_before_its_patient_ends_with_both() {
    let Some(stack) = stack() else { return };
    let _up = FHIR_UP.read().await;
    let app = spawn_on_stack(&stack).await;
    let (patient, report) = (unique("pat"), unique("rep"));
    // The person is in CHT only (its own push has not come yet).
    let doc = person(&patient, "Ngũgĩ wa Thiong'o")["doc"].clone();
    let put = reqwest::Client::new()
        .put(format!("{}/medic/{patient}", stack.cht_url))
        .basic_auth(&stack.couch_user, Some(&stack.couch_password))
        .json(&doc)
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    assert_eq!(count(&stack, "Patient", DOC_SYSTEM, &patient).await, 0);

    let (status, body) = post(&app, "/cht/encounter", &visit(&report, &patient, "55", None)).await;
    assert_eq!(status, 200, "{body}");
    let fetched = only(&stack, "Patient", DOC_SYSTEM, &patient).await;
    assert_eq!(fetched["name"][0]["text"], "Ngũgĩ wa Thiong'o");
    let encounter = only(&stack, "Encounter", DOC_SYSTEM, &report).await;
    assert_eq!(encounter["subject"]["reference"], format!("Patient/{}", fetched["id"].as_str().unwrap()));

    // The person's own push arriving later changes nothing but the version.
    assert_eq!(post(&app, "/cht/patient", &person(&patient, "Ngũgĩ wa Thiong'o")).await.0 / 100, 2);
    assert_eq!(search(&stack, &format!("Patient?identifier={DOC_SYSTEM}|{patient}")).await.len(), 1);

    // A report whose patient CHT does not know either: 503, so CHT delivers again later.
    let (status, _) = post(&app, "/cht/encounter", &visit(&unique("rep"), &unique("ghost"), "50", None)).await;
    assert_eq!(status, 503);
}

#[tokio::test]
async fn referral_creates_one_task_and_redelivery_keeps_its_progress() {
    let Some(stack) = stack() else { return };
    let _up = FHIR_UP.read().await;
    let app = spawn_on_stack(&stack).await;
    let (patient, report) = (unique("pat"), unique("ref"));
    assert_eq!(post(&app, "/cht/patient", &person(&patient, "Kwame Mensah")).await.0 / 100, 2);
    let referral = json!({"doc": {"_id": report, "type": "data_record", "form": "referral", "reported_date": 1732000000000_i64,
        "fields": {"patient_uuid": patient, "referral": {"reason": "Fast breathing", "urgency": "emergency"}}}});
    assert_eq!(post(&app, "/cht/encounter", &referral).await.0, 200);
    let tasks = search(&stack, &format!("Task?identifier={DOC_SYSTEM}|{report}")).await;
    assert_eq!(tasks.len(), 1);
    let mut task = tasks[0].clone();
    assert_eq!(
        (task["status"].as_str(), task["intent"].as_str(), task["priority"].as_str()),
        (Some("requested"), Some("order"), Some("stat"))
    );

    // The facility accepts it; CHT redelivers the referral: the Task stays accepted, and single.
    task["status"] = json!("accepted");
    fhir_put(&stack, &format!("Task/{}", task["id"].as_str().unwrap()), &task).await;
    assert_eq!(post(&app, "/cht/encounter", &referral).await.0, 200);
    let tasks = search(&stack, &format!("Task?identifier={DOC_SYSTEM}|{report}")).await;
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["status"], "accepted");
}

#[tokio::test]
async fn the_follow_up_outcome_closes_its_task_with_the_encounter_as_output() {
    let Some(stack) = stack() else { return };
    let _up = FHIR_UP.read().await;
    let app = spawn_on_stack(&stack).await;
    let (patient, record, report) = (unique("pat"), unique("rec"), unique("fu"));
    assert_eq!(post(&app, "/cht/patient", &person(&patient, "Brian Otieno")).await.0 / 100, 2);
    let patient_id = only(&stack, "Patient", DOC_SYSTEM, &patient).await["id"].as_str().unwrap().to_owned();
    // The requester: an Organization whose Endpoint is a receiver standing in for the EMR.
    let receiver = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let endpoint = fhir_create(&stack, &json!({"resourceType": "Endpoint", "status": "active",
        "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "hl7-fhir-rest"},
        "payloadType": [{"text": "Task"}], "address": format!("{}/fhir-callback", receiver.uri())}))
    .await;
    let org = fhir_create(
        &stack,
        &json!({"resourceType": "Organization", "name": "Kondele clinic", "endpoint": [{"reference": format!("Endpoint/{endpoint}")}]}),
    )
    .await;
    // The LTFU Task as the outbound side leaves it: received, with the CHT follow-up record id.
    let task = json!({"resourceType": "Task", "status": "received", "intent": "order",
        "requester": {"reference": format!("Organization/{org}")},
        "identifier": [{"system": DOC_SYSTEM, "value": record}],
        "meta": {"profile": ["http://cht-fhir-mediator.org/fhir/StructureDefinition/cht-task"]},
        "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
        "for": {"reference": format!("Patient/{patient_id}")}, "authoredOn": "2026-11-01T08:00:00Z"});
    let task_id = fhir_create(&stack, &task).await;
    let outcome = json!({"doc": {"_id": report, "type": "data_record", "form": "interop_follow_up", "reported_date": 1732100000000_i64,
        "fields": {"patient_uuid": patient, "inputs": {"source": "task", "source_id": record},
            "follow_up": {"patient_found": "yes", "outcome": "returned_to_care"}}}});
    for _ in 0..2 {
        let (status, body) = post(&app, "/cht/encounter", &outcome).await;
        assert_eq!(status, 200, "{body}");
    }
    let (_, closed) = fhir_get(&stack, &format!("Task/{task_id}")).await;
    assert_eq!(closed["status"], "completed");
    let encounter = only(&stack, "Encounter", DOC_SYSTEM, &report).await;
    assert_eq!(
        closed["output"][0]["valueReference"]["reference"],
        format!("Encounter/{}", encounter["id"].as_str().unwrap())
    );
    assert_eq!(closed["businessStatus"]["text"], "returned_to_care");
    // The CHW's phone reported (2024-11-20) before the Task was authored (2026-11-01): Task's inv-1
    // (lastModified >= authoredOn, which a validating HAPI enforces) keeps the later time.
    assert_eq!(closed["lastModified"], closed["authoredOn"]);
    assert_eq!(search(&stack, &format!("Task?identifier={DOC_SYSTEM}|{record}")).await.len(), 1);

    // The requester hears of it once, although the outcome was delivered twice.
    let calls = common::eventually(Duration::from_secs(10), "the requester callback", || async {
        let calls = receiver.received_requests().await.unwrap_or_default();
        (!calls.is_empty()).then_some(calls)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received_requests().await.unwrap().len(), 1, "one callback");
    assert_eq!(calls[0].url.path(), "/fhir-callback");
    let sent: Value = serde_json::from_slice(&calls[0].body).unwrap();
    assert_eq!((sent["id"].as_str(), sent["status"].as_str()), (Some(task_id.as_str()), Some("completed")));
}

#[tokio::test]
async fn with_the_fhir_server_down_the_answer_is_503_and_redelivery_completes_the_data() {
    let Some(stack) = stack() else { return };
    let _down = FHIR_UP.write().await;
    let app = spawn_on_stack(&stack).await;
    let (patient, report) = (unique("pat"), unique("rep"));
    assert_eq!(post(&app, "/cht/patient", &person(&patient, "Otieno Ouma")).await.0 / 100, 2);

    let stop = std::process::Command::new(&stack.script).args(["down", stack.fhir_service.as_str()]).status().unwrap();
    assert!(stop.success());
    let (status, _) = post(&app, "/cht/encounter", &visit(&report, &patient, "70", Some("n"))).await;
    let restart = std::process::Command::new(&stack.script).args(["up", stack.fhir_service.as_str()]).status().unwrap();
    assert!(restart.success());
    assert_eq!(status, 503, "FHIR down is transient");
    assert!(app.state.dead_letters.list(true).unwrap().is_empty());
    assert_eq!(count(&stack, "Encounter", DOC_SYSTEM, &report).await, 0, "nothing half-written");

    // CHT's retries after the restart complete it (a JVM server just started may be too slow for
    // the first: that answer is transient too), and the patient written before survived.
    common::eventually(Duration::from_secs(60), "a retry to complete the report", || async {
        let (status, body) = post(&app, "/cht/encounter", &visit(&report, &patient, "70", Some("n"))).await;
        assert!(status == 200 || status >= 502, "{status}: {body}");
        (status == 200).then_some(())
    })
    .await;
    assert_eq!(observations_of(&stack, &report).await.len(), 4);
    assert_eq!(count(&stack, "Patient", DOC_SYSTEM, &patient).await, 1);
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[tokio::test]
async fn the_reference_paths_accept_ready_made_fhir_idempotently() {
    let Some(stack) = stack() else { return };
    let _up = FHIR_UP.read().await;
    let app = spawn_on_stack(&stack).await;
    let id = unique("ready");
    let patient = json!({"resourceType": "Patient", "id": id, "name": [{"text": "Ready Made"}],
        "identifier": [{"type": {"text": "CHT Document ID"}, "value": id}]});
    let (first, _) = post(&app, "/patient", &patient).await;
    let (second, _) = post(&app, "/patient", &patient).await;
    assert_eq!((first, second), (201, 200));
    // One Patient (a server may keep the version of an update that changes nothing: HAPI does).
    let version = only(&stack, "Patient", DOC_SYSTEM, &id).await["meta"]["versionId"].clone();
    // A CHT push that can never be written: a dead letter naming the element (CHT would retry a
    // 400 for ever), refused before the FHIR server sees it.
    let (status, body) = post(&app, "/patient", &json!({"resourceType": "Patient", "id": id, "gender": 7})).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["issue"][0]["expression"][0], "Patient.gender");
    assert_eq!(only(&stack, "Patient", DOC_SYSTEM, &id).await["meta"]["versionId"], version, "nothing written");
}
