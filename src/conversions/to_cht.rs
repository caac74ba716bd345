//! FHIR from other systems → CHT records (`POST /api/v2/records` fields), by the outbound
//! mapping (`mediator-config/outbound.json`, or `OUTBOUND_MAPPINGS_FILE`):
//! - a Patient → a record on the patient-creation JSON form (`INTEROP_PATIENT`) from which CHT's
//!   `add_patient` transition creates the contact: name, phone, sex, birth date, the external id,
//!   and the CHT place it belongs to (from `managingOrganization` through `places`, else
//!   `default_place_id`);
//! - an Encounter with its Observations → one record on the form its type maps to (else
//!   `observation_form`), one field per Observation, named by `observation_fields` or, failing
//!   that, by the code in lower case (the records API keeps only lower-case keys the form defines).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::ConversionError;
use crate::json::JsonExt;

/// The mapping shipped with the binary.
pub const DEFAULT_OUTBOUND_JSON: &str = include_str!("../../mediator-config/outbound.json");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundMappings {
    pub patient_form: String,
    /// CHT place for patients whose organisation is not in `places` (empty = none: refused).
    #[serde(default)]
    pub default_place_id: String,
    /// `Organization/{id}` → CHT place `_id`.
    #[serde(default)]
    pub places: BTreeMap<String, String>,
    pub observation_form: String,
    /// `system|code` of Encounter.type → JSON form.
    #[serde(default)]
    pub encounter_forms: BTreeMap<String, String>,
    /// `system|code` of Observation.code → field name.
    #[serde(default)]
    pub observation_fields: BTreeMap<String, String>,
}

impl OutboundMappings {
    pub fn parse(text: &str) -> Result<Self, String> {
        let m: Self = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let names = m.observation_fields.values().chain(m.encounter_forms.values());
        if let Some(bad) = names.chain([&m.patient_form, &m.observation_form]).find(|n| n.trim().is_empty()) {
            return Err(format!("empty form or field name {bad:?}"));
        }
        if let Some(bad) = m.observation_fields.values().find(|f| f.to_lowercase() != **f) {
            return Err(format!("observation_fields: {bad:?} must be lower case (CHT drops other keys)"));
        }
        Ok(m)
    }
}

fn text(v: &Value) -> Option<&str> {
    v.as_str().map(str::trim).filter(|s| !s.is_empty())
}

/// A Patient's first name as one line: its `text`, else its given names and family name.
pub fn full_name(patient: &Value) -> Option<String> {
    let name = &patient.at("name").nth(0);
    text(&name["text"]).map(str::to_owned).or_else(|| {
        let given: Vec<&str> = name["given"].as_array().into_iter().flatten().filter_map(text).collect();
        let parts: Vec<&str> = given.into_iter().chain(text(&name["family"])).collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    })
}

/// The record for a Patient: (form, fields).
pub fn patient_record(patient: &Value, m: &OutboundMappings) -> Result<(String, Map<String, Value>), ConversionError> {
    let full = full_name(patient)
        .ok_or_else(|| ConversionError::at("Patient.name", "a name (text, or given/family) is required"))?;
    let external = text(&patient["id"])
        .or_else(|| text(patient.at("identifier").nth(0).at("value")))
        .ok_or_else(|| ConversionError::at("Patient.id", "an id or an identifier is required"))?;
    let organization = text(patient.at("managingOrganization").at("reference"));
    let place = organization
        .and_then(|o| m.places.get(o).map(String::as_str))
        .or_else(|| text(&Value::String(m.default_place_id.clone())).map(|_| m.default_place_id.as_str()))
        .ok_or_else(|| {
            ConversionError::at(
                "Patient.managingOrganization",
                "names no CHT place (outbound mapping `places`, or set `default_place_id`)",
            )
        })?;
    let mut fields = Map::new();
    fields.insert("patient_name".into(), json!(full));
    fields.insert("external_id".into(), json!(external));
    fields.insert("parent_id".into(), json!(place));
    let phone = patient["telecom"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["system"] == "phone")
        .and_then(|t| text(&t["value"]));
    if let Some(phone) = phone {
        fields.insert("phone".into(), json!(phone));
    }
    if let Some(sex @ ("male" | "female")) = text(&patient["gender"]) {
        fields.insert("sex".into(), json!(sex));
    }
    if let Some(born) = text(&patient["birthDate"]) {
        fields.insert("date_of_birth".into(), json!(born));
    }
    Ok((m.patient_form.to_uppercase(), fields))
}

/// The record for an Encounter and its Observations about the CHT patient `patient_uuid`.
pub fn encounter_record(
    encounter: &Value,
    observations: &[Value],
    patient_uuid: &str,
    m: &OutboundMappings,
) -> Result<(String, Map<String, Value>), ConversionError> {
    let id = text(&encounter["id"])
        .ok_or_else(|| ConversionError::at("Encounter.id", "is required (it keys the CHT record)"))?;
    let form = encounter["type"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| t["coding"].as_array().into_iter().flatten())
        .find_map(|c| m.encounter_forms.get(&token(c)))
        .unwrap_or(&m.observation_form);
    let mut fields = Map::new();
    fields.insert("patient_uuid".into(), json!(patient_uuid));
    fields.insert("external_id".into(), json!(id));
    for (i, obs) in observations.iter().enumerate() {
        let coding = &obs.at("code").at("coding").nth(0);
        let field = m
            .observation_fields
            .get(&token(coding))
            .cloned()
            .unwrap_or_else(|| field_name(coding["code"].as_str().unwrap_or_default()));
        if field.is_empty() {
            return Err(ConversionError::at(&format!("Observation[{i}].code"), "has no code"));
        }
        let value = observation_value(obs).ok_or_else(|| {
            ConversionError::at(&format!("Observation[{i}].value[x]"), "has no value the mediator can carry")
        })?;
        fields.insert(field, json!(value));
    }
    Ok((form.to_uppercase(), fields))
}

fn token(coding: &Value) -> String {
    format!("{}|{}", coding["system"].as_str().unwrap_or_default(), coding["code"].as_str().unwrap_or_default())
}

/// A code as a CHT field name: lower case, anything but letters and digits as `_`.
fn field_name(code: &str) -> String {
    code.trim().to_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

fn observation_value(obs: &Value) -> Option<String> {
    let object = obs.as_object()?;
    let (key, value) = object.iter().find(|(k, _)| k.starts_with("value"))?;
    Some(match key.as_str() {
        "valueQuantity" => {
            let number = value["value"].to_string();
            match value["unit"].as_str() {
                Some(unit) => format!("{number} {unit}"),
                None => number,
            }
        }
        "valueCodeableConcept" => {
            text(value.at("coding").nth(0).at("code")).or_else(|| text(value.at("text")))?.to_owned()
        }
        _ => match value {
            Value::String(s) => s.clone(),
            Value::Number(_) | Value::Bool(_) => value.to_string(),
            _ => return None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mappings() -> OutboundMappings {
        OutboundMappings::parse(DEFAULT_OUTBOUND_JSON).unwrap()
    }

    #[test]
    fn patient_fields() {
        let patient = json!({"resourceType": "Patient", "id": "emr-77", "name": [{"given": ["Amina"], "family": "Njeri"}],
            "gender": "female", "birthDate": "1990-05-12", "telecom": [{"system": "email", "value": "a@x"}, {"system": "phone", "value": "+254700000001"}],
            "managingOrganization": {"reference": "Organization/kondele-clinic"}});
        let (form, fields) = patient_record(&patient, &mappings()).unwrap();
        assert_eq!(form, "INTEROP_PATIENT");
        assert_eq!(
            Value::Object(fields),
            json!({"patient_name": "Amina Njeri", "external_id": "emr-77",
            "parent_id": "5e1a3c55-health-center-kondele", "phone": "+254700000001", "sex": "female", "date_of_birth": "1990-05-12"})
        );
        let mut nowhere = patient.clone();
        nowhere["managingOrganization"]["reference"] = json!("Organization/unknown");
        assert_eq!(
            patient_record(&nowhere, &mappings()).unwrap_err().element.as_deref(),
            Some("Patient.managingOrganization")
        );
        assert_eq!(
            patient_record(&json!({"id": "x"}), &mappings()).unwrap_err().element.as_deref(),
            Some("Patient.name")
        );
    }

    #[test]
    fn encounter_fields_are_named_by_mapping_or_lower_case_code() {
        let encounter = json!({"resourceType": "Encounter", "id": "enc-1"});
        let obs = [
            json!({"code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]}, "valueQuantity": {"value": 61.25, "unit": "kg"}}),
            json!({"code": {"coding": [{"system": "http://x", "code": "Smoker-Status"}]}, "valueBoolean": false}),
        ];
        let (form, fields) = encounter_record(&encounter, &obs, "cht-uuid", &mappings()).unwrap();
        assert_eq!(form, "INTEROP_OBSERVATION");
        assert_eq!(fields["body_weight"], "61.25 kg");
        assert_eq!(fields["smoker_status"], "false");
        assert_eq!(fields["external_id"], "enc-1");
        let no_value = [json!({"code": {"coding": [{"code": "x"}]}})];
        assert_eq!(
            encounter_record(&encounter, &no_value, "u", &mappings()).unwrap_err().element.as_deref(),
            Some("Observation[0].value[x]")
        );
    }

    #[test]
    fn mapping_field_names_must_be_lower_case() {
        let bad = r#"{"patient_form": "P", "observation_form": "O", "observation_fields": {"a|b": "Body_Weight"}}"#;
        assert!(OutboundMappings::parse(bad).unwrap_err().contains("lower case"));
    }
}
