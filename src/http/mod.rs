//! HTTP plumbing shared by all routes: middleware and body extractors.

pub mod extract;
pub mod middleware;
pub mod serve;
