//! The embedded store's in-memory MVCC state: every key's version history without the values
//! (as etcd's key index; the values stay in the log, [`super::log`]), where each revision starts
//! in the log (what watches catch up from), and the leases. Applying a write here yields the
//! rows to persist ([`SqlOp`]) and the events to publish; nothing in this module does I/O: the
//! values a transaction reads are fetched from the log before it is applied.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use crate::{
    Compare, CompareOp, CompareTarget, DeleteOptions, DeleteResponse, EventKind, KeySelector,
    KeyValue, PutOptions, PutResponse, RangeOptions, RangeResponse, Result, SortOrder, SortTarget,
    StoreError, Txn, TxnOp, TxnOpResponse, TxnResponse,
};

use super::log::Values;

/// Longest lease TTL etcd accepts (`MaxLeaseTTL`).
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;
/// Shortest lease TTL: etcd raises smaller TTLs to `ceil(1.5 * election timeout)`, 2 s with its
/// default 1 s election timeout.
pub const MIN_LEASE_TTL: i64 = 2;

/// What the index keeps of one live version of a key: everything but the value, which stays
/// in the log at the version's row ([`super::log`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub create_revision: i64,
    pub version: i64,
    pub lease: i64,
    /// Bytes of the value (for watch budgets).
    pub value_len: u32,
}

/// One entry of a key's history: the key as written at `rev` (its value at log row `row`), or
/// a tombstone (`meta` is `None`).
#[derive(Debug, Clone)]
pub(crate) struct Version {
    pub rev: i64,
    /// Row id in the log table.
    pub row: i64,
    pub meta: Option<Meta>,
}

impl Version {
    /// The version as etcd returns it, with its value.
    fn key_value(&self, key: &[u8], value: Vec<u8>) -> Option<KeyValue> {
        self.with_key(key.to_vec(), value)
    }

    fn with_key(&self, key: Vec<u8>, value: Vec<u8>) -> Option<KeyValue> {
        let meta = self.meta?;
        Some(KeyValue {
            key,
            value,
            create_revision: meta.create_revision,
            mod_revision: self.rev,
            version: meta.version,
            lease: meta.lease,
        })
    }
}

/// The version a change replaced, for watchers that ask for it (`prev_kv`): its value is read
/// from the log when one does.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Prev {
    pub row: i64,
    pub rev: i64,
    pub meta: Meta,
}

/// One change, as delivered to live watchers (the published batch is dropped once delivered;
/// watchers that catch up read the log instead).
#[derive(Debug)]
pub(crate) struct Event {
    pub rev: i64,
    pub kind: EventKind,
    pub kv: Arc<KeyValue>,
    pub prev: Option<Prev>,
    /// The replaced version's value, read from the log when the batch is published if a live
    /// watcher asks for it (so it is there even if a compaction passes before delivery).
    pub prev_value: std::sync::OnceLock<Vec<u8>>,
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

/// Output of applying writes: rows to persist, events to publish, and the values of this
/// batch's own writes (not in the log until the batch commits) by row.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    pub sql: Vec<SqlOp>,
    pub events: Vec<Arc<Event>>,
    pending: HashMap<i64, Arc<KeyValue>>,
}

impl Effects {
    /// The value at `row`: this batch's own write, or one read from the log beforehand.
    fn value(&self, fetched: &Fetched, row: i64) -> Vec<u8> {
        match self.pending.get(&row) {
            Some(kv) => kv.value.clone(),
            // Every row a transaction can read was fetched before it ran (`rows_for_txn`).
            None => fetched.get(row).cloned().unwrap_or_default(),
        }
    }
}

/// The values a transaction reads, fetched from the log before it is applied: the rows of
/// [`State::rows_for_txn`] (sorted) and their values, in the same order.
#[derive(Debug, Default)]
pub(crate) struct Fetched {
    rows: Vec<i64>,
    values: Values,
}

impl Fetched {
    pub fn new(rows: Vec<i64>, values: Values) -> Fetched {
        debug_assert!(rows.windows(2).all(|w| w[0] < w[1]));
        debug_assert_eq!(rows.len(), values.len());
        Fetched { rows, values }
    }

    fn get(&self, row: i64) -> Option<&Vec<u8>> {
        let at = self.rows.binary_search(&row).ok()?;
        self.values.get(at)?.as_ref()
    }
}

#[derive(Debug, Default)]
pub(crate) struct State {
    /// Latest applied revision (may be ahead of what readers see until its batch is durable).
    pub rev: i64,
    pub compact_rev: i64,
    keys: BTreeMap<Box<[u8]>, Vec<Version>>,
    /// The first log row of each revision since `compact_rev`, in order: where watchers that
    /// catch up read the log from.
    revisions: VecDeque<(i64, i64)>,
    pub leases: HashMap<i64, Lease>,
    deadlines: BTreeSet<(i64, i64)>,
    next_row: i64,
}

/// The log rows of whole revisions a catching-up watcher reads next: ids `first_row..end_row`,
/// revisions up to `last_rev`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LogSpan {
    pub first_row: i64,
    pub end_row: i64,
    pub last_rev: i64,
}

/// A range read worked out on the index: the versions it returns, whose values are then read
/// from the log ([`RangePlan::finish`]).
#[derive(Debug)]
pub(crate) struct RangePlan {
    /// The revision the answer is read at.
    pub read_rev: i64,
    /// The response's header revision.
    header_rev: i64,
    items: Vec<(Vec<u8>, Version)>,
    count: i64,
    more: bool,
    keys_only: bool,
    /// Sorting by value (and the limit after it) waits for the values.
    by_value: Option<(SortOrder, i64)>,
}

impl RangePlan {
    /// The log rows whose values the answer needs (none for keys-only reads).
    pub fn rows(&self) -> Vec<i64> {
        if self.keys_only {
            return Vec::new();
        }
        self.items.iter().map(|(_, v)| v.row).collect()
    }

    /// The answer, given the values read for [`RangePlan::rows`], in its order; `Err(row)`
    /// names a row the values lack (compacted away since the plan was made).
    pub fn finish(self, values: Values) -> std::result::Result<RangeResponse, i64> {
        let mut kvs = Vec::with_capacity(self.items.len());
        let mut values = values.into_iter();
        for (key, version) in self.items {
            let value = if self.keys_only {
                Vec::new()
            } else {
                values.next().flatten().ok_or(version.row)?
            };
            kvs.extend(version.with_key(key, value));
        }
        let mut more = self.more;
        if let Some((order, limit)) = self.by_value {
            kvs.sort_by(|a, b| {
                let ord = a.value.cmp(&b.value);
                if order == SortOrder::Descend {
                    ord.reverse()
                } else {
                    ord
                }
            });
            if limit > 0 && kvs.len() as i64 > limit {
                kvs.truncate(limit as usize);
                more = true;
            }
        }
        Ok(RangeResponse {
            revision: self.header_rev,
            kvs,
            count: self.count,
            more,
        })
    }
}

/// One key of the index with its history.
type Entry<'a> = (&'a Box<[u8]>, &'a Vec<Version>);

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

fn at_revision(history: &[Version], rev: i64) -> Option<&Version> {
    let idx = history.partition_point(|v| v.rev <= rev);
    if idx == 0 {
        return None;
    }
    Some(&history[idx - 1]).filter(|v| v.meta.is_some())
}

/// The live version at the end of a history.
fn latest_of(history: &[Version]) -> Option<&Version> {
    history.last().filter(|v| v.meta.is_some())
}

/// The fields a compare reads of a key (all zero, and no value, for a missing key).
#[derive(Default)]
struct Compared<'a> {
    value: Option<&'a [u8]>,
    version: i64,
    create_revision: i64,
    mod_revision: i64,
    lease: i64,
}

fn compare_holds(kv: &Compared<'_>, c: &Compare) -> bool {
    use std::cmp::Ordering;
    let ord = match &c.target {
        CompareTarget::Value(v) => kv.value.unwrap_or_default().cmp(v.as_slice()),
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

/// The sort a range asks for, with etcd's default (ascending) when only a target is given.
fn sort_order(options: &RangeOptions) -> SortOrder {
    match (options.sort_order, options.sort_target) {
        (SortOrder::None, SortTarget::Key) => SortOrder::None,
        (SortOrder::None, _) => SortOrder::Ascend,
        (o, _) => o,
    }
}

/// Where a transaction's execution is: the branch decisions, the next one to take, its
/// revision, whether it has written, and the values fetched for it.
struct Run<'a> {
    path: &'a [bool],
    at: usize,
    new_rev: i64,
    changed: &'a mut bool,
    fetched: &'a Fetched,
}

impl Run<'_> {
    /// The revision the transaction's reads see: its own once it has written.
    fn current(&self, before: i64) -> i64 {
        if *self.changed {
            self.new_rev
        } else {
            before
        }
    }
}

/// A replaced version as watchers are told of it (nothing for a tombstone).
fn prev_of(version: &Version) -> Option<Prev> {
    Some(Prev {
        row: version.row,
        rev: version.rev,
        meta: version.meta?,
    })
}

/// Orders a range's versions by a target other than the value (key order is the index's).
fn sort_items(items: &mut [(Vec<u8>, Version)], order: SortOrder, target: SortTarget) {
    let field = |v: &Version| -> i64 {
        let meta = v.meta.unwrap_or(Meta {
            create_revision: 0,
            version: 0,
            lease: 0,
            value_len: 0,
        });
        match target {
            SortTarget::Version => meta.version,
            SortTarget::Create => meta.create_revision,
            SortTarget::Mod => v.rev,
            SortTarget::Key | SortTarget::Value => 0,
        }
    };
    match (order, target) {
        (SortOrder::None | SortOrder::Ascend, SortTarget::Key) => {}
        (SortOrder::Descend, SortTarget::Key) => items.reverse(),
        (order, _) => items.sort_by(|(_, a), (_, b)| {
            let ord = field(a).cmp(&field(b));
            if order == SortOrder::Descend {
                ord.reverse()
            } else {
                ord
            }
        }),
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
    fn histories<'a>(&'a self, keys: &KeySelector) -> Box<dyn Iterator<Item = Entry<'a>> + 'a> {
        match bounds(keys) {
            None => Box::new(std::iter::empty()),
            Some((start, end)) => {
                let as_slice = |b: &Bound<Vec<u8>>| -> Bound<Box<[u8]>> {
                    match b {
                        Bound::Included(k) => Bound::Included(k.clone().into_boxed_slice()),
                        Bound::Excluded(k) => Bound::Excluded(k.clone().into_boxed_slice()),
                        Bound::Unbounded => Bound::Unbounded,
                    }
                };
                Box::new(self.keys.range((as_slice(&start), as_slice(&end))))
            }
        }
    }

    fn latest(&self, key: &[u8]) -> Option<&Version> {
        self.keys.get(key).and_then(|h| latest_of(h))
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

    /// Works out a range read as of revision `current` (the newest revision the reader may
    /// see); the values are read from the log afterwards.
    pub fn plan_range(
        &self,
        keys: &KeySelector,
        options: &RangeOptions,
        current: i64,
    ) -> Result<RangePlan> {
        let rev = self.check_read_revision(options.revision, current)?;
        let order = sort_order(options);
        let early_limit = matches!(order, SortOrder::None | SortOrder::Ascend)
            && options.sort_target == SortTarget::Key
            && options.limit > 0;
        let mut count = 0i64;
        let mut items = Vec::new();
        for (key, history) in self.histories(keys) {
            if let Some(version) = at_revision(history, rev) {
                count += 1;
                if options.count_only || (early_limit && items.len() as i64 > options.limit) {
                    continue;
                }
                items.push((key.to_vec(), version.clone()));
            }
        }
        let by_value = (options.sort_target == SortTarget::Value && order != SortOrder::None)
            .then_some((order, options.limit));
        let mut more = false;
        if by_value.is_none() {
            sort_items(&mut items, order, options.sort_target);
            if options.limit > 0 && items.len() as i64 > options.limit {
                items.truncate(options.limit as usize);
                more = true;
            }
        }
        Ok(RangePlan {
            read_rev: rev,
            header_rev: current,
            items,
            count,
            more,
            keys_only: options.keys_only || options.count_only,
            by_value,
        })
    }

    /// The rows a transaction may read values from (in either branch), leaving out this
    /// batch's own writes: fetched from the log before it is applied.
    pub fn rows_for_txn(&self, txn: &Txn, visible: i64, fx: &Effects) -> Vec<i64> {
        let mut rows = Vec::new();
        self.collect_txn_rows(txn, visible, &mut rows);
        rows.retain(|row| !fx.pending.contains_key(row));
        rows.sort_unstable();
        rows.dedup();
        rows
    }

    fn collect_txn_rows(&self, txn: &Txn, visible: i64, rows: &mut Vec<i64>) {
        let latest_rows = |sel: &KeySelector, rows: &mut Vec<i64>| {
            rows.extend(
                self.histories(sel)
                    .filter_map(|(_, h)| latest_of(h).map(|v| v.row)),
            );
        };
        for c in &txn.compare {
            if matches!(c.target, CompareTarget::Value(_)) {
                latest_rows(&compare_selector(c), rows);
            }
        }
        for op in txn.success.iter().chain(&txn.failure) {
            match op {
                TxnOp::Put { key, options, .. } if options.ignore_value || options.prev_kv => {
                    rows.extend(self.latest(key).map(|v| v.row));
                }
                TxnOp::Put { .. } => {}
                TxnOp::Delete(sel, options) if options.prev_kv => latest_rows(sel, rows),
                TxnOp::Delete(..) => {}
                TxnOp::Range(sel, options) if !(options.keys_only || options.count_only) => {
                    if let Ok(rev) =
                        self.check_read_revision(options.revision, visible.max(self.rev))
                    {
                        rows.extend(
                            self.histories(sel)
                                .filter_map(|(_, h)| at_revision(h, rev).map(|v| v.row)),
                        );
                    }
                }
                TxnOp::Range(..) => {}
                TxnOp::Txn(inner) => self.collect_txn_rows(inner, visible, rows),
            }
        }
    }

    /// Whether a compare holds against the latest state.
    fn compare(&self, c: &Compare, fx: &Effects, fetched: &Fetched) -> bool {
        let sel = compare_selector(c);
        let mut any = false;
        for (_, history) in self.histories(&sel) {
            if let Some(version) = latest_of(history) {
                let Some(meta) = version.meta else { continue };
                any = true;
                let value = matches!(c.target, CompareTarget::Value(_))
                    .then(|| fx.value(fetched, version.row));
                let fields = Compared {
                    value: value.as_deref(),
                    version: meta.version,
                    create_revision: meta.create_revision,
                    mod_revision: version.rev,
                    lease: meta.lease,
                };
                if !compare_holds(&fields, c) {
                    return false;
                }
            }
        }
        if !any {
            // A missing key fails every value compare and has zero version, revisions and lease.
            if matches!(c.target, CompareTarget::Value(_)) {
                return false;
            }
            return compare_holds(&Compared::default(), c);
        }
        true
    }

    /// Decides every branch before anything is written (as etcd does): `true` per txn in
    /// depth-first order when its compares held.
    fn txn_path(&self, txn: &Txn, path: &mut Vec<bool>, fx: &Effects, fetched: &Fetched) {
        let ok = txn.compare.iter().all(|c| self.compare(c, fx, fetched));
        path.push(ok);
        let ops = if ok { &txn.success } else { &txn.failure };
        for op in ops {
            if let TxnOp::Txn(inner) = op {
                self.txn_path(inner, path, fx, fetched);
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

    /// Applies a transaction; `visible` is the newest revision readers can see, `fetched` the
    /// values of the rows [`State::rows_for_txn`] named, read from the log.
    pub fn apply_txn(
        &mut self,
        txn: &Txn,
        visible: i64,
        fetched: &Fetched,
        fx: &mut Effects,
    ) -> Result<TxnResponse> {
        let mut path = Vec::new();
        self.txn_path(txn, &mut path, fx, fetched);
        self.check_ops(txn, &path, &mut 0, visible)?;
        let new_rev = self.rev + 1;
        let mut changed = false;
        let mut run = Run {
            path: &path,
            at: 0,
            new_rev,
            changed: &mut changed,
            fetched,
        };
        let resp = self.exec_txn(txn, &mut run, fx);
        if changed {
            self.rev = new_rev;
        }
        Ok(TxnResponse {
            revision: self.rev,
            ..resp
        })
    }

    fn exec_txn(&mut self, txn: &Txn, run: &mut Run<'_>, fx: &mut Effects) -> TxnResponse {
        let ok = run.path[run.at];
        run.at += 1;
        let mut responses = Vec::new();
        for op in if ok { &txn.success } else { &txn.failure } {
            let r = match op {
                TxnOp::Range(keys, options) => {
                    TxnOpResponse::Range(self.exec_range(keys, options, run, fx))
                }
                TxnOp::Put {
                    key,
                    value,
                    options,
                } => {
                    *run.changed = true;
                    let put = self.exec_put(key, value, options, run, fx);
                    TxnOpResponse::Put(put)
                }
                TxnOp::Delete(keys, options) => {
                    let mut resp = self.exec_delete(keys, options, run, fx);
                    if resp.deleted > 0 {
                        *run.changed = true;
                    }
                    // As etcd: the new revision once the txn has written anything.
                    resp.revision = run.current(self.rev);
                    TxnOpResponse::Delete(resp)
                }
                TxnOp::Txn(inner) => {
                    // etcd sets no header on nested transaction responses: revision 0.
                    let resp = self.exec_txn(inner, run, fx);
                    TxnOpResponse::Txn(TxnResponse {
                        revision: 0,
                        ..resp
                    })
                }
            };
            responses.push(r);
        }
        TxnResponse {
            revision: run.current(self.rev),
            succeeded: ok,
            responses,
        }
    }

    /// A range inside a transaction: it sees the transaction's earlier writes.
    fn exec_range(
        &self,
        keys: &KeySelector,
        options: &RangeOptions,
        run: &Run<'_>,
        fx: &Effects,
    ) -> RangeResponse {
        let current = run.current(self.rev);
        let mut options = options.clone();
        if options.revision > current {
            options.revision = current;
        }
        // Revisions were checked before anything was written.
        let Ok(plan) = self.plan_range(keys, &options, current) else {
            return RangeResponse::default();
        };
        let values: Values = plan
            .rows()
            .into_iter()
            .map(|row| Some(fx.value(run.fetched, row)))
            .collect();
        plan.finish(values).unwrap_or_default()
    }

    fn next_row(&mut self) -> i64 {
        self.next_row += 1;
        self.next_row
    }

    /// Notes where a revision starts in the log (its first row).
    fn note_revision(&mut self, rev: i64, row: i64) {
        if self.revisions.back().is_none_or(|(last, _)| *last < rev) {
            self.revisions.push_back((rev, row));
        }
    }

    fn exec_put(
        &mut self,
        key: &[u8],
        value: &[u8],
        options: &PutOptions,
        run: &Run<'_>,
        fx: &mut Effects,
    ) -> PutResponse {
        let rev = run.new_rev;
        let prev = self.latest(key).cloned();
        let prev_meta = prev.as_ref().and_then(|p| p.meta);
        let value = match (&prev, options.ignore_value) {
            (Some(p), true) => fx.value(run.fetched, p.row),
            _ => value.to_vec(),
        };
        let lease = match (prev_meta, options.ignore_lease) {
            (Some(p), true) => p.lease,
            _ => options.lease,
        };
        let meta = Meta {
            create_revision: prev_meta.map_or(rev, |p| p.create_revision),
            version: prev_meta.map_or(1, |p| p.version + 1),
            lease,
            value_len: value.len() as u32,
        };
        if let Some(p) = prev_meta {
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
        let version = Version {
            rev,
            row,
            meta: Some(meta),
        };
        let kv = Arc::new(version.key_value(key, value).unwrap_or_default());
        self.push_version(key, version);
        self.note_revision(rev, row);
        fx.sql.push(SqlOp::Insert {
            row,
            rev,
            kv: kv.clone(),
            deleted: false,
        });
        fx.pending.insert(row, kv.clone());
        let prev_kv = match (&prev, options.prev_kv) {
            (Some(p), true) => p.key_value(key, fx.value(run.fetched, p.row)),
            _ => None,
        };
        let prev = prev.and_then(|p| prev_of(&p));
        fx.events.push(Arc::new(Event {
            rev,
            kind: EventKind::Put,
            kv,
            prev,
            prev_value: Default::default(),
        }));
        PutResponse {
            revision: rev,
            prev_kv,
        }
    }

    fn exec_delete(
        &mut self,
        keys: &KeySelector,
        options: &DeleteOptions,
        run: &Run<'_>,
        fx: &mut Effects,
    ) -> DeleteResponse {
        let live: Vec<(Box<[u8]>, Version)> = self
            .histories(keys)
            .filter_map(|(k, h)| latest_of(h).map(|v| (k.clone(), v.clone())))
            .collect();
        let mut prev_kvs = Vec::new();
        for (key, prev) in &live {
            if options.prev_kv {
                prev_kvs.extend(prev.key_value(key, fx.value(run.fetched, prev.row)));
            }
            self.delete_key(key, prev, run.new_rev, fx);
        }
        DeleteResponse {
            revision: run.new_rev,
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
                self.keys.insert(key.into(), vec![version]);
            }
        }
    }

    fn delete_key(&mut self, key: &[u8], prev: &Version, rev: i64, fx: &mut Effects) {
        let Some(meta) = prev.meta else { return };
        if meta.lease != 0 {
            if let Some(l) = self.leases.get_mut(&meta.lease) {
                l.keys.remove(key);
            }
        }
        let tomb = Arc::new(KeyValue {
            key: key.to_vec(),
            mod_revision: rev,
            ..KeyValue::default()
        });
        let row = self.next_row();
        self.push_version(
            key,
            Version {
                rev,
                row,
                meta: None,
            },
        );
        self.note_revision(rev, row);
        fx.sql.push(SqlOp::Insert {
            row,
            rev,
            kv: tomb.clone(),
            deleted: true,
        });
        fx.events.push(Arc::new(Event {
            rev,
            kind: EventKind::Delete,
            kv: tomb,
            prev: prev_of(prev),
            prev_value: Default::default(),
        }));
    }

    /// The version of `key` a change at `rev` replaced (for watchers that ask for it).
    pub fn prev_version(&self, key: &[u8], rev: i64) -> Option<Prev> {
        let history = self.keys.get(key)?;
        let idx = history.partition_point(|v| v.rev < rev);
        prev_of(history.get(idx.checked_sub(1)?)?)
    }

    /// The log rows of the whole revisions from `from_rev` up to `visible` that a catching-up
    /// watcher reads next: at most about `max_rows` rows, and always one whole revision.
    /// `None` when no revision in that span wrote anything.
    pub fn log_span(&self, from_rev: i64, visible: i64, max_rows: i64) -> Option<LogSpan> {
        let first = self.revisions.partition_point(|(rev, _)| *rev < from_rev);
        let (first_rev, first_row) = *self.revisions.get(first)?;
        if first_rev > visible {
            return None;
        }
        let mut last = first;
        let end_row_after = |i: usize| {
            self.revisions
                .get(i + 1)
                .map_or(self.next_row + 1, |(_, row)| *row)
        };
        while let Some((rev, _)) = self.revisions.get(last + 1) {
            if *rev > visible || end_row_after(last + 1) - first_row > max_rows {
                break;
            }
            last += 1;
        }
        Some(LogSpan {
            first_row,
            end_row: end_row_after(last),
            last_rev: self.revisions[last].0,
        })
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
            let Some(prev) = self.latest(key).cloned() else {
                continue;
            };
            if prev.meta.is_some_and(|m| m.lease == id) {
                self.delete_key(key, &prev, rev, fx);
                changed = true;
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
            let drop_to = if last.rev == rev || last.meta.is_some() {
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
        while self.revisions.front().is_some_and(|(r, _)| *r < rev) {
            self.revisions.pop_front();
        }
        self.compact_rev = rev;
        fx.sql.push(SqlOp::SetCompact(rev));
        Ok(())
    }

    // ---- loading ----

    /// Replays one persisted row (rows must come in log order); `meta` is `None` for a
    /// tombstone.
    pub fn load_row(&mut self, row: i64, rev: i64, key: &[u8], meta: Option<Meta>) {
        self.next_row = self.next_row.max(row);
        self.rev = self.rev.max(rev);
        self.push_version(key, Version { rev, row, meta });
        if rev >= self.compact_rev {
            self.note_revision(rev, row);
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
                latest_of(h)
                    .and_then(|v| v.meta)
                    .filter(|m| m.lease != 0)
                    .map(|m| (m.lease, k.to_vec()))
            })
            .collect();
        for (lease, key) in attached {
            if let Some(l) = self.leases.get_mut(&lease) {
                l.keys.insert(key);
            }
        }
    }
}
