//! Contract tests against a REAL OpenHIM core 4.0.5 (scripts/stack.sh): registration, heartbeats,
//! live console config, channel installation, routing through port 5001 with stored
//! orchestrations, and registration once a core that was down comes up.
//!
//! The tests share one core and one mediator urn, so they run one at a time and each starts from
//! a core without this mediator or its channels.

mod common;

use std::process::Command;
use std::time::Duration;

use cht_fhir_mediator::openhim::client::{OpenhimClient, encode_segment};
use common::openhim::{CHANNELS, URN, admin, live_channels, mediator_record, reset, transaction_for};
use common::{Stack, TestApp, eventually, spawn_app, stack};
use reqwest::Method;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn registered_app(stack: &Stack, extra: &[(&str, &str)]) -> TestApp {
    let mut env = vec![
        ("OPENHIM_API_URL", stack.openhim_api_url.as_str()),
        ("OPENHIM_PASSWORD", "openhim-password"),
        ("OPENHIM_REGISTER", "true"),
        ("OPENHIM_HEARTBEAT_INTERVAL_MS", "500"),
        ("OPENHIM_RETRY_MAX_MS", "1000"),
        ("TLS_CA_BUNDLE", stack.ca_bundle.as_str()),
    ];
    env.extend_from_slice(extra);
    spawn_app(&env).await
}

async fn wait_registered(app: &TestApp) {
    eventually(Duration::from_secs(20), "registration", || async { app.state.openhim.get().registered.then_some(()) })
        .await;
}

#[tokio::test]
async fn registration_appears_in_openhim_with_the_documented_fields() {
    let Some(stack) = stack() else { return };
    let _serial = SERIAL.lock().await;
    let admin = admin(&stack, &stack.openhim_api_url);
    reset(&admin).await;
    let app = registered_app(&stack, &[("FHIR_URL", "http://fhir.test:8090")]).await;
    let record =
        eventually(Duration::from_secs(20), "the mediator in GET /mediators", || mediator_record(&admin)).await;
    assert_eq!(record["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(record["name"], "CHT FHIR Mediator");
    assert_eq!(record["endpoints"][0]["host"], "127.0.0.1");
    assert_eq!(record["endpoints"][0]["port"], app.port);
    let channels: Vec<&str> =
        record["defaultChannelConfig"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(channels, CHANNELS);
    let cht = &record["defaultChannelConfig"][0];
    assert_eq!(cht["urlPattern"], "^/mediator/cht/.*$");
    assert_eq!(cht["routes"][0]["pathTransform"], "s/\\/mediator//");
    let params: Vec<&str> =
        record["configDefs"].as_array().unwrap().iter().map(|d| d["param"].as_str().unwrap()).collect();
    assert!(params.contains(&"fhirUrl") && params.contains(&"chtPassword"), "{params:?}");
    let password_def = record["configDefs"].as_array().unwrap().iter().find(|d| d["param"] == "chtPassword").unwrap();
    assert_eq!(password_def["type"], "password");
    assert_eq!(record["config"]["fhirUrl"], "http://fhir.test:8090", "defaults come from the settings");
    assert_eq!(record["config"]["fhirPassword"], "", "credentials are not copied into OpenHIM");
    app.shutdown().await;
}

#[tokio::test]
async fn heartbeats_advance_last_heartbeat() {
    let Some(stack) = stack() else { return };
    let _serial = SERIAL.lock().await;
    let admin = admin(&stack, &stack.openhim_api_url);
    reset(&admin).await;
    let app = registered_app(&stack, &[]).await;
    let first = eventually(Duration::from_secs(20), "a first heartbeat", || async {
        mediator_record(&admin).await.and_then(|m| m["_lastHeartbeat"].as_str().map(str::to_owned))
    })
    .await;
    let later = eventually(Duration::from_secs(10), "a later heartbeat", || async {
        let now = mediator_record(&admin).await?["_lastHeartbeat"].as_str()?.to_owned();
        (now > first).then_some(now)
    })
    .await;
    assert!(later > first);
    let record = mediator_record(&admin).await.unwrap();
    assert!(record["_uptime"].as_f64().unwrap() >= 0.0);
    app.shutdown().await;
}

#[tokio::test]
async fn console_config_is_applied_at_the_next_heartbeats() {
    let Some(stack) = stack() else { return };
    let _serial = SERIAL.lock().await;
    let admin = admin(&stack, &stack.openhim_api_url);
    reset(&admin).await;
    let fhir = MockServer::start().await;
    Mock::given(method("GET")).and(path("/metadata")).respond_with(ResponseTemplate::new(200)).mount(&fhir).await;
    let cht = MockServer::start().await;
    Mock::given(method("GET")).and(path("/api/info")).respond_with(ResponseTemplate::new(200)).mount(&cht).await;
    // Upstreams the mediator cannot reach: not ready.
    let app = registered_app(&stack, &[("FHIR_URL", "http://127.0.0.1:9"), ("CHT_URL", "http://127.0.0.1:9")]).await;
    wait_registered(&app).await;
    assert_eq!(app.http.get(app.url("/health/ready")).send().await.unwrap().status(), 503);

    // The admin points both upstreams at live servers in the console.
    let mut config = mediator_record(&admin).await.unwrap()["config"].clone();
    config["fhirUrl"] = json!(fhir.uri());
    config["chtUrl"] = json!(cht.uri());
    config["chtTimeoutMs"] = json!(2500);
    let path = format!("/mediators/{}/config", encode_segment(URN));
    let response = admin.request(Method::PUT, &path, Some(&config)).await.unwrap();
    assert!(response.status.is_success(), "PUT config: {}", response.status);
    // Heartbeat interval is 500 ms: the next heartbeat brings the change. The bound is generous
    // (a loaded CI machine) but far below what a restart-to-apply would take.
    eventually(Duration::from_secs(10), "readiness after the console change", || async {
        (app.http.get(app.url("/health/ready")).send().await.ok()?.status() == 200).then_some(())
    })
    .await;
    let live = app.state.live.current();
    assert_eq!(live.cht.timeout, Duration::from_millis(2500));
    let status: Value = app.http.get(app.url("/")).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["config"]["origin"], "console");

    // A config that would break the mediator is refused whole; the working one stays.
    config["fhirUrl"] = json!("not a url");
    admin.request(Method::PUT, &path, Some(&config)).await.unwrap();
    let error =
        eventually(Duration::from_secs(10), "the refusal", || async { app.state.live.status().last_error }).await;
    assert!(error.contains("fhirUrl"), "{error}");
    assert_eq!(app.state.live.current().fhir.url.as_str(), format!("{}/", fhir.uri()));
    assert_eq!(app.http.get(app.url("/health/ready")).send().await.unwrap().status(), 200);
    app.shutdown().await;
}

#[tokio::test]
async fn register_command_installs_the_default_channels() {
    let Some(stack) = stack() else { return };
    let _serial = SERIAL.lock().await;
    let admin = admin(&stack, &stack.openhim_api_url);
    reset(&admin).await;
    let run = |api: &str| {
        Command::new(env!("CARGO_BIN_EXE_cht-fhir-mediator"))
            .args(["register", "--install-channels"])
            .env("OPENHIM_API_URL", api)
            .env("OPENHIM_PASSWORD", "openhim-password")
            .env("TLS_CA_BUNDLE", &stack.ca_bundle)
            .env("MEDIATOR_ROUTE_HOST", "127.0.0.1")
            .env("MEDIATOR_ROUTE_PORT", "6543")
            .output()
            .unwrap()
    };
    let out = run(&stack.openhim_api_url);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("default channels installed"));
    let channels = Value::Array(live_channels(&admin).await);
    for name in CHANNELS {
        let channel = channels
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("channel {name} missing"));
        assert_eq!(channel["routes"][0]["port"], 6543);
        assert_eq!(channel["routes"][0]["host"], "127.0.0.1");
        assert!(channel["urlPattern"].as_str().unwrap().starts_with("^/mediator/"));
    }
    let fhir_channel = channels.as_array().unwrap().iter().find(|c| c["name"] == "FHIR requests to CHT").unwrap();
    assert_eq!(fhir_channel["autoRetryEnabled"], true);

    // Again (a restart, a second replica): succeeds and installs nothing twice.
    let again = run(&stack.openhim_api_url);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    let channels = live_channels(&admin).await;
    for name in CHANNELS {
        assert_eq!(channels.iter().filter(|c| c["name"] == name).count(), 1, "{name} installed once");
    }

    // Scripts can trust the exit codes: 1 when OpenHIM cannot be reached, 2 for bad settings.
    assert_eq!(run("https://127.0.0.1:9").status.code(), Some(1));
    let bad = Command::new(env!("CARGO_BIN_EXE_cht-fhir-mediator"))
        .arg("register")
        .env("OPENHIM_API_URL", "nope")
        .env("OPENHIM_PASSWORD", "x")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("OPENHIM_API_URL"));
}

/// An OpenHIM client allowed on the mediator's channels (role `cht`).
async fn channel_client(admin: &OpenhimClient) -> (&'static str, &'static str) {
    let (id, password) = ("test-cht-client", "test-cht-password");
    common::openhim::ensure_client(admin, id, "cht", password).await;
    (id, password)
}

#[tokio::test]
async fn requests_through_the_router_are_stored_with_the_mediators_orchestrations_and_status() {
    let Some(stack) = stack() else { return };
    let _serial = SERIAL.lock().await;
    let admin = admin(&stack, &stack.openhim_api_url);
    reset(&admin).await;
    let fhir = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/Patient/router-ok"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"resourceType": "Patient", "id": "router-ok"})))
        .mount(&fhir)
        .await;
    Mock::given(method("PUT"))
        .and(path("/Patient/router-fail"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&fhir)
        .await;
    // Route credentials: only OpenHIM (which the registration gives them to) may call the mediator.
    let app = registered_app(
        &stack,
        &[
            ("FHIR_URL", &fhir.uri()),
            ("OPENHIM_INSTALL_CHANNELS", "true"),
            ("ROUTE_USERNAME", "openhim-route"),
            ("ROUTE_PASSWORD", "r0ute-s3cret"),
        ],
    )
    .await;
    eventually(Duration::from_secs(20), "channels installed", || async {
        app.state.openhim.get().channels_installed.then_some(())
    })
    .await;
    let (client_id, password) = channel_client(&admin).await;
    let http = reqwest::Client::new();
    let send = |id: &str| {
        http.post(format!("{}/mediator/patient", stack.openhim_router_url))
            .basic_auth(client_id, Some(password))
            .json(&json!({"resourceType": "Patient", "id": id}))
            .send()
    };

    let ok = eventually(Duration::from_secs(10), "the channel to route", || async {
        let r = send("router-ok").await.ok()?;
        (r.status() != 404).then_some(r)
    })
    .await;
    assert_eq!(ok.status(), 201, "OpenHIM sends the route credentials");
    let direct = reqwest::Client::new()
        .post(app.url("/patient"))
        .json(&json!({"resourceType": "Patient", "id": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), 401, "a caller bypassing OpenHIM is refused");
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["id"], "router-ok", "OpenHIM returns the mediator's response body, not the envelope");
    // The core stores a transaction as Processing first and its outcome later: wait for the outcome.
    let tx = eventually(Duration::from_secs(10), "the stored transaction", || async {
        transaction_for(&admin, "/mediator/patient", "router-ok").await
    })
    .await;
    assert_eq!(tx["status"], "Successful");
    assert_eq!(tx["response"]["status"], 201);
    // The core appends its own record of the route call (named after the route; its path shows
    // the pathTransform at work); the rest are exactly the mediator's.
    let (core, mediator): (Vec<&Value>, Vec<&Value>) =
        tx["orchestrations"].as_array().unwrap().iter().partition(|o| o["name"] == "CHT FHIR Mediator");
    assert_eq!(core.len(), 1, "{tx}");
    assert_eq!(core[0]["request"]["path"], "/patient");
    assert_eq!(mediator.len(), 1, "{tx}");
    assert_eq!(mediator[0]["name"], "FHIR PUT Patient/router-ok");
    assert_eq!(mediator[0]["request"]["path"], "/Patient/router-ok");
    assert_eq!(mediator[0]["response"]["status"], 201);
    let tx_id = tx["_id"].as_str().unwrap();
    assert_eq!(
        fhir.received_requests().await.unwrap()[0].headers["x-openhim-transactionid"],
        tx_id,
        "transaction id forwarded"
    );

    let failed = send("router-fail").await.unwrap();
    assert_eq!(failed.status(), 502);
    let tx = eventually(Duration::from_secs(10), "the failed transaction", || async {
        transaction_for(&admin, "/mediator/patient", "router-fail").await
    })
    .await;
    assert_eq!(tx["status"], "Failed", "an upstream failure is never stored as a success");
    let fhir_call =
        tx["orchestrations"].as_array().unwrap().iter().find(|o| o["name"] == "FHIR PUT Patient/router-fail").unwrap();
    assert_eq!(fhir_call["response"]["status"], 500);
    app.shutdown().await;
}

/// A second, independent core (own ports and database) this test starts and stops itself.
struct LateCore {
    pid: u32,
    _child: std::process::Child,
}

impl Drop for LateCore {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.pid)]).status();
    }
}

/// A core's certificate: the stack's own (its test CA), or the core's bundled default one.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CoreCert {
    Stack,
    BundledDefault,
}

fn start_late_core(stack: &Stack, api_port: u16) -> LateCore {
    start_core(stack, api_port, 15101, CoreCert::Stack)
}

/// A core with its API on `api_port`, its HTTP router on `router_port` (HTTPS on the one below).
fn start_core(stack: &Stack, api_port: u16, router_port: u16, cert: CoreCert) -> LateCore {
    use std::os::unix::process::CommandExt;
    let db = format!("openhim_late_{}_{api_port}", std::process::id());
    let mut args: Vec<String> = [
        "openhim-config",
        "--api-port",
        &api_port.to_string(),
        "--router-http-port",
        &router_port.to_string(),
        "--router-https-port",
        &(router_port - 1).to_string(),
        "--db",
        &db,
    ]
    .map(str::to_owned)
    .to_vec();
    if cert == CoreCert::BundledDefault {
        args.push("--default-cert".into());
    }
    let config = Command::new(&stack.script).args(&args).output().unwrap();
    assert!(config.status.success(), "{}", String::from_utf8_lossy(&config.stderr));
    let file = std::env::temp_dir().join(format!("{db}.json"));
    std::fs::write(&file, &config.stdout).unwrap();
    let log = std::fs::File::create(std::env::temp_dir().join(format!("{db}.log"))).unwrap();
    let child = Command::new("node")
        .arg("lib/server.js")
        .arg(format!("--conf={}", file.display()))
        .current_dir(&stack.openhim_core_dir)
        // The core reads config from environment variables named like its settings.
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("HOME", std::env::var("HOME").unwrap())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .process_group(0)
        .spawn()
        .unwrap();
    LateCore { pid: child.id(), _child: child }
}

#[tokio::test]
async fn a_mediator_started_while_openhim_is_down_registers_once_it_comes_up() {
    let Some(stack) = stack() else { return };
    let api_port = 18080;
    let api_url = format!("https://127.0.0.1:{api_port}");
    let app = registered_app(&stack, &[("OPENHIM_API_URL", &api_url)]).await;
    let error = eventually(Duration::from_secs(10), "a failed registration attempt", || async {
        app.state.openhim.get().last_error
    })
    .await;
    assert!(error.contains("could not be reached"), "{error}");
    assert!(!app.state.openhim.get().registered);
    assert_eq!(
        app.http.get(app.url("/health/live")).send().await.unwrap().status(),
        200,
        "serves while OpenHIM is down"
    );

    let core = start_late_core(&stack, api_port);
    wait_registered(&app).await;
    let late_admin = admin(&stack, &api_url);
    let record =
        eventually(Duration::from_secs(10), "the record on the late core", || mediator_record(&late_admin)).await;
    assert_eq!(record["version"], env!("CARGO_PKG_VERSION"));

    // The core restarts while the mediator heartbeats: failures are reported, never fatal, and
    // heartbeats resume on the restarted core.
    drop(core);
    let failing = eventually(Duration::from_secs(10), "a failed heartbeat", || async {
        app.state.openhim.get().last_error.filter(|e| e.contains("could not be reached"))
    })
    .await;
    assert!(!failing.is_empty());
    assert_eq!(
        app.http.get(app.url("/health/live")).send().await.unwrap().status(),
        200,
        "serves while OpenHIM restarts"
    );
    let restarted_at = chrono::Utc::now();
    let _core = start_late_core(&stack, api_port);
    eventually(Duration::from_secs(30), "heartbeats on the restarted core", || async {
        let record = mediator_record(&late_admin).await?;
        let last = chrono::DateTime::parse_from_rfc3339(record["_lastHeartbeat"].as_str()?).ok()?;
        (last > restarted_at).then_some(())
    })
    .await;
    // The core records the heartbeat before the mediator has read the answer: wait for the
    // mediator's own view to catch up rather than reading it once.
    eventually(Duration::from_secs(15), "the error to clear once heartbeats succeed", || async {
        app.state.openhim.get().last_error.is_none().then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_upstream_certificate_from_an_unknown_ca_is_refused_unless_the_ca_bundle_names_it() {
    let Some(stack) = stack() else { return };
    // OpenHIM's API serves a certificate from the stack's own test CA: a stand-in for any
    // upstream with a private CA. Only the TLS handshake matters here.
    let probe = |extra: Vec<(&'static str, String)>| {
        let stack = stack.clone();
        async move {
            let mut env: Vec<(&str, String)> =
                vec![("FHIR_URL", stack.openhim_api_url.clone()), ("CHT_URL", stack.openhim_api_url.clone())];
            env.extend(extra);
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let app = spawn_app(&env).await;
            let body: Value = app.http.get(app.url("/health/ready")).send().await.unwrap().json().await.unwrap();
            body["checks"]["fhir"]["detail"].as_str().unwrap().to_owned()
        }
    };
    let refused = probe(vec![]).await;
    assert!(refused.contains("certificate") || refused.contains("UnknownIssuer"), "{refused}");
    let trusted = probe(vec![("TLS_CA_BUNDLE", stack.ca_bundle.clone())]).await;
    assert!(trusted.starts_with("HTTP "), "with the CA bundle the handshake succeeds: {trusted}");
}

#[tokio::test]
async fn a_core_serving_its_bundled_default_certificate_is_trusted_once_pinned() {
    let Some(stack) = stack() else { return };
    let (api_port, router_port) = (18180, 15201);
    let api_url = format!("https://127.0.0.1:{api_port}");
    let default_cert = format!("{}/resources/certs/default/cert.pem", stack.openhim_core_dir);
    let _core = start_core(&stack, api_port, router_port, CoreCert::BundledDefault);
    let admin = common::openhim::admin_trusting(&api_url, &default_cert);
    eventually(Duration::from_secs(60), "the core on its default certificate", || async {
        admin.get_json("/mediators").await.ok()
    })
    .await;
    let core_env = |extra: &[(&'static str, String)]| {
        let mut env: Vec<(&'static str, String)> = vec![
            ("OPENHIM_API_URL", api_url.clone()),
            ("OPENHIM_PASSWORD", "openhim-password".into()),
            ("OPENHIM_REGISTER", "true".into()),
            ("OPENHIM_HEARTBEAT_INTERVAL_MS", "500".into()),
            ("OPENHIM_RETRY_MAX_MS", "1000".into()),
        ];
        env.extend_from_slice(extra);
        env
    };

    // As an admin would first run it: not trusted, and `check` says which line to add.
    let unpinned_env = core_env(&[]);
    let unpinned = spawn_app(&unpinned_env.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>()).await;
    let error = eventually(Duration::from_secs(10), "a refused handshake", || async {
        unpinned.state.openhim.get().last_error
    })
    .await;
    assert!(error.contains("certificate"), "{error}");
    assert!(!unpinned.state.openhim.get().registered);
    unpinned.shutdown().await;
    let check = Command::new(env!("CARGO_BIN_EXE_cht-fhir-mediator"))
        .arg("check")
        .env("OPENHIM_API_URL", &api_url)
        .env("OPENHIM_PASSWORD", "openhim-password")
        .env("DEAD_LETTER_DB", std::env::temp_dir().join(format!("check-{}.sqlite3", uuid::Uuid::new_v4())))
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&check.stdout).into_owned();
    let pin = printed
        .lines()
        .find_map(|l| l.trim().strip_prefix("to trust exactly this certificate: OPENHIM_TLS_PIN_SHA256="))
        .unwrap_or_else(|| panic!("check prints the pin line:\n{printed}"))
        .to_owned();
    assert!(printed.contains(", self-signed"), "{printed}");

    // Pinned by that fingerprint: it registers, heartbeats, installs its channels and routes.
    let fhir = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/Patient/pinned-ok"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"resourceType": "Patient", "id": "pinned-ok"})))
        .mount(&fhir)
        .await;
    let pinned_env = core_env(&[
        ("OPENHIM_TLS_PIN_SHA256", pin.clone()),
        ("OPENHIM_INSTALL_CHANNELS", "true".into()),
        ("FHIR_URL", fhir.uri()),
    ]);
    let app = spawn_app(&pinned_env.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>()).await;
    wait_registered(&app).await;
    eventually(Duration::from_secs(20), "channels installed", || async {
        app.state.openhim.get().channels_installed.then_some(())
    })
    .await;
    let first = eventually(Duration::from_secs(10), "a heartbeat", || async {
        mediator_record(&admin).await?["_lastHeartbeat"].as_str().map(str::to_owned)
    })
    .await;
    eventually(Duration::from_secs(10), "a later heartbeat", || async {
        let last = mediator_record(&admin).await?["_lastHeartbeat"].as_str()?.to_owned();
        (last > first).then_some(())
    })
    .await;
    common::openhim::ensure_client(&admin, "pinned-cht", "cht", "pinned-cht-password").await;
    let routed = eventually(Duration::from_secs(15), "routing through the core", || async {
        let r = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{router_port}/mediator/patient"))
            .basic_auth("pinned-cht", Some("pinned-cht-password"))
            .json(&json!({"resourceType": "Patient", "id": "pinned-ok"}))
            .send()
            .await
            .ok()?;
        (r.status() != 404).then_some(r.status())
    })
    .await;
    assert_eq!(routed, 201);
    app.shutdown().await;

    // The same certificate given as a file in TLS_CA_BUNDLE is trusted too (exactly that one).
    let bundled_env = core_env(&[("TLS_CA_BUNDLE", default_cert.clone())]);
    let bundled = spawn_app(&bundled_env.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>()).await;
    wait_registered(&bundled).await;
    bundled.shutdown().await;
}

#[tokio::test]
async fn a_default_channel_deleted_after_it_carried_transactions_is_restored_on_install() {
    let Some(stack) = stack() else { return };
    let _serial = SERIAL.lock().await;
    let admin = admin(&stack, &stack.openhim_api_url);
    reset(&admin).await;
    let fhir = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"resourceType": "Patient", "id": "restored"})))
        .mount(&fhir)
        .await;
    let env = [("FHIR_URL", fhir.uri()), ("OPENHIM_INSTALL_CHANNELS", "true".into())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (client_id, password) = channel_client(&admin).await;
    let route = || async {
        let r = reqwest::Client::new()
            .post(format!("{}/mediator/patient", stack.openhim_router_url))
            .basic_auth(client_id, Some(password))
            .json(&json!({"resourceType": "Patient", "id": "restored"}))
            .send()
            .await
            .ok()?;
        (r.status() != 404).then_some(r.status())
    };
    let app = registered_app(&stack, &env).await;
    eventually(Duration::from_secs(20), "channels installed", || async {
        app.state.openhim.get().channels_installed.then_some(())
    })
    .await;
    assert_eq!(eventually(Duration::from_secs(10), "routing", route).await, 201);
    eventually(Duration::from_secs(10), "the transaction stored", || async {
        transaction_for(&admin, "/mediator/patient", "restored").await
    })
    .await;
    app.shutdown().await;

    // The admin deletes the channel: it carried a transaction, so the core only marks it deleted
    // (and its unique name stays taken — installing it again used to fail with E11000).
    let channel = live_channels(&admin).await.into_iter().find(|c| c["name"] == "Reference mediator paths").unwrap();
    let id = channel["_id"].as_str().unwrap().to_owned();
    admin.request(Method::DELETE, &format!("/channels/{id}"), None).await.unwrap();
    let all = admin.get_json("/channels").await.unwrap();
    let marked = all.as_array().unwrap().iter().find(|c| c["_id"] == id.as_str()).unwrap();
    assert_eq!(marked["status"], "deleted", "soft-deleted, as the core does it");

    let again = registered_app(&stack, &env).await;
    eventually(Duration::from_secs(20), "channels installed again", || async {
        again.state.openhim.get().channels_installed.then_some(())
    })
    .await;
    assert!(again.state.openhim.get().last_error.is_none(), "{:?}", again.state.openhim.get().last_error);
    let live = live_channels(&admin).await;
    for name in CHANNELS {
        assert_eq!(live.iter().filter(|c| c["name"] == name).count(), 1, "{name} present once");
    }
    assert!(live.iter().any(|c| c["_id"] == id.as_str()), "the deleted channel itself was restored");
    // The core's router caches channels (caching.refreshMillis, 1 s): the restored routes apply
    // from its next refresh.
    eventually(Duration::from_secs(10), "routing again through the restored channel", || async {
        route().await.filter(|s| *s == 201)
    })
    .await;
    again.shutdown().await;
}
