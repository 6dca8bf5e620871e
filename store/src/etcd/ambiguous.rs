//! Writes whose outcome is unknown. When the member a write went to fails while the write is in
//! flight (its leader died, its connection dropped), etcd may or may not have committed it. A
//! plain put or delete is simply sent again to another member: each key has one writer in
//! Nomos (DESIGN.md: spec and status never share a key), so repeating it changes nothing. A
//! transaction is sent again too; when the second attempt finds its compares false, the first
//! one may be what changed them, so the success branch's effects are read back: when every
//! put of it is in place (same value, same lease) and every deleted key is gone, the first
//! attempt committed and the caller is told so.

use super::convert::kv_from;
use super::{kv, EtcdStore};
use crate::{
    DeleteResponse, KeySelector, KeyValue, PutResponse, Txn, TxnOp, TxnOpResponse, TxnResponse,
};

impl EtcdStore {
    /// Whether the success branch of `txn` is in place in the store now; then the response the
    /// committed attempt would have given (revisions from the keys, no previous values).
    /// `None` when it is not, or when the branch holds operations whose effect cannot be read
    /// back (ranges, nested transactions, puts that keep the old value or ask for it).
    pub(super) async fn committed_earlier(&self, txn: &Txn) -> Option<TxnResponse> {
        if txn.success.is_empty() {
            return None;
        }
        let mut responses = Vec::new();
        let mut revision = 0;
        for op in &txn.success {
            let response = match op {
                TxnOp::Put {
                    key,
                    value,
                    options,
                } if !options.prev_kv && !options.ignore_value && !options.ignore_lease => {
                    let current = self.current(key).await?;
                    let kv =
                        current.filter(|kv| kv.value == *value && kv.lease == options.lease)?;
                    revision = revision.max(kv.mod_revision);
                    TxnOpResponse::Put(PutResponse {
                        revision: kv.mod_revision,
                        prev_kv: None,
                    })
                }
                TxnOp::Delete(KeySelector::Key(key), options) if !options.prev_kv => {
                    if self.current(key).await?.is_some() {
                        return None;
                    }
                    TxnOpResponse::Delete(DeleteResponse {
                        revision: 0,
                        deleted: 1,
                        prev_kvs: Vec::new(),
                    })
                }
                _ => return None,
            };
            responses.push(response);
        }
        Some(TxnResponse {
            revision,
            succeeded: true,
            responses,
        })
    }

    /// The key's current value (`Some(None)` when absent); `None` when it cannot be read.
    async fn current(&self, key: &[u8]) -> Option<Option<KeyValue>> {
        let found = self
            .repeatable(|c| {
                let key = key.to_vec();
                async move { kv(&c).get(key, None).await }
            })
            .await
            .ok()?;
        Some(found.kvs().first().map(kv_from))
    }
}
