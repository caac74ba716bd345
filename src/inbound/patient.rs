//! `/cht/patient`: CHT person → Patient, checked, then `PUT Patient/{id}` (idempotent).

use serde_json::Value;

use super::{Failure, Outcome, conforms};
use crate::conversions::patient::person_to_patient;
use crate::state::AppState;
use crate::upstream::CallContext;

pub async fn write(state: &AppState, ctx: &CallContext, payload: &Value) -> Result<Outcome, Failure> {
    let live = state.live.current();
    let patient = person_to_patient(payload, &live.identifiers)?;
    conforms(&patient)?;
    let response = state.fhir.upsert(ctx, &live.fhir, &patient).await?;
    let status = response.status.as_u16();
    if !response.status.is_success() {
        let outcome = response.json().unwrap_or(Value::Null);
        return Err(crate::fhir::client::FhirError::Rejected { status, outcome }.into());
    }
    tracing::info!(patient = patient["id"].as_str().unwrap_or_default(), status, "patient written");
    Ok(Outcome::Written { status, body: response.json().unwrap_or(Value::Null) })
}
