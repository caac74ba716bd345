//! The nesting limit (`limits::MAX_NESTING_DEPTH`) against the stack the service runs requests on
//! (`limits::WORKER_STACK_BYTES`): documents nested right up to the limit go through every
//! recursive parser, converter and validator on a thread with a QUARTER of that stack, in a debug
//! build (bigger frames than release). A margin of four, so a parser that grows deeper frames
//! later is caught here, not by a process abort in production.

use cht_fhir_mediator::limits::{MAX_NESTING_DEPTH, WORKER_STACK_BYTES, check_json_depth, check_xml_depth};
use serde_json::{Value, json};

fn on_quarter_stack(f: impl FnOnce() + Send + 'static) {
    let thread = std::thread::Builder::new().stack_size(WORKER_STACK_BYTES / 4).spawn(f).unwrap();
    thread.join().expect("no stack overflow (a panic here; an overflow would abort the test binary)");
}

/// A Patient whose extensions nest `levels` deep (two JSON levels each: array and object).
fn nested_extensions(levels: usize) -> Value {
    let mut inner = json!({"url": "http://x/e", "valueString": "leaf"});
    for _ in 1..levels {
        inner = json!({"url": "http://x/e", "extension": [inner]});
    }
    json!({"resourceType": "Patient", "id": "p1", "extension": [inner]})
}

#[test]
fn json_at_the_limit_goes_through_every_parser_with_room_to_spare() {
    // resource object (1) + extension array/object pairs: 1 + 2 * levels <= the limit.
    let levels = (MAX_NESTING_DEPTH - 1) / 2;
    let patient = nested_extensions(levels);
    assert_eq!(check_json_depth(&patient), Ok(()));
    assert!(check_json_depth(&nested_extensions(levels + 1)).is_err(), "one more level is refused");
    on_quarter_stack(move || {
        let text = patient.to_string();
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(cht_fhir_mediator::fhir::base::validate(&parsed), Ok(()));
        assert_eq!(cht_fhir_mediator::fhir::model::check_structure(&parsed), Ok(()));
        let _ = cht_fhir_mediator::fhir::validate::validate(&parsed);
        let systems = cht_fhir_mediator::settings::IdentifierSystems {
            document_id: "https://x/doc".into(),
            patient_id: "https://x/patient".into(),
        };
        let _ = cht_fhir_mediator::conversions::reference::patient(&parsed, &systems);
        drop(parsed);
    });
}

#[test]
fn xml_at_the_limit_goes_through_fhirbolt_with_room_to_spare() {
    let levels = MAX_NESTING_DEPTH - 1;
    let xml = format!(
        "<Patient xmlns=\"http://hl7.org/fhir\">{}<valueString value=\"leaf\"/>{}</Patient>",
        "<extension url=\"http://x/e\">".repeat(levels),
        "</extension>".repeat(levels)
    );
    assert_eq!(check_xml_depth(&xml), Ok(()));
    on_quarter_stack(move || {
        let json = cht_fhir_mediator::fhir::model::xml_to_json(&xml);
        // fhirbolt may refuse the shape (valueString beside extensions is fine R4); what matters
        // is that it returns at all.
        if let Ok(json) = json {
            let _ = cht_fhir_mediator::fhir::base::validate(&json);
        }
    });
}

#[test]
fn cht_documents_at_the_limit_convert_with_room_to_spare() {
    // A person with a lineage as deep as the limit allows, and a report with nested groups.
    let mut parent = json!({"_id": "top"});
    for i in 0..(MAX_NESTING_DEPTH - 3) {
        parent = json!({"_id": format!("place-{i}"), "parent": parent});
    }
    let person = json!({"doc": {"_id": "p1", "type": "person", "name": "A B", "parent": parent}});
    assert_eq!(check_json_depth(&person), Ok(()));
    let mut group = json!({"weight": "3.5"});
    for _ in 0..(MAX_NESTING_DEPTH - 4) {
        group = json!({"g": group});
    }
    let report = json!({"doc": {"_id": "r1", "type": "data_record", "form": "referral", "reported_date": 1,
        "fields": {"patient_uuid": "p1", "deep": group}}});
    assert_eq!(check_json_depth(&report), Ok(()));
    on_quarter_stack(move || {
        let systems = cht_fhir_mediator::settings::IdentifierSystems {
            document_id: "https://x/doc".into(),
            patient_id: "https://x/patient".into(),
        };
        let patient = cht_fhir_mediator::conversions::patient::person_to_patient(&person, &systems).unwrap();
        assert_eq!(cht_fhir_mediator::fhir::base::validate(&patient), Ok(()));
        let forms = cht_fhir_mediator::conversions::mapping::FormMappings::parse(
            cht_fhir_mediator::conversions::mapping::DEFAULT_FORMS_JSON,
        )
        .unwrap();
        let _ = cht_fhir_mediator::conversions::report::parse_report(&report, &forms);
    });
}
