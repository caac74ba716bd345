//! The CHT side: the CHT API client and CHT document shapes (records API, hydrate, `_find`)
//! arrive with the outbound work.
