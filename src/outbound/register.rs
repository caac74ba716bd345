//! `POST /fhir/Patient`: another system (the EMR) registers a patient for community follow-up.
//! The Patient is kept on the FHIR server — stored there when the server has none, since that is
//! where follow-up requests and CHT's pushes find it — and becomes one CHT contact, linked on the
//! Patient ([`super::contact`]). The answer is the Patient as stored, with its CHT identifier.
//!
//! Found on the FHIR server by its key: its CHT document identifier, else its first identifier
//! with a system and a value (the EMR's MRN), else its id (kept as the mediator's key
//! identifier, since with server-assigned ids the id the EMR sent is not the server's). With
//! client ids the Patient is also found by the id it was posted with. A Patient the server has is
//! not changed beyond that link: the EMR's own writes keep it current, and a resend of an older
//! copy must not undo them. A Patient with none of these could not be found again by a resend,
//! so it is refused (422) rather than stored twice.

use serde_json::{Value, json};

use crate::conversions::ids::derived_id;
use crate::conversions::to_cht::full_name;
use crate::error::ApiError;
use crate::fhir::client::is_valid_id;
use crate::fhir::store::{KEY_SYSTEM, WriteMode};
use crate::fhir::transaction::Key;
use crate::json::JsonExt;
use crate::outbound::contact::{ensure_contact, new_person};
use crate::outbound::records::{expect_type, fhir_error};
use crate::settings::LiveConfig;
use crate::state::AppState;
use crate::upstream::CallContext;

/// The Patient as the FHIR server now has it; `created` when this call stored it or made its
/// CHT contact.
pub struct Registered {
    pub patient: Value,
    pub created: bool,
}

pub async fn register(state: &AppState, ctx: &CallContext, body: &Value) -> Result<Registered, ApiError> {
    expect_type(body, "Patient")?;
    let live = state.live.current();
    // What CHT needs (a name, a place) is checked before anything is written.
    new_person(body, "-", state)?;
    let key = key_of(body, &live)?;
    let posted_id = body.at("id").as_str().filter(|id| is_valid_id(id));
    // Copies of one registration one after the other: the second finds what the first stored.
    let _one_at_a_time = state.locks.lock(&format!("register\u{1f}{}", key.token())).await;
    let (stored, stored_now) = match find(state, ctx, &live, body, &key, posted_id).await? {
        Some(patient) => (patient, false),
        None => {
            let mut patient = body.clone();
            let id = posted_id.map_or_else(|| derived_id(&["emr-patient", &key.token()]), str::to_owned);
            patient.set("id", json!(id));
            if key.system == KEY_SYSTEM {
                let own = json!({"system": KEY_SYSTEM, "value": key.value});
                match patient.get_mut("identifier").and_then(Value::as_array_mut) {
                    Some(list) => list.push(own),
                    None => patient.set("identifier", json!([own])),
                }
            }
            state.fhir.upsert(ctx, &live, &patient, &key).await.map_err(fhir_error)?;
            // Another replica's copy may have made its own at the same moment (a conditional
            // update is no lock on servers that do not serialise them): one is kept.
            if state.fhir.mode(ctx, &live, "Patient").await.map_err(fhir_error)? == WriteMode::Conditional {
                state.fhir.repair(ctx, &live, "Patient", &key).await.map_err(fhir_error)?;
            }
            let stored = find(state, ctx, &live, body, &key, Some(&id)).await?.ok_or_else(|| ApiError::Refused {
                target: "FHIR server",
                detail: "the Patient it just wrote cannot be found".into(),
            })?;
            tracing::info!(
                patient = stored.at("id").as_str().unwrap_or_default(),
                "Patient from another system stored"
            );
            (stored, true)
        }
    };
    let contact = ensure_contact(state, ctx, &live, &stored).await?;
    let id = stored.at("id").as_str().unwrap_or_default();
    let patient = state.fhir.client().read(ctx, &live.fhir, "Patient", id).await.map_err(fhir_error)?;
    Ok(Registered { patient: patient.unwrap_or(stored), created: stored_now || contact.created })
}

/// The identifier a resend of `patient` finds it by.
fn key_of(patient: &Value, live: &LiveConfig) -> Result<Key, ApiError> {
    let identifiers: Vec<&Value> = patient.at("identifier").as_array().into_iter().flatten().collect();
    let value = |i: &&Value| i.at("value").as_str().filter(|v| !v.trim().is_empty()).map(str::to_owned);
    let cht = identifiers.iter().find(|i| i.at("system") == live.identifiers.document_id.as_str());
    if let Some(v) = cht.and_then(value) {
        return Ok(Key::new(&live.identifiers.document_id, &v));
    }
    let system = |i: &&&Value| i.at("system").as_str().is_some_and(|s| !s.trim().is_empty());
    if let Some(first) = identifiers.iter().filter(system).find_map(|i| value(i).map(|v| (i, v))) {
        return Ok(Key::new(first.0.at("system").as_str().unwrap_or_default(), &first.1));
    }
    match patient.at("id").as_str().filter(|id| is_valid_id(id)) {
        Some(id) => Ok(Key::new(KEY_SYSTEM, id)),
        None => Err(ApiError::Unprocessable {
            message: "a Patient from another system needs an id or an identifier with a system and a value, \
                      so that a resend finds the one already registered"
                .into(),
            expression: Some("Patient.identifier".into()),
        }),
    }
}

/// The Patient the FHIR server has for `key` (or, with client ids, as `id`); with
/// server-assigned ids a Patient at `id` counts only if it has the posted one's name, since that
/// id may be the EMR's own and name another patient on this server.
async fn find(
    state: &AppState,
    ctx: &CallContext,
    live: &LiveConfig,
    posted: &Value,
    key: &Key,
    id: Option<&str>,
) -> Result<Option<Value>, ApiError> {
    if let Some(found) = state.fhir.find(ctx, live, "Patient", key, id).await.map_err(fhir_error)? {
        return Ok(Some(found));
    }
    let conditional = state.fhir.mode(ctx, live, "Patient").await.map_err(fhir_error)? == WriteMode::Conditional;
    if let Some(id) = id.filter(|_| conditional)
        && let Some(found) = state.fhir.client().read(ctx, &live.fhir, "Patient", id).await.map_err(fhir_error)?
        && full_name(&found).is_some_and(|name| Some(name) == full_name(posted))
    {
        return Ok(Some(found));
    }
    Ok(None)
}
