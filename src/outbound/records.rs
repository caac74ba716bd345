//! Exactly one CHT record per key. The records API has no idempotency key, so:
//! one at a time per key in this process; look first (`_find` on `fields.<key_field>`); create;
//! look again, and should another replica have created one at the same moment, every replica
//! keeps the record with the smallest id and deletes the others.
//! Also `POST /fhir/Patient`, `/fhir/Encounter` and `/fhir` (Bundle) → CHT records.

use serde_json::{Map, Value};

use crate::conversions::to_cht::{encounter_record, patient_record};
use crate::error::ApiError;
use crate::settings::LiveConfig;
use crate::state::AppState;
use crate::upstream::CallContext;

/// A record CHT has for a request; `created` when this call made it.
pub struct Record {
    pub id: String,
    pub form: String,
    pub created: bool,
}

/// The record of `form` keyed by `fields[key_field]`, created once.
pub async fn ensure_record(
    state: &AppState,
    ctx: &CallContext,
    live: &LiveConfig,
    form: &str,
    key_field: &str,
    fields: &Map<String, Value>,
) -> Result<Record, ApiError> {
    let key = fields.get(key_field).and_then(Value::as_str).unwrap_or_default().to_owned();
    let _one_at_a_time = state.locks.lock(&format!("{form}\u{1f}{key}")).await;
    if let Some(id) = known_record(state, ctx, live, form, key_field, &key).await? {
        return Ok(Record { id, form: form.to_owned(), created: false });
    }
    let created = state.cht.create_record(ctx, &live.cht, form, fields).await?;
    let id = known_record(state, ctx, live, form, key_field, &key).await?.unwrap_or(created);
    Ok(Record { id, form: form.to_owned(), created: true })
}

/// The oldest record of `form` with `fields.<key_field> == key`, deleting any duplicates.
async fn known_record(
    state: &AppState,
    ctx: &CallContext,
    live: &LiveConfig,
    form: &str,
    key_field: &str,
    key: &str,
) -> Result<Option<String>, ApiError> {
    let records = state.cht.find_records(ctx, &live.cht, form, key_field, key).await?;
    let Some((keep, duplicates)) = records.split_first() else { return Ok(None) };
    for dup in duplicates {
        let (id, rev) = (dup["_id"].as_str().unwrap_or_default(), dup["_rev"].as_str().unwrap_or_default());
        tracing::warn!(%form, duplicate = %id, "removing a duplicate CHT record");
        state.cht.delete_doc(ctx, &live.cht, id, rev).await?;
    }
    Ok(keep["_id"].as_str().map(str::to_owned))
}

fn invalid(e: crate::conversions::ConversionError) -> ApiError {
    ApiError::Unprocessable { message: e.message, expression: e.element }
}

/// `POST /fhir/Patient`: a record on the patient-creation form, keyed by `external_id`.
pub async fn patient(state: &AppState, ctx: &CallContext, body: &Value) -> Result<Record, ApiError> {
    expect_type(body, "Patient")?;
    let (form, fields) = patient_record(body, &state.settings.outbound).map_err(invalid)?;
    let live = state.live.current();
    ensure_record(state, ctx, &live, &form, "external_id", &fields).await
}

/// `POST /fhir/Encounter` or `POST /fhir` with a transaction/collection Bundle holding an
/// Encounter and its Observations: one record, keyed by the Encounter id.
pub async fn encounter(state: &AppState, ctx: &CallContext, body: &Value) -> Result<Record, ApiError> {
    let (encounter, observations) = match body["resourceType"].as_str() {
        Some("Encounter") => (body.clone(), Vec::new()),
        Some("Bundle") => split_bundle(body)?,
        _ => {
            return Err(ApiError::bad_request(
                "expected an Encounter, or a transaction or collection Bundle",
                Some("resourceType"),
            ));
        }
    };
    crate::fhir::model::check_structure(&encounter)
        .map_err(|e| ApiError::bad_request(format!("not a valid FHIR R4 Encounter: {e}"), Some("Encounter")))?;
    let live = state.live.current();
    let reference = encounter["subject"]["reference"].as_str().unwrap_or_default();
    let patient_id = reference.strip_prefix("Patient/").filter(|id| crate::fhir::client::is_valid_id(id));
    let patient = match patient_id {
        Some(id) => state.fhir.read(ctx, &live.fhir, "Patient", id).await.map_err(fhir_error)?,
        None => None,
    };
    let patient = patient.ok_or_else(|| ApiError::Unprocessable {
        message: "Encounter.subject must reference a Patient the FHIR server has (Patient/{id})".into(),
        expression: Some("Encounter.subject".into()),
    })?;
    let uuid = cht_uuid(&patient, &live.identifiers.document_id);
    let (form, fields) =
        encounter_record(&encounter, &observations, &uuid, &state.settings.outbound).map_err(invalid)?;
    ensure_record(state, ctx, &live, &form, "external_id", &fields).await
}

fn expect_type(body: &Value, kind: &str) -> Result<(), ApiError> {
    if body["resourceType"] != kind {
        return Err(ApiError::bad_request(format!("expected a {kind}"), Some("resourceType")));
    }
    crate::fhir::model::check_structure(body)
        .map_err(|e| ApiError::bad_request(format!("not a valid FHIR R4 {kind}: {e}"), Some(kind)))
}

/// The Bundle's one Encounter and the Observations about it.
fn split_bundle(bundle: &Value) -> Result<(Value, Vec<Value>), ApiError> {
    if !matches!(bundle["type"].as_str(), Some("transaction" | "collection")) {
        return Err(ApiError::bad_request("the Bundle must be of type transaction or collection", Some("Bundle.type")));
    }
    let entries: Vec<&Value> = bundle["entry"].as_array().into_iter().flatten().collect();
    let mut encounters = entries.iter().filter(|e| e["resource"]["resourceType"] == "Encounter");
    let (Some(encounter), None) = (encounters.next(), encounters.next()) else {
        return Err(ApiError::bad_request("the Bundle must hold exactly one Encounter", Some("Bundle.entry")));
    };
    let names: Vec<String> = [
        encounter["fullUrl"].as_str().map(str::to_owned),
        encounter["resource"]["id"].as_str().map(|id| format!("Encounter/{id}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    let observations = entries
        .iter()
        .filter(|e| e["resource"]["resourceType"] == "Observation")
        .filter(|e| {
            e["resource"]["encounter"]["reference"]
                .as_str()
                .is_some_and(|r| names.iter().any(|n| n == r || n.ends_with(&format!("/{r}"))))
        })
        .map(|e| e["resource"].clone())
        .collect();
    Ok((encounter["resource"].clone(), observations))
}

/// The CHT `_id` of a Patient: its CHT document identifier, else its FHIR id.
pub fn cht_uuid(patient: &Value, document_system: &str) -> String {
    patient["identifier"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["system"] == document_system || i["type"]["text"] == "CHT Document ID")
        .and_then(|i| i["value"].as_str())
        .unwrap_or_else(|| patient["id"].as_str().unwrap_or_default())
        .to_owned()
}

pub(crate) fn fhir_error(e: crate::fhir::client::FhirError) -> ApiError {
    match e {
        crate::fhir::client::FhirError::Transient(e) => e,
        crate::fhir::client::FhirError::Rejected { status, outcome } => {
            let said = outcome["issue"][0]["diagnostics"].as_str().unwrap_or("no OperationOutcome").to_owned();
            ApiError::Refused { target: "FHIR server", detail: format!("{status}: {said}") }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bundles_give_their_encounter_and_its_observations() {
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:e1", "resource": {"resourceType": "Encounter", "id": "enc-9"}},
            {"resource": {"resourceType": "Observation", "encounter": {"reference": "urn:uuid:e1"}, "valueString": "a"}},
            {"resource": {"resourceType": "Observation", "encounter": {"reference": "Encounter/enc-9"}, "valueString": "b"}},
            {"resource": {"resourceType": "Observation", "encounter": {"reference": "Encounter/other"}, "valueString": "c"}}]});
        let (encounter, observations) = split_bundle(&bundle).unwrap();
        assert_eq!(encounter["id"], "enc-9");
        assert_eq!(observations.len(), 2);
        let mut searchset = bundle.clone();
        searchset["type"] = json!("searchset");
        assert!(split_bundle(&searchset).is_err());
    }
}
