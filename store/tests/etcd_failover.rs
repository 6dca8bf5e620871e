//! The etcd backend on a three-member cluster: losing one member, the leader included, must
//! not interrupt anything. Writes, reads, watches and lease renewals go on through the other
//! two members, no acknowledged write is lost, and the watch sees every revision once.

use std::time::Duration;

use futures::StreamExt;
use nomos_store::test_util::EtcdCluster;
use nomos_store::{
    EventKind, KeySelector, PutOptions, RangeOptions, Store, WatchEvent, WatchOptions,
};

const PREFIX: &[u8] = b"/failover/";

fn key(i: usize) -> Vec<u8> {
    format!("/failover/{i:04}").into_bytes()
}

/// Writes keys `from..to` one by one; every write must be acknowledged.
async fn write_keys(store: &dyn Store, from: usize, to: usize) -> Vec<i64> {
    let mut revisions = Vec::new();
    for i in from..to {
        let put = store
            .put(key(i), format!("v{i}").into_bytes(), PutOptions::default())
            .await
            .unwrap_or_else(|e| panic!("write {i} failed: {e}"));
        revisions.push(put.revision);
    }
    revisions
}

/// Collects watch events until `count` puts under the prefix were seen (or 60 s pass).
async fn collect(watch: &mut nomos_store::WatchStream, count: usize) -> Vec<WatchEvent> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < count {
        let next = tokio::time::timeout_at(deadline, watch.next())
            .await
            .unwrap_or_else(|_| panic!("the watch saw {} of {count} writes", seen.len()));
        let response = next.expect("the watch ended").expect("the watch failed");
        seen.extend(response.events);
    }
    seen
}

async fn check_converged(cluster: &EtcdCluster, total: usize, acknowledged: &[i64]) {
    let store = cluster.connect().await;
    let all = store
        .range(
            KeySelector::Prefix(PREFIX.to_vec()),
            RangeOptions::default(),
        )
        .await
        .expect("reading back");
    assert_eq!(all.kvs.len(), total, "every acknowledged write is there");
    for (i, kv) in all.kvs.iter().enumerate() {
        assert_eq!(kv.key, key(i));
        assert_eq!(
            kv.mod_revision, acknowledged[i],
            "key {i} kept its revision"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_interrupts_nothing() {
    let mut cluster = EtcdCluster::start(3);
    let store = cluster.connect().await;
    let lease = store.lease_grant(10, 0).await.expect("lease").id;
    let mut watch = store
        .watch(
            KeySelector::Prefix(PREFIX.to_vec()),
            WatchOptions::default(),
        )
        .await
        .expect("watch");
    let mut acknowledged = write_keys(&store, 0, 20).await;

    let leader = cluster.leader();
    cluster.kill(leader);
    acknowledged.extend(write_keys(&store, 20, 60).await);
    store
        .lease_keep_alive(lease)
        .await
        .expect("the lease is renewed through another member");

    let events = collect(&mut watch, 60).await;
    let revisions: Vec<i64> = events.iter().map(|e| e.kv.mod_revision).collect();
    assert_eq!(
        revisions, acknowledged,
        "the watch saw every write once, in order"
    );
    assert!(events.iter().all(|e| e.kind == EventKind::Put));
    check_converged(&cluster, 60, &acknowledged).await;

    // The killed member comes back and catches up; then the other two go one by one.
    cluster.restart(leader);
    for k in 0..3 {
        if k == leader {
            continue;
        }
        cluster.kill(k);
        let before = acknowledged.len();
        acknowledged.extend(write_keys(&store, before, before + 10).await);
        cluster.restart(k);
    }
    let events = collect(&mut watch, acknowledged.len() - 60).await;
    let revisions: Vec<i64> = events.iter().map(|e| e.kv.mod_revision).collect();
    assert_eq!(
        revisions,
        acknowledged[60..],
        "the watch followed every restart"
    );
    check_converged(&cluster, acknowledged.len(), &acknowledged).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_quorum_writes_fail_clearly_and_resume_after() {
    let mut cluster = EtcdCluster::start(3);
    let store = cluster.connect().await;
    write_keys(&store, 0, 5).await;
    cluster.kill(1);
    cluster.kill(2);
    let error = store
        .put(key(5), b"lost?".to_vec(), PutOptions::default())
        .await
        .expect_err("one member of three has no quorum");
    assert!(
        matches!(error, nomos_store::StoreError::Unavailable(_)),
        "a store without quorum is unavailable, not broken: {error}"
    );
    cluster.restart(1);
    write_keys(&store, 5, 10).await;
    let all = store
        .range(
            KeySelector::Prefix(PREFIX.to_vec()),
            RangeOptions::default(),
        )
        .await
        .expect("reading back");
    assert_eq!(all.kvs.len(), 10, "every acknowledged write is there");
}
