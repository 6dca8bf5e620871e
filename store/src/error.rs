//! The store's error enum: one variant per way an operation can fail.

use thiserror::Error;

/// Everything a [`crate::Store`] call can fail with.
///
/// Retryable: [`StoreError::Unavailable`] (the backend is unreachable for now) and
/// [`StoreError::NoSpace`] (until space is freed). Callers that
/// watch must re-list on [`StoreError::Compacted`]. The rest are final for that request.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error(
        "required revision {requested} has been compacted (oldest available is {compact_revision})"
    )]
    Compacted {
        requested: i64,
        compact_revision: i64,
    },
    #[error("required revision {requested} is a future revision (current is {current})")]
    FutureRevision { requested: i64, current: i64 },
    #[error("lease {0:x} not found")]
    LeaseNotFound(i64),
    #[error("lease {0:x} already exists")]
    LeaseExists(i64),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("key is too large: {len} bytes (limit {limit})")]
    KeyTooLarge { len: usize, limit: usize },
    #[error("request is too large: {len} bytes (limit {limit})")]
    RequestTooLarge { len: usize, limit: usize },
    #[error("too many operations in transaction: {count} (limit {limit})")]
    TooManyOps { count: usize, limit: usize },
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store backend failed: {0}")]
    Backend(String),
    /// A key read back that is not UTF-8 (written by another client): it names nothing Nomos
    /// wrote, so it is skipped or refused, never decoded lossily into another name. `key` shows
    /// the bytes escaped (`/nomos/jobs/default/\xff`). Not retryable.
    #[error("store key \"{key}\" is not UTF-8")]
    NonUtf8Key { key: String },
    #[error("watch was cancelled: {0}")]
    WatchCancelled(String),
    /// The embedded store could not persist a write because its disk is full (etcd's NOSPACE
    /// alarm): writes are refused until space is freed; reads and watches keep working.
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    /// The embedded store will not start on a data directory whose database is missing,
    /// empty or damaged while the directory says a store lived there.
    #[error("refusing to open the store at {}: {problem}; {what_to_do}", path.display())]
    DataDirRefused {
        path: std::path::PathBuf,
        problem: String,
        what_to_do: String,
    },
    /// A snapshot file that cannot be read or restored: truncated, corrupt (its SHA-256 does
    /// not match), or not a Nomos snapshot.
    #[error("snapshot {}: {problem}", path.display())]
    SnapshotInvalid {
        path: std::path::PathBuf,
        problem: String,
    },
    /// A restore that would replace a store without being told to, or one in use.
    #[error("will not restore into {}: {problem}", path.display())]
    RestoreRefused {
        path: std::path::PathBuf,
        problem: String,
    },
}

impl StoreError {
    /// Whether repeating the same request later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::NoSpace)
    }
}
