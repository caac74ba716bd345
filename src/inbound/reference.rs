//! `/patient` and `/encounter`: the reference mediator's pushes (see
//! [`crate::conversions::reference`]), CHT outbound pushes like `/cht/*` and under the same
//! failure policy: normalised, checked against base R4, written idempotently; a payload that can
//! never be written is a dead letter (CHT would retry a 4xx for ever).

use serde_json::{Value, json};

use super::{Failure, Outcome, conforms};
use crate::conversions::reference::{self, Subject};
use crate::fhir::store::KEY_SYSTEM;
use crate::fhir::transaction::{Key, Write};
use crate::json::JsonExt;
use crate::state::AppState;
use crate::upstream::CallContext;

pub async fn write_patient(state: &AppState, ctx: &CallContext, payload: &Value) -> Result<Outcome, Failure> {
    let patient = reference::patient(payload, &state.live.current().identifiers)?;
    super::patient::upsert(state, ctx, &patient).await
}

/// The Encounter, about the Patient its subject names: found in FHIR, or fetched from CHT and
/// written first (as `/cht/encounter` does), in one transaction.
pub async fn write_encounter(state: &AppState, ctx: &CallContext, payload: &Value) -> Result<Outcome, Failure> {
    let live = state.live.current();
    let (mut encounter, subject) = reference::encounter(payload, &live.identifiers)?;
    let cht_id = match &subject {
        Subject::Id(id) | Subject::Identifier(id) => id.as_str(),
    };
    let (patient_id, new_patient) = super::encounter::resolve_patient(state, ctx, &live, cht_id, None).await?;
    encounter.set("subject", json!({"reference": format!("Patient/{patient_id}")}));
    // Its own identifier carries the patient's id: known by its derived id instead.
    let id = encounter.at("id").as_str().unwrap_or_default().to_owned();
    let mut identifiers = encounter.at("identifier").as_array().cloned().unwrap_or_default();
    identifiers.push(json!({"system": KEY_SYSTEM, "value": id}));
    encounter.set("identifier", Value::Array(identifiers));
    let mut writes = Vec::new();
    if let Some(patient) = &new_patient {
        conforms(patient)?;
        writes.push(Write::Upsert { resource: patient.clone(), key: super::encounter::patient_key(patient, &live) });
    }
    conforms(&encounter)?;
    writes.push(Write::Upsert { resource: encounter, key: Key::new(KEY_SYSTEM, &id) });
    let response = state.fhir.write_atomically(ctx, &live, &writes).await?;
    tracing::info!(encounter = %id, patient = %patient_id, patient_fetched_from_cht = new_patient.is_some(), "reference encounter written");
    Ok(Outcome::Written { status: 200, body: response })
}
