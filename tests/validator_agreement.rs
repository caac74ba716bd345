//! The project's own validator agrees with HL7's (issue 14.3). `scripts/fhir-profiles/verify.sh`
//! (in the test command) runs HL7's validation engine on `tests/fixtures/fhir-profiles/` and checks
//! it gives the errors `expected-errors.json` lists; this test checks the mediator's validator
//! (`cht_fhir_mediator::fhir::validate`, what guards every write) refuses exactly those fixtures,
//! at the element the official one names, and passes the valid ones — both directions.

use std::collections::BTreeMap;

use serde_json::Value;

const DIR: &str = "tests/fixtures/fhir-profiles";

/// The element of each fixture HL7's validator reports (its messages, in expected-errors.json,
/// name the element by path or, for a value outside a binding or a wrong type, by the value).
const ELEMENTS: &[(&str, &[&str])] = &[
    ("task-no-for.json", &["Task.for"]),
    ("task-only-status-intent.json", &["Task.code", "Task.for", "Task.authoredOn"]),
    ("task-identifier-no-system-value.json", &["Task.identifier[0].system", "Task.identifier[0].value"]),
    ("task-for-no-reference.json", &["Task.for.reference"]),
    ("task-code-not-fulfill.json", &["Task.code"]),
    ("task-no-authoredOn.json", &["Task.authoredOn"]),
    ("task-bad-priority.json", &["Task.priority"]),
    ("task-output-no-value.json", &["Task.output[0].value"]),
    ("patient-no-identifier.json", &["Patient.identifier"]),
    ("patient-identifier-without-type.json", &["Patient.identifier[1].type"]),
    ("patient-birth-date-approximate-string.json", &["Patient.birthDate"]),
    ("patient-lineage-string.json", &["Patient.extension"]),
    ("patient-telecom-not-phone.json", &["Patient.telecom"]),
];

fn fixture(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(format!("{DIR}/{name}")).unwrap()).unwrap()
}

/// Every violation of both checks the mediator runs before a write: base R4, then the profile.
fn violations(resource: &Value) -> Vec<String> {
    let mut found = Vec::new();
    for check in [cht_fhir_mediator::fhir::base::validate, cht_fhir_mediator::fhir::validate::validate] {
        if let Err(violations) = check(resource) {
            found.extend(violations.into_iter().map(|v| format!("{}: {}", v.path, v.message)));
        }
    }
    found
}

#[test]
fn every_fixture_the_official_validator_refuses_ours_refuses_at_the_same_element() {
    let expected: BTreeMap<String, Vec<String>> =
        serde_json::from_str(&std::fs::read_to_string(format!("{DIR}/expected-errors.json")).unwrap()).unwrap();
    let elements: BTreeMap<&str, &[&str]> = ELEMENTS.iter().copied().collect();
    for (name, errors) in &expected {
        let found = violations(&fixture(name));
        if errors.is_empty() {
            assert!(found.is_empty(), "{name}: the official validator accepts it, ours says {found:?}");
            continue;
        }
        let paths = elements.get(name.as_str()).unwrap_or_else(|| panic!("{name}: no element listed in ELEMENTS"));
        for path in *paths {
            assert!(
                found.iter().any(|v| v.starts_with(path)),
                "{name}: the official validator names {path} ({errors:?}); ours says {found:?}"
            );
        }
    }
}

#[test]
fn every_fixture_is_judged_by_the_official_validator() {
    // A fixture added without its expected errors would be checked by neither side.
    let expected: BTreeMap<String, Vec<String>> =
        serde_json::from_str(&std::fs::read_to_string(format!("{DIR}/expected-errors.json")).unwrap()).unwrap();
    for entry in std::fs::read_dir(DIR).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name != "expected-errors.json" {
            assert!(expected.contains_key(&name), "{name} is not in expected-errors.json");
        }
    }
}
