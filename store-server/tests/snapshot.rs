//! The embedded store as an operator's etcd: `etcdctl snapshot save`, `etcdctl defrag` and
//! `etcdctl endpoint hashkv` against a served store on disk, and restoring from the saved file
//! (including the files a restore must refuse).

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nomos_store::embedded::{inspect_snapshot, restore_snapshot, RestoreOptions, DB_FILE, ID_FILE};
use nomos_store::{
    DeleteOptions, EmbeddedStore, KeySelector, KeyValue, PutOptions, RangeOptions, Store,
    StoreError,
};
use nomos_store_server::{StoreServer, StoreServerConfig, StoreServerError};
use support::etcdctl;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// An embedded store on disk, served with its maintenance methods.
struct Served {
    endpoint: String,
    store: Arc<EmbeddedStore>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), StoreServerError>>>,
}

impl Served {
    async fn open(dir: &Path) -> Served {
        let store = Arc::new(EmbeddedStore::open(dir).expect("opening the embedded store"));
        let server = StoreServer::bind(StoreServerConfig::new("127.0.0.1:0".parse().unwrap()))
            .await
            .expect("binding the store server")
            .with_embedded(store.clone());
        let endpoint = server.client_url();
        let (stop, stopped) = oneshot::channel::<()>();
        let served: Arc<dyn Store> = store.clone();
        let task = tokio::spawn(server.serve(served, async move {
            let _ = stopped.await;
        }));
        Served {
            endpoint,
            store,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops serving and closes the store (its data dir can then be opened again).
    async fn close(mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        let task = self.task.take().expect("server task");
        task.await
            .expect("server task panicked")
            .expect("server stopped cleanly");
        assert_eq!(
            Arc::strong_count(&self.store),
            1,
            "the server still holds the store"
        );
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn put(store: &dyn Store, key: &str, value: &str) -> i64 {
    store
        .put(key.into(), value.into(), PutOptions::default())
        .await
        .expect("put")
        .revision
}

async fn all_keys(store: &dyn Store, revision: i64) -> Vec<KeyValue> {
    let options = RangeOptions {
        revision,
        ..Default::default()
    };
    store
        .range(KeySelector::Prefix(Vec::new()), options)
        .await
        .expect("range")
        .kvs
}

async fn save(endpoint: &str, file: &Path) {
    let out = etcdctl(
        endpoint,
        &["snapshot", "save", file.to_str().unwrap()],
        None,
    )
    .await;
    assert!(out.ok, "etcdctl snapshot save failed: {out:?}");
    assert!(out.stdout.contains("Snapshot saved at"), "{out:?}");
}

/// Writers that put keys until stopped.
fn start_writers(store: Arc<EmbeddedStore>, stop: Arc<AtomicBool>) -> Vec<JoinHandle<()>> {
    (0..4)
        .map(|w| {
            let store = store.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    put(&*store, &format!("/w/{w}/{}", i % 50), &format!("v{i}")).await;
                    i += 1;
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_snapshot_saved_during_writes_restores_exactly_the_keys_and_revision_it_was_taken_at() {
    let tmp = tempfile::tempdir().unwrap();
    let served = Served::open(&tmp.path().join("live")).await;
    let lease = served.store.lease_grant(600, 77).await.expect("lease");
    let options = PutOptions {
        lease: lease.id,
        ..Default::default()
    };
    served
        .store
        .put(b"/leased".to_vec(), b"x".to_vec(), options)
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writers = start_writers(served.store.clone(), stop.clone());
    // Some writes land before the snapshot, whatever the scheduling.
    while served.store.status().await.unwrap().revision < 200 {
        tokio::task::yield_now().await;
    }
    let file = tmp.path().join("backup.db");
    save(&served.endpoint, &file).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }

    let info = inspect_snapshot(&file).expect("inspecting the saved snapshot");
    let expected = all_keys(&*served.store, info.revision).await;
    assert_eq!(info.keys as usize, expected.len());
    assert_eq!(info.leases, 1);
    let restored_dir = tmp.path().join("restored");
    let restored = restore_snapshot(&file, &restored_dir, RestoreOptions::default())
        .expect("restoring the snapshot");
    assert_eq!(restored, info);
    assert!(
        restored_dir.join(ID_FILE).exists(),
        "the restore writes the identity file beside the database"
    );
    let store = EmbeddedStore::open(&restored_dir).expect("opening the restored store");
    assert_eq!(store.status().await.unwrap().revision, info.revision);
    assert_eq!(all_keys(&store, 0).await, expected);
    let kept = store.lease_time_to_live(77, true).await.unwrap();
    assert_eq!(kept.keys, vec![b"/leased".to_vec()], "leases are kept");
    // The restored store takes writes from the snapshot's revision on.
    assert_eq!(put(&store, "/after", "1").await, info.revision + 1);
}

#[tokio::test]
async fn a_truncated_or_corrupt_snapshot_is_refused_and_the_data_dir_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let served = Served::open(&tmp.path().join("live")).await;
    for i in 0..300 {
        put(&*served.store, &format!("/k/{i}"), &"v".repeat(100)).await;
    }
    let file = tmp.path().join("backup.db");
    save(&served.endpoint, &file).await;
    let bytes = std::fs::read(&file).unwrap();

    let truncated = tmp.path().join("truncated.db");
    std::fs::write(&truncated, &bytes[..bytes.len() - 1000]).unwrap();
    let cut_at_a_page = tmp.path().join("cut-at-a-page.db");
    std::fs::write(&cut_at_a_page, &bytes[..bytes.len() - 4096]).unwrap();
    let corrupt = tmp.path().join("corrupt.db");
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 0x55;
    std::fs::write(&corrupt, &flipped).unwrap();
    let foreign = tmp.path().join("foreign.db");
    std::fs::write(&foreign, vec![0xED; 4096 + 32]).unwrap();

    let cases = [
        (&truncated, "truncated"),
        (&cut_at_a_page, "truncated"),
        (&corrupt, "corrupt"),
        (&foreign, "not a Nomos snapshot"),
    ];
    for (bad, problem) in cases {
        let dir = tmp.path().join("target");
        let err = restore_snapshot(bad, &dir, RestoreOptions::default())
            .expect_err("a damaged snapshot must be refused");
        assert!(
            matches!(err, StoreError::SnapshotInvalid { .. }) && err.to_string().contains(problem),
            "{}: expected {problem:?}, got {err}",
            bad.display()
        );
        assert!(
            !dir.join(DB_FILE).exists(),
            "nothing was restored from {}",
            bad.display()
        );
        assert!(
            inspect_snapshot(bad).is_err(),
            "inspect refuses {}",
            bad.display()
        );
    }
}

#[tokio::test]
async fn a_restore_refuses_a_data_dir_that_holds_a_store_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let served = Served::open(&tmp.path().join("live")).await;
    put(&*served.store, "/from-snapshot", "1").await;
    let file = tmp.path().join("backup.db");
    save(&served.endpoint, &file).await;
    served.close().await;

    let dir = tmp.path().join("existing");
    let existing = EmbeddedStore::open(&dir).unwrap();
    put(&existing, "/only-here", "1").await;
    let in_use = restore_snapshot(&file, &dir, RestoreOptions { force: true })
        .expect_err("a store in use is never replaced");
    assert!(in_use.to_string().contains("in use"), "{in_use}");
    drop(existing);

    let err = restore_snapshot(&file, &dir, RestoreOptions::default())
        .expect_err("an existing store is not replaced without force");
    assert!(
        matches!(err, StoreError::RestoreRefused { .. }) && err.to_string().contains("--force"),
        "{err}"
    );
    let kept = EmbeddedStore::open(&dir).unwrap();
    assert_eq!(
        all_keys(&kept, 0).await.len(),
        1,
        "the refused restore changed nothing"
    );
    drop(kept);

    restore_snapshot(&file, &dir, RestoreOptions { force: true }).expect("a forced restore");
    let store = EmbeddedStore::open(&dir).unwrap();
    let keys: Vec<Vec<u8>> = all_keys(&store, 0)
        .await
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(keys, vec![b"/from-snapshot".to_vec()]);
}

#[tokio::test]
async fn etcdctl_defrag_shrinks_the_database_after_deletes_and_a_compaction() {
    let tmp = tempfile::tempdir().unwrap();
    let served = Served::open(&tmp.path().join("live")).await;
    let value = "x".repeat(2048);
    for i in 0..1000 {
        put(&*served.store, &format!("/big/{i}"), &value).await;
    }
    let deleted = served
        .store
        .delete(
            KeySelector::Prefix(b"/big/".to_vec()),
            DeleteOptions::default(),
        )
        .await
        .unwrap();
    served.store.compact(deleted.revision).await.unwrap();
    let before = served.store.status().await.unwrap().db_size;

    let out = etcdctl(&served.endpoint, &["defrag"], None).await;
    assert!(out.ok, "etcdctl defrag failed: {out:?}");
    assert!(out.stdout.contains("Finished defragmenting"), "{out:?}");
    let after = served.store.status().await.unwrap().db_size;
    assert!(
        after * 4 < before,
        "db_size went from {before} to {after} bytes"
    );
    let on_disk = std::fs::metadata(tmp.path().join("live").join(DB_FILE))
        .unwrap()
        .len();
    assert!(
        on_disk * 4 < before as u64,
        "the file is {on_disk} bytes, was {before}"
    );
    assert_eq!(
        put(&*served.store, "/still-writable", "1").await,
        deleted.revision + 1
    );
}

/// `etcdctl endpoint hashkv` at `rev` (0: now): the hash.
async fn hashkv(endpoint: &str, rev: i64) -> u64 {
    let rev = format!("--rev={rev}");
    let out = etcdctl(endpoint, &["endpoint", "hashkv", &rev, "-w", "json"], None).await;
    assert!(out.ok, "etcdctl endpoint hashkv failed: {out:?}");
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("hashkv's JSON");
    json[0]["HashKV"]["hash"]
        .as_u64()
        .unwrap_or_else(|| panic!("no hash in {json}"))
}

async fn same_history(store: &dyn Store) {
    for i in 0..20 {
        put(store, &format!("/h/{}", i % 7), &format!("v{i}")).await;
    }
    store
        .delete(KeySelector::key("/h/3"), DeleteOptions::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn hashkv_is_equal_on_equal_histories_stable_across_restarts_and_changes_after_a_write() {
    let tmp = tempfile::tempdir().unwrap();
    let one = Served::open(&tmp.path().join("one")).await;
    let two = Served::open(&tmp.path().join("two")).await;
    same_history(&*one.store).await;
    same_history(&*two.store).await;
    let rev = one.store.status().await.unwrap().revision;
    let hash = hashkv(&one.endpoint, 0).await;
    assert_eq!(hashkv(&two.endpoint, 0).await, hash);

    put(&*two.store, "/h/extra", "1").await;
    assert_ne!(
        hashkv(&two.endpoint, 0).await,
        hash,
        "a write changes the hash"
    );
    assert_eq!(
        hashkv(&two.endpoint, rev).await,
        hash,
        "the hash at the old revision stays"
    );

    let (h, _) = one.store.hash().await.unwrap();
    let kv = one.store.hash_kv(0).await.unwrap();
    one.close().await;
    let reopened = Served::open(&tmp.path().join("one")).await;
    assert_eq!(
        hashkv(&reopened.endpoint, 0).await,
        hash,
        "stable across a restart"
    );
    assert_eq!(reopened.store.hash_kv(0).await.unwrap(), kv);
    assert_eq!(reopened.store.hash().await.unwrap().0, h);
    let future = reopened.store.hash_kv(rev + 10).await;
    assert!(
        matches!(future, Err(StoreError::FutureRevision { .. })),
        "{future:?}"
    );
}

#[tokio::test]
async fn a_store_in_memory_answers_snapshot_with_a_clear_error() {
    let served = support::TestServer::embedded().await;
    let file = tempfile::tempdir().unwrap();
    let path = file.path().join("s.db");
    let out = etcdctl(
        &served.endpoint,
        &["snapshot", "save", path.to_str().unwrap()],
        None,
    )
    .await;
    assert!(!out.ok, "{out:?}");
    assert!(out.stderr.contains("Maintenance.Snapshot"), "{out:?}");
    assert!(!path.exists());
}
