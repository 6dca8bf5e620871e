//! The store: the only way Nomos touches persistent state.
//!
//! Layout:
//! - [`types`]: the request and response values of the [`Store`] trait, shaped after etcd v3
//!   (revisions, key ranges, transactions with compares, watch events, leases).
//! - [`Store`]: the async trait every backend implements with etcd's semantics.
//! - [`embedded`]: the default backend, durable on local disk (SQLite log, group commit), one
//!   process; watches pushed in-process.
//! - [`etcd`]: the backend for clusters, through the `etcd-client` crate; watches resume after
//!   reconnects.
//! - [`validate`]: request limits and checks shared by both backends, so bad input gets the same
//!   typed error everywhere.
//! - [`keys`]: typed helpers for the key layout in `docs/keys.md`.
//! - [`cluster`]: the cluster's identity key (`/nomos/cluster`), created once by the first server.
//! - [`error`]: the crate's one error enum.
//! - `test_util` (feature `test-util`): a real etcd process for tests and a store factory by
//!   backend name, so other crates' suites can run against both backends.

pub mod cluster;
pub mod embedded;
pub mod error;
pub mod etcd;
pub mod keys;
#[cfg(feature = "test-util")]
pub mod test_util;
pub mod types;
pub mod validate;

pub use embedded::{EmbeddedOptions, EmbeddedStore, DEFAULT_HISTORY};
pub use etcd::{EtcdConfig, EtcdStore};

pub use error::StoreError;
pub use types::*;

use async_trait::async_trait;

/// Result of every store operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A key-value store with etcd v3 semantics.
///
/// Every committed write transaction (a put, a delete that removed something, or a txn with at
/// least one effective write) raises the store's revision by exactly one; keys carry
/// `create_revision`, `mod_revision` and `version` as etcd defines them.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Reads a key, a prefix or a range, at the current or a past revision.
    async fn range(&self, keys: KeySelector, options: RangeOptions) -> Result<RangeResponse>;

    /// Writes one key.
    async fn put(&self, key: Vec<u8>, value: Vec<u8>, options: PutOptions) -> Result<PutResponse>;

    /// Deletes a key, a prefix or a range.
    async fn delete(&self, keys: KeySelector, options: DeleteOptions) -> Result<DeleteResponse>;

    /// Evaluates the compares, then runs the success or the failure branch atomically.
    async fn txn(&self, txn: Txn) -> Result<TxnResponse>;

    /// Streams the changes to a key, prefix or range from a revision on.
    async fn watch(&self, keys: KeySelector, options: WatchOptions) -> Result<WatchStream>;

    /// Grants a lease with a time to live in seconds (`id` 0 lets the store choose the id).
    async fn lease_grant(&self, ttl_seconds: i64, id: i64) -> Result<LeaseGrant>;

    /// Renews a lease once; returns the new remaining time to live. An expired or unknown lease
    /// is [`StoreError::LeaseNotFound`].
    async fn lease_keep_alive(&self, id: i64) -> Result<i64>;

    /// Revokes a lease and deletes every key attached to it.
    async fn lease_revoke(&self, id: i64) -> Result<()>;

    /// Remaining time to live of a lease, with its keys on request.
    async fn lease_time_to_live(&self, id: i64, with_keys: bool) -> Result<LeaseInfo>;

    /// The ids of all live leases.
    async fn lease_list(&self) -> Result<Vec<i64>>;

    /// Discards history before `revision`; reads and watches at older revisions fail with
    /// [`StoreError::Compacted`].
    async fn compact(&self, revision: i64) -> Result<()>;

    /// The store's current revision and the oldest revision still readable.
    async fn status(&self) -> Result<StoreStatus>;
}
