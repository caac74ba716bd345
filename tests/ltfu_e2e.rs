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

use cht_fhir_mediator::openhim::client::OpenhimClient;
use common::openhim::{admin, ensure_client, mediator_orchestrations, reset, transaction_for, transactions_for};
use common::{Stack, TestApp, eventually, spawn_app, stack, unique};
use serde_json::{Value, json};

const DOC_SYSTEM: &str = "https://cht.example.org/fhir/identifier/document-id";
const CHT_CLIENT: (&str, &str) = ("e2e-cht", "e2e-cht-password");
const EMR_CLIENT: (&str, &str) = ("e2e-emr", "e2e-emr-password");
/// The stack's CHT stand-in and OpenHIM are shared: one scenario at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// Every log line the mediator writes in this test binary (JSON, debug level), to check it.
static LOGS: std::sync::OnceLock<std::sync::Arc<std::sync::Mutex<Vec<u8>>>> = std::sync::OnceLock::new();

struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber (before any mediator starts in this process).
fn capture_logs() -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    LOGS.get_or_init(|| {
        let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = buffer.clone();
        cht_fhir_mediator::telemetry::init_with_writer(
            "debug",
            cht_fhir_mediator::settings::LogFormat::Json,
            move || Box::new(Capture(sink.clone())) as Box<dyn std::io::Write>,
        );
        buffer
    })
    .clone()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    EveryPushTwice,
    ChtDownWhenRequested,
    FhirDownWhenReported,
}

struct World {
    stack: Stack,
    admin: OpenhimClient,
    app: TestApp,
    http: reqwest::Client,
    receiver: wiremock::MockServer,
    organization: String,
}

async fn setup(stack: Stack) -> World {
    let admin = admin(&stack, &stack.openhim_api_url);
    reset(&admin).await;
    let app = spawn_app(&[
        ("OPENHIM_API_URL", &stack.openhim_api_url),
        ("OPENHIM_PASSWORD", "openhim-password"),
        ("OPENHIM_REGISTER", "true"),
        ("OPENHIM_INSTALL_CHANNELS", "true"),
        ("OPENHIM_HEARTBEAT_INTERVAL_MS", "1000"),
        ("TLS_CA_BUNDLE", &stack.ca_bundle),
        ("FHIR_URL", &stack.fhir_url),
        ("CHT_URL", &stack.cht_url),
        ("CHT_USERNAME", &stack.couch_user),
        ("CHT_PASSWORD", &stack.couch_password),
    ])
    .await;
    eventually(Duration::from_secs(20), "channels installed", || async {
        app.state.openhim.get().channels_installed.then_some(())
    })
    .await;
    ensure_client(&admin, CHT_CLIENT.0, "cht", CHT_CLIENT.1).await;
    ensure_client(&admin, EMR_CLIENT.0, "emr", EMR_CLIENT.1).await;
    let world = World {
        http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
        receiver: wiremock::MockServer::start().await,
        organization: unique("org"),
        stack,
        admin,
        app,
    };
    configure_cht(&world).await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&world.receiver)
        .await;
    // The requester: an Organization with an Endpoint.
    let endpoint = unique("ep");
    fhir_put(&world, &format!("Endpoint/{endpoint}"), &json!({"resourceType": "Endpoint", "id": endpoint, "status": "active",
        "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "hl7-fhir-rest"},
        "payloadType": [{"text": "Task"}], "address": format!("{}/ltfu-callback", world.receiver.uri())}))
    .await;
    fhir_put(&world, &format!("Organization/{}", world.organization), &json!({"resourceType": "Organization",
        "id": world.organization, "name": "Kondele clinic", "endpoint": [{"reference": format!("Endpoint/{endpoint}")}]}))
    .await;
    world
}

/// What an app builder does in CHT: the mediator's app_settings (pointed at this OpenHIM and
/// this client) and the client's password in the credentials vault.
async fn configure_cht(world: &World) {
    let text = std::fs::read_to_string("mediator-config/cht/app_settings.json").unwrap();
    let mut settings: Value = serde_json::from_str(&text).unwrap();
    for push in settings["outbound"].as_object_mut().unwrap().values_mut() {
        push["destination"]["base_url"] = json!(world.stack.openhim_router_url);
        push["destination"]["auth"]["username"] = json!(CHT_CLIENT.0);
    }
    let password_key =
        settings["outbound"]["cht_fhir_patients"]["destination"]["auth"]["password_key"].as_str().unwrap().to_owned();
    let admin = (&world.stack.couch_user, &world.stack.couch_password);
    let r = world
        .http
        .put(format!("{}/api/v1/settings?replace=true", world.stack.cht_url))
        .basic_auth(admin.0, Some(admin.1))
        .json(&settings)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "app_settings: {}", r.status());
    let r = world
        .http
        .put(format!("{}/api/v1/credentials/{password_key}", world.stack.cht_url))
        .basic_auth(admin.0, Some(admin.1))
        .header("content-type", "text/plain")
        .body(CHT_CLIENT.1)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "credentials: {}", r.status());
}

async fn fhir_put(world: &World, path: &str, body: &Value) {
    let r = world.http.put(format!("{}/{path}", world.stack.fhir_url)).json(body).send().await.unwrap();
    assert!(r.status().is_success(), "PUT {path}: {}", r.status());
}

async fn fhir_get(world: &World, path: &str) -> Option<Value> {
    let r = world.http.get(format!("{}/{path}", world.stack.fhir_url)).send().await.ok()?;
    if r.status().is_success() { r.json().await.ok() } else { None }
}

async fn search(world: &World, query: &str) -> Vec<Value> {
    let bundle = fhir_get(world, query).await.unwrap_or_else(|| panic!("search {query} failed"));
    common::bundle_resources(&bundle)
}

async fn cht(world: &World, method: reqwest::Method, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut request = world
        .http
        .request(method, format!("{}/{path}", world.stack.cht_url))
        .basic_auth(&world.stack.couch_user, Some(&world.stack.couch_password));
    if let Some(body) = body {
        request = request.json(body);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Runs the stand-in's outbound engine now (changes feed and retry queue) instead of waiting.
async fn flush_outbound(world: &World) {
    let _ = cht(world, reqwest::Method::POST, "_standin/outbound/flush", None).await;
}

async fn stack_cmd(world: &World, args: &[&str]) {
    let status = tokio::process::Command::new(&world.stack.script).args(args).status().await.unwrap();
    assert!(status.success(), "stack.sh {args:?}");
}

async fn ltfu(fault: Fault) {
    let Some(stack) = stack() else { return };
    let _serial = SERIAL.lock().await;
    let logs = capture_logs();
    let world = setup(stack).await;
    if fault == Fault::EveryPushTwice {
        cht(&world, reqwest::Method::PUT, "_standin/outbound/faults", Some(&json!({"deliver_twice": true}))).await;
    }

    // 1. The CHW registers a patient in CHT.
    let (_, place) = cht(
        &world,
        reqwest::Method::POST,
        "api/v1/places",
        Some(&json!({"name": "Kisumu district", "type": "district_hospital"})),
    )
    .await;
    let place = place["id"].as_str().expect("place created").to_owned();
    let person = json!({"name": "Achieng Atieno", "type": "person", "role": "patient", "place": place,
        "sex": "female", "date_of_birth": "1994-07-21", "phone": "+254722000333"});
    let (status, created) = cht(&world, reqwest::Method::POST, "api/v1/people", Some(&person)).await;
    assert_eq!(status, 200, "{created}");
    let patient = created["id"].as_str().unwrap().to_owned();
    let patient_in_fhir = eventually(Duration::from_secs(30), "the Patient pushed through OpenHIM", || async {
        flush_outbound(&world).await;
        fhir_get(&world, &format!("Patient/{patient}")).await
    })
    .await;
    assert_eq!(patient_in_fhir["name"][0]["text"], "Achieng Atieno");

    // 2. The EMR asks for a follow-up.
    let order = unique("ORD");
    let request = json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "identifier": [{"system": "https://emr.example.org/orders", "value": order}],
        "code": {"text": "Community follow-up of a patient lost to follow-up"},
        "subject": {"reference": format!("Patient/{patient}")},
        "requester": {"reference": format!("Organization/{}", world.organization), "display": "Kondele clinic"},
        "reasonCode": [{"text": "Missed ART refill for 30 days"}], "authoredOn": "2026-11-20T08:00:00Z"});
    let send_request = || async {
        let r = world
            .http
            .post(format!("{}/mediator/fhir/ServiceRequest", world.stack.openhim_router_url))
            .basic_auth(EMR_CLIENT.0, Some(EMR_CLIENT.1))
            .json(&request)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.unwrap_or(Value::Null))
    };
    if fault == Fault::ChtDownWhenRequested {
        stack_cmd(&world, &["down", "cht"]).await;
        let (status, _) = send_request().await;
        stack_cmd(&world, &["up", "cht"]).await;
        configure_cht(&world).await; // a restarted stand-in re-reads its settings file
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
        stack_cmd(&world, &["down", "hfs"]).await;
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
        stack_cmd(&world, &["up", "hfs"]).await;
    }
    let completed = eventually(Duration::from_secs(60), "the Task completed by the CHW's report", || async {
        flush_outbound(&world).await;
        fhir_get(&world, &format!("Task/{task_id}")).await.filter(|t| t["status"] == "completed")
    })
    .await;

    // The exact end state.
    assert_eq!(completed["output"][0]["valueReference"]["reference"], format!("Encounter/{report}"));
    assert_eq!(completed["businessStatus"]["text"], "returned_to_care");
    assert_eq!(search(&world, &format!("Patient?identifier={DOC_SYSTEM}|{patient}")).await.len(), 1, "one Patient");
    assert_eq!(
        search(&world, &format!("ServiceRequest?identifier=https://emr.example.org/orders|{order}")).await.len(),
        1,
        "one ServiceRequest"
    );
    assert_eq!(search(&world, &format!("Task?identifier={DOC_SYSTEM}|{record}")).await.len(), 1, "one Task");
    assert_eq!(search(&world, &format!("Encounter?identifier={DOC_SYSTEM}|{report}")).await.len(), 1, "one Encounter");
    let (_, records) = cht(
        &world,
        reqwest::Method::POST,
        "medic/_find",
        Some(&json!({"selector": {"form": "INTEROP_FOLLOW_UP", "fields.task_id": task_id}})),
    )
    .await;
    assert_eq!(records["docs"].as_array().unwrap().len(), 1, "one CHT follow-up record: {records}");
    assert_eq!(records["docs"][0]["fields"]["patient_uuid"], patient.as_str());

    // 4. The requester heard of it, once.
    let calls = eventually(Duration::from_secs(15), "the callback", || async {
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
        let tx = eventually(Duration::from_secs(10), "the transaction", || transaction_for(&world.admin, path, marker))
            .await;
        assert_eq!(tx["status"], "Successful", "{path}: {tx}");
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
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
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
