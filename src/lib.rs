//! cht-fhir-mediator: an OpenHIM mediator joining the Community Health Toolkit (CHT) to FHIR R4.
//!
//! Layout by concern: [`settings`] (typed configuration), [`telemetry`] (logging), [`startup`]
//! (building and running the app), [`routes`] and [`http`] (the HTTP surface), [`error`] (the one
//! API error → `OperationOutcome`), [`openhim`] (mediator citizenship), [`upstream`] (recorded
//! upstream calls), and the [`fhir`], [`cht`] and [`conversions`] sides.

// No panics on input-derived data in the request path: a panic is a 500, and CHT and OpenHIM
// retry a 500 for ever. These lints forbid the constructs that panic; the few justified
// exceptions carry an `#[allow]` with the reason. `clippy.toml` lets unit tests use them.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    clippy::unreachable,
    clippy::todo,
    clippy::unimplemented
)]

pub mod backfill;
pub mod cht;
pub mod cli;
pub mod conversions;
pub mod deadletter;
pub mod error;
pub mod facade;
pub mod fhir;
pub mod http;
pub mod inbound;
pub mod json;
pub mod limits;
pub mod locks;
pub mod metrics;
pub mod openhim;
pub mod outbound;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod tls;
pub mod upstream;
