//! The agent never stops its tasks because the store looks newly empty: a store swapped for a
//! fresh one (another `/nomos/cluster` ID, or none) leaves every task running, and the agent
//! says why in its node registration; back on its own cluster it carries on with the same
//! tasks, and deleting all its allocations there still stops them (a legitimate purge).

mod common;

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use common::*;
use futures::StreamExt;
use nomos_agent::cluster_guard::MISMATCH_ATTRIBUTE;
use nomos_api::{ClientStatus, JobType, Node};
use nomos_store::{
    cluster, keys, DeleteOptions, DeleteResponse, EmbeddedStore, KeySelector, LeaseGrant,
    LeaseInfo, PutOptions, PutResponse, RangeOptions, RangeResponse, Result, Store, StoreStatus,
    Txn, TxnResponse, WatchOptions, WatchStream,
};

/// A store whose backend can be replaced under the agent, as a server restarted on another
/// data directory would be; open watches end at the swap (their connection would break).
struct Swappable {
    inner: RwLock<Arc<dyn Store>>,
    swaps: tokio::sync::watch::Sender<u64>,
}

impl Swappable {
    fn new(store: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(Swappable {
            inner: RwLock::new(store),
            swaps: tokio::sync::watch::channel(0).0,
        })
    }

    fn swap(&self, store: Arc<dyn Store>) {
        *self.inner.write().unwrap() = store;
        self.swaps.send_modify(|n| *n += 1);
    }

    fn current(&self) -> Arc<dyn Store> {
        self.inner.read().unwrap().clone()
    }
}

#[async_trait]
impl Store for Swappable {
    async fn range(&self, keys: KeySelector, options: RangeOptions) -> Result<RangeResponse> {
        self.current().range(keys, options).await
    }
    async fn put(&self, key: Vec<u8>, value: Vec<u8>, options: PutOptions) -> Result<PutResponse> {
        self.current().put(key, value, options).await
    }
    async fn delete(&self, keys: KeySelector, options: DeleteOptions) -> Result<DeleteResponse> {
        self.current().delete(keys, options).await
    }
    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        self.current().txn(txn).await
    }
    async fn watch(&self, keys: KeySelector, options: WatchOptions) -> Result<WatchStream> {
        let mut swaps = self.swaps.subscribe();
        let stream = self.current().watch(keys, options).await?;
        let swapped = async move {
            let _ = swaps.changed().await;
        };
        Ok(Box::pin(stream.take_until(swapped)))
    }
    async fn lease_grant(&self, ttl_seconds: i64, id: i64) -> Result<LeaseGrant> {
        self.current().lease_grant(ttl_seconds, id).await
    }
    async fn lease_keep_alive(&self, id: i64) -> Result<i64> {
        self.current().lease_keep_alive(id).await
    }
    async fn lease_revoke(&self, id: i64) -> Result<()> {
        self.current().lease_revoke(id).await
    }
    async fn lease_time_to_live(&self, id: i64, with_keys: bool) -> Result<LeaseInfo> {
        self.current().lease_time_to_live(id, with_keys).await
    }
    async fn lease_list(&self) -> Result<Vec<i64>> {
        self.current().lease_list().await
    }
    async fn compact(&self, revision: i64) -> Result<()> {
        self.current().compact(revision).await
    }
    async fn status(&self) -> Result<StoreStatus> {
        self.current().status().await
    }
}

/// The mismatch the agent recorded in its registration in `store`, once there is one.
async fn recorded_mismatch(store: &dyn Store) -> String {
    eventually(
        "the agent records the cluster mismatch on its node",
        || async {
            let bytes = get(store, &keys::node("n1")).await?;
            let node: Node = serde_json::from_slice(&bytes).ok()?;
            node.attributes.get(MISMATCH_ATTRIBUTE).cloned()
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_replaced_by_an_empty_one_leaves_every_task_running_and_says_why() {
    let original: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    let original_id = cluster::ensure_cluster_id(&*original).await.unwrap();
    let store = Swappable::new(original.clone());
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config("n1", dir.path());
    let data = cfg.data_dir.clone();
    let agent = RunningAgent::start(cfg, store.clone());
    let job = job(
        "web",
        JobType::Service,
        vec![raw_task("srv", "sleep", &["300"])],
    );
    let a = alloc("k1", "n1", &job, 0);
    place(&*original, &a, &job).await;
    status_where(&original, "n1", "k1", "running", |s| {
        s.client_status == ClientStatus::Running
    })
    .await;
    let pid = persisted_pid(&data, "k1", "srv").unwrap();
    let remembered = std::fs::read_to_string(data.join("cluster-id")).unwrap();
    assert_eq!(
        remembered.trim(),
        original_id,
        "the agent remembers its cluster"
    );

    // A fresh store whose first server made a new cluster ID: no allocations at all.
    let fresh: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    let fresh_id = cluster::ensure_cluster_id(&*fresh).await.unwrap();
    store.swap(fresh.clone());
    let message = recorded_mismatch(&*fresh).await;
    assert!(
        message.contains(&original_id) && message.contains(&fresh_id),
        "the message names both cluster IDs: {message}"
    );
    assert!(
        message.contains("nctl agent purge"),
        "and what to do: {message}"
    );
    assert!(alive(pid), "the task keeps running on a replaced store");
    assert_eq!(
        persisted_pid(&data, "k1", "srv"),
        Some(pid),
        "its record is kept"
    );

    // A store without any cluster ID (an etcd wiped clean) is no better.
    let bare: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    store.swap(bare.clone());
    let message = recorded_mismatch(&*bare).await;
    assert!(message.contains("missing"), "{message}");
    assert!(
        alive(pid),
        "the task keeps running on a store without a cluster ID"
    );

    // Back on its own cluster, the agent carries on with the same task.
    store.swap(original.clone());
    status_where(&original, "n1", "k1", "still running", |s| {
        s.client_status == ClientStatus::Running
    })
    .await;
    assert_eq!(persisted_pid(&data, "k1", "srv"), Some(pid));
    assert!(alive(pid));

    // All of its allocations deleted in one revision of its own cluster: a legitimate purge.
    original
        .delete(
            KeySelector::prefix(keys::allocs_prefix(Some("n1"))),
            DeleteOptions::default(),
        )
        .await
        .unwrap();
    eventually("the purged allocation's task stops", || async {
        (!alive(pid)).then_some(())
    })
    .await;
    agent.shutdown().await;
}
