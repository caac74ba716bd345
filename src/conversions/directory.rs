//! CHT's hierarchy as the FHIR resources another system reads to find who serves a patient: a
//! place as an Organization and a Location (`partOf` up its lineage), a CHW as a Practitioner,
//! a patient as the inbound side's Patient plus its CHW as `generalPractitioner`. Pure functions
//! over hydrated CHT docs (parents as whole docs, each place's `contact` hydrated).
//!
//! Ids are the inbound side's ([`resource_id`]), so a reference read here names the resource the
//! mediator writes to the FHIR server for the same CHT document.

use serde_json::{Value, json};

use super::ConversionError;
use super::ids::resource_id;
use super::patient::{MAX_LINEAGE, person_to_patient};
use super::selection::PatientSelection;
use crate::json::JsonExt;
use crate::settings::IdentifierSystems;

/// The types of CHT's default hierarchy that are places (a `type: contact` doc is a place when
/// its `contact_type` is not one of the person types).
const PLACE_TYPES: &[&str] = &["district_hospital", "health_center", "clinic", "national_office"];

/// What a CHT document is, for the reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A person the inbound side pushes as a Patient.
    Patient,
    /// A person who is staff (a CHW, a supervisor): a Practitioner.
    Staff,
    Place,
    /// Anything else (a report, a user-settings doc, …).
    Other,
}

/// The kind of hydrated CHT doc `doc`, by the same rule as the pushes ([`PatientSelection`]).
pub fn kind(doc: &Value, selection: &PatientSelection) -> Kind {
    if selection.is_person(doc) {
        return if selection.is_patient(doc) { Kind::Patient } else { Kind::Staff };
    }
    let place = doc.at("type").as_str().is_some_and(|t| PLACE_TYPES.contains(&t))
        || (doc.at("type") == "contact" && doc.at("contact_type").as_str().is_some_and(|t| !t.trim().is_empty()));
    if place { Kind::Place } else { Kind::Other }
}

/// A patient as a Patient (the pushed conversion), with the CHW who serves them: the contact of
/// the closest place of a staff type above them.
pub fn patient(
    doc: &Value,
    systems: &IdentifierSystems,
    selection: &PatientSelection,
) -> Result<Value, ConversionError> {
    let mut patient = person_to_patient(doc, systems)?;
    if let Some(chw) = chw_of(doc, selection) {
        patient.set("generalPractitioner", json!([{"reference": format!("Practitioner/{}", resource_id(chw))}]));
    }
    Ok(patient)
}

/// The `_id` of the CHW of `doc`: the contact of its closest ancestor of a staff place type.
fn chw_of<'a>(doc: &'a Value, selection: &PatientSelection) -> Option<&'a str> {
    let mut place = doc.at("parent");
    for _ in 0..MAX_LINEAGE {
        if !place.is_object() {
            return None;
        }
        let kind = if place.at("type") == "contact" { &place.at("contact_type") } else { &place.at("type") };
        let staff_place = kind.as_str().is_some_and(|k| selection.staff_place_types.iter().any(|s| s == k));
        let contact = place.at("contact").at("_id").as_str().filter(|id| !id.trim().is_empty() && doc.at("_id") != *id);
        if let (true, Some(contact)) = (staff_place, contact) {
            return Some(contact);
        }
        place = place.at("parent");
    }
    None
}

/// A staff person as a Practitioner: identifiers, name, phones (no birth date or sex: what a
/// requester needs to reach them).
pub fn practitioner(doc: &Value, systems: &IdentifierSystems) -> Result<Value, ConversionError> {
    let patient = person_to_patient(doc, systems)?;
    let mut practitioner = json!({
        "resourceType": "Practitioner",
        "id": patient.at("id"),
        "identifier": patient.at("identifier"),
        "active": true,
        "name": patient.at("name"),
    });
    if let Some(telecom) = patient.get("telecom") {
        practitioner.set("telecom", telecom.clone());
    }
    Ok(practitioner)
}

/// The parts of a place both its Organization and its Location carry.
struct Place<'a> {
    id: String,
    name: &'a str,
    kind: &'a str,
    identifier: Value,
    parent: Option<String>,
}

fn place<'a>(doc: &'a Value, systems: &IdentifierSystems) -> Result<Place<'a>, ConversionError> {
    let text = |v: &'a Value| v.as_str().map(str::trim).filter(|s| !s.is_empty());
    let cht_id = text(doc.at("_id")).ok_or_else(|| ConversionError::at("doc._id", "is required"))?;
    let name = doc.at("name").as_str().map(str::trim).filter(|s| !s.is_empty());
    let kind = if doc.at("type") == "contact" { &doc.at("contact_type") } else { &doc.at("type") };
    Ok(Place {
        id: resource_id(cht_id),
        name: name.ok_or_else(|| ConversionError::at("doc.name", "is required"))?,
        kind: kind.as_str().unwrap_or("place"),
        identifier: json!([{"use": "official", "type": {"text": "CHT Document ID"},
            "system": systems.document_id, "value": cht_id}]),
        parent: text(doc.at("parent").at("_id")).map(resource_id),
    })
}

/// A CHT place as an Organization, part of its parent place's.
pub fn organization(doc: &Value, systems: &IdentifierSystems) -> Result<Value, ConversionError> {
    let p = place(doc, systems)?;
    let mut organization = json!({"resourceType": "Organization", "id": p.id, "identifier": p.identifier,
        "active": true, "type": [{"text": p.kind}], "name": p.name});
    if let Some(phone) = doc.at("phone").as_str().filter(|s| !s.trim().is_empty()) {
        organization.set("telecom", json!([{"system": "phone", "value": phone.trim()}]));
    }
    if let Some(parent) = p.parent {
        organization.set("partOf", json!({"reference": format!("Organization/{parent}")}));
    }
    Ok(organization)
}

/// A CHT place as a Location, part of its parent place's, managed by its own Organization.
pub fn location(doc: &Value, systems: &IdentifierSystems) -> Result<Value, ConversionError> {
    let p = place(doc, systems)?;
    let mut location = json!({"resourceType": "Location", "id": p.id, "identifier": p.identifier,
        "status": "active", "name": p.name, "mode": "instance", "type": [{"text": p.kind}],
        "managingOrganization": {"reference": format!("Organization/{}", p.id)}});
    if let Some(parent) = p.parent {
        location.set("partOf", json!({"reference": format!("Location/{parent}")}));
    }
    Ok(location)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn systems() -> IdentifierSystems {
        IdentifierSystems::example()
    }

    /// A patient in a household of a CHW area of a district, hydrated as CHT hydrates it.
    fn patient_doc() -> Value {
        json!({"_id": "p-1", "type": "person", "name": "Achieng Atieno", "phone": "+254722000333",
            "parent": {"_id": "hh-1", "type": "clinic", "name": "Atieno household", "contact": {"_id": "p-1"},
                "parent": {"_id": "area-1", "type": "health_center", "name": "Kondele CHW area",
                    "contact": {"_id": "chw-1", "type": "person", "name": "Grace CHW"},
                    "parent": {"_id": "district-1", "type": "district_hospital", "name": "Kisumu district",
                        "contact": {"_id": "sup-1", "name": "Supervisor"}}}}})
    }

    fn valid(resource: &Value) {
        assert_eq!(crate::fhir::base::validate(resource), Ok(()), "{resource}");
        if resource.get("meta").is_some() {
            assert_eq!(crate::fhir::validate::validate(resource), Ok(()), "{resource}");
        }
        assert_eq!(crate::fhir::model::check_structure(resource), Ok(()), "{resource}");
    }

    #[test]
    fn a_patient_names_the_chw_of_their_area_not_the_household_head() {
        let selection = PatientSelection::default();
        let doc = patient_doc();
        assert_eq!(kind(&doc, &selection), Kind::Patient);
        let p = patient(&doc, &systems(), &selection).unwrap();
        assert_eq!(p["generalPractitioner"], json!([{"reference": "Practitioner/chw-1"}]));
        assert_eq!(p["extension"].as_array().unwrap().len(), 3, "the lineage: household, area, district");
        valid(&p);
        // No CHW known: no generalPractitioner, rather than a guess.
        let mut orphan = doc.clone();
        orphan["parent"]["parent"]["contact"] = json!(null);
        orphan["parent"]["parent"]["parent"]["type"] = json!("clinic");
        assert!(patient(&orphan, &systems(), &selection).unwrap().get("generalPractitioner").is_none());
    }

    #[test]
    fn a_chw_is_staff_and_reads_as_a_practitioner_without_birth_date() {
        let selection = PatientSelection::default();
        let chw = json!({"_id": "chw-1", "type": "person", "name": "Grace Akinyi", "phone": "+254711000111",
            "date_of_birth": "1980-01-01", "sex": "female",
            "parent": {"_id": "area-1", "type": "health_center", "name": "Kondele CHW area"}});
        assert_eq!(kind(&chw, &selection), Kind::Staff);
        let p = practitioner(&chw, &systems()).unwrap();
        assert_eq!(p["id"], "chw-1");
        assert_eq!(p["telecom"][0]["value"], "+254711000111");
        assert!(p.get("birthDate").is_none() && p.get("gender").is_none());
        valid(&p);
    }

    #[test]
    fn places_are_organizations_and_locations_part_of_their_parents() {
        let selection = PatientSelection::default();
        let area = patient_doc()["parent"]["parent"].clone();
        assert_eq!(kind(&area, &selection), Kind::Place);
        let o = organization(&area, &systems()).unwrap();
        assert_eq!(o["partOf"]["reference"], "Organization/district-1");
        assert_eq!(o["type"][0]["text"], "health_center");
        valid(&o);
        let l = location(&area, &systems()).unwrap();
        assert_eq!(l["partOf"]["reference"], "Location/district-1");
        assert_eq!(l["managingOrganization"]["reference"], "Organization/area-1");
        valid(&l);
        let district = &area["parent"];
        assert!(organization(district, &systems()).unwrap().get("partOf").is_none(), "the top has no parent");
        // Configurable hierarchies: a `type: contact` place; ids that are no FHIR id are mapped.
        let custom = json!({"_id": "place:7", "type": "contact", "contact_type": "c_village", "name": "Village 7"});
        assert_eq!(kind(&custom, &selection), Kind::Place);
        let o = organization(&custom, &systems()).unwrap();
        assert_eq!(o["id"], resource_id("place:7"));
        assert_eq!(o["identifier"][0]["value"], "place:7");
        valid(&o);
        assert!(organization(&json!({"_id": "x", "type": "clinic"}), &systems()).is_err(), "no name");
    }

    #[test]
    fn reports_and_other_docs_are_neither() {
        let selection = PatientSelection::default();
        assert_eq!(kind(&json!({"_id": "r", "type": "data_record"}), &selection), Kind::Other);
        assert_eq!(kind(&json!({"_id": "u", "type": "user-settings"}), &selection), Kind::Other);
    }
}
