//! The follow-up endpoint's idempotency against the REAL FHIR server and the CHT stand-in (no
//! OpenHIM in between): 10 concurrent copies and a retry after a crash between "CHT record
//! created" and "Task received" each leave one ServiceRequest, one Task and ONE CHT record.
//! Also the records API's failure answers, with wiremock as CHT.

mod common;

use common::{Stack, TestApp, spawn_app, spawn_on_stack, stack, unique};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const DOC_SYSTEM: &str = "https://cht.example.org/fhir/identifier/document-id";

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

async fn records_for(stack: &Stack, task_id: &str) -> Vec<Value> {
    let r = reqwest::Client::new()
        .post(format!("{}/medic/_find", stack.cht_url))
        .basic_auth(&stack.couch_user, Some(&stack.couch_password))
        .json(&json!({"selector": {"form": "INTEROP_FOLLOW_UP", "fields.task_id": task_id}}))
        .send()
        .await
        .unwrap();
    r.json::<Value>().await.unwrap()["docs"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn ten_concurrent_copies_make_one_service_request_one_task_and_one_cht_record() {
    let Some(stack) = stack() else { return };
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
        "one copy did the work: {:?}",
        answers.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    assert!(answers.iter().all(|(s, t)| (*s == 200 || *s == 201) && t["status"] == "received"));
    let task_id = answers[0].1["id"].as_str().unwrap().to_owned();
    assert!(answers.iter().all(|(_, t)| t["id"] == task_id.as_str()));
    assert_eq!(records_for(&stack, &task_id).await.len(), 1, "ONE CHT record");
    assert_eq!(stack.fhir_count(&format!("ServiceRequest?identifier=https://emr.example.org/orders|{order}")).await, 1);
    let record =
        answers[0].1["identifier"].as_array().unwrap().iter().find(|i| i["system"] == DOC_SYSTEM).unwrap()["value"]
            .clone();
    assert_eq!(stack.fhir_count(&format!("Task?identifier={DOC_SYSTEM}|{}", record.as_str().unwrap())).await, 1);
}

#[tokio::test]
async fn a_retry_after_a_crash_between_the_cht_record_and_the_task_update_makes_no_second_record() {
    let Some(stack) = stack() else { return };
    let app = spawn_on_stack(&stack).await;
    let (patient, order) = (new_patient(&stack, &app).await, unique("ORD"));
    let request = service_request(&patient, &order);
    // What a crash leaves: the Task `requested` in FHIR, the record already in CHT.
    let parsed = cht_fhir_mediator::conversions::follow_up::parse_request(&request).unwrap();
    let task = cht_fhir_mediator::conversions::follow_up::new_task(&parsed, &patient, "2026-11-21T00:00:00Z");
    let put = reqwest::Client::new()
        .put(format!("{}/Task/{}", stack.fhir_url, parsed.task_id))
        .json(&task)
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    let created = reqwest::Client::new()
        .post(format!("{}/api/v2/records", stack.cht_url))
        .basic_auth(&stack.couch_user, Some(&stack.couch_password))
        .header("accept", "application/json")
        .json(&json!({"_meta": {"form": "INTEROP_FOLLOW_UP"}, "patient_uuid": patient, "task_id": parsed.task_id}))
        .send()
        .await
        .unwrap();
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["success"], true, "{created}");

    let r = app.http.post(app.url("/fhir/ServiceRequest")).json(&request).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let task: Value = r.json().await.unwrap();
    let records = records_for(&stack, &parsed.task_id).await;
    assert_eq!(records.len(), 1, "the retry found the record instead of making another");
    assert_eq!(
        task["identifier"].as_array().unwrap().iter().find(|i| i["system"] == DOC_SYSTEM).unwrap()["value"],
        created["id"]
    );
}

#[tokio::test]
async fn a_request_for_a_patient_fhir_does_not_have_gets_422_naming_the_subject() {
    let Some(stack) = stack() else { return };
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
        Mock::given(method("POST"))
            .and(path("/medic/_find"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"docs": []})))
            .mount(&cht)
            .await;
        Mock::given(method("POST")).and(path("/api/v2/records")).respond_with(answer).mount(&cht).await;
        let real = spawn_on_stack(&stack).await;
        let patient = new_patient(&stack, &real).await;
        let app = spawn_app(&[("FHIR_URL", &stack.fhir_url), ("CHT_URL", &cht.uri())]).await;
        let request = service_request(&patient, &unique("ORD"));
        let r = app.http.post(app.url("/fhir/ServiceRequest")).json(&request).send().await.unwrap();
        assert_eq!(r.status(), 502, "{label}");
        let task_id = cht_fhir_mediator::conversions::follow_up::parse_request(&request).unwrap().task_id;
        let task: Value =
            reqwest::get(format!("{}/Task/{task_id}", stack.fhir_url)).await.unwrap().json().await.unwrap();
        assert_eq!(task["status"], "requested", "{label}: left for a retry to complete");
    }
}

async fn record(stack: &Stack, form: &str, external_id: &str) -> Vec<Value> {
    let r = reqwest::Client::new()
        .post(format!("{}/medic/_find", stack.cht_url))
        .basic_auth(&stack.couch_user, Some(&stack.couch_password))
        .json(&json!({"selector": {"form": form, "fields.external_id": external_id}}))
        .send()
        .await
        .unwrap();
    r.json::<Value>().await.unwrap()["docs"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_patient_from_another_system_becomes_one_cht_record_from_json_or_xml() {
    let Some(stack) = stack() else { return };
    let app = spawn_on_stack(&stack).await;
    let id = unique("emr-pat");
    let xml = format!(
        r#"<Patient xmlns="http://hl7.org/fhir"><id value="{id}"/><name><given value="Amina"/><family value="Njeri"/></name>
        <telecom><system value="phone"/><value value="+254700000009"/></telecom><gender value="female"/><birthDate value="1990-05-12"/>
        <managingOrganization><reference value="Organization/kondele-clinic"/></managingOrganization></Patient>"#
    );
    let post_xml = || {
        app.http.post(app.url("/fhir/Patient")).header("content-type", "application/fhir+xml").body(xml.clone()).send()
    };
    assert_eq!(post_xml().await.unwrap().status(), 201);
    assert_eq!(post_xml().await.unwrap().status(), 200, "the same Patient again finds the record");
    let json_copy = json!({"resourceType": "Patient", "id": id, "name": [{"given": ["Amina"], "family": "Njeri"}],
        "managingOrganization": {"reference": "Organization/kondele-clinic"}});
    assert_eq!(app.http.post(app.url("/fhir/Patient")).json(&json_copy).send().await.unwrap().status(), 200);
    let records = record(&stack, "INTEROP_PATIENT", &id).await;
    assert_eq!(records.len(), 1);
    let fields = &records[0]["fields"];
    assert_eq!(
        (fields["patient_name"].as_str(), fields["phone"].as_str(), fields["sex"].as_str()),
        (Some("Amina Njeri"), Some("+254700000009"), Some("female"))
    );
    assert_eq!(fields["parent_id"], "5e1a3c55-health-center-kondele");

    let homeless = json!({"resourceType": "Patient", "id": unique("p"), "name": [{"text": "No Place"}]});
    let r = app.http.post(app.url("/fhir/Patient")).json(&homeless).send().await.unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await.unwrap()["issue"][0]["expression"][0], "Patient.managingOrganization");
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
async fn an_encounter_bundle_becomes_one_cht_record_with_fields_named_by_the_observation_codes() {
    let Some(stack) = stack() else { return };
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
        assert_eq!(r.status(), expected, "{path}");
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
