//! The requester's callback, per its Endpoint (issue 12.4): `payloadType` Encounter gets the
//! reference mediator's `PUT {address}/Encounter/{id}` with the outcome Encounter; any other gets
//! this mediator's `POST {address}` with the closed Task; `Endpoint.header` values are sent.
//! wiremock plays the FHIR server (the Task's Organization, Endpoint, Encounter) and the requester.

mod common;

use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn fhir_with(endpoint: Value) -> MockServer {
    let fhir = MockServer::start().await;
    let ok = |v: Value| ResponseTemplate::new(200).set_body_json(v);
    Mock::given(method("GET"))
        .and(path("/Organization/org-1"))
        .respond_with(ok(
            json!({"resourceType": "Organization", "id": "org-1", "endpoint": [{"reference": "Endpoint/ep-1"}]}),
        ))
        .mount(&fhir)
        .await;
    Mock::given(method("GET")).and(path("/Endpoint/ep-1")).respond_with(ok(endpoint)).mount(&fhir).await;
    Mock::given(method("GET"))
        .and(path("/Encounter/enc-1"))
        .respond_with(ok(json!({"resourceType": "Encounter", "id": "enc-1", "status": "finished"})))
        .mount(&fhir)
        .await;
    fhir
}

fn closed_task() -> Value {
    json!({"resourceType": "Task", "id": "t-1", "status": "completed", "intent": "order",
        "requester": {"reference": "Organization/org-1"},
        "output": [{"type": {"text": "Encounter"}, "valueReference": {"reference": "Encounter/enc-1"}}]})
}

fn endpoint(address: &str, payload: Option<&str>) -> Value {
    let mut e = json!({"resourceType": "Endpoint", "id": "ep-1", "status": "active", "address": address,
        "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "hl7-fhir-rest"},
        "header": ["X-Api-Key: k3y-for-the-emr"]});
    e["payloadType"] = match payload {
        Some(kind) => json!([{"coding": [{"system": "http://hl7.org/fhir/resource-types", "code": kind}]}]),
        None => json!([{"text": "any"}]),
    };
    e
}

#[tokio::test]
async fn an_endpoint_asking_for_the_encounter_gets_the_references_put() {
    let requester = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/fhir/Encounter/enc-1"))
        .and(header("x-api-key", "k3y-for-the-emr"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&requester)
        .await;
    let fhir = fhir_with(endpoint(&format!("{}/fhir/", requester.uri()), Some("Encounter"))).await;
    let app = common::spawn_app(&[("FHIR_URL", &fhir.uri())]).await;
    let notified = cht_fhir_mediator::outbound::notify::notify(&app.state, &closed_task()).await.unwrap();
    assert!(notified.is_some());
    let sent: Value = serde_json::from_slice(&requester.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!((sent["resourceType"].as_str(), sent["id"].as_str()), (Some("Encounter"), Some("enc-1")));
}

#[tokio::test]
async fn any_other_endpoint_gets_the_closed_task_posted() {
    let requester = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/callback"))
        .and(header("x-api-key", "k3y-for-the-emr"))
        .respond_with(ResponseTemplate::new(202))
        .expect(1)
        .mount(&requester)
        .await;
    let fhir = fhir_with(endpoint(&format!("{}/callback", requester.uri()), None)).await;
    let app = common::spawn_app(&[("FHIR_URL", &fhir.uri())]).await;
    cht_fhir_mediator::outbound::notify::notify(&app.state, &closed_task()).await.unwrap().unwrap();
    let sent: Value = serde_json::from_slice(&requester.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(sent["resourceType"], "Task");
    assert_eq!(sent["status"], "completed");
}
