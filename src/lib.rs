//! cht-fhir-mediator: an OpenHIM mediator joining the Community Health Toolkit (CHT) to FHIR R4.
//!
//! Layout by concern: [`settings`] (typed configuration), [`telemetry`] (logging), [`startup`]
//! (building and running the app), [`routes`] and [`http`] (the HTTP surface), [`error`] (the one
//! API error → `OperationOutcome`), [`openhim`] (mediator citizenship), [`upstream`] (recorded
//! upstream calls), and the [`fhir`], [`cht`] and [`conversions`] sides.

pub mod backfill;
pub mod cht;
pub mod cli;
pub mod conversions;
pub mod deadletter;
pub mod error;
pub mod fhir;
pub mod http;
pub mod inbound;
pub mod locks;
pub mod metrics;
pub mod openhim;
pub mod outbound;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod upstream;
