//! Operator maintenance of the embedded store, as etcd's `Maintenance` service offers it:
//! consistent snapshots ([`EmbeddedStore::snapshot`], restored with [`restore_snapshot`]),
//! hashes of the key-value history ([`EmbeddedStore::hash_kv`], [`EmbeddedStore::hash`]) and
//! defragmentation ([`EmbeddedStore::defragment`]).
//!
//! Each of them runs on the writer thread between two commits ([`run_between_commits`]): the
//! database then holds exactly the revision readers see, and no write can start until the
//! work is done (the writer's lock). Only the part that needs that runs there (a `VACUUM INTO`
//! copy, a scan, a `VACUUM`); reading and hashing a snapshot copy happen afterwards.
//!
//! What the hashes cover (CRC-32 Castagnoli, as etcd's):
//! - `hash_kv(rev)`: every row of the key-value log with revision `<= rev` (what compaction
//!   kept: each key's version as of the compaction revision and everything after it), ordered
//!   by revision, then key. Per row: revision, key length and key, value length and value,
//!   create revision, version, lease (8-byte big-endian integers, 4-byte lengths) and one byte
//!   that is 1 for a deletion. Equal histories (and equal compactions) give equal hashes, on
//!   any store and across restarts and restores.
//! - `hash()`: the same over every row, then each lease (id, granted TTL; not its deadline,
//!   which keep-alives move) in id order, then the compaction revision.

mod snapshot;

use std::sync::atomic::Ordering;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::persist::Db;
use super::{EmbeddedStore, Request, Shared};
use crate::{Result, StoreError};

pub use self::snapshot::{
    inspect_snapshot, restore_snapshot, verify_snapshot_hash, RestoreOptions, Snapshot,
    SnapshotInfo,
};

/// Work for the writer thread: it gets the database (`None` for a store in memory), or the
/// error that refuses the request.
pub(crate) type Task = Box<dyn FnOnce(Result<Option<&mut Db>>) + Send>;

/// Runs the maintenance requests of a batch before its writes (so they see the database at
/// the visible revision) and returns the other requests.
pub(crate) fn run_between_commits(requests: Vec<Request>, db: &mut Option<Db>) -> Vec<Request> {
    let mut rest = Vec::with_capacity(requests.len());
    for r in requests {
        match r {
            Request::Maintenance(task) => task(Ok(db.as_mut())),
            other => rest.push(other),
        }
    }
    rest
}

/// The answer of `Maintenance.HashKV`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvHash {
    /// CRC-32C of the history up to `hash_revision` (see the module's documentation).
    pub hash: u32,
    /// The compaction revision when the hash was taken.
    pub compact_revision: i64,
    /// The revision the hash covers.
    pub hash_revision: i64,
    /// The store's revision when the hash was taken.
    pub revision: i64,
}

fn sqlite(step: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::Backend(format!("{step}: sqlite: {e}"))
}

fn needs_disk(what: &str) -> StoreError {
    StoreError::InvalidRequest(format!(
        "{what} needs a store on disk; this embedded store lives in memory only"
    ))
}

impl EmbeddedStore {
    /// Runs `work` on the writer thread between two commits.
    async fn between_commits<T: Send + 'static>(
        &self,
        work: impl FnOnce(Option<&mut Db>, &Shared) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        let shared = self.shared.clone();
        let task: Task = Box::new(move |db| {
            let _ = reply.send(db.and_then(|db| work(db, &shared)));
        });
        let stopped = || StoreError::Unavailable("embedded store is stopped".into());
        self.tx
            .send(Request::Maintenance(task))
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// A consistent snapshot of the store at the revision readers see now: a compact copy of
    /// the database (keys with their history since the last compaction, leases, the
    /// compaction revision, the store's ID) made under the writer's lock. Writes wait only
    /// while SQLite copies; the copy is removed when the [`Snapshot`] is dropped.
    pub async fn snapshot(&self) -> Result<Snapshot> {
        let (copy, revision) = self
            .between_commits(|db, shared| {
                let db = db.ok_or_else(|| needs_disk("a snapshot"))?;
                let copy = snapshot::copy_path(db.connection())?;
                let target = copy.to_string_lossy().into_owned();
                if let Err(e) = db.connection().execute("VACUUM INTO ?1", [&target]) {
                    let _ = std::fs::remove_file(&copy);
                    return Err(sqlite("copying the database for a snapshot")(e));
                }
                Ok((copy, shared.visible.load(Ordering::Acquire)))
            })
            .await?;
        tokio::task::spawn_blocking(move || Snapshot::finish(copy, revision))
            .await
            .map_err(|e| StoreError::Backend(format!("snapshot task failed: {e}")))?
    }

    /// `Maintenance.HashKV`: a hash of the key-value history up to `revision` (0: now).
    pub async fn hash_kv(&self, revision: i64) -> Result<KvHash> {
        self.between_commits(move |db, shared| {
            let db = db.ok_or_else(|| needs_disk("HashKV"))?;
            let current = shared.visible.load(Ordering::Acquire);
            let compact_revision = shared.lock().state.compact_rev;
            let hash_revision = if revision <= 0 { current } else { revision };
            if hash_revision > current {
                return Err(StoreError::FutureRevision {
                    requested: hash_revision,
                    current,
                });
            }
            if hash_revision < compact_revision {
                return Err(StoreError::Compacted {
                    requested: hash_revision,
                    compact_revision,
                });
            }
            let mut crc = Crc32c::new();
            hash_rows(db.connection(), hash_revision, &mut crc)?;
            Ok(KvHash {
                hash: crc.finish(),
                compact_revision,
                hash_revision,
                revision: current,
            })
        })
        .await
    }

    /// `Maintenance.Hash`: a hash of everything the store keeps (all rows, the leases and the
    /// compaction revision); returns it with the store's revision.
    pub async fn hash(&self) -> Result<(u32, i64)> {
        self.between_commits(|db, shared| {
            let db = db.ok_or_else(|| needs_disk("Hash"))?;
            let mut crc = Crc32c::new();
            hash_rows(db.connection(), i64::MAX, &mut crc)?;
            let step = "hashing the leases";
            let mut leases = db
                .connection()
                .prepare("SELECT id, ttl FROM leases ORDER BY id")
                .map_err(sqlite(step))?;
            let mut rows = leases.query([]).map_err(sqlite(step))?;
            while let Some(row) = rows.next().map_err(sqlite(step))? {
                crc.update_i64(row.get(0).map_err(sqlite(step))?);
                crc.update_i64(row.get(1).map_err(sqlite(step))?);
            }
            crc.update_i64(shared.lock().state.compact_rev);
            Ok((crc.finish(), shared.visible.load(Ordering::Acquire)))
        })
        .await
    }

    /// `Maintenance.Defragment`: rewrites the database file without the space that deletes
    /// and compactions freed (SQLite's `VACUUM`, then a checkpoint that truncates the log), so
    /// the file and `Status`'s `db_size` shrink. Returns the new size in bytes; a store in
    /// memory has nothing to defragment.
    pub async fn defragment(&self) -> Result<i64> {
        self.between_commits(|db, shared| {
            let Some(db) = db else { return Ok(0) };
            db.connection()
                .execute_batch("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);")
                .map_err(sqlite("defragmenting the database"))?;
            let size = db.size();
            shared.db_size.store(size, Ordering::Relaxed);
            Ok(size)
        })
        .await
    }
}

/// Feeds the key-value rows with revision `<= upto`, in revision and key order, to `crc`.
fn hash_rows(conn: &Connection, upto: i64, crc: &mut Crc32c) -> Result<()> {
    let step = "hashing the key-value history";
    let mut stmt = conn
        .prepare(
            "SELECT rev, key, value, create_rev, version, lease, deleted FROM kv_log
             WHERE rev <= ?1 ORDER BY rev, key",
        )
        .map_err(sqlite(step))?;
    let mut rows = stmt.query([upto]).map_err(sqlite(step))?;
    while let Some(row) = rows.next().map_err(sqlite(step))? {
        crc.update_i64(row.get(0).map_err(sqlite(step))?);
        let key: Vec<u8> = row.get(1).map_err(sqlite(step))?;
        let value: Vec<u8> = row.get(2).map_err(sqlite(step))?;
        crc.update_bytes(&key);
        crc.update_bytes(&value);
        for column in 3..6 {
            crc.update_i64(row.get(column).map_err(sqlite(step))?);
        }
        let deleted: bool = row.get(6).map_err(sqlite(step))?;
        crc.update(&[u8::from(deleted)]);
    }
    Ok(())
}

/// The CRC-32C (Castagnoli) lookup table, reflected polynomial 0x82F63B78.
const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
            bit += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// A running CRC-32C, the checksum etcd's hashes use.
struct Crc32c(u32);

impl Crc32c {
    fn new() -> Self {
        Crc32c(!0)
    }

    fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = CRC32C_TABLE[((self.0 ^ u32::from(b)) & 0xff) as usize] ^ (self.0 >> 8);
        }
    }

    fn update_i64(&mut self, n: i64) {
        self.update(&n.to_be_bytes());
    }

    /// A length-prefixed byte string, so that ("ab", "c") and ("a", "bc") differ.
    fn update_bytes(&mut self, bytes: &[u8]) {
        self.update(&(bytes.len() as u32).to_be_bytes());
        self.update(bytes);
    }

    fn finish(self) -> u32 {
        !self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PutOptions, Store};

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        let mut crc = Crc32c::new();
        crc.update(b"123456789");
        assert_eq!(crc.finish(), 0xE306_9283);
    }

    #[tokio::test]
    async fn a_snapshot_written_out_is_read_back_with_its_revision_and_its_copy_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        for i in 0..10 {
            let key = format!("/k/{}", i % 4).into_bytes();
            store
                .put(key, b"v".to_vec(), PutOptions::default())
                .await
                .unwrap();
        }
        let snapshot = store.snapshot().await.unwrap();
        let copy = snapshot.database_path().to_path_buf();
        assert_eq!((snapshot.info.revision, snapshot.info.keys), (11, 4));
        let file = dir.path().join("out.db");
        let written = snapshot
            .write_to(&mut std::fs::File::create(&file).unwrap())
            .unwrap();
        assert_eq!(written, snapshot.info.file_size());
        assert_eq!(inspect_snapshot(&file).unwrap(), snapshot.info);
        drop(snapshot);
        assert!(!copy.exists(), "the copy in the data dir is removed");
    }

    #[tokio::test]
    async fn a_store_in_memory_refuses_snapshots_and_hashes_but_defragments_trivially() {
        let store = EmbeddedStore::in_memory();
        assert!(matches!(
            store.snapshot().await,
            Err(StoreError::InvalidRequest(_))
        ));
        assert!(matches!(
            store.hash_kv(0).await,
            Err(StoreError::InvalidRequest(_))
        ));
        assert_eq!(store.defragment().await.unwrap(), 0);
    }
}
