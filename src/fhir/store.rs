//! The FHIR server, by intent — the one place that knows how a given server wants to be written
//! to. The inbound and outbound sides say what they want ("upsert this Patient by its CHT
//! identity", "write this report's resources atomically", "find the Task this key names"); the
//! store picks the write mode per resource type (`FHIR_WRITE_MODE`, or `auto` from the server's
//! CapabilityStatement, cached per FHIR base URL), retries concurrency conflicts a bounded number
//! of times, repairs duplicates a conditional write runs into, and never reports a write done
//! unless the server says every part of it is (see [`super::transaction`]).
//!
//! Every resource the mediator writes carries the identifier it is known by ([`Key`]): its CHT
//! document id, or [`KEY_SYSTEM`] and its deterministic id. With client ids the deterministic id
//! is the resource id; with server-assigned ids the key finds it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

pub use super::capabilities::WriteMode;
use super::capabilities::{Capabilities, WriteSetting};
pub use super::client::{Answer, Read};
use super::client::{FhirClient, FhirError};
use super::transaction::{self, Key, Write, transient_status};
use crate::json::JsonExt;
use crate::settings::LiveConfig;
use crate::upstream::CallContext;

/// Identifier system of the key of a resource the mediator derives (an Observation of one
/// answer, a follow-up Task, a reference Encounter): its value is the deterministic id.
pub const KEY_SYSTEM: &str = "http://cht-fhir-mediator.org/fhir/identifier/key";

/// Attempts of a write that meets a concurrency conflict (409, 412) before it is reported.
const ATTEMPTS: u32 = 4;

/// The capabilities of the server at a base URL, read once.
type CapabilitiesCache = Arc<Mutex<Option<(url::Url, Arc<Capabilities>)>>>;

/// The FHIR server the live config points at; cheap to clone.
#[derive(Clone)]
pub struct FhirStore {
    client: FhirClient,
    capabilities: CapabilitiesCache,
    /// Conditional writes of one key, one at a time in this process: a conditional update is
    /// not race-free (two copies can both create). Across replicas, [`FhirStore::repair`].
    keys: crate::locks::KeyedLocks,
}

impl FhirStore {
    pub fn new(client: FhirClient) -> Self {
        Self { client, capabilities: Arc::default(), keys: Default::default() }
    }

    /// Takes the locks of the keys of the conditional writes among `keys`, in one order (no two
    /// requests wait on each other).
    async fn lock_conditional<'k>(
        &self,
        keys: impl Iterator<Item = (&'k str, &'k Key)>,
        modes: &HashMap<String, WriteMode>,
    ) -> Vec<tokio::sync::OwnedMutexGuard<()>> {
        let mut names: Vec<String> = keys
            .filter(|(kind, _)| modes.get(*kind) == Some(&WriteMode::Conditional))
            .map(|(kind, key)| format!("{kind}\u{1f}{}", key.token()))
            .collect();
        names.sort();
        names.dedup();
        let mut guards = Vec::with_capacity(names.len());
        for name in names {
            guards.push(self.keys.lock(&name).await);
        }
        guards
    }

    /// The plain client (reads, searches, probes).
    pub fn client(&self) -> &FhirClient {
        &self.client
    }

    /// How `kind` is written to the server the live config names.
    pub async fn mode(&self, ctx: &CallContext, live: &LiveConfig, kind: &str) -> Result<WriteMode, FhirError> {
        match live.fhir_write_mode {
            WriteSetting::ClientIds => Ok(WriteMode::ClientIds),
            WriteSetting::Conditional => Ok(WriteMode::Conditional),
            WriteSetting::Auto => Ok(self.capabilities(ctx, live).await?.mode(kind)),
        }
    }

    /// Whether several reads can go in one round trip: the server declares `batch` (a server
    /// whose CapabilityStatement cannot be read is taken not to).
    pub async fn runs_batches(&self, ctx: &CallContext, live: &LiveConfig) -> Result<bool, FhirError> {
        Ok(self.capabilities(ctx, live).await?.batch)
    }

    /// Several reads in ONE round trip (only where [`FhirStore::runs_batches`]). Answers in order.
    pub async fn read_batch(
        &self,
        ctx: &CallContext,
        live: &LiveConfig,
        reads: &[Read<'_>],
    ) -> Result<Vec<Answer>, FhirError> {
        self.client.batch(ctx, &live.fhir, reads).await
    }

    async fn capabilities(&self, ctx: &CallContext, live: &LiveConfig) -> Result<Arc<Capabilities>, FhirError> {
        let cached = self.capabilities.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some((url, caps)) = cached.filter(|(url, _)| *url == live.fhir.url) {
            let _ = url;
            return Ok(caps);
        }
        let caps = match self.client.metadata(ctx, &live.fhir).await {
            Ok(statement) => {
                let caps = Capabilities::from_statement(&statement);
                tracing::info!(fhir = %live.fhir.url, patient = ?caps.mode("Patient"), "FHIR write modes read from the CapabilityStatement");
                Arc::new(caps)
            }
            // No CapabilityStatement to read (a server without `/metadata`): client ids, and the
            // server's own refusals will say if that is wrong. Refused credentials (401/403) are
            // transient instead: the writes would be refused too.
            Err(FhirError::Rejected { status, .. }) => {
                tracing::warn!(
                    status,
                    "the FHIR server's CapabilityStatement cannot be read; writing with client ids (set FHIR_WRITE_MODE)"
                );
                Arc::new(Capabilities::from_statement(&Value::Null))
            }
            // Down or broken: nothing is cached, the write fails transiently and is retried.
            Err(e) => return Err(e),
        };
        *self.capabilities.lock().unwrap_or_else(|p| p.into_inner()) = Some((live.fhir.url.clone(), caps.clone()));
        Ok(caps)
    }

    /// The resource of `kind` known by `key` (with client ids, tried by `id` first). Duplicates
    /// (a conditional create raced) give the oldest.
    pub async fn find(
        &self,
        ctx: &CallContext,
        live: &LiveConfig,
        kind: &str,
        key: &Key,
        id: Option<&str>,
    ) -> Result<Option<Value>, FhirError> {
        if let Some(id) = id.filter(|id| super::client::is_valid_id(id))
            && self.mode(ctx, live, kind).await? == WriteMode::ClientIds
            && let Some(found) = self.client.read(ctx, &live.fhir, kind, id).await?
        {
            return Ok(Some(found));
        }
        let found = self.client.search(ctx, &live.fhir, kind, &[("identifier", &key.token())]).await?;
        Ok(oldest(found))
    }

    /// The server id of the resource of `kind` known by `key`, without a request when ids are the
    /// mediator's (`id`): then it is `id` whether or not the server has it yet.
    pub async fn server_id(
        &self,
        ctx: &CallContext,
        live: &LiveConfig,
        kind: &str,
        key: &Key,
        id: &str,
    ) -> Result<Option<String>, FhirError> {
        if self.mode(ctx, live, kind).await? == WriteMode::ClientIds {
            return Ok(Some(id.to_owned()));
        }
        let found = self.client.search(ctx, &live.fhir, kind, &[("identifier", &key.token())]).await?;
        Ok(oldest(found).and_then(|r| r.at("id").as_str().map(str::to_owned)))
    }

    /// Creates or updates `resource` (carrying its deterministic id), known by `key`; the
    /// server's status (201 created, 200 updated) and answer (the stored resource, when it sends it).
    pub async fn upsert(
        &self,
        ctx: &CallContext,
        live: &LiveConfig,
        resource: &Value,
        key: &Key,
    ) -> Result<(u16, Value), FhirError> {
        let kind = resource.at("resourceType").as_str().unwrap_or_default().to_owned();
        let mode = self.mode(ctx, live, &kind).await?;
        let modes: HashMap<String, WriteMode> = [(kind.clone(), mode)].into_iter().collect();
        let _one_at_a_time = self.lock_conditional(std::iter::once((kind.as_str(), key)), &modes).await;
        let mut attempt = 1;
        loop {
            let (path, body) = match mode {
                WriteMode::ClientIds => (
                    format!("{kind}/{}", resource.at("id").as_str().unwrap_or_default()),
                    std::borrow::Cow::Borrowed(resource),
                ),
                WriteMode::Conditional => {
                    let query = url::form_urlencoded::Serializer::new(String::new())
                        .append_pair("identifier", &key.token())
                        .finish();
                    let mut body = resource.clone();
                    if let Some(o) = body.as_object_mut() {
                        o.shift_remove("id");
                    }
                    (format!("{kind}?{query}"), std::borrow::Cow::Owned(body))
                }
            };
            let response = self.client.put_at(ctx, &live.fhir, &path, &body, None).await?;
            let status = response.status.as_u16();
            if response.status.is_success() {
                return Ok((status, response.json().unwrap_or(Value::Null)));
            }
            // Conflicts and rate limits pass soon; refused credentials do not (one token renewal
            // and retry already happened in the recorder).
            if attempt < ATTEMPTS && matches!(status, 408 | 409 | 412 | 423 | 429) {
                if status == 412 && mode == WriteMode::Conditional {
                    self.repair(ctx, live, &kind, key).await?;
                }
                backoff(attempt).await;
                attempt += 1;
                continue;
            }
            let outcome = response.json().unwrap_or(Value::Null);
            return Err(if transient_status(status) {
                FhirError::Transient(crate::error::ApiError::BadGateway { target: "FHIR server", status })
            } else {
                FhirError::Rejected { status, outcome }
            });
        }
    }

    /// Updates a resource the server has (its server id in `resource.id`) if it is still at
    /// `version` (`If-Match`): [`FhirError::VersionConflict`] when it moved on.
    pub async fn update(
        &self,
        ctx: &CallContext,
        live: &LiveConfig,
        resource: &Value,
        version: Option<&str>,
    ) -> Result<(u16, Value), FhirError> {
        let kind = resource.at("resourceType").as_str().unwrap_or_default();
        let path = format!("{kind}/{}", resource.at("id").as_str().unwrap_or_default());
        let response = self.client.put_at(ctx, &live.fhir, &path, resource, version).await?;
        let status = response.status.as_u16();
        match status {
            200..=299 => Ok((status, response.json().unwrap_or(Value::Null))),
            412 if version.is_some() => Err(FhirError::VersionConflict),
            _ if transient_status(status) => {
                Err(FhirError::Transient(crate::error::ApiError::BadGateway { target: "FHIR server", status }))
            }
            _ => Err(FhirError::Rejected { status, outcome: response.json().unwrap_or(Value::Null) }),
        }
    }

    /// Writes `writes` in one transaction: all or nothing, each type in its mode. Concurrency
    /// conflicts are retried (after repairing duplicate matches); the answer is checked entry by
    /// entry. Returns the transaction-response Bundle.
    pub async fn write_atomically(
        &self,
        ctx: &CallContext,
        live: &LiveConfig,
        writes: &[Write],
    ) -> Result<Value, FhirError> {
        let mut modes = HashMap::new();
        for write in writes {
            let kind = match write {
                Write::Upsert { resource, .. } | Write::Update { resource, .. } => {
                    resource.at("resourceType").as_str().unwrap_or_default()
                }
                Write::Delete { kind, .. } => kind.as_str(),
            };
            if !modes.contains_key(kind) {
                modes.insert(kind.to_owned(), self.mode(ctx, live, kind).await?);
            }
        }
        let bundle = transaction::bundle(&live.fhir.url, writes, |kind| {
            modes.get(kind).copied().unwrap_or(WriteMode::ClientIds)
        });
        let keyed = writes.iter().filter_map(|w| match w {
            Write::Upsert { resource, key } => Some((resource.at("resourceType").as_str().unwrap_or_default(), key)),
            _ => None,
        });
        let _one_at_a_time = self.lock_conditional(keyed, &modes).await;
        let mut attempt = 1;
        loop {
            let result = self.client.transaction(ctx, &live.fhir, &bundle).await;
            let failed = match result {
                Ok(response) => {
                    transaction::check_response(&response, writes)?;
                    return Ok(response);
                }
                Err(e) if attempt >= ATTEMPTS => return Err(e),
                Err(e) => e,
            };
            // A conflict (two copies at once) may pass when tried again. A conditional write
            // refused because its key matches several resources (412 — some servers fail the
            // whole transaction with 400 for it) passes once the duplicates are gone: look.
            let conflict =
                matches!(failed, FhirError::Transient(crate::error::ApiError::BadGateway { status: 409 | 412, .. }));
            let mut repaired = false;
            if conflict || matches!(failed, FhirError::Rejected { .. }) {
                for write in writes {
                    if let Write::Upsert { resource, key } = write {
                        let kind = resource.at("resourceType").as_str().unwrap_or_default();
                        if modes.get(kind) == Some(&WriteMode::Conditional) {
                            repaired |= self.repair(ctx, live, kind, key).await?;
                        }
                    }
                }
            }
            if !conflict && !repaired {
                return Err(failed);
            }
            backoff(attempt).await;
            attempt += 1;
        }
    }

    /// Several resources of `kind` carry `key` (two conditional creates raced, possibly from two
    /// replicas): keep the oldest, delete the others. A delete the server refuses (something
    /// references the duplicate) is logged and left; the write then goes to the kept one.
    /// Whether there was anything to repair. After its own conditional create, every replica
    /// calls this: the later of two racing creates' searches sees both, so one copy survives.
    pub async fn repair(&self, ctx: &CallContext, live: &LiveConfig, kind: &str, key: &Key) -> Result<bool, FhirError> {
        let mut found = self.client.search(ctx, &live.fhir, kind, &[("identifier", &key.token())]).await?;
        if found.len() < 2 {
            return Ok(false);
        }
        sort_oldest_first(&mut found);
        for duplicate in found.iter().skip(1) {
            let id = duplicate.at("id").as_str().unwrap_or_default();
            match self.client.delete(ctx, &live.fhir, kind, id).await {
                Ok(()) => tracing::warn!(%kind, duplicate = %id, "removed a duplicate a conditional write made"),
                Err(e) => tracing::warn!(%kind, duplicate = %id, error = %e, "could not remove a duplicate"),
            }
        }
        Ok(true)
    }
}

fn sort_oldest_first(resources: &mut [Value]) {
    resources.sort_by(|a, b| {
        let at = |r: &Value| r.at("meta").at("lastUpdated").as_str().unwrap_or_default().to_owned();
        (at(a), a.at("id").as_str().unwrap_or_default().to_owned())
            .cmp(&(at(b), b.at("id").as_str().unwrap_or_default().to_owned()))
    });
}

fn oldest(mut found: Vec<Value>) -> Option<Value> {
    sort_oldest_first(&mut found);
    found.into_iter().next()
}

async fn backoff(attempt: u32) {
    // 25, 50, 100 ms, with jitter so two racing copies do not retry in step.
    let base = 25u64 << attempt.saturating_sub(1).min(4);
    let jitter = u64::from(uuid::Uuid::new_v4().as_bytes().first().copied().unwrap_or(0)) % base.max(1);
    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
}
