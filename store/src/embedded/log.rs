//! Where the embedded store's values are read back from. The in-memory index ([`super::state`])
//! holds every key's versions with their metadata and the log row each was written to, but not
//! the values: a value is read from the log by its row when a read, a watch or a transaction
//! needs it (as etcd keeps its index in memory and its values in bbolt). On disk the log is the
//! SQLite file, read through a small pool of connections of its own (WAL lets them read while
//! the writer commits); a store in memory keeps its rows in a map that the writer fills when it
//! "commits" a batch, so both kinds of store read the same way.
//!
//! Rows are immutable once committed and are only deleted by compaction, so a reader that found
//! a row in the index reads the same value later, unless a compaction passed it meanwhile (the
//! callers check for that after reading).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};

use super::state::SqlOp;
use crate::{KeyValue, Result, StoreError};

/// Read connections kept open for reuse; more are opened while more readers read at once.
const POOL_SIZE: usize = 4;
/// SQLite's page cache of each read connection, in KiB.
const READ_CACHE_KIB: i64 = 8 * 1024;

/// One row of the log: a key as written at a revision, or its tombstone.
#[derive(Debug, Clone)]
pub(crate) struct LogRow {
    pub rev: i64,
    pub kv: KeyValue,
    pub deleted: bool,
}

/// The values' home: the SQLite file, or a map for a store in memory.
pub(crate) enum Log {
    Disk(DiskLog),
    Memory(MemoryLog),
}

impl Log {
    pub fn disk(path: PathBuf) -> Log {
        Log::Disk(DiskLog {
            path,
            pool: Mutex::new(Vec::new()),
        })
    }

    pub fn memory() -> Log {
        Log::Memory(MemoryLog::default())
    }

    /// The values written at these rows; a row that is not in the log (compacted away) is
    /// left out of the answer.
    pub fn values(&self, rows: &[i64]) -> Result<HashMap<i64, Vec<u8>>> {
        if rows.is_empty() {
            return Ok(HashMap::new());
        }
        match self {
            Log::Disk(disk) => disk.values(rows),
            Log::Memory(memory) => Ok(memory.values(rows)),
        }
    }

    /// The rows with ids in `from..to`, in order.
    pub fn rows(&self, from: i64, to: i64) -> Result<Vec<LogRow>> {
        match self {
            Log::Disk(disk) => disk.rows(from, to),
            Log::Memory(memory) => Ok(memory.rows(from, to)),
        }
    }

    /// A batch is durable: a store in memory keeps its rows now (the disk's writer has
    /// committed them to the file already).
    pub fn committed(&self, ops: &[SqlOp]) {
        if let Log::Memory(memory) = self {
            memory.apply(ops);
        }
    }
}

/// The SQLite file, read through connections apart from the writer's.
pub(crate) struct DiskLog {
    path: PathBuf,
    pool: Mutex<Vec<Connection>>,
}

fn read_error(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(format!("sqlite (reading values): {e}"))
}

impl DiskLog {
    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.execute_batch(&format!(
            "PRAGMA query_only = ON; PRAGMA cache_size = -{READ_CACHE_KIB};"
        ))?;
        Ok(conn)
    }

    /// Runs `read` in one read transaction on a pooled connection (one snapshot of the file).
    fn with_connection<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let pooled = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => self.open().map_err(read_error)?,
        };
        let out = conn
            .unchecked_transaction()
            .and_then(|tx| {
                let out = read(&tx)?;
                tx.finish()?;
                Ok(out)
            })
            .map_err(read_error)?;
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < POOL_SIZE {
            pool.push(conn);
        }
        Ok(out)
    }

    fn values(&self, rows: &[i64]) -> Result<HashMap<i64, Vec<u8>>> {
        let mut sorted = rows.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        self.with_connection(|conn| {
            let mut stmt = conn.prepare_cached("SELECT value FROM kv_log WHERE id = ?1")?;
            let mut out = HashMap::with_capacity(sorted.len());
            for row in sorted {
                let mut found = stmt.query([row])?;
                if let Some(r) = found.next()? {
                    out.insert(row, r.get(0)?);
                }
            }
            Ok(out)
        })
    }

    fn rows(&self, from: i64, to: i64) -> Result<Vec<LogRow>> {
        self.with_connection(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT rev, key, value, create_rev, version, lease, deleted
                 FROM kv_log WHERE id >= ?1 AND id < ?2 ORDER BY id",
            )?;
            let rows = stmt.query_map([from, to], |r| {
                let rev: i64 = r.get(0)?;
                Ok(LogRow {
                    rev,
                    kv: KeyValue {
                        key: r.get(1)?,
                        value: r.get(2)?,
                        create_revision: r.get(3)?,
                        mod_revision: rev,
                        version: r.get(4)?,
                        lease: r.get(5)?,
                    },
                    deleted: r.get(6)?,
                })
            })?;
            rows.collect()
        })
    }
}

/// The rows of a store in memory.
#[derive(Default)]
pub(crate) struct MemoryLog {
    rows: Mutex<BTreeMap<i64, MemoryRow>>,
}

struct MemoryRow {
    rev: i64,
    kv: Arc<KeyValue>,
    deleted: bool,
}

impl MemoryLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<i64, MemoryRow>> {
        self.rows.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn values(&self, rows: &[i64]) -> HashMap<i64, Vec<u8>> {
        let map = self.lock();
        rows.iter()
            .filter_map(|row| map.get(row).map(|r| (*row, r.kv.value.clone())))
            .collect()
    }

    fn rows(&self, from: i64, to: i64) -> Vec<LogRow> {
        if from >= to {
            return Vec::new();
        }
        self.lock()
            .range(from..to)
            .map(|(_, r)| LogRow {
                rev: r.rev,
                kv: KeyValue::clone(&r.kv),
                deleted: r.deleted,
            })
            .collect()
    }

    fn apply(&self, ops: &[SqlOp]) {
        let mut map = self.lock();
        for op in ops {
            match op {
                SqlOp::Insert {
                    row,
                    rev,
                    kv,
                    deleted,
                } => {
                    map.insert(
                        *row,
                        MemoryRow {
                            rev: *rev,
                            kv: kv.clone(),
                            deleted: *deleted,
                        },
                    );
                }
                SqlOp::DeleteRow(row) => {
                    map.remove(row);
                }
                SqlOp::PutLease { .. } | SqlOp::DeleteLease(_) | SqlOp::SetCompact(_) => {}
            }
        }
    }
}
