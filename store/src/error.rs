//! The store's error enum: one variant per way an operation can fail.

use thiserror::Error;

/// Everything a [`crate::Store`] call can fail with.
///
/// Retryable: [`StoreError::Unavailable`] (the backend is unreachable for now). Callers that
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
    #[error("watch was cancelled: {0}")]
    WatchCancelled(String),
}

impl StoreError {
    /// Whether repeating the same request later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}
