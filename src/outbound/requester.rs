//! `POST /organization` and `POST /endpoint`: a requester (an EMR) registers its Organization and
//! the Endpoint the mediator calls back, as the reference mediator let it — but idempotently: the
//! resource's id is its own, or derived from its identifier (see
//! [`crate::conversions::reference`]), and it is upserted by that key, so a resend updates it.

use serde_json::{Value, json};

use crate::conversions::reference;
use crate::error::ApiError;
use crate::fhir::store::KEY_SYSTEM;
use crate::fhir::transaction::Key;
use crate::json::JsonExt;
use crate::state::AppState;
use crate::upstream::CallContext;

/// Which requester resource.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Organization,
    Endpoint,
}

/// Normalises, checks (base R4) and upserts; the server's status (201 created, 200 updated) and
/// the stored resource.
pub async fn upsert(state: &AppState, ctx: &CallContext, kind: Kind, body: &Value) -> Result<(u16, Value), ApiError> {
    let resource = match kind {
        Kind::Organization => reference::organization(body),
        Kind::Endpoint => reference::endpoint(body),
    }
    .map_err(|e| ApiError::bad_request(e.message, e.element.as_deref()))?;
    let resource = with_key_identifier(resource);
    crate::fhir::base::validate(&resource).map_err(|violations| ApiError::Invalid { violations })?;
    let live = state.live.current();
    let key = Key::new(KEY_SYSTEM, resource.at("id").as_str().unwrap_or_default());
    let (status, stored) =
        state.fhir.upsert(ctx, &live, &resource, &key).await.map_err(crate::outbound::records::fhir_error)?;
    tracing::info!(kind = ?kind, status, "requester resource upserted");
    Ok((status, stored))
}

/// The resource with the identifier it is known by (its deterministic id), once.
fn with_key_identifier(mut resource: Value) -> Value {
    let id = resource.at("id").clone();
    let mut identifiers = resource.at("identifier").as_array().cloned().unwrap_or_default();
    if !identifiers.iter().any(|i| i.at("system") == KEY_SYSTEM) {
        identifiers.push(json!({"system": KEY_SYSTEM, "value": id}));
    }
    resource.set("identifier", Value::Array(identifiers));
    resource
}
