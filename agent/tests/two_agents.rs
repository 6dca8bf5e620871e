//! Two agents on one host, each with its own data dir, never touch each other's tasks: an agent
//! re-attaches to, reports on and kills only processes it started itself, even when it is given
//! the same allocation (same node name, another store) or a copy of the other's data dir.
//! raw_exec and exec tasks both (exec needs cgroups and pid namespaces: the test says so loudly
//! where the host lacks them).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use nomos_agent::driver::exec::detect_support;
use nomos_api::{Allocation, ClientStatus, Job, JobType, TaskRunState};
use nomos_store::{EmbeddedStore, Store};

const TASKS: [&str; 2] = ["raw", "iso"];

fn require_exec_isolation() {
    if let Some(why) = detect_support().refusal() {
        panic!("this test needs exec isolation (a cgroup with a memory controller and pid namespaces, as root): {why}");
    }
}

/// A service with a raw_exec task and an exec task, both sleeping.
fn sleepers() -> Job {
    let mut iso = raw_task("iso", "sleep", &["300"]);
    iso.driver = "exec".into();
    iso.resources.memory_mb = 32;
    job(
        "sleepers",
        JobType::Service,
        vec![raw_task("raw", "sleep", &["300"]), iso],
    )
}

/// An agent for node `n1` on its own store and data dir, running `a`; returns it with the pids
/// of its tasks once both run, started at `started_after_ms` or later.
async fn agent_running(
    data: &Path,
    a: &Allocation,
    job: &Job,
    started_after_ms: i64,
) -> (RunningAgent, Arc<dyn Store>, [i32; 2]) {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    let mut cfg = test_config("n1", data);
    cfg.data_dir = data.to_path_buf();
    // Placed first: an agent resuming from a (copied) data dir stops what its store lacks.
    place(&*store, a, job).await;
    let agent = RunningAgent::start(cfg, store.clone());
    all_running(&store, &a.id, started_after_ms).await;
    let pids = TASKS.map(|t| persisted_pid(data, &a.id, t).expect("pid"));
    (agent, store, pids)
}

async fn all_running(
    store: &Arc<dyn Store>,
    id: &str,
    started_after_ms: i64,
) -> nomos_api::AllocStatus {
    status_where(store, "n1", id, "every task running", |s| {
        s.task_states.len() == 2
            && s.task_states
                .values()
                .all(|t| t.state == TaskRunState::Running && t.started_at_ms >= started_after_ms)
    })
    .await
}

/// The first agent still runs its tasks as before: same pids, alive, no restart.
async fn untouched(store: &Arc<dyn Store>, data: &Path, id: &str, pids: [i32; 2]) {
    for (task, pid) in TASKS.iter().zip(pids) {
        assert!(alive(pid), "the first agent's {task} task ({pid}) runs");
        assert_eq!(persisted_pid(data, id, task), Some(pid));
    }
    let s = all_running(store, id, 0).await;
    assert_eq!(s.client_status, ClientStatus::Running, "{s:?}");
    for t in TASKS {
        assert_eq!(s.task_states[t].restarts, 0, "{s:?}");
    }
}

/// Stops the allocation through the first agent and purges its data dir.
async fn clean_up(agent: RunningAgent, store: Arc<dyn Store>, data: PathBuf, a: &Allocation) {
    stop_alloc(&*store, a).await;
    status_where(&store, "n1", &a.id, "stopped", |s| {
        s.client_status == ClientStatus::Complete
    })
    .await;
    agent.shutdown().await;
    nomos_agent::purge(&data).await.unwrap();
}

#[tokio::test]
async fn a_second_agent_on_the_same_host_neither_adopts_nor_purges_the_first_agents_tasks() {
    require_exec_isolation();
    let dir = tempfile::tempdir().unwrap();
    let job = sleepers();
    let a = alloc(&format!("two-{}", std::process::id()), "n1", &job, 0);
    let (data_a, data_b) = (dir.path().join("a"), dir.path().join("b"));
    let (first, store_a, pids_a) = agent_running(&data_a, &a, &job, 0).await;

    // Another agent with the same node name (a second `nctl agent` on this host) gets the same
    // allocation: it runs tasks of its own.
    let (second, _store_b, pids_b) = agent_running(&data_b, &a, &job, 0).await;
    for i in 0..2 {
        assert_ne!(pids_b[i], pids_a[i], "{} adopted", TASKS[i]);
    }
    second.shutdown().await;
    let report = nomos_agent::purge(&data_b).await.unwrap();
    assert_eq!(report.tasks_stopped, 2, "{report:?}");
    assert!(pids_b.iter().all(|p| !alive(*p)), "its own tasks are gone");
    untouched(&store_a, &data_a, &a.id, pids_a).await;

    clean_up(first, store_a, data_a, &a).await;
    assert!(pids_a.iter().all(|p| !alive(*p)));
}

#[tokio::test]
async fn an_agent_on_a_copy_of_another_agents_data_dir_leaves_the_original_tasks_alone() {
    require_exec_isolation();
    let dir = tempfile::tempdir().unwrap();
    let job = sleepers();
    let a = alloc(&format!("copy-{}", std::process::id()), "n1", &job, 0);
    let (data_a, data_c) = (dir.path().join("a"), dir.path().join("c"));
    let (first, store_a, pids_a) = agent_running(&data_a, &a, &job, 0).await;

    // The copy's state files name the first agent's processes.
    let copied_at = nomos_agent::driver::now_ms();
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(&data_a)
        .arg(&data_c)
        .status()
        .unwrap();
    assert!(copied.success());
    let (second, _store_c, pids_c) = agent_running(&data_c, &a, &job, copied_at).await;
    for i in 0..2 {
        assert_ne!(pids_c[i], pids_a[i], "{} re-attached", TASKS[i]);
    }
    second.shutdown().await;
    let report = nomos_agent::purge(&data_c).await.unwrap();
    assert_eq!(report.tasks_stopped, 2, "{report:?}");
    assert!(pids_c.iter().all(|p| !alive(*p)), "its own tasks are gone");
    untouched(&store_a, &data_a, &a.id, pids_a).await;

    clean_up(first, store_a, data_a, &a).await;
}
