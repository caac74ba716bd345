//! `cht-fhir-mediator dead-letters list|show|replay|remove`: what could not be converted, and sending it
//! through the same pipeline again once the mapping or the document is fixed.

use std::process::ExitCode;

use clap::Subcommand;

use crate::deadletter::DeadLetter;
use crate::inbound::{Endpoint, Failure, Outcome, attempt};
use crate::settings::Settings;
use crate::upstream::CallContext;

use super::{FAILED, fail};
use crate::json::JsonExt;
use crate::state::AppState;

#[derive(Debug, Subcommand)]
pub enum DeadLetters {
    /// List dead letters (pending ones unless --all).
    List {
        #[arg(long)]
        all: bool,
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one dead letter with its payload (id or a unique prefix).
    Show { id: String },
    /// Delete dead letters (e.g. documents fixed and re-sent from CHT instead): makes room when the
    /// store is at its cap (`DEAD_LETTER_MAX_*`).
    Remove {
        /// Ids (or unique prefixes) to delete.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Send dead letters through the pipeline again; those that now succeed are marked replayed.
    Replay {
        /// Ids (or unique prefixes) to replay.
        ids: Vec<String>,
        /// Replay every pending dead letter.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
}

pub async fn run(settings: Settings, command: DeadLetters) -> ExitCode {
    let state = match super::offline_state(settings) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let store = state.dead_letters.clone();
    match command {
        DeadLetters::List { all, json } => match store.list(all) {
            Ok(letters) if json => {
                let summaries: Vec<_> = letters.iter().map(without_payload).collect();
                println!("{}", serde_json::to_string_pretty(&summaries).unwrap_or_default());
                ExitCode::SUCCESS
            }
            Ok(letters) => {
                println!(
                    "{:<12}  {:<8}  {:>8}  {:<24}  {:<15}  {:<38}  element",
                    "id", "status", "attempts", "last seen", "endpoint", "document"
                );
                for l in &letters {
                    let (doc, element) = (l.document_id.as_deref().unwrap_or("-"), l.element.as_deref().unwrap_or("-"));
                    let short = l.id.get(..12).unwrap_or(&l.id);
                    println!(
                        "{short:<12}  {:<8}  {:>8}  {:<24}  {:<15}  {doc:<38}  {element}",
                        l.status, l.attempts, l.last_seen, l.endpoint
                    );
                }
                println!("{} dead letter(s)", letters.len());
                ExitCode::SUCCESS
            }
            Err(e) => fail(FAILED, &e.to_string()),
        },
        DeadLetters::Remove { ids } => {
            for id in &ids {
                let removed = store.get(id).and_then(|found| match found {
                    Some(letter) => store.remove(&letter.id).map(|_| Some(letter.id)),
                    None => Ok(None),
                });
                match removed {
                    Ok(Some(full)) => println!("{full}: removed"),
                    Ok(None) => return fail(FAILED, &format!("no dead letter {id} (or the prefix is ambiguous)")),
                    Err(e) => return fail(FAILED, &e.to_string()),
                }
            }
            ExitCode::SUCCESS
        }
        DeadLetters::Show { id } => match store.get(&id) {
            Ok(Some(letter)) => {
                let mut shown = serde_json::to_value(without_payload(&letter)).unwrap_or_default();
                shown.set(
                    "payload",
                    serde_json::from_str(&letter.payload).unwrap_or(serde_json::Value::String(letter.payload)),
                );
                println!("{}", serde_json::to_string_pretty(&shown).unwrap_or_default());
                ExitCode::SUCCESS
            }
            Ok(None) => fail(FAILED, &format!("no dead letter {id} (or the prefix is ambiguous)")),
            Err(e) => fail(FAILED, &e.to_string()),
        },
        DeadLetters::Replay { ids, all } => {
            let mut letters = Vec::new();
            if all {
                match store.list(false) {
                    Ok(pending) => letters = pending,
                    Err(e) => return fail(FAILED, &e.to_string()),
                }
            }
            for id in &ids {
                match store.get(id) {
                    Ok(Some(letter)) => letters.push(letter),
                    Ok(None) => return fail(FAILED, &format!("no dead letter {id} (or the prefix is ambiguous)")),
                    Err(e) => return fail(FAILED, &e.to_string()),
                }
            }
            if letters.is_empty() {
                println!("nothing to replay");
                return ExitCode::SUCCESS;
            }
            replay(&state, letters).await
        }
    }
}

fn without_payload(letter: &DeadLetter) -> DeadLetter {
    DeadLetter { payload: String::new(), ..letter.clone() }
}

async fn replay(state: &AppState, letters: Vec<DeadLetter>) -> ExitCode {
    let mut all_ok = true;
    for letter in letters {
        let ctx = CallContext::new(format!("replay-{}", letter.id), None);
        let (Some(endpoint), Ok(payload)) =
            (Endpoint::from_path(&letter.endpoint), serde_json::from_str(&letter.payload))
        else {
            eprintln!("{}: cannot replay (endpoint {} or payload unreadable)", letter.id, letter.endpoint);
            all_ok = false;
            continue;
        };
        match attempt(state, &ctx, endpoint, &payload).await {
            Ok(Outcome::Written { status, .. }) => match state.dead_letters.mark_replayed(&letter.id) {
                Ok(()) => println!("{}: written (FHIR {status})", letter.id),
                Err(e) => {
                    all_ok = false;
                    println!("{}: written (FHIR {status}) but not marked replayed: {e}", letter.id);
                }
            },
            Ok(Outcome::DeadLettered { id, .. }) => {
                all_ok = false;
                println!("{}: stored again as {id}", letter.id);
            }
            Err(Failure::Permanent(p)) => {
                all_ok = false;
                let doc = letter.document_id.as_deref();
                if let Err(e) =
                    state.dead_letters.record(&letter.endpoint, &letter.payload, &p.message(), p.element(), doc, None)
                {
                    eprintln!("{}: {e}", letter.id);
                }
                println!("{}: still failing: {}", letter.id, p.message());
            }
            Err(Failure::Transient(e)) => {
                all_ok = false;
                println!("{}: not replayed, try again later: {e}", letter.id);
            }
        }
    }
    if all_ok { ExitCode::SUCCESS } else { ExitCode::from(FAILED) }
}
