//! Shared test harness: start the mediator on port 0 exactly as `main` does, and find the real
//! local stack (scripts/stack.sh) when a test needs it.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod fhir_mock;
pub mod logs;
pub mod openhim;
pub mod token_server;
pub mod world;
pub mod yaml;

use std::collections::HashMap;
use std::time::Duration;

use cht_fhir_mediator::settings::{Settings, Source};
use cht_fhir_mediator::startup::Application;
use cht_fhir_mediator::state::AppState;

/// A running mediator.
pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub state: AppState,
    pub http: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Stops serving (graceful shutdown), as SIGTERM would.
    pub fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Stops and waits until the server and its OpenHIM heartbeat task are gone.
    pub async fn shutdown(mut self) {
        self.stop();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop();
        // Unlinking a SQLite file that is still open is fine on Unix.
        let db = self.state.settings.dead_letter_db.to_string_lossy().into_owned();
        if db.contains("cht-fhir-mediator-test-") {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{db}{suffix}"));
            }
        }
    }
}

/// Settings for a test: defaults, registration off, port 0, then `overrides`.
pub fn settings(overrides: &[(&str, &str)]) -> Settings {
    let dead_letters = std::env::temp_dir().join(format!("cht-fhir-mediator-test-{}.sqlite3", uuid::Uuid::new_v4()));
    let dead_letters = dead_letters.to_str().unwrap();
    // wiremock upstreams have no CapabilityStatement and tests count their calls: client ids,
    // unless a test says otherwise (the real-stack ones do, see `spawn_on_stack`).
    let defaults = [
        ("PORT", "0"),
        ("OPENHIM_REGISTER", "false"),
        ("LOG_LEVEL", "warn"),
        ("DEAD_LETTER_DB", dead_letters),
        ("FHIR_WRITE_MODE", "client-ids"),
    ];
    let mut env: HashMap<String, String> = defaults.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    for (k, v) in overrides {
        env.insert(k.to_string(), v.to_string());
    }
    Settings::from_source(Source::load_with_env(None, env).expect("settings source")).expect("settings")
}

/// Starts the mediator with `overrides`.
pub async fn spawn_app(overrides: &[(&str, &str)]) -> TestApp {
    let settings = settings(overrides);
    cht_fhir_mediator::telemetry::init(&settings.server.log_level, settings.server.log_format);
    let app = Application::build(settings).await.expect("build app");
    let port = app.port();
    let state = app.state().clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        state,
        http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
        shutdown: Some(tx),
        task: Some(task),
    }
}

/// Kills and reaps its process when dropped, also when an assertion fails half-way.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A fresh id, so reruns against the same stack never collide.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

/// The write mode the real-stack tests run in: `TEST_FHIR_WRITE_MODE` (the test command runs the
/// FHIR contract suites once per mode), else `auto` (what the server's CapabilityStatement says).
pub fn write_mode() -> String {
    std::env::var("TEST_FHIR_WRITE_MODE").ok().filter(|m| !m.is_empty()).unwrap_or_else(|| "auto".into())
}

/// The mediator pointed at the stack's FHIR server and CHT (admin credentials), in [`write_mode`].
pub async fn spawn_on_stack(stack: &Stack) -> TestApp {
    spawn_on_stack_with(stack, &[]).await
}

/// [`spawn_on_stack`] with more settings.
pub async fn spawn_on_stack_with(stack: &Stack, extra: &[(&str, &str)]) -> TestApp {
    let mode = write_mode();
    let mut env = vec![
        ("FHIR_URL", stack.fhir_url.as_str()),
        ("CHT_URL", stack.cht_url.as_str()),
        ("CHT_USERNAME", stack.couch_user.as_str()),
        ("CHT_PASSWORD", stack.couch_password.as_str()),
        ("FHIR_WRITE_MODE", mode.as_str()),
    ];
    env.extend_from_slice(extra);
    spawn_app(&env).await
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The real local stack started by `scripts/stack.sh up` (its env file sourced by scripts/test.sh).
#[derive(Debug, Clone)]
pub struct Stack {
    pub openhim_api_url: String,
    pub openhim_router_url: String,
    pub ca_bundle: String,
    pub openhim_core_dir: String,
    pub mongo_url_base: String,
    pub script: String,
    /// The real FHIR server the FHIR contract tests run against: [`fhir_server`].
    pub fhir_url: String,
    /// Its service in `scripts/stack.sh` (to stop and start it).
    pub fhir_service: String,
    /// The CHT API stand-in, backed by pouchdb-server.
    pub cht_url: String,
    pub couch_url: String,
    pub couch_user: String,
    pub couch_password: String,
}

impl Stack {
    /// `GET [fhir]/{path}` as it is now: `Cache-Control: no-cache`, since HAPI answers a search
    /// repeated within a minute from its cache. The status and the JSON answer (`Null` if none).
    pub async fn fhir_read(&self, path: &str) -> (u16, serde_json::Value) {
        let r = reqwest::Client::new()
            .get(format!("{}/{path}", self.fhir_url))
            .header("cache-control", "no-cache")
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// The CHT records of `form` whose `fields.<field>` is `value`, as an admin reads them through
    /// a stock view (`medic-client/reports_by_form`), never an unindexed `_find`: the stand-in
    /// counts those, and the tests assert the mediator makes none.
    pub async fn cht_records(&self, form: &str, field: &str, value: &str) -> Vec<serde_json::Value> {
        let key: String =
            url::form_urlencoded::byte_serialize(serde_json::json!([form]).to_string().as_bytes()).collect();
        let r = reqwest::Client::new()
            .get(format!(
                "{}/medic/_design/medic-client/_view/reports_by_form?key={key}&include_docs=true&reduce=false",
                self.cht_url
            ))
            .basic_auth(&self.couch_user, Some(&self.couch_password))
            .send()
            .await
            .unwrap();
        let rows = r.json::<serde_json::Value>().await.unwrap()["rows"].as_array().cloned().unwrap_or_default();
        rows.into_iter().map(|r| r["doc"].clone()).filter(|d| d["fields"][field] == value).collect()
    }

    /// The stand-in's count of unindexed `_find`s so far (`GET /_standin/stats`).
    pub async fn unindexed_finds(&self) -> u64 {
        let r = reqwest::Client::new().get(format!("{}/_standin/stats", self.cht_url)).send().await.unwrap();
        r.json::<serde_json::Value>().await.unwrap()["unindexed_finds"].as_u64().expect("the stand-in's stats")
    }

    /// How many entries a FHIR search on the real server returns (entries counted, `total` not trusted).
    pub async fn fhir_count(&self, query: &str) -> usize {
        let (_, bundle) = self.fhir_read(query).await;
        bundle["entry"].as_array().map_or(0, Vec::len)
    }
}

/// The resources of a search Bundle's entries.
pub fn bundle_resources(bundle: &serde_json::Value) -> Vec<serde_json::Value> {
    bundle["entry"].as_array().cloned().unwrap_or_default().into_iter().map(|e| e["resource"].clone()).collect()
}

/// The FHIR server of the stack the real-stack tests use: `TEST_FHIR_SERVER` — `hfs` (Helios,
/// the default), `hapi` (HAPI as its starter ships) or `hapistrict` (HAPI without client ids,
/// validating against the profiles); the test command runs the FHIR contract suites on each.
pub fn fhir_server() -> String {
    std::env::var("TEST_FHIR_SERVER").ok().filter(|m| !m.is_empty()).unwrap_or_else(|| "hfs".into())
}

fn fhir_url_var(server: &str) -> &'static str {
    match server {
        "hfs" => "STACK_FHIR_URL",
        "hapi" => "STACK_HAPI_URL",
        "hapistrict" => "STACK_HAPISTRICT_URL",
        other => panic!("TEST_FHIR_SERVER={other}: expected hfs, hapi or hapistrict"),
    }
}

/// The stack, or a panic saying how to start it. `SKIP_STACK_TESTS=1` turns the real-stack tests
/// into no-ops for a quick local `cargo test`; CI never sets it.
pub fn stack() -> Option<Stack> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match var("STACK_OPENHIM_API_URL") {
        Some(api) => Some(Stack {
            openhim_api_url: api,
            openhim_router_url: var("STACK_OPENHIM_ROUTER_URL").expect("STACK_OPENHIM_ROUTER_URL"),
            ca_bundle: var("STACK_CA_BUNDLE").expect("STACK_CA_BUNDLE"),
            openhim_core_dir: var("STACK_OPENHIM_CORE_DIR").expect("STACK_OPENHIM_CORE_DIR"),
            mongo_url_base: var("STACK_MONGO_URL_BASE").expect("STACK_MONGO_URL_BASE"),
            script: var("STACK_SCRIPT").expect("STACK_SCRIPT"),
            fhir_url: {
                let name = fhir_url_var(&fhir_server());
                var(name).unwrap_or_else(|| panic!("{name}: the stack runs no {} service", fhir_server()))
            },
            fhir_service: fhir_server(),
            cht_url: var("STACK_CHT_URL").expect("STACK_CHT_URL"),
            couch_url: var("STACK_COUCH_URL").expect("STACK_COUCH_URL"),
            couch_user: var("STACK_COUCH_USER").expect("STACK_COUCH_USER"),
            couch_password: var("STACK_COUCH_PASSWORD").expect("STACK_COUCH_PASSWORD"),
        }),
        None if var("SKIP_STACK_TESTS").as_deref() == Some("1") => {
            eprintln!("SKIP_STACK_TESTS=1: real-stack test not run");
            None
        }
        None => panic!(
            "the real local stack is not running: run `scripts/test.sh` (or `scripts/stack.sh up` and \
             `source \"$(scripts/stack.sh env-file)\"`), or set SKIP_STACK_TESTS=1 to skip real-stack tests"
        ),
    }
}
