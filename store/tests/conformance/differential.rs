//! Randomized differential test: the same seeded operation sequences run against the embedded
//! store and a real etcd; every result and every watch event must be identical.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use nomos_store::test_util::{Backend, TestStore};
use nomos_store::{
    Compare, CompareOp, CompareTarget, DeleteOptions, KeySelector, PutOptions, RangeOptions,
    SortOrder, SortTarget, Store, StoreError, Txn, TxnOp, WatchEvent, WatchOptions,
};

/// xorshift64*: small, seeded, replayable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// What the generator knows about the store, to produce meaningful operations.
struct Model {
    revision: i64,
    compact: i64,
    leases: Vec<i64>,
}

#[derive(Debug, Clone)]
enum Op {
    Put(Vec<u8>, Vec<u8>, PutOptions),
    Delete(KeySelector, DeleteOptions),
    Range(KeySelector, RangeOptions),
    Txn(Txn),
    Grant(i64),
    Revoke(i64),
    KeepAlive(i64),
    Compact(i64),
}

const DIRS: [&str; 3] = ["d/a/", "d/b/", "e/"];

fn key(rng: &mut Rng) -> Vec<u8> {
    format!("{}{}", rng.pick(&DIRS), rng.below(4)).into_bytes()
}

fn selector(rng: &mut Rng) -> KeySelector {
    match rng.below(6) {
        0 => KeySelector::prefix(rng.pick(&["d/", "d/a/", "e/", ""]).to_string()),
        1 => KeySelector::Range {
            start: key(rng),
            end: key(rng),
        },
        _ => KeySelector::Key(key(rng)),
    }
}

fn value(rng: &mut Rng) -> Vec<u8> {
    format!("v{}", rng.below(5)).into_bytes()
}

fn put_options(rng: &mut Rng, model: &Model) -> PutOptions {
    PutOptions {
        lease: if rng.chance(25) && !model.leases.is_empty() {
            *rng.pick(&model.leases)
        } else {
            0
        },
        prev_kv: rng.chance(50),
        ..Default::default()
    }
}

fn range_options(rng: &mut Rng, model: &Model) -> RangeOptions {
    let revision = if rng.chance(30) && model.revision > model.compact {
        model.compact.max(1) + rng.below((model.revision - model.compact.max(1) + 1) as u64) as i64
    } else {
        0
    };
    RangeOptions {
        limit: rng.below(4) as i64,
        revision,
        keys_only: rng.chance(20),
        count_only: rng.chance(10),
        sort_order: *rng.pick(&[
            SortOrder::None,
            SortOrder::None,
            SortOrder::Ascend,
            SortOrder::Descend,
        ]),
        sort_target: SortTarget::Key,
    }
}

fn compare(rng: &mut Rng, model: &Model) -> Compare {
    let op = *rng.pick(&[
        CompareOp::Equal,
        CompareOp::NotEqual,
        CompareOp::Greater,
        CompareOp::Less,
    ]);
    let target = match rng.below(5) {
        0 => CompareTarget::Value(value(rng)),
        1 => CompareTarget::Version(rng.below(4) as i64),
        2 => CompareTarget::CreateRevision(model.revision - rng.below(5) as i64),
        3 => CompareTarget::ModRevision(model.revision - rng.below(5) as i64),
        _ => CompareTarget::Lease(if model.leases.is_empty() {
            0
        } else {
            *rng.pick(&model.leases)
        }),
    };
    let mut c = Compare::new(key(rng), op, target);
    if rng.chance(15) {
        c.key = b"d/".to_vec();
        c.range_end = Some(nomos_store::prefix_end(b"d/"));
    }
    c
}

fn txn_ops(rng: &mut Rng, model: &Model, depth: u32) -> Vec<TxnOp> {
    (0..rng.below(4))
        .map(|_| match rng.below(10) {
            0..=3 => TxnOp::Put {
                key: key(rng),
                value: value(rng),
                options: put_options(rng, model),
            },
            4..=5 => TxnOp::Delete(
                selector(rng),
                DeleteOptions {
                    prev_kv: rng.chance(50),
                },
            ),
            6..=8 => TxnOp::Range(selector(rng), range_options(rng, model)),
            _ if depth == 0 => TxnOp::Txn(Box::new(txn(rng, model, 1))),
            _ => TxnOp::get(key(rng)),
        })
        .collect()
}

fn txn(rng: &mut Rng, model: &Model, depth: u32) -> Txn {
    Txn {
        compare: (0..rng.below(3)).map(|_| compare(rng, model)).collect(),
        success: txn_ops(rng, model, depth),
        failure: txn_ops(rng, model, depth),
    }
}

fn generate(rng: &mut Rng, model: &Model) -> Op {
    match rng.below(100) {
        0..=34 => Op::Put(key(rng), value(rng), put_options(rng, model)),
        35..=44 => Op::Delete(
            selector(rng),
            DeleteOptions {
                prev_kv: rng.chance(50),
            },
        ),
        45..=59 => Op::Range(selector(rng), range_options(rng, model)),
        60..=84 => Op::Txn(txn(rng, model, 0)),
        85..=89 => Op::Grant(1000 + rng.below(20) as i64),
        90..=93 if !model.leases.is_empty() => Op::Revoke(*rng.pick(&model.leases)),
        90..=95 => Op::KeepAlive(1000 + rng.below(20) as i64),
        _ => Op::Compact(model.compact + rng.below(6) as i64),
    }
}

fn error_kind(e: &StoreError) -> &'static str {
    match e {
        StoreError::Compacted { .. } => "Compacted",
        StoreError::FutureRevision { .. } => "FutureRevision",
        StoreError::LeaseNotFound(_) => "LeaseNotFound",
        StoreError::LeaseExists(_) => "LeaseExists",
        StoreError::InvalidRequest(_) => "InvalidRequest",
        StoreError::KeyTooLarge { .. } => "KeyTooLarge",
        StoreError::RequestTooLarge { .. } => "RequestTooLarge",
        StoreError::TooManyOps { .. } => "TooManyOps",
        StoreError::Unavailable(_) => "Unavailable",
        StoreError::Backend(_) => "Backend",
        StoreError::NonUtf8Key { .. } => "NonUtf8Key",
        StoreError::WatchCancelled(_) => "WatchCancelled",
        StoreError::NoSpace => "NoSpace",
        StoreError::DataDirRefused { .. } => "DataDirRefused",
        StoreError::SnapshotInvalid { .. } => "SnapshotInvalid",
        StoreError::RestoreRefused { .. } => "RestoreRefused",
    }
}

fn show<T: std::fmt::Debug>(r: Result<T, StoreError>) -> String {
    match r {
        Ok(v) => format!("{v:?}"),
        Err(e) => format!("Err({})", error_kind(&e)),
    }
}

async fn apply(store: &dyn Store, op: &Op) -> String {
    match op.clone() {
        Op::Put(k, v, o) => show(store.put(k, v, o).await),
        Op::Delete(s, o) => show(store.delete(s, o).await),
        Op::Range(s, o) => show(store.range(s, o).await),
        Op::Txn(t) => show(store.txn(t).await),
        Op::Grant(id) => show(store.lease_grant(600, id).await),
        Op::Revoke(id) => show(store.lease_revoke(id).await),
        Op::KeepAlive(id) => show(store.lease_keep_alive(id).await),
        Op::Compact(rev) => show(store.compact(rev).await),
    }
}

async fn events_until(watch: &mut nomos_store::WatchStream, last: i64) -> Vec<WatchEvent> {
    let mut events: Vec<WatchEvent> = Vec::new();
    while events.last().map_or(1, |e| e.kv.mod_revision) < last {
        match tokio::time::timeout(Duration::from_secs(10), watch.next()).await {
            Ok(Some(Ok(resp))) => events.extend(resp.events),
            other => panic!("watch stopped before revision {last}: {other:?}"),
        }
    }
    events
}

async fn run_sequence(seed: u64, steps: usize) {
    let embedded = TestStore::new(Backend::Embedded).await;
    run_sequence_against(&embedded.store, seed, steps).await;
}

/// One seeded sequence on `candidate` and on a fresh real etcd (the store server's tests run it
/// with an etcd backend talking to the embedded store through etcd's protocol).
pub async fn run_sequence_against(candidate: &Arc<dyn Store>, seed: u64, steps: usize) {
    let etcd = TestStore::new(Backend::Etcd).await;
    // Revision 2 is the first write of a fresh store. (Starting at 1 would leave etcd's watcher
    // "unsynced" until its 100 ms sync loop runs, and a compaction in the sequence before then
    // cancels it as compacted: a flake.)
    let all = || WatchOptions {
        start_revision: 2,
        prev_kv: true,
        ..Default::default()
    };
    let mut watch_embedded = candidate
        .watch(KeySelector::prefix(""), all())
        .await
        .unwrap();
    let mut watch_etcd = etcd
        .store
        .watch(KeySelector::prefix(""), all())
        .await
        .unwrap();
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut model = Model {
        revision: 1,
        compact: 0,
        leases: Vec::new(),
    };
    for step in 0..steps {
        let op = generate(&mut rng, &model);
        let expected = apply(&*etcd.store, &op).await;
        let actual = apply(&**candidate, &op).await;
        assert_eq!(actual, expected, "seed {seed}, step {step}: {op:?}");
        let status = etcd.store.status().await.unwrap();
        model.revision = status.revision;
        model.compact = status.compact_revision;
        model.leases = etcd.store.lease_list().await.unwrap();
        assert_eq!(
            candidate.status().await.unwrap().revision,
            model.revision,
            "seed {seed}, step {step}"
        );
        assert_eq!(
            candidate.lease_list().await.unwrap(),
            model.leases,
            "seed {seed}, step {step}"
        );
    }
    let expected = events_until(&mut watch_etcd, model.revision).await;
    let actual = events_until(&mut watch_embedded, model.revision).await;
    assert_eq!(
        actual.len(),
        expected.len(),
        "seed {seed}: number of watch events"
    );
    for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
        assert_eq!(a, e, "seed {seed}: watch event {i}");
    }
    // Watches on parts of the key space, started at random past revisions.
    for round in 0..3 {
        let sentinel = key(&mut rng);
        let keys = if rng.chance(50) {
            KeySelector::Key(sentinel.clone())
        } else {
            let cut = sentinel.iter().position(|b| *b == b'/').unwrap_or(0) + 1;
            KeySelector::Prefix(sentinel[..cut].to_vec())
        };
        let first = model.compact.max(1);
        let options = WatchOptions {
            start_revision: first + rng.below((model.revision - first + 1) as u64) as i64,
            prev_kv: rng.chance(50),
            filters: nomos_store::WatchFilters {
                no_put: false,
                no_delete: rng.chance(30),
            },
            ..Default::default()
        };
        let mut on_etcd = etcd
            .store
            .watch(keys.clone(), options.clone())
            .await
            .unwrap();
        let mut on_embedded = candidate
            .watch(keys.clone(), options.clone())
            .await
            .unwrap();
        // A final put inside the watched keys marks where to stop.
        let op = Op::Put(sentinel, b"sentinel".to_vec(), PutOptions::default());
        let expected_put = apply(&*etcd.store, &op).await;
        assert_eq!(
            apply(&**candidate, &op).await,
            expected_put,
            "seed {seed}: sentinel put"
        );
        model.revision += 1;
        let expected = events_until(&mut on_etcd, model.revision).await;
        let actual = events_until(&mut on_embedded, model.revision).await;
        assert_eq!(
            actual, expected,
            "seed {seed}: watch round {round} on {keys:?} with {options:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_operation_sequences_give_identical_results_on_both_backends() {
    for seed in 1..=6 {
        run_sequence(seed, 200).await;
    }
}
