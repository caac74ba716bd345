//! Backfill against the real stack: a few thousand generated CHT documents (patients, a CHW,
//! mapped and unmapped reports, unconvertible persons) read from the CHT changes feed into the
//! FHIR server, interrupted with Ctrl-C (SIGINT) part-way, then resumed from its checkpoint:
//! every patient and report ends up in FHIR exactly once, unconvertible ones as dead letters.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{Stack, stack, unique};
use serde_json::{Value, json};

const DOC_SYSTEM: &str = "https://cht.example.org/fhir/identifier/document-id";
const PATIENTS: usize = 2000;
const REPORTS: usize = 300;
const BROKEN: usize = 5;

fn command(stack: &Stack, db: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cht-fhir-mediator"));
    cmd.arg("backfill")
        .args(args)
        .env("DEAD_LETTER_DB", db)
        .env("FHIR_URL", &stack.fhir_url)
        .env("FHIR_WRITE_MODE", common::write_mode())
        // A bulk load writes transactions of many Patients: on a loaded 2-core machine one took
        // longer than the 5 s default, and the run stopped (honestly: "run again to resume"). An
        // operator gives a backfill more time, as the README says.
        .env("FHIR_TIMEOUT_MS", "30000")
        .env("CHT_URL", &stack.cht_url)
        .env("CHT_USERNAME", &stack.couch_user)
        .env("CHT_PASSWORD", &stack.couch_password)
        .env("LOG_LEVEL", "warn");
    cmd
}

async fn cht(stack: &Stack, method: reqwest::Method, path: &str, body: &Value) -> Value {
    let r = reqwest::Client::new()
        .request(method, format!("{}/{path}", stack.cht_url))
        .basic_auth(&stack.couch_user, Some(&stack.couch_password))
        .json(body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap()
}

#[tokio::test]
async fn backfill_writes_everything_once_and_resumes_after_an_interruption() {
    let Some(stack) = stack() else { return };
    // The stand-in must not push these documents itself: this is the backfill's job.
    cht(&stack, reqwest::Method::PUT, "api/v1/settings", &json!({"outbound": {}})).await;
    let run = unique("bf");
    let patient_ids: Vec<String> = (0..PATIENTS).map(|i| format!("{run}-p{i}")).collect();
    let mut docs: Vec<Value> = patient_ids
        .iter()
        .enumerate()
        .map(|(i, id)| json!({"_id": id, "type": "person", "role": "patient", "name": format!("Patient {i} Backfill"),
            "sex": if i % 2 == 0 { "female" } else { "male" }, "date_of_birth": "1990-01-01", "parent": {"_id": format!("{run}-hh")}}))
        .collect();
    docs.push(json!({"_id": format!("{run}-chw"), "type": "person", "role": "chw", "name": "Not a patient"}));
    docs.extend((0..BROKEN).map(|i| json!({"_id": format!("{run}-broken{i}"), "type": "person", "role": "patient"})));
    docs.extend((0..REPORTS).map(|i| json!({"_id": format!("{run}-r{i}"), "type": "data_record", "form": "pregnancy_home_visit",
        "reported_date": 1732000000000_i64 + i as i64, "fields": {"patient_uuid": patient_ids[i * 3], "vitals": {"weight": "60.5"}}})));
    docs.extend((0..50).map(
        |i| json!({"_id": format!("{run}-u{i}"), "type": "data_record", "form": "unmapped_survey", "fields": {}}),
    ));
    let mut written = Vec::new();
    for chunk in docs.chunks(500) {
        let answer = cht(&stack, reqwest::Method::POST, "medic/_bulk_docs", &json!({"docs": chunk})).await;
        written.extend(answer.as_array().cloned().unwrap_or_default());
    }
    let db = std::env::temp_dir().join(format!("cht-fhir-mediator-test-backfill-{run}.sqlite3"));
    let db = db.to_str().unwrap().to_owned();

    // First run, interrupted after two batches.
    let mut first = command(&stack, &db, &["--since", "0", "--batch", "100", "--bundle-size", "50"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = first.id();
    let out = first.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        let mut signalled = false;
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if !signalled && seen.iter().filter(|l: &&String| l.starts_with("backfill: seq")).count() >= 2 {
                Command::new("kill").args(["-INT", &pid.to_string()]).status().unwrap();
                signalled = true;
            }
            seen.push(line);
        }
        seen
    })
    .await
    .unwrap();
    let status = first.wait().unwrap();
    let text = lines.join("\n");
    assert_eq!(status.code(), Some(130), "{text}");
    assert!(text.contains("backfill interrupted"), "{text}");
    let written_first =
        stack.fhir_count(&format!("Patient?identifier={DOC_SYSTEM}|{}", patient_ids[PATIENTS - 1])).await;
    assert_eq!(written_first, 0, "interrupted early: the last patient is not written yet\n{text}");

    // Second run resumes from the checkpoint and finishes.
    let second = command(&stack, &db, &["--batch", "500"]).output().unwrap();
    let text = String::from_utf8_lossy(&second.stdout);
    assert_eq!(second.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&second.stderr));
    let resumed_from: u64 = text.lines().next().unwrap().split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!(resumed_from > 0, "resumed from the checkpoint, not from 0: {text}");

    // Exactly once each: a sample by identifier (every id is deterministic, so PUT cannot duplicate).
    for id in patient_ids.iter().step_by(97).chain([&patient_ids[0], &patient_ids[PATIENTS - 1]]) {
        assert_eq!(stack.fhir_count(&format!("Patient?identifier={DOC_SYSTEM}|{id}")).await, 1, "{id}");
    }
    for i in (0..REPORTS).step_by(37) {
        assert_eq!(stack.fhir_count(&format!("Encounter?identifier={DOC_SYSTEM}|{run}-r{i}")).await, 1, "report {i}");
    }
    assert_eq!(
        stack.fhir_count(&format!("Patient?identifier={DOC_SYSTEM}|{run}-chw")).await,
        0,
        "a CHW is not a patient"
    );
    let letters = Command::new(env!("CARGO_BIN_EXE_cht-fhir-mediator"))
        .args(["dead-letters", "list", "--json"])
        .env("DEAD_LETTER_DB", &db)
        .output()
        .unwrap();
    let letters: Value = serde_json::from_slice(&letters.stdout).unwrap();
    let ours = letters
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["document_id"].as_str().is_some_and(|d| d.starts_with(&format!("{run}-broken"))))
        .count();
    assert_eq!(ours, BROKEN, "each unconvertible person is a dead letter");

    // A third run has nothing left to do.
    let third = command(&stack, &db, &[]).output().unwrap();
    assert_eq!(third.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&third.stdout).contains("seen 0"), "{}", String::from_utf8_lossy(&third.stdout));
    let _ = std::fs::remove_file(&db);
    // The stand-in's `_find` scans every document (CHT has no index for the mediator's
    // selectors either): thousands left behind would slow the suites that run after this one.
    let deleted: Vec<Value> =
        written.iter().map(|w| json!({"_id": w["id"], "_rev": w["rev"], "_deleted": true})).collect();
    for chunk in deleted.chunks(500) {
        cht(&stack, reqwest::Method::POST, "medic/_bulk_docs", &json!({"docs": chunk})).await;
    }
}

#[tokio::test]
async fn check_passes_on_the_real_stack_and_names_what_breaks() {
    let Some(stack) = stack() else { return };
    let check = |fhir: &str| {
        Command::new(env!("CARGO_BIN_EXE_cht-fhir-mediator"))
            .arg("check")
            .env(
                "DEAD_LETTER_DB",
                std::env::temp_dir().join(format!("cht-fhir-mediator-test-check-{}.sqlite3", uuid::Uuid::new_v4())),
            )
            .env("OPENHIM_API_URL", &stack.openhim_api_url)
            .env("OPENHIM_PASSWORD", "openhim-password")
            .env("TLS_CA_BUNDLE", &stack.ca_bundle)
            .env("FHIR_URL", fhir)
            .env("CHT_URL", &stack.cht_url)
            .env("CHT_USERNAME", &stack.couch_user)
            .env("CHT_PASSWORD", &stack.couch_password)
            .output()
            .unwrap()
    };
    let out = check(&stack.fhir_url);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for line in ["ok    openhim", "ok    fhir", "FHIR 4.0.1", "medic database with the configured credentials: ok"] {
        assert!(text.contains(line), "{line:?} missing in\n{text}");
    }
    let out = check("http://127.0.0.1:9");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL  fhir"));
}
