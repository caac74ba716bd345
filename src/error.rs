//! The one API error type. Each variant has one documented status; every body is a FHIR
//! `OperationOutcome` (`application/fhir+json`). 5xx bodies say what failed without internals;
//! the cause goes to the log.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::fhir::operation_outcome::{Issue, OperationOutcome, Severity};
use crate::fhir::validate::Violation;
use crate::upstream::UpstreamError;

/// FHIR JSON content type.
pub const FHIR_JSON: &str = "application/fhir+json";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request body is not what the endpoint accepts (`expression` names the element).
    #[error("{message}")]
    BadRequest { message: String, expression: Option<String> },
    /// 400: the body is not valid FHIR R4 (or not what the mediator's profiles say): one issue
    /// per problem, each naming its element.
    #[error("the resource is not valid FHIR R4 ({} problem(s))", violations.len())]
    Invalid { violations: Vec<Violation> },
    /// 401: the route credentials (`ROUTE_USERNAME`/`ROUTE_PASSWORD`) are missing or wrong.
    #[error("authentication required")]
    Unauthorized,
    /// 403: an upstream refused the mediator's own user what the request needs (e.g. CHT: the
    /// mediator's CHT user may not read contacts); the caller learns it is a permission to grant.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such endpoint or resource.
    #[error("{0}")]
    NotFound(String),
    /// 405: the endpoint exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 406: the caller asked for a format the mediator cannot answer in (`_format`, `Accept`).
    #[error("{0}")]
    NotAcceptable(String),
    /// 408: the request body did not arrive within `BODY_READ_TIMEOUT_MS`.
    #[error("the request body did not arrive in time (BODY_READ_TIMEOUT_MS)")]
    RequestTimeout,
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
    /// 503 (unreachable) or 504 (timeout) or 502 (garbled answer, or no access token from the
    /// FHIR server's token endpoint): an upstream failure that a later delivery can get past.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// 507: the dead-letter store is at its cap (`DEAD_LETTER_MAX_*`): the document is refused
    /// transiently, so its sender keeps it and delivers again once the admin has made room.
    #[error("{0}")]
    InsufficientStorage(String),
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
            Self::BadRequest { .. } | Self::Invalid { .. } => StatusCode::BAD_REQUEST,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            Self::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadGateway { .. } | Self::Refused { .. } => StatusCode::BAD_GATEWAY,
            Self::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Upstream(UpstreamError::Unreachable { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Upstream(UpstreamError::Timeout { .. }) | Self::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Upstream(UpstreamError::InvalidResponse { .. } | UpstreamError::Auth { .. }) => {
                StatusCode::BAD_GATEWAY
            }
            Self::Upstream(UpstreamError::Request { .. }) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `OperationOutcome` for this error.
    pub fn outcome(&self) -> OperationOutcome {
        if let Self::Invalid { violations } = self {
            return OperationOutcome::from_issues(violations.iter().map(violation_issue).collect());
        }
        let (code, expression) = match self {
            Self::Invalid { .. } => ("invalid", None),
            Self::RequestTimeout => ("timeout", None),
            Self::InsufficientStorage(_) => ("transient", None),
            Self::BadRequest { expression, .. } => ("invalid", expression.clone()),
            Self::Unprocessable { expression, .. } => ("processing", expression.clone()),
            Self::NotFound(_) => ("not-found", None),
            Self::Forbidden(_) => ("forbidden", None),
            Self::Unauthorized => ("login", None),
            Self::MethodNotAllowed | Self::UnsupportedMediaType { .. } | Self::NotAcceptable(_) => {
                ("not-supported", None)
            }
            Self::PayloadTooLarge => ("too-long", None),
            Self::Timeout(_) | Self::Upstream(UpstreamError::Timeout { .. }) => ("timeout", None),
            Self::Upstream(UpstreamError::Request { .. }) => ("exception", None),
            Self::Upstream(UpstreamError::Auth { .. }) => ("security", None),
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

/// One issue per violation, naming its element.
pub fn violation_issue(v: &Violation) -> Issue {
    Issue { severity: Severity::Error, code: "invalid", diagnostics: v.to_string(), expression: vec![v.path.clone()] }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let outcome = self.outcome();
        // Messages can quote what was sent (a name, a phone, a form answer): the log gets the
        // status, the kind of problem and the element, never the message of a refusal.
        let first = outcome.issue.first();
        let (code, element) = (first.map_or("-", |i| i.code), first.and_then(|i| i.expression.first()));
        let element = element.map_or("-", String::as_str);
        match &self {
            Self::Internal(detail) => tracing::error!(%detail, "internal error"),
            e if status.is_server_error() => {
                tracing::warn!(error = %e, status = status.as_u16(), "upstream or time failure")
            }
            _ => tracing::info!(status = status.as_u16(), issue = code, element, "request refused"),
        }
        outcome_response(status, &outcome)
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
            (ApiError::Forbidden("the mediator's CHT user may not read contacts".into()), 403, "forbidden"),
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
            (ApiError::Upstream(UpstreamError::Auth { target: "fhir", reason: "401".into() }), 502, "security"),
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
