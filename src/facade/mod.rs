//! The FHIR facade: other systems read CHT data as FHIR on the "FHIR requests to CHT" channel —
//! a CHT contact as a Patient (by id, identifier or phone) or Practitioner, a CHT place as an
//! Organization and a Location — converted by the inbound side's code, and `GET /fhir/metadata`.
//! Nothing is cached: each read asks CHT, so it is as current as CHT.

pub mod capability;
pub mod format;
pub mod read;
pub mod search;
