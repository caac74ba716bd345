//! Operator commands that need no running service:
//! - `convert`: the real conversion, offline, on a CHT doc or outbound payload (try a form mapping
//!   before deploying it);
//! - `validate`: a FHIR resource or Bundle against `fhir-profiles/`, every problem with its path;
//! - `cht-config`: the CHT side (app_settings pieces, task, XForm) with this deployment's values;
//! - `check`: settings, mappings, and whether OpenHIM, the FHIR server and CHT answer.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use crate::fhir::profiles::CANONICAL_BASE;
use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use super::{FAILED, MISCONFIGURED, fail};
use crate::conversions::ids::resource_id;
use crate::conversions::patient::person_to_patient;
use crate::conversions::report::{build, parse_report};
use crate::error::FHIR_JSON;
use crate::fhir::operation_outcome::{Issue, OperationOutcome, Severity};
use crate::json::JsonExt;
use crate::settings::Settings;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Patient,
    Encounter,
    Auto,
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// What the document is; `auto` looks at it (a person doc or a report).
    #[arg(long, value_enum, default_value = "auto")]
    pub kind: Kind,
    /// A JSON file, or `-` for standard input.
    pub file: String,
}

#[derive(Debug, Args)]
pub struct ChtConfigArgs {
    /// OpenHIM's router as CHT reaches it (outbound `destination.base_url`).
    #[arg(long, default_value = "http://openhim-core:5001")]
    pub openhim_url: String,
    /// The OpenHIM client CHT authenticates as.
    #[arg(long, default_value = "cht-outbound")]
    pub client: String,
    /// CHT credentials key holding that client's password.
    #[arg(long, default_value = "openhim_cht_outbound")]
    pub password_key: String,
    /// Which piece to print.
    #[arg(long, value_enum, default_value = "app-settings")]
    pub part: Part,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Part {
    AppSettings,
    Tasks,
    Xform,
}

const APP_SETTINGS: &str = include_str!("../../mediator-config/cht/app_settings.json");
const TASKS_JS: &str = include_str!("../../mediator-config/cht/tasks.js");
const XFORM: &str = include_str!("../../mediator-config/cht/forms/app/interop_follow_up.xml");

fn read_json(file: &str) -> Result<Value, String> {
    let mut text = String::new();
    if file == "-" {
        std::io::stdin().read_to_string(&mut text).map_err(|e| format!("standard input: {e}"))?;
    } else {
        text = std::fs::read_to_string(Path::new(file)).map_err(|e| format!("{file}: {e}"))?;
    }
    serde_json::from_str(&text).map_err(|e| format!("{file}: not JSON: {e}"))
}

fn print(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

fn outcome(issues: Vec<Issue>) -> Value {
    serde_json::from_str(&OperationOutcome::from_issues(issues).to_json()).unwrap_or_default()
}

fn error_issue(message: String, element: Option<String>) -> Issue {
    Issue {
        severity: Severity::Error,
        code: "invalid",
        diagnostics: message,
        expression: element.into_iter().collect(),
    }
}

/// `convert`: prints the FHIR a document becomes (exit 0), or why it cannot (OperationOutcome, exit 1).
pub fn convert(settings: &Settings, args: &ConvertArgs) -> ExitCode {
    let doc = match read_json(&args.file) {
        Ok(v) => v,
        Err(e) => return fail(MISCONFIGURED, &e),
    };
    let kind = match args.kind {
        Kind::Auto if is_report(&doc) => Kind::Encounter,
        Kind::Auto => Kind::Patient,
        k => k,
    };
    let systems = &settings.live.identifiers;
    let converted = match kind {
        Kind::Patient => person_to_patient(&doc, systems),
        _ => parse_report(&doc, &settings.forms).map(|input| {
            // Offline, the patient is not looked up: its FHIR id is the one its CHT id maps to.
            let resources = build(&input, &resource_id(&input.subject), systems, &settings.forms);
            let entries: Vec<Value> = std::iter::once(resources.encounter)
                .chain(resources.observations)
                .chain(resources.referral)
                .map(|r| json!({"resource": r}))
                .collect();
            json!({"resourceType": "Bundle", "type": "collection", "entry": entries})
        }),
    };
    match converted {
        Ok(fhir) => {
            let problems = problems(&fhir);
            print(&fhir);
            if problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                print(&outcome(problems));
                ExitCode::from(FAILED)
            }
        }
        Err(e) => {
            print(&outcome(vec![error_issue(e.message, e.element)]));
            ExitCode::from(FAILED)
        }
    }
}

fn is_report(doc: &Value) -> bool {
    let inner = doc.get("doc").unwrap_or(doc);
    inner["type"] == "data_record" || inner.get("form").is_some() || doc.get("observations").is_some()
}

/// Problems of a resource (or a Bundle and its entries): base R4 for any resource, then the
/// mediator's profile for each resource that declares one, then fhirbolt's strict parse as a
/// second opinion when both found nothing.
fn problems(fhir: &Value) -> Vec<Issue> {
    let mut issues: Vec<Issue> = match crate::fhir::base::validate(fhir) {
        Ok(()) => Vec::new(),
        Err(violations) => violations.into_iter().map(|v| error_issue(v.message, Some(v.path))).collect(),
    };
    let resources: Vec<(String, &Value)> = if fhir["resourceType"] == "Bundle" {
        fhir["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, e)| (format!("Bundle.entry[{i}].resource"), &e["resource"]))
            .collect()
    } else {
        vec![(String::new(), fhir)]
    };
    let ours = |r: &Value| {
        r.at("meta")
            .at("profile")
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .any(|u| u.starts_with(CANONICAL_BASE))
    };
    for (at, resource) in resources.into_iter().filter(|(_, r)| ours(r)) {
        let prefix = |path: &str| if at.is_empty() { path.to_owned() } else { format!("{at} ({path})") };
        if let Err(violations) = crate::fhir::validate::validate(resource) {
            issues.extend(violations.into_iter().map(|v| error_issue(v.message, Some(prefix(&v.path)))));
        }
    }
    if issues.is_empty()
        && let Err(e) = crate::fhir::model::check_structure(fhir)
    {
        let kind = fhir["resourceType"].as_str().unwrap_or("resource");
        issues.push(error_issue(format!("fhirbolt's strict R4 parse: {e}"), Some(kind.to_owned())));
    }
    issues
}

/// `validate`: exit 0 and "valid", or each problem with its path and exit 1.
pub fn validate(file: &str) -> ExitCode {
    let fhir = match read_json(file) {
        Ok(v) => v,
        Err(e) => return fail(MISCONFIGURED, &e),
    };
    let issues = problems(&fhir);
    if issues.is_empty() {
        println!("valid");
        return ExitCode::SUCCESS;
    }
    for issue in &issues {
        println!("{}: {}", issue.expression.first().map_or("-", String::as_str), issue.diagnostics);
    }
    println!("{} problem(s)", issues.len());
    ExitCode::from(FAILED)
}

/// `cht-config`: the CHT side with this deployment's OpenHIM URL, client, credentials key and
/// patient selection.
pub fn cht_config(deployment: &Settings, args: &ChtConfigArgs) -> ExitCode {
    match args.part {
        Part::Tasks => print!("{TASKS_JS}"),
        Part::Xform => print!("{XFORM}"),
        Part::AppSettings => {
            let mut settings: Value = serde_json::from_str(APP_SETTINGS).unwrap_or_default();
            if let Some(object) = settings.as_object_mut() {
                object.remove("_comment");
            }
            if let Some(patients) = settings.pointer_mut("/outbound/cht_fhir_patients") {
                patients["relevant_to"] = json!(deployment.patients.relevant_to());
            }
            let pushes = settings.get_mut("outbound").and_then(Value::as_object_mut);
            for push in pushes.into_iter().flat_map(|o| o.values_mut()) {
                if let Some(destination) = push.object_at("destination") {
                    destination.insert("base_url".into(), json!(args.openhim_url.trim_end_matches('/')));
                }
                if let Some(auth) = push.object_at("destination").and_then(|d| {
                    let auth = d.entry("auth").or_insert_with(|| json!({}));
                    auth.as_object_mut()
                }) {
                    auth.insert("username".into(), json!(args.client));
                    auth.insert("password_key".into(), json!(args.password_key));
                }
            }
            print(&settings);
        }
    }
    ExitCode::SUCCESS
}

/// `check`: what works and what does not; exit 0 only when everything does.
pub async fn check(settings: Settings) -> ExitCode {
    println!(
        "ok    settings and form mappings ({} forms, outbound observation form {})",
        settings.forms.forms.len(),
        settings.outbound.observation_form
    );
    let state = match super::offline_state(settings) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let urn = state.urn.clone();
    let live = state.live.current();
    let ctx = crate::upstream::CallContext::background();
    let mut all_ok = true;
    let mut report = |ok: bool, what: &str, detail: String| {
        all_ok &= ok;
        println!("{}  {what:<7} {detail}", if ok { "ok  " } else { "FAIL" });
    };

    let openhim = &state.settings.openhim;
    let seen = crate::tls::SeenCertificate::default();
    let http = state
        .settings
        .tls
        .openhim_trust()
        .and_then(|trust| crate::upstream::build_client_seeing(&trust, openhim.timeout, Some(seen.clone())));
    if openhim.password.is_none() {
        // No API call without credentials, but the certificate is worth showing: `GET /heartbeat`
        // is public.
        if let Ok(http) = &http {
            let _ =
                http.get(openhim.api_url.join("heartbeat").unwrap_or_else(|_| openhim.api_url.clone())).send().await;
        }
        report(true, "openhim", "skipped: OPENHIM_PASSWORD is not set".into());
    } else {
        match http {
            Err(e) => report(false, "openhim", format!("{e:#}")),
            Ok(http) => {
                let client = crate::openhim::client::OpenhimClient::new(openhim, http, state.metrics.clone());
                match client.get_json("/mediators").await {
                    Ok(list) => {
                        let ours = list.as_array().into_iter().flatten().find(|m| m["urn"] == *urn);
                        let detail = match ours {
                            Some(m) => format!(
                                "{} reachable; {urn} registered (version {})",
                                openhim.api_url,
                                m["version"].as_str().unwrap_or("?")
                            ),
                            None => format!("{} reachable; {urn} not registered yet", openhim.api_url),
                        };
                        report(true, "openhim", detail);
                    }
                    Err(e) => report(false, "openhim", e.to_string()),
                }
            }
        }
    }

    let presented = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(cert) = presented {
        let shown = crate::tls::Presented::of(&cert);
        println!(
            "      openhim certificate: SHA-256 {}{}{}",
            shown.fingerprint,
            if shown.self_signed { ", self-signed" } else { "" },
            shown.not_after.map(|d| format!(", valid until {d}")).unwrap_or_default()
        );
        println!("      to trust exactly this certificate: OPENHIM_TLS_PIN_SHA256={}", shown.fingerprint);
    }

    let fhir = state.fhir.client().recorder();
    // Which credentials, and for OAuth2 whether the token endpoint issues a token (never shown).
    match fhir.describe_auth(&live.fhir).await {
        Ok(how) => report(true, "fhir", format!("authentication: {how}")),
        Err(e) => report(false, "fhir", format!("authentication ({}): {e}", live.fhir.auth.scheme())),
    }
    let answer = fhir
        .call(&ctx, &live.fhir, "check", reqwest::Method::GET, "metadata", FHIR_JSON, None)
        .await
        .map_err(|e| e.to_string());
    match answer {
        Ok(r) if r.status.is_success() => {
            let meta = r.json().unwrap_or_default();
            report(
                true,
                "fhir",
                format!(
                    "{} answers: FHIR {} ({})",
                    live.fhir.url,
                    meta.at("fhirVersion").as_str().unwrap_or("?"),
                    meta.at("software").at("name").as_str().unwrap_or("unnamed server")
                ),
            );
        }
        Ok(r) => report(false, "fhir", format!("{} answered {} to GET metadata", live.fhir.url, r.status.as_u16())),
        Err(e) => report(false, "fhir", e),
    }

    // /api/info is public: the medic database shows whether the credentials work too.
    for (path, what) in [("api/info", "CHT API"), ("medic", "medic database with the configured credentials")] {
        let cht = state.cht.recorder();
        let answer = cht
            .call(&ctx, &live.cht, "check", reqwest::Method::GET, path, "application/json", None)
            .await
            .map_err(|e| e.to_string());
        match answer {
            Ok(r) if r.status.is_success() => {
                let version = r.json().and_then(|v| v.at("version").as_str().map(str::to_owned));
                report(
                    true,
                    "cht",
                    format!("{what}: ok{}", version.map(|v| format!(" (version {v})")).unwrap_or_default()),
                );
            }
            Ok(r) => report(false, "cht", format!("{what}: {} answered {}", live.cht.url, r.status.as_u16())),
            Err(e) => report(false, "cht", format!("{what}: {e}")),
        }
    }
    match cht_user(&state, &ctx, &live).await {
        Ok(access) => {
            let roles = access.roles.join(", ");
            let online = if access.online {
                "online".to_owned()
            } else {
                format!(
                    "OFFLINE (CHT refuses it {}; give it a role with offline: false)",
                    crate::cht::access::ONLINE_FOR
                )
            };
            let missing: Vec<String> = access.missing.iter().map(|(p, call)| format!("{p} (for {call})")).collect();
            let permissions = if missing.is_empty() {
                "holds every permission it needs".to_owned()
            } else {
                format!("lacks {}", missing.join(", "))
            };
            report(
                access.is_enough(),
                "cht",
                format!("user {:?} (roles {roles}): {online}; {permissions}", access.name),
            );
        }
        Err(e) => report(false, "cht", format!("the CHT user's roles and permissions: {e}")),
    }
    if all_ok { ExitCode::SUCCESS } else { ExitCode::from(FAILED) }
}

/// The configured CHT user's standing (`GET /_session`, `GET /api/v1/settings`).
async fn cht_user(
    state: &crate::state::AppState,
    ctx: &crate::upstream::CallContext,
    live: &crate::settings::LiveConfig,
) -> Result<crate::cht::access::Access, String> {
    let cht = state.cht.recorder();
    let mut answers = Vec::new();
    for path in ["_session", "api/v1/settings"] {
        let r = cht
            .call(ctx, &live.cht, "check", reqwest::Method::GET, path, "application/json", None)
            .await
            .map_err(|e| e.to_string())?;
        if !r.status.is_success() {
            return Err(format!("GET /{path} answered {}", r.status.as_u16()));
        }
        answers.push(r.json().ok_or_else(|| format!("GET /{path}: not JSON"))?);
    }
    match answers.as_slice() {
        [session, settings] => Ok(crate::cht::access::assess(session, settings)),
        _ => Err("no answer".into()),
    }
}
