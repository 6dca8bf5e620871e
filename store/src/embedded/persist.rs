//! Durability of the embedded store: an SQLite database (WAL, `synchronous=FULL`) holding the
//! MVCC log (one row per key change, as kine does), the leases with their deadlines, and the
//! compaction revision. The writer thread commits each batch of writes in one transaction.

use std::path::Path;

use rusqlite::{params, Connection};

use super::state::{SqlOp, State};
use crate::{KeyValue, Result, StoreError};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "nomos-store.sqlite";

pub(crate) struct Db {
    conn: Connection,
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(format!("sqlite: {e}"))
}

impl Db {
    pub fn open(dir: &Path) -> Result<Db> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Backend(format!("cannot create data dir {}: {e}", dir.display()))
        })?;
        let conn = Connection::open(dir.join(DB_FILE)).map_err(backend)?;
        // One process owns a data dir: the exclusive lock is taken below and held until close.
        conn.execute_batch(
            "PRAGMA locking_mode = EXCLUSIVE;
             PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS kv_log (
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
             );",
        )
        .map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DatabaseBusy => {
                StoreError::Backend(format!(
                    "data dir {} is in use by another process",
                    dir.display()
                ))
            }
            e => backend(e),
        })?;
        conn.execute_batch("BEGIN EXCLUSIVE; COMMIT;")
            .map_err(|_| {
                StoreError::Backend(format!(
                    "data dir {} is in use by another process",
                    dir.display()
                ))
            })?;
        Ok(Db { conn })
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
        let mut stmt = self
            .conn
            .prepare("SELECT id, rev, key, value, create_rev, version, lease, deleted FROM kv_log ORDER BY id")
            .map_err(backend)?;
        let mut rows = stmt.query([]).map_err(backend)?;
        while let Some(r) = rows.next().map_err(backend)? {
            let row: i64 = r.get(0).map_err(backend)?;
            let rev: i64 = r.get(1).map_err(backend)?;
            let kv = KeyValue {
                key: r.get(2).map_err(backend)?,
                value: r.get(3).map_err(backend)?,
                create_revision: r.get(4).map_err(backend)?,
                mod_revision: rev,
                version: r.get(5).map_err(backend)?,
                lease: r.get(6).map_err(backend)?,
            };
            let deleted: bool = r.get(7).map_err(backend)?;
            state.load_row(row, rev, kv, deleted);
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
}
