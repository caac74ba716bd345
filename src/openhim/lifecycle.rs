//! The mediator's life with OpenHIM: register (retrying with capped exponential backoff while the
//! core is unreachable), optionally install the default channels, heartbeat every interval
//! (the first asking for config), re-register on 404, and apply console config live.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::client::{Heartbeat, OpenhimClient, OpenhimError};
use super::registration::Registration;
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
            self.client.install_channels(&self.registration.urn, &[]).await?;
            tracing::info!(channels = ?self.registration.channel_names(), "installed default channels");
            self.status.update(|s| s.channels_installed = true);
        }
        Ok(())
    }

    /// Runs until the task is dropped/aborted.
    pub async fn run(self) {
        let interval = self.settings.openhim.heartbeat_interval;
        loop {
            self.register_until_done().await;
            // The first heartbeat after (re-)registering asks for config, so console edits made
            // while this mediator was away are applied.
            let mut want_config = true;
            loop {
                match self.client.heartbeat(&self.registration.urn, self.started.elapsed(), want_config).await {
                    Ok(answer) => {
                        want_config = false;
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
            match self.register_once(self.settings.openhim.install_channels).await {
                Ok(()) => return,
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
    pub fn apply_console_config(&self, config: &Map<String, Value>) {
        if !self.settings.openhim.apply_console_config {
            tracing::debug!("ignoring console config (OPENHIM_APPLY_CONSOLE_CONFIG=false)");
            return;
        }
        match LiveConfig::from_console(&self.settings.source, config) {
            Ok(live) => {
                self.live.apply(live, ConfigOrigin::Console);
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
