//! Tells the requester that its follow-up is done: when a Task is closed and its requester
//! Organization has an Endpoint, the finished Task is POSTed to the Endpoint's `address`. This
//! runs in the background with retries: the CHT side never waits for, or fails because of, the
//! requester's system. Failures are logged and counted (`upstream_requests_total{target="callback"}`).

use std::time::Duration;

use serde_json::Value;

use crate::error::FHIR_JSON;
use crate::state::AppState;
use crate::upstream::CallContext;

/// Attempts per callback, waiting 1 s, 2 s, 4 s … between them.
const ATTEMPTS: u32 = 4;

/// Starts notifying the requester of `task` in the background.
pub fn spawn(state: AppState, task: Value) {
    tokio::spawn(async move {
        let id = task["id"].as_str().unwrap_or_default().to_owned();
        match notify(&state, &task).await {
            Ok(Some(address)) => tracing::info!(task = %id, %address, "requester notified"),
            Ok(None) => tracing::debug!(task = %id, "requester has no Endpoint; nothing to notify"),
            Err(e) => tracing::warn!(task = %id, error = %e, "could not notify the requester"),
        }
    });
}

/// Finds the requester's Endpoint and POSTs the Task to it; `None` when there is no Endpoint.
pub async fn notify(state: &AppState, task: &Value) -> Result<Option<String>, String> {
    let ctx = CallContext::background();
    let live = state.live.current();
    let read = |kind: &'static str, reference: Option<&str>| {
        let id = reference.and_then(|r| r.strip_prefix(&format!("{kind}/"))).map(str::to_owned);
        let (ctx, live) = (ctx.clone(), live.clone());
        async move {
            match id {
                None => Ok(None),
                Some(id) => state.fhir.read(&ctx, &live.fhir, kind, &id).await.map_err(|e| e.to_string()),
            }
        }
    };
    let Some(organization) = read("Organization", task["requester"]["reference"].as_str()).await? else {
        return Ok(None);
    };
    let Some(endpoint) = read("Endpoint", organization["endpoint"][0]["reference"].as_str()).await? else {
        return Ok(None);
    };
    let Some(address) = endpoint["address"].as_str().filter(|_| endpoint["status"] != "off") else { return Ok(None) };
    let body = task.to_string();
    let mut wait = Duration::from_secs(1);
    for attempt in 1..=ATTEMPTS {
        let request = state
            .callback
            .client
            .post(address)
            .header("content-type", FHIR_JSON)
            .timeout(live.fhir.timeout)
            .body(body.clone());
        let outcome = match request.build() {
            Ok(request) => state.callback.send(&ctx, "requester callback", request).await.map_err(|e| e.to_string()),
            Err(e) => return Err(format!("Endpoint.address {address:?}: {e}")),
        };
        match outcome {
            Ok(r) if r.status.is_success() => return Ok(Some(address.to_owned())),
            Ok(r) => tracing::warn!(attempt, status = r.status.as_u16(), "requester callback refused"),
            Err(e) => tracing::warn!(attempt, error = %e, "requester callback failed"),
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    Err(format!("{ATTEMPTS} attempts to {address} failed"))
}
