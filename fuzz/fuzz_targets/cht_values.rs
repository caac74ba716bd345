//! One CHT form answer through every value type of the form mappings (XForm strings, typed JSON):
//! no panic, and every value produced is a valid R4 `value[x]`.
#![no_main]
mod common;

use cht_fhir_mediator::conversions::mapping::{CodingSpec, ObservationMapping, ValueKind};
use cht_fhir_mediator::conversions::values::{docs_value, mapped_value};
use libfuzzer_sys::fuzz_target;

const KINDS: &[ValueKind] = &[
    ValueKind::String,
    ValueKind::Integer,
    ValueKind::Decimal,
    ValueKind::Quantity,
    ValueKind::Boolean,
    ValueKind::DateTime,
    ValueKind::Time,
    ValueKind::Code,
];

fuzz_target!(|data: &[u8]| {
    common::on_production_stack(data, |data| {
        let Some(raw) = common::json_body(data) else { return };
        for kind in KINDS {
            let mapping = ObservationMapping {
                field: "fields.x".into(),
                code: CodingSpec { system: None, code: "x".into(), display: None },
                kind: *kind,
                unit: Some("kg".into()).filter(|_| *kind == ValueKind::Quantity),
                ucum: Some("kg".into()).filter(|_| *kind == ValueKind::Quantity),
                value_system: None,
                multiple: true,
                true_values: vec![],
                false_values: vec![],
            };
            if let Ok(Some((key, value))) = mapped_value("fields.x", &raw, &mapping, "https://cht.example.org/cs") {
                check(key, value);
            }
        }
        if let Ok(Some((key, value))) = docs_value("observations[0]", &raw, "https://cht.example.org/cs") {
            check(key, value);
        }
    })
});

/// The value inside an Observation must be valid R4.
fn check(key: &str, value: serde_json::Value) {
    let mut observation = serde_json::json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}});
    if let Some(o) = observation.as_object_mut() {
        o.insert(key.to_owned(), value);
    }
    if let Err(v) = cht_fhir_mediator::fhir::base::validate(&observation) {
        panic!("{key} is not valid R4: {v:?}\n{observation}");
    }
}
