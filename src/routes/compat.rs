//! `POST /patient` and `POST /encounter`: the reference mediator's CHT configuration (outbound
//! `expr` mappings) sends ready-made FHIR resources, taken as they come
//! ([`crate::inbound::reference`]): CHT pushes, so under the inbound failure policy (dead letters
//! for what can never be written).
//! `POST /organization` and `POST /endpoint`: the requester's own resources
//! ([`crate::outbound::requester`]), from the EMR: invalid ones get 400.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::cht::respond;
use crate::error::{ApiError, FHIR_JSON};
use crate::http::extract::{Ctx, FhirBody, JsonBody};
use crate::inbound::{Endpoint, handle};
use crate::outbound::requester::{Kind, upsert};
use crate::state::AppState;

pub async fn patient(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    Ok(respond(handle(&state, &ctx, Endpoint::ReferencePatient, &body).await?))
}

pub async fn encounter(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    Ok(respond(handle(&state, &ctx, Endpoint::ReferenceEncounter, &body).await?))
}

pub async fn organization(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    requester_answer(upsert(&state, &ctx, Kind::Organization, &body).await?)
}

pub async fn endpoint(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    requester_answer(upsert(&state, &ctx, Kind::Endpoint, &body).await?)
}

/// The FHIR server's answer: 201 created or 200 updated, with the stored resource.
fn requester_answer((status, stored): (u16, serde_json::Value)) -> Result<Response, ApiError> {
    let status = axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::OK);
    Ok((status, [(header::CONTENT_TYPE, FHIR_JSON)], stored.to_string()).into_response())
}
