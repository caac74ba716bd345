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
use crate::fhir::client::FhirError;
use crate::fhir::store::KEY_SYSTEM;
use crate::fhir::transaction::{Key, Write};
use crate::json::JsonExt;
use crate::outbound::records::{ensure_record, fhir_error};
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
    crate::fhir::base::validate(body).map_err(|violations| ApiError::Invalid { violations })?;
    let live = state.live.current();
    let _one_at_a_time = state.locks.lock(&request.task_id).await;

    let task_key = Key::new(KEY_SYSTEM, &request.task_id);
    let existing = state.fhir.find(ctx, &live, "Task", &task_key, Some(&request.task_id)).await.map_err(fhir_error)?;
    if let Some(task) = &existing
        && task.at("status") != "requested"
        && task.at("status") != "draft"
    {
        tracing::info!(task = %request.task_id, status = task.at("status").as_str().unwrap_or_default(), "follow-up already handed to CHT");
        return Ok(Accepted { task: task.clone(), created: false });
    }
    let patient = find_patient(state, ctx, &live, &request).await?;
    let patient_id = patient.at("id").as_str().unwrap_or_default().to_owned();
    let now = crate::openhim::envelope::timestamp(chrono::Utc::now());
    let mut task = match existing {
        Some(task) => task,
        None => {
            let task = new_task(&request, &patient_id, &now);
            let mut writes: Vec<Write> = Vec::new();
            if let Some(sr) = &request.service_request {
                let id = sr.at("id").as_str().unwrap_or_default();
                // As the Patient is known on this server: a requester may name it by its CHT id,
                // which is not its FHIR id with server-assigned ids, and a server that checks
                // references (HAPI) refuses a subject it does not have.
                let mut sr = sr.clone();
                if let Some(subject) = sr.get_mut("subject").and_then(Value::as_object_mut) {
                    subject.insert("reference".into(), json!(format!("Patient/{patient_id}")));
                }
                writes.push(Write::Upsert { resource: sr, key: Key::new(KEY_SYSTEM, id) });
            }
            writes.push(Write::Upsert { resource: task, key: task_key.clone() });
            state.fhir.write_atomically(ctx, &live, &writes).await.map_err(fhir_error)?;
            // As stored: its server id (conditional writes) and version.
            state
                .fhir
                .find(ctx, &live, "Task", &task_key, Some(&request.task_id))
                .await
                .map_err(fhir_error)?
                .ok_or_else(|| ApiError::Refused {
                    target: "FHIR server",
                    detail: "the Task it just wrote cannot be found".into(),
                })?
        }
    };

    let form = &state.settings.cht_follow_up_form;
    let short_code = crate::outbound::contact::identifier(&patient, &live.identifiers.patient_id, "CHT Patient ID");
    // A patient the EMR registered is made a CHT contact first: a record about a patient_uuid no
    // contact has reaches no CHW.
    let uuid = crate::outbound::contact::ensure_contact(state, ctx, &live, &patient).await?.id;
    let fields = record_fields(&task, &uuid, short_code.as_deref());
    let record =
        ensure_record(state, ctx, &live, form, &["task_id", "patient_uuid", "service_request_id"], &fields).await?.id;
    // Read-modify-write: the Task becomes `received` at the version read; if it moved on (the
    // requester changed it), read it again and apply the change to what it now is.
    let mut attempt = 1;
    let done = loop {
        let done = received(&task, &record, &live.identifiers.document_id, &now);
        let version = task.at("meta").at("versionId").as_str().map(str::to_owned);
        match state.fhir.update(ctx, &live, &done, version.as_deref()).await {
            Ok((_, stored)) => break if stored.is_object() { stored } else { done },
            Err(FhirError::VersionConflict) if attempt < TASK_ATTEMPTS => {
                let id = task.at("id").as_str().unwrap_or_default().to_owned();
                task = state.fhir.client().read(ctx, &live.fhir, "Task", &id).await.map_err(fhir_error)?.ok_or_else(
                    || ApiError::Refused {
                        target: "FHIR server",
                        detail: "the Task was deleted while it was updated".into(),
                    },
                )?;
                attempt += 1;
            }
            Err(e) => return Err(fhir_error(e)),
        }
    };
    tracing::info!(task = %request.task_id, cht_record = %record, "follow-up handed to CHT");
    Ok(Accepted { task: done, created: true })
}

/// Tries of a Task update that finds the Task changed since it was read.
const TASK_ATTEMPTS: u32 = 3;

/// The Patient the request is about; 422 naming the element when FHIR has no such Patient.
async fn find_patient(
    state: &AppState,
    ctx: &CallContext,
    live: &LiveConfig,
    request: &FollowUpRequest,
) -> Result<Value, ApiError> {
    let found = match &request.subject {
        SubjectRef::Id(id) => crate::outbound::records::patient_named(state, ctx, live, id).await?,
        SubjectRef::Identifier { system, value } => {
            let token = match system {
                Some(system) => format!("{system}|{value}"),
                None => value.clone(),
            };
            let mut found = state
                .fhir
                .client()
                .search(ctx, &live.fhir, "Patient", &[("identifier", &token)])
                .await
                .map_err(fhir_error)?;
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
