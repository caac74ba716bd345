//! The reference mediator's own pushes (medic/cht-interoperability, its
//! `cht-config/app_settings.json` outbound `expr` mappings), accepted as they are, so this
//! mediator is a drop-in behind that CHT configuration:
//! - its Patient has no `id`; its identifier is `{"system": "cht", "value": doc._id}`;
//! - its Encounter sends `"class": "outpatient"` (a string, not a Coding), `"subject":
//!   {"reference": "Patient/?identifier=<cht id>"}`, an identifier carrying the PATIENT's CHT id,
//!   and nothing that tells one visit from another (no date, no report id);
//! - its `expr` values can be `null` (`[doc.short_name]` with no short name is `[null]`).
//!
//! Pure: the pipeline (`crate::inbound::reference`) resolves the subject and writes.

use serde_json::{Map, Value, json};

use super::ConversionError;
use super::ids::{derived_id, resource_id};
use crate::fhir::client::is_valid_id;
use crate::json::JsonExt;
use crate::settings::IdentifierSystems;

const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
/// FHIR's resource type names as codes.
pub const RESOURCE_TYPES: &str = "http://hl7.org/fhir/resource-types";
/// Where an Encounter class the v3 codes do not name is kept, with the word the sender used.
pub const LOCAL_ENCOUNTER_CLASS: &str = "http://cht-fhir-mediator.org/fhir/CodeSystem/encounter-class";

/// How a reference Encounter names its patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// `Patient/<id>`
    Id(String),
    /// `Patient/?identifier=<value>` (or `Patient?identifier=`): the patient's CHT id.
    Identifier(String),
}

/// A reference Patient, normalised: nulls dropped, identifier systems absolute, an id derived
/// from its CHT identifier when it has none.
pub fn patient(resource: &Value, systems: &IdentifierSystems) -> Result<Value, ConversionError> {
    let mut patient = normalised("Patient", resource, systems)?;
    if patient.at("id").as_str().is_some_and(is_valid_id) {
        return Ok(patient);
    }
    let cht_id = patient
        .at("identifier")
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i.at("system") == systems.document_id.as_str())
        .and_then(|i| i.at("value").as_str())
        .ok_or_else(|| {
            ConversionError::at(
                "Patient.identifier",
                "a Patient without a usable id needs its CHT identifier (system \"cht\")",
            )
        })?;
    super::lookup_key("Patient.identifier.value", cht_id)?;
    patient.set("id", json!(resource_id(cht_id)));
    Ok(patient)
}

/// A reference Encounter, normalised, and its subject. Its id, when it has none, is derived from
/// the whole normalised payload: a redelivery is the same resource — and two visits the payload
/// cannot tell apart (same patient, same words) are one Encounter, as the reference's own
/// subscription could not tell them apart either.
pub fn encounter(resource: &Value, systems: &IdentifierSystems) -> Result<(Value, Subject), ConversionError> {
    let mut encounter = normalised("Encounter", resource, systems)?;
    let class = encounter.at("class").clone();
    if let Some(word) = class.as_str() {
        encounter.set("class", encounter_class(word));
    }
    let reference = encounter.at("subject").at("reference").as_str().unwrap_or_default().to_owned();
    let subject = subject(&reference).ok_or_else(|| {
        ConversionError::at(
            "Encounter.subject",
            "must reference the Patient (Patient/{id} or Patient/?identifier={cht id})",
        )
    })?;
    if !encounter.at("id").as_str().is_some_and(is_valid_id) {
        let mut keyed = encounter.clone();
        if let Some(o) = keyed.as_object_mut() {
            o.remove("id");
        }
        encounter.set("id", json!(derived_id(&["reference-encounter", &canonical(&keyed)])));
    }
    Ok((encounter, subject))
}

/// A requester's Organization as the reference mediator took it (`POST /organization`): its
/// `name` may come as a one-item array (the reference's own schema demands one), and its id, when
/// it has none, is derived from its first identifier, else its name — so a resend is the same
/// resource.
pub fn organization(resource: &Value) -> Result<Value, ConversionError> {
    let mut organization = without_nulls(resource).unwrap_or(Value::Null);
    if organization.at("resourceType") != "Organization" {
        return Err(ConversionError::at("resourceType", "must be Organization"));
    }
    let name = organization.at("name").clone();
    if let Some(first) = name.as_array().and_then(|names| names.first()).cloned() {
        organization.set("name", first);
    }
    let key = identity(&organization).or_else(|| organization.at("name").as_str().map(|n| format!("name|{n}")));
    keyed("Organization", organization, key).map(with_absolute_systems)
}

/// A requester's callback Endpoint (`POST /endpoint`): `status` defaults to `active` and
/// `payloadType` to `Encounter` (R4 requires both; the reference's senders leave them out, and
/// the reference called them back with the Encounter); its
/// `address` is what the mediator calls, so it is required. The id, when it has none, comes
/// from its first identifier, else its address.
pub fn endpoint(resource: &Value) -> Result<Value, ConversionError> {
    let mut endpoint = without_nulls(resource).unwrap_or(Value::Null);
    if endpoint.at("resourceType") != "Endpoint" {
        return Err(ConversionError::at("resourceType", "must be Endpoint"));
    }
    let Some(address) = endpoint.at("address").as_str().map(str::to_owned) else {
        return Err(ConversionError::at(
            "Endpoint.address",
            "is required: the mediator calls the requester back there",
        ));
    };
    if endpoint.at("status").is_null() {
        endpoint.set("status", json!("active"));
    }
    if endpoint.at("payloadType").is_null() {
        // An EMR registering through the reference's route expects the reference's callback:
        // the outcome Encounter (see `crate::outbound::notify`).
        endpoint.set(
            "payloadType",
            json!([{"coding": [{"system": RESOURCE_TYPES, "code": "Encounter"}], "text": "Encounter"}]),
        );
    }
    let key = identity(&endpoint).or(Some(format!("address|{address}")));
    keyed("Endpoint", endpoint, key).map(with_absolute_systems)
}

/// Where a requester's identifier system that is not an absolute URI (the reference's `"cht"`)
/// is put: FHIR wants an absolute one (a validating server such as HAPI refuses the resource
/// otherwise), and unlike a Patient's, a requester's `"cht"` identifier is not a CHT document id.
pub const LOCAL_SYSTEM_BASE: &str = "http://cht-fhir-mediator.org/fhir/identifier/local/";

/// `resource` with each identifier system that is not absolute moved under [`LOCAL_SYSTEM_BASE`]
/// (`"cht"` → `…/local/cht`). The id was derived before, from the system as sent, so a
/// resource registered by an earlier version keeps its id.
fn with_absolute_systems(mut resource: Value) -> Value {
    if let Some(identifiers) = resource.get_mut("identifier").and_then(Value::as_array_mut) {
        for identifier in identifiers.iter_mut() {
            let system = identifier.at("system").as_str().unwrap_or_default().to_owned();
            if !system.is_empty() && !is_absolute(&system) {
                let encoded: String = url::form_urlencoded::byte_serialize(system.as_bytes()).collect();
                identifier.set("system", json!(format!("{LOCAL_SYSTEM_BASE}{encoded}")));
            }
        }
    }
    resource
}

/// `scheme:rest`, as an absolute URI starts.
fn is_absolute(system: &str) -> bool {
    system.split_once(':').is_some_and(|(scheme, rest)| !scheme.is_empty() && !rest.is_empty())
}

/// `system|value` of a resource's first identifier.
fn identity(resource: &Value) -> Option<String> {
    let first = resource.at("identifier").nth(0);
    let value = first.at("value").as_str()?;
    Some(format!("{}|{value}", first.at("system").as_str().unwrap_or_default()))
}

/// `resource` with its own id if valid, else one derived from `key`.
fn keyed(kind: &str, mut resource: Value, key: Option<String>) -> Result<Value, ConversionError> {
    if resource.at("id").as_str().is_some_and(is_valid_id) {
        return Ok(resource);
    }
    let key =
        key.ok_or_else(|| ConversionError::at(&format!("{kind}.identifier"), "an id or an identifier is required"))?;
    resource.set("id", json!(derived_id(&[kind, &key])));
    Ok(resource)
}

/// `"outpatient"` and the like → the v3 ActCode Coding; any other word → a Coding with that code
/// in [`LOCAL_ENCOUNTER_CLASS`] (kept, never refused).
fn encounter_class(word: &str) -> Value {
    let code = match word.trim().to_ascii_lowercase().as_str() {
        "outpatient" | "ambulatory" | "amb" => Some(("AMB", "ambulatory")),
        "home" | "home health" | "hh" => Some(("HH", "home health")),
        "inpatient" | "imp" => Some(("IMP", "inpatient encounter")),
        "emergency" | "emer" => Some(("EMER", "emergency")),
        "field" | "fld" => Some(("FLD", "field")),
        "virtual" | "vr" => Some(("VR", "virtual")),
        _ => None,
    };
    match code {
        Some((code, display)) => json!({"system": ACT_CODE, "code": code, "display": display}),
        None => json!({"system": LOCAL_ENCOUNTER_CLASS, "code": word.trim()}),
    }
}

fn subject(reference: &str) -> Option<Subject> {
    let query = reference.strip_prefix("Patient/?").or_else(|| reference.strip_prefix("Patient?"));
    if let Some(query) = query {
        let value = url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "identifier").map(|(_, v)| v)?;
        let value = value.rsplit('|').next().unwrap_or_default().trim().to_owned();
        return (!value.is_empty() && super::lookup_key("Encounter.subject", &value).is_ok())
            .then_some(Subject::Identifier(value));
    }
    let id = reference.strip_prefix("Patient/")?;
    is_valid_id(id).then(|| Subject::Id(id.to_owned()))
}

/// The resource as a `kind`, nulls and what they leave empty dropped, identifier systems that are
/// not absolute URIs (the reference's `"cht"`) replaced by the configured CHT system.
fn normalised(kind: &str, resource: &Value, systems: &IdentifierSystems) -> Result<Value, ConversionError> {
    if resource.at("resourceType") != kind {
        return Err(ConversionError::at("resourceType", format!("must be {kind}")));
    }
    let mut out = without_nulls(resource).unwrap_or(Value::Null);
    if let Some(identifiers) = out.get_mut("identifier").and_then(Value::as_array_mut) {
        for identifier in identifiers.iter_mut() {
            let system = identifier.at("system").as_str().unwrap_or_default();
            if !is_absolute(system) {
                identifier.set("system", json!(systems.document_id));
            }
        }
    }
    Ok(out)
}

/// `value` without `null`s, and without the arrays, objects and strings that leaves empty.
fn without_nulls(value: &Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::String(s) if s.trim().is_empty() => None,
        Value::Array(items) => {
            let kept: Vec<Value> = items.iter().filter_map(without_nulls).collect();
            (!kept.is_empty()).then_some(Value::Array(kept))
        }
        Value::Object(map) => {
            let kept: Map<String, Value> =
                map.iter().filter_map(|(k, v)| without_nulls(v).map(|v| (k.clone(), v))).collect();
            (!kept.is_empty()).then_some(Value::Object(kept))
        }
        other => Some(other.clone()),
    }
}

/// JSON with object keys sorted: the same content always gives the same text.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", Value::String((*k).clone()), canonical(map.get(*k).unwrap_or(&Value::Null))))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(canonical).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn systems() -> IdentifierSystems {
        IdentifierSystems {
            document_id: "https://cht.example.org/id/doc".into(),
            patient_id: "https://cht.example.org/id/p".into(),
        }
    }

    /// What the reference's `FHIR_patient` mapping sends (a person with no short_name).
    fn reference_patient() -> Value {
        json!({"resourceType": "Patient", "identifier": [{"system": "cht", "use": "official", "value": "p-ref-1"}],
            "name": [{"use": "official", "family": "Amina Njeri", "given": [null]}], "gender": "female", "birthDate": "1990-05-12"})
    }

    #[test]
    fn a_reference_patient_gets_the_id_of_its_cht_identifier_and_an_absolute_system() {
        let p = patient(&reference_patient(), &systems()).unwrap();
        assert_eq!(p["id"], "p-ref-1");
        assert_eq!(
            p["identifier"][0],
            json!({"system": "https://cht.example.org/id/doc", "use": "official", "value": "p-ref-1"})
        );
        assert_eq!(p["name"][0], json!({"use": "official", "family": "Amina Njeri"}), "[null] is dropped");
        assert_eq!(crate::fhir::base::validate(&p), Ok(()));
        let mut anonymous = reference_patient();
        anonymous.as_object_mut().unwrap().remove("identifier");
        assert_eq!(patient(&anonymous, &systems()).unwrap_err().element.as_deref(), Some("Patient.identifier"));
    }

    #[test]
    fn a_reference_encounter_gets_a_coding_a_subject_and_a_stable_id() {
        let sent = json!({"resourceType": "Encounter", "identifier": [{"system": "cht", "use": "official", "value": "p-ref-1"}],
            "status": "finished", "class": "outpatient", "type": [{"text": "Community health worker visit"}],
            "subject": {"reference": "Patient/?identifier=p-ref-1"},
            "participant": [{"type": [{"text": "Community health worker"}]}]});
        let (e, subject) = encounter(&sent, &systems()).unwrap();
        assert_eq!(subject, Subject::Identifier("p-ref-1".into()));
        assert_eq!(e["class"]["code"], "AMB");
        assert_eq!(encounter(&sent, &systems()).unwrap().0["id"], e["id"], "a redelivery is the same resource");
        let mut other = sent.clone();
        other["type"][0]["text"] = json!("Another visit");
        assert_ne!(encounter(&other, &systems()).unwrap().0["id"], e["id"]);
        let mut unknown = sent.clone();
        unknown["class"] = json!("community");
        assert_eq!(
            encounter(&unknown, &systems()).unwrap().0["class"],
            json!({"system": LOCAL_ENCOUNTER_CLASS, "code": "community"})
        );
        let mut direct = sent.clone();
        direct["subject"] = json!({"reference": "Patient/abc"});
        assert_eq!(encounter(&direct, &systems()).unwrap().1, Subject::Id("abc".into()));
        direct["subject"] = json!({"reference": "Group/abc"});
        assert_eq!(encounter(&direct, &systems()).unwrap_err().element.as_deref(), Some("Encounter.subject"));
    }

    #[test]
    fn the_reference_requesters_organization_and_endpoint() {
        // As the reference's own test factories build them.
        let org = organization(&json!({"resourceType": "Organization", "name": ["athena"],
            "identifier": [{"system": "cht", "value": "athena-1"}], "endpoint": [{"reference": "Endpoint/e1"}]}))
        .unwrap();
        assert_eq!(org["name"], "athena");
        assert_eq!(crate::fhir::base::validate(&org), Ok(()));
        let again = organization(&json!({"resourceType": "Organization", "name": ["athena"],
            "identifier": [{"system": "cht", "value": "athena-1"}], "endpoint": [{"reference": "Endpoint/e1"}]}))
        .unwrap();
        assert_eq!(org["id"], again["id"], "a resend is the same Organization");
        let ep = endpoint(&json!({"resourceType": "Endpoint", "identifier": [{"system": "cht", "value": "ep-1"}],
            "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "hl7-fhir-rest"},
            "address": "https://emr.example.org/fhir"}))
        .unwrap();
        assert_eq!(ep["status"], "active");
        assert_eq!(ep["identifier"][0]["system"], format!("{LOCAL_SYSTEM_BASE}cht"), "an absolute system");
        assert_eq!(org["identifier"][0]["system"], format!("{LOCAL_SYSTEM_BASE}cht"));
        // The id still comes from the identifier as sent (what version 0.2 derived).
        assert_eq!(ep["id"], derived_id(&["Endpoint", "cht|ep-1"]));
        assert_eq!(crate::fhir::base::validate(&ep), Ok(()));
        let no_address = endpoint(&json!({"resourceType": "Endpoint", "identifier": [{"value": "x"}]})).unwrap_err();
        assert_eq!(no_address.element.as_deref(), Some("Endpoint.address"));
    }
}
