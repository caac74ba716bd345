//! `POST /cht/patient` and `POST /cht/encounter`: CHT outbound pushes (see [`crate::inbound`]).
//! Written → the FHIR server's answer; dead-lettered → 202 with an OperationOutcome and OpenHIM
//! status `Failed` (CHT stops retrying, the admin sees it); transient → 502/503/504.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, FHIR_JSON};
use crate::http::extract::{Ctx, JsonBody};
use crate::inbound::{Endpoint, Outcome, handle};
use crate::openhim::envelope::TransactionStatus;
use crate::state::AppState;

pub async fn patient(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    Ok(respond(handle(&state, &ctx, Endpoint::Patient, &body).await?))
}

pub async fn encounter(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    Ok(respond(handle(&state, &ctx, Endpoint::Encounter, &body).await?))
}

/// The HTTP answer for an inbound outcome.
pub fn respond(outcome: Outcome) -> Response {
    match outcome {
        Outcome::Written { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            (status, [(header::CONTENT_TYPE, FHIR_JSON)], body.to_string()).into_response()
        }
        Outcome::DeadLettered { outcome, .. } => {
            let mut response =
                (StatusCode::ACCEPTED, [(header::CONTENT_TYPE, FHIR_JSON)], outcome.to_json()).into_response();
            response.extensions_mut().insert(TransactionStatus::Failed);
            response
        }
    }
}
