//! Which CHT documents go to FHIR: the same rules as the outbound pushes in
//! `mediator-config/cht/app_settings.json` (a test keeps the two together), for the backfill,
//! which reads documents from CHT's changes feed instead of receiving pushes.

use serde_json::Value;

use super::mapping::FormMappings;

/// What a document is for the inbound side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selected {
    Person,
    Report,
}

/// `cht_fhir_patients`: `doc.type === 'person' && doc.role === 'patient' ||
/// doc.type === 'contact' && doc.contact_type === 'c_patient'`;
/// `cht_fhir_reports`: a `data_record` of a form the mappings know.
pub fn select(doc: &Value, forms: &FormMappings) -> Option<Selected> {
    if doc["_deleted"] == true {
        return None;
    }
    let person = (doc["type"] == "person" && doc["role"] == "patient")
        || (doc["type"] == "contact" && doc["contact_type"] == "c_patient");
    if person {
        return Some(Selected::Person);
    }
    let mapped = doc["type"] == "data_record" && doc["form"].as_str().is_some_and(|f| forms.forms.contains_key(f));
    mapped.then_some(Selected::Report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversions::mapping::DEFAULT_FORMS_JSON;
    use serde_json::json;

    #[test]
    fn patients_and_mapped_reports_only() {
        let forms = FormMappings::parse(DEFAULT_FORMS_JSON).unwrap();
        assert_eq!(select(&json!({"type": "person", "role": "patient"}), &forms), Some(Selected::Person));
        assert_eq!(select(&json!({"type": "contact", "contact_type": "c_patient"}), &forms), Some(Selected::Person));
        assert_eq!(select(&json!({"type": "person", "role": "chw"}), &forms), None);
        assert_eq!(select(&json!({"type": "data_record", "form": "referral"}), &forms), Some(Selected::Report));
        assert_eq!(
            select(&json!({"type": "data_record", "form": "INTEROP_FOLLOW_UP"}), &forms),
            None,
            "the mediator's own records"
        );
        assert_eq!(select(&json!({"type": "clinic"}), &forms), None);
        assert_eq!(select(&json!({"type": "person", "role": "patient", "_deleted": true}), &forms), None);
    }
}
