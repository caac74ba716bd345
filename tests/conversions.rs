//! Converter snapshots over a corpus of realistic CHT documents (tests/fixtures/cht): unicode
//! names, missing and approximate birth dates, floats, nested groups, repeats, contact-typed
//! persons, hydrated lineage, both report formats, referrals and LTFU outcomes. Every resource
//! produced must also pass the mediator's profiles and fhirbolt's strict structure check; every
//! invalid document must fail with an error naming the element.

use cht_fhir_mediator::conversions::mapping::{DEFAULT_FORMS_JSON, FormMappings};
use cht_fhir_mediator::conversions::patient::person_to_patient;
use cht_fhir_mediator::conversions::report::{TaskSpec, build, parse_report};
use cht_fhir_mediator::fhir::{model::check_structure, validate::validate};
use cht_fhir_mediator::settings::IdentifierSystems;
use serde_json::{Value, json};

fn systems() -> IdentifierSystems {
    IdentifierSystems {
        document_id: "https://cht.example.org/fhir/identifier/document-id".into(),
        patient_id: "https://cht.example.org/fhir/identifier/patient-id".into(),
    }
}

fn read(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// serde_json's own rendering: with `arbitrary_precision` (forced by fhirbolt) other serializers,
/// insta's included, would show numbers as `{"$serde_json::private::Number": "38.7"}`.
fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap()
}

fn assert_conforms(resource: &Value) {
    assert_eq!(validate(resource), Ok(()), "profile check of {resource}");
    assert_eq!(check_structure(resource), Ok(()), "fhirbolt strict parse of {resource}");
}

#[test]
fn persons_become_patients() {
    insta::glob!("fixtures/cht/persons/*.json", |path| {
        let patient = person_to_patient(&read(path), &systems()).unwrap();
        assert_conforms(&patient);
        insta::assert_snapshot!(pretty(&patient));
    });
}

#[test]
fn reports_become_encounters_with_observations() {
    let mappings = FormMappings::parse(DEFAULT_FORMS_JSON).unwrap();
    insta::glob!("fixtures/cht/reports/*.json", |path| {
        let input = parse_report(&read(path), &mappings).unwrap();
        let resources = build(&input, "PATIENT-ID", &systems(), &mappings);
        assert_conforms(&resources.encounter);
        resources.observations.iter().for_each(assert_conforms);
        resources.referral.iter().for_each(assert_conforms);
        let follow_up = match &input.task {
            Some(TaskSpec::FollowUpOutcome { task_id, source_id, status, outcome }) => {
                json!({"task_id": task_id, "source_id": source_id, "status": status, "outcome": outcome})
            }
            _ => Value::Null,
        };
        insta::assert_snapshot!(pretty(&json!({
            "subject_in_report": input.subject,
            "encounter": resources.encounter,
            "observations": resources.observations,
            "referral_task": resources.referral,
            "follow_up_outcome": follow_up,
        })));
    });
}

#[test]
fn invalid_documents_fail_naming_the_element() {
    let mappings = FormMappings::parse(DEFAULT_FORMS_JSON).unwrap();
    insta::glob!("fixtures/cht/invalid/*.json", |path| {
        let doc = read(path);
        let is_person = doc["doc"].get("form").is_none();
        let err = if is_person {
            person_to_patient(&doc, &systems()).unwrap_err()
        } else {
            parse_report(&doc, &mappings).unwrap_err()
        };
        assert!(err.element.is_some(), "{err}");
        insta::assert_snapshot!(pretty(&json!({"element": err.element, "message": err.message})));
    });
}

#[test]
fn the_same_document_always_gives_the_same_resources() {
    let mappings = FormMappings::parse(DEFAULT_FORMS_JSON).unwrap();
    let doc = read(std::path::Path::new("tests/fixtures/cht/reports/assessment_with_repeats.json"));
    let a = build(&parse_report(&doc, &mappings).unwrap(), "p", &systems(), &mappings);
    let b = build(&parse_report(&doc, &mappings).unwrap(), "p", &systems(), &mappings);
    assert_eq!(a, b);
    let ids: std::collections::BTreeSet<&str> = a.observations.iter().map(|o| o["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), a.observations.len(), "observation ids are distinct");
}

#[test]
fn floats_keep_their_exact_decimal_text() {
    let mappings = FormMappings::parse(DEFAULT_FORMS_JSON).unwrap();
    let doc = read(std::path::Path::new("tests/fixtures/cht/reports/pregnancy_home_visit.json"));
    let resources = build(&parse_report(&doc, &mappings).unwrap(), "p", &systems(), &mappings);
    let text = serde_json::to_string(&resources.observations).unwrap();
    assert!(text.contains(r#""value":61.25"#) && text.contains(r#""value":23.5"#), "{text}");
}
