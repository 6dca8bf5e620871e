//! The embedded store's in-memory MVCC state: every key's version history (as etcd's key
//! index), the event log that feeds watches, and the leases. Applying a write here yields the
//! rows to persist ([`SqlOp`]) and the events to publish; nothing in this module does I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use crate::{
    Compare, CompareOp, CompareTarget, DeleteOptions, DeleteResponse, EventKind, KeySelector,
    KeyValue, PutOptions, PutResponse, RangeOptions, RangeResponse, Result, SortOrder, SortTarget,
    StoreError, Txn, TxnOp, TxnOpResponse, TxnResponse,
};

/// Longest lease TTL etcd accepts (`MaxLeaseTTL`).
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;
/// Shortest lease TTL: etcd raises smaller TTLs to `ceil(1.5 * election timeout)`, 2 s with its
/// default 1 s election timeout.
pub const MIN_LEASE_TTL: i64 = 2;

/// One entry of a key's history: the key as written at `rev`, or a tombstone.
#[derive(Debug, Clone)]
pub(crate) struct Version {
    pub rev: i64,
    /// Row id in the log table.
    pub row: i64,
    pub kv: Option<Arc<KeyValue>>,
}

/// One change, as delivered to watchers.
#[derive(Debug)]
pub(crate) struct Event {
    pub rev: i64,
    pub kind: EventKind,
    pub kv: Arc<KeyValue>,
    pub prev: Option<Arc<KeyValue>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Lease {
    pub ttl: i64,
    /// Wall-clock expiry, Unix milliseconds.
    pub deadline_ms: i64,
    pub keys: BTreeSet<Vec<u8>>,
}

/// What a write asks the log table to do.
#[derive(Debug, Clone)]
pub(crate) enum SqlOp {
    Insert {
        row: i64,
        rev: i64,
        kv: Arc<KeyValue>,
        deleted: bool,
    },
    DeleteRow(i64),
    PutLease {
        id: i64,
        ttl: i64,
        deadline_ms: i64,
    },
    DeleteLease(i64),
    SetCompact(i64),
}

/// Output of applying writes: rows to persist and events to publish.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    pub sql: Vec<SqlOp>,
    pub events: Vec<Arc<Event>>,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    /// Latest applied revision (may be ahead of what readers see until its batch is durable).
    pub rev: i64,
    pub compact_rev: i64,
    keys: BTreeMap<Vec<u8>, Vec<Version>>,
    /// Events with `rev >= compact_rev`, in revision order.
    pub events: VecDeque<Arc<Event>>,
    pub leases: HashMap<i64, Lease>,
    deadlines: BTreeSet<(i64, i64)>,
    next_row: i64,
}

/// Start and end bounds of a key range in the index.
type KeyBounds = (Bound<Vec<u8>>, Bound<Vec<u8>>);

fn bounds(keys: &KeySelector) -> Option<KeyBounds> {
    let (start, end) = match keys {
        KeySelector::Key(k) => {
            return Some((Bound::Included(k.clone()), Bound::Included(k.clone())))
        }
        KeySelector::Prefix(p) if p.is_empty() => {
            return Some((Bound::Unbounded, Bound::Unbounded))
        }
        KeySelector::Prefix(p) => (p.clone(), crate::prefix_end(p)),
        KeySelector::Range { start, end } if end.is_empty() => {
            return Some((
                Bound::Included(start.clone()),
                Bound::Included(start.clone()),
            ))
        }
        KeySelector::Range { start, end } => (start.clone(), end.clone()),
    };
    if end == [0] {
        return Some((Bound::Included(start), Bound::Unbounded));
    }
    if end <= start {
        return None;
    }
    Some((Bound::Included(start), Bound::Excluded(end)))
}

fn at_revision(history: &[Version], rev: i64) -> Option<&Arc<KeyValue>> {
    let idx = history.partition_point(|v| v.rev <= rev);
    if idx == 0 {
        return None;
    }
    history[idx - 1].kv.as_ref()
}

fn compare_holds(kv: &KeyValue, c: &Compare) -> bool {
    use std::cmp::Ordering;
    let ord = match &c.target {
        CompareTarget::Value(v) => kv.value.as_slice().cmp(v.as_slice()),
        CompareTarget::Version(v) => kv.version.cmp(v),
        CompareTarget::CreateRevision(v) => kv.create_revision.cmp(v),
        CompareTarget::ModRevision(v) => kv.mod_revision.cmp(v),
        CompareTarget::Lease(v) => kv.lease.cmp(v),
    };
    match c.op {
        CompareOp::Equal => ord == Ordering::Equal,
        CompareOp::NotEqual => ord != Ordering::Equal,
        CompareOp::Greater => ord == Ordering::Greater,
        CompareOp::Less => ord == Ordering::Less,
    }
}

fn compare_selector(c: &Compare) -> KeySelector {
    match &c.range_end {
        Some(end) if !end.is_empty() => KeySelector::Range {
            start: c.key.clone(),
            end: end.clone(),
        },
        _ => KeySelector::Key(c.key.clone()),
    }
}

impl State {
    /// An empty store. Like etcd, it starts at revision 1, so the first write gets revision 2.
    pub fn new() -> State {
        State {
            rev: 1,
            ..State::default()
        }
    }

    /// Iterates the histories of the keys a selector covers, in key order.
    fn histories<'a>(
        &'a self,
        keys: &KeySelector,
    ) -> Box<dyn Iterator<Item = (&'a Vec<u8>, &'a Vec<Version>)> + 'a> {
        match bounds(keys) {
            None => Box::new(std::iter::empty()),
            Some(b) => Box::new(self.keys.range::<Vec<u8>, _>(b)),
        }
    }

    fn latest(&self, key: &[u8]) -> Option<Arc<KeyValue>> {
        self.keys
            .get(key)
            .and_then(|h| h.last())
            .and_then(|v| v.kv.clone())
    }

    fn check_read_revision(&self, requested: i64, current: i64) -> Result<i64> {
        if requested <= 0 {
            return Ok(current);
        }
        if requested > current {
            return Err(StoreError::FutureRevision { requested, current });
        }
        if requested < self.compact_rev {
            return Err(StoreError::Compacted {
                requested,
                compact_revision: self.compact_rev,
            });
        }
        Ok(requested)
    }

    /// A range read as of revision `current` (the newest revision the reader may see).
    pub fn range(
        &self,
        keys: &KeySelector,
        options: &RangeOptions,
        current: i64,
    ) -> Result<RangeResponse> {
        let rev = self.check_read_revision(options.revision, current)?;
        let mut count = 0i64;
        let mut kvs = Vec::new();
        let sort_order = match (options.sort_order, options.sort_target) {
            (SortOrder::None, SortTarget::Key) => SortOrder::None,
            (SortOrder::None, _) => SortOrder::Ascend,
            (o, _) => o,
        };
        let early_limit = matches!(sort_order, SortOrder::None | SortOrder::Ascend)
            && options.sort_target == SortTarget::Key
            && options.limit > 0;
        for (_, history) in self.histories(keys) {
            if let Some(kv) = at_revision(history, rev) {
                count += 1;
                if options.count_only || (early_limit && kvs.len() as i64 > options.limit) {
                    continue;
                }
                let mut kv = KeyValue::clone(kv);
                if options.keys_only {
                    kv.value = Vec::new();
                }
                kvs.push(kv);
            }
        }
        match (sort_order, options.sort_target) {
            (SortOrder::None | SortOrder::Ascend, SortTarget::Key) => {}
            (SortOrder::Descend, SortTarget::Key) => kvs.reverse(),
            (order, target) => {
                kvs.sort_by(|a, b| {
                    let ord = match target {
                        SortTarget::Key => a.key.cmp(&b.key),
                        SortTarget::Version => a.version.cmp(&b.version),
                        SortTarget::Create => a.create_revision.cmp(&b.create_revision),
                        SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
                        SortTarget::Value => a.value.cmp(&b.value),
                    };
                    if order == SortOrder::Descend {
                        ord.reverse()
                    } else {
                        ord
                    }
                });
            }
        }
        let mut more = false;
        if options.limit > 0 && kvs.len() as i64 > options.limit {
            kvs.truncate(options.limit as usize);
            more = true;
        }
        Ok(RangeResponse {
            revision: current,
            kvs,
            count,
            more,
        })
    }

    /// Whether a compare holds against the latest state.
    fn compare(&self, c: &Compare) -> bool {
        let sel = compare_selector(c);
        let mut any = false;
        for (_, history) in self.histories(&sel) {
            if let Some(Version { kv: Some(kv), .. }) = history.last() {
                any = true;
                if !compare_holds(kv, c) {
                    return false;
                }
            }
        }
        if !any {
            // A missing key fails every value compare and has zero version, revisions and lease.
            if matches!(c.target, CompareTarget::Value(_)) {
                return false;
            }
            return compare_holds(&KeyValue::default(), c);
        }
        true
    }

    /// Decides every branch before anything is written (as etcd does): `true` per txn in
    /// depth-first order when its compares held.
    fn txn_path(&self, txn: &Txn, path: &mut Vec<bool>) {
        let ok = txn.compare.iter().all(|c| self.compare(c));
        path.push(ok);
        let ops = if ok { &txn.success } else { &txn.failure };
        for op in ops {
            if let TxnOp::Txn(inner) = op {
                self.txn_path(inner, path);
            }
        }
    }

    /// Checks the chosen operations against the state before writing (leases exist, ignored
    /// values and leases have a key, read revisions are readable).
    fn check_ops(&self, txn: &Txn, path: &[bool], at: &mut usize, visible: i64) -> Result<()> {
        let ok = path[*at];
        *at += 1;
        for op in if ok { &txn.success } else { &txn.failure } {
            match op {
                TxnOp::Put { key, options, .. } => {
                    if options.lease != 0 && !self.leases.contains_key(&options.lease) {
                        return Err(StoreError::LeaseNotFound(options.lease));
                    }
                    if (options.ignore_value || options.ignore_lease) && self.latest(key).is_none()
                    {
                        return Err(StoreError::InvalidRequest("key not found".into()));
                    }
                }
                TxnOp::Range(_, options) => {
                    self.check_read_revision(options.revision, visible)?;
                }
                TxnOp::Delete(..) => {}
                TxnOp::Txn(inner) => self.check_ops(inner, path, at, visible)?,
            }
        }
        Ok(())
    }

    /// Applies a transaction; `visible` is the newest revision readers can see.
    pub fn apply_txn(&mut self, txn: &Txn, visible: i64, fx: &mut Effects) -> Result<TxnResponse> {
        let mut path = Vec::new();
        self.txn_path(txn, &mut path);
        self.check_ops(txn, &path, &mut 0, visible)?;
        let new_rev = self.rev + 1;
        let mut changed = false;
        let resp = self.exec_txn(txn, &path, &mut 0, new_rev, &mut changed, fx);
        if changed {
            self.rev = new_rev;
        }
        Ok(TxnResponse {
            revision: self.rev,
            ..resp
        })
    }

    fn exec_txn(
        &mut self,
        txn: &Txn,
        path: &[bool],
        at: &mut usize,
        new_rev: i64,
        changed: &mut bool,
        fx: &mut Effects,
    ) -> TxnResponse {
        let ok = path[*at];
        *at += 1;
        let mut responses = Vec::new();
        for op in if ok { &txn.success } else { &txn.failure } {
            let r = match op {
                TxnOp::Range(keys, options) => {
                    let current = if *changed { new_rev } else { self.rev };
                    let mut options = options.clone();
                    if options.revision > current {
                        options.revision = current;
                    }
                    // Revisions were checked before anything was written.
                    let resp = self.range(keys, &options, current).unwrap_or_default();
                    TxnOpResponse::Range(resp)
                }
                TxnOp::Put {
                    key,
                    value,
                    options,
                } => {
                    *changed = true;
                    TxnOpResponse::Put(self.exec_put(key, value, options, new_rev, fx))
                }
                TxnOp::Delete(keys, options) => {
                    let mut resp = self.exec_delete(keys, options, new_rev, fx);
                    if resp.deleted > 0 {
                        *changed = true;
                    }
                    // As etcd: the new revision once the txn has written anything.
                    resp.revision = if *changed { new_rev } else { self.rev };
                    TxnOpResponse::Delete(resp)
                }
                TxnOp::Txn(inner) => {
                    // etcd sets no header on nested transaction responses: revision 0.
                    let resp = self.exec_txn(inner, path, at, new_rev, changed, fx);
                    TxnOpResponse::Txn(TxnResponse {
                        revision: 0,
                        ..resp
                    })
                }
            };
            responses.push(r);
        }
        let revision = if *changed { new_rev } else { self.rev };
        TxnResponse {
            revision,
            succeeded: ok,
            responses,
        }
    }

    fn next_row(&mut self) -> i64 {
        self.next_row += 1;
        self.next_row
    }

    fn exec_put(
        &mut self,
        key: &[u8],
        value: &[u8],
        options: &PutOptions,
        rev: i64,
        fx: &mut Effects,
    ) -> PutResponse {
        let prev = self.latest(key);
        let value = match (&prev, options.ignore_value) {
            (Some(p), true) => p.value.clone(),
            _ => value.to_vec(),
        };
        let lease = match (&prev, options.ignore_lease) {
            (Some(p), true) => p.lease,
            _ => options.lease,
        };
        let kv = Arc::new(KeyValue {
            key: key.to_vec(),
            value,
            create_revision: prev.as_ref().map_or(rev, |p| p.create_revision),
            mod_revision: rev,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            lease,
        });
        if let Some(p) = &prev {
            if p.lease != 0 && p.lease != lease {
                if let Some(l) = self.leases.get_mut(&p.lease) {
                    l.keys.remove(key);
                }
            }
        }
        if lease != 0 {
            if let Some(l) = self.leases.get_mut(&lease) {
                l.keys.insert(key.to_vec());
            }
        }
        let row = self.next_row();
        self.push_version(
            key,
            Version {
                rev,
                row,
                kv: Some(kv.clone()),
            },
        );
        fx.sql.push(SqlOp::Insert {
            row,
            rev,
            kv: kv.clone(),
            deleted: false,
        });
        let event = Arc::new(Event {
            rev,
            kind: EventKind::Put,
            kv,
            prev: prev.clone(),
        });
        self.events.push_back(event.clone());
        fx.events.push(event);
        PutResponse {
            revision: rev,
            prev_kv: if options.prev_kv {
                prev.map(|p| KeyValue::clone(&p))
            } else {
                None
            },
        }
    }

    fn exec_delete(
        &mut self,
        keys: &KeySelector,
        options: &DeleteOptions,
        rev: i64,
        fx: &mut Effects,
    ) -> DeleteResponse {
        let live: Vec<Arc<KeyValue>> = self
            .histories(keys)
            .filter_map(|(_, h)| h.last().and_then(|v| v.kv.clone()))
            .collect();
        let mut prev_kvs = Vec::new();
        for prev in &live {
            self.delete_key(prev.clone(), rev, fx);
            if options.prev_kv {
                prev_kvs.push(KeyValue::clone(prev));
            }
        }
        DeleteResponse {
            revision: rev,
            deleted: live.len() as i64,
            prev_kvs,
        }
    }

    /// Appends to a key's history. A new key's history starts with room for one version, not
    /// the four a growing vector takes (most keys are written once or twice between
    /// compactions; at millions of keys the difference is hundreds of megabytes).
    fn push_version(&mut self, key: &[u8], version: Version) {
        match self.keys.get_mut(key) {
            Some(history) => history.push(version),
            // (`vec![x]` allocates room for exactly one.)
            None => {
                self.keys.insert(key.to_vec(), vec![version]);
            }
        }
    }

    fn delete_key(&mut self, prev: Arc<KeyValue>, rev: i64, fx: &mut Effects) {
        if prev.lease != 0 {
            if let Some(l) = self.leases.get_mut(&prev.lease) {
                l.keys.remove(&prev.key);
            }
        }
        let tomb = Arc::new(KeyValue {
            key: prev.key.clone(),
            mod_revision: rev,
            ..KeyValue::default()
        });
        let row = self.next_row();
        self.push_version(&prev.key, Version { rev, row, kv: None });
        fx.sql.push(SqlOp::Insert {
            row,
            rev,
            kv: tomb.clone(),
            deleted: true,
        });
        let event = Arc::new(Event {
            rev,
            kind: EventKind::Delete,
            kv: tomb,
            prev: Some(prev),
        });
        self.events.push_back(event.clone());
        fx.events.push(event);
    }

    // ---- leases ----

    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.deadlines.iter().next().map(|(d, _)| *d)
    }

    fn set_deadline(&mut self, id: i64, deadline_ms: i64) {
        if let Some(l) = self.leases.get_mut(&id) {
            self.deadlines.remove(&(l.deadline_ms, id));
            l.deadline_ms = deadline_ms;
            self.deadlines.insert((deadline_ms, id));
        }
    }

    pub fn lease_grant(
        &mut self,
        ttl: i64,
        id: i64,
        now_ms: i64,
        fx: &mut Effects,
    ) -> Result<crate::LeaseGrant> {
        if ttl > MAX_LEASE_TTL {
            return Err(StoreError::InvalidRequest("too large lease TTL".into()));
        }
        if id < 0 {
            return Err(StoreError::InvalidRequest(format!("invalid lease id {id}")));
        }
        let id = if id == 0 { self.random_lease_id() } else { id };
        if self.leases.contains_key(&id) {
            return Err(StoreError::LeaseExists(id));
        }
        let ttl = ttl.max(MIN_LEASE_TTL);
        let deadline_ms = now_ms + ttl * 1000;
        self.leases.insert(
            id,
            Lease {
                ttl,
                deadline_ms,
                keys: BTreeSet::new(),
            },
        );
        self.deadlines.insert((deadline_ms, id));
        fx.sql.push(SqlOp::PutLease {
            id,
            ttl,
            deadline_ms,
        });
        Ok(crate::LeaseGrant { id, ttl })
    }

    fn random_lease_id(&self) -> i64 {
        use std::hash::{BuildHasher, Hasher};
        loop {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_i64(self.rev);
            let id = (h.finish() >> 1) as i64;
            if id != 0 && !self.leases.contains_key(&id) {
                return id;
            }
        }
    }

    pub fn lease_keep_alive(&mut self, id: i64, now_ms: i64, fx: &mut Effects) -> Result<i64> {
        let ttl = match self.leases.get(&id) {
            Some(l) if l.deadline_ms > now_ms => l.ttl,
            _ => return Err(StoreError::LeaseNotFound(id)),
        };
        let deadline_ms = now_ms + ttl * 1000;
        self.set_deadline(id, deadline_ms);
        fx.sql.push(SqlOp::PutLease {
            id,
            ttl,
            deadline_ms,
        });
        Ok(ttl)
    }

    /// Removes a lease and deletes its keys (in key order) in one new revision.
    pub fn lease_revoke(&mut self, id: i64, fx: &mut Effects) -> Result<()> {
        let lease = self
            .leases
            .remove(&id)
            .ok_or(StoreError::LeaseNotFound(id))?;
        self.deadlines.remove(&(lease.deadline_ms, id));
        fx.sql.push(SqlOp::DeleteLease(id));
        let rev = self.rev + 1;
        let mut changed = false;
        for key in &lease.keys {
            if let Some(prev) = self.latest(key) {
                if prev.lease == id {
                    self.delete_key(prev, rev, fx);
                    changed = true;
                }
            }
        }
        if changed {
            self.rev = rev;
        }
        Ok(())
    }

    /// Revokes every lease whose deadline has passed, one revision each.
    pub fn expire_leases(&mut self, now_ms: i64, fx: &mut Effects) {
        while let Some(&(deadline, id)) = self.deadlines.iter().next() {
            if deadline > now_ms {
                break;
            }
            if self.lease_revoke(id, fx).is_err() {
                self.deadlines.remove(&(deadline, id));
            }
        }
    }

    pub fn lease_info(&self, id: i64, with_keys: bool, now_ms: i64) -> crate::LeaseInfo {
        match self.leases.get(&id) {
            Some(l) if l.deadline_ms > now_ms => crate::LeaseInfo {
                id,
                ttl: (l.deadline_ms - now_ms) / 1000,
                granted_ttl: l.ttl,
                keys: if with_keys {
                    l.keys.iter().cloned().collect()
                } else {
                    Vec::new()
                },
            },
            _ => crate::LeaseInfo {
                id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            },
        }
    }

    pub fn lease_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.leases.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    // ---- compaction ----

    /// Discards history before `rev`, keeping each key's version as of `rev`.
    pub fn compact(&mut self, rev: i64, visible: i64, fx: &mut Effects) -> Result<()> {
        if rev <= self.compact_rev {
            return Err(StoreError::Compacted {
                requested: rev,
                compact_revision: self.compact_rev,
            });
        }
        if rev > visible {
            return Err(StoreError::FutureRevision {
                requested: rev,
                current: visible,
            });
        }
        let mut empty = Vec::new();
        for (key, history) in self.keys.iter_mut() {
            let idx = history.partition_point(|v| v.rev <= rev);
            if idx == 0 {
                continue;
            }
            let last = &history[idx - 1];
            let drop_to = if last.rev == rev || last.kv.is_some() {
                idx - 1
            } else {
                idx
            };
            for v in history.drain(..drop_to) {
                fx.sql.push(SqlOp::DeleteRow(v.row));
            }
            if history.is_empty() {
                empty.push(key.clone());
            }
        }
        for key in empty {
            self.keys.remove(&key);
        }
        while self.events.front().is_some_and(|e| e.rev < rev) {
            self.events.pop_front();
        }
        self.compact_rev = rev;
        fx.sql.push(SqlOp::SetCompact(rev));
        Ok(())
    }

    // ---- loading ----

    /// Replays one persisted row (rows must come in log order).
    pub fn load_row(&mut self, row: i64, rev: i64, kv: KeyValue, deleted: bool) {
        self.next_row = self.next_row.max(row);
        self.rev = self.rev.max(rev);
        let prev = self.latest(&kv.key);
        let kv = Arc::new(kv);
        let (kind, stored) = if deleted {
            (EventKind::Delete, None)
        } else {
            (EventKind::Put, Some(kv.clone()))
        };
        self.push_version(
            &kv.key,
            Version {
                rev,
                row,
                kv: stored,
            },
        );
        if rev >= self.compact_rev {
            self.events.push_back(Arc::new(Event {
                rev,
                kind,
                kv,
                prev,
            }));
        }
    }

    pub fn load_lease(&mut self, id: i64, ttl: i64, deadline_ms: i64) {
        self.leases.insert(
            id,
            Lease {
                ttl,
                deadline_ms,
                keys: BTreeSet::new(),
            },
        );
        self.deadlines.insert((deadline_ms, id));
    }

    /// After loading: attach live keys to their leases.
    pub fn finish_load(&mut self) {
        self.rev = self.rev.max(self.compact_rev).max(1);
        let attached: Vec<(i64, Vec<u8>)> = self
            .keys
            .iter()
            .filter_map(|(k, h)| {
                h.last()
                    .and_then(|v| v.kv.as_ref())
                    .filter(|kv| kv.lease != 0)
                    .map(|kv| (kv.lease, k.clone()))
            })
            .collect();
        for (lease, key) in attached {
            if let Some(l) = self.leases.get_mut(&lease) {
                l.keys.insert(key);
            }
        }
    }
}
