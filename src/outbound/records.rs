//! Exactly one CHT record per key. The records API has no idempotency key, so:
//! one at a time per key in this process; look first (`_find` on the key fields); create;
//! look again, and should another replica have created one at the same moment, every replica
//! keeps the record with the smallest id and deletes the others.
//! Also `POST /fhir/Encounter` and `/fhir` (Bundle) → CHT records.

use serde_json::{Map, Value, json};

use crate::conversions::to_cht::encounter_record;
use crate::error::ApiError;
use crate::json::JsonExt;
use crate::settings::LiveConfig;
use crate::state::AppState;
use crate::upstream::CallContext;

/// A record CHT has for a request; `created` when this call made it.
pub struct Record {
    pub id: String,
    pub form: String,
    pub created: bool,
}

/// The record of `form` keyed by the values of `fields` named in `key_fields` (those it has),
/// created once. One key field is not enough: a follow-up's `task_id` is unique only within
/// one FHIR server (a server with sequential ids, reset or replaced, gives the same ids again),
/// so the patient and the ServiceRequest are part of its key.
pub async fn ensure_record(
    state: &AppState,
    ctx: &CallContext,
    live: &LiveConfig,
    form: &str,
    key_fields: &[&str],
    fields: &Map<String, Value>,
) -> Result<Record, ApiError> {
    let key: Vec<(String, String)> = key_fields
        .iter()
        .filter_map(|k| fields.get(*k).and_then(Value::as_str).map(|v| ((*k).to_owned(), v.to_owned())))
        .collect();
    let lock_key = key.iter().fold(form.to_owned(), |acc, (k, v)| format!("{acc}\u{1f}{k}={v}"));
    let _one_at_a_time = state.locks.lock(&lock_key).await;
    if let Some(doc) = known_record(state, ctx, live, form, &key).await? {
        return accepted(state, ctx, live, form, doc, false).await;
    }
    let created = state.cht.create_record(ctx, &live.cht, form, fields).await?;
    let doc = match known_record(state, ctx, live, form, &key).await? {
        Some(doc) => doc,
        None => state.cht.doc(ctx, &live.cht, &created).await?.unwrap_or_else(|| json!({"_id": created})),
    };
    accepted(state, ctx, live, form, doc, true).await
}

/// `doc` as the record of this request, unless CHT stored it with field errors: the records API
/// answers `success: true` and keeps the problems in `errors` (`sys.missing_fields`,
/// `sys.incorrect_type`, …: the deployment's form does not match what the mediator writes). Such
/// a record reaches no CHW as intended; it is removed and the request fails naming the field, so
/// it is not counted as delivered, and a redelivery after the form is fixed creates it anew.
async fn accepted(
    state: &AppState,
    ctx: &CallContext,
    live: &LiveConfig,
    form: &str,
    doc: Value,
    created: bool,
) -> Result<Record, ApiError> {
    let id = doc.at("_id").as_str().unwrap_or_default().to_owned();
    let Some(problem) = field_errors(&doc) else { return Ok(Record { id, form: form.to_owned(), created }) };
    tracing::warn!(%form, record = %id, "CHT stored the record with field errors; removing it");
    if let Some(rev) = doc.at("_rev").as_str() {
        state.cht.delete_doc(ctx, &live.cht, &id, rev).await?;
    }
    Err(ApiError::Refused { target: "CHT", detail: format!("form {form}: {problem}") })
}

/// The `sys.*` problems CHT recorded on a record, as one line, or `None`.
pub fn field_errors(doc: &Value) -> Option<String> {
    let problems: Vec<String> = doc
        .at("errors")
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e.at("code").as_str().is_some_and(|c| c.starts_with("sys.")))
        .map(|e| {
            let code = e.at("code").as_str().unwrap_or_default();
            match e.at("message").as_str() {
                Some(message) => format!("{message} ({code})"),
                None => code.to_owned(),
            }
        })
        .collect();
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// The oldest record of `form` whose fields have the values of `key`, deleting any duplicates.
async fn known_record(
    state: &AppState,
    ctx: &CallContext,
    live: &LiveConfig,
    form: &str,
    key: &[(String, String)],
) -> Result<Option<Value>, ApiError> {
    let records = state.cht.find_records(ctx, &live.cht, form, key).await?;
    let Some((keep, duplicates)) = records.split_first() else { return Ok(None) };
    for dup in duplicates {
        let (id, rev) = (dup["_id"].as_str().unwrap_or_default(), dup["_rev"].as_str().unwrap_or_default());
        tracing::warn!(%form, duplicate = %id, "removing a duplicate CHT record");
        state.cht.delete_doc(ctx, &live.cht, id, rev).await?;
    }
    Ok(keep["_id"].is_string().then(|| keep.clone()))
}

fn invalid(e: crate::conversions::ConversionError) -> ApiError {
    ApiError::Unprocessable { message: e.message, expression: e.element }
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
    crate::fhir::base::validate(body).map_err(|violations| ApiError::Invalid { violations })?;
    let live = state.live.current();
    let reference = encounter.at("subject").at("reference").as_str().unwrap_or_default();
    let patient_id = reference.strip_prefix("Patient/").filter(|id| crate::fhir::client::is_valid_id(id));
    let patient = match patient_id {
        Some(id) => patient_named(state, ctx, &live, id).await?,
        None => None,
    };
    let patient = patient.ok_or_else(|| ApiError::Unprocessable {
        message: "Encounter.subject must reference a Patient the FHIR server has (Patient/{id})".into(),
        expression: Some("Encounter.subject".into()),
    })?;
    let uuid = crate::outbound::contact::ensure_contact(state, ctx, &live, &patient).await?.id;
    let (form, fields) =
        encounter_record(&encounter, &observations, &uuid, &state.settings.outbound).map_err(invalid)?;
    ensure_record(state, ctx, &live, &form, &["external_id", "patient_uuid"], &fields).await
}

/// The Patient a requester names as `Patient/{id}`: the FHIR Patient with that id, else the one
/// whose CHT document id it is (the reference mediator's requesters name patients so, and with
/// server-assigned ids the CHT id is not the FHIR id).
pub(crate) async fn patient_named(
    state: &AppState,
    ctx: &CallContext,
    live: &LiveConfig,
    id: &str,
) -> Result<Option<Value>, ApiError> {
    if let Some(patient) = state.fhir.client().read(ctx, &live.fhir, "Patient", id).await.map_err(fhir_error)? {
        return Ok(Some(patient));
    }
    let token = format!("{}|{id}", live.identifiers.document_id);
    let found =
        state.fhir.client().search(ctx, &live.fhir, "Patient", &[("identifier", &token)]).await.map_err(fhir_error)?;
    Ok(if found.len() == 1 { found.into_iter().next() } else { None })
}

pub(crate) fn expect_type(body: &Value, kind: &str) -> Result<(), ApiError> {
    if body["resourceType"] != kind {
        return Err(ApiError::bad_request(format!("expected a {kind}"), Some("resourceType")));
    }
    crate::fhir::base::validate(body).map_err(|violations| ApiError::Invalid { violations })
}

/// The Bundle's one Encounter and the Observations about it.
pub fn split_bundle(bundle: &Value) -> Result<(Value, Vec<Value>), ApiError> {
    if !matches!(bundle["type"].as_str(), Some("transaction" | "collection")) {
        return Err(ApiError::bad_request("the Bundle must be of type transaction or collection", Some("Bundle.type")));
    }
    let entries: Vec<&Value> = bundle["entry"].as_array().into_iter().flatten().collect();
    let mut encounters = entries.iter().filter(|e| e.at("resource").at("resourceType") == "Encounter");
    let (Some(encounter), None) = (encounters.next(), encounters.next()) else {
        return Err(ApiError::bad_request("the Bundle must hold exactly one Encounter", Some("Bundle.entry")));
    };
    let names: Vec<String> = [
        encounter["fullUrl"].as_str().map(str::to_owned),
        encounter.at("resource").at("id").as_str().map(|id| format!("Encounter/{id}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    let observations = entries
        .iter()
        .filter(|e| e.at("resource").at("resourceType") == "Observation")
        .filter(|e| {
            e.at("resource")
                .at("encounter")
                .at("reference")
                .as_str()
                .is_some_and(|r| names.iter().any(|n| n == r || n.ends_with(&format!("/{r}"))))
        })
        .map(|e| e.at("resource").clone())
        .collect();
    Ok((encounter["resource"].clone(), observations))
}

pub(crate) fn fhir_error(e: crate::fhir::client::FhirError) -> ApiError {
    e.into_api()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_cht_field_errors_make_a_record_unusable() {
        let doc = json!({"_id": "r1", "errors": [
            {"code": "sys.incorrect_type", "message": "Incorrect type of field task_id, expected string."},
            {"code": "sys.missing_fields", "message": "Missing fields: patient_uuid."}]});
        assert_eq!(
            field_errors(&doc).unwrap(),
            "Incorrect type of field task_id, expected string. (sys.incorrect_type); \
             Missing fields: patient_uuid. (sys.missing_fields)"
        );
        assert_eq!(field_errors(&json!({"_id": "r1", "errors": []})), None);
        assert_eq!(field_errors(&json!({"_id": "r1"})), None);
        // Not a field problem: e.g. an app's own validation messages stay the app's business.
        assert_eq!(field_errors(&json!({"errors": [{"code": "invalid_report"}]})), None);
    }

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
