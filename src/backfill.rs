//! Backfill: an existing CHT deployment's patients and reports into FHIR. Reads CHT's changes
//! feed (`/medic/_changes?include_docs=true`, in batches), selects documents with the outbound
//! rules ([`crate::conversions::selection`]), converts them with the same converters, and writes:
//! Patients in transaction Bundles of `bundle_size`, reports through the inbound pipeline (one
//! transaction each: subject lookup, stale Observations, Tasks), both with bounded concurrency.
//!
//! After each batch the last seq is saved in the embedded store, so an interrupted run resumes
//! where it stopped; writes are idempotent (`PUT` with deterministic ids), so a batch redone after
//! a crash duplicates nothing. Documents that cannot convert go to the dead-letter store; a
//! transient failure stops the run (exit 1) at the last complete batch.

use std::sync::atomic::{AtomicBool, Ordering};

use futures::stream::{self, StreamExt, TryStreamExt};
use serde_json::{Value, json};

use crate::conversions::selection::{Selected, select};
use crate::error::ApiError;
use crate::fhir::transaction::Write;
use crate::inbound::{Endpoint, Failure, Outcome, conforms, handle};
use crate::json::JsonExt;
use crate::state::AppState;
use crate::upstream::CallContext;

/// Name of the backfill's checkpoint in the embedded store.
pub const CHECKPOINT: &str = "backfill";

/// Where to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Since {
    /// The saved checkpoint, else the beginning.
    Checkpoint,
    /// Only changes from now on (records the current seq as the checkpoint).
    Now,
    Seq(String),
}

#[derive(Debug, Clone)]
pub struct Options {
    pub since: Since,
    pub batch: usize,
    pub bundle_size: usize,
    pub concurrency: usize,
}

/// Running totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub seen: u64,
    pub patients: u64,
    pub reports: u64,
    pub skipped: u64,
    pub dead_lettered: u64,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Done,
    Interrupted,
}

/// A seq as the `since` parameter (CouchDB 2+ uses strings, pouchdb numbers).
pub fn seq_param(seq: &Value) -> String {
    match seq {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The numeric part of a seq (`"123-g1AA…"` → 123), for progress estimates only.
pub fn seq_number(seq: &str) -> Option<u64> {
    seq.split('-').next()?.parse().ok()
}

/// The seq a run starts from.
pub async fn start(state: &AppState, since: &Since) -> Result<String, ApiError> {
    let store = state.dead_letters.clone();
    match since {
        Since::Seq(seq) => Ok(seq.clone()),
        Since::Checkpoint => Ok(store
            .checkpoint(CHECKPOINT)
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .unwrap_or_else(|| "0".into())),
        Since::Now => {
            let live = state.live.current();
            let seq = seq_param(&state.cht.update_seq(&CallContext::background(), &live.cht).await?);
            store.set_checkpoint(CHECKPOINT, &seq).map_err(|e| ApiError::Internal(e.to_string()))?;
            Ok(seq)
        }
    }
}

/// Runs from `from` until the feed is exhausted or `interrupted` is set (checked between
/// batches). `progress` is called after each batch with the totals and the checkpoint.
pub async fn run(
    state: &AppState,
    options: &Options,
    from: String,
    interrupted: &AtomicBool,
    mut progress: impl FnMut(&Counts, &str),
) -> Result<(Counts, Stop), ApiError> {
    // A context per batch and per report: they record orchestrations, which must not pile up
    // over a run of thousands of documents.
    let run_id = uuid::Uuid::new_v4();
    let mut counts = Counts::default();
    let mut since = from;
    loop {
        let live = state.live.current();
        let ctx = CallContext::new(format!("backfill-{run_id}"), None);
        let (changes, last_seq) = state.cht.changes(&ctx, &live.cht, &since, options.batch).await?;
        if changes.is_empty() {
            return Ok((counts, Stop::Done));
        }
        counts.seen += changes.len() as u64;
        let (mut persons, mut reports) = (Vec::new(), Vec::new());
        // Who is a patient depends on the lineage (a CHW is a person under a staff place), and
        // the pushes see it hydrated: so does the backfill, and its Patients get the same lineage.
        let changes = hydrate_contacts(state, &ctx, &live, changes).await?;
        for doc in changes {
            match select(&doc, &state.settings.forms, &state.settings.patients) {
                Some(Selected::Person) => persons.push(doc),
                Some(Selected::Report) => reports.push(doc),
                None => counts.skipped += 1,
            }
        }
        write_persons(state, &ctx, options, persons, &mut counts).await?;
        let outcomes: Vec<Outcome> = stream::iter(reports)
            .map(|doc| async move {
                let ctx = CallContext::new(format!("backfill-{run_id}"), None);
                handle(state, &ctx, Endpoint::Encounter, &json!({ "doc": doc })).await
            })
            .buffer_unordered(options.concurrency)
            .try_collect()
            .await?;
        for outcome in outcomes {
            match outcome {
                Outcome::Written { .. } => counts.reports += 1,
                Outcome::DeadLettered { .. } => counts.dead_lettered += 1,
            }
        }
        since = seq_param(&last_seq);
        state.dead_letters.set_checkpoint(CHECKPOINT, &since).map_err(|e| ApiError::Internal(e.to_string()))?;
        progress(&counts, &since);
        if interrupted.load(Ordering::SeqCst) {
            return Ok((counts, Stop::Interrupted));
        }
    }
}

/// Patients in transaction Bundles; a Bundle the FHIR server refuses is redone one document at
/// a time through the inbound pipeline, so only the bad document becomes a dead letter.
/// The documents of a changes page, contacts hydrated (one `POST /api/v1/hydrate`).
async fn hydrate_contacts(
    state: &AppState,
    ctx: &CallContext,
    live: &crate::settings::LiveConfig,
    changes: Vec<(Value, Value)>,
) -> Result<Vec<Value>, ApiError> {
    let is_contact =
        |doc: &Value| matches!(doc["type"].as_str(), Some("person" | "contact")) && doc["_deleted"] != true;
    let ids: Vec<&str> = changes.iter().filter(|(_, d)| is_contact(d)).filter_map(|(_, d)| d["_id"].as_str()).collect();
    let mut hydrated = state.cht.hydrate(ctx, &live.cht, &ids).await?;
    Ok(changes
        .into_iter()
        .map(|(_, doc)| match doc.at("_id").as_str().and_then(|id| hydrated.remove(id)) {
            Some(full) if is_contact(&doc) => full,
            _ => doc,
        })
        .collect())
}

async fn write_persons(
    state: &AppState,
    ctx: &CallContext,
    options: &Options,
    persons: Vec<Value>,
    counts: &mut Counts,
) -> Result<(), ApiError> {
    let live = state.live.current();
    let mut patients = Vec::new();
    for doc in persons {
        let payload = json!({ "doc": doc });
        let converted = crate::conversions::patient::person_to_patient(&payload, &live.identifiers)
            .map_err(Failure::from)
            .and_then(|p| conforms(&p).map(|()| p));
        match converted {
            Ok(patient) => patients.push((payload, patient)),
            Err(Failure::Permanent(p)) => {
                crate::inbound::dead_letter(state, ctx, Endpoint::Patient, &payload, p).await?;
                counts.dead_lettered += 1;
            }
            Err(Failure::Transient(e)) => return Err(e),
        }
    }
    let chunks: Vec<Vec<(Value, Value)>> = patients.chunks(options.bundle_size.max(1)).map(<[_]>::to_vec).collect();
    let results: Vec<(u64, u64)> = stream::iter(chunks)
        .map(|chunk| {
            let live = live.clone();
            async move {
                let writes: Vec<Write> = chunk
                    .iter()
                    .map(|(_, patient)| Write::Upsert {
                        resource: patient.clone(),
                        key: crate::inbound::encounter::patient_key(patient, &live),
                    })
                    .collect();
                match state.fhir.write_atomically(ctx, &live, &writes).await {
                    Ok(_) => Ok((chunk.len() as u64, 0)),
                    Err(
                        e @ (crate::fhir::client::FhirError::Transient(_)
                        | crate::fhir::client::FhirError::VersionConflict),
                    ) => Err(e.into_api()),
                    Err(
                        crate::fhir::client::FhirError::Rejected { .. } | crate::fhir::client::FhirError::Invalid(_),
                    ) => {
                        let (mut written, mut dead) = (0, 0);
                        for (payload, _) in &chunk {
                            match handle(state, ctx, Endpoint::Patient, payload).await? {
                                Outcome::Written { .. } => written += 1,
                                Outcome::DeadLettered { .. } => dead += 1,
                            }
                        }
                        Ok((written, dead))
                    }
                }
            }
        })
        .buffer_unordered(options.concurrency)
        .try_collect()
        .await?;
    for (written, dead) in results {
        counts.patients += written;
        counts.dead_lettered += dead;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seqs_are_opaque_but_numbered_for_progress() {
        assert_eq!(seq_param(&json!(42)), "42");
        assert_eq!(seq_param(&json!("42-g1AAAA")), "42-g1AAAA");
        assert_eq!(seq_number("42-g1AAAA"), Some(42));
        assert_eq!(seq_number("now"), None);
    }
}
