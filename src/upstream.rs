//! What every upstream HTTP call shares: the per-request [`CallContext`] (request id, OpenHIM
//! transaction id, the orchestrations recorded so far), one TLS-verifying `reqwest::Client`
//! builder with an optional CA bundle, and [`Recorder::send`], which forwards the transaction id,
//! records the call as an orchestration and counts it in the metrics. The upstream's credentials
//! go on in [`Recorder::request`] (Basic, static bearer) and [`Recorder::send_authorized`]
//! (OAuth2 tokens, see [`auth`]).

pub mod auth;
mod record;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use crate::metrics::Metrics;
use crate::openhim::envelope::{Orchestration, OrchestrationError};
pub use record::RECORDED_BODY_LIMIT;
use record::{record_request, record_response};

/// Header OpenHIM uses for its transaction id; forwarded on every upstream call.
pub const TRANSACTION_HEADER: &str = "x-openhim-transactionid";

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

/// A transport-level upstream failure (no HTTP answer to act on). Owned here, where calls are
/// made; the API error (`crate::error::ApiError`) maps it to a status.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// The request could not even be built (a path that does not join the base URL, a body that
    /// does not serialise): a bug, nothing was sent.
    #[error("the request to {target} could not be built: {reason}")]
    Request { target: &'static str, reason: String },
    #[error("{target} did not answer in time")]
    Timeout { target: &'static str },
    #[error("{target} could not be reached: {reason}")]
    Unreachable { target: &'static str, reason: String },
    #[error("{target} answer could not be read: {reason}")]
    InvalidResponse { target: &'static str, reason: String },
    /// No credentials to send: the token endpoint refused the client or answered no token.
    #[error("{target} gave no access token: {reason}")]
    Auth { target: &'static str, reason: String },
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

/// Builds the one HTTP client used for an upstream: TLS always verified, with `trust` (extra
/// roots, pinned certificates; see [`crate::tls`]).
pub fn build_client(trust: &crate::tls::Trust, connect_timeout: Duration) -> anyhow::Result<reqwest::Client> {
    build_client_seeing(trust, connect_timeout, None)
}

/// [`build_client`], recording in `seen` the certificate each server presents (for `check`).
pub fn build_client_seeing(
    trust: &crate::tls::Trust,
    connect_timeout: Duration,
    seen: Option<crate::tls::SeenCertificate>,
) -> anyhow::Result<reqwest::Client> {
    let client = reqwest::Client::builder()
        .user_agent(concat!("cht-fhir-mediator/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(Duration::from_secs(30))
        .tls_backend_preconfigured(trust.client_config(seen)?)
        .build()?;
    Ok(client)
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
    /// This upstream's OAuth2 token (shared by the clones: one cache per upstream client).
    tokens: Arc<auth::TokenCache>,
}

impl Recorder {
    pub fn new(client: reqwest::Client, target: &'static str, metrics: Arc<Metrics>) -> Self {
        let tokens = Arc::new(auth::TokenCache::new(client.clone()));
        Self { client, target, metrics, tokens }
    }

    /// The same recorder, fetching its OAuth2 tokens with `client` (built without the
    /// upstream's certificate pin: the token endpoint is another server).
    pub fn with_token_client(mut self, client: reqwest::Client) -> Self {
        self.tokens = Arc::new(auth::TokenCache::new(client));
        self
    }

    /// A request to `path` under `upstream`'s base URL, with its timeout and its Basic or static
    /// bearer credentials (OAuth2 tokens are added by [`Recorder::send_authorized`]). Errors only
    /// for a path that cannot join.
    pub fn request(
        &self,
        upstream: &crate::settings::Upstream,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, String> {
        use secrecy::ExposeSecret;
        let url = join_url(&upstream.url, path)?;
        let mut request = self.client.request(method, url).timeout(upstream.timeout);
        match &upstream.auth {
            crate::settings::UpstreamAuth::Basic { username, password } => {
                request = request.basic_auth(username, password.as_ref().map(|p| p.expose_secret()));
            }
            crate::settings::UpstreamAuth::Bearer(token) => request = request.bearer_auth(token.expose_secret()),
            crate::settings::UpstreamAuth::None | crate::settings::UpstreamAuth::OAuth2(_) => {}
        }
        Ok(request)
    }

    /// `method path` under `upstream` with `media_type` as Accept (and as Content-Type of `body`,
    /// sent as JSON), recorded as orchestration `name`. Any HTTP answer is returned; a path that
    /// cannot join or a body that cannot serialise is [`UpstreamError::Request`], a transport
    /// failure one of the others.
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
    ) -> Result<UpstreamResponse, UpstreamError> {
        self.call_with(ctx, upstream, name, method, path, media_type, body, &[]).await
    }

    /// [`Recorder::call`] with extra request `headers` (e.g. `If-Match`).
    #[allow(clippy::too_many_arguments)] // as `call`, plus the headers
    pub async fn call_with(
        &self,
        ctx: &CallContext,
        upstream: &crate::settings::Upstream,
        name: &str,
        method: reqwest::Method,
        path: &str,
        media_type: &str,
        body: Option<&serde_json::Value>,
        headers: &[(&str, String)],
    ) -> Result<UpstreamResponse, UpstreamError> {
        let target = self.target;
        let unbuildable = |reason: String| UpstreamError::Request { target, reason };
        let mut request = self.request(upstream, method, path).map_err(unbuildable)?.header("accept", media_type);
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        if let Some(body) = body {
            let text = serde_json::to_string(body).map_err(|e| unbuildable(e.to_string()))?;
            request = request.header("content-type", media_type).body(text);
        }
        let request = request.build().map_err(|e| unbuildable(error_chain(&e.without_url())))?;
        self.send_authorized(ctx, upstream, name, request).await
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
        // Only an OpenHIM transaction's envelope shows the calls: without one nothing would read
        // the record, and copying each body into it is most of its cost.
        let recorded = ctx.transaction_id.is_some().then(|| record_request(&request));
        let started = Instant::now();
        let result = self.exchange(request).await;
        let elapsed = started.elapsed();
        let outcome = match &result {
            Ok(r) => status_class(r.status),
            Err(e) => error_class(e),
        };
        self.metrics.observe_upstream(self.target, outcome, elapsed);
        match &result {
            Ok(r) => {
                tracing::Span::current().record("status", r.status.as_u16());
                tracing::debug!(elapsed_ms = elapsed.as_millis() as u64, "upstream answered");
            }
            Err(e) => tracing::warn!(error = %e, elapsed_ms = elapsed.as_millis() as u64, "upstream call failed"),
        }
        if let Some(request) = recorded {
            let (response, error) = match &result {
                Ok(r) => (Some(record_response(r)), None),
                Err(e) => (None, Some(OrchestrationError { message: e.to_string() })),
            };
            ctx.record(Orchestration { name: name.to_owned(), group: None, request, response, error });
        }
        result
    }

    async fn exchange(&self, request: reqwest::Request) -> Result<UpstreamResponse, UpstreamError> {
        let target = self.target;
        // Without the URL: it can carry a search value (an identifier) and the server's address,
        // and these messages reach the log and the answer's OperationOutcome.
        let classify = |e: reqwest::Error| {
            let e = e.without_url();
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
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
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
        UpstreamError::Request { .. } => "invalid_request",
        UpstreamError::Timeout { .. } => "timeout",
        UpstreamError::Unreachable { .. } => "unreachable",
        UpstreamError::InvalidResponse { .. } => "invalid_response",
        UpstreamError::Auth { .. } => "auth",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
