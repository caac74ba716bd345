//! The outbound side (other systems → CHT): requests arriving on the "FHIR requests to CHT"
//! channel become CHT records through `POST /api/v2/records`, and patients the EMR registered
//! become CHT contacts through `POST /api/v1/people`.

pub mod contact;
pub mod follow_up;
pub mod notify;
pub mod records;
pub mod register;
pub mod requester;
