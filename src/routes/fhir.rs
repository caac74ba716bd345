//! The "FHIR requests to CHT" channel's endpoints; bodies in FHIR JSON or XML.
//! - `POST /fhir/ServiceRequest` (alias `/service-request`), `POST /fhir/Task`: LTFU follow-up
//!   requests ([`crate::outbound::follow_up`]); 201 with the Task when handed to CHT now, 200 when
//!   it already was.
//! - `POST /fhir/Patient`: a patient the EMR registers becomes one CHT contact, linked on the FHIR
//!   Patient ([`crate::outbound::register`]); 201 with the Patient when it or its contact was made
//!   now, 200 when both existed.
//! - `POST /fhir/Encounter`, `POST /fhir` (transaction or collection Bundle): one CHT record each
//!   ([`crate::outbound::records`]); 201 when created, 200 when CHT already had it, with an
//!   informational OperationOutcome naming the record.
//!
//! Requests that cannot be handled get 400/422 OperationOutcomes naming the element.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, FHIR_JSON};
use crate::fhir::operation_outcome::{Issue, OperationOutcome, Severity};
use crate::http::extract::{Ctx, FhirBody};
use crate::json::JsonExt;
use crate::outbound::follow_up::accept;
use crate::outbound::records::{self, Record};
use crate::outbound::register::register;
use crate::state::AppState;

/// Counts an outbound request's outcome: 4xx refusals apart from upstream failures.
fn counted<T>(state: &AppState, kind: &'static str, result: Result<T, ApiError>) -> Result<T, ApiError> {
    let outcome = match &result {
        Ok(_) => "written",
        Err(e) if e.status().is_client_error() => "refused",
        Err(_) => "transient_failure",
    };
    state.metrics.conversion(kind, outcome);
    result
}

pub async fn follow_up(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    let accepted = counted(&state, "follow_up", accept(&state, &ctx, &body).await)?;
    Ok(resource_response(accepted.created, "Task", &accepted.task))
}

pub async fn patient(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    let registered = counted(&state, "patient_contact", register(&state, &ctx, &body).await)?;
    Ok(resource_response(registered.created, "Patient", &registered.patient))
}

/// 201 (made now) or 200 with `resource` and its `Location`.
fn resource_response(created: bool, kind: &str, resource: &serde_json::Value) -> Response {
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    let location = format!("{kind}/{}", resource.at("id").as_str().unwrap_or_default());
    (status, [(header::CONTENT_TYPE, FHIR_JSON.to_owned()), (header::LOCATION, location)], resource.to_string())
        .into_response()
}

pub async fn encounter(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    Ok(record_response(counted(&state, "encounter_record", records::encounter(&state, &ctx, &body).await)?))
}

fn record_response(record: Record) -> Response {
    let (status, said) =
        if record.created { (StatusCode::CREATED, "created") } else { (StatusCode::OK, "already had") };
    let outcome = OperationOutcome::from_issues(vec![Issue {
        severity: Severity::Information,
        code: "informational",
        diagnostics: format!("CHT {said} record {} (form {})", record.id, record.form),
        expression: Vec::new(),
    }]);
    (status, [(header::CONTENT_TYPE, FHIR_JSON)], outcome.to_json()).into_response()
}
