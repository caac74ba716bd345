//! `POST /patient` and `POST /encounter`: the older reference configuration (CHT outbound `expr`
//! mappings) sends ready-made FHIR resources. Check the basics, then upsert with `PUT`, so a
//! redelivery rewrites the same resource instead of creating another.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::{ApiError, FHIR_JSON};
use crate::fhir::client::is_valid_id;
use crate::http::extract::{Ctx, JsonBody};
use crate::state::AppState;

pub async fn patient(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    upsert_ready_made(&state, &ctx, "Patient", body).await
}

pub async fn encounter(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    upsert_ready_made(&state, &ctx, "Encounter", body).await
}

/// Checks that `resource` is a `kind` with a usable id and writes it; the FHIR server's answer
/// (including a refusal with its `OperationOutcome`) is passed back as it came.
async fn upsert_ready_made(
    state: &AppState,
    ctx: &crate::upstream::CallContext,
    kind: &str,
    resource: Value,
) -> Result<Response, ApiError> {
    check_ready_made(kind, &resource)?;
    let live = state.live.current();
    let response = state.fhir.upsert(ctx, &live.fhir, &resource).await?;
    tracing::info!(
        resource = kind,
        id = resource["id"].as_str().unwrap_or_default(),
        status = response.status.as_u16(),
        "upserted ready-made resource"
    );
    Ok((response.status, [(header::CONTENT_TYPE, FHIR_JSON)], response.body).into_response())
}

/// The shape checks a ready-made resource must pass; errors name the element.
pub fn check_ready_made(kind: &str, resource: &Value) -> Result<(), ApiError> {
    if !resource.is_object() {
        return Err(ApiError::bad_request(format!("the body must be a FHIR {kind} resource (a JSON object)"), None));
    }
    match resource["resourceType"].as_str() {
        Some(found) if found == kind => {}
        Some(found) => {
            return Err(ApiError::bad_request(format!("expected a {kind}, got a {found}"), Some("resourceType")));
        }
        None => return Err(ApiError::bad_request("resourceType is required", Some("resourceType"))),
    }
    match resource["id"].as_str() {
        Some(id) if is_valid_id(id) => crate::fhir::model::check_structure(resource)
            .map_err(|e| ApiError::bad_request(format!("not a valid FHIR R4 {kind}: {e}"), Some(kind))),
        Some(_) => Err(ApiError::bad_request(
            format!("{kind}.id must match [A-Za-z0-9-.]{{1,64}}"),
            Some(&format!("{kind}.id")),
        )),
        None => Err(ApiError::bad_request(
            format!("{kind}.id is required: the mediator writes with PUT so redeliveries update the same resource"),
            Some(&format!("{kind}.id")),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn expression(err: ApiError) -> Option<String> {
        err.outcome().issue[0].expression.first().cloned()
    }

    #[test]
    fn ready_made_resources_need_the_right_type_and_a_valid_id() {
        assert!(check_ready_made("Patient", &json!({"resourceType": "Patient", "id": "abc-1"})).is_ok());
        let wrong = check_ready_made("Patient", &json!({"resourceType": "Encounter", "id": "a"})).unwrap_err();
        assert_eq!(expression(wrong).as_deref(), Some("resourceType"));
        let no_id = check_ready_made("Encounter", &json!({"resourceType": "Encounter"})).unwrap_err();
        assert_eq!(expression(no_id).as_deref(), Some("Encounter.id"));
        let bad_id = check_ready_made("Patient", &json!({"resourceType": "Patient", "id": "a b"})).unwrap_err();
        assert_eq!(expression(bad_id).as_deref(), Some("Patient.id"));
        assert!(check_ready_made("Patient", &json!([1, 2])).is_err());
        let unknown =
            check_ready_made("Patient", &json!({"resourceType": "Patient", "id": "a", "gendr": "female"})).unwrap_err();
        assert!(unknown.to_string().contains("gendr"), "{unknown}");
    }
}
