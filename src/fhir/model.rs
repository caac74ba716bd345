//! fhirbolt, isolated. Its serializers are monomorphised here once (minutes of compile time per
//! crate that does it), behind small non-generic functions taking and returning
//! `serde_json::Value`. Its own JSON *text* parser is broken in lax mode, so text is always
//! parsed with serde_json first.
//!
//! fhirbolt panics on some inputs (an empty JSON array such as `"telecom": []` panics inside its
//! deserializer) and recurses once per nesting level. So every call here runs under
//! `catch_unwind` (a panic becomes an error naming no value) on input whose nesting the caller
//! has bounded (`crate::limits`). The request path checks JSON with the base R4 validator
//! (`super::base`) instead; fhirbolt parses XML, and is the second opinion of `validate`, the
//! tests and the fuzzers.

use std::panic::{AssertUnwindSafe, catch_unwind};

use fhirbolt::model::r4::Resource;
use fhirbolt::serde::{DeserializationConfig, DeserializationMode};
use serde_json::Value;

/// Runs `f`, turning a panic inside fhirbolt into an error. Its message is not kept: fhirbolt's
/// panic messages can quote the input.
fn guarded<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err("the FHIR model could not read this resource (its parser failed on it)".into()))
}

/// Checks that `resource` is structurally valid R4 (known elements, right JSON types, required
/// elements present) by parsing it strictly into the typed model. Returns fhirbolt's message.
pub fn check_structure(resource: &Value) -> Result<(), String> {
    crate::limits::check_json_depth(resource).map_err(|e| e.to_string())?;
    let config = DeserializationConfig { mode: DeserializationMode::Strict };
    guarded(|| {
        fhirbolt::json::from_json_value::<Resource>(resource.clone(), Some(config)).map(drop).map_err(|e| e.to_string())
    })
}

/// A FHIR R4 resource in XML (`application/fhir+xml`) as FHIR JSON, through the typed model.
pub fn xml_to_json(text: &str) -> Result<Value, String> {
    crate::limits::check_xml_depth(text).map_err(|e| e.to_string())?;
    let config = DeserializationConfig { mode: DeserializationMode::Strict };
    guarded(|| {
        let resource: Resource = fhirbolt::xml::from_str(text, Some(config)).map_err(|e| e.to_string())?;
        fhirbolt::json::to_json_value(resource, None).map_err(|e| e.to_string())
    })
}

/// FHIR JSON `resource` in FHIR XML, through the typed model (strict: what the model cannot
/// hold is an error, never dropped).
pub fn json_to_xml(resource: &Value) -> Result<String, String> {
    crate::limits::check_json_depth(resource).map_err(|e| e.to_string())?;
    let config = DeserializationConfig { mode: DeserializationMode::Strict };
    guarded(|| {
        let resource: Resource =
            fhirbolt::json::from_json_value(resource.clone(), Some(config)).map_err(|e| e.to_string())?;
        fhirbolt::xml::to_string(&resource, None).map_err(|e| e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strict_parse_accepts_valid_and_names_unknown_elements() {
        assert!(check_structure(&json!({"resourceType": "Patient", "id": "p1", "gender": "female"})).is_ok());
        let err = check_structure(&json!({"resourceType": "Patient", "nmae": [{"text": "x"}]})).unwrap_err();
        assert!(err.contains("nmae"), "{err}");
        let err = check_structure(&json!({"resourceType": "Observation", "status": "final"})).unwrap_err();
        assert!(err.contains("code"), "missing required Observation.code: {err}");
        assert!(check_structure(&json!({"resourceType": "Patient", "active": "yes"})).is_err());
    }

    #[test]
    fn xml_resources_become_fhir_json() {
        let xml = r#"<Patient xmlns="http://hl7.org/fhir"><id value="p1"/><name><text value="Amina Njeri"/></name>
            <gender value="female"/><birthDate value="1990-05-12"/></Patient>"#;
        let json = xml_to_json(xml).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"resourceType": "Patient", "id": "p1", "name": [{"text": "Amina Njeri"}], "gender": "female", "birthDate": "1990-05-12"})
        );
        assert!(xml_to_json("<Patient xmlns=\"http://hl7.org/fhir\"><nmae/></Patient>").is_err());
        assert!(xml_to_json("not xml").is_err());
    }

    #[test]
    fn json_resources_become_fhir_xml_and_back() {
        let patient = json!({"resourceType": "Patient", "id": "p1", "identifier": [{"system": "https://x.org/id", "value": "7"}],
            "name": [{"text": "Amina Njeri", "given": ["Amina"]}], "birthDate": "1990-05-12"});
        let xml = json_to_xml(&patient).unwrap();
        assert!(xml.contains(r#"<Patient xmlns="http://hl7.org/fhir">"#), "{xml}");
        assert!(xml.contains(r#"<birthDate value="1990-05-12"/>"#), "{xml}");
        assert_eq!(xml_to_json(&xml).unwrap(), patient);
        assert!(json_to_xml(&json!({"resourceType": "Patient", "nmae": []})).is_err());
    }

    #[test]
    fn floats_survive_arbitrary_precision_serde_json() {
        // Parsed from text, as requests are: every digit is kept (arbitrary_precision).
        let text = r#"{"resourceType": "Observation", "status": "final", "code": {"text": "w"},
            "valueQuantity": {"value": 61.2500000000000000001, "unit": "kg"}}"#;
        let obs: Value = serde_json::from_str(text).unwrap();
        assert_eq!(obs["valueQuantity"]["value"].to_string(), "61.2500000000000000001");
        assert!(check_structure(&obs).is_ok());
    }

    #[test]
    fn a_panic_inside_fhirbolt_is_an_error() {
        // fhirbolt 0.4 panics on an empty array; the caller gets an error, the process lives on.
        let err = check_structure(&serde_json::json!({"resourceType": "Patient", "telecom": []})).unwrap_err();
        assert!(err.contains("could not read"), "{err}");
    }

    #[test]
    fn deep_xml_is_refused_before_fhirbolt_recurses() {
        let deep = format!(
            "<Patient xmlns=\"http://hl7.org/fhir\">{}{}</Patient>",
            "<extension url=\"u\">".repeat(700),
            "</extension>".repeat(700)
        );
        assert!(xml_to_json(&deep).unwrap_err().contains("nested more than"));
    }
}
