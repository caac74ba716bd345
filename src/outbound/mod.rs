//! The outbound side (other systems → CHT): requests arriving on the "FHIR requests to CHT"
//! channel become CHT records through `POST /api/v2/records`.

pub mod contact;
pub mod follow_up;
pub mod notify;
pub mod records;
pub mod requester;
