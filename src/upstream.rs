//! What every upstream HTTP call shares: the per-request [`CallContext`] (request id, OpenHIM
//! transaction id, the orchestrations recorded so far), one TLS-verifying `reqwest::Client`
//! builder with an optional CA bundle, and [`Recorder::send`], which forwards the transaction id,
//! records the call as an orchestration and counts it in the metrics.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use crate::metrics::Metrics;
use crate::openhim::envelope::{Orchestration, OrchestrationError, OrchestrationRequest, ResponseRecord, timestamp};

/// Header OpenHIM uses for its transaction id; forwarded on every upstream call.
pub const TRANSACTION_HEADER: &str = "x-openhim-transactionid";

/// Headers never copied into orchestrations (OpenHIM stores them).
const REDACTED_HEADERS: &[&str] =
    &["authorization", "proxy-authorization", "cookie", "set-cookie", "auth-token", "auth-salt"];

/// Per-request context handed to every client call.
#[derive(Clone, Debug)]
pub struct CallContext {
    pub request_id: String,
    pub transaction_id: Option<String>,
    orchestrations: Arc<Mutex<Vec<Orchestration>>>,
}

impl CallContext {
    pub fn new(request_id: String, transaction_id: Option<String>) -> Self {
        Self { request_id, transaction_id, orchestrations: Arc::default() }
    }

    /// For work outside an HTTP request (start-up checks, background tasks).
    pub fn background() -> Self {
        Self::new(uuid::Uuid::new_v4().to_string(), None)
    }

    pub fn record(&self, orchestration: Orchestration) {
        self.orchestrations.lock().unwrap_or_else(|p| p.into_inner()).push(orchestration);
    }

    /// The orchestrations recorded so far, in call order.
    pub fn take_orchestrations(&self) -> Vec<Orchestration> {
        std::mem::take(&mut *self.orchestrations.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// A transport-level upstream failure (no HTTP answer to act on).
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("{target} did not answer in time")]
    Timeout { target: &'static str },
    #[error("{target} could not be reached: {reason}")]
    Unreachable { target: &'static str, reason: String },
    #[error("{target} answer could not be read: {reason}")]
    InvalidResponse { target: &'static str, reason: String },
}

/// A complete upstream answer (any status).
#[derive(Debug, Clone)]
pub struct UpstreamResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl UpstreamResponse {
    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Builds the one HTTP client used for an upstream: TLS always verified, extra roots from `ca_bundle`.
pub fn build_client(ca_bundle: Option<&Path>, connect_timeout: Duration) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("cht-fhir-mediator/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(Duration::from_secs(30));
    if let Some(path) = ca_bundle {
        let pem = std::fs::read(path).map_err(|e| anyhow::anyhow!("TLS_CA_BUNDLE {}: {e}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| anyhow::anyhow!("TLS_CA_BUNDLE {}: not a PEM bundle: {e}", path.display()))?;
        anyhow::ensure!(!certs.is_empty(), "TLS_CA_BUNDLE {}: no certificate in it", path.display());
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(builder.build()?)
}

/// `base` joined with a relative `path`, keeping any path the base has (e.g. `/fhir/r4`).
pub fn join_url(base: &url::Url, path: &str) -> Result<url::Url, String> {
    let mut base = base.clone();
    if !base.path().ends_with('/') {
        base.set_path(&format!("{}/", base.path()));
    }
    base.join(path).map_err(|e| e.to_string())
}

/// Sends requests to one upstream target and records each as an orchestration.
#[derive(Clone)]
pub struct Recorder {
    pub client: reqwest::Client,
    pub target: &'static str,
    metrics: Arc<Metrics>,
}

impl Recorder {
    pub fn new(client: reqwest::Client, target: &'static str, metrics: Arc<Metrics>) -> Self {
        Self { client, target, metrics }
    }

    /// A request to `path` under `upstream`'s base URL, with its timeout and its Basic
    /// credentials (none when the username is empty). Errors only for a path that cannot join.
    pub fn request(
        &self,
        upstream: &crate::settings::Upstream,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, String> {
        use secrecy::ExposeSecret;
        let url = join_url(&upstream.url, path)?;
        let mut request = self.client.request(method, url).timeout(upstream.timeout);
        if !upstream.username.is_empty() {
            request = request.basic_auth(&upstream.username, upstream.password.as_ref().map(|p| p.expose_secret()));
        }
        Ok(request)
    }

    /// `method path` under `upstream` with `media_type` as Accept (and as Content-Type of `body`,
    /// sent as JSON), recorded as orchestration `name`. Any HTTP answer is returned; a path that
    /// cannot join or a body that cannot serialise is an internal error, a transport failure an
    /// upstream error.
    #[allow(clippy::too_many_arguments)] // each is one part of the call; a struct would only rename them
    pub async fn call(
        &self,
        ctx: &CallContext,
        upstream: &crate::settings::Upstream,
        name: &str,
        method: reqwest::Method,
        path: &str,
        media_type: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<UpstreamResponse, crate::error::ApiError> {
        use crate::error::ApiError;
        let internal = |e: String| ApiError::Internal(format!("{} request: {e}", self.target));
        let mut request = self.request(upstream, method, path).map_err(internal)?.header("accept", media_type);
        if let Some(body) = body {
            let text = serde_json::to_string(body).map_err(|e| internal(e.to_string()))?;
            request = request.header("content-type", media_type).body(text);
        }
        let request = request.build().map_err(|e| internal(e.to_string()))?;
        Ok(self.send(ctx, name, request).await?)
    }

    /// Sends `request` (built with `self.client`), returning any HTTP answer; only transport
    /// failures are errors. `name` is the orchestration name shown in the OpenHIM console.
    #[tracing::instrument(name = "upstream", skip_all, fields(target = self.target, call = name, status))]
    pub async fn send(
        &self,
        ctx: &CallContext,
        name: &str,
        mut request: reqwest::Request,
    ) -> Result<UpstreamResponse, UpstreamError> {
        if let Some(tx) = &ctx.transaction_id
            && let Ok(value) = tx.parse()
        {
            request.headers_mut().insert(TRANSACTION_HEADER, value);
        }
        let recorded = record_request(&request);
        let started = Instant::now();
        let result = self.exchange(request).await;
        let elapsed = started.elapsed();
        let (outcome, response, error) = match &result {
            Ok(r) => (status_class(r.status), Some(record_response(r)), None),
            Err(e) => (error_class(e), None, Some(OrchestrationError { message: e.to_string() })),
        };
        self.metrics.observe_upstream(self.target, outcome, elapsed);
        match &result {
            Ok(r) => {
                tracing::Span::current().record("status", r.status.as_u16());
                tracing::debug!(elapsed_ms = elapsed.as_millis() as u64, "upstream answered");
            }
            Err(e) => tracing::warn!(error = %e, elapsed_ms = elapsed.as_millis() as u64, "upstream call failed"),
        }
        ctx.record(Orchestration { name: name.to_owned(), group: None, request: recorded, response, error });
        result
    }

    async fn exchange(&self, request: reqwest::Request) -> Result<UpstreamResponse, UpstreamError> {
        let target = self.target;
        let classify = |e: reqwest::Error| {
            if e.is_timeout() {
                UpstreamError::Timeout { target }
            } else if e.is_connect() {
                UpstreamError::Unreachable { target, reason: error_chain(&e) }
            } else {
                UpstreamError::InvalidResponse { target, reason: error_chain(&e) }
            }
        };
        let response = self.client.execute(request).await.map_err(classify)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(classify)?;
        Ok(UpstreamResponse { status, headers, body })
    }
}

/// reqwest's top-level message hides the cause (e.g. "error sending request"): keep the chain.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

fn error_class(e: &UpstreamError) -> &'static str {
    match e {
        UpstreamError::Timeout { .. } => "timeout",
        UpstreamError::Unreachable { .. } => "unreachable",
        UpstreamError::InvalidResponse { .. } => "invalid_response",
    }
}

fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    headers
        .iter()
        .filter(|(name, _)| !REDACTED_HEADERS.contains(&name.as_str()))
        .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect()
}

fn record_request(request: &reqwest::Request) -> OrchestrationRequest {
    let url = request.url();
    let body = request.body().and_then(|b| b.as_bytes()).map(|b| String::from_utf8_lossy(b).into_owned());
    OrchestrationRequest {
        method: request.method().as_str().to_owned(),
        host: url.host_str().unwrap_or_default().to_owned(),
        port: url.port_or_known_default().map(|p| p.to_string()).unwrap_or_default(),
        path: url.path().to_owned(),
        querystring: url.query().unwrap_or_default().to_owned(),
        headers: header_map(request.headers()),
        body: body.unwrap_or_default(),
        timestamp: timestamp(Utc::now()),
    }
}

fn record_response(response: &UpstreamResponse) -> ResponseRecord {
    ResponseRecord {
        status: response.status.as_u16(),
        headers: header_map(&response.headers),
        body: String::from_utf8_lossy(&response.body).into_owned(),
        timestamp: timestamp(Utc::now()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_recorded_without_credentials() {
        let client = reqwest::Client::new();
        let req = client
            .put("https://fhir.example.org:8443/r4/Patient/p1?_format=json")
            .basic_auth("user", Some("pw"))
            .header("content-type", "application/fhir+json")
            .body("{\"resourceType\":\"Patient\"}")
            .build()
            .unwrap();
        let rec = record_request(&req);
        assert_eq!((rec.method.as_str(), rec.host.as_str(), rec.port.as_str()), ("PUT", "fhir.example.org", "8443"));
        assert_eq!((rec.path.as_str(), rec.querystring.as_str()), ("/r4/Patient/p1", "_format=json"));
        assert_eq!(rec.body, "{\"resourceType\":\"Patient\"}");
        assert!(!rec.headers.contains_key("authorization"));
        assert_eq!(rec.headers["content-type"], "application/fhir+json");
    }

    #[test]
    fn join_url_keeps_the_base_path() {
        let base: url::Url = "http://fhir:8080/fhir/r4".parse().unwrap();
        assert_eq!(join_url(&base, "metadata").unwrap().as_str(), "http://fhir:8080/fhir/r4/metadata");
        let root: url::Url = "http://fhir:8080".parse().unwrap();
        assert_eq!(join_url(&root, "Patient/p1").unwrap().as_str(), "http://fhir:8080/Patient/p1");
    }

    #[test]
    fn context_hands_out_orchestrations_once() {
        let ctx = CallContext::new("r1".into(), Some("tx1".into()));
        let req = reqwest::Client::new().get("http://cht/api/info").build().unwrap();
        ctx.clone().record(Orchestration {
            name: "a".into(),
            group: None,
            request: record_request(&req),
            response: None,
            error: None,
        });
        assert_eq!(ctx.take_orchestrations().len(), 1);
        assert!(ctx.take_orchestrations().is_empty());
    }
}
