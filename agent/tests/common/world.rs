//! One agent on node `n1` over an in-memory store, for tests of what its tasks' templates
//! read: the store, the agent's data dir, and helpers to place allocations, change keys and
//! wait for statuses.

use std::path::PathBuf;
use std::sync::Arc;

use nomos_agent::AgentConfig;
use nomos_api::{AllocStatus, Allocation, ClientStatus, JobType, Task};
use nomos_store::{keys, EmbeddedStore, KeySelector, Store};

use super::{alloc, job, place, status_where, stop_alloc, test_config, RunningAgent};

/// A store, an agent on node `n1` using it, and the temp dir holding the agent's data dir.
pub struct World {
    pub dir: tempfile::TempDir,
    pub store: Arc<dyn Store>,
    agent: Option<RunningAgent>,
}

impl World {
    pub fn start() -> World {
        World::start_with(|_| {})
    }

    /// An agent whose test configuration `tune` changes first.
    pub fn start_with(tune: impl FnOnce(&mut AgentConfig)) -> World {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
        let mut config = test_config("n1", dir.path());
        tune(&mut config);
        let agent = Some(RunningAgent::start(config, store.clone()));
        World { dir, store, agent }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("n1")
    }

    /// A file of task `t` of allocation `alloc`.
    pub fn file(&self, alloc: &str, rel: &str) -> PathBuf {
        self.data().join("allocs").join(alloc).join("t").join(rel)
    }

    pub async fn put_key(&self, path: &str, value: &str) {
        let key = keys::kv(path).into_bytes();
        let value = value.as_bytes().to_vec();
        self.store
            .put(key, value, Default::default())
            .await
            .unwrap();
    }

    pub async fn delete_key(&self, path: &str) {
        let sel = KeySelector::key(keys::kv(path).into_bytes());
        self.store.delete(sel, Default::default()).await.unwrap();
    }

    /// Places allocation `id` of a one-task job.
    pub async fn place(&self, id: &str, job_type: JobType, task: Task) -> Allocation {
        let job = job(id, job_type, vec![task]);
        let a = alloc(id, "n1", &job, 0);
        place(&*self.store, &a, &job).await;
        a
    }

    pub async fn status_where(
        &self,
        id: &str,
        what: &str,
        pred: impl Fn(&AllocStatus) -> bool,
    ) -> AllocStatus {
        status_where(&self.store, "n1", id, what, pred).await
    }

    /// Stops `allocs`, waits until they no longer run, and shuts the agent down.
    pub async fn stop(mut self, allocs: &[&Allocation]) {
        for a in allocs {
            stop_alloc(&*self.store, a).await;
            self.status_where(&a.id, "stopped", |s| {
                s.client_status != ClientStatus::Running && s.client_status != ClientStatus::Pending
            })
            .await;
        }
        if let Some(agent) = self.agent.take() {
            agent.shutdown().await;
        }
    }
}

/// Whether task `t` started.
pub fn started(s: &AllocStatus) -> bool {
    super::events(s, "t").iter().any(|e| e == "Started")
}

/// The `Missing: ...` events of task `t`, in order.
pub fn missing_events(s: &AllocStatus) -> Vec<String> {
    s.task_states.get("t").map_or(vec![], |t| {
        t.events
            .iter()
            .filter(|e| e.event_type == "Template" && e.message.starts_with("Missing: "))
            .map(|e| e.message.clone())
            .collect()
    })
}

/// Milliseconds since the epoch, as task states' times are.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
