//! The embedded store's snapshot file, and restoring a data directory from one.
//!
//! Layout, as etcd's snapshot stream: the database (an SQLite file, a whole number of pages)
//! followed by the SHA-256 of those bytes (32 bytes). The database is a compact copy of the
//! store's own (`kv_log`, `leases`, `meta` with the compaction revision and the store's ID)
//! plus `meta.snapshot_rev`, the revision it was taken at. `etcdctl snapshot save` writes it
//! as it arrives; `etcdctl snapshot status/restore` expect etcd's bbolt format and cannot read
//! it: [`inspect_snapshot`] and [`restore_snapshot`] (`nctl operator snapshot inspect/restore`)
//! can.
//!
//! Restoring keeps the leases, as etcd's restore does, each with its full TTL from the moment
//! of the restore (etcd renews leases when a member becomes leader), so their keys live on
//! until their owners either keep them alive again or let them expire.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use sha2::{Digest, Sha256};

use super::super::identity::ID_FILE;
use super::super::now_ms;
use super::super::persist::{Db, DB_FILE};
use crate::{Result, StoreError};

/// Bytes of the SHA-256 after the database.
pub const TRAILER_LEN: u64 = 32;
/// Smallest SQLite page: the database part is always a multiple of it.
const MIN_PAGE: u64 = 512;
/// The first 16 bytes of every SQLite database.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// What a snapshot holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The store's revision when the snapshot was taken.
    pub revision: i64,
    /// Its compaction revision then (history before it is gone).
    pub compact_revision: i64,
    /// Keys that exist at `revision`.
    pub keys: u64,
    /// Rows of key history kept (versions and deletions since the compaction).
    pub history_rows: u64,
    /// Leases held.
    pub leases: u64,
    /// The ID of the store it was taken from.
    pub store_id: Option<String>,
    /// Bytes of the database part (the file is 32 bytes longer).
    pub db_size: u64,
    /// SHA-256 of the database part: the file's last 32 bytes.
    pub sha256: [u8; 32],
}

impl SnapshotInfo {
    /// The SHA-256 in lower-case hex.
    pub fn sha256_hex(&self) -> String {
        self.sha256.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Bytes of the whole snapshot file.
    pub fn file_size(&self) -> u64 {
        self.db_size + TRAILER_LEN
    }
}

/// A snapshot taken by [`crate::EmbeddedStore::snapshot`]: a database copy in the data
/// directory, removed when this is dropped.
#[derive(Debug)]
pub struct Snapshot {
    pub info: SnapshotInfo,
    path: PathBuf,
}

fn invalid(path: &Path, problem: impl Into<String>) -> StoreError {
    StoreError::SnapshotInvalid {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

fn refused(dir: &Path, problem: impl Into<String>) -> StoreError {
    StoreError::RestoreRefused {
        path: dir.to_path_buf(),
        problem: problem.into(),
    }
}

fn io_error(what: String) -> impl FnOnce(std::io::Error) -> StoreError {
    move |e| StoreError::Backend(format!("{what}: {e}"))
}

fn sql_error(what: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::Backend(format!("{what}: sqlite: {e}"))
}

/// A fresh name beside the live database for a snapshot copy.
pub(super) fn copy_path(conn: &Connection) -> Result<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let db = conn
        .path()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| StoreError::Backend("the database has no file to copy".into()))?;
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    Ok(PathBuf::from(format!(
        "{db}.snapshot-{}-{n}.tmp",
        std::process::id()
    )))
}

impl Snapshot {
    /// Marks a fresh copy with its revision and as cleanly closed, then reads and hashes it.
    pub(super) fn finish(path: PathBuf, revision: i64) -> Result<Snapshot> {
        // Owned from here on: removed on every error path by `Drop`.
        let mut snapshot = Snapshot {
            info: SnapshotInfo {
                revision,
                compact_revision: 0,
                keys: 0,
                history_rows: 0,
                leases: 0,
                store_id: None,
                db_size: 0,
                sha256: [0; 32],
            },
            path,
        };
        let step = "marking the snapshot copy";
        let conn = Connection::open(&snapshot.path).map_err(sql_error(step))?;
        conn.execute_batch("PRAGMA journal_mode = DELETE;")
            .map_err(sql_error(step))?;
        conn.execute(
            "INSERT INTO meta (name, value) VALUES ('snapshot_rev', ?1), ('running', 0)
             ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            [revision],
        )
        .map_err(sql_error(step))?;
        let info = read_info(&conn).map_err(sql_error("reading the snapshot copy"))?;
        conn.close().map_err(|(_, e)| sql_error(step)(e))?;
        let (db_size, sha256) = hash_file(&snapshot.path, None)?;
        snapshot.info = SnapshotInfo {
            db_size,
            sha256,
            ..info
        };
        Ok(snapshot)
    }

    /// The database part (the stream sends it, then [`Snapshot::trailer`]).
    pub fn database_path(&self) -> &Path {
        &self.path
    }

    /// The 32 bytes that end the snapshot: the database's SHA-256.
    pub fn trailer(&self) -> [u8; 32] {
        self.info.sha256
    }

    /// Writes the whole snapshot file (database, then SHA-256) to `out`.
    pub fn write_to(&self, out: &mut impl Write) -> Result<u64> {
        let mut db =
            File::open(&self.path).map_err(io_error(format!("opening {}", self.path.display())))?;
        let n = std::io::copy(&mut db, out).map_err(io_error("writing the snapshot".into()))?;
        out.write_all(&self.trailer())
            .map_err(io_error("writing the snapshot".into()))?;
        Ok(n + TRAILER_LEN)
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// SHA-256 and length of a file's first `len` bytes (all of it when `None`).
fn hash_file(path: &Path, len: Option<u64>) -> Result<(u64, [u8; 32])> {
    let file = File::open(path).map_err(io_error(format!("opening {}", path.display())))?;
    let mut reader = file.take(len.unwrap_or(u64::MAX));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(io_error(format!("reading {}", path.display())))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total, hasher.finalize().into()))
}

/// What the snapshot's tables say (size and hash are the file's business).
fn read_info(conn: &Connection) -> rusqlite::Result<SnapshotInfo> {
    let meta = |name: &str| -> rusqlite::Result<Option<i64>> {
        conn.query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()
    };
    let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0).map(|n| n as u64));
    let compact_revision = meta("compact_rev")?.unwrap_or(0);
    let newest: i64 =
        conn.query_row("SELECT coalesce(max(rev), 0) FROM kv_log", [], |r| r.get(0))?;
    let revision = match meta("snapshot_rev")? {
        Some(rev) => rev,
        None => newest.max(compact_revision).max(1),
    };
    // SQLite gives a bare column the values of the row max() chose: each key's newest row.
    let keys = count(
        "SELECT count(*) FROM (SELECT deleted, max(id) FROM kv_log GROUP BY key) WHERE deleted = 0",
    )?;
    let store_id = conn
        .query_row("SELECT value FROM meta WHERE name = 'store_id'", [], |r| {
            r.get::<_, String>(0)
        })
        .optional()
        .unwrap_or(None);
    Ok(SnapshotInfo {
        revision,
        compact_revision,
        keys,
        history_rows: count("SELECT count(*) FROM kv_log")?,
        leases: count("SELECT count(*) FROM leases")?,
        store_id,
        db_size: 0,
        sha256: [0; 32],
    })
}

/// Checks the SHA-256 that ends a snapshot file of either kind (Nomos' or etcd's own: both
/// are a database of whole pages followed by its hash); returns the database part's length
/// and hash. Refuses a truncated or corrupt file.
pub fn verify_snapshot_hash(path: &Path) -> Result<(u64, [u8; 32])> {
    let mut file = File::open(path).map_err(|e| invalid(path, format!("cannot open it: {e}")))?;
    let len = file
        .metadata()
        .map_err(|e| invalid(path, format!("cannot read it: {e}")))?
        .len();
    if len < MIN_PAGE + TRAILER_LEN || !(len - TRAILER_LEN).is_multiple_of(MIN_PAGE) {
        let problem = format!(
            "it is truncated or damaged: {len} bytes is not a database of whole pages \
             followed by a 32-byte SHA-256"
        );
        return Err(invalid(path, problem));
    }
    let db_len = len - TRAILER_LEN;
    let mut trailer = [0u8; 32];
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(db_len))
        .and_then(|_| file.read_exact(&mut trailer))
        .map_err(|e| invalid(path, format!("cannot read its hash: {e}")))?;
    let (_, actual) = hash_file(path, Some(db_len))?;
    if actual != trailer {
        return Err(invalid(
            path,
            format!(
                "it is corrupt: the SHA-256 of its database is {}, but the file says {}",
                hex(&actual),
                hex(&trailer)
            ),
        ));
    }
    Ok((db_len, actual))
}

/// Checks that a file is a whole Nomos snapshot; returns the database part's length and hash.
fn verify_file(path: &Path) -> Result<(u64, [u8; 32])> {
    let mut file = File::open(path).map_err(|e| invalid(path, format!("cannot open it: {e}")))?;
    let len = file
        .metadata()
        .map_err(|e| invalid(path, format!("cannot read it: {e}")))?
        .len();
    let mut header = [0u8; 100];
    let head = file.read(&mut header).unwrap_or(0);
    if head >= 16 && &header[..16] != SQLITE_MAGIC {
        let problem = "it is not a Nomos snapshot (no SQLite database at its start); \
             a snapshot of etcd itself is restored with `etcdctl snapshot restore`";
        return Err(invalid(path, problem));
    }
    if let Some(expected) = size_in_header(&header).filter(|_| head == 100) {
        let held = len.saturating_sub(TRAILER_LEN);
        if expected != held {
            let problem = format!(
                "it is truncated or damaged: its database says it is {expected} bytes long, \
                 the file holds {held} before the hash"
            );
            return Err(invalid(path, problem));
        }
    }
    verify_snapshot_hash(path)
}

/// The database size an SQLite header states, when the header's count is valid.
fn size_in_header(header: &[u8; 100]) -> Option<u64> {
    let be32 = |at: usize| {
        u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let page = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65536,
        n => u64::from(n),
    };
    let pages = u64::from(be32(28));
    // The page count is only kept up to date when these two counters agree.
    (pages > 0 && be32(24) == be32(92)).then_some(page * pages)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Copies the database part of a verified snapshot to `to` (synced).
fn extract(path: &Path, db_len: u64, to: &Path) -> Result<()> {
    let _ = std::fs::remove_file(to);
    let mut src = File::open(path)
        .map_err(io_error(format!("opening {}", path.display())))?
        .take(db_len);
    let mut out = File::create(to).map_err(io_error(format!("creating {}", to.display())))?;
    std::io::copy(&mut src, &mut out).map_err(io_error(format!("writing {}", to.display())))?;
    out.sync_all()
        .map_err(io_error(format!("syncing {}", to.display())))
}

/// Opens an extracted database and checks that it holds a Nomos store.
fn open_extracted(snapshot: &Path, db: &Path, flags: OpenFlags) -> Result<Connection> {
    let unreadable =
        |e: rusqlite::Error| invalid(snapshot, format!("its database is unreadable: {e}"));
    let conn = Connection::open_with_flags(db, flags).map_err(unreadable)?;
    let check: String = conn
        .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
        .map_err(unreadable)?;
    if check != "ok" {
        return Err(invalid(
            snapshot,
            format!("its database is damaged (PRAGMA quick_check: {check})"),
        ));
    }
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master
             WHERE type = 'table' AND name IN ('kv_log', 'leases', 'meta')",
            [],
            |r| r.get(0),
        )
        .map_err(unreadable)?;
    if tables != 3 {
        return Err(invalid(
            snapshot,
            "it is an SQLite database but not a Nomos store snapshot (tables missing)",
        ));
    }
    Ok(conn)
}

/// Reads a snapshot file (`nctl operator snapshot inspect`): checks its hash and reads its
/// revision, keys and size. Refuses a truncated, corrupt or foreign file.
pub fn inspect_snapshot(path: &Path) -> Result<SnapshotInfo> {
    let (db_size, sha256) = verify_file(path)?;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let scratch = std::env::temp_dir().join(format!(
        "nomos-snapshot-inspect-{}-{}.sqlite",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let result = extract(path, db_size, &scratch).and_then(|()| {
        let conn = open_extracted(path, &scratch, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        read_info(&conn).map_err(|e| invalid(path, format!("its database is unreadable: {e}")))
    });
    let _ = std::fs::remove_file(&scratch);
    Ok(SnapshotInfo {
        db_size,
        sha256,
        ..result?
    })
}

/// How [`restore_snapshot`] treats a data directory that already holds a store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestoreOptions {
    /// Replace the store there (its database, log and identity file; other files stay).
    pub force: bool,
}

/// The files of a store in a data directory, which a restore writes or replaces.
fn store_files(dir: &Path) -> [PathBuf; 4] {
    [
        dir.join(DB_FILE),
        dir.join(format!("{DB_FILE}-wal")),
        dir.join(format!("{DB_FILE}-shm")),
        dir.join(ID_FILE),
    ]
}

/// Refuses a data directory that holds a store, unless forced and no process has it open.
fn check_target(dir: &Path, options: RestoreOptions) -> Result<()> {
    let present: Vec<String> = store_files(dir)
        .iter()
        .filter(|p| p.exists())
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    if present.is_empty() {
        return Ok(());
    }
    if !options.force {
        let problem = format!(
            "it already holds a store ({}); stop the server that uses it and restore with \
             --force to replace it",
            present.join(", ")
        );
        return Err(refused(dir, problem));
    }
    if super::super::persist::in_use(dir) {
        return Err(refused(
            dir,
            "its store is in use by a running process; stop it first",
        ));
    }
    Ok(())
}

/// Gives the restored leases their full TTL from now and marks the store as cleanly closed.
fn prepare(snapshot: &Path, staged: &Path) -> Result<SnapshotInfo> {
    let conn = open_extracted(snapshot, staged, OpenFlags::default())?;
    let step = "preparing the restored database";
    conn.execute(
        "UPDATE leases SET deadline_ms = ?1 + ttl * 1000",
        [now_ms()],
    )
    .map_err(sql_error(step))?;
    conn.execute(
        "INSERT INTO meta (name, value) VALUES ('running', 0)
         ON CONFLICT(name) DO UPDATE SET value = excluded.value",
        [],
    )
    .map_err(sql_error(step))?;
    let info = read_info(&conn).map_err(sql_error(step))?;
    conn.close().map_err(|(_, e)| sql_error(step)(e))?;
    Ok(info)
}

/// Restores the store of data directory `dir` from a snapshot file (`nctl operator snapshot
/// restore`). The file's hash is checked first; a truncated, corrupt or foreign file is
/// refused and `dir` left as it was. A directory that holds a store is refused unless
/// `options.force`. The store then opens at the snapshot's revision with its keys, history
/// since its compaction, leases (see the module's documentation) and store ID.
pub fn restore_snapshot(path: &Path, dir: &Path, options: RestoreOptions) -> Result<SnapshotInfo> {
    let (db_size, sha256) = verify_file(path)?;
    check_target(dir, options)?;
    std::fs::create_dir_all(dir).map_err(io_error(format!("creating {}", dir.display())))?;
    let staged = dir.join(format!("{DB_FILE}.restoring"));
    let prepared = extract(path, db_size, &staged).and_then(|()| prepare(path, &staged));
    let info = match prepared {
        Ok(info) => info,
        Err(e) => {
            let _ = std::fs::remove_file(&staged);
            return Err(e);
        }
    };
    for old in store_files(dir) {
        match std::fs::remove_file(&old) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io_error(format!("removing {}", old.display()))(e))
            }
            _ => {}
        }
    }
    std::fs::rename(&staged, dir.join(DB_FILE)).map_err(io_error(format!(
        "moving the restored database into {}",
        dir.display()
    )))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(format!("syncing {}", dir.display())))?;
    // Opening writes the identity file beside the database and checks the whole store.
    let (db, _) = Db::open(dir)?;
    let state = db.load()?;
    drop(db);
    if state.rev != info.revision {
        return Err(StoreError::Backend(format!(
            "the restored store opened at revision {}, but the snapshot was taken at {}",
            state.rev, info.revision
        )));
    }
    Ok(SnapshotInfo {
        db_size,
        sha256,
        ..info
    })
}
