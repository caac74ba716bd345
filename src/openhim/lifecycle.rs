//! The mediator's life with OpenHIM: register (retrying with capped exponential backoff while the
//! core is unreachable), optionally install the default channels, heartbeat every interval,
//! re-register on 404, and apply console config live.
//!
//! Every heartbeat asks for the config (`config: true`): OpenHIM hands a console edit to the
//! first heartbeat after it only, so with several replicas the others would never see it. A
//! config is applied when it differs from the one applied last.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::client::{Heartbeat, OpenhimClient, OpenhimError};
use super::registration::Registration;
use crate::json::JsonExt;
use crate::metrics::Metrics;
use crate::settings::{LiveConfig, Settings};
use crate::state::{ConfigOrigin, LiveHandle, OpenhimStatusHandle};

/// First wait after a failed registration; doubles up to `OPENHIM_RETRY_MAX_MS`.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// Drives registration and heartbeats.
pub struct Lifecycle {
    pub client: OpenhimClient,
    pub registration: Registration,
    pub settings: Arc<Settings>,
    pub live: Arc<LiveHandle>,
    pub status: Arc<OpenhimStatusHandle>,
    pub metrics: Arc<Metrics>,
    pub started: Instant,
    /// The console config seen last (an unchanged one is not applied again).
    pub last_console_config: std::sync::Mutex<Option<Map<String, Value>>>,
}

impl Lifecycle {
    /// Registers once and, when asked, installs the default channels.
    pub async fn register_once(&self, install_channels: bool) -> Result<(), OpenhimError> {
        self.client.register(&self.registration.document).await?;
        tracing::info!(urn = %self.registration.urn, version = %self.registration.version, "registered with OpenHIM");
        self.metrics.set_registered(true);
        self.status.update(|s| {
            s.registered = true;
            s.last_error = None;
        });
        if install_channels {
            self.install_missing_channels().await?;
        }
        Ok(())
    }

    /// Installs the default channels the core does not have yet. Channel names are unique in
    /// OpenHIM: installing one that exists fails (500 `E11000 duplicate key`), so a restart must
    /// not try again — and a channel deleted in the console after it carried transactions is
    /// only marked `deleted`, its name still taken: it is restored to its default configuration
    /// (an install of the same name could never succeed). Returns the channels installed or restored.
    pub async fn install_missing_channels(&self) -> Result<Vec<String>, OpenhimError> {
        let existing = self.client.channels().await?;
        let mut missing = Vec::new();
        let mut done = Vec::new();
        for name in self.registration.channel_names() {
            let found = existing.iter().filter(|(n, ..)| *n == name);
            let (live, deleted): (Vec<_>, Vec<_>) = found.partition(|(.., deleted)| !deleted);
            match (live.is_empty(), deleted.first(), self.registration.channel_config(&name)) {
                (false, ..) => {}
                (true, Some((_, id, _)), Some(config)) => {
                    self.client.restore_channel(id, config).await?;
                    tracing::warn!(channel = %name, %id, "default channel was deleted in OpenHIM (its name stays taken): restored with its default configuration");
                    done.push(name);
                }
                _ => missing.push(name),
            }
        }
        if !missing.is_empty() {
            self.client.install_channels(&self.registration.urn, &missing).await?;
            tracing::info!(channels = ?missing, "installed default channels");
            done.extend(missing);
        }
        self.status.update(|s| s.channels_installed = true);
        Ok(done)
    }

    /// Runs until the task is dropped/aborted.
    pub async fn run(self) {
        let interval = self.settings.openhim.heartbeat_interval;
        loop {
            self.register_until_done().await;
            loop {
                match self.client.heartbeat(&self.registration.urn, self.started.elapsed(), true).await {
                    Ok(answer) => {
                        self.metrics.heartbeat("ok");
                        self.status.update(|s| {
                            s.last_heartbeat = Some(chrono::Utc::now());
                            s.last_error = None;
                        });
                        if let Heartbeat::Config(config) = answer {
                            self.apply_console_config(&config);
                        }
                    }
                    Err(OpenhimError::NotRegistered) => {
                        self.metrics.heartbeat("not_registered");
                        tracing::warn!("OpenHIM no longer knows this mediator; registering again");
                        self.metrics.set_registered(false);
                        self.status.update(|s| s.registered = false);
                        break;
                    }
                    Err(e) => {
                        self.metrics.heartbeat("error");
                        tracing::warn!(error = %e, "heartbeat to OpenHIM failed; will retry");
                        self.status.update(|s| s.last_error = Some(e.to_string()));
                    }
                }
                tokio::time::sleep(interval).await;
            }
        }
    }

    async fn register_until_done(&self) {
        let mut wait = FIRST_RETRY;
        let cap = self.settings.openhim.retry_max;
        loop {
            match self.register_once(false).await {
                Ok(()) => {
                    // A channel problem must not stop heartbeats: report it and carry on.
                    if self.settings.openhim.install_channels
                        && let Err(e) = self.install_missing_channels().await
                    {
                        tracing::warn!(error = %e, "could not install the default channels");
                        self.status.update(|s| s.last_error = Some(format!("installing channels: {e}")));
                    }
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, api = %self.settings.openhim.api_url, "could not register with OpenHIM");
                    self.status.update(|s| s.last_error = Some(e.to_string()));
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(cap);
                }
            }
        }
    }

    /// Validates a config object from the console and swaps it in; a bad one is refused whole.
    /// The same config as last time is left alone.
    pub fn apply_console_config(&self, config: &Map<String, Value>) {
        {
            let mut last = self.last_console_config.lock().unwrap_or_else(|p| p.into_inner());
            if last.as_ref() == Some(config) {
                return;
            }
            *last = Some(config.clone());
        }
        if !self.settings.openhim.apply_console_config {
            tracing::debug!("ignoring console config (OPENHIM_APPLY_CONSOLE_CONFIG=false)");
            return;
        }
        // OpenHIM hands back the registration's own defaults (the settings, passwords empty)
        // before anyone edited anything: that is not a console config, and the origin stays
        // `settings` until an edit differs from them.
        let defaults = self.registration.document.at("config").as_object() == Some(config);
        let origin = if defaults { ConfigOrigin::Settings } else { ConfigOrigin::Console };
        if defaults && self.live.status().origin == ConfigOrigin::Settings {
            return;
        }
        match LiveConfig::from_console(&self.settings.source, config) {
            Ok(live) => {
                self.live.apply(live, origin);
                self.metrics.console_config("applied");
                tracing::info!(revision = self.live.status().revision, "applied config from the OpenHIM console");
            }
            Err(e) => {
                self.metrics.console_config("rejected");
                tracing::warn!(error = %e, "refused config from the OpenHIM console; keeping the current one");
                self.live.reject(e.to_string());
            }
        }
    }
}
