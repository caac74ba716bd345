//! `/cht/patient`: CHT person → Patient, checked, then `PUT Patient/{id}` (idempotent).

use serde_json::Value;

use super::{Failure, Outcome, conforms};
use crate::conversions::patient::person_to_patient;
use crate::json::JsonExt;
use crate::state::AppState;
use crate::upstream::CallContext;

pub async fn write(state: &AppState, ctx: &CallContext, payload: &Value) -> Result<Outcome, Failure> {
    let live = state.live.current();
    let mut patient = person_to_patient(payload, &live.identifiers)?;
    // A contact the mediator made for a Patient the EMR registered (`fhir_identifiers`) is that
    // Patient, linked by its CHT identifier — whose id, server-assigned (`1216`), need not be the
    // one this contact's id maps to. Only these contacts cost the look-up.
    let made_for_emr = payload.at("doc").get("fhir_identifiers").is_some_and(|v| !v.is_null());
    if made_for_emr {
        let key = super::encounter::patient_key(&patient, &live);
        if let Some(found) = state.fhir.find(ctx, &live, "Patient", &key, None).await?
            && let Some(id) = found.at("id").as_str()
        {
            patient.set("id", serde_json::json!(id));
        }
    }
    upsert(state, ctx, &patient).await
}

/// Checks `patient` and upserts it by its CHT identity; a refusal is permanent.
pub(crate) async fn upsert(state: &AppState, ctx: &CallContext, patient: &Value) -> Result<Outcome, Failure> {
    let live = state.live.current();
    conforms(patient)?;
    let key = super::encounter::patient_key(patient, &live);
    let (status, body) = state.fhir.upsert(ctx, &live, patient, &key).await?;
    tracing::info!(patient = patient.at("id").as_str().unwrap_or_default(), status, "patient written");
    Ok(Outcome::Written { status, body })
}
