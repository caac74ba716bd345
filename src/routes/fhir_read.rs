//! The FHIR reads on the "FHIR requests to CHT" channel ([`crate::facade`]):
//! - `GET /fhir/Patient/{id}`, `GET /fhir/Practitioner/{id}`, `GET /fhir/Organization/{id}`,
//!   `GET /fhir/Location/{id}`: 200 with the resource, 404 OperationOutcome when CHT has none;
//! - `GET /fhir/Patient?…`: a `searchset` Bundle (see [`crate::facade::search`]);
//! - `GET /fhir/metadata`: the CapabilityStatement.
//!
//! JSON, or XML on `_format`/`Accept`. CHT refusing the mediator's user is a 403 naming the
//! permission; CHT down is a 503.

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;

use crate::error::ApiError;
use crate::facade::format::{negotiate, respond};
use crate::facade::read::{ReadType, read, search_patients};
use crate::facade::{capability, search};
use crate::http::extract::Ctx;
use crate::state::AppState;

async fn read_as(
    state: &AppState,
    ctx: &crate::upstream::CallContext,
    read_type: ReadType,
    id: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let format = negotiate(query, headers)?;
    let resource = counted(state, read(state, ctx, read_type, id).await)?;
    respond(format, &resource)
}

/// Reads are counted like conversions (kind `fhir_read`), a 404 as `not_found`.
fn counted<T>(state: &AppState, result: Result<T, ApiError>) -> Result<T, ApiError> {
    let outcome = match &result {
        Ok(_) => "read",
        Err(ApiError::NotFound(_)) => "not_found",
        Err(e) if e.status().is_client_error() => "refused",
        Err(_) => "transient_failure",
    };
    state.metrics.conversion("fhir_read", outcome);
    result
}

/// `GET /fhir/{type}/{id}` for the types the facade reads; any other type is a 404.
pub async fn resource(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((kind, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let read_type = ReadType::from_name(&kind).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no reads of {kind}: the facade reads Patient, Practitioner, Organization, Location"
        ))
    })?;
    read_as(&state, &ctx, read_type, &id, query.as_deref(), &headers).await
}

pub async fn search_patient(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let format = negotiate(query.as_deref(), &headers)?;
    let live = state.live.current();
    let search = search::parse(query.as_deref().unwrap_or_default(), &live.identifiers, lenient(&headers))?;
    let (page, total) = counted(&state, search_patients(&state, &ctx, &search).await)?;
    let base = state.settings.server.facade_base_url.as_ref().map(url::Url::as_str);
    let entry_base = base.map_or_else(|| own_base(&headers), str::to_owned);
    respond(format, &search::bundle(&search, page, total, base, &entry_base))
}

/// The mediator's own FHIR base, from the `Host` the request was sent to: where the entries
/// can be read when no public base is configured (behind OpenHIM, set `FHIR_FACADE_BASE_URL`
/// so they name OpenHIM's URL). A `Host` that is no host name is not echoed.
fn own_base(headers: &HeaderMap) -> String {
    let host = headers.get(axum::http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let sane = !host.is_empty()
        && host.len() <= 255
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    format!("http://{}/fhir", if sane { host } else { "localhost" })
}

/// Whether the caller asked for lenient handling of unknown search parameters
/// (`Prefer: handling=lenient`, among other preferences).
fn lenient(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .any(|p| p.trim().eq_ignore_ascii_case("handling=lenient"))
}

pub async fn metadata(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let format = negotiate(query.as_deref(), &headers)?;
    let base = state.settings.server.facade_base_url.as_ref().map(url::Url::as_str);
    let date = chrono::Utc::now().format("%Y-%m-%d").to_string();
    respond(format, &capability::statement(base, &date))
}
