//! The CHT side: the CHT API client, and what the mediator's CHT user must be allowed. The records
//! API and the look-before-write join with the outbound work.

pub mod access;
pub mod client;
