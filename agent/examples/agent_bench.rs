//! Measures the agent on this machine: how long N raw_exec allocations take from being written
//! to the store to all reporting `running`, how long a restarted agent takes to be registered
//! again (it re-attaches to its tasks before that), and that no task was restarted. Prints one
//! line of results.
//!
//! `cargo run -p nomos-agent --example agent_bench -- [N]` (default 50).

use std::sync::Arc;
use std::time::{Duration, Instant};

use nomos_api::{AllocStatus, Allocation, ClientStatus, Job, JobType, Task, TaskGroup};
use nomos_store::{keys, EmbeddedStore, KeySelector, PutOptions, RangeOptions, Store};

async fn running(store: &dyn Store, node: &str) -> (usize, u32) {
    let r = store
        .range(
            KeySelector::prefix(keys::alloc_status_prefix(Some(node))),
            RangeOptions::default(),
        )
        .await
        .expect("range");
    let mut n = 0;
    let mut restarts = 0;
    for kv in r.kvs {
        if let Ok(s) = serde_json::from_slice::<AllocStatus>(&kv.value) {
            if s.client_status == ClientStatus::Running {
                n += 1;
            }
            restarts += s.task_states.values().map(|t| t.restarts).sum::<u32>();
        }
    }
    (n, restarts)
}

async fn wait_running(store: &dyn Store, node: &str, n: usize) {
    loop {
        if running(store, node).await.0 >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn start(
    config: nomos_agent::AgentConfig,
    store: Arc<dyn Store>,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let join = tokio::spawn(async move {
        nomos_agent::run(config, store, async move {
            let _ = rx.await;
        })
        .await
        .expect("agent");
    });
    (tx, join)
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50);
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    let mut config = nomos_agent::AgentConfig::new("bench", dir.path().join("agent"));
    config.enable_docker = false;
    config.enable_raw_exec = true;
    let mut task = Task {
        name: "t".into(),
        driver: "raw_exec".into(),
        ..Default::default()
    };
    task.config
        .insert("command".into(), serde_json::json!("sleep"));
    task.config
        .insert("args".into(), serde_json::json!(["600"]));
    let job = Job {
        id: "bench".into(),
        namespace: "default".into(),
        job_type: JobType::Service,
        groups: vec![TaskGroup {
            name: "g".into(),
            count: n as u32,
            tasks: vec![task],
            ..Default::default()
        }],
        ..Default::default()
    };
    store
        .put(
            keys::job_version("default", "bench", 0).into_bytes(),
            serde_json::to_vec(&job).unwrap(),
            PutOptions::default(),
        )
        .await
        .unwrap();

    let (stop, join) = start(config.clone(), store.clone());
    let t0 = Instant::now();
    for i in 0..n {
        let a = Allocation {
            id: format!("bench-{i:04}"),
            namespace: "default".into(),
            job_id: "bench".into(),
            task_group: "g".into(),
            index: i as u32,
            node: "bench".into(),
            ..Default::default()
        };
        store
            .put(
                keys::alloc("bench", &a.id).into_bytes(),
                serde_json::to_vec(&a).unwrap(),
                PutOptions::default(),
            )
            .await
            .unwrap();
    }
    wait_running(&*store, "bench", n).await;
    let start_s = t0.elapsed().as_secs_f64();
    let _ = stop.send(());
    join.await.unwrap();

    let restart_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let (stop, join) = start(config.clone(), store.clone());
    let t1 = Instant::now();
    // Ready again once the new agent has registered its node (it re-attaches before that).
    loop {
        let r = store
            .range(
                KeySelector::key(keys::node("bench")),
                RangeOptions::default(),
            )
            .await
            .unwrap();
        let registered = r
            .kvs
            .first()
            .and_then(|kv| serde_json::from_slice::<nomos_api::Node>(&kv.value).ok())
            .map(|n| n.registered_at_ms)
            .unwrap_or(0);
        if registered >= restart_ms {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let reattach_s = t1.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (still_running, restarts) = running(&*store, "bench").await;
    assert_eq!(
        still_running, n,
        "every allocation still runs after the restart"
    );
    let _ = stop.send(());
    join.await.unwrap();
    let report = nomos_agent::purge(dir.path().join("agent"))
        .await
        .expect("purge");
    println!(
        "allocs={n} start_all_s={start_s:.3} starts_per_s={:.1} restart_to_registered_s={reattach_s:.3} restarts_after_reattach={restarts} purged_tasks={}",
        n as f64 / start_s,
        report.tasks_stopped
    );
}
