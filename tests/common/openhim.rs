//! OpenHIM admin helpers for real-core tests: an API client, a clean slate for this mediator,
//! channel clients, and finding stored transactions.

use std::sync::Arc;
use std::time::Duration;

use cht_fhir_mediator::metrics::Metrics;
use cht_fhir_mediator::openhim::client::{OpenhimClient, encode_segment};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha512};

use super::{Stack, settings};

pub const URN: &str = "urn:mediator:cht-fhir-mediator";
pub const CHANNELS: [&str; 3] = ["CHT inbound", "FHIR requests to CHT", "Reference mediator paths"];

/// The root user's API client for the core at `api_url` (token auth, verified TLS).
pub fn admin(stack: &Stack, api_url: &str) -> OpenhimClient {
    admin_trusting(api_url, &stack.ca_bundle)
}

/// The root user's API client for a core whose certificate is (exactly) `cert_file`.
pub fn admin_trusting(api_url: &str, cert_file: &str) -> OpenhimClient {
    let settings = settings(&[
        ("OPENHIM_API_URL", api_url),
        ("OPENHIM_PASSWORD", "openhim-password"),
        ("OPENHIM_AUTH", "token"),
        ("TLS_CA_BUNDLE", cert_file),
    ]);
    let http =
        cht_fhir_mediator::upstream::build_client(&settings.tls.openhim_trust().unwrap(), Duration::from_secs(5))
            .unwrap();
    OpenhimClient::new(&settings.openhim, http, Arc::new(Metrics::new()))
}

/// Removes this mediator and its live channels so a test starts clean. (Channels that carried
/// transactions are only marked deleted by the core.)
pub async fn reset(admin: &OpenhimClient) {
    let path = format!("/mediators/{}", encode_segment(URN));
    admin.request(Method::DELETE, &path, None).await.unwrap();
    for channel in live_channels(admin).await {
        if CHANNELS.contains(&channel["name"].as_str().unwrap_or_default()) {
            let id = channel["_id"].as_str().unwrap();
            admin.request(Method::DELETE, &format!("/channels/{id}"), None).await.unwrap();
        }
    }
}

/// Channels not marked deleted.
pub async fn live_channels(admin: &OpenhimClient) -> Vec<Value> {
    let all = admin.get_json("/channels").await.unwrap();
    all.as_array().unwrap().iter().filter(|c| c["status"] != "deleted").cloned().collect()
}

pub async fn mediator_record(admin: &OpenhimClient) -> Option<Value> {
    let all = admin.get_json("/mediators").await.ok()?;
    all.as_array()?.iter().find(|m| m["urn"] == URN).cloned()
}

/// Creates (once) an OpenHIM client with `role`; the client hash is sha512(password + salt).
pub async fn ensure_client(admin: &OpenhimClient, id: &str, role: &str, password: &str) {
    let salt = "4d1c0f2e";
    let hash = hex::encode(Sha512::digest(format!("{password}{salt}").as_bytes()));
    let body = json!({"clientID": id, "name": id, "roles": [role], "passwordAlgorithm": "sha512", "passwordSalt": salt, "passwordHash": hash});
    let existing = admin.get_json("/clients").await.unwrap();
    if !existing.as_array().unwrap().iter().any(|c| c["clientID"] == id) {
        let r = admin.request(Method::POST, "/clients", Some(&body)).await.unwrap();
        assert!(r.status.is_success(), "create client {id}: {}", r.status);
    }
}

/// The newest settled transaction on `path` whose request body contains `marker`.
pub async fn transaction_for(admin: &OpenhimClient, path: &str, marker: &str) -> Option<Value> {
    transactions_for(admin, path, marker).await.into_iter().next()
}

/// All settled transactions on `path` whose request body contains `marker`, newest first (of the
/// newest 500 on that path). OpenHIM stores a transaction as `Processing` when the request
/// arrives and sets its status once the mediator answers; a test reading in between saw
/// `Processing` where it asserted `Successful`, so unsettled ones are left out.
pub async fn transactions_for(admin: &OpenhimClient, path: &str, marker: &str) -> Vec<Value> {
    // Pages of a few: a listing OpenHIM cannot answer in one MongoDB reply fails with a 500 (seen
    // when transactions were 5.7 MB each, before orchestration bodies were capped).
    const PAGE: usize = 10;
    let filters = encode_segment(&json!({"request.path": path}).to_string());
    let mut found = Vec::new();
    for page in 0..50 {
        let query =
            format!("/transactions?filterPage={page}&filterLimit={PAGE}&filterRepresentation=full&filters={filters}");
        let Ok(list) = admin.get_json(&query).await else { return Vec::new() };
        let list = list.as_array().cloned().unwrap_or_default();
        let last = list.len() < PAGE;
        found.extend(
            list.into_iter()
                .filter(|t| t["request"]["path"] == path && t["status"] != "Processing" && mentions(t, marker)),
        );
        if last {
            break;
        }
    }
    found
}

/// Whether a transaction's request body, or the request of one of its orchestrations, contains
/// `marker`. (On the stack, the stored request of `/mediator/cht/patient` transactions lacks its
/// body and headers once the mediator has answered — OpenHIM's code does not touch the request
/// after storing it, and a plain update on the MongoDB stand-in keeps it, so the cause is not
/// found. The orchestrations still show what was written.)
fn mentions(transaction: &Value, marker: &str) -> bool {
    let has = |v: &Value| v.as_str().is_some_and(|b| b.contains(marker));
    has(&transaction["request"]["body"])
        || transaction["orchestrations"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|o| has(&o["request"]["body"]) || has(&o["request"]["path"]))
}

/// The mediator's own orchestrations of a transaction (the core adds one named after the route).
pub fn mediator_orchestrations(transaction: &Value) -> Vec<Value> {
    transaction["orchestrations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| o["name"] != "CHT FHIR Mediator")
        .cloned()
        .collect()
}
