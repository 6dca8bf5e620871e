//! Durability of the embedded store: an SQLite database (WAL, `synchronous=FULL`) holding the
//! MVCC log (one row per key change, as kine does), the leases with their deadlines, and the
//! compaction revision. The writer thread commits each batch of writes in one transaction.

use std::path::Path;

use rusqlite::{params, Connection};

use super::identity;
use super::state::{Meta, SqlOp, State};
use crate::{Result, StoreError};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "nomos-store.sqlite";

pub(crate) struct Db {
    conn: Connection,
    /// The data directory's lock, held while the store is open.
    _lock: std::fs::File,
}

/// SQLite's errors as store errors; a full disk is etcd's NOSPACE.
fn backend(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull => {
            StoreError::NoSpace
        }
        _ => StoreError::Backend(format!("sqlite: {e}")),
    }
}

/// The tables, created with a new store (and kept by [`Db::open`] on existing ones).
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS kv_log (
         id INTEGER PRIMARY KEY,
         rev INTEGER NOT NULL,
         key BLOB NOT NULL,
         value BLOB NOT NULL,
         create_rev INTEGER NOT NULL,
         version INTEGER NOT NULL,
         lease INTEGER NOT NULL,
         deleted INTEGER NOT NULL
     );
     CREATE TABLE IF NOT EXISTS leases (
         id INTEGER PRIMARY KEY,
         ttl INTEGER NOT NULL,
         deadline_ms INTEGER NOT NULL
     );
     CREATE TABLE IF NOT EXISTS meta (
         name TEXT PRIMARY KEY,
         value INTEGER NOT NULL
     );";

/// SQLite's errors while opening: a corrupt file is a refusal, naming the file.
fn opening(db_path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase
            ) =>
        {
            identity::refuse(db_path, format!("the database is damaged ({e})"))
        }
        _ => backend(e),
    }
}

/// What was on disk before the database was opened.
struct Found {
    id: Option<String>,
    db_len: Option<u64>,
    wal_present: bool,
    /// The log holds frames (a crash before the first checkpoint leaves a 0-byte database).
    wal_has_frames: bool,
}

fn look(dir: &Path) -> Result<Found> {
    let db = dir.join(DB_FILE);
    let db_len = match std::fs::metadata(&db) {
        Ok(m) => Some(m.len()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(identity::refuse(
                &db,
                format!("cannot read the database: {e}"),
            ))
        }
    };
    Ok(Found {
        id: identity::read(dir)?,
        db_len,
        wal_present: wal_path(dir).exists(),
        wal_has_frames: std::fs::metadata(wal_path(dir)).is_ok_and(|m| m.len() > 0),
    })
}

fn wal_path(dir: &Path) -> std::path::PathBuf {
    dir.join(format!("{DB_FILE}-wal"))
}

/// The refusals that need no SQLite: a missing or empty database where a store lived.
fn refuse_before_opening(found: &Found, db_path: &Path) -> Result<()> {
    match (&found.id, found.db_len) {
        (Some(_), None) => Err(identity::refuse(
            db_path,
            "the database file is missing, but the identity file beside it says a store lived here",
        )),
        (_, Some(0)) if !found.wal_has_frames => Err(identity::refuse(
            db_path,
            "the database file is empty (0 bytes)",
        )),
        (None, None) if found.wal_present => Err(identity::refuse(
            db_path,
            "the database file is missing, but its write-ahead log is there",
        )),
        _ => Ok(()),
    }
}

impl Db {
    /// Opens the database in `dir`, creating a new store only when the directory holds neither
    /// a database nor an identity file (see [`identity`]); returns it with the store's ID.
    pub fn open(dir: &Path) -> Result<(Db, String)> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Backend(format!("cannot create data dir {}: {e}", dir.display()))
        })?;
        let found = look(dir)?;
        let db_path = dir.join(DB_FILE);
        refuse_before_opening(&found, &db_path)?;
        let conn = Connection::open(&db_path).map_err(opening(&db_path))?;
        let lock = lock(&conn, dir, &db_path)?;
        let db = Db { conn, _lock: lock };
        let id = if found.db_len.is_none() {
            db.create()?
        } else {
            db.verify(&db_path, &found)?
        };
        // The identity file comes last: a crash before it leaves a database that is adopted.
        db.mark_started(&db_path)?;
        if found.id.is_none() {
            identity::write(dir, &id)?;
        }
        Ok((db, id))
    }

    /// Creates the tables of a new store and gives it an ID.
    fn create(&self) -> Result<String> {
        let id = identity::new_id()?;
        self.conn.execute_batch(SCHEMA).map_err(backend)?;
        self.set_meta_text("store_id", &id).map_err(backend)?;
        Ok(id)
    }

    /// Checks an existing database before trusting it; returns its store ID.
    fn verify(&self, db_path: &Path, found: &Found) -> Result<String> {
        let check: String = self
            .conn
            .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
            .map_err(|e| identity::refuse(db_path, format!("the database is unreadable: {e}")))?;
        if check != "ok" {
            return Err(identity::refuse(
                db_path,
                format!("the database is damaged (PRAGMA quick_check: {check})"),
            ));
        }
        let tables: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('kv_log', 'leases', 'meta')",
                [],
                |r| r.get(0),
            )
            .map_err(|e| identity::refuse(db_path, format!("the database is unreadable: {e}")))?;
        if tables != 3 {
            return Err(identity::refuse(
                db_path,
                "the database does not hold a Nomos store (tables missing)",
            ));
        }
        if self.meta_int("running") == Some(1) && !found.wal_present {
            return Err(identity::refuse(
                db_path,
                "the write-ahead log (-wal file) is missing although the store did not shut down cleanly, so acknowledged writes are lost",
            ));
        }
        let stored = self.meta_text("store_id");
        match (stored, &found.id) {
            (Some(db_id), Some(file_id)) if &db_id != file_id => Err(identity::refuse(
                db_path,
                format!(
                    "the database belongs to store {db_id}, but the identity file says {file_id}"
                ),
            )),
            (Some(db_id), _) => Ok(db_id),
            (None, Some(file_id)) => {
                self.set_meta_text("store_id", file_id).map_err(backend)?;
                Ok(file_id.clone())
            }
            (None, None) => {
                let id = identity::new_id()?;
                tracing::info!(store_id = %id, "adopting a data directory made by an earlier version");
                self.set_meta_text("store_id", &id).map_err(backend)?;
                Ok(id)
            }
        }
    }

    fn meta_int(&self, name: &str) -> Option<i64> {
        self.conn
            .query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .ok()
    }

    fn meta_text(&self, name: &str) -> Option<String> {
        self.conn
            .query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .ok()
    }

    fn set_meta_text(&self, name: &str, value: &str) -> rusqlite::Result<()> {
        self.conn
            .execute(
                "INSERT INTO meta (name, value) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                params![name, value],
            )
            .map(drop)
    }

    /// Sets the running marker and copies it into the database file itself (not only the log).
    /// On a full disk the store still starts, to serve reads: the marker then stays in the log.
    fn mark_started(&self, db_path: &Path) -> Result<()> {
        let marked = self
            .mark_running(true)
            .and_then(|()| self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);"));
        match marked.map_err(opening(db_path)) {
            Err(StoreError::NoSpace) => {
                tracing::warn!(path = %db_path.display(), "the disk is full: the store starts, and refuses writes until there is room");
                Ok(())
            }
            other => other,
        }
    }

    /// Records whether the store is running (1) or was shut down cleanly (0).
    pub fn mark_running(&self, running: bool) -> rusqlite::Result<()> {
        self.conn
            .execute(
                "INSERT INTO meta (name, value) VALUES ('running', ?1)
                 ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                [running as i64],
            )
            .map(drop)
    }

    /// A durable write of about `bytes` (written and dropped in one transaction): succeeds
    /// once the disk has room for a batch of that size again.
    pub fn probe(&mut self, bytes: usize) -> Result<()> {
        let tx = self.conn.transaction().map_err(backend)?;
        tx.execute(
            "INSERT INTO meta (name, value) VALUES ('probe', zeroblob(?1))
             ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            [bytes.max(4096) as i64],
        )
        .map_err(backend)?;
        tx.execute("DELETE FROM meta WHERE name = 'probe'", [])
            .map_err(backend)?;
        tx.commit().map_err(backend)
    }

    /// Rebuilds the in-memory state from the database.
    pub fn load(&self) -> Result<State> {
        let mut state = State::new();
        let compact: Option<i64> = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE name = 'compact_rev'",
                [],
                |r| r.get(0),
            )
            .ok();
        state.compact_rev = compact.unwrap_or(0);
        // The values stay in the file: the index keeps their rows and lengths only.
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, rev, key, length(value), create_rev, version, lease, deleted
                 FROM kv_log ORDER BY id",
            )
            .map_err(backend)?;
        let mut rows = stmt.query([]).map_err(backend)?;
        while let Some(r) = rows.next().map_err(backend)? {
            let row: i64 = r.get(0).map_err(backend)?;
            let rev: i64 = r.get(1).map_err(backend)?;
            let key: Vec<u8> = r.get(2).map_err(backend)?;
            let deleted: bool = r.get(7).map_err(backend)?;
            let meta = Meta {
                value_len: r.get::<_, i64>(3).map_err(backend)? as u32,
                create_revision: r.get(4).map_err(backend)?,
                version: r.get(5).map_err(backend)?,
                lease: r.get(6).map_err(backend)?,
            };
            state.load_row(row, rev, &key, (!deleted).then_some(meta));
        }
        let mut stmt = self
            .conn
            .prepare("SELECT id, ttl, deadline_ms FROM leases")
            .map_err(backend)?;
        let leases = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(backend)?;
        for lease in leases {
            let (id, ttl, deadline) = lease.map_err(backend)?;
            state.load_lease(id, ttl, deadline);
        }
        state.finish_load();
        Ok(state)
    }

    /// Commits one batch durably (returns once SQLite has synced the WAL).
    pub fn commit(&mut self, ops: &[SqlOp]) -> Result<()> {
        let tx = self.conn.transaction().map_err(backend)?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO kv_log (id, rev, key, value, create_rev, version, lease, deleted)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(backend)?;
            for op in ops {
                match op {
                    SqlOp::Insert {
                        row,
                        rev,
                        kv,
                        deleted,
                    } => {
                        insert
                            .execute(params![
                                row,
                                rev,
                                kv.key,
                                kv.value,
                                kv.create_revision,
                                kv.version,
                                kv.lease,
                                deleted
                            ])
                            .map_err(backend)?;
                    }
                    SqlOp::DeleteRow(row) => {
                        tx.execute("DELETE FROM kv_log WHERE id = ?1", [row])
                            .map_err(backend)?;
                    }
                    SqlOp::PutLease {
                        id,
                        ttl,
                        deadline_ms,
                    } => {
                        tx.execute(
                            "INSERT INTO leases (id, ttl, deadline_ms) VALUES (?1, ?2, ?3)
                             ON CONFLICT(id) DO UPDATE SET ttl = excluded.ttl, deadline_ms = excluded.deadline_ms",
                            params![id, ttl, deadline_ms],
                        )
                        .map_err(backend)?;
                    }
                    SqlOp::DeleteLease(id) => {
                        tx.execute("DELETE FROM leases WHERE id = ?1", [id])
                            .map_err(backend)?;
                    }
                    SqlOp::SetCompact(rev) => {
                        tx.execute(
                            "INSERT INTO meta (name, value) VALUES ('compact_rev', ?1)
                             ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                            [rev],
                        )
                        .map_err(backend)?;
                    }
                }
            }
        }
        tx.commit().map_err(backend)
    }

    /// Size of the database file in bytes.
    pub fn size(&self) -> i64 {
        self.conn
            .query_row(
                "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
                [],
                |r| r.get(0),
            )
            .unwrap_or(0)
    }

    /// The connection, for maintenance between commits (`maintenance`: snapshot copies,
    /// hashes, VACUUM).
    pub(crate) fn connection(&self) -> &Connection {
        &self.conn
    }
}

/// File name of the lock that keeps a data directory to one process.
pub const LOCK_FILE: &str = "nomos-store.lock";

/// Whether a running store holds the data directory `dir` (its lock is taken).
pub(crate) fn in_use(dir: &Path) -> bool {
    std::fs::File::open(dir.join(LOCK_FILE))
        .is_ok_and(|f| matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)))
}

/// Takes the data directory for this process (an exclusive lock on [`LOCK_FILE`], held as long
/// as the returned file is open), then sets WAL and full sync. SQLite's own locking stays
/// normal, so the store's read connections ([`super::log`]) read beside the writer.
fn lock(conn: &Connection, dir: &Path, db_path: &Path) -> Result<std::fs::File> {
    let in_use = || {
        StoreError::Backend(format!(
            "data dir {} is in use by another process",
            dir.display()
        ))
    };
    let lock_path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", lock_path.display())))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Err(in_use()),
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(StoreError::Backend(format!(
                "cannot lock {}: {e}",
                lock_path.display()
            )))
        }
    }
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;",
    )
    .map_err(|e| match e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DatabaseBusy => {
            in_use()
        }
        e => opening(db_path)(e),
    })?;
    Ok(file)
}

impl Drop for Db {
    fn drop(&mut self) {
        // A clean stop clears the running marker. If that cannot be written (a full disk), the
        // connection is leaked instead of closed, so SQLite keeps the log file that the marker
        // says must be there.
        if self.mark_running(false).is_err() {
            let conn = std::mem::replace(
                &mut self.conn,
                Connection::open_in_memory().expect("an in-memory SQLite connection"),
            );
            std::mem::forget(conn);
        }
    }
}
