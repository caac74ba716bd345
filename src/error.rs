//! The one API error type. Each variant has one documented status; every body is a FHIR
//! `OperationOutcome` (`application/fhir+json`). 5xx bodies say what failed without internals;
//! the cause goes to the log.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::fhir::operation_outcome::OperationOutcome;
use crate::upstream::UpstreamError;

/// FHIR JSON content type.
pub const FHIR_JSON: &str = "application/fhir+json";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request body is not what the endpoint accepts (`expression` names the element).
    #[error("{message}")]
    BadRequest { message: String, expression: Option<String> },
    /// 401: the route credentials (`ROUTE_USERNAME`/`ROUTE_PASSWORD`) are missing or wrong.
    #[error("authentication required")]
    Unauthorized,
    /// 404: no such endpoint or resource.
    #[error("{0}")]
    NotFound(String),
    /// 405: the endpoint exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 413: body larger than `BODY_LIMIT_BYTES`.
    #[error("request body is larger than the configured limit (BODY_LIMIT_BYTES)")]
    PayloadTooLarge,
    /// 415: wrong content type.
    #[error("unsupported content type {found:?}; expected {expected}")]
    UnsupportedMediaType { found: String, expected: &'static str },
    /// 422: well-formed but unusable (e.g. the subject does not exist).
    #[error("{message}")]
    Unprocessable { message: String, expression: Option<String> },
    /// 502: an upstream answered with an error it should not have.
    #[error("{target} answered {status}")]
    BadGateway { target: &'static str, status: u16 },
    /// 502: an upstream refused what the mediator asked, saying why (e.g. CHT: form not found).
    #[error("{target} refused the request: {detail}")]
    Refused { target: &'static str, detail: String },
    /// 503: something needed is not available yet (e.g. a report's patient); deliver again later.
    #[error("{0}")]
    ServiceUnavailable(String),
    /// 503 (unreachable) or 504 (timeout) or 502 (garbled answer): a transient upstream failure.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// 504: the mediator's own time budget (`REQUEST_TIMEOUT_MS`) ran out.
    #[error("the request did not complete within {0} ms")]
    Timeout(u128),
    /// 500: a bug; details only in the log.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>, expression: Option<&str>) -> Self {
        Self::BadRequest { message: message.into(), expression: expression.map(str::to_owned) }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadGateway { .. } | Self::Refused { .. } => StatusCode::BAD_GATEWAY,
            Self::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Upstream(UpstreamError::Unreachable { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Upstream(UpstreamError::Timeout { .. }) | Self::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Upstream(UpstreamError::InvalidResponse { .. }) => StatusCode::BAD_GATEWAY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `OperationOutcome` for this error.
    pub fn outcome(&self) -> OperationOutcome {
        let (code, expression) = match self {
            Self::BadRequest { expression, .. } => ("invalid", expression.clone()),
            Self::Unprocessable { expression, .. } => ("processing", expression.clone()),
            Self::NotFound(_) => ("not-found", None),
            Self::Unauthorized => ("login", None),
            Self::MethodNotAllowed | Self::UnsupportedMediaType { .. } => ("not-supported", None),
            Self::PayloadTooLarge => ("too-long", None),
            Self::Timeout(_) | Self::Upstream(UpstreamError::Timeout { .. }) => ("timeout", None),
            Self::BadGateway { .. } | Self::Upstream(_) | Self::ServiceUnavailable(_) => ("transient", None),
            Self::Refused { .. } => ("exception", None),
            Self::Internal(_) => ("exception", None),
        };
        OperationOutcome::error(code, self.to_string(), expression)
    }
}

/// An `OperationOutcome` response with the given status.
pub fn outcome_response(status: StatusCode, outcome: &OperationOutcome) -> Response {
    (status, [(header::CONTENT_TYPE, FHIR_JSON)], outcome.to_json()).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            Self::Internal(detail) => tracing::error!(%detail, "internal error"),
            e if status.is_server_error() => {
                tracing::warn!(error = %e, status = status.as_u16(), "upstream or time failure")
            }
            e => tracing::info!(error = %e, status = status.as_u16(), "request refused"),
        }
        outcome_response(status, &self.outcome())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_variant_has_its_status_and_issue_code() {
        let cases = [
            (ApiError::bad_request("x", Some("Patient.name")), 400, "invalid"),
            (ApiError::PayloadTooLarge, 413, "too-long"),
            (
                ApiError::UnsupportedMediaType { found: "text/plain".into(), expected: "application/json" },
                415,
                "not-supported",
            ),
            (
                ApiError::Upstream(UpstreamError::Unreachable { target: "fhir", reason: "refused".into() }),
                503,
                "transient",
            ),
            (ApiError::Upstream(UpstreamError::Timeout { target: "fhir" }), 504, "timeout"),
            (ApiError::BadGateway { target: "fhir", status: 500 }, 502, "transient"),
            (ApiError::Timeout(8000), 504, "timeout"),
            (ApiError::Internal("secret detail".into()), 500, "exception"),
        ];
        for (err, status, code) in cases {
            assert_eq!(err.status().as_u16(), status, "{err:?}");
            let outcome = err.outcome();
            assert_eq!(outcome.issue[0].code, code, "{err:?}");
            assert!(!outcome.to_json().contains("secret detail"), "5xx bodies hide internals");
        }
    }

    #[test]
    fn bad_request_names_the_element() {
        let v: serde_json::Value =
            serde_json::from_str(&ApiError::bad_request("not a date", Some("Patient.birthDate")).outcome().to_json())
                .unwrap();
        assert_eq!(v["issue"][0]["expression"][0], "Patient.birthDate");
    }
}
