//! The lost-to-follow-up workflow end to end (DESIGN.md), every request through OpenHIM's router
//! on the real stack: OpenHIM core 4.0.5, the FHIR server, and CHT (the stand-in on
//! pouchdb-server, pushing with its outbound engine configured by mediator-config/cht).
//!
//! 1. A CHW registers a patient in CHT → pushed → FHIR Patient.
//! 2. The EMR posts a ServiceRequest → ServiceRequest + Task in FHIR, one CHT follow-up record,
//!    Task `received`.
//! 3. The CHW submits the follow-up → pushed → Encounter, Task `completed` with output.
//! 4. The requester's Endpoint receives the completed Task.
//!
//! Then the same with faults: every push delivered twice; CHT down when the request arrives
//! (the resend completes it); the FHIR server down when the CHW's report is pushed (the
//! stand-in's retry completes it). The end state is checked exactly every time.

mod common;

use std::time::Duration;

use common::openhim::{mediator_orchestrations, transaction_for, transactions_for};
use common::world::{
    CHT_CLIENT, DOC_SYSTEM, EMR_CLIENT, cht, configure_cht, fhir_get, flush_outbound, only, request_follow_up, search,
    setup, stack_cmd,
};
use common::{eventually, stack, unique};
use serde_json::{Value, json};

/// The stack's CHT stand-in and OpenHIM are shared: one scenario at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    EveryPushTwice,
    ChtDownWhenRequested,
    FhirDownWhenReported,
}

async fn ltfu(fault: Fault) {
    let Some(stack) = stack() else { return };
    let _serial = SERIAL.lock().await;
    let logs = common::logs::capture();
    let world = setup(stack).await;
    let unindexed = world.stack.unindexed_finds().await;
    if fault == Fault::EveryPushTwice {
        cht(&world, reqwest::Method::PUT, "_standin/outbound/faults", Some(&json!({"deliver_twice": true}))).await;
    }

    // 1. The CHW registers a patient in CHT, in a household of their area (a person directly under
    // the district or the CHW area is staff, never pushed).
    let household = json!({"name": "Atieno household", "type": "clinic", "parent": {"name": "Kisumu CHW area",
        "type": "health_center", "parent": {"name": "Kisumu district", "type": "district_hospital"}}});
    let (_, place) = cht(&world, reqwest::Method::POST, "api/v1/places", Some(&household)).await;
    let place = place["id"].as_str().expect("place created").to_owned();
    let person = json!({"name": "Achieng Atieno", "type": "person", "role": "patient", "place": place,
        "sex": "female", "date_of_birth": "1994-07-21", "phone": "+254722000333"});
    let (status, created) = cht(&world, reqwest::Method::POST, "api/v1/people", Some(&person)).await;
    assert_eq!(status, 200, "{created}");
    let patient = created["id"].as_str().unwrap().to_owned();
    let patient_in_fhir = eventually(Duration::from_secs(30), "the Patient pushed through OpenHIM", || async {
        flush_outbound(&world).await;
        only(&world, &format!("Patient?identifier={DOC_SYSTEM}|{patient}")).await
    })
    .await;
    // The EMR knows the Patient by its FHIR id (the CHT id in client-ids mode, the server's else).
    let patient_fhir_id = patient_in_fhir["id"].as_str().unwrap().to_owned();
    assert_eq!(patient_in_fhir["name"][0]["text"], "Achieng Atieno");

    // 2. The EMR asks for a follow-up.
    let order = unique("ORD");
    let request = json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "identifier": [{"system": "https://emr.example.org/orders", "value": order}],
        "code": {"text": "Community follow-up of a patient lost to follow-up"},
        "subject": {"reference": format!("Patient/{patient_fhir_id}")},
        "requester": {"reference": format!("Organization/{}", world.organization), "display": "Kondele clinic"},
        "reasonCode": [{"text": "Missed ART refill for 30 days"}], "authoredOn": "2026-11-20T08:00:00Z"});
    let send_request = || request_follow_up(&world, &request);
    if fault == Fault::ChtDownWhenRequested {
        stack_cmd(&world, &["down", "cht"]).await;
        let (status, _) = send_request().await;
        stack_cmd(&world, &["up", "cht"]).await;
        configure_cht(&world.stack, &world.http).await; // a restarted stand-in re-reads its settings file
        assert!(matches!(status, 502 | 503), "CHT down must not look like success: {status}");
    }
    let (status, task) = send_request().await;
    assert!(status == 201 || status == 200, "{status}: {task}");
    assert_eq!(task["status"], "received");
    let task_id = task["id"].as_str().unwrap().to_owned();
    let record = task["identifier"].as_array().unwrap().iter().find(|i| i["system"] == DOC_SYSTEM).unwrap()["value"]
        .as_str()
        .unwrap()
        .to_owned();
    let (again, _) = send_request().await;
    assert_eq!(again, 200, "a resend is answered with the same Task");

    // 3. The CHW visits and submits the follow-up form (the task's action, as CHT stores it).
    if fault == Fault::FhirDownWhenReported {
        stack_cmd(&world, &["down", world.stack.fhir_service.as_str()]).await;
    }
    let report = uuid::Uuid::new_v4().to_string();
    let visit = json!({"_id": report, "type": "data_record", "content_type": "xml", "form": "interop_follow_up",
        "reported_date": 1763712000000_i64, "contact": {"_id": "chw-e2e", "parent": {"_id": place}},
        "fields": {"patient_uuid": patient, "inputs": {"source": "task", "source_id": record, "contact": {"_id": patient}},
            "follow_up": {"patient_found": "yes", "outcome": "returned_to_care", "notes": "Back on treatment"}}});
    let (status, _) = cht(&world, reqwest::Method::PUT, &format!("medic/{report}"), Some(&visit)).await;
    assert!(status == 201 || status == 200, "{status}");
    if fault == Fault::FhirDownWhenReported {
        flush_outbound(&world).await;
        let (_, monitoring) = cht(&world, reqwest::Method::GET, "api/v2/monitoring", None).await;
        assert!(
            monitoring["outbound_push"]["backlog"].as_u64().unwrap() >= 1,
            "the failed push is queued: {monitoring}"
        );
        stack_cmd(&world, &["up", world.stack.fhir_service.as_str()]).await;
    }
    let completed = eventually(Duration::from_secs(60), "the Task completed by the CHW's report", || async {
        flush_outbound(&world).await;
        fhir_get(&world, &format!("Task/{task_id}")).await.filter(|t| t["status"] == "completed")
    })
    .await;

    // The exact end state.
    let encounter = only(&world, &format!("Encounter?identifier={DOC_SYSTEM}|{report}")).await.expect("one Encounter");
    assert_eq!(
        completed["output"][0]["valueReference"]["reference"],
        format!("Encounter/{}", encounter["id"].as_str().unwrap())
    );
    assert_eq!(completed["businessStatus"]["text"], "returned_to_care");
    assert_eq!(search(&world, &format!("Patient?identifier={DOC_SYSTEM}|{patient}")).await.len(), 1, "one Patient");
    assert_eq!(
        search(&world, &format!("ServiceRequest?identifier=https://emr.example.org/orders|{order}")).await.len(),
        1,
        "one ServiceRequest"
    );
    assert_eq!(search(&world, &format!("Task?identifier={DOC_SYSTEM}|{record}")).await.len(), 1, "one Task");
    assert_eq!(search(&world, &format!("Encounter?identifier={DOC_SYSTEM}|{report}")).await.len(), 1, "one Encounter");
    // This patient's: a server with sequential ids gives a Task id an older run had too.
    let records: Vec<Value> = world
        .stack
        .cht_records("INTEROP_FOLLOW_UP", "task_id", &task_id)
        .await
        .into_iter()
        .filter(|r| r["fields"]["patient_uuid"] == patient.as_str())
        .collect();
    assert_eq!(records.len(), 1, "one CHT follow-up record: {records:?}");
    assert_eq!(records[0]["fields"]["patient_uuid"], patient.as_str());

    // 4. The requester heard of it, once.
    // As long as the mediator keeps trying: five rounds of the Organization and Endpoint reads
    // (5 s timeouts) and the call, 2 s to 16 s apart — a FHIR server just restarted (the
    // FHIR-down case) can need the later rounds.
    let calls = eventually(Duration::from_secs(90), "the callback", || async {
        let calls = world.receiver.received_requests().await.unwrap_or_default();
        (!calls.is_empty()).then_some(calls)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(world.receiver.received_requests().await.unwrap().len(), 1, "one callback");
    let sent: Value = serde_json::from_slice(&calls[0].body).unwrap();
    assert_eq!((sent["id"].as_str(), sent["status"].as_str()), (Some(task_id.as_str()), Some("completed")));

    // OpenHIM recorded each step as Successful with the mediator's orchestrations (the newest
    // transaction of each step: the faults leave earlier Failed ones, checked below).
    for (path, marker) in [
        ("/mediator/cht/patient", patient.as_str()),
        ("/mediator/fhir/ServiceRequest", order.as_str()),
        ("/mediator/cht/encounter", report.as_str()),
    ] {
        let what = format!("the transaction on {path}");
        let tx = eventually(Duration::from_secs(10), &what, || transaction_for(&world.admin, path, marker)).await;
        assert_eq!(tx["status"], "Successful", "{path}: {tx}");
        // Recorded bodies are capped: the FHIR server's 2.5 MB CapabilityStatement is not stored whole.
        let size = tx.to_string().len();
        assert!(size < 512 * 1024, "{path}: the transaction OpenHIM stores is {size} bytes");
        let orchestrations = mediator_orchestrations(&tx);
        assert!(!orchestrations.is_empty(), "{path} has the mediator's orchestrations");
        assert!(orchestrations.iter().all(|o| o["request"]["timestamp"].is_string()));
    }
    // The faults really happened.
    let statuses = |path: &'static str, marker: String| {
        let admin = &world.admin;
        async move {
            let found = transactions_for(admin, path, &marker).await;
            found.iter().map(|t| t["status"].as_str().unwrap_or_default().to_owned()).collect::<Vec<_>>()
        }
    };
    match fault {
        Fault::None => {}
        Fault::EveryPushTwice => {
            cht(&world, reqwest::Method::PUT, "_standin/outbound/faults", Some(&json!({"deliver_twice": false}))).await;
            assert!(
                statuses("/mediator/cht/patient", patient.clone()).await.len() >= 2,
                "the patient was pushed twice"
            );
            assert!(
                statuses("/mediator/cht/encounter", report.clone()).await.len() >= 2,
                "the report was pushed twice"
            );
        }
        Fault::ChtDownWhenRequested => {
            let seen = statuses("/mediator/fhir/ServiceRequest", order.clone()).await;
            assert!(seen.contains(&"Failed".to_owned()), "the request while CHT was down failed: {seen:?}");
        }
        Fault::FhirDownWhenReported => {
            let seen = statuses("/mediator/cht/encounter", report.clone()).await;
            assert!(seen.contains(&"Failed".to_owned()), "the push while FHIR was down failed: {seen:?}");
        }
    }
    world.app.shutdown().await;

    // No patient data and no credential in the mediator's logs, at debug level, across the run.
    let text = common::logs::text(&logs);
    assert!(text.contains("request finished") && text.contains(&task_id), "the capture works and logs ids");
    let basic = |user: &str, password: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    };
    let secrets = [
        "Achieng Atieno".to_owned(),
        "+254722000333".into(),
        "1994-07-21".into(),
        "Missed ART refill".into(),
        "Back on treatment".into(),
        CHT_CLIENT.1.into(),
        EMR_CLIENT.1.into(),
        "openhim-password".into(),
        basic(&world.stack.couch_user, &world.stack.couch_password),
        basic(CHT_CLIENT.0, CHT_CLIENT.1),
        basic(EMR_CLIENT.0, EMR_CLIENT.1),
    ];
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "the logs contain {secret:?}");
    }
    // Every CHT look-up the mediator made used an index a stock CHT database has.
    assert_eq!(world.stack.unindexed_finds().await, unindexed, "an unindexed _find (GET /_standin/stats)");
}

#[tokio::test]
async fn ltfu_workflow_end_to_end() {
    ltfu(Fault::None).await;
}

#[tokio::test]
async fn ltfu_with_every_cht_push_delivered_twice() {
    ltfu(Fault::EveryPushTwice).await;
}

#[tokio::test]
async fn ltfu_with_cht_down_when_the_request_arrives() {
    ltfu(Fault::ChtDownWhenRequested).await;
}

#[tokio::test]
async fn ltfu_with_the_fhir_server_down_when_the_report_is_pushed() {
    ltfu(Fault::FhirDownWhenReported).await;
}

/// EMR first: the EMR registers a patient through OpenHIM (`POST /mediator/fhir/Patient`; CHT
/// has never heard of them) and asks for a follow-up. The mediator makes them a CHT contact in the CHW area, once, links the
/// FHIR Patient to it, and the follow-up reaches that contact; CHT's own push of the new contact
/// then updates the same FHIR Patient, keeping the EMR's identifier. Every push twice, the
/// request twice.
#[tokio::test]
async fn ltfu_for_a_patient_the_emr_registered_first() {
    let Some(stack) = stack() else { return };
    // The log capture is the process's one subscriber: installed before any app starts, or the
    // other tests of this binary capture nothing.
    let _logs = common::logs::capture();
    let _serial = SERIAL.lock().await;
    let world = setup(stack).await;
    let unindexed = world.stack.unindexed_finds().await;
    cht(&world, reqwest::Method::PUT, "_standin/outbound/faults", Some(&json!({"deliver_twice": true}))).await;

    let mrn = uuid::Uuid::new_v4().to_string();
    let phone = format!("+2547{}", &mrn.replace('-', "").chars().filter(char::is_ascii_digit).collect::<String>()[..8]);
    let registration = json!({"resourceType": "Patient",
        "identifier": [{"system": "https://emr.example.org/mrn", "value": mrn}],
        "name": [{"given": ["Nafula"], "family": "Wekesa"}], "gender": "female", "birthDate": "1991-03-08",
        "telecom": [{"system": "phone", "value": phone}]});
    let register = || async {
        let r = world
            .http
            .post(format!("{}/mediator/fhir/Patient", world.stack.openhim_router_url))
            .basic_auth(EMR_CLIENT.0, Some(EMR_CLIENT.1))
            .json(&registration)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
    };
    // OpenHIM is not at once ready for a test that calls it right after its setup: its router can
    // still route to the previous test's mediator for a moment after the channels are
    // re-installed (500 with no body, ECONNREFUSED in its log), and a client just created can be
    // refused (401) until its router knows it. The first request waits for both; the mediator's
    // own answers are FHIR resources or OperationOutcomes.
    let (status, registered) = eventually(Duration::from_secs(20), "OpenHIM routing to this mediator", || async {
        let (status, body) = register().await;
        let not_yet =
            (status == 500 && body.is_null()) || (status == 401 && body["resourceType"] != "OperationOutcome");
        (!not_yet).then_some((status, body))
    })
    .await;
    // The EMR registers the patient through OpenHIM (twice: a resend finds the first).
    assert_eq!(status, 201, "{registered}");
    let fhir_id = registered["id"].as_str().expect("the registered Patient's id").to_owned();
    let (status, again) = register().await;
    assert_eq!((status, again["id"].as_str()), (200, Some(fhir_id.as_str())), "{again}");
    let order = uuid::Uuid::new_v4().to_string();
    let request = json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "identifier": [{"system": "https://emr.example.org/orders", "value": order}],
        "subject": {"reference": format!("Patient/{fhir_id}")},
        "requester": {"reference": format!("Organization/{}", world.organization), "display": "Kondele clinic"},
        "reasonCode": [{"text": "Missed ART refill"}], "authoredOn": "2026-11-20T08:00:00Z"});
    let send = || request_follow_up(&world, &request);
    let first = send().await;
    let mut tasks = Vec::new();
    for (status, task) in [first, send().await] {
        assert!(status == 201 || status == 200, "{status}: {task}");
        tasks.push(task);
    }
    assert_eq!(tasks[0]["status"], "received", "{}", tasks[0]);
    assert_eq!(tasks[0]["id"], tasks[1]["id"]);

    // One CHT contact, in the CHW area, and the FHIR Patient linked to it.
    let patient = fhir_get(&world, &format!("Patient/{fhir_id}")).await.expect("the EMR's Patient");
    let contact = patient["identifier"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["system"] == DOC_SYSTEM)
        .expect("the Patient carries its CHT contact id")["value"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, by_phone) = cht(
        &world,
        reqwest::Method::GET,
        &format!("api/v1/contacts-by-phone?phone={}", phone.replace('+', "%2B")),
        None,
    )
    .await;
    let found: Vec<&Value> = by_phone["docs"].as_array().map(|d| d.iter().collect()).unwrap_or_default();
    assert_eq!(found.len(), 1, "one contact: {by_phone}");
    assert_eq!(found[0]["_id"], contact.as_str());
    assert_eq!(found[0]["parent"]["_id"], "e2e-chw-area");
    assert_eq!(found[0]["name"], "Nafula Wekesa");
    let task_id = tasks[0]["id"].as_str().unwrap();
    let records = world.stack.cht_records("INTEROP_FOLLOW_UP", "task_id", task_id).await;
    let ours: Vec<&Value> = records.iter().filter(|r| r["fields"]["patient_uuid"] == contact.as_str()).collect();
    assert_eq!(ours.len(), 1, "one follow-up record, about the contact: {records:?}");

    // CHT pushes the new contact (twice): the same FHIR Patient, still with the EMR's MRN.
    eventually(Duration::from_secs(30), "CHT's push of the new contact", || async {
        flush_outbound(&world).await;
        let (_, attempts) = cht(&world, reqwest::Method::GET, "_standin/outbound/attempts", None).await;
        attempts["attempts"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| a["doc_id"] == contact.as_str() && a["ok"] == true && a["sent"] == true)
            .then_some(())
    })
    .await;
    let patients = eventually(Duration::from_secs(15), "the Patient as CHT's push wrote it", || async {
        let found = search(&world, &format!("Patient?identifier={DOC_SYSTEM}|{contact}")).await;
        let written = found.iter().any(|p| p["meta"]["profile"].to_string().contains("cht-patient"));
        written.then_some(found)
    })
    .await;
    assert_eq!(patients.len(), 1, "one Patient: {patients:?}");
    assert_eq!(patients[0]["id"], fhir_id.as_str(), "the EMR's Patient, updated");
    let identifiers = patients[0]["identifier"].to_string();
    assert!(identifiers.contains(&mrn), "the EMR's identifier kept: {identifiers}");
    assert_eq!(search(&world, &format!("Patient?identifier=https://emr.example.org/mrn|{mrn}")).await.len(), 1);

    // The CHW's follow-up report completes the Task, about the same Patient.
    let record = ours[0]["_id"].as_str().unwrap().to_owned();
    let report = uuid::Uuid::new_v4().to_string();
    let visit = json!({"_id": report, "type": "data_record", "content_type": "xml", "form": "interop_follow_up",
        "reported_date": 1763712000000_i64, "contact": {"_id": "chw-e2e", "parent": {"_id": "e2e-chw-area"}},
        "fields": {"patient_uuid": contact, "inputs": {"source": "task", "source_id": record, "contact": {"_id": contact}},
            "follow_up": {"patient_found": "yes", "outcome": "returned_to_care", "notes": "Seen at home"}}});
    let (status, _) = cht(&world, reqwest::Method::PUT, &format!("medic/{report}"), Some(&visit)).await;
    assert!(status == 201 || status == 200, "{status}");
    let completed = eventually(Duration::from_secs(60), "the Task completed by the CHW's report", || async {
        flush_outbound(&world).await;
        fhir_get(&world, &format!("Task/{task_id}")).await.filter(|t| t["status"] == "completed")
    })
    .await;
    let encounter = only(&world, &format!("Encounter?identifier={DOC_SYSTEM}|{report}")).await.expect("one Encounter");
    assert_eq!(encounter["subject"]["reference"], format!("Patient/{fhir_id}"), "about the EMR's Patient");
    assert_eq!(
        completed["output"][0]["valueReference"]["reference"],
        format!("Encounter/{}", encounter["id"].as_str().unwrap())
    );
    assert_eq!(
        search(&world, &format!("Patient?identifier=https://emr.example.org/mrn|{mrn}")).await.len(),
        1,
        "still one Patient"
    );
    // OpenHIM recorded the registrations, with the mediator's calls to FHIR and CHT.
    let registrations = eventually(Duration::from_secs(10), "the registrations' transactions", || async {
        let found = transactions_for(&world.admin, "/mediator/fhir/Patient", &mrn).await;
        (found.len() >= 2).then_some(found)
    })
    .await;
    assert!(registrations.iter().all(|t| t["status"] == "Successful"), "{registrations:?}");
    let calls: Vec<String> = mediator_orchestrations(&registrations[registrations.len() - 1])
        .iter()
        .filter_map(|o| o["name"].as_str().map(str::to_owned))
        .collect();
    assert!(calls.iter().any(|n| n == "CHT create person"), "the first made the CHT person: {calls:?}");
    assert_eq!(world.stack.unindexed_finds().await, unindexed, "an unindexed _find (GET /_standin/stats)");
}
