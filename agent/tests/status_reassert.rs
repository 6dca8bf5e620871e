//! An agent keeps its allocations' status keys saying what it observes: a value someone else
//! wrote over its report (garbage, the node-lifecycle loop's `unknown`) is written again while
//! the node's heartbeat key exists, and left alone while it is missing (then the lifecycle loop
//! owns those keys).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use nomos_api::{AllocStatus, Allocation, ClientStatus, JobType};
use nomos_store::{keys, EmbeddedStore, KeySelector, PutOptions, Store};

/// An agent on `node` running a sleeping service allocation.
async fn running_alloc(
    dir: &std::path::Path,
    node: &str,
) -> (RunningAgent, Arc<dyn Store>, Allocation) {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    let agent = RunningAgent::start(test_config(node, dir), store.clone());
    let job = job(
        "web",
        JobType::Service,
        vec![raw_task("t", "sleep", &["300"])],
    );
    let a = alloc(&format!("{node}-a"), node, &job, 0);
    place(&*store, &a, &job).await;
    // Healthy: the agent has nothing more to report until something changes.
    status_where(&store, node, &a.id, "running and healthy", |s| {
        s.client_status == ClientStatus::Running && s.healthy == Some(true)
    })
    .await;
    (agent, store, a)
}

async fn overwrite_status(store: &dyn Store, a: &Allocation, value: Vec<u8>) {
    store
        .put(
            keys::alloc_status(&a.node, &a.id).into_bytes(),
            value,
            PutOptions::default(),
        )
        .await
        .unwrap();
}

/// What the node-lifecycle loop writes while a node's heartbeat is missing.
fn unknown_status(a: &Allocation) -> Vec<u8> {
    serde_json::to_vec(&AllocStatus {
        alloc_id: a.id.clone(),
        client_status: ClientStatus::Unknown,
        client_description: "node missed its heartbeat; unknown until it returns".into(),
        ..Default::default()
    })
    .unwrap()
}

async fn running_again(store: &Arc<dyn Store>, a: &Allocation) -> AllocStatus {
    status_where(store, &a.node, &a.id, "the agent's own report again", |s| {
        s.client_status == ClientStatus::Running && s.task_states["t"].restarts == 0
    })
    .await
}

async fn stop(agent: RunningAgent, store: Arc<dyn Store>, a: &Allocation) {
    stop_alloc(&*store, a).await;
    status_where(&store, &a.node, &a.id, "stopped", |s| {
        s.client_status == ClientStatus::Complete
    })
    .await;
    agent.shutdown().await;
}

#[tokio::test]
async fn a_garbage_status_of_a_running_allocation_is_rewritten_by_its_agent() {
    let dir = tempfile::tempdir().unwrap();
    let (agent, store, a) = running_alloc(dir.path(), "g1").await;
    overwrite_status(&*store, &a, b"{not json".to_vec()).await;
    running_again(&store, &a).await;
    stop(agent, store, &a).await;
}

#[tokio::test]
async fn an_unknown_status_written_while_the_heartbeat_exists_is_replaced_by_the_real_one() {
    let dir = tempfile::tempdir().unwrap();
    let (agent, store, a) = running_alloc(dir.path(), "u1").await;
    overwrite_status(&*store, &a, unknown_status(&a)).await;
    running_again(&store, &a).await;
    stop(agent, store, &a).await;
}

#[tokio::test]
async fn while_the_heartbeat_key_is_missing_the_agent_leaves_its_status_keys_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (agent, store, a) = running_alloc(dir.path(), "h1").await;
    let heartbeat = keys::heartbeat(&a.node);
    let beat = get(&*store, &heartbeat).await.expect("heartbeat key");
    store
        .delete(KeySelector::key(heartbeat.clone()), Default::default())
        .await
        .unwrap();
    overwrite_status(&*store, &a, unknown_status(&a)).await;
    // Longer than several rewrite intervals: the lifecycle loop's mark stays.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let s = status(&*store, &a.node, &a.id).await.expect("status");
    assert_eq!(s.client_status, ClientStatus::Unknown, "{s:?}");

    // The heartbeat key is back: the agent's report replaces the mark.
    store
        .put(heartbeat.into_bytes(), beat, PutOptions::default())
        .await
        .unwrap();
    running_again(&store, &a).await;
    stop(agent, store, &a).await;
}
