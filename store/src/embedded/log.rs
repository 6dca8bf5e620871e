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

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};

use super::state::SqlOp;
use crate::{KeyValue, Result, StoreError};

/// Read connections kept open for reuse; more are opened while more readers read at once.
const POOL_SIZE: usize = 4;
/// SQLite's page cache of each read connection, in KiB.
const READ_CACHE_KIB: i64 = 8 * 1024;

/// Values read from the log, aligned with the rows asked for.
pub(crate) type Values = Vec<Option<Vec<u8>>>;

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

    /// The values written at these rows, in the same order; `None` for a row that is not in
    /// the log (compacted away).
    pub fn values(&self, rows: &[i64]) -> Result<Values> {
        if rows.is_empty() {
            return Ok(Vec::new());
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

    /// Reads each distinct row once, in id order (the file's order), then answers in the order
    /// asked.
    fn values(&self, rows: &[i64]) -> Result<Values> {
        let mut sorted = rows.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let found = self.with_connection(|conn| {
            let mut stmt = conn.prepare_cached("SELECT value FROM kv_log WHERE id = ?1")?;
            let mut out: Values = Vec::with_capacity(sorted.len());
            for row in &sorted {
                let mut hit = stmt.query([row])?;
                out.push(match hit.next()? {
                    Some(r) => Some(r.get(0)?),
                    None => None,
                });
            }
            Ok(out)
        })?;
        Ok(rows
            .iter()
            .map(|row| {
                let at = sorted.binary_search(row).ok()?;
                found[at].clone()
            })
            .collect())
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

/// The rows of a store in memory: slot `i` holds row `first + i` (`None` once compacted away
/// or never written), so a read is an index, not a search.
#[derive(Default)]
pub(crate) struct MemoryLog {
    rows: Mutex<MemoryRows>,
}

#[derive(Default)]
struct MemoryRows {
    first: i64,
    slots: VecDeque<Option<MemoryRow>>,
}

struct MemoryRow {
    rev: i64,
    kv: Arc<KeyValue>,
    deleted: bool,
}

impl MemoryRows {
    fn get(&self, row: i64) -> Option<&MemoryRow> {
        let at = usize::try_from(row.checked_sub(self.first)?).ok()?;
        self.slots.get(at)?.as_ref()
    }

    fn insert(&mut self, row: i64, value: MemoryRow) {
        if self.slots.is_empty() {
            self.first = row;
        }
        let Some(at) = row
            .checked_sub(self.first)
            .and_then(|d| usize::try_from(d).ok())
        else {
            // Rows only grow; one below the first kept would be a writer bug. Keep it anyway.
            let below = usize::try_from(self.first - row).unwrap_or(usize::MAX);
            for _ in 0..below {
                self.slots.push_front(None);
            }
            self.first = row;
            self.slots[0] = Some(value);
            return;
        };
        while self.slots.len() <= at {
            self.slots.push_back(None);
        }
        self.slots[at] = Some(value);
    }

    fn remove(&mut self, row: i64) {
        let Some(at) = row
            .checked_sub(self.first)
            .and_then(|d| usize::try_from(d).ok())
        else {
            return;
        };
        if let Some(slot) = self.slots.get_mut(at) {
            *slot = None;
        }
        while matches!(self.slots.front(), Some(None)) {
            self.slots.pop_front();
            self.first += 1;
        }
    }
}

impl MemoryLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryRows> {
        self.rows.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn values(&self, rows: &[i64]) -> Values {
        let map = self.lock();
        rows.iter()
            .map(|row| map.get(*row).map(|r| r.kv.value.clone()))
            .collect()
    }

    fn rows(&self, from: i64, to: i64) -> Vec<LogRow> {
        let map = self.lock();
        let end = map.first.saturating_add(map.slots.len() as i64);
        (from.max(map.first)..to.min(end))
            .filter_map(|row| map.get(row))
            .map(|r| LogRow {
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
                } => map.insert(
                    *row,
                    MemoryRow {
                        rev: *rev,
                        kv: kv.clone(),
                        deleted: *deleted,
                    },
                ),
                SqlOp::DeleteRow(row) => map.remove(*row),
                SqlOp::PutLease { .. } | SqlOp::DeleteLease(_) | SqlOp::SetCompact(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insert(row: i64) -> SqlOp {
        SqlOp::Insert {
            row,
            rev: row * 10,
            kv: Arc::new(KeyValue {
                key: format!("k{row}").into_bytes(),
                value: format!("v{row}").into_bytes(),
                create_revision: row,
                mod_revision: row * 10,
                version: 1,
                lease: 0,
            }),
            deleted: false,
        }
    }

    fn value(v: &str) -> Option<Vec<u8>> {
        Some(v.as_bytes().to_vec())
    }

    #[test]
    fn a_memory_log_answers_in_the_order_asked_with_holes_for_compacted_rows() {
        let log = Log::memory();
        // Rows 3, 4, 6 (5 was never written: a failed batch), then 3 and 6 compacted away.
        log.committed(&[insert(3), insert(4), insert(6)]);
        assert_eq!(
            log.values(&[6, 3, 5, 4, 4, 99, -1, 0]).unwrap(),
            vec![
                value("v6"),
                value("v3"),
                None,
                value("v4"),
                value("v4"),
                None,
                None,
                None
            ]
        );
        log.committed(&[SqlOp::DeleteRow(3), SqlOp::DeleteRow(6), insert(7)]);
        assert_eq!(
            log.values(&[3, 4, 6, 7]).unwrap(),
            vec![None, value("v4"), None, value("v7")]
        );
        let rows: Vec<i64> = log.rows(0, 100).unwrap().iter().map(|r| r.rev).collect();
        assert_eq!(rows, vec![40, 70]);
        assert!(log.rows(8, 4).unwrap().is_empty());
        // Everything compacted: the next row starts the log again.
        log.committed(&[SqlOp::DeleteRow(4), SqlOp::DeleteRow(7), insert(9)]);
        assert_eq!(
            log.values(&[4, 7, 9]).unwrap(),
            vec![None, None, value("v9")]
        );
        assert_eq!(log.rows(i64::MIN, i64::MAX).unwrap().len(), 1);
    }
}
