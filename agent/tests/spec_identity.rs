//! An allocation runs exactly the spec it names: a job purged and created again starts at
//! version 0 once more, so the agent matches the allocation's `job_spec_hash` against the stored
//! version, never only the version number, and never runs a spec whose hash differs.

mod common;

use std::sync::Arc;

use common::*;
use nomos_api::{ClientStatus, Job, JobType};
use nomos_store::{keys, EmbeddedStore, KeySelector, Store};

fn web(greeting: &str) -> Job {
    let script = format!("echo {greeting}; exec sleep 300");
    job(
        "web",
        JobType::Service,
        vec![raw_task("t", "sh", &["-c", &script])],
    )
}

/// What `nctl stop web --purge` leaves: neither the allocation nor the job's versions.
async fn purge_job(store: &dyn Store, node: &str, alloc_id: &str) {
    store
        .delete(
            KeySelector::key(keys::alloc(node, alloc_id)),
            Default::default(),
        )
        .await
        .unwrap();
    store
        .delete(
            KeySelector::prefix(keys::job_version("default", "web", 0)),
            Default::default(),
        )
        .await
        .unwrap();
}

/// Waits until the task printed its greeting and returns what it printed.
async fn greeting(data: &std::path::Path, alloc: &str) -> String {
    eventually("the task printed its greeting", || async {
        let out = stdout_of(data, alloc, "t");
        (!out.is_empty()).then_some(out)
    })
    .await
}

#[tokio::test]
async fn a_job_purged_and_created_again_at_version_0_runs_its_new_spec_on_the_same_node() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    let cfg = test_config("n1", dir.path());
    let data = cfg.data_dir.clone();
    let agent = RunningAgent::start(cfg, store.clone());

    let old = web("old-spec");
    place(&*store, &alloc("first", "n1", &old, 0), &old).await;
    status_where(&store, "n1", "first", "running", |s| {
        s.client_status == ClientStatus::Running
    })
    .await;
    assert_eq!(greeting(&data, "first").await, "old-spec\n");

    purge_job(&*store, "n1", "first").await;
    eventually("the first allocation is forgotten", || async {
        status(&*store, "n1", "first").await.is_none().then_some(())
    })
    .await;

    // `nctl apply` of a changed file under the same name: version 0 again, another spec.
    let new = web("new-spec");
    let second = alloc("second", "n1", &new, 0);
    assert_ne!(second.job_spec_hash, nomos_api::spec_hash(&old));
    place(&*store, &second, &new).await;
    status_where(&store, "n1", "second", "running", |s| {
        s.client_status == ClientStatus::Running
    })
    .await;
    assert_eq!(greeting(&data, "second").await, "new-spec\n");

    stop_alloc(&*store, &second).await;
    status_where(&store, "n1", "second", "stopped", |s| {
        s.client_status == ClientStatus::Complete
    })
    .await;
    agent.shutdown().await;
}

#[tokio::test]
async fn an_allocation_whose_spec_is_not_the_stored_version_waits_and_never_runs_another_spec() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    let cfg = test_config("n1", dir.path());
    let data = cfg.data_dir.clone();
    let agent = RunningAgent::start(cfg, store.clone());

    // The store still holds the old spec as version 0 while the allocation names the new one.
    let old = web("old-spec");
    let new = web("new-spec");
    let a = alloc("late", "n1", &new, 0);
    put_version(&*store, &old, 0).await;
    put_alloc(&*store, &a).await;
    let s = status_where(&store, "n1", "late", "the mismatch explained", |s| {
        s.client_description.contains(&a.job_spec_hash)
    })
    .await;
    assert_eq!(s.client_status, ClientStatus::Pending, "{s:?}");
    assert!(
        s.client_description.contains(&nomos_api::spec_hash(&old)) && s.task_states.is_empty(),
        "{s:?}"
    );
    assert_eq!(stdout_of(&data, "late", "t"), "", "nothing ran");

    // Once the store holds the spec the allocation names, the agent reads it again and runs it.
    put_version(&*store, &new, 0).await;
    status_where(&store, "n1", "late", "running the named spec", |s| {
        s.client_status == ClientStatus::Running
    })
    .await;
    assert_eq!(greeting(&data, "late").await, "new-spec\n");

    stop_alloc(&*store, &a).await;
    status_where(&store, "n1", "late", "stopped", |s| {
        s.client_status == ClientStatus::Complete
    })
    .await;
    agent.shutdown().await;
}
