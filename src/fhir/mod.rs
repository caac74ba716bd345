//! The FHIR side: the error resource today; the FHIR server client and the typed model
//! (fhirbolt, isolated here behind small non-generic functions) join with the inbound work.

pub mod operation_outcome;
