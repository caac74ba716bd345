//! The FHIR side: the FHIR server client, the profiles the mediator's output is checked against,
//! the typed model (fhirbolt, isolated in [`model`] behind small non-generic functions) and the
//! error resource.

pub mod base;
pub mod capabilities;
pub mod client;
pub mod model;
pub mod operation_outcome;
pub mod profiles;
pub mod store;
pub mod transaction;
pub mod validate;
