//! `cht-fhir-mediator backfill`: existing CHT data into FHIR (see [`crate::backfill`]), with a
//! progress bar on a terminal and plain progress lines otherwise. Ctrl-C stops after the batch
//! in flight, with its checkpoint saved. Exit codes: 0 done, 1 failed (run again to resume),
//! 2 bad settings, 130 interrupted (run again to resume).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use clap::Args;

use super::{FAILED, fail};
use crate::backfill::{Counts, Options, Since, Stop, run as run_backfill, seq_number, seq_param, start};
use crate::settings::Settings;
use crate::upstream::CallContext;

#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// Where to start: a CHT changes seq, `0` for the beginning, or `now` for changes from now on.
    /// Default: where the last run stopped (the saved checkpoint), else the beginning.
    #[arg(long)]
    pub since: Option<String>,
    /// Changes read per request.
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// Patients per FHIR transaction Bundle.
    #[arg(long, default_value_t = 100)]
    pub bundle_size: usize,
    /// FHIR writes in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
}

pub async fn run(settings: Settings, args: BackfillArgs) -> ExitCode {
    let state = match super::offline_state(settings) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let since = match args.since.as_deref() {
        None => Since::Checkpoint,
        Some("now") => Since::Now,
        Some(seq) => Since::Seq(seq.to_owned()),
    };
    let from = match start(&state, &since).await {
        Ok(seq) => seq,
        Err(e) => return fail(FAILED, &e.to_string()),
    };
    let live = state.live.current();
    let end = state.cht.update_seq(&CallContext::background(), &live.cht).await.ok().map(|s| seq_param(&s));
    let total = end.as_deref().and_then(seq_number).zip(seq_number(&from)).map(|(end, from)| end.saturating_sub(from));
    println!(
        "backfill from seq {from} ({} changes to read)",
        total.map_or("an unknown number of".into(), |t| t.to_string())
    );

    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted: finishing the batch in flight, then saving the checkpoint");
            flag.store(true, Ordering::SeqCst);
        }
    });

    let options = Options {
        since,
        batch: args.batch.max(1),
        bundle_size: args.bundle_size.max(1),
        concurrency: args.concurrency.max(1),
    };
    let started = Instant::now();
    let bar = std::io::stdout().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(total.unwrap_or(0));
        let style = indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} changes {per_sec} ETA {eta} {msg}",
        );
        if let Ok(style) = style {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    });
    let report = |counts: &Counts, seq: &str| {
        let rate = counts.seen as f64 / started.elapsed().as_secs_f64().max(0.001);
        let summary = format!(
            "written {} patients + {} reports, skipped {}, dead letters {}",
            counts.patients, counts.reports, counts.skipped, counts.dead_lettered
        );
        match &bar {
            Some(bar) => {
                bar.set_position(counts.seen);
                bar.set_message(summary);
            }
            None => {
                let eta = total
                    .filter(|t| *t > counts.seen && rate > 0.0)
                    .map(|t| format!(", ETA {:.0} s", (t - counts.seen) as f64 / rate));
                println!(
                    "backfill: seq {seq}: seen {}, {summary}, {rate:.0} docs/s{}",
                    counts.seen,
                    eta.unwrap_or_default()
                );
            }
        }
    };
    let result = run_backfill(&state, &options, from, &interrupted, report).await;
    if let Some(bar) = &bar {
        bar.finish();
    }
    let secs = started.elapsed().as_secs_f64();
    match result {
        Ok((counts, stop)) => {
            println!(
                "backfill {}: seen {}, written {} patients and {} reports, skipped {}, dead letters {}, in {secs:.1} s ({:.0} docs/s)",
                if stop == Stop::Done { "done" } else { "interrupted" },
                counts.seen,
                counts.patients,
                counts.reports,
                counts.skipped,
                counts.dead_lettered,
                counts.seen as f64 / secs.max(0.001)
            );
            match stop {
                Stop::Done => ExitCode::SUCCESS,
                Stop::Interrupted => {
                    println!("run `cht-fhir-mediator backfill` again to resume from the checkpoint");
                    ExitCode::from(130)
                }
            }
        }
        Err(e) => fail(FAILED, &format!("{e}; run again to resume from the last checkpoint")),
    }
}
