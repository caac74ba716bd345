//! The FHIR side: the FHIR server client and the error resource. The typed model (fhirbolt)
//! joins here, isolated behind small non-generic functions, with the inbound work.

pub mod client;
pub mod operation_outcome;
