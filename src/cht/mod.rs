//! The CHT side: the CHT API client. The records API and `_find` for look-before-write join with
//! the outbound work.

pub mod client;
