//! Shared application state: settings, the live (console-editable) config, OpenHIM status,
//! metrics and one recorder per upstream.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::cht::client::ChtClient;
use crate::deadletter::DeadLetterStore;
use crate::fhir::client::FhirClient;
use crate::fhir::store::FhirStore;
use crate::metrics::Metrics;
use crate::settings::{LiveConfig, Settings};
use crate::tls::Trust;
use crate::upstream::{Recorder, build_client};

/// Connect timeout for every upstream; whole-call timeouts are per-upstream settings.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Where the live config currently comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfigOrigin {
    Settings,
    Console,
}

/// What `/health/ready` and `/` show about the live config.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigStatus {
    pub origin: ConfigOrigin,
    /// Increases with every applied change.
    pub revision: u64,
    pub applied_at: DateTime<Utc>,
    /// The last console config that was refused, and why (the previous config stays in force).
    pub last_error: Option<String>,
}

/// The live config, swapped atomically when the console changes it.
pub struct LiveHandle {
    config: RwLock<Arc<LiveConfig>>,
    status: Mutex<ConfigStatus>,
}

impl LiveHandle {
    pub fn new(config: LiveConfig) -> Self {
        Self {
            config: RwLock::new(Arc::new(config)),
            status: Mutex::new(ConfigStatus {
                origin: ConfigOrigin::Settings,
                revision: 0,
                applied_at: Utc::now(),
                last_error: None,
            }),
        }
    }

    /// The config in force now; callers keep the `Arc` for the whole request so one request
    /// never mixes two configs.
    pub fn current(&self) -> Arc<LiveConfig> {
        self.config.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn apply(&self, config: LiveConfig, origin: ConfigOrigin) {
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        status.origin = origin;
        status.revision += 1;
        status.applied_at = Utc::now();
        status.last_error = None;
    }

    pub fn reject(&self, reason: String) {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).last_error = Some(reason);
    }

    pub fn status(&self) -> ConfigStatus {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The mediator's standing with OpenHIM, for `/` and `/health/ready`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OpenhimStatus {
    pub enabled: bool,
    pub registered: bool,
    pub channels_installed: bool,
    pub last_heartbeat: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// Shared, updatable [`OpenhimStatus`].
#[derive(Default)]
pub struct OpenhimStatusHandle(Mutex<OpenhimStatus>);

impl OpenhimStatusHandle {
    pub fn update(&self, f: impl FnOnce(&mut OpenhimStatus)) {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }

    pub fn get(&self) -> OpenhimStatus {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Everything a handler needs; cheap to clone: one shared allocation, so a clone is one reference
/// count (axum clones the state for every middleware and handler of every request; cloning each
/// of the ~20 shared parts instead showed up in the profile, bench/README.md).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct Shared {
    pub settings: Arc<Settings>,
    pub live: Arc<LiveHandle>,
    pub openhim: Arc<OpenhimStatusHandle>,
    pub metrics: Arc<Metrics>,
    pub started: Instant,
    pub urn: Arc<str>,
    /// The FHIR server, by intent (see [`crate::fhir::store`]).
    pub fhir: FhirStore,
    pub cht: ChtClient,
    pub dead_letters: DeadLetterStore,
    /// Calls to requesters' Endpoints (follow-up callbacks).
    pub callback: Recorder,
    /// Serialises concurrent copies of one outbound request.
    pub locks: crate::locks::KeyedLocks,
    /// The requester notifications started (see [`crate::outbound::notify`]).
    pub notifications: crate::outbound::notify::Started,
}

impl AppState {
    /// Builds the clients (one TLS-verifying HTTP client per upstream) and the shared state.
    pub fn new(settings: Arc<Settings>, urn: &str) -> anyhow::Result<Self> {
        let metrics = Arc::new(Metrics::new());
        let tls = &settings.tls;
        let trust = |pin, setting| Trust::load(tls.ca_bundle.as_deref(), pin, setting);
        let fhir_http = build_client(&trust(tls.fhir_pin, "FHIR_TLS_PIN_SHA256")?, CONNECT_TIMEOUT)?;
        let cht_http = build_client(&trust(tls.cht_pin, "CHT_TLS_PIN_SHA256")?, CONNECT_TIMEOUT)?;
        // The token endpoint is another server: the bundle's CAs, not the FHIR server's pin.
        let token_http = build_client(&trust(None, "")?, CONNECT_TIMEOUT)?;
        let fhir_recorder = Recorder::new(fhir_http, "fhir", metrics.clone()).with_token_client(token_http);
        let fhir = FhirStore::new(FhirClient::new(fhir_recorder));
        let cht = ChtClient::new(Recorder::new(cht_http, "cht", metrics.clone()));
        // Requesters' Endpoints are many and change: the bundle's CAs, no pin.
        let callback = Recorder::new(build_client(&trust(None, "")?, CONNECT_TIMEOUT)?, "callback", metrics.clone());
        let dead_letters = DeadLetterStore::open_with(&settings.dead_letter_db, settings.dead_letter_limits)?;
        let openhim = Arc::new(OpenhimStatusHandle::default());
        openhim.update(|s| s.enabled = settings.openhim.register);
        Ok(Self(Arc::new(Shared {
            live: Arc::new(LiveHandle::new(settings.live.clone())),
            settings,
            openhim,
            metrics,
            started: Instant::now(),
            urn: urn.into(),
            fhir,
            cht,
            dead_letters,
            callback,
            locks: Default::default(),
            notifications: Default::default(),
        })))
    }
}
