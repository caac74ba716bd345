//! Body extractors whose rejections are [`ApiError`]s, so a wrong content type, an oversize body
//! or malformed JSON gets the same `OperationOutcome` as every other error.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde_json::Value;

use crate::error::ApiError;
use crate::upstream::CallContext;

/// Content types accepted for JSON bodies (CHT sends `application/json`, FHIR clients `application/fhir+json`).
const JSON_TYPES: &[&str] = &["application/json", "application/fhir+json", "application/json+fhir"];

/// A JSON request body as a `serde_json::Value` (parsed once at the edge; fhirbolt's own text
/// parser is not trusted with it).
#[derive(Debug)]
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let (content_type, essence) = media_type(&request);
        if !JSON_TYPES.contains(&essence.as_str()) {
            return Err(ApiError::UnsupportedMediaType {
                found: content_type,
                expected: "application/json or application/fhir+json",
            });
        }
        let bytes = read_body(request, state).await?;
        let value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("request body is not valid JSON: {e}"), None))?;
        crate::limits::check_json_depth(&value).map_err(|e| ApiError::bad_request(e.to_string(), None))?;
        Ok(Self(value))
    }
}

/// Content types accepted for FHIR XML bodies.
const XML_TYPES: &[&str] = &["application/fhir+xml", "application/xml+fhir", "application/xml", "text/xml"];

/// A FHIR request body, JSON or XML (`application/fhir+xml`), as FHIR JSON.
#[derive(Debug)]
pub struct FhirBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for FhirBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let (content_type, essence) = media_type(&request);
        if JSON_TYPES.contains(&essence.as_str()) {
            return JsonBody::from_request(request, state).await.map(|JsonBody(v)| Self(v));
        }
        if !XML_TYPES.contains(&essence.as_str()) {
            let expected = "application/fhir+json, application/json or application/fhir+xml";
            return Err(ApiError::UnsupportedMediaType { found: content_type, expected });
        }
        let bytes = read_body(request, state).await?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|e| ApiError::bad_request(format!("request body is not UTF-8: {e}"), None))?;
        // xml_to_json bounds the nesting before fhirbolt recurses, and turns its panics into errors.
        let value = crate::fhir::model::xml_to_json(text)
            .map_err(|e| ApiError::bad_request(format!("not a valid FHIR R4 XML resource: {e}"), None))?;
        Ok(Self(value))
    }
}

/// The request's `Content-Type` as sent, and its essence (lower case, parameters dropped).
fn media_type(request: &Request) -> (String, String) {
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    (content_type.to_owned(), essence)
}

/// How long a request body may take to arrive (`BODY_READ_TIMEOUT_MS`); put on each request by
/// the request-context middleware.
#[derive(Debug, Clone, Copy)]
pub struct BodyReadTimeout(pub std::time::Duration);

/// The raw body within the configured limit, arrived within [`BodyReadTimeout`] (else 408: a
/// client that stops sending must not hold a worker until the whole-request budget runs out).
pub async fn read_body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    let timeout = request.extensions().get::<BodyReadTimeout>().map_or(DEFAULT_BODY_READ_TIMEOUT, |t| t.0);
    let read = Bytes::from_request(request, state);
    match tokio::time::timeout(timeout, read).await {
        Err(_) => Err(ApiError::RequestTimeout),
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(rejection)) if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
            Err(ApiError::PayloadTooLarge)
        }
        Ok(Err(rejection)) => Err(ApiError::bad_request(format!("could not read the request body: {rejection}"), None)),
    }
}

/// Used where no middleware set one (unit tests of handlers).
const DEFAULT_BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The request's [`CallContext`], always present behind the request-context middleware.
pub struct Ctx(pub CallContext);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<CallContext>()
            .cloned()
            .map(Ctx)
            .ok_or_else(|| ApiError::Internal("request context middleware missing".into()))
    }
}
