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
use crate::fhir::store::{Answer, KEY_SYSTEM, Read, WriteMode};
use crate::fhir::transaction::{Key, Write};
use crate::json::JsonExt;
use crate::settings::LiveConfig;
use crate::state::AppState;
use crate::upstream::CallContext;

/// Tries of a report whose follow-up Task changed between its read and the write (another copy,
/// the requester): each re-reads the Task and applies the outcome to what it now is.
const TASK_ATTEMPTS: u32 = 3;

pub async fn write(state: &AppState, ctx: &CallContext, payload: &Value) -> Result<Outcome, Failure> {
    let live = state.live.current();
    let forms = &state.settings.forms;
    let input = parse_report(payload, forms)?;
    let encounter_key = Key::new(&live.identifiers.document_id, &input.id);
    let encounter_id = resource_id(&input.id);
    let found = lookups(state, ctx, &live, &input.subject, &encounter_key, &encounter_id).await?;
    let (patient_id, new_patient) = match found.patient {
        Some(id) => (id, None),
        None => resolve_patient(state, ctx, &live, &input.subject, input.subject_doc.as_ref()).await?,
    };
    let resources = build(&input, &patient_id, &live.identifiers, forms);
    debug_assert_eq!(resources.encounter.at("id").as_str(), Some(encounter_id.as_str()));

    let mut writes: Vec<Write> = Vec::new();
    if let Some(patient) = &new_patient {
        writes.push(Write::Upsert { resource: patient.clone(), key: patient_key(patient, &live) });
    }
    writes.push(Write::Upsert { resource: resources.encounter.clone(), key: encounter_key.clone() });
    for observation in &resources.observations {
        let id = observation.at("id").as_str().unwrap_or_default();
        writes.push(Write::Upsert { resource: observation.clone(), key: Key::new(KEY_SYSTEM, id) });
    }
    for write in &writes {
        if let Write::Upsert { resource, .. } = write {
            conforms(resource)?;
        }
    }
    let existing = match found.observations {
        Some(existing) => existing,
        None => existing_observations(state, ctx, &live, &encounter_key, &encounter_id).await?,
    };
    writes.extend(stale_observations(&existing, &resources.observations));

    let mut attempt = 1;
    loop {
        let task = task_change(state, ctx, &live, &input, resources.referral.clone()).await?;
        let mut all = writes.clone();
        if let Some(change) = &task {
            conforms(change.resource())?;
            all.push(change.write.clone());
        }
        match state.fhir.write_atomically(ctx, &live, &all).await {
            Ok(response) => {
                if let Some(TaskChange { write: Write::Update { resource, .. }, closes: true, .. }) = task {
                    // Once per Task in this process, whichever delivery of the report is answered.
                    crate::outbound::notify::spawn(state.clone(), resource);
                }
                tracing::info!(
                    encounter = %encounter_id,
                    observations = resources.observations.len(),
                    stale_observations_removed = all.iter().filter(|w| matches!(w, Write::Delete { .. })).count(),
                    patient_fetched_from_cht = new_patient.is_some(),
                    "report written"
                );
                return Ok(Outcome::Written { status: 200, body: response });
            }
            // The Task moved on since it was read (another copy, the requester): read it again
            // and apply the outcome to what it now is.
            Err(e) if attempt < TASK_ATTEMPTS && task.as_ref().is_some_and(|t| t.version.is_some()) => {
                let moved = match &task {
                    Some(TaskChange { write: Write::Update { resource, .. }, version, .. }) => {
                        let id = resource.at("id").as_str().unwrap_or_default();
                        let now = state.fhir.client().read(ctx, &live.fhir, "Task", id).await?;
                        now.as_ref().and_then(version_of) != *version
                    }
                    _ => false,
                };
                if !moved {
                    return Err(e.into());
                }
                tracing::info!(attempt, "the follow-up Task changed while the report was written; applying it again");
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The key of a Patient the mediator built: its CHT document identifier.
pub(crate) fn patient_key(patient: &Value, live: &LiveConfig) -> Key {
    let system = &live.identifiers.document_id;
    let value = patient
        .at("identifier")
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i.at("system") == system.as_str())
        .and_then(|i| i.at("value").as_str())
        .unwrap_or_default();
    Key::new(system, value)
}

/// What is read before a report is written, when one round trip can read it all.
struct Lookups {
    /// The patient's FHIR id, when read by its client id and found.
    patient: Option<String>,
    /// The Observations the server has for the report's Encounter.
    observations: Option<Vec<Value>>,
}

/// With client ids for Patient and Encounter, the patient and the Encounter's Observations are
/// known by ids the mediator derives: both are read in ONE batch where the server runs batches.
/// Otherwise — server-assigned ids, whose look-ups depend on each other, or no batches — nothing
/// here: the patient is looked up first (a report whose patient neither side knows fails before
/// anything else is read), then the Observations.
async fn lookups(
    state: &AppState,
    ctx: &CallContext,
    live: &LiveConfig,
    subject: &str,
    encounter_key: &Key,
    encounter_id: &str,
) -> Result<Lookups, Failure> {
    let none = Lookups { patient: None, observations: None };
    let patient_id = resource_id(subject);
    let client_ids = state.fhir.mode(ctx, live, "Patient").await? == WriteMode::ClientIds
        && state.fhir.mode(ctx, live, "Encounter").await? == WriteMode::ClientIds;
    if !client_ids || !crate::fhir::client::is_valid_id(&patient_id) || !state.fhir.runs_batches(ctx, live).await? {
        return Ok(none);
    }
    let Some(server_id) = state.fhir.server_id(ctx, live, "Encounter", encounter_key, encounter_id).await? else {
        return Ok(none);
    };
    let reads = [
        Read::ById { kind: "Patient", id: &patient_id },
        Read::Search { kind: "Observation", params: vec![("encounter", format!("Encounter/{server_id}"))] },
    ];
    let mut answers = state.fhir.read_batch(ctx, live, &reads).await?.into_iter();
    let (Some(Answer::Found(patient)), Some(Answer::Matches(observations))) = (answers.next(), answers.next()) else {
        return Ok(none);
    };
    let patient = patient.and_then(|p| p.at("id").as_str().map(str::to_owned));
    Ok(Lookups { patient, observations: Some(observations) })
}

/// The Observations the server has for this report's Encounter (none when it has no Encounter).
async fn existing_observations(
    state: &AppState,
    ctx: &CallContext,
    live: &LiveConfig,
    encounter_key: &Key,
    encounter_id: &str,
) -> Result<Vec<Value>, Failure> {
    let Some(server_id) = state.fhir.server_id(ctx, live, "Encounter", encounter_key, encounter_id).await? else {
        return Ok(Vec::new());
    };
    Ok(state
        .fhir
        .client()
        .search(ctx, &live.fhir, "Observation", &[("encounter", &format!("Encounter/{server_id}"))])
        .await?)
}

/// Deletes of the `existing` Observations this report no longer holds (a shrunk report leaves no
/// stale answers behind). Current ones are known by id (client ids) or key.
fn stale_observations(existing: &[Value], current: &[Value]) -> Vec<Write> {
    let current: std::collections::BTreeSet<&str> = current.iter().filter_map(|o| o.at("id").as_str()).collect();
    let key_of = |o: &Value| -> Option<String> {
        o.at("identifier")
            .as_array()?
            .iter()
            .find(|i| i.at("system") == KEY_SYSTEM)?
            .at("value")
            .as_str()
            .map(str::to_owned)
    };
    existing
        .iter()
        .filter(|o| {
            let by_id = o.at("id").as_str().is_some_and(|id| current.contains(id));
            let by_key = key_of(o).is_some_and(|k| current.contains(k.as_str()));
            !by_id && !by_key
        })
        .filter_map(|o| o.at("id").as_str())
        .map(|id| Write::Delete { kind: "Observation".into(), id: id.to_owned() })
        .collect()
}

/// The FHIR id of the report's patient, and the Patient to write first when FHIR lacks it.
pub(crate) async fn resolve_patient(
    state: &AppState,
    ctx: &CallContext,
    live: &LiveConfig,
    subject: &str,
    pushed: Option<&Value>,
) -> Result<(String, Option<Value>), Failure> {
    let by_cht_id = Key::new(&live.identifiers.document_id, subject);
    if let Some(found) = state.fhir.find(ctx, live, "Patient", &by_cht_id, Some(&resource_id(subject))).await? {
        return Ok((found.at("id").as_str().unwrap_or_default().to_owned(), None));
    }
    let by_short_code = Key::new(&live.identifiers.patient_id, subject);
    if let Some(found) = state.fhir.find(ctx, live, "Patient", &by_short_code, None).await? {
        return Ok((found.at("id").as_str().unwrap_or_default().to_owned(), None));
    }
    // Not in FHIR yet: CHT pushes have no order, the person's own push may still be coming.
    // The push may carry it hydrated (`doc.patient`): no need to ask CHT.
    let person = match pushed {
        Some(doc) => Some(doc.clone()),
        None => match state.cht.person(ctx, &live.cht, subject).await? {
            Some(doc) => Some(doc),
            None => state.cht.person_by_patient_id(ctx, &live.cht, subject).await?,
        },
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
        patient = patient.at("id").as_str().unwrap_or_default(),
        "patient fetched from CHT ahead of its own push"
    );
    Ok((patient.at("id").as_str().unwrap_or_default().to_owned(), Some(patient)))
}

/// The Task write this report makes; `closes` when it is a follow-up outcome that leaves the Task closed.
struct TaskChange {
    write: Write,
    /// The version of the Task read, when the write updates one the server has.
    version: Option<String>,
    /// A follow-up outcome: the Task is closed once written (whether or not it was before).
    closes: bool,
}

impl TaskChange {
    fn resource(&self) -> &Value {
        match &self.write {
            Write::Upsert { resource, .. } | Write::Update { resource, .. } => resource,
            Write::Delete { .. } => &Value::Null,
        }
    }
}

fn version_of(resource: &Value) -> Option<String> {
    resource.at("meta").at("versionId").as_str().map(str::to_owned)
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
            let id = task.at("id").as_str().unwrap_or_default().to_owned();
            let key = Key::new(&live.identifiers.document_id, &input.id);
            // A redelivered referral must not pull a Task someone has moved along back to `requested`.
            let Some(existing) = state.fhir.find(ctx, live, "Task", &key, Some(&id)).await? else {
                let write = Write::Upsert { resource: task, key };
                return Ok(Some(TaskChange { write, version: None, closes: false }));
            };
            for key in ["status", "businessStatus", "output", "owner", "lastModified"] {
                if let Some(v) = existing.get(key) {
                    task.set(key, v.clone());
                }
            }
            task.set("id", existing.at("id").clone());
            let version = version_of(&existing);
            let write = Write::Update { resource: task, version: version.clone() };
            Ok(Some(TaskChange { write, version, closes: false }))
        }
        Some(TaskSpec::FollowUpOutcome { task_id, source_id, status, outcome }) => {
            let mut task = None;
            if let Some(id) = task_id {
                task = state.fhir.client().read(ctx, &live.fhir, "Task", id).await?;
            }
            if task.is_none()
                && let Some(source) = source_id
            {
                let key = Key::new(&live.identifiers.document_id, source);
                task = state.fhir.find(ctx, live, "Task", &key, None).await?;
            }
            let Some(task) = task else {
                let named = task_id.as_deref().or(source_id.as_deref()).unwrap_or_default();
                return Err(Failure::Permanent(Permanent::one(
                    format!("the follow-up answers Task/record {named:?}, which the FHIR server does not have"),
                    Some("doc.fields.inputs.source_id".into()),
                )));
            };
            let encounter_id = resource_id(&input.id);
            let version = version_of(&task);
            let closed = close_task(&task, status, outcome, &encounter_id, &input.reported);
            let closes = matches!(closed.at("status").as_str(), Some("completed" | "failed"));
            let write = Write::Update { resource: closed, version: version.clone() };
            Ok(Some(TaskChange { write, version, closes }))
        }
    }
}
