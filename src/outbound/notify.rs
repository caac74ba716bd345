//! Tells the requester that its follow-up is done: when a Task is closed and its requester
//! Organization has an Endpoint, the Endpoint is called. This runs in the background with
//! retries: the CHT side never waits for, or fails because of, the requester's system. Failures
//! are logged and counted (`upstream_requests_total{target="callback"}`).
//!
//! What is sent depends on the Endpoint's `payloadType`:
//! - `Encounter` (code or text): `PUT {address}/Encounter/{id}` with the outcome Encounter — what
//!   the reference mediator's requesters get (their FHIR server's Subscription delivered it so);
//! - anything else: `POST {address}` with the closed Task (this mediator's own callback).
//!
//! Each `Endpoint.header` (`Name: value`) is sent as a header (values never logged).

use std::time::Duration;

use serde_json::Value;

use crate::error::FHIR_JSON;
use crate::json::JsonExt;
use crate::state::AppState;
use crate::upstream::CallContext;

/// Attempts per callback, waiting 1 s, 2 s, 4 s … between them.
const ATTEMPTS: u32 = 4;

/// Rounds of a whole notification (FHIR reads + its call attempts) before it is given up, 2 s,
/// 4 s, 8 s, 16 s apart: a HAPI just restarted and warming up answered the reads too slowly for
/// three rounds in the full test run. Still held in memory only (durable delivery: issue 13).
const READ_ROUNDS: u32 = 5;

/// The Tasks this process has started notifying the requester of, so that a redelivery of the
/// closing report does not call the requester twice. Bounded: past `CAPACITY` it starts afresh
/// (a requester may then hear of an old Task twice; callbacks are at-least-once).
#[derive(Default, Clone)]
pub struct Started(std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>);

impl Started {
    const CAPACITY: usize = 100_000;

    /// Whether `task_id` is new here (and now recorded).
    fn first(&self, task_id: &str) -> bool {
        let mut set = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if set.len() >= Self::CAPACITY {
            set.clear();
        }
        set.insert(task_id.to_owned())
    }
}

/// Starts notifying the requester of closed `task` in the background, unless this process has
/// already. Called on every delivery of the report that closed it, not only the one that made the
/// change: a write the FHIR server committed while its answer timed out (a server just restarted)
/// leaves the Task closed, and only the redelivery is answered.
pub fn spawn(state: AppState, task: Value) {
    let id = task.at("id").as_str().unwrap_or_default().to_owned();
    if !state.notifications.first(&id) {
        return;
    }
    tokio::spawn(async move {
        // The reads of the requester's Organization and Endpoint can fail too (a FHIR server
        // just restarted answers slowly): the whole notification is tried again, not only its call.
        let mut wait = Duration::from_secs(2);
        for round in 1..=READ_ROUNDS {
            match notify(&state, &task).await {
                Ok(Some(address)) => tracing::info!(task = %id, %address, "requester notified"),
                Ok(None) => tracing::debug!(task = %id, "requester has no Endpoint; nothing to notify"),
                Err(e) if round < READ_ROUNDS => {
                    tracing::warn!(task = %id, round, error = %e, "requester not notified yet; trying again");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    continue;
                }
                Err(e) => tracing::warn!(task = %id, error = %e, "could not notify the requester"),
            }
            break;
        }
    });
}

/// Whether the Endpoint asks for the outcome Encounter (the reference mediator's callback).
fn wants_encounter(endpoint: &Value) -> bool {
    endpoint.at("payloadType").as_array().into_iter().flatten().any(|p| {
        p.at("text") == "Encounter"
            || p.at("coding").as_array().into_iter().flatten().any(|c| c.at("code") == "Encounter")
    })
}

/// Finds the requester's Endpoint and calls it; `None` when there is no Endpoint to call.
pub async fn notify(state: &AppState, task: &Value) -> Result<Option<String>, String> {
    let ctx = CallContext::background();
    let live = state.live.current();
    let read = |kind: &'static str, reference: Option<&str>| {
        let id = reference.and_then(|r| r.strip_prefix(&format!("{kind}/"))).map(str::to_owned);
        let (ctx, live) = (ctx.clone(), live.clone());
        async move {
            match id {
                None => Ok(None),
                Some(id) => state.fhir.client().read(&ctx, &live.fhir, kind, &id).await.map_err(|e| e.to_string()),
            }
        }
    };
    let Some(organization) = read("Organization", task.at("requester").at("reference").as_str()).await? else {
        return Ok(None);
    };
    let Some(endpoint) = read("Endpoint", organization.at("endpoint").nth(0).at("reference").as_str()).await? else {
        return Ok(None);
    };
    let Some(address) = endpoint.at("address").as_str().filter(|_| endpoint.at("status") != "off") else {
        return Ok(None);
    };
    let (method, url, body) = if wants_encounter(&endpoint) {
        let output = task.at("output").nth(0).at("valueReference").at("reference").as_str();
        let Some(encounter) = read("Encounter", output).await? else {
            return Err("the closed Task names no Encounter the FHIR server has".into());
        };
        let id = encounter.at("id").as_str().unwrap_or_default().to_owned();
        let url = format!("{}/Encounter/{id}", address.trim_end_matches('/'));
        (reqwest::Method::PUT, url, encounter.to_string())
    } else {
        (reqwest::Method::POST, address.to_owned(), task.to_string())
    };
    let headers: Vec<(String, String)> = endpoint
        .at("header")
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|h| h.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let mut wait = Duration::from_secs(1);
    for attempt in 1..=ATTEMPTS {
        let mut request = state
            .callback
            .client
            .request(method.clone(), &url)
            .header("content-type", FHIR_JSON)
            .timeout(live.fhir.timeout)
            .body(body.clone());
        for (name, value) in &headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let outcome = match request.build() {
            Ok(request) => state.callback.send(&ctx, "requester callback", request).await.map_err(|e| e.to_string()),
            Err(_) => return Err("Endpoint.address or Endpoint.header cannot make a request".into()),
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
