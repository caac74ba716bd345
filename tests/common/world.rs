//! The world of the end-to-end tests: OpenHIM reset, the mediator registered with its channels
//! installed, CHT configured as an app builder would (the mediator's app_settings, its online
//! CHT user, two places), the OpenHIM clients `cht` and `emr`, and a requester Organization with
//! an Endpoint. Used by `ltfu_e2e` and `fhir_reads`.

use std::time::Duration;

use cht_fhir_mediator::openhim::client::OpenhimClient;
use serde_json::{Value, json};

use super::openhim::{admin, ensure_client, reset};
use super::{Stack, TestApp, eventually, spawn_app};

pub const DOC_SYSTEM: &str = "https://cht.example.org/fhir/identifier/document-id";
pub const CHT_CLIENT: (&str, &str) = ("e2e-cht", "e2e-cht-password");
pub const EMR_CLIENT: (&str, &str) = ("e2e-emr", "e2e-emr-password");

pub struct World {
    pub stack: Stack,
    pub admin: OpenhimClient,
    pub app: TestApp,
    pub http: reqwest::Client,
    pub receiver: wiremock::MockServer,
    pub organization: String,
}

pub async fn setup(stack: Stack) -> World {
    let admin = admin(&stack, &stack.openhim_api_url);
    reset(&admin).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    configure_cht(&stack, &http).await;
    let (cht_user, cht_password) = mediator_cht_user(&stack, &http).await;
    // Patients the EMR registers go to this CHW area (the outbound mapping's default place).
    for (id, place) in [
        ("e2e-district", json!({"type": "district_hospital", "name": "Kisumu district"})),
        (
            "e2e-chw-area",
            json!({"type": "health_center", "name": "Kondele CHW area", "parent": {"_id": "e2e-district"}}),
        ),
    ] {
        let r = http
            .put(format!("{}/medic/{id}", stack.cht_url))
            .basic_auth(&stack.couch_user, Some(&stack.couch_password))
            .json(&place)
            .send()
            .await
            .unwrap();
        assert!(matches!(r.status().as_u16(), 201 | 409), "place {id}: {}", r.status());
    }
    let mut mapping: Value =
        serde_json::from_str(&std::fs::read_to_string("mediator-config/outbound.json").unwrap()).unwrap();
    mapping["default_place_id"] = json!("e2e-chw-area");
    let mapping_file = std::env::temp_dir().join(format!("ltfu-e2e-outbound-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&mapping_file, mapping.to_string()).unwrap();
    let app = spawn_app(&[
        ("OPENHIM_API_URL", &stack.openhim_api_url),
        ("OPENHIM_PASSWORD", "openhim-password"),
        ("OPENHIM_REGISTER", "true"),
        ("OPENHIM_INSTALL_CHANNELS", "true"),
        ("OPENHIM_HEARTBEAT_INTERVAL_MS", "1000"),
        ("TLS_CA_BUNDLE", &stack.ca_bundle),
        ("FHIR_URL", &stack.fhir_url),
        ("FHIR_WRITE_MODE", &super::write_mode()),
        ("CHT_URL", &stack.cht_url),
        ("CHT_USERNAME", &cht_user),
        ("CHT_PASSWORD", &cht_password),
        ("OUTBOUND_MAPPINGS_FILE", mapping_file.to_str().unwrap()),
    ])
    .await;
    eventually(Duration::from_secs(20), "channels installed", || async {
        app.state.openhim.get().channels_installed.then_some(())
    })
    .await;
    ensure_client(&admin, CHT_CLIENT.0, "cht", CHT_CLIENT.1).await;
    ensure_client(&admin, EMR_CLIENT.0, "emr", EMR_CLIENT.1).await;
    // OpenHIM's router caches channels (`caching.refreshMillis`, 1 s by default): the restored
    // channels route only once it has refreshed.
    let metadata = format!("{}/mediator/fhir/metadata", stack.openhim_router_url);
    eventually(Duration::from_secs(20), "OpenHIM's router to route the restored channels", || async {
        let r = http.get(&metadata).basic_auth(EMR_CLIENT.0, Some(EMR_CLIENT.1)).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    let world =
        World { http, receiver: wiremock::MockServer::start().await, organization: String::new(), stack, admin, app };
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&world.receiver)
        .await;
    // The requester: an Organization with an Endpoint, created as the EMR would (server ids, so
    // this works on a server that allows no client ids).
    let endpoint = fhir_create(&world, &json!({"resourceType": "Endpoint", "status": "active",
        "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "hl7-fhir-rest"},
        "payloadType": [{"text": "Task"}], "address": format!("{}/ltfu-callback", world.receiver.uri())}))
    .await;
    let organization = fhir_create(
        &world,
        &json!({"resourceType": "Organization",
        "name": "Kondele clinic", "endpoint": [{"reference": format!("Endpoint/{endpoint}")}]}),
    )
    .await;
    World { organization, ..world }
}

/// The EMR's follow-up request through OpenHIM's router: the status and the JSON answer.
pub async fn request_follow_up(world: &World, request: &Value) -> (u16, Value) {
    let r = world
        .http
        .post(format!("{}/mediator/fhir/ServiceRequest", world.stack.openhim_router_url))
        .basic_auth(EMR_CLIENT.0, Some(EMR_CLIENT.1))
        .json(request)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json::<Value>().await.unwrap_or(Value::Null))
}

/// The mediator's CHT user as the docs create it (`POST /api/v2/users`, role `interop`): not an
/// admin, so the LTFU runs on exactly what the shipped `roles` (online) and `permissions` give.
pub async fn mediator_cht_user(stack: &Stack, http: &reqwest::Client) -> (String, String) {
    let (user, password) = ("cht_fhir_mediator_e2e".to_owned(), "Interop-e2e-2026-mediator!".to_owned());
    let r = http
        .post(format!("{}/api/v2/users", stack.cht_url))
        .basic_auth(&stack.couch_user, Some(&stack.couch_password))
        .json(&json!({"username": user, "password": password, "roles": ["interop"]}))
        .send()
        .await
        .unwrap();
    let (status, body) = (r.status().as_u16(), r.text().await.unwrap());
    assert!(status == 200 || body.contains("taken"), "the mediator's CHT user: {status} {body}");
    let r = http.get(format!("{}/_session", stack.cht_url)).basic_auth(&user, Some(&password)).send().await.unwrap();
    let session: Value = r.json().await.unwrap();
    assert_eq!(session["userCtx"]["roles"], json!(["interop", "mm-online"]), "an online, non-admin user");
    (user, password)
}

/// What an app builder does in CHT: the mediator's app_settings (pointed at this OpenHIM and
/// this client) and the client's password in the credentials vault.
pub async fn configure_cht(stack: &Stack, http: &reqwest::Client) {
    let text = std::fs::read_to_string("mediator-config/cht/app_settings.json").unwrap();
    let mut settings: Value = serde_json::from_str(&text).unwrap();
    for push in settings["outbound"].as_object_mut().unwrap().values_mut() {
        push["destination"]["base_url"] = json!(stack.openhim_router_url);
        push["destination"]["auth"]["username"] = json!(CHT_CLIENT.0);
    }
    let password_key =
        settings["outbound"]["cht_fhir_patients"]["destination"]["auth"]["password_key"].as_str().unwrap().to_owned();
    let admin = (&stack.couch_user, &stack.couch_password);
    let r = http
        .put(format!("{}/api/v1/settings?replace=true", stack.cht_url))
        .basic_auth(admin.0, Some(admin.1))
        .json(&settings)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "app_settings: {}", r.status());
    let r = http
        .put(format!("{}/api/v1/credentials/{password_key}", stack.cht_url))
        .basic_auth(admin.0, Some(admin.1))
        .header("content-type", "text/plain")
        .body(CHT_CLIENT.1)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "credentials: {}", r.status());
}

/// `POST [fhir]/{type}`: the id the server gave.
pub async fn fhir_create(world: &World, body: &Value) -> String {
    let kind = body["resourceType"].as_str().unwrap();
    let r = world.http.post(format!("{}/{kind}", world.stack.fhir_url)).json(body).send().await.unwrap();
    assert!(r.status().is_success(), "POST {kind}: {}", r.status());
    r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

/// The one resource a search finds, if it finds exactly one.
pub async fn only(world: &World, query: &str) -> Option<Value> {
    let found = super::bundle_resources(&fhir_get(world, query).await?);
    (found.len() == 1).then(|| found[0].clone())
}

pub async fn fhir_get(world: &World, path: &str) -> Option<Value> {
    let (status, body) = world.stack.fhir_read(path).await;
    (200..300).contains(&status).then_some(body)
}

pub async fn search(world: &World, query: &str) -> Vec<Value> {
    let bundle = fhir_get(world, query).await.unwrap_or_else(|| panic!("search {query} failed"));
    super::bundle_resources(&bundle)
}

pub async fn cht(world: &World, method: reqwest::Method, path: &str, body: Option<&Value>) -> (u16, Value) {
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
pub async fn flush_outbound(world: &World) {
    let _ = cht(world, reqwest::Method::POST, "_standin/outbound/flush", None).await;
}

pub async fn stack_cmd(world: &World, args: &[&str]) {
    let status = tokio::process::Command::new(&world.stack.script).args(args).status().await.unwrap();
    assert!(status.success(), "stack.sh {args:?}");
}
