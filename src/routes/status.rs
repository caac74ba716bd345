//! `GET /` (status and uptime), `GET /health/live`, `GET /health/ready`, `GET /metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use crate::settings::Upstream;
use crate::state::AppState;
use crate::upstream::{CallContext, Recorder};

/// Status and uptime (OpenHIM route checks and the reference's clients read this).
pub async fn index(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({
        "status": "ok",
        "name": "cht-fhir-mediator",
        "version": env!("CARGO_PKG_VERSION"),
        "urn": &*state.urn,
        "uptime_seconds": state.started.elapsed().as_secs(),
        "openhim": state.openhim.get(),
        "config": state.live.status(),
    }))
}

/// The process is up and serving.
pub async fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "live" }))
}

#[derive(Debug, Serialize)]
struct Check {
    ok: bool,
    /// The URL probed, without credentials.
    url: String,
    /// The authentication scheme used (`none`, `basic`, `bearer`, `oauth2`).
    auth: &'static str,
    detail: String,
}

/// Ready = config loaded and both the FHIR server and CHT answer; 503 otherwise, with the reason.
pub async fn ready(State(state): State<AppState>) -> Response {
    let live = state.live.current();
    let (fhir, cht) = tokio::join!(
        probe(state.fhir.client().recorder(), &live.fhir, "metadata"),
        probe(state.cht.recorder(), &live.cht, "api/info"),
    );
    let ok = fhir.ok && cht.ok;
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": if ok { "ready" } else { "not_ready" },
        "checks": { "fhir": fhir, "cht": cht },
        "config": state.live.status(),
        "openhim": state.openhim.get(),
    });
    (status, Json(body)).into_response()
}

async fn probe(recorder: &Recorder, upstream: &Upstream, path: &str) -> Check {
    let mut shown = upstream.url.clone();
    let _ = shown.set_password(None);
    let _ = shown.set_username("");
    let check = |ok: bool, detail: String| Check { ok, url: shown.to_string(), auth: upstream.auth.scheme(), detail };
    let builder = match recorder.request(upstream, reqwest::Method::GET, path) {
        Ok(b) => b,
        Err(detail) => return check(false, detail),
    };
    // A readiness probe must answer fast even when the upstream is slow.
    let builder = builder.timeout(upstream.timeout.min(std::time::Duration::from_secs(2)));
    let request = match builder.build() {
        Ok(r) => r,
        Err(e) => return check(false, e.to_string()),
    };
    // With the same credentials as every other call (an OAuth2 token from the same cache), so
    // a refused client secret shows here.
    match recorder.send_authorized(&CallContext::background(), upstream, "readiness probe", request).await {
        Ok(r) => check(r.status.is_success(), format!("HTTP {}", r.status.as_u16())),
        Err(e) => check(false, e.to_string()),
    }
}

/// Prometheus text.
pub async fn metrics(State(state): State<AppState>) -> Response {
    // Counted when scraped: the store is shared with the replay command, which runs elsewhere.
    let store = state.dead_letters.clone();
    let counted =
        tokio::task::spawn_blocking(move || (store.pending(), store.checkpoint(crate::backfill::CHECKPOINT))).await;
    if let Ok((pending, checkpoint)) = counted {
        if let Ok(pending) = pending {
            state.metrics.set_dead_letters_pending(pending);
        }
        let seq = checkpoint.ok().flatten().and_then(|s| crate::backfill::seq_number(&s)).map_or(-1, |n| n as i64);
        state.metrics.set_backfill_checkpoint(seq);
    }
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.render())
        .into_response()
}
