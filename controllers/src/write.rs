//! The fenced-write toolkit both runtimes write with: a [`Fence`] that commits a transaction
//! only while its controller still leads (telling a lost compare from a lost leadership), and
//! the pieces a transaction is made of: [`encode`] a value, [`put`] it, compare that a key is
//! [`unchanged`] since it was read or still [`absent`], [`node_guard`] a node's allocations,
//! [`delete`] keys, and [`set_desired`] on an allocation.

use nomos_api::{Allocation, DesiredStatus};
use nomos_store::{
    keys, prefix_end, Compare, CompareOp, CompareTarget, DeleteOptions, KeySelector, Store, Txn,
    TxnOp,
};

use crate::runtime::election::Leadership;
use crate::ControllerError;

/// Most operations one fenced delete sends in a transaction.
const DELETES_PER_TXN: usize = 100;

/// Writes of one controller, fenced by its leadership (none: a tool or test writing unfenced).
#[derive(Clone, Copy)]
pub struct Fence<'a> {
    pub store: &'a dyn Store,
    pub leadership: Option<&'a Leadership>,
    /// The controller, as a lost leadership names it.
    pub controller: &'a str,
}

impl<'a> Fence<'a> {
    /// The compares every fenced transaction carries.
    pub fn compares(&self) -> Vec<Compare> {
        self.leadership.iter().map(|l| l.fence()).collect()
    }

    /// Runs `ops` if `compares` hold and the controller still leads. `Ok(false)`: a compare
    /// failed (someone wrote first; re-read). Losing leadership is an error.
    pub async fn commit(
        &self,
        compares: Vec<Compare>,
        ops: Vec<TxnOp>,
    ) -> Result<bool, ControllerError> {
        Ok(self.commit_at(compares, ops).await?.is_some())
    }

    /// Like [`Fence::commit`], and returns the revision the transaction wrote at.
    pub async fn commit_at(
        &self,
        mut compares: Vec<Compare>,
        ops: Vec<TxnOp>,
    ) -> Result<Option<i64>, ControllerError> {
        let fence = self.compares();
        compares.extend(fence.iter().cloned());
        let resp = self
            .store
            .txn(Txn::new().when(compares).and_then(ops))
            .await
            .map_err(ControllerError::store("txn"))?;
        if resp.succeeded {
            return Ok(Some(resp.revision));
        }
        self.still_leads(fence).await?;
        Ok(None)
    }

    /// Puts `value` at `key` while the controller leads; returns the revision written.
    pub async fn put(&self, key: &str, value: Vec<u8>) -> Result<i64, ControllerError> {
        match self.commit_at(Vec::new(), vec![put(key, value)]).await? {
            Some(revision) => Ok(revision),
            // No compare but the fence: it failed between the two reads.
            None => Err(self.lost()),
        }
    }

    /// Deletes `keys` (each by name, a few transactions at most) while the controller leads;
    /// returns the revision of the last transaction.
    pub async fn delete_keys(&self, keys: &[String]) -> Result<i64, ControllerError> {
        let mut revision = 0;
        for chunk in keys.chunks(DELETES_PER_TXN) {
            let ops = chunk.iter().map(|k| delete(k)).collect();
            revision = self
                .commit_at(Vec::new(), ops)
                .await?
                .ok_or_else(|| self.lost())?;
        }
        Ok(revision)
    }

    async fn still_leads(&self, fence: Vec<Compare>) -> Result<(), ControllerError> {
        if fence.is_empty() {
            return Ok(());
        }
        let still = self
            .store
            .txn(Txn::new().when(fence))
            .await
            .map_err(ControllerError::store("txn"))?;
        if still.succeeded {
            Ok(())
        } else {
            Err(self.lost())
        }
    }

    fn lost(&self) -> ControllerError {
        ControllerError::LostLeadership(self.controller.to_string())
    }
}

/// `value` as stored (JSON); `what` names it in the error.
pub fn encode<T: serde::Serialize>(
    key: &str,
    value: &T,
    what: &'static str,
) -> Result<Vec<u8>, ControllerError> {
    serde_json::to_vec(value).map_err(|e| ControllerError::Decode {
        key: key.to_string(),
        what,
        message: e.to_string(),
    })
}

/// A put of `value` at `key`.
pub fn put(key: &str, value: Vec<u8>) -> TxnOp {
    TxnOp::put(key.as_bytes().to_vec(), value)
}

/// A delete of the one key `key`.
pub fn delete(key: &str) -> TxnOp {
    TxnOp::Delete(
        KeySelector::key(key.as_bytes().to_vec()),
        DeleteOptions::default(),
    )
}

/// A delete of every key under `prefix`.
pub fn delete_prefix(prefix: &str) -> TxnOp {
    TxnOp::Delete(
        KeySelector::prefix(prefix.as_bytes().to_vec()),
        DeleteOptions::default(),
    )
}

/// `key` does not exist.
pub fn absent(key: &str) -> Compare {
    Compare::new(
        key.as_bytes().to_vec(),
        CompareOp::Equal,
        CompareTarget::CreateRevision(0),
    )
}

/// `key` still has the mod revision it was read with (0: still absent).
pub fn unchanged(key: &str, mod_revision: i64) -> Compare {
    if mod_revision == 0 {
        absent(key)
    } else {
        Compare::mod_revision(key.as_bytes().to_vec(), CompareOp::Equal, mod_revision)
    }
}

/// Nothing under the node's allocation prefix changed after `revision` (the per-node guard),
/// so placements computed at `revision` cannot over-commit the node.
pub fn node_guard(node: &str, revision: i64) -> Compare {
    let prefix = keys::allocs_prefix(Some(node));
    Compare {
        key: prefix.as_bytes().to_vec(),
        range_end: Some(prefix_end(prefix.as_bytes())),
        op: CompareOp::Less,
        target: CompareTarget::ModRevision(revision + 1),
    }
}

/// `a` with a new desired status and why.
pub fn set_desired(
    a: &Allocation,
    desired: DesiredStatus,
    reason: &str,
    now_ms: i64,
) -> Allocation {
    Allocation {
        desired_status: desired,
        desired_description: reason.to_string(),
        modified_at_ms: now_ms,
        ..a.clone()
    }
}

/// The write of a changed allocation read at `mod_revision`: it lands only if nobody wrote the
/// allocation since.
pub fn alloc_update(
    a: &Allocation,
    mod_revision: i64,
) -> Result<(Compare, TxnOp), ControllerError> {
    let k = keys::alloc(&a.node, &a.id);
    let value = encode(&k, a, "allocation")?;
    Ok((unchanged(&k, mod_revision), put(&k, value)))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use nomos_store::{EmbeddedStore, PutOptions, RangeOptions};

    use super::*;
    use crate::runtime::election::campaign_once;

    async fn value_of(store: &dyn Store, key: &str) -> Option<Vec<u8>> {
        store
            .range(
                KeySelector::key(key.as_bytes().to_vec()),
                RangeOptions::default(),
            )
            .await
            .unwrap()
            .kvs
            .into_iter()
            .next()
            .map(|kv| kv.value)
    }

    /// A store, and leadership of the `loop` election on it.
    async fn leading() -> (Arc<dyn Store>, Leadership) {
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
        let lead = campaign_once(&*store, "loop", "me", 30)
            .await
            .unwrap()
            .unwrap();
        (store, lead)
    }

    #[tokio::test]
    async fn a_failed_compare_is_a_conflict_while_the_controller_leads() {
        let (store, lead) = leading().await;
        let fence = Fence {
            store: &*store,
            leadership: Some(&lead),
            controller: "loop",
        };
        let r = store
            .put(b"/k".to_vec(), b"1".to_vec(), PutOptions::default())
            .await
            .unwrap();
        assert!(fence
            .commit(
                vec![unchanged("/k", r.revision)],
                vec![put("/k", b"2".to_vec())]
            )
            .await
            .unwrap());
        // The key moved on since it was read: no write, no error.
        assert!(!fence
            .commit(
                vec![unchanged("/k", r.revision)],
                vec![put("/k", b"3".to_vec())]
            )
            .await
            .unwrap());
        assert_eq!(value_of(&*store, "/k").await.unwrap(), b"2");
        assert!(!fence
            .commit(vec![absent("/k")], vec![put("/k", b"4".to_vec())])
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn a_deposed_controller_writes_nothing_and_is_told_so() {
        let (store, lead) = leading().await;
        let fence = Fence {
            store: &*store,
            leadership: Some(&lead),
            controller: "loop",
        };
        store.lease_revoke(lead.lease).await.unwrap();
        for r in [
            fence
                .commit(vec![], vec![put("/k", b"1".to_vec())])
                .await
                .map(|_| ()),
            fence.put("/k", b"1".to_vec()).await.map(|_| ()),
            fence.delete_keys(&["/k".into()]).await.map(|_| ()),
        ] {
            assert!(
                matches!(r, Err(ControllerError::LostLeadership(ref c)) if c == "loop"),
                "{r:?}"
            );
        }
        assert_eq!(value_of(&*store, "/k").await, None);
    }

    #[tokio::test]
    async fn the_node_guard_fails_once_anything_on_the_node_changed() {
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
        let unfenced = Fence {
            store: &*store,
            leadership: None,
            controller: "test",
        };
        let read = store.status().await.unwrap().revision;
        let other = keys::alloc("n2", "b");
        unfenced.put(&other, b"{}".to_vec()).await.unwrap();
        // A write on another node leaves n1's guard standing.
        let mine = keys::alloc("n1", "a");
        assert!(unfenced
            .commit(
                vec![node_guard("n1", read)],
                vec![put(&mine, b"{}".to_vec())]
            )
            .await
            .unwrap());
        let again = keys::alloc("n1", "c");
        assert!(!unfenced
            .commit(
                vec![node_guard("n1", read)],
                vec![put(&again, b"{}".to_vec())]
            )
            .await
            .unwrap());
    }

    #[test]
    fn set_desired_keeps_the_rest_of_the_allocation() {
        let a = Allocation {
            id: "a".into(),
            node: "n1".into(),
            job_version: 3,
            ..Default::default()
        };
        let s = set_desired(&a, DesiredStatus::Stop, "drained", 42);
        assert_eq!(s.desired_status, DesiredStatus::Stop);
        assert_eq!(
            (s.desired_description.as_str(), s.modified_at_ms),
            ("drained", 42)
        );
        assert_eq!((s.id, s.node, s.job_version), (a.id, a.node, a.job_version));
    }
}
