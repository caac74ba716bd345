//! The follow-up endpoint's idempotency against the REAL FHIR server and the CHT stand-in (no
//! OpenHIM in between): 10 concurrent copies and a retry after a crash between "CHT record
//! created" and "Task received" each leave one ServiceRequest, one Task and ONE CHT record.
//! Also the records API's failure answers, with wiremock as CHT.

mod common;

use common::{Stack, TestApp, spawn_on_stack, stack, unique};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const DOC_SYSTEM: &str = "https://cht.example.org/fhir/identifier/document-id";

/// The tests that load the FHIR server with concurrent transactions, and the one that tells a
/// CHT timeout from a FHIR one, run alone: on a 2-core machine ten transactions at once on HFS's
/// SQLite took the crash test's own FHIR write past its 5 s timeout.
static LOAD: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

fn service_request(patient: &str, order: &str) -> Value {
    json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "identifier": [{"system": "https://emr.example.org/orders", "value": order}],
        "subject": {"reference": format!("Patient/{patient}")}, "reasonCode": [{"text": "Missed visit"}]})
}

async fn new_patient(stack: &Stack, app: &TestApp) -> String {
    let id = unique("pat");
    let person = json!({"doc": {"_id": id, "type": "person", "name": "Wanjiku Kamau", "sex": "female"}});
    let r = app.http.post(app.url("/cht/patient")).json(&person).send().await.unwrap();
    assert!(r.status().is_success());
    let _ = stack;
    id
}

/// The follow-up records of `patient` naming Task `task_id`. By patient too: the stack's CHT is
/// shared by the suites of every FHIR server, and servers that assign ids in sequence (HAPI)
/// give Tasks of two runs the same id (a hapistrict run counted a `hapi` run's record).
async fn records_for(stack: &Stack, patient: &str, task_id: &str) -> Vec<Value> {
    let records = stack.cht_records("INTEROP_FOLLOW_UP", "task_id", task_id).await;
    records.into_iter().filter(|r| r["fields"]["patient_uuid"] == patient).collect()
}

#[tokio::test]
async fn ten_concurrent_copies_make_one_service_request_one_task_and_one_cht_record() {
    let Some(stack) = stack() else { return };
    let _load = LOAD.write().await;
    let app = spawn_on_stack(&stack).await;
    let (patient, order) = (new_patient(&stack, &app).await, unique("ORD"));
    // Released together, so the copies really overlap.
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(10));
    let copies: Vec<_> = (0..10)
        .map(|_| {
            let (http, url, body, barrier) =
                (app.http.clone(), app.url("/fhir/ServiceRequest"), service_request(&patient, &order), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let r = http.post(url).json(&body).send().await.unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for copy in copies {
        answers.push(copy.await.unwrap());
    }
    assert_eq!(
        answers.iter().filter(|(s, _)| *s == 201).count(),
        1,
        "one copy did the work: {:?} (the first said {})",
        answers.iter().map(|a| a.0).collect::<Vec<_>>(),
        answers[0].1
    );
    assert!(answers.iter().all(|(s, t)| (*s == 200 || *s == 201) && t["status"] == "received"), "{answers:?}");
    let task_id = answers[0].1["id"].as_str().unwrap().to_owned();
    assert!(answers.iter().all(|(_, t)| t["id"] == task_id.as_str()));
    assert_eq!(records_for(&stack, &patient, &task_id).await.len(), 1, "ONE CHT record");
    assert_eq!(stack.fhir_count(&format!("ServiceRequest?identifier=https://emr.example.org/orders|{order}")).await, 1);
    let record =
        answers[0].1["identifier"].as_array().unwrap().iter().find(|i| i["system"] == DOC_SYSTEM).unwrap()["value"]
            .clone();
    assert_eq!(stack.fhir_count(&format!("Task?identifier={DOC_SYSTEM}|{}", record.as_str().unwrap())).await, 1);
}

#[tokio::test]
async fn a_retry_after_a_crash_between_the_cht_record_and_the_task_update_makes_no_second_record() {
    let Some(stack) = stack() else { return };
    let _load = LOAD.write().await;
    let app = spawn_on_stack(&stack).await;
    let (patient, order) = (new_patient(&stack, &app).await, unique("ORD"));
    let request = service_request(&patient, &order);
    // What a crash leaves: the record made in CHT, its answer lost (held by a proxy for 30 s; the
    // mediator gives up after 5 — its CHT calls that are not held have that long even on a loaded
    // machine), the Task still `requested` in FHIR.
    let proxy_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let _proxy = common::Killed(
        std::process::Command::new("node")
            .args(["tests/support/slow-proxy.mjs", &stack.cht_url, &proxy_port.to_string(), "30000", "/api/v2/records"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    common::eventually(std::time::Duration::from_secs(10), "the proxy to listen", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", proxy_port)).await.ok().map(drop)
    })
    .await;
    let cht_via_proxy = format!("http://127.0.0.1:{proxy_port}");
    let crashing =
        common::spawn_on_stack_with(&stack, &[("CHT_URL", &cht_via_proxy), ("CHT_TIMEOUT_MS", "5000")]).await;
    let r = crashing.http.post(crashing.url("/fhir/ServiceRequest")).json(&request).send().await.unwrap();
    let status = r.status();
    assert_eq!(status, 504, "the mediator gave up on CHT's answer: {}", r.text().await.unwrap_or_default());
    // The record names the Task by its FHIR id (the server's, with conditional writes).
    let parsed = cht_fhir_mediator::conversions::follow_up::parse_request(&request).unwrap();
    let key = cht_fhir_mediator::fhir::store::KEY_SYSTEM;
    let tasks =
        common::bundle_resources(&stack.fhir_read(&format!("Task?identifier={key}|{}", parsed.task_id)).await.1);
    assert_eq!(tasks.len(), 1, "the Task was written before CHT was called");
    assert_eq!(tasks[0]["status"], "requested");
    let task_id = tasks[0]["id"].as_str().unwrap().to_owned();
    let made = common::eventually(std::time::Duration::from_secs(10), "the record made in CHT", || async {
        let made = records_for(&stack, &patient, &task_id).await;
        (!made.is_empty()).then_some(made)
    })
    .await;
    assert_eq!(made.len(), 1, "the record was made although its answer was lost");

    // The requester sends again.
    let r = app.http.post(app.url("/fhir/ServiceRequest")).json(&request).send().await.unwrap();
    assert!(r.status() == 200 || r.status() == 201, "{}", r.status());
    let task: Value = r.json().await.unwrap();
    assert_eq!(task["status"], "received");
    assert_eq!(task["id"], task_id.as_str());
    let records = records_for(&stack, &patient, &task_id).await;
    assert_eq!(records.len(), 1, "the retry found the record instead of making another");
    assert_eq!(
        task["identifier"].as_array().unwrap().iter().find(|i| i["system"] == DOC_SYSTEM).unwrap()["value"],
        made[0]["_id"]
    );
}

#[tokio::test]
async fn a_request_for_a_patient_fhir_does_not_have_gets_422_naming_the_subject() {
    let Some(stack) = stack() else { return };
    let _load = LOAD.read().await;
    let app = spawn_on_stack(&stack).await;
    let r = app
        .http
        .post(app.url("/service-request"))
        .json(&service_request(&unique("nobody"), &unique("ORD")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let outcome: Value = r.json().await.unwrap();
    assert_eq!(outcome["issue"][0]["expression"][0], "ServiceRequest.subject");
    let r = app.http.post(app.url("/fhir/Task")).json(&json!({"resourceType": "Task", "status": "requested", "intent": "proposal", "for": {"reference": "Patient/x"}})).send().await.unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn records_api_answers_without_success_are_failures_and_the_task_stays_requested() {
    let Some(stack) = stack() else { return };
    let _load = LOAD.read().await;
    for (answer, label) in [
        (
            ResponseTemplate::new(200).set_body_json(json!({"success": false, "errors": ["patient_uuid is required"]})),
            "200 without success",
        ),
        (
            ResponseTemplate::new(500).set_body_json(
                json!({"code": 500, "error": "Server error", "details": "Form not found: INTEROP_FOLLOW_UP"}),
            ),
            "unknown form",
        ),
        (ResponseTemplate::new(503), "CHT overloaded"),
    ] {
        let cht = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path_regex("^/medic/_design/medic-client/_view/"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"rows": []})))
            .mount(&cht)
            .await;
        Mock::given(method("POST")).and(path("/api/v2/records")).respond_with(answer).mount(&cht).await;
        let real = spawn_on_stack(&stack).await;
        let patient = new_patient(&stack, &real).await;
        let app = common::spawn_on_stack_with(&stack, &[("CHT_URL", &cht.uri())]).await;
        let request = service_request(&patient, &unique("ORD"));
        let r = app.http.post(app.url("/fhir/ServiceRequest")).json(&request).send().await.unwrap();
        assert_eq!(r.status(), 502, "{label}");
        let task_id = cht_fhir_mediator::conversions::follow_up::parse_request(&request).unwrap().task_id;
        // By its key, not its id: with server-assigned ids (conditional mode) they differ.
        let key = cht_fhir_mediator::fhir::store::KEY_SYSTEM;
        let tasks = common::bundle_resources(&stack.fhir_read(&format!("Task?identifier={key}|{task_id}")).await.1);
        assert_eq!(tasks.len(), 1, "{label}: one Task");
        assert_eq!(tasks[0]["status"], "requested", "{label}: left for a retry to complete");
    }
}

async fn record(stack: &Stack, form: &str, external_id: &str) -> Vec<Value> {
    stack.cht_records(form, "external_id", external_id).await
}

/// A new CHT place (a CHW area) and an outbound mapping file placing patients there by default.
async fn area_with_mapping(stack: &Stack) -> (String, std::path::PathBuf) {
    let area = unique("area");
    let r = reqwest::Client::new()
        .put(format!("{}/medic/{area}", stack.cht_url))
        .basic_auth(&stack.couch_user, Some(&stack.couch_password))
        .json(&json!({"type": "health_center", "name": "CHW area"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let mut mapping: Value =
        serde_json::from_str(&std::fs::read_to_string("mediator-config/outbound.json").unwrap()).unwrap();
    mapping["default_place_id"] = json!(area);
    let file = std::env::temp_dir().join(format!("{area}.json"));
    std::fs::write(&file, mapping.to_string()).unwrap();
    (area, file)
}

fn new_phone() -> String {
    format!("+2547{}", &uuid::Uuid::new_v4().as_u128().to_string()[..8])
}

/// The CHT contacts `contacts-by-phone` finds for `phone` (as an admin asks).
async fn contacts_by_phone(stack: &Stack, phone: &str) -> Vec<Value> {
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/contacts-by-phone?phone={}", stack.cht_url, phone.replace('+', "%2B")))
        .basic_auth(&stack.couch_user, Some(&stack.couch_password))
        .send()
        .await
        .unwrap();
    r.json::<Value>().await.unwrap()["docs"].as_array().cloned().unwrap_or_default()
}

/// POSTs each of `bodies` to `path`, the i-th to `replicas[i % replicas.len()]`, all released
/// together so that the copies really overlap; the answers in order.
async fn at_once(replicas: &[TestApp], path: &str, bodies: Vec<Value>) -> Vec<(u16, Value)> {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(bodies.len()));
    let copies: Vec<_> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| {
            let app = &replicas[i % replicas.len()];
            let (http, url, barrier) = (app.http.clone(), app.url(path), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let r = http.post(url).json(&body).send().await.unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
            })
        })
        .collect();
    let mut answers = Vec::new();
    for copy in copies {
        answers.push(copy.await.unwrap());
    }
    answers
}

/// The CHT document identifiers of a FHIR Patient.
fn links(patient: &Value) -> Vec<String> {
    let list = patient["identifier"].as_array().cloned().unwrap_or_default();
    list.iter().filter(|i| i["system"] == DOC_SYSTEM).filter_map(|i| i["value"].as_str().map(str::to_owned)).collect()
}

#[tokio::test]
async fn a_patient_from_another_system_becomes_one_cht_contact_from_json_or_xml() {
    let Some(stack) = stack() else { return };
    let _load = LOAD.read().await;
    let (area, mapping) = area_with_mapping(&stack).await;
    let app = common::spawn_on_stack_with(&stack, &[("OUTBOUND_MAPPINGS_FILE", mapping.to_str().unwrap())]).await;
    let (mrn, phone) = (unique("mrn"), new_phone());
    let xml = format!(
        r#"<Patient xmlns="http://hl7.org/fhir"><identifier><system value="https://emr.example.org/mrn"/><value value="{mrn}"/></identifier>
        <name><given value="Amina"/><family value="Njeri"/></name>
        <telecom><system value="phone"/><value value="{phone}"/></telecom><gender value="female"/><birthDate value="1990-05-12"/></Patient>"#
    );
    let post_xml = || async {
        let r = app
            .http
            .post(app.url("/fhir/Patient"))
            .header("content-type", "application/fhir+xml")
            .body(xml.clone())
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    let (status, first) = post_xml().await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["resourceType"], "Patient");
    let contact = links(&first);
    assert_eq!(contact.len(), 1, "the answer is the Patient linked to its CHT contact: {first}");
    let (status, again) = post_xml().await;
    assert_eq!((status, &again["id"], links(&again)), (200, &first["id"], contact.clone()), "a resend finds both");
    let json_copy = json!({"resourceType": "Patient", "name": [{"given": ["Amina"], "family": "Njeri"}],
        "identifier": [{"system": "https://emr.example.org/mrn", "value": mrn}]});
    let r = app.http.post(app.url("/fhir/Patient")).json(&json_copy).send().await.unwrap();
    assert_eq!(r.status(), 200);

    let stored = stack.fhir_count(&format!("Patient?identifier=https://emr.example.org/mrn|{mrn}")).await;
    assert_eq!(stored, 1, "one FHIR Patient");
    let found = contacts_by_phone(&stack, &phone).await;
    assert_eq!(found.len(), 1, "one CHT contact: {found:?}");
    let person = &found[0];
    assert_eq!(person["_id"], contact[0].as_str());
    assert_eq!(
        (person["name"].as_str(), person["sex"].as_str(), person["date_of_birth"].as_str()),
        (Some("Amina Njeri"), Some("female"), Some("1990-05-12"))
    );
    assert_eq!(person["parent"]["_id"], area.as_str());
    assert_eq!(person["fhir_identifiers"][0]["value"], mrn.as_str(), "the contact carries the MRN back");

    // Her sister shares the phone: another person, another contact.
    let sister = json!({"resourceType": "Patient", "name": [{"text": "Grace Njeri"}], "birthDate": "1994-02-01",
        "identifier": [{"system": "https://emr.example.org/mrn", "value": unique("mrn")}],
        "telecom": [{"system": "phone", "value": phone}]});
    let r = app.http.post(app.url("/fhir/Patient")).json(&sister).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let sister_contact = links(&r.json::<Value>().await.unwrap());
    assert_eq!(sister_contact.len(), 1);
    assert_ne!(sister_contact, contact);
    assert_eq!(contacts_by_phone(&stack, &phone).await.len(), 2);

    let homeless = json!({"resourceType": "Patient", "name": [{"text": "No Place"}],
        "identifier": [{"system": "https://emr.example.org/mrn", "value": unique("mrn")}],
        "managingOrganization": {"reference": "Organization/nowhere"}});
    let plain = spawn_on_stack(&stack).await;
    let r = plain.http.post(plain.url("/fhir/Patient")).json(&homeless).send().await.unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await.unwrap()["issue"][0]["expression"][0], "Patient.managingOrganization");
    let mrn = homeless["identifier"][0]["value"].as_str().unwrap();
    assert_eq!(stack.fhir_count(&format!("Patient?identifier=https://emr.example.org/mrn|{mrn}")).await, 0);
    let anonymous = json!({"resourceType": "Patient", "name": [{"text": "Nobody Known"}]});
    let r = app.http.post(app.url("/fhir/Patient")).json(&anonymous).send().await.unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await.unwrap()["issue"][0]["expression"][0], "Patient.identifier");
    let r = app
        .http
        .post(app.url("/fhir/Patient"))
        .header("content-type", "application/fhir+xml")
        .body("<Patient xmlns=\"http://hl7.org/fhir\"><nmae/></Patient>")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn a_patient_the_chw_registered_first_is_found_by_phone_name_and_birth_date() {
    let Some(stack) = stack() else { return };
    let _load = LOAD.read().await;
    let (area, mapping) = area_with_mapping(&stack).await;
    let app = common::spawn_on_stack_with(&stack, &[("OUTBOUND_MAPPINGS_FILE", mapping.to_str().unwrap())]).await;
    let (phone, chw_made) = (new_phone(), unique("chw-made"));
    let r = reqwest::Client::new()
        .put(format!("{}/medic/{chw_made}", stack.cht_url))
        .basic_auth(&stack.couch_user, Some(&stack.couch_password))
        .json(&json!({"type": "person", "name": "Otieno Baraka", "phone": phone, "date_of_birth": "1985-07-30",
            "parent": {"_id": area}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let patient = json!({"resourceType": "Patient", "name": [{"given": ["Otieno"], "family": "Baraka"}],
        "birthDate": "1985-07-30", "identifier": [{"system": "https://emr.example.org/mrn", "value": unique("mrn")}],
        "telecom": [{"system": "phone", "value": phone}]});
    let r = app.http.post(app.url("/fhir/Patient")).json(&patient).send().await.unwrap();
    assert_eq!(r.status(), 201, "the Patient is new to the FHIR server");
    assert_eq!(
        links(&r.json::<Value>().await.unwrap()),
        std::slice::from_ref(&chw_made),
        "linked to the CHW's contact"
    );
    assert_eq!(contacts_by_phone(&stack, &phone).await.len(), 1, "no second contact");
}

#[tokio::test]
async fn ten_concurrent_registrations_of_one_patient_make_one_fhir_patient_and_one_cht_contact() {
    let Some(stack) = stack() else { return };
    let _load = LOAD.write().await;
    let (_, mapping) = area_with_mapping(&stack).await;
    let env = [
        ("OUTBOUND_MAPPINGS_FILE", mapping.to_str().unwrap()),
        ("FHIR_TIMEOUT_MS", "20000"),
        ("REQUEST_TIMEOUT_MS", "30000"),
    ];
    let replicas = [common::spawn_on_stack_with(&stack, &env).await, common::spawn_on_stack_with(&stack, &env).await];
    let (mrn, phone) = (unique("mrn"), new_phone());
    let patient = json!({"resourceType": "Patient", "name": [{"given": ["Akinyi"], "family": "Otieno"}],
        "identifier": [{"system": "https://emr.example.org/mrn", "value": mrn}],
        "telecom": [{"system": "phone", "value": phone}]});
    let answers = at_once(&replicas, "/fhir/Patient", vec![patient; 10]).await;
    assert!(answers.iter().all(|(s, _)| *s == 200 || *s == 201), "{answers:?}");
    let ids: std::collections::BTreeSet<String> = answers.iter().map(|(_, p)| p["id"].to_string()).collect();
    assert_eq!(ids.len(), 1, "every copy answers the same Patient: {answers:?}");
    let found = common::bundle_resources(
        &stack.fhir_read(&format!("Patient?identifier=https://emr.example.org/mrn|{mrn}")).await.1,
    );
    assert_eq!(found.len(), 1, "one FHIR Patient: {found:?}");
    assert_eq!(links(&found[0]).len(), 1, "linked once: {}", found[0]);
    let contacts = contacts_by_phone(&stack, &phone).await;
    assert_eq!(contacts.len(), 1, "one CHT contact: {contacts:?}");
    assert_eq!(contacts[0]["_id"].as_str(), Some(links(&found[0])[0].as_str()));
}

#[tokio::test]
async fn an_encounter_bundle_becomes_one_cht_record_with_fields_named_by_the_observation_codes() {
    let Some(stack) = stack() else { return };
    let _load = LOAD.read().await;
    let app = spawn_on_stack(&stack).await;
    let patient = new_patient(&stack, &app).await;
    let encounter = unique("enc");
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:7d0b0f3e-1111-4a5e-9c1d-000000000001", "resource": {"resourceType": "Encounter", "id": encounter, "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}, "subject": {"reference": format!("Patient/{patient}")}},
         "request": {"method": "PUT", "url": format!("Encounter/{encounter}")}},
        {"resource": {"resourceType": "Observation", "status": "final", "encounter": {"reference": "urn:uuid:7d0b0f3e-1111-4a5e-9c1d-000000000001"},
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]}, "valueQuantity": {"value": 58.5, "unit": "kg"}},
         "request": {"method": "POST", "url": "Observation"}},
        {"resource": {"resourceType": "Observation", "status": "final", "encounter": {"reference": "urn:uuid:7d0b0f3e-1111-4a5e-9c1d-000000000001"},
            "code": {"coding": [{"system": "http://loinc.org", "code": "20447-9"}]}, "valueQuantity": {"value": 40, "unit": "copies/mL"}},
         "request": {"method": "POST", "url": "Observation"}}]});
    for (path, expected) in [("/fhir/", 201), ("/fhir", 200)] {
        let r = app.http.post(app.url(path)).json(&bundle).send().await.unwrap();
        let status = r.status().as_u16();
        assert_eq!(status, expected, "{path}: {}", r.text().await.unwrap_or_default());
    }
    let records = record(&stack, "INTEROP_OBSERVATION", &encounter).await;
    assert_eq!(records.len(), 1);
    let fields = &records[0]["fields"];
    assert_eq!(fields["patient_uuid"], patient.as_str());
    assert_eq!(fields["body_weight"], "58.5 kg");
    assert_eq!(fields["hiv_viral_load"], "40 copies/mL");

    let orphan = json!({"resourceType": "Encounter", "id": unique("enc"), "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}, "subject": {"reference": "Patient/nobody-here"}});
    let r = app.http.post(app.url("/fhir/Encounter")).json(&orphan).send().await.unwrap();
    assert_eq!(r.status(), 422);
}

/// CHT's records API answers `success: true` even when it stores the record with field errors
/// (`sys.incorrect_type`, `sys.missing_fields`): such a record is no follow-up a CHW can act on.
/// The mediator removes it and answers 502 naming the field, the Task stays `requested`; once
/// the app builder fixes the form, a redelivery makes exactly one good record.
#[tokio::test]
async fn a_record_cht_stores_with_field_errors_is_a_failure_naming_the_field() {
    let Some(stack) = stack() else { return };
    let _load = LOAD.read().await;
    let form = format!("INTEROP_FOLLOW_UP_T{}", &unique("f")[2..10]).to_uppercase().replace('-', "_");
    let settings = |task_id_type: &'static str| {
        let stack = stack.clone();
        let form = form.clone();
        async move {
            let http = reqwest::Client::new();
            let url = format!("{}/api/v1/settings", stack.cht_url);
            let auth = (&stack.couch_user, Some(&stack.couch_password));
            let current: Value = http.get(&url).basic_auth(auth.0, auth.1).send().await.unwrap().json().await.unwrap();
            let mut forms = current["forms"].clone();
            let mut ours = forms["INTEROP_FOLLOW_UP"].clone();
            ours["meta"]["code"] = json!(form);
            ours["fields"]["task_id"]["type"] = json!(task_id_type);
            forms[&form] = ours;
            let r = http
                .put(format!("{url}?replace=true"))
                .basic_auth(auth.0, auth.1)
                .json(&json!({"forms": forms}))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
        }
    };
    settings("integer").await;
    let app = common::spawn_on_stack_with(&stack, &[("CHT_FOLLOW_UP_FORM", &form)]).await;
    let patient = new_patient(&stack, &app).await;
    let request = service_request(&patient, &unique("ORD"));
    let r = app.http.post(app.url("/fhir/ServiceRequest")).json(&request).send().await.unwrap();
    let (status, outcome) = (r.status().as_u16(), r.json::<Value>().await.unwrap());
    assert_eq!(status, 502, "{outcome}");
    let said = outcome["issue"][0]["diagnostics"].as_str().unwrap_or_default();
    assert!(said.contains("task_id") && said.contains("sys.incorrect_type"), "{outcome}");
    let records = stack.cht_records(&form, "patient_uuid", &patient).await;
    assert!(records.is_empty(), "the broken record was removed: {records:?}");

    settings("string").await;
    let r = app.http.post(app.url("/fhir/ServiceRequest")).json(&request).send().await.unwrap();
    let task: Value = r.json().await.unwrap();
    assert_eq!(task["status"], "received", "{task}");
    let records = stack.cht_records(&form, "patient_uuid", &patient).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["errors"], json!([]));
}

/// Ten follow-ups at once for a patient the EMR registered (CHT has no contact yet), through two
/// replicas that share no lock: one CHT contact, linked once on the Patient, ten records about it.
#[tokio::test]
async fn concurrent_follow_ups_for_an_emr_patient_make_one_cht_contact() {
    let Some(stack) = stack() else { return };
    let _load = LOAD.write().await;
    let http = reqwest::Client::new();
    let (area, file) = area_with_mapping(&stack).await;
    // Ten transactions and a Patient update at once on HFS's SQLite on a busy 2-core machine can
    // take more than the default 5 s; a timeout is honest (504, delivered again) but not this test.
    let env = [
        ("OUTBOUND_MAPPINGS_FILE", file.to_str().unwrap()),
        ("FHIR_TIMEOUT_MS", "20000"),
        ("REQUEST_TIMEOUT_MS", "30000"),
    ];
    let replicas = [common::spawn_on_stack_with(&stack, &env).await, common::spawn_on_stack_with(&stack, &env).await];

    let phone = new_phone();
    let r = http
        .post(format!("{}/Patient", stack.fhir_url))
        .header("content-type", "application/fhir+json")
        .json(&json!({"resourceType": "Patient", "name": [{"given": ["Auma"], "family": "Odhiambo"}],
            "identifier": [{"system": "https://emr.example.org/mrn", "value": unique("mrn")}],
            "telecom": [{"system": "phone", "value": phone}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let fhir_id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let requests = (0..10).map(|_| service_request(&fhir_id, &unique("ORD"))).collect();
    let answers = at_once(&replicas, "/fhir/ServiceRequest", requests).await;
    assert!(answers.iter().all(|(s, t)| *s == 201 && t["status"] == "received"), "{answers:?}");

    let (_, patient) = stack.fhir_read(&format!("Patient/{fhir_id}")).await;
    let linked = links(&patient);
    assert_eq!(linked.len(), 1, "linked once: {patient}");
    let contact = linked[0].as_str();
    let docs = contacts_by_phone(&stack, &phone).await;
    assert_eq!(docs.len(), 1, "one CHT contact: {docs:?}");
    assert_eq!((docs[0]["_id"].as_str(), docs[0]["parent"]["_id"].as_str()), (Some(contact), Some(area.as_str())));
    let records = stack.cht_records("INTEROP_FOLLOW_UP", "patient_uuid", contact).await;
    assert_eq!(records.len(), 10, "ten follow-ups, all about the contact");
}
