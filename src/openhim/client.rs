//! Client for the OpenHIM core API (registration, heartbeat, channel installation).
//!
//! Authentication follows `OPENHIM_AUTH`: `basic` (core 7.1+), `token` (every core; the only one
//! 4.x–7.0 accept) or `auto`, which tries basic and switches to token on 401 and remembers the
//! scheme that worked. The user's salt is cached; token headers are fresh for every request.
//! Calls are judged by status code only: some cores answer registration with plain text.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use super::auth::{TokenHeaders, passhash};
use crate::json::JsonExt;
use crate::metrics::Metrics;
use crate::settings::{AuthScheme, OpenhimSettings};
use crate::upstream::error_chain;

/// Failures talking to the OpenHIM API.
#[derive(Debug, thiserror::Error)]
pub enum OpenhimError {
    #[error("OpenHIM API at {url} could not be reached: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("OpenHIM API did not answer within {0:?}")]
    Timeout(Duration),
    #[error("OpenHIM rejected the credentials of {username} (401)")]
    Unauthorized { username: String },
    #[error("OpenHIM user {username} has no token credentials (404 from /authenticate)")]
    UnknownUser { username: String },
    #[error("OpenHIM answered {status} to {what}: {body}")]
    Status { what: String, status: u16, body: String },
    #[error("mediator is not registered with OpenHIM (404)")]
    NotRegistered,
}

/// What a heartbeat answer says.
#[derive(Debug, Clone, PartialEq)]
pub enum Heartbeat {
    /// Empty or `OK`: nothing changed in the console.
    NoChange,
    /// The mediator's whole config object.
    Config(Map<String, Value>),
}

/// An API answer.
#[derive(Debug)]
pub struct ApiResponse {
    pub status: StatusCode,
    pub body: Bytes,
}

impl ApiResponse {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

#[derive(Default)]
struct AuthState {
    /// Scheme `auto` settled on.
    resolved: Option<AuthScheme>,
    /// Cached `passhash` for the token scheme.
    passhash: Option<String>,
}

/// The OpenHIM API client; cheap to clone.
#[derive(Clone)]
pub struct OpenhimClient {
    http: reqwest::Client,
    base: url::Url,
    username: String,
    password: SecretString,
    scheme: AuthScheme,
    timeout: Duration,
    state: Arc<Mutex<AuthState>>,
    metrics: Arc<Metrics>,
}

/// Percent-encodes one path segment (OpenHIM expects `urn%3Amediator%3A...`).
pub fn encode_segment(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl OpenhimClient {
    pub fn new(settings: &OpenhimSettings, http: reqwest::Client, metrics: Arc<Metrics>) -> Self {
        Self {
            http,
            base: settings.api_url.clone(),
            username: settings.username.clone(),
            password: settings.password.clone().unwrap_or_else(|| SecretString::from(String::new())),
            scheme: settings.auth,
            timeout: settings.timeout,
            state: Arc::default(),
            metrics,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base.as_str().trim_end_matches('/'), path)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AuthState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An authenticated API call; `what` names it in errors.
    pub async fn request(&self, method: Method, path: &str, body: Option<&Value>) -> Result<ApiResponse, OpenhimError> {
        let scheme = match self.scheme {
            AuthScheme::Auto => self.lock().resolved.unwrap_or(AuthScheme::Basic),
            fixed => fixed,
        };
        let response = self.send(scheme, &method, path, body).await?;
        if response.status != StatusCode::UNAUTHORIZED {
            if self.scheme == AuthScheme::Auto {
                self.lock().resolved = Some(scheme);
            }
            return Ok(response);
        }
        // 401: auto falls back from basic to token; token retries once with a fresh salt
        // (the user's password, and so its salt, may have changed).
        match (self.scheme, scheme) {
            (AuthScheme::Auto, AuthScheme::Basic) => {
                tracing::info!("OpenHIM refused basic auth; using the token scheme")
            }
            (_, AuthScheme::Token) => self.lock().passhash = None,
            _ => return Err(OpenhimError::Unauthorized { username: self.username.clone() }),
        }
        let retry = self.send(AuthScheme::Token, &method, path, body).await?;
        if retry.status == StatusCode::UNAUTHORIZED {
            return Err(OpenhimError::Unauthorized { username: self.username.clone() });
        }
        if self.scheme == AuthScheme::Auto {
            self.lock().resolved = Some(AuthScheme::Token);
        }
        Ok(retry)
    }

    async fn send(
        &self,
        scheme: AuthScheme,
        method: &Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<ApiResponse, OpenhimError> {
        let mut request = self.http.request(method.clone(), self.url(path)).timeout(self.timeout);
        request = match scheme {
            AuthScheme::Token => {
                let passhash = self.passhash().await?;
                TokenHeaders::now(&self.username, &passhash).apply(request)
            }
            _ => request.basic_auth(&self.username, Some(self.password.expose_secret())),
        };
        if let Some(body) = body {
            request = request.json(body);
        }
        self.execute(request).await
    }

    async fn execute(&self, request: reqwest::RequestBuilder) -> Result<ApiResponse, OpenhimError> {
        let started = Instant::now();
        let result = async {
            let response = request.send().await?;
            let status = response.status();
            Ok::<_, reqwest::Error>(ApiResponse { status, body: response.bytes().await? })
        }
        .await;
        let outcome = match &result {
            Ok(r) if r.status.is_success() => "2xx",
            Ok(r) if r.status.is_client_error() => "4xx",
            Ok(_) => "5xx",
            Err(e) if e.is_timeout() => "timeout",
            Err(_) => "unreachable",
        };
        self.metrics.observe_upstream("openhim", outcome, started.elapsed());
        result.map_err(|e| {
            if e.is_timeout() {
                OpenhimError::Timeout(self.timeout)
            } else {
                // The base URL is in the message already; the request's own URL adds nothing.
                OpenhimError::Unreachable { url: self.base.to_string(), reason: error_chain(&e.without_url()) }
            }
        })
    }

    /// The cached passhash, fetching the user's salt when there is none.
    async fn passhash(&self) -> Result<String, OpenhimError> {
        if let Some(hash) = self.lock().passhash.clone() {
            return Ok(hash);
        }
        let path = format!("/authenticate/{}", encode_segment(&self.username));
        let response = self.execute(self.http.get(self.url(&path)).timeout(self.timeout)).await?;
        match response.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Err(OpenhimError::UnknownUser { username: self.username.clone() }),
            status => return Err(status_error("GET /authenticate", status, &response.body)),
        }
        let salt = response
            .json()
            .and_then(|v| v.get("salt").and_then(Value::as_str).map(str::to_owned))
            .ok_or_else(|| status_error("GET /authenticate (no salt in answer)", response.status, &response.body))?;
        let hash = passhash(&salt, self.password.expose_secret());
        self.lock().passhash = Some(hash.clone());
        Ok(hash)
    }

    /// `POST /mediators`: registers (or, with a higher version, updates) the mediator.
    pub async fn register(&self, document: &Value) -> Result<(), OpenhimError> {
        let response = self.request(Method::POST, "/mediators", Some(document)).await?;
        expect_success("POST /mediators", response)
    }

    /// `POST /mediators/{urn}/heartbeat`.
    pub async fn heartbeat(&self, urn: &str, uptime: Duration, want_config: bool) -> Result<Heartbeat, OpenhimError> {
        let mut body = serde_json::json!({ "uptime": uptime.as_secs_f64() });
        if want_config {
            body.set("config", Value::Bool(true));
        }
        let path = format!("/mediators/{}/heartbeat", encode_segment(urn));
        let response = self.request(Method::POST, &path, Some(&body)).await?;
        if response.status == StatusCode::NOT_FOUND {
            return Err(OpenhimError::NotRegistered);
        }
        if !response.status.is_success() {
            return Err(status_error("POST heartbeat", response.status, &response.body));
        }
        Ok(match response.json() {
            Some(Value::Object(config)) => Heartbeat::Config(config),
            _ => Heartbeat::NoChange,
        })
    }

    /// `POST /mediators/{urn}/channels`: installs default channels (`names` empty = all).
    pub async fn install_channels(&self, urn: &str, names: &[String]) -> Result<(), OpenhimError> {
        let path = format!("/mediators/{}/channels", encode_segment(urn));
        let response = self.request(Method::POST, &path, Some(&serde_json::json!(names))).await?;
        expect_success("POST /mediators/{urn}/channels", response)
    }

    /// The channels the core has, by name: `(id, soft-deleted?)`. A channel that carried
    /// transactions is only marked `deleted`, and its name stays taken (a unique index).
    pub async fn channels(&self) -> Result<Vec<(String, String, bool)>, OpenhimError> {
        let channels = self.get_json("/channels").await?;
        Ok(channels
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| {
                let (name, id) = (c.at("name").as_str()?, c.at("_id").as_str()?);
                Some((name.to_owned(), id.to_owned(), c.at("status") == "deleted"))
            })
            .collect())
    }

    /// `PUT /channels/{id}`: a soft-deleted channel back to `config`, enabled.
    pub async fn restore_channel(&self, id: &str, config: &Value) -> Result<(), OpenhimError> {
        let mut body = config.clone();
        body.set("status", Value::String("enabled".into()));
        let path = format!("/channels/{}", encode_segment(id));
        let response = self.request(Method::PUT, &path, Some(&body)).await?;
        expect_success("PUT /channels/{id}", response)
    }

    /// An authenticated GET answering JSON (diagnostics, tests).
    pub async fn get_json(&self, path: &str) -> Result<Value, OpenhimError> {
        let response = self.request(Method::GET, path, None).await?;
        if !response.status.is_success() {
            return Err(status_error(&format!("GET {path}"), response.status, &response.body));
        }
        response.json().ok_or_else(|| status_error(&format!("GET {path} (not JSON)"), response.status, &response.body))
    }
}

fn expect_success(what: &str, response: ApiResponse) -> Result<(), OpenhimError> {
    if response.status.is_success() { Ok(()) } else { Err(status_error(what, response.status, &response.body)) }
}

fn status_error(what: &str, status: StatusCode, body: &[u8]) -> OpenhimError {
    // OpenHIM error bodies are short validation messages; cap them anyway.
    let body: String = String::from_utf8_lossy(body).chars().take(500).collect();
    OpenhimError::Status { what: what.to_owned(), status: status.as_u16(), body }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urn_is_percent_encoded_in_paths() {
        assert_eq!(encode_segment("urn:mediator:cht-fhir-mediator"), "urn%3Amediator%3Acht-fhir-mediator");
        assert_eq!(encode_segment("root@openhim.org"), "root%40openhim.org");
    }
}
