//! Fault tests: the embedded store loses no acknowledged write when its process is killed with
//! SIGKILL mid-burst and keeps its state and lease deadlines across restarts; the etcd backend's
//! watches survive etcd being killed and restarted.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use nomos_store::test_util::EtcdProcess;
use nomos_store::{
    DeleteOptions, EmbeddedStore, EventKind, KeySelector, PutOptions, RangeOptions, Store,
    StoreError, Txn, TxnOp, WatchEvent, WatchOptions, WatchStream,
};

async fn collect_events(stream: &mut WatchStream, n: usize, secs: u64) -> Vec<WatchEvent> {
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while events.len() < n {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, stream.next()).await {
            Ok(Some(Ok(resp))) => events.extend(resp.events),
            Ok(Some(Err(e))) => panic!("watch failed after {} events: {e}", events.len()),
            Ok(None) => panic!("watch ended after {} events", events.len()),
            Err(_) => panic!("only {} of {n} events within {secs} s", events.len()),
        }
    }
    events
}

#[test]
fn the_embedded_store_loses_no_acknowledged_write_when_killed_mid_burst() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_nomos-store-crash-writer"))
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting the crash writer");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked: HashMap<String, i64> = HashMap::new();
    // Let the burst run, then kill it without warning.
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("ACK ") {
            let (key, rev) = rest.split_once(' ').unwrap();
            acked.insert(key.to_string(), rev.parse().unwrap());
            if acked.len() >= 3000 {
                break;
            }
        }
    }
    child.kill().expect("SIGKILL to the crash writer");
    child.wait().unwrap();
    // Acknowledgements already in the pipe were given before the kill.
    for line in lines {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("ACK ") {
            let (key, rev) = rest.split_once(' ').unwrap();
            acked.insert(key.to_string(), rev.parse().unwrap());
        }
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = EmbeddedStore::open(dir.path()).expect("reopening after the crash");
        let all = store
            .range(KeySelector::prefix("crash/"), RangeOptions::default())
            .await
            .unwrap();
        let stored: HashMap<String, (Vec<u8>, i64)> = all
            .kvs
            .into_iter()
            .map(|kv| {
                (
                    kv.key_str().into_owned(),
                    (kv.value.clone(), kv.mod_revision),
                )
            })
            .collect();
        for (key, rev) in &acked {
            let (value, mod_rev) = stored
                .get(key)
                .unwrap_or_else(|| panic!("acknowledged key {key} was lost"));
            assert_eq!(value, &format!("value-of-{key}").into_bytes());
            assert_eq!(
                mod_rev, rev,
                "{key} kept the revision it was acknowledged with"
            );
        }
        // The reopened store carries on with consistent revisions.
        let status = store.status().await.unwrap();
        assert!(status.revision >= acked.values().copied().max().unwrap());
        let r = store
            .put(b"after".to_vec(), b"crash".to_vec(), PutOptions::default())
            .await
            .unwrap();
        assert_eq!(r.revision, status.revision + 1);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_store_keeps_history_compaction_and_leases_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (revision, short_lease, long_lease);
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        store
            .put(b"k".to_vec(), b"1".to_vec(), PutOptions::default())
            .await
            .unwrap();
        store
            .put(b"k".to_vec(), b"2".to_vec(), PutOptions::default())
            .await
            .unwrap();
        store
            .put(b"gone".to_vec(), b"x".to_vec(), PutOptions::default())
            .await
            .unwrap();
        store
            .delete(KeySelector::key("gone"), DeleteOptions::default())
            .await
            .unwrap();
        store
            .txn(Txn::new().and_then([TxnOp::put("t/a", "1"), TxnOp::put("t/b", "2")]))
            .await
            .unwrap();
        store.compact(4).await.unwrap();
        short_lease = store.lease_grant(2, 0).await.unwrap().id;
        long_lease = store.lease_grant(600, 0).await.unwrap().id;
        store
            .put(
                b"short".to_vec(),
                b"s".to_vec(),
                PutOptions {
                    lease: short_lease,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        store
            .put(
                b"long".to_vec(),
                b"l".to_vec(),
                PutOptions {
                    lease: long_lease,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        revision = store.status().await.unwrap().revision;
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let status = store.status().await.unwrap();
    assert_eq!((status.revision, status.compact_revision), (revision, 4));
    let k = store
        .range(KeySelector::key("k"), RangeOptions::default())
        .await
        .unwrap()
        .kvs
        .remove(0);
    assert_eq!(
        (
            k.value.as_slice(),
            k.version,
            k.create_revision,
            k.mod_revision
        ),
        (&b"2"[..], 2, 2, 3)
    );
    let err = store
        .range(
            KeySelector::key("k"),
            RangeOptions {
                revision: 2,
                ..Default::default()
            },
        )
        .await;
    assert!(matches!(err, Err(StoreError::Compacted { .. })));
    // History from the compaction revision on replays with previous values.
    let mut watch = store
        .watch(
            KeySelector::prefix(""),
            WatchOptions {
                start_revision: 4,
                prev_kv: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let replay = collect_events(&mut watch, 6, 10).await;
    assert_eq!(replay.len(), 6, "gone, its deletion, t/a, t/b, short, long");
    assert_eq!(replay[0].kind, EventKind::Put);
    assert_eq!(replay[0].kv.key, b"gone");
    assert_eq!(replay[1].kind, EventKind::Delete);
    assert_eq!(replay[1].prev_kv.as_ref().unwrap().value, b"x");
    // The lease granted before the restart still expires on time.
    assert_eq!(store.lease_list().await.unwrap().len(), 2);
    let expired = collect_events(&mut watch, 1, 15).await;
    assert_eq!(
        (expired[0].kind, expired[0].kv.key.as_slice()),
        (EventKind::Delete, &b"short"[..])
    );
    assert_eq!(store.lease_list().await.unwrap(), vec![long_lease]);
    assert_eq!(
        store
            .lease_time_to_live(long_lease, true)
            .await
            .unwrap()
            .keys,
        vec![b"long".to_vec()]
    );
    assert_eq!(
        store
            .lease_time_to_live(short_lease, false)
            .await
            .unwrap()
            .ttl,
        -1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_that_expired_while_the_embedded_store_was_down_is_revoked_at_start() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let lease = store.lease_grant(2, 0).await.unwrap().id;
        store
            .put(
                b"hb".to_vec(),
                b"x".to_vec(),
                PutOptions {
                    lease,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let store = EmbeddedStore::open(dir.path()).unwrap();
    // The writer revokes it as soon as it starts; a write after that sees the key gone.
    store
        .put(b"other".to_vec(), b"y".to_vec(), PutOptions::default())
        .await
        .unwrap();
    let hb = store
        .range(KeySelector::key("hb"), RangeOptions::default())
        .await
        .unwrap();
    assert_eq!(hb.count, 0);
    assert!(store.lease_list().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_watch_resumes_after_etcd_is_killed_and_restarted() {
    let mut etcd = tokio::task::spawn_blocking(EtcdProcess::start)
        .await
        .unwrap();
    let store: Arc<dyn Store> = Arc::new(etcd.connect().await);
    let mut watch = store
        .watch(
            KeySelector::prefix("r/"),
            WatchOptions {
                prev_kv: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    for i in 0..3 {
        store
            .put(
                format!("r/{i}").into_bytes(),
                b"before".to_vec(),
                PutOptions::default(),
            )
            .await
            .unwrap();
    }
    let before = collect_events(&mut watch, 3, 10).await;
    let etcd = tokio::task::spawn_blocking(move || {
        etcd.stop();
        std::thread::sleep(Duration::from_millis(500));
        etcd.restart();
        etcd
    })
    .await
    .unwrap();
    // Writes after the restart (retrying while the client reconnects).
    for i in 0..3 {
        let key = format!("r/{i}").into_bytes();
        let mut attempts = 0;
        loop {
            match store
                .put(key.clone(), b"after".to_vec(), PutOptions::default())
                .await
            {
                Ok(_) => break,
                Err(e) if e.is_retryable() && attempts < 100 => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("put after restart failed: {e}"),
            }
        }
    }
    let after = collect_events(&mut watch, 3, 30).await;
    let revisions: Vec<i64> = before
        .iter()
        .chain(&after)
        .map(|e| e.kv.mod_revision)
        .collect();
    assert!(
        revisions.windows(2).all(|w| w[1] == w[0] + 1),
        "no event lost or repeated: {revisions:?}"
    );
    assert!(after
        .iter()
        .all(|e| e.kv.value == b"after" && e.prev_kv.as_ref().unwrap().value == b"before"));
    drop(etcd);
}

#[tokio::test]
async fn a_data_dir_is_owned_by_one_store_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let first = EmbeddedStore::open(dir.path()).unwrap();
    first
        .put(b"k".to_vec(), b"v".to_vec(), PutOptions::default())
        .await
        .unwrap();
    let second = EmbeddedStore::open(dir.path());
    assert!(
        matches!(second, Err(StoreError::Backend(ref m)) if m.contains("in use")),
        "{:?}",
        second.err()
    );
    drop(first);
    let reopened = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(
        reopened
            .range(KeySelector::key("k"), RangeOptions::default())
            .await
            .unwrap()
            .count,
        1
    );
}
