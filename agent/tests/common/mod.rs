//! Shared fixtures for the agent's integration tests: job and task builders, placing an
//! allocation the way the controllers do, reading what the agent reports, and running an agent
//! in-process with a shutdown switch.
#![allow(dead_code)]

pub mod world;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nomos_agent::AgentConfig;
use nomos_api::{
    build, AllocStatus, AllocatedPort, Allocation, DesiredStatus, Job, JobType, RestartPolicy,
    Task, TaskGroup,
};
use nomos_store::{keys, KeySelector, PutOptions, RangeOptions, Store};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub fn raw_task(name: &str, command: &str, args: &[&str]) -> Task {
    let mut t = Task {
        name: name.into(),
        driver: "raw_exec".into(),
        kill_timeout_ns: 2_000_000_000,
        ..Default::default()
    };
    t.config
        .insert("command".into(), serde_json::json!(command));
    t.config.insert("args".into(), serde_json::json!(args));
    t
}

/// A job of one group `g` (count 1) running `tasks`; a failed task restarts twice, 100ms apart,
/// then fails for good.
pub fn job(id: &str, job_type: JobType, tasks: Vec<Task>) -> Job {
    let group = TaskGroup {
        restart: Some(RestartPolicy {
            attempts: 2,
            interval_ns: 600_000_000_000,
            delay_ns: 100_000_000,
            mode: "fail".into(),
            render_templates: false,
        }),
        tasks,
        ..build::group("g", 1)
    };
    build::job(id).job_type(job_type).with_group(group).build()
}

pub fn alloc(id: &str, node: &str, job: &Job, version: u64) -> Allocation {
    Allocation {
        id: id.into(),
        namespace: job.namespace.clone(),
        job_id: job.id.clone(),
        job_version: version,
        task_group: job.groups[0].name.clone(),
        name: format!("{}.{}[0]", job.id, job.groups[0].name),
        node: node.into(),
        job_spec_hash: nomos_api::spec_hash(job),
        ..Default::default()
    }
}

pub fn with_port(mut a: Allocation, label: &str, value: u16) -> Allocation {
    a.ports.push(AllocatedPort {
        label: label.into(),
        value,
        to: 0,
        host_ip: "127.0.0.1".into(),
    });
    a
}

/// Writes the job version and the allocation, as the jobs controller does.
pub async fn place(store: &dyn Store, a: &Allocation, job: &Job) {
    put_version(store, job, a.job_version).await;
    put_alloc(store, a).await;
}

/// Writes `job` as its version `version`, as the jobs controller does (compact JSON).
pub async fn put_version(store: &dyn Store, job: &Job, version: u64) {
    let jv = keys::job_version(&job.namespace, &job.id, version);
    store
        .put(
            jv.into_bytes(),
            serde_json::to_vec(job).unwrap(),
            PutOptions::default(),
        )
        .await
        .unwrap();
}

pub async fn put_alloc(store: &dyn Store, a: &Allocation) {
    store
        .put(
            keys::alloc(&a.node, &a.id).into_bytes(),
            serde_json::to_vec(a).unwrap(),
            PutOptions::default(),
        )
        .await
        .unwrap();
}

pub async fn stop_alloc(store: &dyn Store, a: &Allocation) {
    let mut a = a.clone();
    a.desired_status = DesiredStatus::Stop;
    put_alloc(store, &a).await;
}

pub async fn get(store: &dyn Store, key: &str) -> Option<Vec<u8>> {
    store
        .range(KeySelector::key(key.to_string()), RangeOptions::default())
        .await
        .ok()?
        .kvs
        .into_iter()
        .next()
        .map(|kv| kv.value)
}

pub async fn status(store: &dyn Store, node: &str, alloc: &str) -> Option<AllocStatus> {
    get(store, &keys::alloc_status(node, alloc))
        .await
        .and_then(|v| serde_json::from_slice(&v).ok())
}

/// Polls `f` until it returns `Some`, panicking with `what` after a generous bound.
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for an allocation status that satisfies `pred`.
pub async fn status_where(
    store: &Arc<dyn Store>,
    node: &str,
    alloc: &str,
    what: &str,
    pred: impl Fn(&AllocStatus) -> bool,
) -> AllocStatus {
    eventually(what, || async {
        let s = status(&**store, node, alloc).await?;
        pred(&s).then_some(s)
    })
    .await
}

pub fn test_config(name: &str, dir: &Path) -> AgentConfig {
    let mut c = AgentConfig::new(name, dir.join(name));
    c.heartbeat_ttl_secs = 2;
    c.default_min_healthy_time_ms = 300;
    c.enable_docker = false;
    c.enable_raw_exec = true;
    c.max_retry_backoff_ms = 500;
    c
}

/// An agent running in this process.
pub struct RunningAgent {
    stop: Option<oneshot::Sender<()>>,
    join: JoinHandle<Result<(), nomos_agent::AgentError>>,
}

impl RunningAgent {
    pub fn start(config: AgentConfig, store: Arc<dyn Store>) -> Self {
        let (tx, rx) = oneshot::channel::<()>();
        let join = tokio::spawn(nomos_agent::run(config, store, async move {
            let _ = rx.await;
        }));
        RunningAgent {
            stop: Some(tx),
            join,
        }
    }

    /// Shuts the agent down (tasks keep running).
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.join.await.expect("agent task").expect("agent result");
    }
}

/// The pid of a task from the agent's persisted state.
pub fn persisted_pid(data_dir: &Path, alloc: &str, task: &str) -> Option<i32> {
    let text = std::fs::read_to_string(data_dir.join("state/allocs").join(format!("{alloc}.json")))
        .ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["tasks"][task]["handle"]["pid"].as_i64().map(|p| p as i32)
}

pub fn alive(pid: i32) -> bool {
    nomos_agent::procfs::stat(pid)
        .map(|s| s.state != 'Z')
        .unwrap_or(false)
}

/// What a task wrote to its stdout so far (empty before it wrote anything).
pub fn stdout_of(data_dir: &Path, alloc: &str, task: &str) -> String {
    std::fs::read_to_string(nomos_agent::logs::live_path(
        &nomos_agent::logs::log_dir(data_dir, alloc),
        task,
        nomos_agent::logs::LogStream::Stdout,
    ))
    .unwrap_or_default()
}

pub fn events(s: &AllocStatus, task: &str) -> Vec<String> {
    s.task_states
        .get(task)
        .map(|t| t.events.iter().map(|e| e.event_type.clone()).collect())
        .unwrap_or_default()
}
