//! Store benchmark: the same workloads against the embedded store (on disk) and a real etcd in
//! one run, printing each figure and the embedded/etcd ratio. Run with
//! `cargo bench -p nomos-store --features test-util`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use nomos_store::test_util::{Backend, TestStore};
use nomos_store::{KeySelector, PutOptions, RangeOptions, Store, Txn, TxnOp, WatchOptions};

const SINGLE_PUTS: usize = 10_000;
const SINGLE_CONCURRENCY: usize = 64;
const TXNS: usize = 400;
const TXN_OPS: usize = 128;
const TXN_CONCURRENCY: usize = 8;
const RANGE_KEYS: usize = 10_000;
const RANGE_ROUNDS: usize = 20;
const WATCHERS: usize = 1_000;
const WATCH_WRITES: usize = 1_000;

struct Figures {
    single_puts: f64,
    txn_keys: f64,
    range_keys: f64,
    watch_events: f64,
}

async fn single_puts(store: &Arc<dyn Store>) -> f64 {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..SINGLE_CONCURRENCY {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in (t..SINGLE_PUTS).step_by(SINGLE_CONCURRENCY) {
                store
                    .put(
                        format!("single/{i:08}").into_bytes(),
                        vec![b'v'; 100],
                        PutOptions::default(),
                    )
                    .await
                    .expect("put");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    SINGLE_PUTS as f64 / start.elapsed().as_secs_f64()
}

async fn txn_puts(store: &Arc<dyn Store>, prefix: &str, txns: usize) -> f64 {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..TXN_CONCURRENCY {
        let store = store.clone();
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            for n in (t..txns).step_by(TXN_CONCURRENCY) {
                let ops = (0..TXN_OPS).map(|j| {
                    TxnOp::put(format!("{prefix}{:08}", n * TXN_OPS + j), vec![b'v'; 100])
                });
                store.txn(Txn::new().and_then(ops)).await.expect("txn");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (txns * TXN_OPS) as f64 / start.elapsed().as_secs_f64()
}

async fn ranges(store: &Arc<dyn Store>) -> f64 {
    txn_puts(store, "range/", RANGE_KEYS.div_ceil(TXN_OPS)).await;
    let start = Instant::now();
    let mut keys = 0usize;
    for _ in 0..RANGE_ROUNDS {
        let resp = store
            .range(
                KeySelector::prefix("range/"),
                RangeOptions {
                    limit: RANGE_KEYS as i64,
                    ..Default::default()
                },
            )
            .await
            .expect("range");
        keys += resp.kvs.len();
    }
    assert_eq!(keys, RANGE_KEYS * RANGE_ROUNDS);
    keys as f64 / start.elapsed().as_secs_f64()
}

async fn watch_fanout(store: &Arc<dyn Store>) -> f64 {
    let mut watchers = Vec::new();
    for _ in 0..WATCHERS {
        let mut stream = store
            .watch(KeySelector::prefix("fan/"), WatchOptions::default())
            .await
            .expect("watch");
        watchers.push(tokio::spawn(async move {
            let mut seen = 0;
            while seen < WATCH_WRITES {
                match tokio::time::timeout(Duration::from_secs(120), stream.next()).await {
                    Ok(Some(Ok(resp))) => seen += resp.events.len(),
                    other => panic!("watcher stopped after {seen} events: {other:?}"),
                }
            }
            seen
        }));
    }
    // Let every watch register before writing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start = Instant::now();
    let mut writers = Vec::new();
    for t in 0..8 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for i in (t..WATCH_WRITES).step_by(8) {
                store
                    .put(
                        format!("fan/{i}").into_bytes(),
                        vec![b'v'; 100],
                        PutOptions::default(),
                    )
                    .await
                    .expect("put");
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let mut delivered = 0;
    for w in watchers {
        delivered += w.await.unwrap();
    }
    delivered as f64 / start.elapsed().as_secs_f64()
}

async fn measure(backend: Backend) -> Figures {
    let s = TestStore::new(backend).await;
    let store = s.store.clone();
    let single_puts = single_puts(&store).await;
    let txn_keys = txn_puts(&store, "txn/", TXNS).await;
    let range_keys = ranges(&store).await;
    eprintln!("{backend:?}: single {single_puts:.0}/s, txn {txn_keys:.0} keys/s, range {range_keys:.0} keys/s");
    let watch_events = watch_fanout(&store).await;
    eprintln!("{backend:?}: watch {watch_events:.0} events/s");
    Figures {
        single_puts,
        txn_keys,
        range_keys,
        watch_events,
    }
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let embedded = measure(Backend::Embedded).await;
    let etcd = measure(Backend::Etcd).await;
    println!(
        "{:<44} {:>14} {:>14} {:>8}",
        "workload", "embedded", "etcd", "ratio"
    );
    let rows = [
        (
            format!("single puts/s ({SINGLE_CONCURRENCY} concurrent)"),
            embedded.single_puts,
            etcd.single_puts,
        ),
        (
            format!("keys/s in txns of {TXN_OPS} ({TXN_CONCURRENCY} concurrent)"),
            embedded.txn_keys,
            etcd.txn_keys,
        ),
        (
            format!("keys/s read in ranges of {RANGE_KEYS}"),
            embedded.range_keys,
            etcd.range_keys,
        ),
        (
            format!("watch events/s delivered, {WATCHERS} watchers"),
            embedded.watch_events,
            etcd.watch_events,
        ),
    ];
    for (name, e, c) in rows {
        println!("{name:<44} {e:>14.0} {c:>14.0} {:>8.2}", e / c);
    }
}
