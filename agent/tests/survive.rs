//! Tasks survive the agent: `kill -9` of an agent process followed by a new agent on the same
//! data dir re-attaches with zero restarts; a store outage longer than the heartbeat TTL keeps
//! tasks running and the accumulated state is reported when the store is back (real etcd).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use nomos_api::{ClientStatus, JobType};
use nomos_store::test_util::{Backend, TestStore};
use nomos_store::{keys, EmbeddedStore, Store};

#[tokio::test]
async fn kill_9_of_the_agent_then_a_new_agent_reattaches_with_zero_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let data = dir.path().join("agent");
    let job = job(
        "web",
        JobType::Service,
        vec![raw_task("srv", "sleep", &["300"])],
    );
    let a = alloc("k1", "n1", &job, 0);
    {
        let store = EmbeddedStore::open(&store_dir).unwrap();
        place(&store, &a, &job).await;
    }
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_nomos-agent-testbed"))
        .arg(&data)
        .arg("n1")
        .arg(&store_dir)
        .spawn()
        .expect("starting the agent process");
    let pid = eventually("the agent process starts the task", || async {
        let pid = persisted_pid(&data, "k1", "srv")?;
        alive(pid).then_some(pid)
    })
    .await;
    child.kill().expect("kill -9 the agent");
    child.wait().unwrap();
    assert!(alive(pid), "the task survives kill -9 of its agent");

    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&store_dir).unwrap());
    let mut cfg = test_config("n1", dir.path());
    cfg.data_dir = data.clone();
    let agent = RunningAgent::start(cfg, store.clone());
    let s = status_where(
        &store,
        "n1",
        "k1",
        "running and healthy after re-attach",
        |s| s.client_status == ClientStatus::Running && s.healthy == Some(true),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let s2 = status(&*store, "n1", "k1").await.unwrap();
    assert_eq!(s2.task_states["srv"].restarts, 0);
    assert_eq!(
        events(&s2, "srv")
            .iter()
            .filter(|e| *e == "Started")
            .count(),
        1,
        "{:?}",
        events(&s, "srv")
    );
    assert_eq!(persisted_pid(&data, "k1", "srv"), Some(pid));
    assert!(alive(pid));

    // The re-attached task is still managed: stopping the allocation stops it.
    stop_alloc(&*store, &a).await;
    status_where(&store, "n1", "k1", "stopped", |s| {
        s.client_status == ClientStatus::Complete
    })
    .await;
    assert!(!alive(pid));
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_longer_than_the_lease_keeps_tasks_running_and_reports_when_back() {
    let mut ts = TestStore::new(Backend::Etcd).await;
    let store = ts.store.clone();
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config("n1", dir.path());
    let data = cfg.data_dir.clone();
    let agent = RunningAgent::start(cfg, store.clone());
    let service = job(
        "web",
        JobType::Service,
        vec![raw_task("srv", "sleep", &["300"])],
    );
    let batch = job(
        "report",
        JobType::Batch,
        vec![raw_task("b", "sh", &["-c", "sleep 4; echo finished"])],
    );
    place(&*store, &alloc("s1", "n1", &service, 0), &service).await;
    place(&*store, &alloc("b1", "n1", &batch, 0), &batch).await;
    status_where(&store, "n1", "s1", "service running", |s| {
        s.client_status == ClientStatus::Running
    })
    .await;
    status_where(&store, "n1", "b1", "batch running", |s| {
        s.client_status == ClientStatus::Running
    })
    .await;
    let pid = persisted_pid(&data, "s1", "srv").unwrap();

    let etcd = ts.etcd.as_mut().expect("etcd process");
    tokio::task::block_in_place(|| etcd.stop());
    // Longer than the 2s heartbeat TTL, and long enough for the batch task to finish.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert!(alive(pid), "tasks keep running while the store is away");
    tokio::task::block_in_place(|| etcd.restart());

    let b = status_where(
        &store,
        "n1",
        "b1",
        "batch completion reported after the outage",
        |s| s.client_status == ClientStatus::Complete,
    )
    .await;
    assert_eq!(b.task_states["b"].exit_code, Some(0));
    eventually("heartbeat back", || async {
        get(&*store, &keys::heartbeat("n1")).await
    })
    .await;
    let s = status(&*store, "n1", "s1").await.unwrap();
    assert_eq!(s.client_status, ClientStatus::Running);
    assert_eq!(s.task_states["srv"].restarts, 0);
    assert_eq!(persisted_pid(&data, "s1", "srv"), Some(pid));
    agent.shutdown().await;
    nomos_agent::purge(&data).await.unwrap();
    assert!(!alive(pid));
}
