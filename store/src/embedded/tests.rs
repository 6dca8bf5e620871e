//! Unit tests of the embedded store's pure MVCC state and of its writer's batching.

use std::sync::Arc;

use super::log::Log;
use super::state::{Effects, SqlOp, State};
use super::{EmbeddedOptions, EmbeddedStore};
use crate::{EventKind, KeySelector, PutOptions, RangeOptions, Store, StoreError, Txn, TxnOp};

/// The pure state with the log it reads values from, as the writer keeps them.
struct Mvcc {
    state: State,
    log: Log,
}

impl Mvcc {
    fn new() -> Mvcc {
        Mvcc {
            state: State::new(),
            log: Log::memory(),
        }
    }

    /// Applies a transaction and "commits" its rows.
    fn txn(&mut self, txn: &Txn) -> crate::TxnResponse {
        let mut fx = Effects::default();
        let visible = self.state.rev;
        let resp = super::apply_txn(&self.log, &mut self.state, txn, visible, &mut fx).unwrap();
        self.log.committed(&fx.sql);
        resp
    }

    fn commit(&mut self, fx: &Effects) {
        self.log.committed(&fx.sql);
    }

    fn range(
        &self,
        keys: &KeySelector,
        options: &RangeOptions,
    ) -> Result<crate::RangeResponse, StoreError> {
        let plan = self.state.plan_range(keys, options, self.state.rev)?;
        let values = self.log.values(&plan.rows())?;
        Ok(plan.finish(values).expect("every row is in the log"))
    }
}

fn put(m: &mut Mvcc, key: &str, value: &str) -> i64 {
    m.txn(&Txn::new().and_then([TxnOp::put(key, value)]))
        .revision
}

/// A key's value at a revision, as a read returns it.
type Read = Result<Option<Vec<u8>>, StoreError>;

fn get_at(m: &Mvcc, key: &str, rev: i64) -> Read {
    let options = RangeOptions {
        revision: rev,
        ..Default::default()
    };
    m.range(&KeySelector::key(key), &options)
        .map(|r| r.kvs.into_iter().next().map(|kv| kv.value))
}

#[test]
fn compaction_keeps_each_live_key_as_of_the_compaction_revision() {
    let mut s = Mvcc::new();
    put(&mut s, "a", "1"); // 2
    put(&mut s, "a", "2"); // 3
    put(&mut s, "b", "x"); // 4
    s.txn(&Txn::new().and_then([TxnOp::delete("b")])); // 5
    put(&mut s, "a", "3"); // 6
    let mut fx = Effects::default();
    s.state.compact(5, 6, &mut fx).unwrap();
    s.commit(&fx);
    let dropped = fx
        .sql
        .iter()
        .filter(|op| matches!(op, SqlOp::DeleteRow(_)))
        .count();
    assert_eq!(
        dropped, 2,
        "a@2 is superseded; b@4 is superseded by its tombstone at 5"
    );
    let table: Vec<(i64, Read)> = vec![
        (
            4,
            Err(StoreError::Compacted {
                requested: 4,
                compact_revision: 5,
            }),
        ),
        (5, Ok(Some(b"2".to_vec()))),
        (6, Ok(Some(b"3".to_vec()))),
    ];
    for (rev, expected) in table {
        let got = get_at(&s, "a", rev);
        assert_eq!(format!("{got:?}"), format!("{expected:?}"), "a at {rev}");
    }
    assert_eq!(get_at(&s, "b", 5).unwrap(), None);
    let span = s
        .state
        .log_span(1, 6, 100)
        .expect("revisions 5 and 6 are in the log");
    assert_eq!(span.last_rev, 6);
    let revs: Vec<i64> = s
        .log
        .rows(span.first_row, span.end_row)
        .unwrap()
        .iter()
        .map(|r| r.rev)
        .collect();
    assert_eq!(
        revs,
        vec![5, 6],
        "the log keeps what watchers replay from the compaction on"
    );
}

#[test]
fn expired_leases_are_revoked_one_revision_each_in_key_order() {
    let mut m = Mvcc::new();
    let mut fx = Effects::default();
    let l1 = m.state.lease_grant(5, 0, 0, &mut fx).unwrap().id;
    let l2 = m.state.lease_grant(5, 0, 0, &mut fx).unwrap().id;
    for (key, lease) in [("z", l1), ("a", l1), ("m", l2)] {
        let ops = [TxnOp::Put {
            key: key.into(),
            value: b"v".to_vec(),
            options: PutOptions {
                lease,
                ..Default::default()
            },
        }];
        m.txn(&Txn::new().and_then(ops));
    }
    let s = &mut m.state;
    let before = s.rev;
    let mut fx = Effects::default();
    s.expire_leases(4_999, &mut fx);
    assert!(fx.events.is_empty(), "not yet due");
    s.expire_leases(5_000, &mut fx);
    let events: Vec<(EventKind, Vec<u8>, i64)> = fx
        .events
        .iter()
        .map(|e| (e.kind, e.kv.key.clone(), e.rev))
        .collect();
    assert_eq!(s.rev, before + 2, "one revision per lease");
    let expected: Vec<(EventKind, Vec<u8>, i64)> = if l1 < l2 {
        vec![
            (EventKind::Delete, b"a".to_vec(), before + 1),
            (EventKind::Delete, b"z".to_vec(), before + 1),
            (EventKind::Delete, b"m".to_vec(), before + 2),
        ]
    } else {
        vec![
            (EventKind::Delete, b"m".to_vec(), before + 1),
            (EventKind::Delete, b"a".to_vec(), before + 2),
            (EventKind::Delete, b"z".to_vec(), before + 2),
        ]
    };
    assert_eq!(events, expected);
    assert!(s.lease_ids().is_empty());
}

#[test]
fn lease_ttls_are_raised_to_the_minimum_and_capped() {
    let mut s = State::new();
    let mut fx = Effects::default();
    assert_eq!(
        s.lease_grant(1, 7, 0, &mut fx).unwrap().ttl,
        super::state::MIN_LEASE_TTL
    );
    assert!(matches!(
        s.lease_grant(super::state::MAX_LEASE_TTL + 1, 0, 0, &mut fx),
        Err(StoreError::InvalidRequest(_))
    ));
    assert!(matches!(
        s.lease_grant(10, 7, 0, &mut fx),
        Err(StoreError::LeaseExists(7))
    ));
    assert_eq!(s.lease_info(7, false, 500).ttl, 1);
    assert_eq!(s.lease_info(7, false, 2_000).ttl, -1);
}

#[tokio::test]
async fn concurrent_writes_are_committed_together_and_each_gets_its_own_revision() {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    let mut tasks = Vec::new();
    for i in 0..200 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .put(
                    format!("k{i}").into_bytes(),
                    b"v".to_vec(),
                    PutOptions::default(),
                )
                .await
                .unwrap()
                .revision
        }));
    }
    let mut revisions = Vec::new();
    for t in tasks {
        revisions.push(t.await.unwrap());
    }
    revisions.sort_unstable();
    assert_eq!(revisions, (2..202).collect::<Vec<i64>>());
}

#[tokio::test]
async fn auto_compaction_keeps_the_configured_history() {
    let options = EmbeddedOptions {
        auto_compaction_retention: 10,
        ..Default::default()
    };
    let store = EmbeddedStore::in_memory_with(options);
    for i in 0..50 {
        store
            .put(
                b"k".to_vec(),
                format!("{i}").into_bytes(),
                PutOptions::default(),
            )
            .await
            .unwrap();
    }
    let status = store.status().await.unwrap();
    assert!(status.compact_revision > 0);
    assert!(
        status.revision - status.compact_revision <= 21,
        "{status:?}"
    );
    let kv = store
        .range(KeySelector::key("k"), RangeOptions::default())
        .await
        .unwrap()
        .kvs
        .remove(0);
    assert_eq!(kv.version, 50);
}

mod properties {
    //! Property: the MVCC state behaves as a plain map of keys to values, with one revision per
    //! effective write and etcd's per-key counters.

    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::Mvcc;
    use crate::{DeleteOptions, KeySelector, RangeOptions, Txn, TxnOp};

    #[derive(Debug, Clone)]
    enum Op {
        Put(u8, u8),
        Delete(u8),
        DeletePrefix(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..8, any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
            (0u8..8).prop_map(Op::Delete),
            (0u8..2).prop_map(Op::DeletePrefix),
        ]
    }

    fn key(k: u8) -> Vec<u8> {
        format!("{}/{}", k % 2, k).into_bytes()
    }

    proptest! {
        #[test]
        fn the_state_matches_a_plain_map_with_one_revision_per_effective_write(ops in proptest::collection::vec(op(), 1..80)) {
            let mut state = Mvcc::new();
            // key -> (value, create_revision, version)
            let mut model: BTreeMap<Vec<u8>, (Vec<u8>, i64, i64)> = BTreeMap::new();
            let mut revision = 1;
            for op in ops {
                let (txn, effective) = match &op {
                    Op::Put(k, v) => (Txn::new().and_then([TxnOp::put(key(*k), vec![*v])]), true),
                    Op::Delete(k) => (Txn::new().and_then([TxnOp::delete(key(*k))]), model.contains_key(&key(*k))),
                    Op::DeletePrefix(p) => {
                        let prefix = format!("{p}/").into_bytes();
                        let sel = KeySelector::Prefix(prefix.clone());
                        let any = model.keys().any(|k| k.starts_with(&prefix));
                        (Txn::new().and_then([TxnOp::Delete(sel, DeleteOptions::default())]), any)
                    }
                };
                let resp = state.txn(&txn);
                if effective {
                    revision += 1;
                }
                prop_assert_eq!(resp.revision, revision);
                match op {
                    Op::Put(k, v) => {
                        let entry = model.entry(key(k)).or_insert((Vec::new(), revision, 0));
                        entry.0 = vec![v];
                        entry.2 += 1;
                    }
                    Op::Delete(k) => {
                        model.remove(&key(k));
                    }
                    Op::DeletePrefix(p) => {
                        let prefix = format!("{p}/").into_bytes();
                        model.retain(|k, _| !k.starts_with(&prefix));
                    }
                }
                let all = state.range(&KeySelector::prefix(""), &RangeOptions::default()).unwrap();
                let got: BTreeMap<Vec<u8>, (Vec<u8>, i64, i64)> = all
                    .kvs
                    .into_iter()
                    .map(|kv| (kv.key, (kv.value, kv.create_revision, kv.version)))
                    .collect();
                prop_assert_eq!(&got, &model);
            }
        }
    }
}

#[test]
fn catch_up_spans_cover_whole_revisions_up_to_the_visible_one() {
    let mut m = Mvcc::new();
    put(&mut m, "a", "1"); // 2: row 1
    m.txn(&Txn::new().and_then([
        TxnOp::put("b", "1"),
        TxnOp::put("c", "1"),
        TxnOp::put("d", "1"),
    ])); // 3: rows 2-4
    put(&mut m, "a", "2"); // 4: row 5
                           // (from revision, visible, most rows) -> (first row, end row, last revision)
    type Case = ((i64, i64, i64), Option<(i64, i64, i64)>);
    let table: Vec<Case> = vec![
        ((2, 4, 100), Some((1, 6, 4))),
        ((2, 4, 1), Some((1, 2, 2))),
        // A revision larger than the limit is still read whole.
        ((3, 4, 1), Some((2, 5, 3))),
        ((2, 3, 100), Some((1, 5, 3))),
        ((4, 4, 100), Some((5, 6, 4))),
        ((5, 4, 100), None),
        ((1, 1, 100), None),
    ];
    for ((from, visible, max_rows), expected) in table {
        let got = m
            .state
            .log_span(from, visible, max_rows)
            .map(|s| (s.first_row, s.end_row, s.last_rev));
        assert_eq!(
            got, expected,
            "from {from}, visible {visible}, {max_rows} rows"
        );
    }
}

#[test]
fn a_range_whose_rows_were_compacted_away_meanwhile_names_the_missing_row() {
    let mut m = Mvcc::new();
    put(&mut m, "a", "1");
    let plan = m
        .state
        .plan_range(
            &KeySelector::key("a"),
            &RangeOptions::default(),
            m.state.rev,
        )
        .unwrap();
    let rows = plan.rows();
    assert_eq!(plan.finish(Default::default()).unwrap_err(), rows[0]);
}

#[tokio::test]
async fn a_live_watcher_gets_replaced_values_even_after_a_compaction_passed_them() {
    use futures::StreamExt;
    let store = EmbeddedStore::in_memory();
    let options = crate::WatchOptions {
        prev_kv: true,
        ..Default::default()
    };
    let mut watch = store.watch(KeySelector::key("k"), options).await.unwrap();
    store
        .put(b"k".to_vec(), b"1".to_vec(), PutOptions::default())
        .await
        .unwrap();
    let rev = store
        .put(b"k".to_vec(), b"2".to_vec(), PutOptions::default())
        .await
        .unwrap()
        .revision;
    // Drops the row of k=1 from the log before the watcher reads anything.
    store.compact(rev).await.unwrap();
    let mut events = Vec::new();
    while events.len() < 2 {
        let resp = tokio::time::timeout(std::time::Duration::from_secs(5), watch.next())
            .await
            .expect("the watch answers")
            .expect("the watch is open")
            .unwrap();
        events.extend(resp.events);
    }
    assert_eq!(events[0].prev_kv, None);
    let prev = events[1].prev_kv.as_ref().expect("the replaced version");
    assert_eq!(
        (prev.value.as_slice(), prev.mod_revision),
        (&b"1"[..], rev - 1)
    );
}
