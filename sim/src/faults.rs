//! Faults injected between the controllers of one simulated server and the shared store: a
//! [`FaultyStore`] wraps the real embedded store and can
//! - crash the server after its next N writes (every later call fails, as a killed process
//!   makes no more calls), so a reconcile dies between any two of its transactions;
//! - make the next transaction that guards a node's allocations meet a real concurrent write
//!   (a rival re-writes one allocation of that node first), so the commit conflicts;
//! - end every open watch and answer the next watches "compacted", so the reflectors fall
//!   back to listing;
//! - hold back what the watches of one prefix deliver ([`FaultyStore::hold_watches`]), so one
//!   view of the controllers lags the others (a register's spec seen before its evaluation).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;
use nomos_store::{
    CompareOp, CompareTarget, DeleteOptions, DeleteResponse, KeySelector, LeaseGrant, LeaseInfo,
    PutOptions, PutResponse, RangeOptions, RangeResponse, Result, Store, StoreError, StoreStatus,
    Txn, TxnOp, TxnResponse, WatchOptions, WatchStream,
};

#[derive(Debug, Default)]
struct FaultState {
    /// Writes left before the crash.
    writes_until_crash: Option<u32>,
    crashed: bool,
    conflict_next: bool,
    /// Watch calls still to be answered `Compacted`.
    compacted_watches: u32,
    /// Watches opened since the last cut (`None`: never cut).
    watches_since_cut: Option<usize>,
    writes: u64,
    /// Revisions the simulated rival wrote (not this server's writes).
    rival_writes: u64,
}

/// The store as one simulated server sees it.
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    state: Mutex<FaultState>,
    cut: tokio::sync::watch::Sender<u64>,
    /// Prefixes whose watches deliver nothing until released.
    held: tokio::sync::watch::Sender<Vec<Vec<u8>>>,
}

const CRASHED: &str = "simulated crash: this server is dead";

impl FaultyStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        FaultyStore {
            inner,
            state: Mutex::new(FaultState::default()),
            cut: tokio::sync::watch::channel(0).0,
            held: tokio::sync::watch::channel(Vec::new()).0,
        }
    }

    /// The watches of keys under `prefix` deliver nothing more until [`Self::release_watches`]
    /// (what they would have delivered waits, in order).
    pub fn hold_watches(&self, prefix: &str) {
        self.held
            .send_modify(|held| held.push(prefix.as_bytes().to_vec()));
    }

    /// Every held watch delivers what it held back.
    pub fn release_watches(&self) {
        self.held.send_modify(Vec::clear);
    }

    /// Whether the watches of `prefix` are held.
    pub fn holds(&self, prefix: &str) -> bool {
        self.held
            .borrow()
            .iter()
            .any(|p| prefix.as_bytes().starts_with(p))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The server dies after `writes` more writes.
    pub fn crash_after(&self, writes: u32) {
        self.state().writes_until_crash = Some(writes);
    }

    pub fn is_crashed(&self) -> bool {
        self.state().crashed
    }

    /// Writes that went through this server.
    pub fn writes(&self) -> u64 {
        self.state().writes
    }

    /// Store revisions made by the simulated rival writer on this server's behalf.
    pub fn rival_writes(&self) -> u64 {
        self.state().rival_writes
    }

    /// The next transaction that guards a node's allocations meets a concurrent write.
    pub fn conflict_next_guarded_txn(&self) {
        self.state().conflict_next = true;
    }

    /// Ends every open watch; the next `reopened` watch calls answer `Compacted`.
    pub fn cut_watches(&self, reopened_as_compacted: u32) {
        {
            let mut s = self.state();
            s.compacted_watches = reopened_as_compacted;
            s.watches_since_cut = Some(0);
        }
        self.cut.send_modify(|g| *g += 1);
    }

    /// Watches opened since the last cut: each reopened watch follows its reflector's fresh
    /// list, so once every reflector has one, what the relists queued is in the queue.
    pub fn watches_since_cut(&self) -> Option<usize> {
        self.state().watches_since_cut
    }

    fn check_alive(&self) -> Result<()> {
        if self.state().crashed {
            return Err(StoreError::Unavailable(CRASHED.into()));
        }
        Ok(())
    }

    /// Counts a write; fails it when the crash point is reached.
    fn before_write(&self) -> Result<()> {
        let mut s = self.state();
        if s.crashed {
            return Err(StoreError::Unavailable(CRASHED.into()));
        }
        match s.writes_until_crash {
            Some(0) => {
                s.crashed = true;
                Err(StoreError::Unavailable(CRASHED.into()))
            }
            Some(n) => {
                s.writes_until_crash = Some(n - 1);
                s.writes += 1;
                Ok(())
            }
            None => {
                s.writes += 1;
                Ok(())
            }
        }
    }

    /// Re-writes one allocation under the prefix the transaction guards, unchanged, so the
    /// guard's revision moves (a rival controller's write).
    async fn rival_write(&self, txn: &Txn) -> Result<()> {
        let guarded = txn.compare.iter().find(|c| {
            c.range_end.is_some()
                && c.key.starts_with(b"/nomos/allocs/")
                && matches!(c.target, CompareTarget::ModRevision(_))
        });
        let Some(c) = guarded else { return Ok(()) };
        let r = self
            .inner
            .range(
                KeySelector::prefix(c.key.clone()),
                RangeOptions {
                    limit: 1,
                    ..Default::default()
                },
            )
            .await?;
        if let Some(kv) = r.kvs.first() {
            let same = Txn::new()
                .when([nomos_store::Compare::mod_revision(
                    kv.key.clone(),
                    CompareOp::Equal,
                    kv.mod_revision,
                )])
                .and_then([TxnOp::put(kv.key.clone(), kv.value.clone())]);
            let done = self.inner.txn(same).await?;
            let mut s = self.state();
            s.conflict_next = false;
            s.rival_writes += u64::from(done.succeeded);
        }
        Ok(())
    }
}

fn writes_something(txn: &Txn) -> bool {
    txn.success
        .iter()
        .chain(&txn.failure)
        .any(|op| !matches!(op, TxnOp::Range(..)))
}

#[async_trait]
impl Store for FaultyStore {
    async fn range(&self, keys: KeySelector, options: RangeOptions) -> Result<RangeResponse> {
        self.check_alive()?;
        self.inner.range(keys, options).await
    }

    async fn put(&self, key: Vec<u8>, value: Vec<u8>, options: PutOptions) -> Result<PutResponse> {
        self.before_write()?;
        self.inner.put(key, value, options).await
    }

    async fn delete(&self, keys: KeySelector, options: DeleteOptions) -> Result<DeleteResponse> {
        self.before_write()?;
        self.inner.delete(keys, options).await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        if writes_something(&txn) {
            self.before_write()?;
            if self.state().conflict_next {
                self.rival_write(&txn).await?;
            }
        } else {
            self.check_alive()?;
        }
        self.inner.txn(txn).await
    }

    async fn watch(&self, keys: KeySelector, options: WatchOptions) -> Result<WatchStream> {
        self.check_alive()?;
        {
            let mut s = self.state();
            if s.compacted_watches > 0 {
                s.compacted_watches -= 1;
                return Err(StoreError::Compacted {
                    requested: options.start_revision,
                    compact_revision: options.start_revision + 1,
                });
            }
        }
        let mut cut = self.cut.subscribe();
        cut.borrow_and_update();
        let watched = keys.to_etcd_range().0;
        let stream = self.inner.watch(keys, options).await?;
        if let Some(n) = &mut self.state().watches_since_cut {
            *n += 1;
        }
        let until_cut = async move {
            let _ = cut.changed().await;
        };
        let held = self.held.subscribe();
        let gated = stream.then(move |item| {
            let mut held = held.clone();
            let watched = watched.clone();
            async move {
                let _ = held
                    .wait_for(|h| !h.iter().any(|p| watched.starts_with(p)))
                    .await;
                item
            }
        });
        Ok(Box::pin(gated.take_until(until_cut)))
    }

    async fn lease_grant(&self, ttl_seconds: i64, id: i64) -> Result<LeaseGrant> {
        self.before_write()?;
        self.inner.lease_grant(ttl_seconds, id).await
    }

    async fn lease_keep_alive(&self, id: i64) -> Result<i64> {
        self.check_alive()?;
        self.inner.lease_keep_alive(id).await
    }

    async fn lease_revoke(&self, id: i64) -> Result<()> {
        self.before_write()?;
        self.inner.lease_revoke(id).await
    }

    async fn lease_time_to_live(&self, id: i64, with_keys: bool) -> Result<LeaseInfo> {
        self.check_alive()?;
        self.inner.lease_time_to_live(id, with_keys).await
    }

    async fn lease_list(&self) -> Result<Vec<i64>> {
        self.check_alive()?;
        self.inner.lease_list().await
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        self.before_write()?;
        self.inner.compact(revision).await
    }

    async fn status(&self) -> Result<StoreStatus> {
        self.check_alive()?;
        self.inner.status().await
    }
}

/// The shared store with a record of the newest revision that wrote under each prefix, so the
/// harness knows when a reflector has seen everything written under its prefix (a reflector's
/// revision moves only with events under its prefix).
pub struct RecordingStore {
    inner: Arc<dyn Store>,
    newest: Mutex<Vec<(Vec<u8>, i64)>>,
}

impl RecordingStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        RecordingStore {
            inner,
            newest: Mutex::new(Vec::new()),
        }
    }

    /// The newest revision that wrote a key under `prefix` (0: none since the start).
    pub fn newest_under(&self, prefix: &[u8]) -> i64 {
        let newest = self.newest.lock().unwrap_or_else(|p| p.into_inner());
        newest
            .iter()
            .filter(|(k, _)| k.starts_with(prefix) || prefix.starts_with(k))
            .map(|(_, r)| *r)
            .max()
            .unwrap_or(0)
    }

    fn record(&self, key: &[u8], revision: i64) {
        let mut newest = self.newest.lock().unwrap_or_else(|p| p.into_inner());
        // Keep one entry per key's first three segments (`/nomos/<kind>/<x>`): bounded and
        // fine enough for prefix queries.
        let cut: Vec<u8> = {
            let mut slashes = 0;
            let end = key
                .iter()
                .position(|b| {
                    if *b == b'/' {
                        slashes += 1;
                    }
                    slashes == 4
                })
                .unwrap_or(key.len());
            key[..end].to_vec()
        };
        match newest.iter_mut().find(|(k, _)| *k == cut) {
            Some(e) => e.1 = e.1.max(revision),
            None => newest.push((cut, revision)),
        }
    }

    fn record_ops(&self, ops: &[TxnOp], revision: i64) {
        for op in ops {
            match op {
                TxnOp::Put { key, .. } => self.record(key, revision),
                TxnOp::Delete(sel, _) => self.record(&sel.to_etcd_range().0, revision),
                TxnOp::Txn(t) => self.record_ops(&t.success, revision),
                TxnOp::Range(..) => {}
            }
        }
    }
}

#[async_trait]
impl Store for RecordingStore {
    async fn range(&self, keys: KeySelector, options: RangeOptions) -> Result<RangeResponse> {
        self.inner.range(keys, options).await
    }

    async fn put(&self, key: Vec<u8>, value: Vec<u8>, options: PutOptions) -> Result<PutResponse> {
        let r = self.inner.put(key.clone(), value, options).await?;
        self.record(&key, r.revision);
        Ok(r)
    }

    async fn delete(&self, keys: KeySelector, options: DeleteOptions) -> Result<DeleteResponse> {
        let start = keys.to_etcd_range().0;
        let r = self.inner.delete(keys, options).await?;
        if r.deleted > 0 {
            self.record(&start, r.revision);
        }
        Ok(r)
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        let r = self.inner.txn(txn.clone()).await?;
        let ops = if r.succeeded {
            &txn.success
        } else {
            &txn.failure
        };
        self.record_ops(ops, r.revision);
        Ok(r)
    }

    async fn watch(&self, keys: KeySelector, options: WatchOptions) -> Result<WatchStream> {
        self.inner.watch(keys, options).await
    }

    async fn lease_grant(&self, ttl_seconds: i64, id: i64) -> Result<LeaseGrant> {
        self.inner.lease_grant(ttl_seconds, id).await
    }

    async fn lease_keep_alive(&self, id: i64) -> Result<i64> {
        self.inner.lease_keep_alive(id).await
    }

    async fn lease_revoke(&self, id: i64) -> Result<()> {
        let keys = self
            .inner
            .lease_time_to_live(id, true)
            .await
            .map(|i| i.keys);
        self.inner.lease_revoke(id).await?;
        let revision = self.inner.status().await?.revision;
        for k in keys.unwrap_or_default() {
            self.record(&k, revision);
        }
        Ok(())
    }

    async fn lease_time_to_live(&self, id: i64, with_keys: bool) -> Result<LeaseInfo> {
        self.inner.lease_time_to_live(id, with_keys).await
    }

    async fn lease_list(&self) -> Result<Vec<i64>> {
        self.inner.lease_list().await
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        self.inner.compact(revision).await
    }

    async fn status(&self) -> Result<StoreStatus> {
        self.inner.status().await
    }
}
