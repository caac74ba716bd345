//! `POST /fhir/ServiceRequest` (alias `/service-request`) and `POST /fhir/Task`: an LTFU
//! follow-up request → ServiceRequest + Task in FHIR → one CHT follow-up record → Task `received`
//! with the record id as an identifier.
//!
//! Idempotent at every step, because OpenHIM retries and requesters resend:
//! - the Task id is derived from the request, and copies are handled one at a time per Task id;
//! - a Task already `received` (or further) is answered as it is;
//! - before creating the CHT record, CHT is searched (`_find` on `fields.task_id`): a crash after
//!   creating it and before updating the Task finds the record instead of making another;
//! - after creating, CHT is searched again: should another replica have created one at the same
//!   moment, every replica keeps the record with the smallest id and deletes the others.
//!
//! CHT down → 502/503 and the Task stays `requested`, so the retry completes it.

use serde_json::{Value, json};

use crate::conversions::follow_up::{FollowUpRequest, SubjectRef, new_task, parse_request, received, record_fields};
use crate::error::ApiError;
use crate::fhir::client::{FhirError, put_entry};
use crate::outbound::records::{cht_uuid, ensure_record, fhir_error};
use crate::settings::LiveConfig;
use crate::state::AppState;
use crate::upstream::CallContext;

/// The Task and whether this call created the CHT record (201) or found it done (200).
pub struct Accepted {
    pub task: Value,
    pub created: bool,
}

pub async fn accept(state: &AppState, ctx: &CallContext, body: &Value) -> Result<Accepted, ApiError> {
    let request = parse_request(body).map_err(|e| ApiError::bad_request(e.message, e.element.as_deref()))?;
    crate::fhir::model::check_structure(body)
        .map_err(|e| ApiError::bad_request(format!("not a valid FHIR R4 resource: {e}"), Some("resourceType")))?;
    let live = state.live.current();
    let _one_at_a_time = state.locks.lock(&request.task_id).await;

    let existing = state.fhir.read(ctx, &live.fhir, "Task", &request.task_id).await.map_err(fhir_error)?;
    if let Some(task) = &existing
        && task["status"] != "requested"
        && task["status"] != "draft"
    {
        tracing::info!(task = %request.task_id, status = task["status"].as_str().unwrap_or_default(), "follow-up already handed to CHT");
        return Ok(Accepted { task: task.clone(), created: false });
    }
    let patient = find_patient(state, ctx, &live, &request).await?;
    let patient_id = patient["id"].as_str().unwrap_or_default().to_owned();
    let now = crate::openhim::envelope::timestamp(chrono::Utc::now());
    let task = match existing {
        Some(task) => task,
        None => {
            let task = new_task(&request, &patient_id, &now);
            let mut entries: Vec<Value> =
                request.service_request.iter().map(|sr| put_entry(&live.fhir.url, sr)).collect();
            entries.push(put_entry(&live.fhir.url, &task));
            let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
            state.fhir.transaction(ctx, &live.fhir, &bundle).await.map_err(fhir_error)?;
            task
        }
    };

    let form = &state.settings.cht_follow_up_form;
    let (uuid, short_code) = cht_ids(&patient, &live.identifiers.document_id, &live.identifiers.patient_id);
    let fields = record_fields(&task, &uuid, short_code.as_deref());
    let record = ensure_record(state, ctx, &live, form, "task_id", &fields).await?.id;
    let done = received(&task, &record, &live.identifiers.document_id, &now);
    let response = state.fhir.upsert(ctx, &live.fhir, &done).await?;
    if !response.status.is_success() {
        return Err(fhir_error(FhirError::Rejected {
            status: response.status.as_u16(),
            outcome: response.json().unwrap_or_default(),
        }));
    }
    tracing::info!(task = %request.task_id, cht_record = %record, "follow-up handed to CHT");
    Ok(Accepted { task: done, created: true })
}

/// The Patient the request is about; 422 naming the element when FHIR has no such Patient.
async fn find_patient(
    state: &AppState,
    ctx: &CallContext,
    live: &LiveConfig,
    request: &FollowUpRequest,
) -> Result<Value, ApiError> {
    let found = match &request.subject {
        SubjectRef::Id(id) => state.fhir.read(ctx, &live.fhir, "Patient", id).await.map_err(fhir_error)?,
        SubjectRef::Identifier { system, value } => {
            let token = match system {
                Some(system) => format!("{system}|{value}"),
                None => value.clone(),
            };
            let mut found =
                state.fhir.search(ctx, &live.fhir, "Patient", &[("identifier", &token)]).await.map_err(fhir_error)?;
            if found.len() > 1 {
                return Err(ApiError::Unprocessable {
                    message: format!("{} matches {} Patients; use a reference", request.subject_element, found.len()),
                    expression: Some(request.subject_element.into()),
                });
            }
            found.pop()
        }
    };
    found.ok_or_else(|| ApiError::Unprocessable {
        message: format!("{} does not name a Patient the FHIR server has", request.subject_element),
        expression: Some(request.subject_element.into()),
    })
}

/// The patient's CHT `_id` (its CHT document identifier, else its FHIR id) and short code.
fn cht_ids(patient: &Value, document_system: &str, patient_system: &str) -> (String, Option<String>) {
    let identifiers = patient["identifier"].as_array().cloned().unwrap_or_default();
    let by = |system: &str, text: &str| {
        identifiers
            .iter()
            .find(|i| i["system"] == system || i["type"]["text"] == text)
            .and_then(|i| i["value"].as_str())
            .map(str::to_owned)
    };
    (cht_uuid(patient, document_system), by(patient_system, "CHT Patient ID"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cht_ids_prefer_the_cht_identifiers() {
        let patient = json!({"id": "fhir-1", "identifier": [
            {"system": "https://d", "value": "cht-uuid"}, {"type": {"text": "CHT Patient ID"}, "value": "45821"}]});
        assert_eq!(cht_ids(&patient, "https://d", "https://p"), ("cht-uuid".into(), Some("45821".into())));
        assert_eq!(cht_ids(&json!({"id": "fhir-2"}), "https://d", "https://p"), ("fhir-2".into(), None));
    }
}
