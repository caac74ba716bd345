//! The mediator killed mid-request and started again, on the real FHIR server: the report's
//! transaction reached the server, the mediator was killed (SIGKILL) before it could answer,
//! CHT got no 2xx and delivers again to the restarted mediator — which completes it without a
//! second Encounter or a stale or doubled Observation.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Killed, Stack, eventually, stack, unique};
use serde_json::json;

const DOC_SYSTEM: &str = "https://cht.example.org/fhir/identifier/document-id";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The mediator binary as its own process (so it can be killed), FHIR at `fhir_url`.
fn start_mediator(stack: &Stack, fhir_url: &str, port: u16, db: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_cht-fhir-mediator"))
        .env("PORT", port.to_string())
        .env("OPENHIM_REGISTER", "false")
        .env("FHIR_URL", fhir_url)
        .env("FHIR_WRITE_MODE", common::write_mode())
        .env("CHT_URL", &stack.cht_url)
        .env("CHT_USERNAME", &stack.couch_user)
        .env("CHT_PASSWORD", &stack.couch_password)
        .env("DEAD_LETTER_DB", db)
        .env("LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn live(port: u16) {
    eventually(Duration::from_secs(10), "the mediator to listen", || async {
        reqwest::get(format!("http://127.0.0.1:{port}/health/live")).await.ok().filter(|r| r.status().is_success())
    })
    .await;
}

#[tokio::test]
async fn a_mediator_killed_after_writing_and_restarted_completes_the_redelivery_without_duplicates() {
    let Some(stack) = stack() else { return };
    let proxy_port = free_port();
    // The answer is held for a minute: the mediator is killed long before, whatever the load.
    let _proxy = Killed(
        Command::new("node")
            .args(["tests/support/slow-proxy.mjs", &stack.fhir_url, &proxy_port.to_string(), "60000"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    eventually(Duration::from_secs(10), "the proxy to listen", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", proxy_port)).await.ok().map(drop)
    })
    .await;
    let db = std::env::temp_dir().join(format!("cht-fhir-mediator-test-crash-{}.sqlite3", uuid::Uuid::new_v4()));
    let db = db.to_str().unwrap().to_owned();
    let port = free_port();
    let mut mediator = Killed(start_mediator(&stack, &format!("http://127.0.0.1:{proxy_port}"), port, &db));
    live(port).await;

    let (patient, report) = (unique("pat"), unique("rep"));
    let http = reqwest::Client::new();
    let url = |port: u16, path: &str| format!("http://127.0.0.1:{port}{path}");
    let person = json!({"doc": {"_id": patient, "type": "person", "name": "Crash Test", "sex": "female"}});
    assert!(http.post(url(port, "/cht/patient")).json(&person).send().await.unwrap().status().is_success());
    let visit = json!({"doc": {"_id": report, "type": "data_record", "form": "pregnancy_home_visit", "reported_date": 1732000000000_i64,
        "fields": {"patient_uuid": patient, "vitals": {"weight": "61.25", "muac": 23.5}, "pregnancy": {"weeks_pregnant": "24"}}}});

    // The push: its transaction reaches the FHIR server, its answer is held back by the proxy...
    let in_flight = tokio::spawn({
        let (http, url, visit) = (http.clone(), url(port, "/cht/encounter"), visit.clone());
        async move { http.post(url).json(&visit).send().await }
    });
    eventually(Duration::from_secs(10), "the transaction written", || async {
        (stack.fhir_count(&format!("Encounter?identifier={DOC_SYSTEM}|{report}")).await == 1).then_some(())
    })
    .await;
    // ...and the mediator dies before answering: CHT sees no 2xx.
    mediator.0.kill().unwrap();
    mediator.0.wait().unwrap();
    assert!(in_flight.await.unwrap().is_err(), "CHT got no answer");

    // CHT delivers again (it retries until a 2xx), to the restarted mediator.
    let port = free_port();
    let _restarted = Killed(start_mediator(&stack, &stack.fhir_url, port, &db));
    live(port).await;
    let again = http.post(url(port, "/cht/encounter")).json(&visit).send().await.unwrap();
    assert_eq!(again.status(), 200);
    let encounters =
        common::bundle_resources(&stack.fhir_read(&format!("Encounter?identifier={DOC_SYSTEM}|{report}")).await.1);
    assert_eq!(encounters.len(), 1, "one Encounter");
    // Its id is the report's in client-ids mode, the server's in conditional mode.
    let encounter = encounters[0]["id"].as_str().unwrap();
    assert_eq!(
        stack.fhir_count(&format!("Observation?encounter=Encounter/{encounter}")).await,
        3,
        "the report's 3 answers, once each"
    );
    assert_eq!(stack.fhir_count(&format!("Patient?identifier={DOC_SYSTEM}|{patient}")).await, 1, "one Patient");
    let _ = std::fs::remove_file(&db);
}
