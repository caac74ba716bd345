//! `POST /fhir/ServiceRequest` (alias `/service-request`) and `POST /fhir/Task`: LTFU follow-up
//! requests (see [`crate::outbound::follow_up`]). 201 with the Task when handed to CHT now, 200
//! when it already was; 400/422 OperationOutcomes naming the element for requests that cannot be.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, FHIR_JSON};
use crate::http::extract::{Ctx, JsonBody};
use crate::outbound::follow_up::accept;
use crate::state::AppState;

pub async fn follow_up(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let accepted = accept(&state, &ctx, &body).await?;
    let status = if accepted.created { StatusCode::CREATED } else { StatusCode::OK };
    let location = format!("Task/{}", accepted.task["id"].as_str().unwrap_or_default());
    Ok((
        status,
        [(header::CONTENT_TYPE, FHIR_JSON.to_owned()), (header::LOCATION, location)],
        accepted.task.to_string(),
    )
        .into_response())
}
