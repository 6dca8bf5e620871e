//! The loader against the in-memory store, and against a wrapper of it whose lists and
//! watches fail on demand.

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use nomos_store::keys;
use nomos_store::*;

use super::*;

fn registration(id: &str, healthy: bool) -> ServiceRegistration {
    ServiceRegistration {
        id: id.into(),
        service_name: "web".into(),
        namespace: "default".into(),
        node: "n1".into(),
        datacenter: "dc1".into(),
        address: "10.0.0.1".into(),
        port: 80,
        healthy,
        ..Default::default()
    }
}

/// Writes a registration and touches the index in one transaction, as the services loop does.
async fn register(store: &dyn Store, r: &ServiceRegistration) {
    let key = keys::service(&r.namespace, &r.service_name, &r.id);
    let txn = Txn::new().and_then([
        TxnOp::put(key, serde_json::to_vec(r).unwrap()),
        TxnOp::put(keys::SERVICES_INDEX, ""),
    ]);
    store.txn(txn).await.expect("register");
}

async fn wait_for_healthy(rx: &mut watch::Receiver<Option<Arc<Catalogue>>>, n: usize) {
    let wanted = |c: &Option<Arc<Catalogue>>| c.as_ref().is_some_and(|c| c.len() == n);
    let seen = matches!(
        tokio::time::timeout(Duration::from_secs(10), rx.wait_for(wanted)).await,
        Ok(Ok(_))
    );
    let got = rx.borrow().as_ref().map(|c| c.len());
    assert!(seen, "no catalogue with {n} healthy instances: {got:?}");
}

#[tokio::test]
async fn the_catalogue_is_listed_at_start_and_listed_again_when_the_index_changes() {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    register(&*store, &registration("a", true)).await;
    register(&*store, &registration("b", false)).await;
    let (publish, mut rx) = watch::channel(None);
    let loader = tokio::spawn(run(store.clone(), publish));
    wait_for_healthy(&mut rx, 1).await;
    register(&*store, &registration("b", true)).await;
    wait_for_healthy(&mut rx, 2).await;
    // A change outside the catalogue does not matter; a deletion with the index does.
    store
        .put(
            b"/nomos/other".to_vec(),
            b"x".to_vec(),
            PutOptions::default(),
        )
        .await
        .unwrap();
    let txn = Txn::new().and_then([
        TxnOp::delete(keys::service("default", "web", "a")),
        TxnOp::put(keys::SERVICES_INDEX, ""),
    ]);
    store.txn(txn).await.unwrap();
    wait_for_healthy(&mut rx, 1).await;
    loader.abort();
}

#[test]
fn a_registration_that_does_not_decode_is_skipped_and_the_key_fills_in_names() {
    let kv = |key: &str, value: &str| KeyValue {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    };
    assert!(decode(&kv("/nomos/services/default/web/a", "not json")).is_none());
    let r = decode(&kv(
        "/nomos/services/prod/api/x",
        r#"{"id":"x","healthy":true}"#,
    ))
    .unwrap();
    assert_eq!(
        (r.namespace.as_str(), r.service_name.as_str()),
        ("prod", "api")
    );
}

#[test]
fn backoff_doubles_up_to_its_maximum_and_resets() {
    let mut b = Backoff::default();
    let waits: Vec<u64> = (0..8).map(|_| b.next_wait().as_millis() as u64).collect();
    assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    b.reset();
    assert_eq!(b.next_wait(), BACKOFF_FIRST);
}

/// The in-memory store, whose first `fail_lists` ranges and first `fail_watches` watches fail.
struct Flaky {
    inner: EmbeddedStore,
    fail_lists: AtomicUsize,
    fail_watches: AtomicUsize,
    lists: AtomicUsize,
}

fn take_one(n: &AtomicUsize) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
        .is_ok()
}

#[async_trait]
impl Store for Flaky {
    async fn range(&self, keys: KeySelector, options: RangeOptions) -> Result<RangeResponse> {
        self.lists.fetch_add(1, Ordering::SeqCst);
        if take_one(&self.fail_lists) {
            return Err(StoreError::Unavailable("injected list failure".into()));
        }
        self.inner.range(keys, options).await
    }
    async fn watch(&self, keys: KeySelector, options: WatchOptions) -> Result<WatchStream> {
        if take_one(&self.fail_watches) {
            return Err(StoreError::Compacted {
                requested: options.start_revision,
                compact_revision: options.start_revision + 1,
            });
        }
        self.inner.watch(keys, options).await
    }
    async fn put(&self, key: Vec<u8>, value: Vec<u8>, options: PutOptions) -> Result<PutResponse> {
        self.inner.put(key, value, options).await
    }
    async fn delete(&self, keys: KeySelector, options: DeleteOptions) -> Result<DeleteResponse> {
        self.inner.delete(keys, options).await
    }
    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        self.inner.txn(txn).await
    }
    async fn lease_grant(&self, ttl_seconds: i64, id: i64) -> Result<LeaseGrant> {
        self.inner.lease_grant(ttl_seconds, id).await
    }
    async fn lease_keep_alive(&self, id: i64) -> Result<i64> {
        self.inner.lease_keep_alive(id).await
    }
    async fn lease_revoke(&self, id: i64) -> Result<()> {
        self.inner.lease_revoke(id).await
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

#[tokio::test(start_paused = true)]
async fn failed_lists_and_watches_back_off_and_list_again() {
    let flaky = Arc::new(Flaky {
        inner: EmbeddedStore::in_memory(),
        fail_lists: AtomicUsize::new(2),
        fail_watches: AtomicUsize::new(1),
        lists: AtomicUsize::new(0),
    });
    register(&*flaky, &registration("a", true)).await;
    let (publish, mut rx) = watch::channel(None);
    let started = tokio::time::Instant::now();
    let loader = tokio::spawn(run(flaky.clone(), publish));
    wait_for_healthy(&mut rx, 1).await;
    // Two failed lists waited 100 ms and 200 ms before the third list succeeded.
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(flaky.lists.load(Ordering::SeqCst), 3);
    // The failed watch sends it back to a fresh list (after 100 ms: the good list reset the
    // backoff), and the next watch sees the change.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(flaky.lists.load(Ordering::SeqCst), 4);
    register(&*flaky, &registration("b", true)).await;
    wait_for_healthy(&mut rx, 2).await;
    loader.abort();
}
