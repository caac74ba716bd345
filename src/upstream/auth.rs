//! Tokens for upstreams behind OAuth2 (client credentials, RFC 6749 §4.4): one [`TokenCache`]
//! per upstream client, refreshed before the token expires, one fetch at a time, and one
//! refresh-and-retry when the upstream answers 401 anyway (a token revoked early, a server
//! restarted with new keys). Tokens and secrets never reach a log line, an orchestration or an
//! answer: token calls are not recorded as orchestrations (their form may carry the client
//! secret, their answer carries the token), and errors quote only the endpoint's `error` fields.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::{CallContext, Recorder, UpstreamError, UpstreamResponse, error_chain};
use crate::json::JsonExt;
use crate::settings::{ClientAuth, OAuth2Client, Upstream, UpstreamAuth};

/// Lifetime assumed when the token endpoint gives no `expires_in` (RFC 6749 makes it optional):
/// short, and a 401 refreshes it sooner anyway.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

/// How long before expiry a token is replaced: 60 s, or a fifth of its lifetime when that is
/// shorter (a 2-minute token is renewed at 80%, not after a second).
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// A token as the cache keeps it.
struct Cached {
    token: SecretString,
    /// Digest of the settings it was issued for ([`OAuth2Client::fingerprint`]).
    settings: [u8; 32],
    refresh_at: Instant,
    expires_at: Instant,
    /// Increases with every token fetched: a 401 for token N refreshes only if N is still current.
    generation: u64,
}

impl Cached {
    fn issued(&self) -> Issued {
        let remaining = self.expires_at.saturating_duration_since(Instant::now());
        Issued { token: self.token.clone(), generation: self.generation, remaining }
    }
}

/// A token handed out, with what [`TokenCache::renew`] needs to tell whether it is still current.
pub struct Issued {
    pub token: SecretString,
    pub generation: u64,
    /// How long it stays valid from now (for `check`).
    pub remaining: Duration,
}

/// The token of one upstream client. The async mutex is held while a token is fetched, so
/// concurrent calls wait for that one fetch instead of each asking the endpoint (no herd); the
/// ones that waited for a fetch that failed get its error instead of asking again.
pub struct TokenCache {
    http: reqwest::Client,
    /// Fetches finished. Read before waiting for the lock: a failure numbered above what a call
    /// read ended while it waited (the fetch was in flight when it arrived), so it shares that
    /// failure; a failure it could have read had ended before it came, so it asks again.
    finished: AtomicU64,
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    cached: Option<Cached>,
    generation: u64,
    /// The last fetch's failure: its number in `finished`, the settings it was for, the error.
    failed: Option<(u64, [u8; 32], UpstreamError)>,
}

impl TokenCache {
    /// A cache fetching tokens with `http` (the token endpoint is another host than the upstream:
    /// no pin of the upstream's applies to it).
    pub fn new(http: reqwest::Client) -> Self {
        Self { http, finished: AtomicU64::new(0), state: tokio::sync::Mutex::default() }
    }

    /// The current token for `client`, fetched when there is none, it is due for refresh, or the
    /// settings changed.
    pub async fn token(&self, client: &OAuth2Client, timeout: Duration) -> Result<Issued, UpstreamError> {
        self.acquire(client, timeout, |cached| Instant::now() < cached.refresh_at).await
    }

    /// A new token after the upstream refused token `generation` — unless another call already
    /// replaced it, in which case that newer token is used (one renewal per wave of refusals).
    pub async fn renew(
        &self,
        client: &OAuth2Client,
        timeout: Duration,
        generation: u64,
    ) -> Result<Issued, UpstreamError> {
        self.acquire(client, timeout, |cached| cached.generation != generation).await
    }

    /// The cached token if it is for `client`'s settings and `usable`, else a fetched one.
    async fn acquire(
        &self,
        client: &OAuth2Client,
        timeout: Duration,
        usable: impl Fn(&Cached) -> bool,
    ) -> Result<Issued, UpstreamError> {
        let seen = self.finished.load(Ordering::Acquire);
        let mut state = self.state.lock().await;
        let settings = client.fingerprint();
        if let Some(cached) = &state.cached
            && cached.settings == settings
            && usable(cached)
        {
            return Ok(cached.issued());
        }
        if let Some((attempt, for_settings, error)) = &state.failed
            && *attempt > seen
            && *for_settings == settings
        {
            return Err(error.clone());
        }
        // A failed fetch leaves no token behind: the next call asks again.
        state.cached = None;
        let asked = Instant::now();
        let fetched = self.fetch(client, timeout).await;
        // Counted while the lock is still held, so every call waiting now has read less.
        let attempt = self.finished.fetch_add(1, Ordering::AcqRel) + 1;
        let (token, lifetime) = match fetched {
            Ok(fetched) => fetched,
            Err(e) => {
                tracing::warn!(error = %e, token_url = %client.token_url, "no FHIR access token could be obtained");
                state.failed = Some((attempt, settings, e.clone()));
                return Err(e);
            }
        };
        state.failed = None;
        state.generation += 1;
        // From when it was asked for: the endpoint's clock started before the answer arrived.
        let cached = Cached {
            token,
            settings,
            refresh_at: asked + refresh_after(lifetime),
            expires_at: asked + lifetime,
            generation: state.generation,
        };
        tracing::info!(lifetime_s = lifetime.as_secs(), generation = state.generation, "FHIR access token obtained");
        let issued = cached.issued();
        state.cached = Some(cached);
        Ok(issued)
    }

    /// One client credentials request.
    async fn fetch(&self, client: &OAuth2Client, timeout: Duration) -> Result<(SecretString, Duration), UpstreamError> {
        const TARGET: &str = "fhir token endpoint";
        let failed = |reason: String| UpstreamError::Auth { target: TARGET, reason };
        let shown = shown_url(&client.token_url);
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = &client.scope {
            form.push(("scope", scope));
        }
        let mut request =
            self.http.post(client.token_url.clone()).timeout(timeout).header("accept", "application/json");
        match client.client_auth {
            // RFC 6749 §2.3.1: id and secret are form-encoded before they go into Basic.
            ClientAuth::Basic => {
                let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                let secret = encode(client.client_secret.expose_secret());
                request = request.basic_auth(encode(&client.client_id), Some(secret));
            }
            ClientAuth::Post => {
                form.push(("client_id", &client.client_id));
                form.push(("client_secret", client.client_secret.expose_secret()));
            }
        }
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let request = request.header("content-type", "application/x-www-form-urlencoded").body(body);
        let response = request.send().await.map_err(|e| {
            let e = e.without_url();
            if e.is_timeout() {
                UpstreamError::Timeout { target: TARGET }
            } else if e.is_connect() {
                UpstreamError::Unreachable { target: TARGET, reason: error_chain(&e) }
            } else {
                failed(error_chain(&e))
            }
        })?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            // `error` and `error_description` are the endpoint's words for the client; the secret
            // is scrubbed in case an endpoint echoes what it was sent.
            let said = [body.at("error").as_str(), body.at("error_description").as_str()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": ");
            let said = said.replace(client.client_secret.expose_secret(), "***");
            let said = said.chars().take(300).collect::<String>();
            return Err(failed(format!("{shown} answered {} {said}", status.as_u16())));
        }
        let Some(token) = body.at("access_token").as_str().filter(|t| !t.is_empty()) else {
            return Err(failed(format!("{shown} answered {} without an access_token", status.as_u16())));
        };
        if let Some(kind) = body.at("token_type").as_str()
            && !kind.eq_ignore_ascii_case("bearer")
        {
            return Err(failed(format!("{shown} issued a {kind:?} token; only bearer tokens are supported")));
        }
        let lifetime = match body.at("expires_in") {
            // Clamped: from_secs_f64 panics past its range, and a year is plenty.
            Value::Number(n) => n.as_f64().map(|s| Duration::from_secs_f64(s.clamp(0.0, 31_536_000.0))),
            Value::String(s) => s.trim().parse::<u64>().ok().map(Duration::from_secs),
            _ => None,
        };
        Ok((SecretString::from(token.to_owned()), lifetime.unwrap_or(DEFAULT_LIFETIME)))
    }
}

/// The token endpoint as reasons name it: without userinfo, query or fragment, where a
/// deployment might have put a credential.
fn shown_url(url: &url::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_password(None);
    let _ = shown.set_username("");
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

/// How long a token of `lifetime` is used before it is replaced (see [`REFRESH_MARGIN`]).
fn refresh_after(lifetime: Duration) -> Duration {
    lifetime.saturating_sub(REFRESH_MARGIN.min(lifetime / 5))
}

/// `Authorization: Bearer <token>`, marked sensitive (kept out of reqwest's and hyper's debug output).
fn bearer_header(token: &SecretString) -> Result<HeaderValue, UpstreamError> {
    let mut value =
        HeaderValue::from_str(&format!("Bearer {}", token.expose_secret())).map_err(|_| UpstreamError::Auth {
            target: "fhir token endpoint",
            reason: "it issued a token that is not a header value".into(),
        })?;
    value.set_sensitive(true);
    Ok(value)
}

impl Recorder {
    /// [`Recorder::send`] with `upstream`'s token when it uses OAuth2 (Basic and static bearer
    /// credentials are already on the request, see [`Recorder::request`]). A 401 answer to a
    /// token gets one new token and one retry; a second 401 is returned as it is.
    pub async fn send_authorized(
        &self,
        ctx: &CallContext,
        upstream: &Upstream,
        name: &str,
        mut request: reqwest::Request,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let UpstreamAuth::OAuth2(client) = &upstream.auth else {
            return self.send(ctx, name, request).await;
        };
        let issued = self.tokens.token(client, upstream.timeout).await?;
        request.headers_mut().insert(AUTHORIZATION, bearer_header(&issued.token)?);
        // Bodies here are bytes (JSON), so the copy always succeeds; without one, no retry.
        let retry = request.try_clone();
        let response = self.send(ctx, name, request).await?;
        let (StatusCode::UNAUTHORIZED, Some(mut retry)) = (response.status, retry) else {
            return Ok(response);
        };
        tracing::info!(generation = issued.generation, "the FHIR server refused the access token: renewing it once");
        let renewed = self.tokens.renew(client, upstream.timeout, issued.generation).await?;
        retry.headers_mut().insert(AUTHORIZATION, bearer_header(&renewed.token)?);
        self.send(ctx, name, retry).await
    }

    /// Whether a token can be obtained for `upstream` now (for `check`): the scheme, and for
    /// OAuth2 the token's lifetime. Never the token.
    pub async fn describe_auth(&self, upstream: &Upstream) -> Result<String, UpstreamError> {
        match &upstream.auth {
            UpstreamAuth::OAuth2(client) => {
                let issued = self.tokens.token(client, upstream.timeout).await?;
                Ok(format!(
                    "oauth2 ({}, client {}): token obtained from {} (valid {} s more)",
                    client.client_auth.name(),
                    client.client_id,
                    client.token_url,
                    issued.remaining.as_secs()
                ))
            }
            UpstreamAuth::Basic { username, .. } => Ok(format!("basic (user {username})")),
            other => Ok(other.scheme().to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_endpoint_is_named_without_what_could_be_a_credential() {
        let url = "https://user:pw@idp.example.org/realms/x/token?key=k#f".parse().unwrap();
        assert_eq!(shown_url(&url), "https://idp.example.org/realms/x/token");
    }

    #[test]
    fn tokens_are_replaced_a_minute_early_or_at_four_fifths_of_a_short_life() {
        let s = Duration::from_secs;
        assert_eq!(refresh_after(s(3600)), s(3540));
        assert_eq!(refresh_after(s(120)), s(96));
        assert_eq!(refresh_after(s(2)), Duration::from_millis(1600));
        assert_eq!(refresh_after(s(0)), s(0));
    }
}
