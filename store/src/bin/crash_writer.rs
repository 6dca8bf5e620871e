//! Crash-test helper for the embedded store: opens the store in the directory given as the
//! first argument and writes as fast as it can from many tasks (single puts and transactions),
//! printing `ACK <key> <revision>` for every key whose write was acknowledged. The fault test
//! kills it with SIGKILL mid-burst and checks that every acknowledged key survived.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use nomos_store::{EmbeddedStore, PutOptions, Store, Txn, TxnOp};

/// The value written under `key`, so the test can check contents too.
fn value_of(key: &str) -> Vec<u8> {
    format!("value-of-{key}").into_bytes()
}

fn ack(keys: &[String], revision: i64) {
    let mut out = std::io::stdout().lock();
    for k in keys {
        let _ = writeln!(out, "ACK {k} {revision}");
    }
    let _ = out.flush();
}

#[tokio::main]
async fn main() {
    let dir: PathBuf = std::env::args()
        .nth(1)
        .expect("usage: nomos-store-crash-writer DIR")
        .into();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&dir).expect("opening the store"));
    println!("READY");
    let mut tasks = Vec::new();
    for t in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0u64.. {
                if t % 2 == 0 {
                    let key = format!("crash/{t}/{i}");
                    let resp = store
                        .put(
                            key.clone().into_bytes(),
                            value_of(&key),
                            PutOptions::default(),
                        )
                        .await;
                    match resp {
                        Ok(r) => ack(&[key], r.revision),
                        Err(e) => panic!("put failed: {e}"),
                    }
                } else {
                    let keys: Vec<String> = (0..8).map(|j| format!("crash/{t}/{i}/{j}")).collect();
                    let ops = keys.iter().map(|k| TxnOp::put(k.clone(), value_of(k)));
                    match store.txn(Txn::new().and_then(ops)).await {
                        Ok(r) => ack(&keys, r.revision),
                        Err(e) => panic!("txn failed: {e}"),
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}
