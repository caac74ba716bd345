//! Client for the FHIR R4 server: read, search (entries counted, `total` not trusted), `PUT`
//! upsert and transaction Bundles, `application/fhir+json`, Basic auth and the timeout from the
//! live config; every call recorded as an orchestration. Failures are sorted once, here:
//! transient ones (5xx, 408/409/412/423/429, timeouts, unreachable) are for a retry; any other
//! 4xx is the server refusing what was sent, kept with its status and `OperationOutcome`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::error::{ApiError, FHIR_JSON};
use crate::settings::Upstream;
use crate::upstream::{CallContext, Recorder, UpstreamResponse, join_url};

/// Largest page read in one search (the mediator's searches are by identifier or by one
/// Encounter's Observations: a handful of entries).
const SEARCH_COUNT: &str = "1000";

/// A failed FHIR call.
#[derive(Debug, thiserror::Error)]
pub enum FhirError {
    /// Worth retrying later.
    #[error(transparent)]
    Transient(#[from] ApiError),
    /// The server refused the request as sent.
    #[error("the FHIR server refused the request ({status})")]
    Rejected { status: u16, outcome: Value },
}

/// Client for one FHIR server; cheap to clone.
#[derive(Clone)]
pub struct FhirClient {
    recorder: Recorder,
}

/// A FHIR id: `[A-Za-z0-9\-\.]{1,64}`.
pub fn is_valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

impl FhirClient {
    pub fn new(recorder: Recorder) -> Self {
        Self { recorder }
    }

    /// The underlying recorder (readiness probes use its HTTP client).
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    async fn call(
        &self,
        ctx: &CallContext,
        upstream: &Upstream,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<UpstreamResponse, ApiError> {
        let name = match path {
            "" => format!("FHIR {method} transaction"),
            _ => format!("FHIR {method} {}", path.split('?').next().unwrap_or(path)),
        };
        self.recorder.call(ctx, upstream, &name, method, path, FHIR_JSON, body).await
    }

    /// `PUT [type]/[id]`: idempotent create-or-update with a client-assigned id. Returns the
    /// server's answer; a refusal (4xx) is returned too, for the caller to report as it came.
    pub async fn upsert(
        &self,
        ctx: &CallContext,
        upstream: &Upstream,
        resource: &Value,
    ) -> Result<UpstreamResponse, ApiError> {
        let (Some(kind), Some(id)) = (resource["resourceType"].as_str(), resource["id"].as_str()) else {
            return Err(ApiError::Internal("upsert of a resource without resourceType and id".into()));
        };
        let response = self.call(ctx, upstream, Method::PUT, &format!("{kind}/{id}"), Some(resource)).await?;
        match classify(&response) {
            Ok(()) | Err(FhirError::Rejected { .. }) => Ok(response),
            Err(FhirError::Transient(e)) => Err(e),
        }
    }

    /// `GET [type]/[id]`; `None` when the server has no such resource (404/410).
    pub async fn read(
        &self,
        ctx: &CallContext,
        upstream: &Upstream,
        kind: &str,
        id: &str,
    ) -> Result<Option<Value>, FhirError> {
        let response = self.call(ctx, upstream, Method::GET, &format!("{kind}/{id}"), None).await?;
        if matches!(response.status.as_u16(), 404 | 410) {
            return Ok(None);
        }
        classify(&response)?;
        json_body(&response).map(Some)
    }

    /// `GET [type]?params`: the matching resources (entries with `search.mode` match or none).
    pub async fn search(
        &self,
        ctx: &CallContext,
        upstream: &Upstream,
        kind: &str,
        params: &[(&str, &str)],
    ) -> Result<Vec<Value>, FhirError> {
        // The serializer is not Send: finish it before awaiting.
        let query = {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query.extend_pairs(params.iter().copied()).append_pair("_count", SEARCH_COUNT);
            query.finish()
        };
        let response = self.call(ctx, upstream, Method::GET, &format!("{kind}?{query}"), None).await?;
        classify(&response)?;
        let bundle = json_body(&response)?;
        Ok(bundle["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["search"]["mode"].as_str().is_none_or(|m| m == "match"))
            .filter(|e| e["resource"]["resourceType"] == kind)
            .map(|e| e["resource"].clone())
            .collect())
    }

    /// `POST [base]` with a transaction Bundle: all entries or none. Returns the response Bundle.
    pub async fn transaction(
        &self,
        ctx: &CallContext,
        upstream: &Upstream,
        bundle: &Value,
    ) -> Result<Value, FhirError> {
        let response = self.call(ctx, upstream, Method::POST, "", Some(bundle)).await?;
        classify(&response)?;
        json_body(&response)
    }
}

/// A transaction Bundle entry writing `resource` with `PUT [type]/[id]`.
pub fn put_entry(base: &url::Url, resource: &Value) -> Value {
    let kind = resource["resourceType"].as_str().unwrap_or_default();
    let id = resource["id"].as_str().unwrap_or_default();
    let full_url = join_url(base, &format!("{kind}/{id}")).map(|u| u.to_string()).unwrap_or_default();
    json!({"fullUrl": full_url, "resource": resource, "request": {"method": "PUT", "url": format!("{kind}/{id}")}})
}

/// A transaction Bundle entry deleting `[type]/[id]`, as a conditional delete on `_id`: deleting
/// a resource that is already gone then succeeds (204) instead of failing the whole transaction
/// (HFS answers 400 to a plain DELETE of a deleted resource), so two concurrent redeliveries of
/// one report cannot fail each other.
pub fn delete_entry(kind: &str, id: &str) -> Value {
    json!({"request": {"method": "DELETE", "url": format!("{kind}?_id={id}")}})
}

fn classify(response: &UpstreamResponse) -> Result<(), FhirError> {
    let status = response.status.as_u16();
    match status {
        200..=299 => Ok(()),
        408 | 409 | 412 | 423 | 429 => {
            Err(FhirError::Transient(ApiError::BadGateway { target: "FHIR server", status }))
        }
        400..=499 => Err(FhirError::Rejected { status, outcome: response.json().unwrap_or(Value::Null) }),
        _ => Err(FhirError::Transient(ApiError::BadGateway { target: "FHIR server", status })),
    }
}

fn json_body(response: &UpstreamResponse) -> Result<Value, FhirError> {
    response.json().ok_or_else(|| {
        FhirError::Transient(ApiError::Upstream(crate::upstream::UpstreamError::InvalidResponse {
            target: "fhir",
            reason: format!("HTTP {} with a body that is not JSON", response.status.as_u16()),
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fhir_ids_follow_the_spec() {
        assert!(is_valid_id("3f2a1c9e-1b2c-4d5e-8f90-123456789abc"));
        assert!(is_valid_id("a.b-C9"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("has space"));
        assert!(!is_valid_id("under_score"));
        assert!(!is_valid_id(&"x".repeat(65)));
    }

    #[test]
    fn bundle_entries() {
        let base: url::Url = "http://fhir:8080/r4".parse().unwrap();
        let e = put_entry(&base, &json!({"resourceType": "Patient", "id": "p1"}));
        assert_eq!(e["fullUrl"], "http://fhir:8080/r4/Patient/p1");
        assert_eq!(e["request"], json!({"method": "PUT", "url": "Patient/p1"}));
        assert_eq!(delete_entry("Observation", "o1")["request"]["url"], "Observation?_id=o1");
    }
}
