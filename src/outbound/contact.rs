//! The CHT contact a FHIR Patient is, made once when the EMR registered the patient and CHT has
//! no such person: a follow-up record about a `patient_uuid` no contact has syncs to no CHW (and
//! CHT's registration transitions never run for records the API makes).
//!
//! In order: the Patient's CHT document identifier; its CHT `patient_id` short code (through the
//! `contacts_by_reference` view); a CHT person with the Patient's phone (`contacts-by-phone`)
//! who is also the same person by name, and by birth date when both have one — a phone alone is
//! not enough, household members share one; the contact the mediator made for it before, whose
//! id is derived from the Patient (so redeliveries, retries and replicas find it, and `POST
//! /api/v1/people` with that `_id` answers 409 to the second of two racing copies); else `POST
//! /api/v1/people` under the CHT place of the Patient's `managingOrganization` (outbound mapping
//! `places`, else `default_place_id`). The contact id is written onto the FHIR Patient as its
//! CHT document identifier (before the contact exists: CHT pushes it within a second), so CHT's
//! own push of the new contact updates this Patient instead of making a second one; the contact
//! keeps the Patient's other identifiers (`fhir_identifiers`), which that push carries back.

use serde_json::{Value, json};

use crate::conversions::selection::PatientSelection;

use crate::conversions::ids::{derived_id, resource_id};
use crate::error::ApiError;
use crate::fhir::client::FhirError;
use crate::fhir::store::WriteMode;
use crate::json::JsonExt;
use crate::outbound::records::fhir_error;
use crate::settings::LiveConfig;
use crate::state::AppState;
use crate::upstream::CallContext;

/// The CHT contact of a FHIR Patient; `created` when this call made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub id: String,
    pub created: bool,
}

impl Contact {
    fn known(id: impl Into<String>) -> Self {
        Self { id: id.into(), created: false }
    }
}

/// The CHT contact of FHIR `patient` (read from the FHIR server, with its version), made and
/// linked when CHT has none.
pub async fn ensure_contact(
    state: &AppState,
    ctx: &CallContext,
    live: &LiveConfig,
    patient: &Value,
) -> Result<Contact, ApiError> {
    let systems = &live.identifiers;
    let fhir_id = patient.at("id").as_str().unwrap_or_default();
    let mode = state.fhir.mode(ctx, live, "Patient").await.map_err(fhir_error)?;
    let ours = contact_id(fhir_id, mode, live.fhir.url.as_str());
    let linked = |p: &Value| identifier(p, &systems.document_id, "CHT Document ID");
    // A contact id derived from the Patient (not its own id) is written onto the Patient before
    // the contact exists (below); with its own id, the contact is made first.
    let derived = ours != fhir_id;
    match linked(patient) {
        // A CHT patient (its push wrote the Patient), or one another system linked: CHT has it.
        Some(uuid) if !(derived && uuid == ours) => return Ok(Contact::known(uuid)),
        Some(_) => {}
        None => {
            if let Some(found) = existing_person(state, ctx, live, patient).await?
                && let Some(id) = found.at("_id").as_str()
            {
                link(state, ctx, live, patient, id).await?;
                return Ok(Contact::known(id));
            }
        }
    }
    let _one_at_a_time = state.locks.lock(&format!("contact\u{1f}{fhir_id}")).await;
    // Read again under the lock: a copy of this request may have linked it meanwhile.
    let fresh = state.fhir.client().read(ctx, &live.fhir, "Patient", fhir_id).await.map_err(fhir_error)?;
    let patient = fresh.as_ref().unwrap_or(patient);
    if let Some(uuid) = linked(patient).filter(|uuid| !(derived && *uuid == ours)) {
        return Ok(Contact::known(uuid));
    }
    match state.cht.person(ctx, &live.cht, &ours).await? {
        Some(existing) if same_person(&existing, patient) => {
            if linked(patient).is_none() {
                link(state, ctx, live, patient, &ours).await?;
            }
            Ok(Contact::known(ours))
        }
        Some(_) => Err(ApiError::Unprocessable {
            message: format!("CHT contact {ours} belongs to another person than this Patient"),
            expression: Some("Patient.name".into()),
        }),
        None => {
            // A derived id is linked first: CHT pushes the new contact within a second, and that
            // push finds the Patient by this identifier — written after, it would make a second
            // Patient. A crash between the two leaves the link, and the next delivery (above:
            // linked to `ours` but no such contact) creates the contact. With the Patient's own
            // id the push writes `Patient/{id}` itself, and the link follows the contact.
            let person = new_person(patient, &ours, state)?;
            if derived && linked(patient).is_none() {
                link(state, ctx, live, patient, &ours).await?;
            }
            state.cht.create_person(ctx, &live.cht, &person).await?;
            tracing::info!(contact = %ours, patient = %fhir_id, "CHT contact created for a patient the EMR registered");
            if !derived {
                link(state, ctx, live, patient, &ours).await?;
            }
            Ok(Contact { id: ours, created: true })
        }
    }
}

/// A person CHT already has for `patient`, found by its CHT short code or by its phone.
async fn existing_person(
    state: &AppState,
    ctx: &CallContext,
    live: &LiveConfig,
    patient: &Value,
) -> Result<Option<Value>, ApiError> {
    if let Some(code) = identifier(patient, &live.identifiers.patient_id, "CHT Patient ID")
        && let Some(person) = state.cht.person_by_patient_id(ctx, &live.cht, &code).await?
    {
        return Ok(Some(person));
    }
    let Some(phone) = crate::conversions::to_cht::phone(patient) else { return Ok(None) };
    let candidates = state.cht.contacts_by_phone(ctx, &live.cht, phone).await?;
    let selection = &state.settings.patients;
    let matching: Vec<Value> = candidates.into_iter().filter(|c| same_patient(c, patient, selection)).collect();
    match matching.len() {
        0 | 1 => Ok(matching.into_iter().next()),
        n => {
            tracing::warn!(matches = n, "several CHT persons share this phone, name and birth date; linking none");
            Ok(None)
        }
    }
}

/// Whether CHT contact `contact` (found by phone) is the patient `patient`: a person, not staff,
/// of the same name, and of the same birth date when both have one.
fn same_patient(contact: &Value, patient: &Value, selection: &PatientSelection) -> bool {
    let born = (patient.at("birthDate").as_str(), contact.at("date_of_birth").as_str());
    let same_birth = match born {
        (Some(a), Some(b)) => a.trim() == b.trim(),
        _ => true,
    };
    selection.is_non_staff_person(contact) && same_person(contact, patient) && same_birth
}

/// With client ids CHT's push of the contact writes `Patient/{resource_id(contact id)}`: the
/// contact id must be the Patient's own id for that to be this Patient. With server ids the
/// push writes by identifier, and a server id can come again after a reset, so the id is derived
/// from the server and the id instead.
pub fn contact_id(fhir_id: &str, mode: WriteMode, fhir_url: &str) -> String {
    match mode {
        WriteMode::ClientIds if resource_id(fhir_id) == fhir_id => fhir_id.to_owned(),
        _ => derived_id(&["fhir-patient", fhir_url.trim_end_matches('/'), fhir_id]),
    }
}

/// The body of `POST /api/v1/people` for `patient` as contact `id`.
pub fn new_person(patient: &Value, id: &str, state: &AppState) -> Result<Value, ApiError> {
    let kind = state.settings.patients.person_contact_types.first().map_or("person", String::as_str);
    crate::conversions::to_cht::new_person(patient, id, kind, &state.settings.outbound)
        .map_err(|e| ApiError::Unprocessable { message: e.message, expression: e.element })
}

/// A contact the mediator made for this Patient, not another person's after a FHIR server reset.
fn same_person(contact: &Value, patient: &Value) -> bool {
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    let full = crate::conversions::to_cht::full_name(patient).unwrap_or_default();
    contact.at("name").as_str().is_some_and(|n| norm(n) == norm(&full))
}

/// `patient` with CHT document identifier `id`, written to the FHIR server at the version read;
/// when another replica changed it meanwhile, read again and link that (unless it is linked).
async fn link(
    state: &AppState,
    ctx: &CallContext,
    live: &LiveConfig,
    patient: &Value,
    id: &str,
) -> Result<(), ApiError> {
    let Err(e) = link_at_version(state, ctx, live, patient, id).await else { return Ok(()) };
    // 412 at the version read, or HAPI's 409 for two writes of one resource at once: another
    // copy linked it meanwhile (or changed it): read it again.
    let conflict = matches!(
        e,
        FhirError::VersionConflict
            | FhirError::Transient(ApiError::BadGateway { status: 409, .. })
            | FhirError::Rejected { status: 409, .. }
    );
    if !conflict {
        return Err(fhir_error(e));
    }
    let fhir_id = patient.at("id").as_str().unwrap_or_default();
    let now = state.fhir.client().read(ctx, &live.fhir, "Patient", fhir_id).await.map_err(fhir_error)?;
    match now {
        Some(now) if identifier(&now, &live.identifiers.document_id, "CHT Document ID").as_deref() == Some(id) => {
            Ok(())
        }
        Some(now) => link_at_version(state, ctx, live, &now, id).await.map_err(fhir_error),
        None => Ok(()),
    }
}

async fn link_at_version(
    state: &AppState,
    ctx: &CallContext,
    live: &LiveConfig,
    patient: &Value,
    id: &str,
) -> Result<(), FhirError> {
    let mut linked = patient.clone();
    let identifier = json!({"use": "official", "type": {"text": "CHT Document ID"},
        "system": live.identifiers.document_id, "value": id});
    match linked.get_mut("identifier").and_then(Value::as_array_mut) {
        Some(list) => list.push(identifier),
        None => linked.set("identifier", json!([identifier])),
    }
    let version = patient.at("meta").at("versionId").as_str();
    state.fhir.update(ctx, live, &linked, version).await?;
    Ok(())
}

/// The value of `patient`'s identifier of `system` (or typed `type_text`, as the reference
/// mediator's pushes name them).
pub(crate) fn identifier(patient: &Value, system: &str, type_text: &str) -> Option<String> {
    patient
        .at("identifier")
        .as_array()?
        .iter()
        .find(|i| i.at("system") == system || i.at("type").at("text") == type_text)
        .and_then(|i| i.at("value").as_str())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contact_id_is_the_patient_id_only_when_a_push_writes_that_id() {
        assert_eq!(contact_id("emr-77", WriteMode::ClientIds, "http://f/fhir"), "emr-77");
        let numeric = contact_id("123", WriteMode::ClientIds, "http://f/fhir");
        assert_ne!(numeric, "123", "all-digit ids are not written as they are");
        let server = contact_id("123", WriteMode::Conditional, "http://f/fhir/");
        assert_eq!(server, contact_id("123", WriteMode::Conditional, "http://f/fhir"));
        assert_ne!(server, contact_id("123", WriteMode::Conditional, "http://other/fhir"));
    }

    #[test]
    fn cht_identifiers_are_found_by_system_or_by_type() {
        let patient = json!({"id": "fhir-1", "identifier": [
            {"system": "https://d", "value": "cht-uuid"}, {"type": {"text": "CHT Patient ID"}, "value": "45821"}]});
        assert_eq!(identifier(&patient, "https://d", "CHT Document ID").as_deref(), Some("cht-uuid"));
        assert_eq!(identifier(&patient, "https://p", "CHT Patient ID").as_deref(), Some("45821"));
        assert_eq!(identifier(&json!({"id": "fhir-2"}), "https://d", "CHT Document ID"), None);
    }

    #[test]
    fn a_phone_match_is_the_patient_only_as_the_same_person_born_the_same_day() {
        let selection = PatientSelection::default();
        let patient = json!({"name": [{"text": "Amina Njeri"}], "birthDate": "1990-05-12"});
        let amina = json!({"type": "person", "name": "Amina Njeri", "date_of_birth": "1990-05-12"});
        assert!(same_patient(&amina, &patient, &selection));
        let undated = json!({"type": "contact", "contact_type": "household_member", "name": "amina njeri"});
        assert!(same_patient(&undated, &patient, &selection), "no birth date on one side: the name decides");
        let sister = json!({"type": "person", "name": "Grace Njeri", "date_of_birth": "1990-05-12"});
        assert!(!same_patient(&sister, &patient, &selection), "a household shares its phone");
        let namesake = json!({"type": "person", "name": "Amina Njeri", "date_of_birth": "2015-01-01"});
        assert!(!same_patient(&namesake, &patient, &selection));
        let chw = json!({"type": "person", "name": "Amina Njeri", "role": "chw"});
        assert!(!same_patient(&chw, &patient, &selection), "never a CHW");
        let household = json!({"type": "clinic", "name": "Amina Njeri"});
        assert!(!same_patient(&household, &patient, &selection), "never a place");
    }

    #[test]
    fn a_contact_is_the_same_person_by_name() {
        let patient = json!({"name": [{"given": ["Amina"], "family": "Njeri"}]});
        assert!(same_person(&json!({"name": "amina  njeri"}), &patient));
        assert!(!same_person(&json!({"name": "Grace Akinyi"}), &patient));
    }
}
