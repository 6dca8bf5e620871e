//! End to end: `nctl system gc` (a forced collection) removes a stopped job with its finished
//! allocations and keeps everything that runs.

mod loops_common;

use std::sync::Arc;

use loops_common::*;
use nomos_api::DesiredStatus;
use nomos_controllers::gc::run::force_with;
use nomos_store::keys;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_gc_collects_a_stopped_job_and_keeps_the_running_one() {
    let store = store();
    join(&*store, &node("n1", 8192), None).await;
    let _agent = Agent::start(store.clone(), &["n1"]);
    let mut config = loops_config(Arc::new(now_ms));
    config.enabled = vec![];
    let cluster = Cluster::start(store.clone(), config.clone());
    put_spec(&*store, "web", spec("web", "service", 2, json!({}))).await;
    put_spec(&*store, "old", spec("old", "service", 1, json!({}))).await;
    eventually("both running", 15, || {
        let s = store.clone();
        async move { job_allocs(&*s, "web").await.len() == 2 && job_allocs(&*s, "old").await.len() == 1 }
    })
    .await;
    put_spec(
        &*store,
        "old",
        spec("old", "service", 1, json!({"stop": true})),
    )
    .await;
    eventually("old stopped and finished", 15, || {
        let s = store.clone();
        async move {
            let a = job_allocs(&*s, "old").await;
            let mut done = !a.is_empty();
            for x in &a {
                done &= x.desired_status == DesiredStatus::Stop
                    && alloc_status(&*s, x)
                        .await
                        .is_some_and(|st| st.client_status.is_terminal());
            }
            done
        }
    })
    .await;
    cluster.stop().await;

    let removed = force_with(store.clone(), config).await.unwrap();
    assert!(removed >= 2, "the job and its allocation went ({removed})");
    assert!(job_allocs(&*store, "old").await.is_empty());
    assert!(
        get::<serde_json::Value>(&*store, &keys::job("default", "old"))
            .await
            .is_none()
    );
    assert!(job_status(&*store, "old").await.is_none());
    assert_eq!(
        job_allocs(&*store, "web").await.len(),
        2,
        "running allocations stay"
    );
    assert!(
        get::<serde_json::Value>(&*store, &keys::job("default", "web"))
            .await
            .is_some()
    );
}
