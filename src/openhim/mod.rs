//! Everything about being an OpenHIM mediator: API authentication, the client, the registration
//! document, the registration/heartbeat lifecycle and the response envelope.

pub mod auth;
pub mod client;
pub mod envelope;
pub mod lifecycle;
pub mod registration;
