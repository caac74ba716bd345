//! Request middleware, outermost first:
//! 1. [`request_context`]: request id (the OpenHIM transaction id, else a new UUID) on a span that
//!    every log line of the request carries; a [`CallContext`] for upstream calls; metrics.
//! 2. [`openhim_envelope`]: when OpenHIM sent the request, wraps whatever the handler answered
//!    (errors and timeouts included) in the `application/json+openhim` envelope with the
//!    orchestrations recorded on the way.
//! 3. catch-panic (tower-http), then 4. [`deadline`]: the whole-request time budget.
//!
//! [`route_credentials`] sits between 1 and 2 when `ROUTE_USERNAME` is set.

use std::collections::BTreeMap;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use tracing::Instrument;

use crate::error::{ApiError, outcome_response};
use crate::http::extract::BodyReadTimeout;
use crate::json::JsonExt;
use crate::metrics::{HttpLabels, method_label};
use crate::openhim::envelope::{self, Envelope, ResponseRecord, TransactionStatus, timestamp};
use crate::state::AppState;
use crate::upstream::{CallContext, TRANSACTION_HEADER};

/// Response header carrying the request id (= the OpenHIM transaction id when there is one).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

pub async fn request_context(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let transaction_id = request
        .headers()
        .get(TRANSACTION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned);
    let request_id = transaction_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    // Route patterns, not raw paths: paths can carry identifiers, and metrics need bounded labels.
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_owned();
    let method = method_label(request.method());
    // ERROR level only so that no LOG_LEVEL filters the span out: every line logged while the
    // request runs (warnings included) must carry its request id.
    let span = tracing::error_span!("request", request_id = %request_id, method, route = %route);
    request.extensions_mut().insert(CallContext::new(request_id.clone(), transaction_id));
    request.extensions_mut().insert(BodyReadTimeout(state.settings.server.body_read_timeout));

    let started = Instant::now();
    let mut response = match declared_too_large(&request, state.settings.server.body_limit_bytes) {
        // Said up front: answer now, instead of waiting for a body that may never come.
        true => span.in_scope(|| closing(ApiError::PayloadTooLarge.into_response())),
        false => next.run(request).instrument(span.clone()).await,
    };
    if response.status() == StatusCode::REQUEST_TIMEOUT {
        response = closing(response);
    }
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    span.in_scope(|| tracing::info!(status, latency_ms = elapsed.as_secs_f64() * 1000.0, "request finished"));
    state.metrics.observe_http(HttpLabels { method, route, status }, elapsed);
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// A `Content-Length` above the body limit.
fn declared_too_large(request: &Request, limit: usize) -> bool {
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok());
    declared.and_then(|v| v.trim().parse::<u64>().ok()).is_some_and(|n| n > limit as u64)
}

/// `response` with `Connection: close`: the client's body is unread, the connection is not reusable.
fn closing(mut response: Response) -> Response {
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

pub async fn openhim_envelope(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(ctx) = request.extensions().get::<CallContext>().cloned() else {
        return next.run(request).await;
    };
    let response = next.run(request).await;
    if ctx.transaction_id.is_none() {
        return response;
    }
    let status_override = response.extensions().get::<TransactionStatus>().copied();
    let (parts, body) = response.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => {
            tracing::error!(error = %e, "could not read the response body for the OpenHIM envelope");
            return ApiError::Internal(e.to_string()).into_response();
        }
    };
    let headers: BTreeMap<String, String> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let record = ResponseRecord { status: parts.status.as_u16(), headers, body, timestamp: timestamp(Utc::now()) };
    // Lets a channel with auto-retry deliver the request again later (the body is read again
    // only then).
    let diagnostics = parts.status.is_server_error().then(|| {
        serde_json::from_str::<serde_json::Value>(&record.body)
            .ok()
            .and_then(|b| b.at("issue").nth(0).at("diagnostics").as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("HTTP {}", parts.status.as_u16()))
    });
    let mut envelope =
        Envelope::new(&state.urn, record, status_override).with_orchestrations(ctx.take_orchestrations());
    if let Some(diagnostics) = diagnostics {
        envelope = envelope.with_error(diagnostics);
    }
    let mut out = Response::new(Body::from(envelope.to_json()));
    *out.status_mut() = parts.status;
    out.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(envelope::CONTENT_TYPE));
    out
}

pub async fn deadline(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let budget = state.settings.server.request_timeout;
    match tokio::time::timeout(budget, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout(budget.as_millis()).into_response(),
    }
}

/// Paths open without route credentials: probes (Kubernetes, OpenHIM route checks) and scraping.
const OPEN_PATHS: &[&str] = &["/", "/health/live", "/health/ready", "/metrics"];

/// With `ROUTE_USERNAME` set, every other request needs those Basic credentials (401 otherwise).
/// Headers OpenHIM adds (client id, forwarded-for) are never taken as proof of anything.
pub async fn route_credentials(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some((user, password)) = &state.settings.server.route_credentials else {
        return next.run(request).await;
    };
    if OPEN_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    // The scheme is case-insensitive (RFC 9110 §11.1): `basic`, `BASIC` and `Basic` alike.
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim_start().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, credentials)| credentials);
    let expected = {
        use base64::Engine;
        use secrecy::ExposeSecret;
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{}", password.expose_secret()))
    };
    if given.is_some_and(|g| same(g.trim().as_bytes(), expected.as_bytes())) {
        return next.run(request).await;
    }
    let mut response = ApiError::Unauthorized.into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"cht-fhir-mediator\""));
    response
}

/// Compares in time independent of where the inputs differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    use sha2::Digest;
    sha2::Sha256::digest(a) == sha2::Sha256::digest(b)
}

/// Body of a panic answer: a 500 `OperationOutcome`. The panic message is neither logged nor
/// answered (it can quote request data); the panic hook ([`crate::telemetry::install_panic_hook`])
/// has already logged where it happened.
pub fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked; answered 500");
    outcome_response(StatusCode::INTERNAL_SERVER_ERROR, &ApiError::Internal(String::new()).outcome())
}
