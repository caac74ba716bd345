//! FHIR from other systems → CHT documents (new persons, `POST /api/v2/records` fields), by the outbound
//! mapping (`mediator-config/outbound.json`, or `OUTBOUND_MAPPINGS_FILE`):
//! - a Patient → the new CHT person (`POST /api/v1/people`) a patient the EMR registered becomes:
//!   name, phone, sex, birth date, and the CHT place it belongs to (from `managingOrganization`
//!   through `places`, else `default_place_id`);
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
    /// Not used since 0.4.0 (patients from other systems become CHT contacts through `POST
    /// /api/v1/people`, not records); accepted so that older mapping files still load.
    #[serde(default)]
    pub patient_form: Option<String>,
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
        if let Some(bad) = names.chain([&m.observation_form]).find(|n| n.trim().is_empty()) {
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

/// The body of CHT's `POST /api/v1/people` for FHIR `patient` as contact `id` of person type
/// `kind` (`person`, or an app's own `contact_type` of a person: then `type: contact`): name,
/// phone, sex, birth date, the CHT place it belongs to (`managingOrganization` through `places`,
/// else `default_place_id`), and the Patient's identifiers as `fhir_identifiers`, which CHT's
/// push of the new contact carries back to the same Patient.
pub fn new_person(patient: &Value, id: &str, kind: &str, m: &OutboundMappings) -> Result<Value, ConversionError> {
    let full = full_name(patient)
        .ok_or_else(|| ConversionError::at("Patient.name", "a name (text, or given/family) is required"))?;
    let place = place_of(patient, m)?;
    let mut person = json!({"_id": id, "type": kind, "name": full, "place": place});
    if kind != "person" {
        person.set("type", json!("contact"));
        person.set("contact_type", json!(kind));
    }
    if let Some(phone) = phone(patient) {
        person.set("phone", json!(phone));
    }
    if let Some(sex @ ("male" | "female")) = text(&patient["gender"]) {
        person.set("sex", json!(sex));
    }
    if let Some(born) = text(&patient["birthDate"]) {
        person.set("date_of_birth", json!(born));
    }
    let kept: Vec<Value> = patient
        .at("identifier")
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| text(i.at("system")).is_some() && text(i.at("value")).is_some())
        .map(|i| match text(i.at("type").at("text")) {
            Some(kind) => json!({"system": i.at("system"), "value": i.at("value"), "type": kind}),
            None => json!({"system": i.at("system"), "value": i.at("value")}),
        })
        .collect();
    if !kept.is_empty() {
        person.set("fhir_identifiers", json!(kept));
    }
    Ok(person)
}

/// A Patient's first phone number.
pub fn phone(patient: &Value) -> Option<&str> {
    patient["telecom"].as_array().into_iter().flatten().find(|t| t["system"] == "phone").and_then(|t| text(&t["value"]))
}

/// The CHT place `patient` belongs to, by its `managingOrganization`.
fn place_of<'a>(patient: &Value, m: &'a OutboundMappings) -> Result<&'a str, ConversionError> {
    let organization = text(patient.at("managingOrganization").at("reference"));
    organization
        .and_then(|o| m.places.get(o).map(String::as_str))
        .or_else(|| text(&Value::String(m.default_place_id.clone())).map(|_| m.default_place_id.as_str()))
        .ok_or_else(|| {
            ConversionError::at(
                "Patient.managingOrganization",
                "names no CHT place (outbound mapping `places`, or set `default_place_id`)",
            )
        })
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
    fn a_patient_becomes_the_body_of_a_new_cht_person() {
        let patient = json!({"resourceType": "Patient", "id": "emr-77", "name": [{"given": ["Amina"], "family": "Njeri"}],
            "gender": "female", "birthDate": "1990-05-12", "telecom": [{"system": "email", "value": "a@x"}, {"system": "phone", "value": "+254700000001"}],
            "identifier": [{"system": "https://emr/mrn", "value": "M-1", "type": {"text": "MRN"}}, {"value": "no system"}],
            "managingOrganization": {"reference": "Organization/kondele-clinic"}});
        assert_eq!(
            new_person(&patient, "c-1", "person", &mappings()).unwrap(),
            json!({"_id": "c-1", "type": "person", "name": "Amina Njeri", "place": "5e1a3c55-health-center-kondele",
                "phone": "+254700000001", "sex": "female", "date_of_birth": "1990-05-12",
                "fhir_identifiers": [{"system": "https://emr/mrn", "value": "M-1", "type": "MRN"}]})
        );
        let own_type = new_person(&patient, "c-1", "patient", &mappings()).unwrap();
        assert_eq!((own_type["type"].as_str(), own_type["contact_type"].as_str()), (Some("contact"), Some("patient")));
        let mut nowhere = patient.clone();
        nowhere["managingOrganization"]["reference"] = json!("Organization/unknown");
        assert_eq!(
            new_person(&nowhere, "c", "person", &mappings()).unwrap_err().element.as_deref(),
            Some("Patient.managingOrganization")
        );
        assert_eq!(
            new_person(&json!({"id": "x"}), "c", "person", &mappings()).unwrap_err().element.as_deref(),
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
        let bad = r#"{"observation_form": "O", "observation_fields": {"a|b": "Body_Weight"}}"#;
        assert!(OutboundMappings::parse(bad).unwrap_err().contains("lower case"));
    }

    #[test]
    fn an_older_mapping_file_with_a_patient_form_still_loads() {
        let old = r#"{"patient_form": "INTEROP_PATIENT", "observation_form": "O"}"#;
        assert_eq!(OutboundMappings::parse(old).unwrap().observation_form, "O");
    }
}
