//! `/cht/encounter`: CHT report → Encounter + Observations (+ Task changes), in ONE transaction.
//!
//! 1. Parse and map the report (a mapping problem is permanent).
//! 2. Find the patient in FHIR (by id, then by `patient_id` identifier); when it is not there yet
//!    (no ordering across CHT pushes), fetch the person from CHT and write it in the same
//!    transaction; when CHT cannot say either, fail transiently so CHT delivers again.
//! 3. Build and check the resources; Observations this report no longer has are deleted, so a
//!    shrunk report leaves no stale answers behind.
//! 4. Referral: write its Task, keeping the status of one already moved along. LTFU outcome:
//!    close the Task the follow-up came from (`completed`/`failed`, `output` → the Encounter).

use serde_json::{Value, json};

use super::{Failure, Outcome, Permanent, conforms};
use crate::conversions::ids::resource_id;
use crate::conversions::patient::person_to_patient;
use crate::conversions::report::{ReportInput, TaskSpec, build, close_task, parse_report};
use crate::error::ApiError;
use crate::fhir::client::{delete_entry, put_entry};
use crate::settings::LiveConfig;
use crate::state::AppState;
use crate::upstream::CallContext;

pub async fn write(state: &AppState, ctx: &CallContext, payload: &Value) -> Result<Outcome, Failure> {
    let live = state.live.current();
    let forms = &state.settings.forms;
    let input = parse_report(payload, forms)?;
    let (patient_id, new_patient) = resolve_patient(state, ctx, &live, &input.subject).await?;
    let resources = build(&input, &patient_id, &live.identifiers, forms);

    let mut writes: Vec<Value> = Vec::new();
    writes.extend(new_patient);
    writes.push(resources.encounter.clone());
    writes.extend(resources.observations.iter().cloned());
    let task = task_change(state, ctx, &live, &input, resources.referral).await?;
    if let Some(change) = &task {
        writes.push(change.task.clone());
    }
    for resource in &writes {
        conforms(resource)?;
    }

    let encounter_id = resources.encounter["id"].as_str().unwrap_or_default().to_owned();
    let current: std::collections::BTreeSet<&str> =
        resources.observations.iter().filter_map(|o| o["id"].as_str()).collect();
    let existing = state
        .fhir
        .search(ctx, &live.fhir, "Observation", &[("encounter", &format!("Encounter/{encounter_id}"))])
        .await?;
    let stale: Vec<String> = existing
        .iter()
        .filter_map(|o| o["id"].as_str())
        .filter(|id| !current.contains(id))
        .map(str::to_owned)
        .collect();

    let mut entries: Vec<Value> = writes.iter().map(|r| put_entry(&live.fhir.url, r)).collect();
    entries.extend(stale.iter().map(|id| delete_entry("Observation", id)));
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
    let response = state.fhir.transaction(ctx, &live.fhir, &bundle).await?;
    if let Some(TaskChange { task, newly_closed: true }) = task {
        // Only when this report closed it: a redelivery does not call the requester again.
        crate::outbound::notify::spawn(state.clone(), task);
    }
    tracing::info!(
        encounter = %encounter_id,
        observations = resources.observations.len(),
        stale_observations_removed = stale.len(),
        patient_fetched_from_cht = writes[0]["resourceType"] == "Patient",
        "report written"
    );
    Ok(Outcome::Written { status: 200, body: response })
}

/// The FHIR id of the report's patient, and the Patient to write first when FHIR lacks it.
async fn resolve_patient(
    state: &AppState,
    ctx: &CallContext,
    live: &LiveConfig,
    subject: &str,
) -> Result<(String, Option<Value>), Failure> {
    let by_id = resource_id(subject);
    if state.fhir.read(ctx, &live.fhir, "Patient", &by_id).await?.is_some() {
        return Ok((by_id, None));
    }
    let identifier = format!("{}|{subject}", live.identifiers.patient_id);
    if let Some(found) = state.fhir.search(ctx, &live.fhir, "Patient", &[("identifier", &identifier)]).await?.first() {
        return Ok((found["id"].as_str().unwrap_or_default().to_owned(), None));
    }
    // Not in FHIR yet: CHT pushes have no order, the person's own push may still be coming.
    let person = match state.cht.person(ctx, &live.cht, subject).await? {
        Some(doc) => Some(doc),
        None => state.cht.person_by_patient_id(ctx, &live.cht, subject).await?,
    };
    let Some(person) = person else {
        return Err(Failure::Transient(ApiError::ServiceUnavailable(format!(
            "the report's patient {subject} is neither in the FHIR server nor in CHT yet; deliver again later"
        ))));
    };
    let patient = person_to_patient(&json!({ "doc": person }), &live.identifiers).map_err(|e| {
        Failure::Permanent(Permanent::one(
            format!("the report's patient cannot be converted: {}", e.message),
            e.element,
        ))
    })?;
    tracing::info!(
        patient = patient["id"].as_str().unwrap_or_default(),
        "patient fetched from CHT ahead of its own push"
    );
    Ok((patient["id"].as_str().unwrap_or_default().to_owned(), Some(patient)))
}

/// A Task this report writes; `newly_closed` when it closes a follow-up that was still open.
struct TaskChange {
    task: Value,
    newly_closed: bool,
}

/// The Task to write with this report, if any.
async fn task_change(
    state: &AppState,
    ctx: &CallContext,
    live: &LiveConfig,
    input: &ReportInput,
    referral: Option<Value>,
) -> Result<Option<TaskChange>, Failure> {
    match &input.task {
        None => Ok(None),
        Some(TaskSpec::Referral { .. }) => {
            let Some(mut task) = referral else { return Ok(None) };
            let id = task["id"].as_str().unwrap_or_default().to_owned();
            // A redelivered referral must not pull a Task someone has moved along back to `requested`.
            if let Some(existing) = state.fhir.read(ctx, &live.fhir, "Task", &id).await? {
                for key in ["status", "businessStatus", "output", "owner", "lastModified"] {
                    if let Some(v) = existing.get(key) {
                        task[key] = v.clone();
                    }
                }
            }
            Ok(Some(TaskChange { task, newly_closed: false }))
        }
        Some(TaskSpec::FollowUpOutcome { task_id, source_id, status, outcome }) => {
            let mut task = None;
            if let Some(id) = task_id {
                task = state.fhir.read(ctx, &live.fhir, "Task", id).await?;
            }
            if task.is_none()
                && let Some(source) = source_id
            {
                let identifier = format!("{}|{source}", live.identifiers.document_id);
                task = state
                    .fhir
                    .search(ctx, &live.fhir, "Task", &[("identifier", &identifier)])
                    .await?
                    .into_iter()
                    .next();
            }
            let Some(task) = task else {
                let named = task_id.as_deref().or(source_id.as_deref()).unwrap_or_default();
                return Err(Failure::Permanent(Permanent::one(
                    format!("the follow-up answers Task/record {named:?}, which the FHIR server does not have"),
                    Some("doc.fields.inputs.source_id".into()),
                )));
            };
            let encounter_id = resource_id(&input.id);
            let newly_closed = !matches!(task["status"].as_str(), Some("completed" | "failed" | "cancelled"));
            Ok(Some(TaskChange {
                task: close_task(&task, status, outcome, &encounter_id, &input.reported),
                newly_closed,
            }))
        }
    }
}
