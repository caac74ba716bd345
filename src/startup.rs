//! Builds the application from settings; `main` and the tests start it the same way.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::http::serve::{ConnectionLimits, serve};
use crate::openhim::client::OpenhimClient;
use crate::openhim::lifecycle::Lifecycle;
use crate::openhim::registration::Registration;
use crate::routes;
use crate::settings::Settings;
use crate::state::AppState;
use crate::upstream::build_client;

/// A built, bound, not yet running mediator.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    lifecycle: Option<Lifecycle>,
}

impl Application {
    /// Validates the registration document, builds the clients and binds the port.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let address = (settings.server.host, settings.server.port);
        let listener =
            TcpListener::bind(address).await.with_context(|| format!("binding {}:{}", address.0, address.1))?;
        let registration = Registration::from_settings(&settings, listener.local_addr()?.port())?;
        let settings = Arc::new(settings);
        let state = AppState::new(settings.clone(), &registration.urn)?;
        let lifecycle = if settings.openhim.register {
            let http = build_client(&settings.tls.openhim_trust()?, settings.openhim.timeout)?;
            Some(Lifecycle {
                client: OpenhimClient::new(&settings.openhim, http, state.metrics.clone()),
                registration,
                settings,
                live: state.live.clone(),
                status: state.openhim.clone(),
                metrics: state.metrics.clone(),
                started: state.started,
                last_console_config: Default::default(),
            })
        } else {
            None
        };
        Ok(Self { listener, state, lifecycle })
    }

    /// The bound port (useful with `PORT=0`).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or_default()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGINT or SIGTERM, then drains in-flight requests.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `shutdown` completes. Registration runs in the background so the mediator
    /// answers from the first moment, whatever state OpenHIM is in.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let background = self.lifecycle.map(|l| tokio::spawn(l.run()));
        tracing::info!(
            port = self.listener.local_addr()?.port(),
            version = env!("CARGO_PKG_VERSION"),
            "cht-fhir-mediator listening"
        );
        let server = &self.state.settings.server;
        let limits = ConnectionLimits {
            max_connections: server.max_connections,
            header_read_timeout: server.header_read_timeout,
            idle_timeout: server.idle_timeout,
        };
        let metrics = self.state.metrics.clone();
        let app = routes::router(self.state);
        let served = serve(self.listener, app, limits, metrics, shutdown).await;
        if let Some(task) = background {
            // Wait for the abort to land, so no heartbeat or re-registration outlives the server.
            task.abort();
            let _ = task.await;
        }
        tracing::info!("stopped");
        Ok(served?)
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received; shutting down"),
        () = terminate => tracing::info!("SIGTERM received; shutting down"),
    }
}
