//! The embedded store (one SQLite file, `DEAD_LETTER_DB`): dead letters, and backfill checkpoints.
//!
//! Dead letters are CHT documents that can never convert as they are. CHT retries any
//! non-2xx answer every 5 minutes forever, so such a document is kept here durably (SQLite, one
//! file, `DEAD_LETTER_DB`), answered 2xx, and replayed with `cht-fhir-mediator dead-letters
//! replay` once the mapping or the document is fixed. Nothing is lost, nothing loops.
//!
//! A letter's id is a hash of the endpoint and the exact payload, so a redelivered document
//! updates its letter (attempts, last error) instead of adding another.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// One stored document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    pub id: String,
    /// The endpoint it came to, e.g. `/cht/encounter`.
    pub endpoint: String,
    /// The CHT document id, when the payload has one (for finding it; never patient data).
    pub document_id: Option<String>,
    pub first_seen: String,
    pub last_seen: String,
    pub attempts: i64,
    pub reason: String,
    /// The element at fault, when known.
    pub element: Option<String>,
    pub transaction_id: Option<String>,
    /// `pending` or `replayed`.
    pub status: String,
    pub payload: String,
}

/// A failure of the store itself.
#[derive(Debug, thiserror::Error)]
#[error("dead-letter store: {0}")]
pub struct StoreError(String);

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        Self(e.to_string())
    }
}

/// Handle to the store; cheap to clone. Calls are short and rare (only permanent failures), so a
/// mutex over one connection is enough; async callers go through `spawn_blocking`.
#[derive(Clone)]
pub struct DeadLetterStore {
    conn: Arc<Mutex<Connection>>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS dead_letters (
    id TEXT PRIMARY KEY,
    endpoint TEXT NOT NULL,
    document_id TEXT,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    reason TEXT NOT NULL,
    element TEXT,
    transaction_id TEXT,
    status TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_status ON dead_letters(status, last_seen);
CREATE TABLE IF NOT EXISTS checkpoints (
    name TEXT PRIMARY KEY,
    seq TEXT NOT NULL,
    saved_at TEXT NOT NULL
);
";

const COLUMNS: &str =
    "id, endpoint, document_id, first_seen, last_seen, attempts, reason, element, transaction_id, status, payload";

impl DeadLetterStore {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError(format!("{}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path).map_err(|e| StoreError(format!("{}: {e}", path.display())))?;
        // WAL lets `dead-letters list` read while the service writes; the busy timeout covers the
        // moment both write (a replay while a push arrives).
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self { conn: Arc::new(Mutex::new(conn)) })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        Ok(f(&conn)?)
    }

    /// Stores (or updates) the letter for `payload` at `endpoint`; returns its id.
    pub fn record(
        &self,
        endpoint: &str,
        payload: &str,
        reason: &str,
        element: Option<&str>,
        document_id: Option<&str>,
        transaction_id: Option<&str>,
    ) -> Result<String, StoreError> {
        let id = letter_id(endpoint, payload);
        let now = crate::openhim::envelope::timestamp(chrono::Utc::now());
        self.with(|c| {
            c.execute(
                "INSERT INTO dead_letters (id, endpoint, document_id, first_seen, last_seen, attempts, reason, element, transaction_id, status, payload)
                 VALUES (?1, ?2, ?3, ?4, ?4, 1, ?5, ?6, ?7, 'pending', ?8)
                 ON CONFLICT(id) DO UPDATE SET last_seen = ?4, attempts = attempts + 1, reason = ?5, element = ?6,
                     transaction_id = ?7, status = 'pending'",
                params![id, endpoint, document_id, now, reason, element, transaction_id, payload],
            )
        })?;
        Ok(id)
    }

    /// Letters, newest first; only pending ones unless `all`.
    pub fn list(&self, all: bool) -> Result<Vec<DeadLetter>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM dead_letters WHERE ?1 OR status = 'pending' ORDER BY last_seen DESC");
        self.with(|c| c.prepare(&sql)?.query_map([all], row)?.collect())
    }

    /// One letter by id (or a unique prefix of it, as `list` shows short ids).
    pub fn get(&self, id: &str) -> Result<Option<DeadLetter>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM dead_letters WHERE id LIKE ?1 || '%' LIMIT 2");
        let found: Vec<DeadLetter> = self.with(|c| c.prepare(&sql)?.query_map([id], row)?.collect())?;
        Ok(if found.len() == 1 { found.into_iter().next() } else { None })
    }

    pub fn mark_replayed(&self, id: &str) -> Result<(), StoreError> {
        self.with(|c| c.execute("UPDATE dead_letters SET status = 'replayed' WHERE id = ?1", [id]).map(drop))
    }

    /// A saved checkpoint (e.g. the last CHT changes seq a backfill completed).
    pub fn checkpoint(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.with(|c| c.query_row("SELECT seq FROM checkpoints WHERE name = ?1", [name], |r| r.get(0)).optional())
    }

    pub fn set_checkpoint(&self, name: &str, seq: &str) -> Result<(), StoreError> {
        let now = crate::openhim::envelope::timestamp(chrono::Utc::now());
        self.with(|c| {
            c.execute(
                "INSERT INTO checkpoints (name, seq, saved_at) VALUES (?1, ?2, ?3) ON CONFLICT(name) DO UPDATE SET seq = ?2, saved_at = ?3",
                params![name, seq, now],
            )
            .map(drop)
        })
    }

    /// Number of pending letters (a metric).
    pub fn pending(&self) -> Result<i64, StoreError> {
        self.with(|c| {
            c.query_row("SELECT COUNT(*) FROM dead_letters WHERE status = 'pending'", [], |r| r.get(0))
                .optional()
                .map(Option::unwrap_or_default)
        })
    }
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeadLetter> {
    Ok(DeadLetter {
        id: r.get(0)?,
        endpoint: r.get(1)?,
        document_id: r.get(2)?,
        first_seen: r.get(3)?,
        last_seen: r.get(4)?,
        attempts: r.get(5)?,
        reason: r.get(6)?,
        element: r.get(7)?,
        transaction_id: r.get(8)?,
        status: r.get(9)?,
        payload: r.get(10)?,
    })
}

fn letter_id(endpoint: &str, payload: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(endpoint.as_bytes());
    hash.update([0]);
    hash.update(payload.as_bytes());
    hex::encode(&hash.finalize()[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> DeadLetterStore {
        let path = std::env::temp_dir().join(format!("dl-{}.sqlite3", uuid::Uuid::new_v4()));
        DeadLetterStore::open(&path).unwrap()
    }

    #[test]
    fn a_redelivered_document_updates_its_letter() {
        let s = store();
        let a = s
            .record("/cht/encounter", r#"{"doc":1}"#, "no mapping", Some("doc.form"), Some("r1"), Some("tx1"))
            .unwrap();
        let b = s
            .record("/cht/encounter", r#"{"doc":1}"#, "no mapping (again)", Some("doc.form"), Some("r1"), Some("tx2"))
            .unwrap();
        assert_eq!(a, b);
        let letters = s.list(false).unwrap();
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].attempts, 2);
        assert_eq!(letters[0].reason, "no mapping (again)");
        let other = s.record("/cht/encounter", r#"{"doc":2}"#, "x", None, None, None).unwrap();
        assert_ne!(a, other);
        assert_eq!(s.pending().unwrap(), 2);
    }

    #[test]
    fn checkpoints_are_saved_and_replaced() {
        let s = store();
        assert_eq!(s.checkpoint("backfill").unwrap(), None);
        s.set_checkpoint("backfill", "12").unwrap();
        s.set_checkpoint("backfill", "40").unwrap();
        assert_eq!(s.checkpoint("backfill").unwrap().as_deref(), Some("40"));
    }

    #[test]
    fn replayed_letters_leave_the_pending_list_but_stay_listed_with_all() {
        let s = store();
        let id = s.record("/cht/patient", "{}", "x", None, None, None).unwrap();
        assert_eq!(s.get(&id[..6]).unwrap().unwrap().id, id, "short ids work");
        s.mark_replayed(&id).unwrap();
        assert!(s.list(false).unwrap().is_empty());
        assert_eq!(s.list(true).unwrap()[0].status, "replayed");
        s.record("/cht/patient", "{}", "failed again", None, None, None).unwrap();
        assert_eq!(s.list(false).unwrap()[0].status, "pending");
    }
}
