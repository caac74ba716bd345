//! The operator commands as scripts use them: output on stdout, logs on stderr, exit codes
//! 0 (done), 1 (the operation failed), 2 (bad usage or input).

use std::process::{Command, Output};

use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cht-fhir-mediator"));
    cmd.args(args).env("DEAD_LETTER_DB", std::env::temp_dir().join(format!("cli-{}.sqlite3", uuid::Uuid::new_v4())));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn convert_prints_fhir_or_the_reason_with_trustworthy_exit_codes() {
    let out = run(&["convert", "tests/fixtures/cht/persons/approximate_date_of_birth.json"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout_json(&out)["resourceType"], "Patient");
    let out = run(&["convert", "--kind", "encounter", "tests/fixtures/cht/reports/assessment_with_repeats.json"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let bundle = stdout_json(&out);
    assert_eq!(bundle["entry"][0]["resource"]["resourceType"], "Encounter");
    assert_eq!(bundle["entry"].as_array().unwrap().len(), 9);
    let out = run(&["convert", "tests/fixtures/cht/invalid/integer_that_is_not.json"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout_json(&out)["issue"][0]["expression"][0], "doc.fields.pregnancy.weeks_pregnant");
    let out = run(&["convert", "/nonexistent.json"], &[]);
    assert_eq!(out.status.code(), Some(2));
    // A form mapping under development, tried before deploying it.
    let forms = std::env::temp_dir().join(format!("forms-cli-{}.json", uuid::Uuid::new_v4()));
    let mut mapping: Value = serde_json::from_str(cht_fhir_mediator::conversions::mapping::DEFAULT_FORMS_JSON).unwrap();
    mapping["forms"]["household_survey"] = serde_json::json!({"observations": [{"field": "fields.patient_uuid", "type": "string", "code": {"code": "p"}}]});
    std::fs::write(&forms, mapping.to_string()).unwrap();
    let out = run(
        &["convert", "tests/fixtures/cht/invalid/unknown_form.json"],
        &[("FORM_MAPPINGS_FILE", forms.to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn validate_names_each_problem_by_path() {
    let good = run(&["convert", "tests/fixtures/cht/persons/short_form.json"], &[]);
    let mut patient = stdout_json(&good);
    let file = std::env::temp_dir().join(format!("patient-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&file, patient.to_string()).unwrap();
    let out = run(&["validate", file.to_str().unwrap()], &[]);
    assert_eq!((out.status.code(), String::from_utf8_lossy(&out.stdout).trim()), (Some(0), "valid"));
    patient["birthDate"] = serde_json::json!("12/05/1990");
    patient["name"][0].as_object_mut().unwrap().remove("text");
    std::fs::write(&file, patient.to_string()).unwrap();
    let out = run(&["validate", file.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Patient.name[0].text: minimum cardinality 1 not met"), "{text}");
    assert!(text.contains("Patient.birthDate:"), "{text}");
}

#[test]
fn cht_config_fills_in_the_deployment() {
    let out = run(
        &[
            "cht-config",
            "--openhim-url",
            "https://him.example.org:5001/",
            "--client",
            "cht-prod",
            "--password-key",
            "him_pw",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    let settings = stdout_json(&out);
    for push in settings["outbound"].as_object().unwrap().values() {
        assert_eq!(push["destination"]["base_url"], "https://him.example.org:5001");
        assert_eq!(push["destination"]["auth"]["username"], "cht-prod");
        assert_eq!(push["destination"]["auth"]["password_key"], "him_pw");
    }
    assert!(settings["forms"]["INTEROP_FOLLOW_UP"].is_object());
    assert_eq!(settings["roles"]["interop"]["offline"], false, "the mediator's user is online");

    // The deployment's own contact types and staff: the pushed selection follows them.
    let custom = run(
        &["cht-config"],
        &[("CHT_PERSON_CONTACT_TYPES", "member"), ("CHT_STAFF_ROLES", "cha"), ("CHT_STAFF_PLACE_TYPES", "c_site")],
    );
    let relevant_to = stdout_json(&custom)["outbound"]["cht_fhir_patients"]["relevant_to"].clone();
    let script = r#"
        const vm = require('vm');
        const docs = [{type: 'contact', contact_type: 'member'}, {type: 'contact', contact_type: 'household_member'},
          {type: 'person', role: 'cha'}, {type: 'person', role: 'chw'}, {type: 'person', parent: {type: 'contact', contact_type: 'c_site'}}];
        console.log(JSON.stringify(docs.map(doc => !!vm.runInNewContext(process.argv[1], {doc}))));
    "#;
    let out = Command::new("node").args(["-e", script, relevant_to.as_str().unwrap()]).output().expect("node runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[true,false,false,true,false]", "{relevant_to}");

    let xform = run(&["cht-config", "--part", "xform"], &[]);
    assert!(String::from_utf8_lossy(&xform.stdout).contains("<interop_follow_up id=\"interop_follow_up\""));
}

#[tokio::test]
async fn check_says_what_works_and_fails_when_something_does_not() {
    let fhir = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/metadata"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"fhirVersion": "4.0.1"})))
        .mount(&fhir)
        .await;
    let cht = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/info"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"version": "4.17.0"})))
        .mount(&cht)
        .await;
    Mock::given(method("GET")).and(path("/medic")).respond_with(ResponseTemplate::new(401)).mount(&cht).await;
    let (f, c) = (fhir.uri(), cht.uri());
    let out = tokio::task::spawn_blocking(move || run(&["check"], &[("FHIR_URL", &f), ("CHT_URL", &c)])).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("ok    fhir") && text.contains("FHIR 4.0.1"), "{text}");
    assert!(
        text.contains("FAIL  cht     medic database with the configured credentials") && text.contains("answered 401"),
        "{text}"
    );
    Mock::given(method("GET")).and(path("/medic")).respond_with(ResponseTemplate::new(200)).mount(&cht).await;
    // The CHT user: online, and holding what the mediator calls, as CHT decides it.
    let user = |roles: serde_json::Value| {
        let fhir = fhir.uri();
        async move {
            let cht = MockServer::start().await;
            let session = serde_json::json!({"ok": true, "userCtx": {"name": "mediator", "roles": roles}});
            Mock::given(method("GET"))
                .and(path("/_session"))
                .respond_with(ResponseTemplate::new(200).set_body_json(session))
                .mount(&cht)
                .await;
            let settings = serde_json::json!({"roles": {"interop": {"offline": false}},
                "permissions": {"can_create_records": ["interop"], "can_edit": ["interop"], "can_create_people": ["interop"]}});
            Mock::given(method("GET"))
                .and(path("/api/v1/settings"))
                .respond_with(ResponseTemplate::new(200).set_body_json(settings))
                .mount(&cht)
                .await;
            Mock::given(method("GET"))
                .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({})))
                .mount(&cht)
                .await;
            let c = cht.uri();
            tokio::task::spawn_blocking(move || run(&["check"], &[("FHIR_URL", &fhir), ("CHT_URL", &c)])).await.unwrap()
        }
    };
    let out = user(serde_json::json!(["interop", "mm-online"])).await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("ok    cht     user \"mediator\" (roles interop, mm-online): online; holds every"), "{text}");
    let out = user(serde_json::json!(["chw"])).await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("OFFLINE") && text.contains("lacks can_create_records (for POST /api/v2/records)"), "{text}");
}

#[test]
fn dead_letters_remove_deletes_letters_to_make_room() {
    let db = std::env::temp_dir().join(format!("cli-remove-{}.sqlite3", uuid::Uuid::new_v4()));
    let store = cht_fhir_mediator::deadletter::DeadLetterStore::open(&db).unwrap();
    let keep = store.record("/cht/patient", r#"{"doc":{"_id":"a"}}"#, "x", None, Some("a"), None).unwrap();
    let gone = store.record("/cht/patient", r#"{"doc":{"_id":"b"}}"#, "x", None, Some("b"), None).unwrap();
    let db_env = [("DEAD_LETTER_DB", db.to_str().unwrap())];
    let out = run(&["dead-letters", "remove", gone.get(..8).unwrap()], &db_env);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("{gone}: removed"));
    assert!(store.get(&gone).unwrap().is_none() && store.get(&keep).unwrap().is_some());
    assert_eq!(run(&["dead-letters", "remove", "ffffffffffff"], &db_env).status.code(), Some(1));
}
