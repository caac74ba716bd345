//! The command line. Exit codes scripts can trust: 0 success, 1 the operation failed (e.g.
//! OpenHIM unreachable), 2 bad usage or configuration.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::{Parser, Subcommand};

use crate::metrics::Metrics;
use crate::openhim::client::OpenhimClient;
use crate::openhim::lifecycle::Lifecycle;
use crate::openhim::registration::Registration;
use crate::settings::{Settings, Source};
use crate::startup::Application;
use crate::state::AppState;
use crate::state::{LiveHandle, OpenhimStatusHandle};
use crate::upstream::build_client;

mod backfill;
mod dead_letters;
mod tools;

/// Exit code when the requested operation failed.
const FAILED: u8 = 1;
/// Exit code for bad usage or configuration (clap uses it for usage errors too).
const MISCONFIGURED: u8 = 2;

/// Prints `message` to stderr and returns exit code `code`.
fn fail(code: u8, message: &str) -> ExitCode {
    eprintln!("cht-fhir-mediator: {message}");
    ExitCode::from(code)
}

/// The service's state (clients, stores) for a command that works without the HTTP server.
fn offline_state(settings: Settings) -> Result<AppState, ExitCode> {
    let urn = Registration::from_settings(&settings, settings.server.port)
        .map_err(|e| fail(MISCONFIGURED, &e.to_string()))?
        .urn;
    AppState::new(std::sync::Arc::new(settings), &urn).map_err(|e| fail(MISCONFIGURED, &format!("{e:#}")))
}

#[derive(Debug, Parser)]
#[command(name = "cht-fhir-mediator", version, about = "OpenHIM mediator joining CHT to FHIR R4")]
pub struct Cli {
    /// Settings file (TOML, same keys as the environment variables) read over the built-in
    /// defaults; environment variables still win.
    #[arg(long, global = true, env = "MEDIATOR_SETTINGS_FILE")]
    pub settings: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the mediator (the default).
    Serve,
    /// Register with OpenHIM once and exit.
    Register {
        /// Also install the default channels (POST /mediators/{urn}/channels).
        #[arg(long)]
        install_channels: bool,
    },
    /// Documents that could never be converted: list, show, replay.
    #[command(subcommand, name = "dead-letters")]
    DeadLetters(dead_letters::DeadLetters),
    /// Convert a CHT document offline and print the FHIR (or why it cannot convert).
    Convert(tools::ConvertArgs),
    /// Check a FHIR resource or Bundle against fhir-profiles/ and print each problem.
    Validate {
        /// A JSON file, or `-` for standard input.
        file: String,
    },
    /// Print the CHT configuration (app_settings pieces, task, XForm) for this deployment.
    ChtConfig(tools::ChtConfigArgs),
    /// Load settings and mappings and reach OpenHIM, the FHIR server and CHT; print what works.
    Check,
    /// Write existing CHT patients and reports to FHIR from CHT's changes feed (resumable).
    Backfill(backfill::BackfillArgs),
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Source::load(cli.settings.as_deref()).and_then(|source| match &cli.command {
        // `register` needs the OpenHIM password even when the service would not register itself.
        Some(Command::Register { .. }) => {
            let mut source = source;
            source.set("OPENHIM_REGISTER", "true");
            Settings::from_source(source)
        }
        // These commands never register with OpenHIM.
        Some(
            Command::DeadLetters(_)
            | Command::Convert(_)
            | Command::Validate { .. }
            | Command::ChtConfig(_)
            | Command::Check
            | Command::Backfill(_),
        ) => Settings::without_registration(source),
        _ => Settings::from_source(source),
    }) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cht-fhir-mediator: {e}");
            return ExitCode::from(MISCONFIGURED);
        }
    };
    let is_service = matches!(cli.command, None | Some(Command::Serve));
    crate::telemetry::init_to(&settings.server.log_level, settings.server.log_format, !is_service);
    crate::telemetry::install_panic_hook();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(crate::limits::WORKER_STACK_BYTES)
        .build();
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cht-fhir-mediator: cannot start the async runtime: {e}");
            return ExitCode::from(FAILED);
        }
    };
    runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(settings).await,
            Command::Register { install_channels } => register(settings, install_channels).await,
            Command::DeadLetters(command) => dead_letters::run(settings, command).await,
            Command::Convert(args) => tools::convert(&settings, &args),
            Command::Validate { file } => tools::validate(&file),
            Command::ChtConfig(args) => tools::cht_config(&settings, &args),
            Command::Check => tools::check(settings).await,
            Command::Backfill(args) => backfill::run(settings, args).await,
        }
    })
}

async fn serve(settings: Settings) -> ExitCode {
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("cht-fhir-mediator: {e:#}");
            return ExitCode::from(MISCONFIGURED);
        }
    };
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cht-fhir-mediator: {e:#}");
            ExitCode::from(FAILED)
        }
    }
}

async fn register(settings: Settings, install_channels: bool) -> ExitCode {
    let registration = match Registration::from_settings(&settings, settings.server.port) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cht-fhir-mediator: {e}");
            return ExitCode::from(MISCONFIGURED);
        }
    };
    let http = match settings.tls.openhim_trust().and_then(|trust| build_client(&trust, settings.openhim.timeout)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cht-fhir-mediator: {e:#}");
            return ExitCode::from(MISCONFIGURED);
        }
    };
    let metrics = Arc::new(Metrics::new());
    let settings = Arc::new(settings);
    let lifecycle = Lifecycle {
        client: OpenhimClient::new(&settings.openhim, http, metrics.clone()),
        registration,
        live: Arc::new(LiveHandle::new(settings.live.clone())),
        settings,
        status: Arc::new(OpenhimStatusHandle::default()),
        metrics,
        started: Instant::now(),
        last_console_config: Default::default(),
    };
    match lifecycle.register_once(install_channels).await {
        Ok(()) => {
            let what = if install_channels { "registered; default channels installed" } else { "registered" };
            println!("{} {}: {what}", lifecycle.registration.urn, lifecycle.registration.version);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cht-fhir-mediator: {e}");
            ExitCode::from(FAILED)
        }
    }
}
