//! Request and response values of the [`crate::Store`] trait, shaped after etcd v3's API.

use std::pin::Pin;

use futures::Stream;

use crate::StoreError;

/// A key with its value and etcd's per-key metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyValue {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// Revision of the write that created the key (since its last deletion).
    pub create_revision: i64,
    /// Revision of the last write to the key.
    pub mod_revision: i64,
    /// Number of writes since the key was created; 1 after the first put.
    pub version: i64,
    /// Lease the key is attached to, 0 for none.
    pub lease: i64,
}

impl KeyValue {
    /// The key as UTF-8 text, lossily: for log lines and messages only. Anything that decodes
    /// a name from a key uses [`KeyValue::key_utf8`], so a key that is not UTF-8 is never read
    /// as another name.
    pub fn key_str(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.key)
    }

    /// The key as UTF-8, or [`StoreError::NonUtf8Key`] naming its bytes escaped.
    pub fn key_utf8(&self) -> Result<&str, StoreError> {
        key_utf8(&self.key)
    }

    /// The key as UTF-8 for list and watch loops: `None`, with a warning naming the key's
    /// bytes, for a key that is not, which the loop then skips.
    pub fn key_utf8_or_skip(&self) -> Option<&str> {
        match self.key_utf8() {
            Ok(key) => Some(key),
            Err(e) => {
                tracing::warn!(error = %e, "skipping a store key that names nothing Nomos wrote");
                None
            }
        }
    }
}

/// `key` as UTF-8, or [`StoreError::NonUtf8Key`] naming its bytes escaped.
pub fn key_utf8(key: &[u8]) -> Result<&str, StoreError> {
    std::str::from_utf8(key).map_err(|_| StoreError::NonUtf8Key {
        key: key.escape_ascii().to_string(),
    })
}

/// Which keys an operation addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySelector {
    /// Exactly one key.
    Key(Vec<u8>),
    /// Every key that starts with the bytes (an empty prefix means every key).
    Prefix(Vec<u8>),
    /// Keys in `[start, end)`, as etcd's `range_end`; an `end` of `[0]` means "to the last key".
    Range { start: Vec<u8>, end: Vec<u8> },
}

impl KeySelector {
    pub fn key(key: impl Into<Vec<u8>>) -> Self {
        KeySelector::Key(key.into())
    }
    pub fn prefix(prefix: impl Into<Vec<u8>>) -> Self {
        KeySelector::Prefix(prefix.into())
    }

    /// The selector as etcd's `(key, range_end)` pair.
    pub fn to_etcd_range(&self) -> (Vec<u8>, Vec<u8>) {
        match self {
            KeySelector::Key(k) => (k.clone(), Vec::new()),
            KeySelector::Prefix(p) if p.is_empty() => (vec![0], vec![0]),
            KeySelector::Prefix(p) => (p.clone(), prefix_end(p)),
            KeySelector::Range { start, end } => (start.clone(), end.clone()),
        }
    }

    /// Whether `key` falls within the selector.
    pub fn contains(&self, key: &[u8]) -> bool {
        match self {
            KeySelector::Key(k) => k.as_slice() == key,
            KeySelector::Prefix(p) => key.starts_with(p),
            // An empty end means the single key `start`, as etcd's empty `range_end`.
            KeySelector::Range { start, end } if end.is_empty() => start.as_slice() == key,
            KeySelector::Range { start, end } => {
                key >= start.as_slice() && (end.as_slice() == [0] || key < end.as_slice())
            }
        }
    }
}

/// The smallest key greater than every key that starts with `prefix` (etcd's `GetPrefixRangeEnd`);
/// `[0]` when no such key exists (the prefix is all `0xff`).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Sort order for range results (etcd's `SortOrder`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    #[default]
    None,
    Ascend,
    Descend,
}

/// Field to sort range results by (etcd's `SortTarget`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortTarget {
    #[default]
    Key,
    Version,
    Create,
    Mod,
    Value,
}

/// Options of a range read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RangeOptions {
    /// At most this many keys; 0 means no limit.
    pub limit: i64,
    /// Read at this revision; 0 means the current one.
    pub revision: i64,
    pub keys_only: bool,
    pub count_only: bool,
    pub sort_order: SortOrder,
    pub sort_target: SortTarget,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RangeResponse {
    /// The store's revision when the read was served.
    pub revision: i64,
    pub kvs: Vec<KeyValue>,
    /// Number of keys in the range, ignoring `limit`.
    pub count: i64,
    /// Whether `limit` cut the result.
    pub more: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PutOptions {
    /// Attach the key to this lease; 0 for none.
    pub lease: i64,
    /// Return the value the key had before.
    pub prev_kv: bool,
    /// Keep the key's current value (etcd's `ignore_value`).
    pub ignore_value: bool,
    /// Keep the key's current lease (etcd's `ignore_lease`).
    pub ignore_lease: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PutResponse {
    pub revision: i64,
    pub prev_kv: Option<KeyValue>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeleteOptions {
    pub prev_kv: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeleteResponse {
    pub revision: i64,
    pub deleted: i64,
    pub prev_kvs: Vec<KeyValue>,
}

/// What a compare looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompareTarget {
    Value(Vec<u8>),
    Version(i64),
    CreateRevision(i64),
    ModRevision(i64),
    Lease(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Equal,
    NotEqual,
    Greater,
    Less,
}

/// One condition of a transaction. A missing key has version, create and mod revision 0, lease 0
/// and fails every value compare, as in etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    pub key: Vec<u8>,
    /// Optional etcd `range_end`: the compare must hold for every key in `[key, range_end)`.
    pub range_end: Option<Vec<u8>>,
    pub op: CompareOp,
    pub target: CompareTarget,
}

impl Compare {
    pub fn new(key: impl Into<Vec<u8>>, op: CompareOp, target: CompareTarget) -> Self {
        Compare {
            key: key.into(),
            range_end: None,
            op,
            target,
        }
    }
    pub fn mod_revision(key: impl Into<Vec<u8>>, op: CompareOp, revision: i64) -> Self {
        Self::new(key, op, CompareTarget::ModRevision(revision))
    }
    pub fn version(key: impl Into<Vec<u8>>, op: CompareOp, version: i64) -> Self {
        Self::new(key, op, CompareTarget::Version(version))
    }
    pub fn value(key: impl Into<Vec<u8>>, op: CompareOp, value: impl Into<Vec<u8>>) -> Self {
        Self::new(key, op, CompareTarget::Value(value.into()))
    }
}

/// One operation inside a transaction branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOp {
    Range(KeySelector, RangeOptions),
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
        options: PutOptions,
    },
    Delete(KeySelector, DeleteOptions),
    Txn(Box<Txn>),
}

impl TxnOp {
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        TxnOp::Put {
            key: key.into(),
            value: value.into(),
            options: PutOptions::default(),
        }
    }
    pub fn delete(key: impl Into<Vec<u8>>) -> Self {
        TxnOp::Delete(KeySelector::Key(key.into()), DeleteOptions::default())
    }
    pub fn get(key: impl Into<Vec<u8>>) -> Self {
        TxnOp::Range(KeySelector::Key(key.into()), RangeOptions::default())
    }
}

/// `if compares { success } else { failure }`, atomically.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Txn {
    pub compare: Vec<Compare>,
    pub success: Vec<TxnOp>,
    pub failure: Vec<TxnOp>,
}

impl Txn {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Self {
        self.compare.extend(compares);
        self
    }
    pub fn and_then(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Self {
        self.success.extend(ops);
        self
    }
    pub fn or_else(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Self {
        self.failure.extend(ops);
        self
    }
}

/// The result of one [`TxnOp`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOpResponse {
    Range(RangeResponse),
    Put(PutResponse),
    Delete(DeleteResponse),
    Txn(TxnResponse),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TxnResponse {
    /// The store's revision after the transaction.
    pub revision: i64,
    /// Whether the compares held (the success branch ran).
    pub succeeded: bool,
    pub responses: Vec<TxnOpResponse>,
}

/// Events a watch may leave out (etcd's watch filters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WatchFilters {
    pub no_put: bool,
    pub no_delete: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WatchOptions {
    /// First revision to deliver; 0 means "changes after now".
    pub start_revision: i64,
    /// Attach each key's previous value to its events.
    pub prev_kv: bool,
    /// Send empty responses carrying the current revision while idle.
    pub progress_notify: bool,
    pub filters: WatchFilters,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change. For a delete, `kv` holds the key and the deletion's `mod_revision`, no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    pub kind: EventKind,
    pub kv: KeyValue,
    pub prev_kv: Option<KeyValue>,
}

/// A batch of events, or a progress notification (no events).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WatchResponse {
    /// The store's revision when the response was sent; every later event has a higher one.
    pub revision: i64,
    pub events: Vec<WatchEvent>,
}

impl WatchResponse {
    pub fn is_progress_notify(&self) -> bool {
        self.events.is_empty()
    }
}

/// The stream a watch returns; dropping it cancels the watch. It ends with
/// `Err(StoreError::Compacted)` when the start revision is gone.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, StoreError>> + Send>>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseGrant {
    pub id: i64,
    pub ttl: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    pub id: i64,
    /// Remaining seconds; -1 if the lease has expired or does not exist.
    pub ttl: i64,
    pub granted_ttl: i64,
    pub keys: Vec<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoreStatus {
    pub revision: i64,
    pub compact_revision: i64,
    /// Bytes on disk, where the backend knows it.
    pub db_size: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_that_is_not_utf8_is_refused_naming_its_bytes_escaped() {
        let kv = |key: &[u8]| KeyValue {
            key: key.to_vec(),
            ..KeyValue::default()
        };
        assert_eq!(
            kv(b"/nomos/jobs/default/web").key_utf8().unwrap(),
            "/nomos/jobs/default/web"
        );
        let err = kv(b"/nomos/jobs/default/w\xffeb").key_utf8().unwrap_err();
        assert_eq!(
            err.to_string(),
            "store key \"/nomos/jobs/default/w\\xffeb\" is not UTF-8"
        );
        assert!(!err.is_retryable());
    }

    #[test]
    fn selectors_match_keys_as_etcd_ranges_do() {
        let range = |s: &str, e: &[u8]| KeySelector::Range {
            start: s.into(),
            end: e.to_vec(),
        };
        let table: Vec<(KeySelector, &str, bool)> = vec![
            (KeySelector::key("a"), "a", true),
            (KeySelector::key("a"), "ab", false),
            (KeySelector::prefix("a/"), "a/b", true),
            (KeySelector::prefix("a/"), "a", false),
            (KeySelector::prefix(""), "anything", true),
            (range("b", b"d"), "c", true),
            (range("b", b"d"), "d", false),
            (range("b", &[0]), "zzz", true),
            (range("b", b""), "b", true),
            (range("b", b""), "c", false),
        ];
        for (sel, key, expected) in table {
            assert_eq!(
                sel.contains(key.as_bytes()),
                expected,
                "{sel:?} contains {key}"
            );
        }
        assert_eq!(prefix_end(b"a/"), b"a0".to_vec());
        assert_eq!(prefix_end(&[b'a', 0xff]), b"b".to_vec());
        assert_eq!(prefix_end(&[0xff, 0xff]), vec![0]);
    }
}
