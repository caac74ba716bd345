//! The embedded store (one SQLite file, `DEAD_LETTER_DB`): dead letters, and backfill checkpoints.
//!
//! Dead letters are CHT documents that can never convert as they are. CHT retries any
//! non-2xx answer every 5 minutes forever, so such a document is kept here durably (SQLite, one
//! file, `DEAD_LETTER_DB`), answered 2xx, and replayed with `cht-fhir-mediator dead-letters
//! replay` once the mapping or the document is fixed. Nothing is lost, nothing loops.
//!
//! A letter's id is a hash of the endpoint and the exact payload, so a redelivered document
//! updates its letter (attempts, last error) instead of adding another.
//!
//! The store is bounded ([`Limits`]): replayed letters are deleted after the retention period,
//! and when a new letter would pass the count or size cap, the oldest replayed letters make room;
//! if only pending letters are left, the new one is refused ([`StoreError::Full`]) — its sender is
//! answered 507 and keeps it (CHT delivers again), so a flood of unconvertible documents cannot
//! fill the disk and nothing is dropped silently.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// Bounds of the store (`DEAD_LETTER_MAX_COUNT`, `DEAD_LETTER_MAX_BYTES`,
/// `DEAD_LETTER_RETENTION_DAYS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_count: u64,
    /// Total payload bytes.
    pub max_bytes: u64,
    /// How long a replayed letter is kept after its replay.
    pub retention: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_count: 10_000, max_bytes: 256 * 1024 * 1024, retention: Duration::from_secs(30 * 86_400) }
    }
}

/// A failure of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("dead-letter store: {0}")]
    Db(String),
    /// At its cap with pending letters only; nothing was written.
    #[error(
        "the dead-letter store is full ({count} letters, {bytes} bytes; DEAD_LETTER_MAX_COUNT / \
         DEAD_LETTER_MAX_BYTES): replay or remove pending letters to make room"
    )]
    Full { count: u64, bytes: u64 },
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Db(e.to_string())
    }
}

/// Handle to the store; cheap to clone. Calls are short and rare (only permanent failures), so a
/// mutex over one connection is enough; async callers go through `spawn_blocking`.
#[derive(Clone)]
pub struct DeadLetterStore {
    conn: Arc<Mutex<Connection>>,
    limits: Limits,
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

/// Columns added after the first release: (name, definition, how to fill existing rows).
const MIGRATIONS: &[(&str, &str, &str)] = &[
    ("size", "INTEGER", "UPDATE dead_letters SET size = LENGTH(CAST(payload AS BLOB)) WHERE size IS NULL"),
    ("replayed_at", "TEXT", "UPDATE dead_letters SET replayed_at = last_seen WHERE status = 'replayed'"),
];

impl DeadLetterStore {
    /// Opens (creating if needed) the store at `path` with the default [`Limits`].
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, Limits::default())
    }

    /// Opens (creating if needed) the store at `path`, bounded by `limits`.
    pub fn open_with(path: &Path, limits: Limits) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Db(format!("{}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path).map_err(|e| StoreError::Db(format!("{}: {e}", path.display())))?;
        // WAL lets `dead-letters list` read while the service writes; the busy timeout covers the
        // moment both write (a replay while a push arrives).
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        for (column, definition, fill) in MIGRATIONS {
            let present: bool = conn.query_row(
                "SELECT COUNT(*) > 0 FROM pragma_table_info('dead_letters') WHERE name = ?1",
                [column],
                |r| r.get(0),
            )?;
            if !present {
                conn.execute_batch(&format!("ALTER TABLE dead_letters ADD COLUMN {column} {definition}; {fill};"))?;
            }
        }
        let store = Self { conn: Arc::new(Mutex::new(conn)), limits };
        store.with(|c| purge_expired(c, limits.retention))?;
        Ok(store)
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        Ok(f(&conn)?)
    }

    /// Stores (or updates) the letter for `payload` at `endpoint`; returns its id. A redelivered
    /// document only updates its letter, even at the cap; a new one may need room first.
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
        let size = i64::try_from(payload.len()).unwrap_or(i64::MAX);
        let limits = self.limits;
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction()?;
        purge_expired(&tx, limits.retention)?;
        let known: bool = tx.query_row("SELECT COUNT(*) > 0 FROM dead_letters WHERE id = ?1", [&id], |r| r.get(0))?;
        if !known {
            make_room(&tx, limits, size)?;
        }
        tx.execute(
            "INSERT INTO dead_letters (id, endpoint, document_id, first_seen, last_seen, attempts, reason, element, transaction_id, status, payload, size)
             VALUES (?1, ?2, ?3, ?4, ?4, 1, ?5, ?6, ?7, 'pending', ?8, ?9)
             ON CONFLICT(id) DO UPDATE SET last_seen = ?4, attempts = attempts + 1, reason = ?5, element = ?6,
                 transaction_id = ?7, status = 'pending', replayed_at = NULL",
            params![id, endpoint, document_id, now, reason, element, transaction_id, payload, size],
        )?;
        tx.commit()?;
        Ok(id)
    }

    /// Deletes letters by id (the admin's decision, e.g. documents fixed in CHT instead).
    pub fn remove(&self, id: &str) -> Result<bool, StoreError> {
        self.with(|c| c.execute("DELETE FROM dead_letters WHERE id = ?1", [id]).map(|n| n > 0))
    }

    /// Letters held and their payload bytes.
    pub fn usage(&self) -> Result<(u64, u64), StoreError> {
        self.with(usage)
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
        let now = crate::openhim::envelope::timestamp(chrono::Utc::now());
        self.with(|c| {
            c.execute("UPDATE dead_letters SET status = 'replayed', replayed_at = ?2 WHERE id = ?1", params![id, now])
                .map(drop)
        })
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

fn usage(c: &Connection) -> rusqlite::Result<(u64, u64)> {
    let (count, bytes): (i64, i64) =
        c.query_row("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM dead_letters", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok((count.unsigned_abs(), bytes.unsigned_abs()))
}

/// Deletes replayed letters whose replay is older than `retention`.
fn purge_expired(c: &Connection, retention: Duration) -> rusqlite::Result<()> {
    let cutoff = chrono::Duration::from_std(retention).ok().and_then(|r| chrono::Utc::now().checked_sub_signed(r));
    let Some(cutoff) = cutoff else { return Ok(()) };
    let cutoff = crate::openhim::envelope::timestamp(cutoff);
    c.execute("DELETE FROM dead_letters WHERE status = 'replayed' AND replayed_at <= ?1", [cutoff]).map(drop)
}

/// Deletes the oldest replayed letters until a new letter of `size` bytes fits; `Full` when only
/// pending letters are left and it still does not.
fn make_room(c: &Connection, limits: Limits, size: i64) -> Result<(), StoreError> {
    loop {
        let (count, bytes) = usage(c)?;
        if count < limits.max_count && bytes.saturating_add(size.unsigned_abs()) <= limits.max_bytes {
            return Ok(());
        }
        let freed = c.execute(
            "DELETE FROM dead_letters WHERE id = (SELECT id FROM dead_letters WHERE status = 'replayed' ORDER BY replayed_at LIMIT 1)",
            [],
        )?;
        if freed == 0 {
            return Err(StoreError::Full { count, bytes });
        }
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
    let digest = hash.finalize();
    hex::encode(digest.get(..12).unwrap_or(&digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path() -> std::path::PathBuf {
        std::env::temp_dir().join(format!("dl-{}.sqlite3", uuid::Uuid::new_v4()))
    }

    fn store() -> DeadLetterStore {
        DeadLetterStore::open(&path()).unwrap()
    }

    #[test]
    fn the_caps_refuse_new_letters_but_let_redeliveries_and_replayed_letters_make_room() {
        let limits = Limits { max_count: 3, max_bytes: 1000, retention: Duration::from_secs(3600) };
        let s = DeadLetterStore::open_with(&path(), limits).unwrap();
        let ids: Vec<String> = (0..3)
            .map(|i| s.record("/cht/patient", &format!("{{\"n\":{i}}}"), "x", None, None, None).unwrap())
            .collect();
        assert!(matches!(
            s.record("/cht/patient", "{\"n\":3}", "x", None, None, None),
            Err(StoreError::Full { count: 3, .. })
        ));
        // A redelivery of a stored document still updates its letter.
        assert_eq!(s.record("/cht/patient", "{\"n\":0}", "again", None, None, None).unwrap(), ids[0]);
        // A replayed letter gives up its place.
        s.mark_replayed(&ids[1]).unwrap();
        let fourth = s.record("/cht/patient", "{\"n\":3}", "x", None, None, None).unwrap();
        assert!(s.get(&ids[1]).unwrap().is_none() && s.get(&fourth).unwrap().is_some());
        // The byte cap counts payloads.
        let big = format!("{{\"big\":\"{}\"}}", "x".repeat(990));
        assert!(matches!(s.record("/cht/patient", &big, "x", None, None, None), Err(StoreError::Full { .. })));
        assert_eq!(s.usage().unwrap().0, 3);
    }

    #[test]
    fn replayed_letters_expire_after_the_retention_period() {
        let file = path();
        let s = DeadLetterStore::open_with(&file, Limits { retention: Duration::from_secs(3600), ..Limits::default() })
            .unwrap();
        let replayed = s.record("/cht/patient", "{\"a\":1}", "x", None, None, None).unwrap();
        let pending = s.record("/cht/patient", "{\"a\":2}", "x", None, None, None).unwrap();
        s.mark_replayed(&replayed).unwrap();
        drop(s);
        let s = DeadLetterStore::open_with(&file, Limits { retention: Duration::ZERO, ..Limits::default() }).unwrap();
        assert!(s.get(&replayed).unwrap().is_none(), "replayed and past retention");
        assert!(s.get(&pending).unwrap().is_some(), "pending letters never expire");
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
        assert_eq!(s.get(id.get(..6).unwrap()).unwrap().unwrap().id, id, "short ids work");
        s.mark_replayed(&id).unwrap();
        assert!(s.list(false).unwrap().is_empty());
        assert_eq!(s.list(true).unwrap()[0].status, "replayed");
        s.record("/cht/patient", "{}", "failed again", None, None, None).unwrap();
        assert_eq!(s.list(false).unwrap()[0].status, "pending");
    }
}
