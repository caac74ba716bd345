//! CHT person → FHIR Patient.
//!
//! Accepts the cht-docs short form `{"doc": {_id, name, phone, date_of_birth, sex, patient_id}}`
//! and a whole (hydrated or minified) person doc, `{"doc": <doc>}` or the doc itself, with
//! `type: person` or `type: contact` + `contact_type`. Optional fields that are missing are
//! omitted, never invented. Design decisions (see fhir-profiles/README.md):
//! - identifiers: `_id` ("CHT Document ID") and `patient_id` ("CHT Patient ID"), systems from settings;
//! - name: `text` = the CHT name; `family` = its last word, `given` = the words before it;
//! - an approximate birth date (`date_of_birth_method: approx`) keeps its date and is marked with
//!   the `birth-date-approximate` extension on `_birthDate`;
//! - the parent lineage: one `cht-lineage` extension per ancestor place (its `_id`), closest first.

use serde_json::{Map, Value, json};

use super::ConversionError;
use super::ids::resource_id;
use crate::fhir::profiles::{BIRTH_DATE_APPROXIMATE, LINEAGE, PATIENT};
use crate::json::JsonExt;
use crate::settings::IdentifierSystems;

/// Lineages deeper than this are cut (CHT hierarchies are a handful of levels; a cycle must not loop).
pub(crate) const MAX_LINEAGE: usize = 16;

/// The person doc inside a payload: `payload.doc`, or the payload itself when it is a doc.
pub fn person_doc(payload: &Value) -> Result<&Map<String, Value>, ConversionError> {
    match payload.get("doc") {
        Some(Value::Object(doc)) => Ok(doc),
        Some(_) => Err(ConversionError::at("doc", "must be a CHT person document (an object)")),
        None => payload
            .as_object()
            .filter(|o| o.contains_key("_id"))
            .ok_or_else(|| ConversionError::at("doc", "is required: {\"doc\": {\"_id\": ..., \"name\": ...}}")),
    }
}

/// Converts a CHT person payload to a Patient.
pub fn person_to_patient(payload: &Value, systems: &IdentifierSystems) -> Result<Value, ConversionError> {
    let doc = person_doc(payload)?;
    let text = |key: &str| doc.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
    let id = text("_id").ok_or_else(|| ConversionError::at("doc._id", "is required"))?;
    match (text("type"), text("contact_type")) {
        (None | Some("person"), _) | (Some("contact"), Some(_)) => {}
        (Some(other), _) => {
            return Err(ConversionError::at(
                "doc.type",
                format!("{other:?} is not a person (type person, or contact with a contact_type)"),
            ));
        }
    }
    let name = text("name").ok_or_else(|| ConversionError::at("doc.name", "is required"))?;

    let mut identifiers = vec![identifier("official", "CHT Document ID", &systems.document_id, id)];
    if let Some(short) = text("patient_id") {
        identifiers.push(identifier("usual", "CHT Patient ID", &systems.patient_id, short));
    }
    // A contact the mediator made for a patient the EMR registered keeps the EMR's identifiers:
    // CHT's push of it must not drop them from the FHIR Patient (absolute systems only).
    let own = [systems.document_id.as_str(), systems.patient_id.as_str()];
    for kept in doc.get("fhir_identifiers").and_then(Value::as_array).into_iter().flatten() {
        let (Some(system), Some(value)) =
            (kept.get("system").and_then(Value::as_str), kept.get("value").and_then(Value::as_str))
        else {
            continue;
        };
        let absolute = crate::fhir::validate::is_absolute_uri(system) && !system.contains(char::is_whitespace);
        if absolute && !own.contains(&system) && !value.trim().is_empty() && value.len() <= 1024 {
            let type_text = kept.get("type").and_then(Value::as_str).map(str::trim).filter(|t| !t.is_empty());
            identifiers.push(identifier(
                "usual",
                type_text.unwrap_or("Identifier from another system"),
                system,
                value.trim(),
            ));
        }
    }
    let mut patient = json!({
        "resourceType": "Patient",
        "id": resource_id(id),
        "meta": { "profile": [PATIENT] },
        "identifier": identifiers,
        "active": true,
        "name": [human_name(name)],
    });
    let telecom: Vec<Value> = ["phone", "phone_alternate"]
        .iter()
        .filter_map(|key| text(key))
        .enumerate()
        .map(|(i, phone)| {
            if i == 0 {
                json!({"system": "phone", "value": phone, "use": "mobile"})
            } else {
                json!({"system": "phone", "value": phone})
            }
        })
        .collect();
    if !telecom.is_empty() {
        patient.set("telecom", json!(telecom));
    }
    if let Some(sex) = text("sex") {
        patient.set("gender", json!(gender(sex)));
    }
    if let Some(dob) = text("date_of_birth") {
        patient.set("birthDate", json!(date("doc.date_of_birth", dob)?));
        if text("date_of_birth_method") == Some("approx") {
            patient.set("_birthDate", json!({"extension": [{"url": BIRTH_DATE_APPROXIMATE, "valueBoolean": true}]}));
        }
    }
    if let Some(died) = text("date_of_death") {
        patient.set("deceasedDateTime", json!(date("doc.date_of_death", died)?));
    }
    let lineage = lineage(doc, &systems.document_id);
    if !lineage.is_empty() {
        patient.set("extension", json!(lineage));
    }
    Ok(patient)
}

fn identifier(use_: &str, type_text: &str, system: &str, value: &str) -> Value {
    json!({"use": use_, "type": {"text": type_text}, "system": system, "value": value})
}

fn human_name(name: &str) -> Value {
    let words: Vec<&str> = name.split_whitespace().collect();
    let mut human = json!({"use": "official", "text": name});
    match words.as_slice() {
        [] => {}
        [single] => human.set("given", json!([single])),
        [given @ .., family] => {
            human.set("family", json!(family));
            human.set("given", json!(given));
        }
    }
    human
}

/// CHT `sex` → FHIR administrative gender; an unrecognised answer is `unknown`, not a guess.
fn gender(sex: &str) -> &'static str {
    match sex.to_ascii_lowercase().as_str() {
        "male" | "m" => "male",
        "female" | "f" => "female",
        "other" => "other",
        _ => "unknown",
    }
}

/// A CHT date (`YYYY-MM-DD`, or a full ISO timestamp as some apps store it) → FHIR date. Only a
/// full `YYYY-MM-DD` day is taken: `1990-5-12` or `199-05-12` would need guessing.
fn date(element: &str, raw: &str) -> Result<String, ConversionError> {
    // `get` and not slicing: the input may hold multi-byte characters anywhere.
    let (day, rest) = (raw.get(..10).unwrap_or(raw), raw.get(10..).unwrap_or_default());
    let full_day = day.len() == 10 && crate::fhir::base::primitive::is_date(day);
    if full_day && (rest.is_empty() || rest.starts_with('T')) {
        Ok(day.to_owned())
    } else {
        Err(ConversionError::at(element, "is not a date (YYYY-MM-DD)"))
    }
}

/// Ancestor place ids, closest first, as `cht-lineage` extensions.
fn lineage(doc: &Map<String, Value>, system: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut parent = doc.get("parent");
    while let Some(Value::Object(p)) = parent {
        // An id of only whitespace is no place (and no FHIR string): the lineage ends there, as
        // at an empty one. (Found by the fuzzer.)
        let Some(id) = p.get("_id").and_then(Value::as_str).filter(|s| !s.trim().is_empty()) else { break };
        if out.len() == MAX_LINEAGE {
            break;
        }
        out.push(json!({"url": LINEAGE, "valueIdentifier": {"system": system, "value": id}}));
        parent = p.get("parent");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn systems() -> IdentifierSystems {
        IdentifierSystems::example()
    }

    #[test]
    fn short_form_converts_and_validates() {
        let payload = json!({"doc": {"_id": "8f1a", "name": "Amina Wanjiru Njeri", "phone": "+254700000001",
            "date_of_birth": "1990-05-12", "sex": "female", "patient_id": "45821"}});
        let p = person_to_patient(&payload, &systems()).unwrap();
        assert_eq!(p["id"], "8f1a");
        assert_eq!(
            p["name"][0],
            json!({"use": "official", "text": "Amina Wanjiru Njeri", "family": "Njeri", "given": ["Amina", "Wanjiru"]})
        );
        assert_eq!(p["identifier"][1]["value"], "45821");
        assert_eq!(p["identifier"][1]["type"]["text"], "CHT Patient ID");
        assert_eq!(crate::fhir::validate::validate(&p), Ok(()));
        assert_eq!(crate::fhir::model::check_structure(&p), Ok(()));
    }

    #[test]
    fn a_contact_made_for_an_emr_patient_keeps_its_identifiers() {
        let payload = json!({"doc": {"_id": "c1", "name": "Nafula Wekesa", "fhir_identifiers": [
            {"system": "https://emr.example.org/mrn", "value": "M-9", "type": "MRN"},
            {"system": "https://emr.example.org/nid", "value": " 77 "},
            {"system": "https://cht.example.org/id/doc", "value": "other"},
            {"system": "not absolute", "value": "x"}, {"system": "https://e", "value": ""}, "garbage"]}});
        let p = person_to_patient(&payload, &systems()).unwrap();
        let ids = p["identifier"].as_array().unwrap();
        assert_eq!(ids.len(), 3, "{ids:?}");
        assert_eq!((ids[1]["value"].as_str(), ids[1]["type"]["text"].as_str()), (Some("M-9"), Some("MRN")));
        assert_eq!(ids[2]["value"], "77");
        assert_eq!(crate::fhir::validate::validate(&p), Ok(()));
    }

    #[test]
    fn missing_optional_fields_are_omitted() {
        let p = person_to_patient(&json!({"doc": {"_id": "p2", "name": "Otieno"}}), &systems()).unwrap();
        for absent in ["gender", "birthDate", "telecom", "extension", "_birthDate"] {
            assert!(p.get(absent).is_none(), "{absent} invented");
        }
        assert_eq!(p["identifier"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn a_lineage_ends_at_a_blank_place_id() {
        // Found by the fuzzer: a grandparent `_id` of spaces became an invalid FHIR string.
        let doc = json!({"doc": {"_id": "p3", "name": "Ama", "parent": {"_id": "hh-1", "parent": {"_id": "   "}}}});
        let p = person_to_patient(&doc, &systems()).unwrap();
        assert_eq!(p["extension"].as_array().unwrap().len(), 1);
        assert_eq!(p["extension"][0]["valueIdentifier"]["value"], "hh-1");
        assert_eq!(crate::fhir::base::validate(&p), Ok(()));
    }

    #[test]
    fn refuses_what_is_not_a_person() {
        let err = person_to_patient(&json!({"doc": {"_id": "c1", "type": "clinic", "name": "Household"}}), &systems())
            .unwrap_err();
        assert_eq!(err.element.as_deref(), Some("doc.type"));
        assert!(
            person_to_patient(
                &json!({"doc": {"_id": "c1", "type": "contact", "contact_type": "patient", "name": "A"}}),
                &systems()
            )
            .is_ok()
        );
        assert_eq!(
            person_to_patient(&json!({"doc": {"name": "A"}}), &systems()).unwrap_err().element.as_deref(),
            Some("doc._id")
        );
        let bad_date =
            person_to_patient(&json!({"doc": {"_id": "a", "name": "A", "date_of_birth": "12/05/1990"}}), &systems())
                .unwrap_err();
        assert_eq!(bad_date.element.as_deref(), Some("doc.date_of_birth"));
        for bad in ["1990-5-12", "199-05-12", "1990-05-1é", "1990-05-12é", "é", "1990-05-12 10:00"] {
            let payload = json!({"doc": {"_id": "a", "name": "A", "date_of_birth": bad}});
            let err = person_to_patient(&payload, &systems()).unwrap_err();
            assert_eq!(err.element.as_deref(), Some("doc.date_of_birth"), "{bad}");
        }
        let iso = json!({"doc": {"_id": "a", "name": "A", "date_of_birth": "1990-05-12T00:00:00.000Z"}});
        assert_eq!(person_to_patient(&iso, &systems()).unwrap()["birthDate"], "1990-05-12");
    }
}
