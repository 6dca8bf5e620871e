//! The exec driver on this host: where cgroup v2 isolation works a task runs in its own cgroup
//! and exceeding `memory_max` is reported as OOM; where it does not (cgroup v1 hosts), a task
//! asking for exec fails with a clear Driver Failure event and the fingerprint says why.

mod common;

use std::sync::Arc;

use common::*;
use nomos_agent::driver::exec::{detect_isolation, Isolation};
use nomos_api::{ClientStatus, JobType, Node};
use nomos_store::{keys, EmbeddedStore, Store};

#[tokio::test]
async fn exec_tasks_run_isolated_or_fail_clearly_when_the_host_cannot_isolate() {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    let dir = tempfile::tempdir().unwrap();
    let agent = RunningAgent::start(test_config("e1", dir.path()), store.clone());
    let mut t = raw_task("t", "sh", &["-c", "echo isolated"]);
    t.driver = "exec".into();
    t.resources.memory_mb = 32;
    let mut job = job("iso", JobType::Batch, vec![t]);
    job.groups[0].restart.as_mut().unwrap().attempts = 0;
    place(&*store, &alloc("e-1", "e1", &job, 0), &job).await;
    let node: Node = eventually("node", || async {
        get(&*store, &keys::node("e1"))
            .await
            .and_then(|v| serde_json::from_slice(&v).ok())
    })
    .await;
    match detect_isolation() {
        Isolation::CgroupV2 => {
            assert!(node.drivers["exec"].healthy);
            status_where(&store, "e1", "e-1", "exec task complete", |s| {
                s.client_status == ClientStatus::Complete
            })
            .await;
        }
        Isolation::Unavailable(why) => {
            assert!(!node.drivers["exec"].detected);
            assert_eq!(node.attributes["driver.exec.unavailable"], why);
            assert!(
                !node.attributes.contains_key("driver.exec"),
                "exec is not advertised"
            );
            let s = status_where(&store, "e1", "e-1", "exec task failed", |s| {
                s.client_status == ClientStatus::Failed
            })
            .await;
            let ev = &s.task_states["t"].events;
            let f = ev
                .iter()
                .find(|e| e.event_type == "Driver Failure")
                .unwrap_or_else(|| panic!("{ev:?}"));
            assert!(
                f.message.contains("cannot isolate") && f.message.contains("cgroup"),
                "{}",
                f.message
            );
        }
    }
    agent.shutdown().await;
}

#[tokio::test]
async fn exceeding_memory_max_under_exec_is_oom_or_refused_where_cgroup_v2_is_missing() {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    let dir = tempfile::tempdir().unwrap();
    let agent = RunningAgent::start(test_config("e2", dir.path()), store.clone());
    let mut t = raw_task(
        "hog",
        "sh",
        &["-c", "dd if=/dev/zero of=/dev/null bs=256M count=1"],
    );
    t.driver = "exec".into();
    t.resources.memory_mb = 16;
    t.resources.memory_max_mb = 32;
    let mut job = job("hog", JobType::Batch, vec![t]);
    job.groups[0].restart.as_mut().unwrap().attempts = 0;
    place(&*store, &alloc("e-2", "e2", &job, 0), &job).await;
    let s = status_where(&store, "e2", "e-2", "failed", |s| {
        s.client_status == ClientStatus::Failed
    })
    .await;
    let ev = &s.task_states["hog"].events;
    match detect_isolation() {
        Isolation::CgroupV2 => assert!(ev.iter().any(|e| e.oom_killed), "{ev:?}"),
        Isolation::Unavailable(_) => assert!(
            ev.iter()
                .any(|e| e.event_type == "Driver Failure" && e.message.contains("cgroup")),
            "{ev:?}"
        ),
    }
    agent.shutdown().await;
}
