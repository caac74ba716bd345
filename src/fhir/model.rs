//! fhirbolt, isolated. Its serializers are monomorphised here once (minutes of compile time per
//! crate that does it), behind small non-generic functions taking and returning
//! `serde_json::Value`. Its own JSON *text* parser is broken in lax mode, so text is always
//! parsed with serde_json first.

use fhirbolt::model::r4::Resource;
use fhirbolt::serde::{DeserializationConfig, DeserializationMode};
use serde_json::Value;

/// Checks that `resource` is structurally valid R4 (known elements, right JSON types, required
/// elements present) by parsing it strictly into the typed model. Returns fhirbolt's message.
pub fn check_structure(resource: &Value) -> Result<(), String> {
    let config = DeserializationConfig { mode: DeserializationMode::Strict };
    fhirbolt::json::from_json_value::<Resource>(resource.clone(), Some(config)).map(drop).map_err(|e| e.to_string())
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
    fn floats_survive_arbitrary_precision_serde_json() {
        // Parsed from text, as requests are: every digit is kept (arbitrary_precision).
        let text = r#"{"resourceType": "Observation", "status": "final", "code": {"text": "w"},
            "valueQuantity": {"value": 61.2500000000000000001, "unit": "kg"}}"#;
        let obs: Value = serde_json::from_str(text).unwrap();
        assert_eq!(obs["valueQuantity"]["value"].to_string(), "61.2500000000000000001");
        assert!(check_structure(&obs).is_ok());
    }
}
