//! Shared fixtures of the loops' end-to-end tests: an in-process embedded store, the jobs
//! controller and the loops running against it, simulated nodes (registration plus a heartbeat
//! key on a lease) and a simulated agent that reports the allocations of its nodes.

#![allow(dead_code)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use nomos_api::{
    AllocStatus, Allocation, ClientStatus, DesiredStatus, Job, JobStatus, Node, NodeSpec,
};
use nomos_controllers::jobs::{self, JobsConfig};
use nomos_controllers::loops::{run_loops, LoopsConfig};
use nomos_store::embedded::EmbeddedStore;
use nomos_store::{keys, KeySelector, PutOptions, RangeOptions, Store, WatchOptions};
use serde::de::DeserializeOwned;
use serde_json::json;

pub fn store() -> Arc<dyn Store> {
    Arc::new(EmbeddedStore::in_memory())
}

pub fn now_ms() -> i64 {
    nomos_controllers::jobs::now_ms()
}

/// A clock the test moves.
#[derive(Clone)]
pub struct FakeClock(pub Arc<AtomicI64>);

impl FakeClock {
    pub fn new() -> Self {
        FakeClock(Arc::new(AtomicI64::new(now_ms())))
    }
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
    pub fn clock(&self) -> nomos_controllers::loops::Clock {
        let c = self.0.clone();
        Arc::new(move || c.load(Ordering::SeqCst))
    }
}

pub fn node(name: &str, mem: u32) -> Node {
    nomos_api::build::node(name).memory(mem).build()
}

/// Registers a node and puts its heartbeat key (on a lease of `ttl` seconds when given).
pub async fn join(store: &dyn Store, n: &Node, ttl: Option<i64>) -> i64 {
    store
        .put(
            keys::node(&n.name).into_bytes(),
            serde_json::to_vec(n).unwrap(),
            PutOptions::default(),
        )
        .await
        .unwrap();
    heartbeat(store, &n.name, ttl).await
}

/// Puts the heartbeat key; returns the lease (0 for none).
pub async fn heartbeat(store: &dyn Store, name: &str, ttl: Option<i64>) -> i64 {
    let lease = match ttl {
        Some(t) => store.lease_grant(t, 0).await.unwrap().id,
        None => 0,
    };
    store
        .put(
            keys::heartbeat(name).into_bytes(),
            b"{}".to_vec(),
            PutOptions {
                lease,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    lease
}

pub async fn heartbeat_lost(store: &dyn Store, name: &str) {
    store
        .delete(
            KeySelector::key(keys::heartbeat(name).into_bytes()),
            Default::default(),
        )
        .await
        .unwrap();
}

pub async fn set_node_spec(store: &dyn Store, name: &str, spec: &NodeSpec) {
    store
        .put(
            keys::node_spec(name).into_bytes(),
            serde_json::to_vec(spec).unwrap(),
            PutOptions::default(),
        )
        .await
        .unwrap();
}

/// A job spec as users write it (JSON), with `extra` top-level fields merged in.
pub fn spec(name: &str, job_type: &str, count: u32, extra: serde_json::Value) -> Vec<u8> {
    let mut v = json!({
        "id": name,
        "namespace": "default",
        "datacenters": ["dc1"],
        "type": job_type,
        "groups": [{
            "name": "g",
            "count": count,
            "tasks": [{"name": "t", "driver": "raw_exec", "config": {"command": "/bin/true"},
                       "resources": {"cpu": 100, "memory_mb": 64}}]
        }]
    });
    if let (Some(obj), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in extra {
            obj.insert(k.clone(), x.clone());
        }
    }
    serde_json::to_vec(&v).unwrap()
}

pub async fn put_spec(store: &dyn Store, name: &str, value: Vec<u8>) {
    store
        .put(
            keys::job("default", name).into_bytes(),
            value,
            PutOptions::default(),
        )
        .await
        .unwrap();
}

pub async fn list<T: DeserializeOwned>(store: &dyn Store, prefix: &str) -> Vec<(String, T)> {
    let r = store
        .range(
            KeySelector::prefix(prefix.as_bytes().to_vec()),
            RangeOptions::default(),
        )
        .await
        .unwrap();
    r.kvs
        .iter()
        .filter_map(|kv| {
            serde_json::from_slice(&kv.value)
                .ok()
                .map(|v| (kv.key_str().into_owned(), v))
        })
        .collect()
}

pub async fn get<T: DeserializeOwned>(store: &dyn Store, key: &str) -> Option<T> {
    let r = store
        .range(
            KeySelector::key(key.as_bytes().to_vec()),
            RangeOptions::default(),
        )
        .await
        .unwrap();
    r.kvs
        .first()
        .and_then(|kv| serde_json::from_slice(&kv.value).ok())
}

pub async fn allocs(store: &dyn Store) -> Vec<Allocation> {
    list::<Allocation>(store, "/nomos/allocs/")
        .await
        .into_iter()
        .map(|(_, a)| a)
        .collect()
}

pub async fn job_allocs(store: &dyn Store, job: &str) -> Vec<Allocation> {
    allocs(store)
        .await
        .into_iter()
        .filter(|a| a.job_id == job)
        .collect()
}

pub async fn alloc_status(store: &dyn Store, a: &Allocation) -> Option<AllocStatus> {
    get(store, &keys::alloc_status(&a.node, &a.id)).await
}

pub async fn job_status(store: &dyn Store, job: &str) -> Option<JobStatus> {
    get(store, &keys::job_status("default", job)).await
}

pub async fn eventually<F, Fut>(what: &str, secs: u64, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what}: not reached within {secs}s");
}

/// The jobs controller and the loops, running until dropped or stopped.
pub struct Cluster {
    pub store: Arc<dyn Store>,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Cluster {
    pub fn start(store: Arc<dyn Store>, mut config: LoopsConfig) -> Self {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        let s = store.clone();
        let mut r = rx.clone();
        tasks.push(tokio::spawn(async move {
            let cfg = JobsConfig {
                resync: Duration::from_secs(1),
                ..Default::default()
            };
            jobs::run(s, cfg, None, None, async move {
                let _ = r.wait_for(|v| *v).await;
            })
            .await
            .expect("jobs controller");
        }));
        config.election_ttl_secs = config.election_ttl_secs.min(2);
        let mut registry = prometheus_client::registry::Registry::default();
        let mut r = rx.clone();
        let fut = run_loops(config, store.clone(), &mut registry, async move {
            let _ = r.wait_for(|v| *v).await;
        });
        tasks.push(tokio::spawn(async move { fut.await.expect("loops") }));
        Cluster {
            store,
            stop: Some(tx),
            tasks,
        }
    }

    /// The loops alone, without the jobs controller.
    pub fn loops_only(store: Arc<dyn Store>, mut config: LoopsConfig) -> Self {
        let (tx, rx) = tokio::sync::watch::channel(false);
        config.election_ttl_secs = config.election_ttl_secs.min(2);
        let mut registry = prometheus_client::registry::Registry::default();
        let mut r = rx.clone();
        let fut = run_loops(config, store.clone(), &mut registry, async move {
            let _ = r.wait_for(|v| *v).await;
        });
        let tasks = vec![tokio::spawn(async move { fut.await.expect("loops") })];
        Cluster {
            store,
            stop: Some(tx),
            tasks,
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(true);
        }
        for t in self.tasks.drain(..) {
            t.await.expect("task ends cleanly");
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Loop settings for tests: short resync, the given clock.
pub fn loops_config(clock: nomos_controllers::loops::Clock) -> LoopsConfig {
    LoopsConfig {
        resync: Duration::from_millis(200),
        min_pass_interval: Duration::from_millis(50),
        election_ttl_secs: 2,
        clock,
        ..Default::default()
    }
}

/// A simulated agent for a set of nodes: reports every allocation placed on them. Running
/// services become `running` and healthy (their task running since the report); batch and sysbatch ones `complete`; stopped ones
/// `complete`. Reports once per allocation change, like a real agent.
pub struct Agent {
    pub nodes: Arc<Mutex<HashSet<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Agent {
    pub fn start(store: Arc<dyn Store>, nodes: &[&str]) -> Self {
        let set: Arc<Mutex<HashSet<String>>> =
            Arc::new(Mutex::new(nodes.iter().map(|s| s.to_string()).collect()));
        let mine = set.clone();
        let task = tokio::spawn(async move {
            let rev = store.status().await.unwrap().revision;
            let existing = allocs(&*store).await;
            for a in existing {
                report(&*store, &mine, &a).await;
            }
            let mut w = store
                .watch(
                    KeySelector::prefix(b"/nomos/allocs/".to_vec()),
                    WatchOptions {
                        start_revision: rev + 1,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            while let Some(Ok(resp)) = w.next().await {
                for e in resp.events {
                    if let Ok(a) = serde_json::from_slice::<Allocation>(&e.kv.value) {
                        report(&*store, &mine, &a).await;
                    }
                }
            }
        });
        Agent { nodes: set, task }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn report(store: &dyn Store, nodes: &Mutex<HashSet<String>>, a: &Allocation) {
    if !nodes.lock().unwrap().contains(&a.node) {
        return;
    }
    let versions: Vec<(String, Job)> =
        list(store, &keys::job_versions_prefix(&a.namespace, &a.job_id)).await;
    let job_type = versions
        .iter()
        .find(|(k, _)| k.ends_with(&format!("{:020}", a.job_version)))
        .map(|(_, j)| j.job_type)
        .unwrap_or_default();
    let (status, healthy) = match (a.desired_status, job_type) {
        (DesiredStatus::Run, nomos_api::JobType::Batch | nomos_api::JobType::Sysbatch) => {
            (ClientStatus::Complete, None)
        }
        (DesiredStatus::Run, _) => (ClientStatus::Running, Some(true)),
        _ => (ClientStatus::Complete, None),
    };
    let key = keys::alloc_status(&a.node, &a.id);
    if let Some(old) = get::<AllocStatus>(store, &key).await {
        if old.client_status == status {
            return;
        }
    }
    let mut st = AllocStatus {
        alloc_id: a.id.clone(),
        client_status: status,
        healthy,
        modified_at_ms: now_ms(),
        ..Default::default()
    };
    if status == ClientStatus::Running {
        // Migrations time health from the task states (`migrate.min_healthy_time`).
        st.task_states.insert(
            "main".into(),
            nomos_api::TaskState {
                state: nomos_api::TaskRunState::Running,
                started_at_ms: now_ms(),
                ..Default::default()
            },
        );
    }
    store
        .put(
            key.into_bytes(),
            serde_json::to_vec(&st).unwrap(),
            PutOptions::default(),
        )
        .await
        .unwrap();
}
