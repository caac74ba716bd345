//! The follow-up endpoint's idempotency against the REAL FHIR server and the CHT stand-in (no
//! OpenHIM in between): 10 concurrent copies and a retry after a crash between "CHT record
//! created" and "Task received" each leave one ServiceRequest, one Task and ONE CHT record.
//! Also the records API's failure answers, with wiremock as CHT.

mod common;

use common::{Stack, TestApp, spawn_app, stack};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const DOC_SYSTEM: &str = "https://cht.example.org/fhir/identifier/document-id";

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

async fn app(stack: &Stack) -> TestApp {
    spawn_app(&[
        ("FHIR_URL", &stack.fhir_url),
        ("CHT_URL", &stack.cht_url),
        ("CHT_USERNAME", &stack.couch_user),
        ("CHT_PASSWORD", &stack.couch_password),
    ])
    .await
}

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

async fn count(stack: &Stack, query: &str) -> usize {
    let bundle: Value = reqwest::get(format!("{}/{query}", stack.fhir_url)).await.unwrap().json().await.unwrap();
    bundle["entry"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn ten_concurrent_copies_make_one_service_request_one_task_and_one_cht_record() {
    let Some(stack) = stack() else { return };
    let app = app(&stack).await;
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
    assert_eq!(count(&stack, &format!("ServiceRequest?identifier=https://emr.example.org/orders|{order}")).await, 1);
    let record =
        answers[0].1["identifier"].as_array().unwrap().iter().find(|i| i["system"] == DOC_SYSTEM).unwrap()["value"]
            .clone();
    assert_eq!(count(&stack, &format!("Task?identifier={DOC_SYSTEM}|{}", record.as_str().unwrap())).await, 1);
}

#[tokio::test]
async fn a_retry_after_a_crash_between_the_cht_record_and_the_task_update_makes_no_second_record() {
    let Some(stack) = stack() else { return };
    let app = app(&stack).await;
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
    let app = app(&stack).await;
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
        let real = app(&stack).await;
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
