//! Client for the FHIR R4 server: every call recorded as an orchestration, Basic auth and the
//! timeout from the live config, `application/fhir+json`, upstream failures kept with their
//! status and `OperationOutcome`.

use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::error::{ApiError, FHIR_JSON};
use crate::settings::Upstream;
use crate::upstream::{CallContext, Recorder, UpstreamResponse, join_url};

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
        let url = join_url(&upstream.url, path).map_err(|e| ApiError::Internal(format!("FHIR URL: {e}")))?;
        let mut request =
            self.recorder.client.request(method.clone(), url).timeout(upstream.timeout).header("accept", FHIR_JSON);
        if !upstream.username.is_empty() {
            request = request.basic_auth(&upstream.username, upstream.password.as_ref().map(|p| p.expose_secret()));
        }
        if let Some(body) = body {
            let text = serde_json::to_string(body).map_err(|e| ApiError::Internal(e.to_string()))?;
            request = request.header("content-type", FHIR_JSON).body(text);
        }
        let request = request.build().map_err(|e| ApiError::Internal(e.to_string()))?;
        let name = format!("FHIR {method} {}", path.split('?').next().unwrap_or(path));
        Ok(self.recorder.send(ctx, &name, request).await?)
    }

    /// `PUT [type]/[id]`: idempotent create-or-update with a client-assigned id.
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
        check(response)
    }
}

/// 2xx passes; a 4xx means the server refused the resource (kept, with its OperationOutcome, for
/// the caller to report); 5xx is a transient upstream failure.
fn check(response: UpstreamResponse) -> Result<UpstreamResponse, ApiError> {
    let status = response.status;
    if status.is_success() || status.is_client_error() {
        Ok(response)
    } else {
        Err(ApiError::BadGateway { target: "FHIR server", status: status.as_u16() })
    }
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
}
