//! A drop-in for the reference mediator (issue 12): the pushes its own CHT configuration sends
//! (`tests/fixtures/reference/`: a Patient without `id`, an Encounter with a string `class`, a
//! `Patient/?identifier=` subject, identifier system `"cht"`), through the real FHIR server — each
//! delivered twice, as CHT may. End state: one Patient, one Encounter about it, valid R4.

mod common;

use common::{Stack, TestApp, spawn_on_stack, stack, unique};
use serde_json::Value;

const DOC_SYSTEM: &str = "https://cht.example.org/fhir/identifier/document-id";

fn fixture(name: &str, patient: &str) -> Value {
    let text = std::fs::read_to_string(format!("tests/fixtures/reference/{name}")).unwrap();
    serde_json::from_str(&text.replace("__PATIENT__", patient)).unwrap()
}

async fn push(app: &TestApp, path: &str, body: &Value) -> u16 {
    app.http.post(app.url(path)).json(body).send().await.unwrap().status().as_u16()
}

async fn search(stack: &Stack, query: &str) -> Vec<Value> {
    let (_, bundle) = stack.fhir_read(query).await;
    common::bundle_resources(&bundle)
}

fn assert_valid(resource: &Value) {
    assert_eq!(cht_fhir_mediator::fhir::base::validate(resource), Ok(()), "{resource}");
}

#[tokio::test]
async fn the_reference_mediators_patient_and_encounter_pushes_are_written_once_and_linked() {
    let Some(stack) = stack() else { return };
    let app = spawn_on_stack(&stack).await;
    let patient_id = unique("ref-pat");
    for _ in 0..2 {
        assert_eq!(push(&app, "/patient", &fixture("patient.json", &patient_id)).await / 100, 2);
    }
    let patients = search(&stack, &format!("Patient?identifier={DOC_SYSTEM}|{patient_id}")).await;
    assert_eq!(patients.len(), 1, "one Patient, its identifier system made absolute");
    let patient = &patients[0];
    assert_eq!(patient["name"][0]["family"], "Amina Wanjiru Njeri");
    assert!(patient["name"][0].get("given").is_none(), "the reference's [null] given is dropped");
    assert_valid(patient);

    for _ in 0..2 {
        assert_eq!(push(&app, "/encounter", &fixture("encounter.json", &patient_id)).await, 200);
    }
    let encounters = search(&stack, &format!("Encounter?identifier={DOC_SYSTEM}|{patient_id}")).await;
    assert_eq!(encounters.len(), 1, "a redelivery is the same Encounter");
    let encounter = &encounters[0];
    assert_eq!(encounter["subject"]["reference"], format!("Patient/{}", patient["id"].as_str().unwrap()));
    assert_eq!(encounter["class"]["code"], "AMB");
    assert_eq!(encounter["class"]["system"], "http://terminology.hl7.org/CodeSystem/v3-ActCode");
    assert_valid(encounter);
}

#[tokio::test]
async fn a_reference_encounter_before_its_patient_fetches_the_patient_from_cht() {
    let Some(stack) = stack() else { return };
    let app = spawn_on_stack(&stack).await;
    let patient_id = unique("ref-late");
    let person = serde_json::json!({"_id": patient_id, "type": "person", "name": "Kofi Boateng", "sex": "male"});
    let put = reqwest::Client::new()
        .put(format!("{}/medic/{patient_id}", stack.cht_url))
        .basic_auth(&stack.couch_user, Some(&stack.couch_password))
        .json(&person)
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    assert_eq!(push(&app, "/encounter", &fixture("encounter.json", &patient_id)).await, 200);
    let patients = search(&stack, &format!("Patient?identifier={DOC_SYSTEM}|{patient_id}")).await;
    assert_eq!(patients.len(), 1);
    assert_eq!(patients[0]["name"][0]["text"], "Kofi Boateng");
    // The reference's own Patient push arriving later updates that same Patient.
    assert_eq!(push(&app, "/patient", &fixture("patient.json", &patient_id)).await / 100, 2);
    assert_eq!(search(&stack, &format!("Patient?identifier={DOC_SYSTEM}|{patient_id}")).await.len(), 1);
    let encounters = search(&stack, &format!("Encounter?identifier={DOC_SYSTEM}|{patient_id}")).await;
    assert_eq!(encounters.len(), 1);
    assert_eq!(encounters[0]["subject"]["reference"], format!("Patient/{}", patients[0]["id"].as_str().unwrap()));
}

#[tokio::test]
async fn the_requester_registers_its_endpoint_and_organization_idempotently() {
    let Some(stack) = stack() else { return };
    let app = spawn_on_stack(&stack).await;
    let key = unique("emr");
    // As the reference's own test factories build them (its schema: name as an array, an
    // Endpoint with only connectionType and identifier — plus the address it calls back).
    let endpoint = serde_json::json!({"resourceType": "Endpoint", "identifier": [{"system": "cht", "value": key}],
        "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "hl7-fhir-rest"},
        "address": "https://emr.example.org/fhir"});
    let mut endpoint_id = String::new();
    for _ in 0..2 {
        let r = app.http.post(app.url("/endpoint")).json(&endpoint).send().await.unwrap();
        let status = r.status().as_u16();
        let written: Value = r.json().await.unwrap();
        assert_eq!(status / 100, 2, "{written}");
        endpoint_id = written["id"].as_str().unwrap().to_owned();
        assert_eq!(written["payloadType"][0]["coding"][0]["code"], "Encounter", "the reference's callback, by default");
    }
    let organization = serde_json::json!({"resourceType": "Organization", "name": ["athena"],
        "identifier": [{"system": "cht", "value": key}], "endpoint": [{"reference": format!("Endpoint/{endpoint_id}")}]});
    for _ in 0..2 {
        assert_eq!(push(&app, "/organization", &organization).await / 100, 2);
    }
    // Its `"cht"` identifier system, made absolute as FHIR wants it.
    let cht = format!("{}cht", cht_fhir_mediator::conversions::reference::LOCAL_SYSTEM_BASE);
    assert_eq!(search(&stack, &format!("Endpoint?identifier={cht}|{key}")).await.len(), 1);
    let organizations = search(&stack, &format!("Organization?identifier={cht}|{key}")).await;
    assert_eq!(organizations.len(), 1);
    assert_eq!(organizations[0]["name"], "athena");
    assert_valid(&organizations[0]);
    // An invalid one is refused naming the element (the EMR is told; nothing is written).
    let r = app
        .http
        .post(app.url("/endpoint"))
        .json(&serde_json::json!({"resourceType": "Endpoint"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let outcome: Value = r.json().await.unwrap();
    assert_eq!(outcome["issue"][0]["expression"][0], "Endpoint.address");
}
