//! End to end: the system loop against the embedded store with the jobs controller and a
//! simulated agent. A node that joins gets its system allocation; an ineligible node loses it;
//! each placement names the evaluation its pass recorded.

mod loops_common;

use loops_common::*;
use nomos_api::{ClientStatus, DesiredStatus, NodeSpec};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_node_gets_its_system_allocation_and_an_ineligible_one_loses_it() {
    let store = store();
    join(&*store, &node("n1", 4096), None).await;
    join(&*store, &node("n2", 4096), None).await;
    let _agent = Agent::start(store.clone(), &["n1", "n2", "n3"]);
    let cluster = Cluster::start(store.clone(), loops_config(std::sync::Arc::new(now_ms)));
    put_spec(&*store, "agentd", spec("agentd", "system", 1, json!({}))).await;

    let live = |store: std::sync::Arc<dyn nomos_store::Store>| async move {
        let mut nodes: Vec<String> = job_allocs(&*store, "agentd")
            .await
            .into_iter()
            .filter(|a| a.desired_status == DesiredStatus::Run)
            .map(|a| a.node)
            .collect();
        nodes.sort();
        nodes
    };
    eventually("one allocation per node", 15, || {
        let s = store.clone();
        async move { live(s).await == ["n1", "n2"] }
    })
    .await;

    // Each placement names the evaluation that recorded its pass, and that evaluation lists it.
    for a in job_allocs(&*store, "agentd").await {
        let key = nomos_store::keys::eval("default", &a.eval_id);
        let e: nomos_api::eval::Evaluation = get(&*store, &key)
            .await
            .unwrap_or_else(|| panic!("{} names no evaluation: {:?}", a.id, a.eval_id));
        assert_eq!((e.status.as_str(), e.kind.as_str()), ("complete", "system"));
        assert_eq!(e.job_id, "agentd");
        assert!(
            e.placed_allocs.unwrap_or_default().contains(&a.id),
            "{}",
            a.id
        );
    }

    join(&*store, &node("n3", 4096), None).await;
    eventually("the new node gets its allocation", 15, || {
        let s = store.clone();
        async move { live(s).await == ["n1", "n2", "n3"] }
    })
    .await;

    set_node_spec(
        &*store,
        "n2",
        &NodeSpec {
            eligible: Some(false),
            drain: None,
        },
    )
    .await;
    eventually("the ineligible node loses it", 15, || {
        let s = store.clone();
        async move { live(s).await == ["n1", "n3"] }
    })
    .await;
    eventually("status shows it running", 15, || {
        let s = store.clone();
        async move {
            job_status(&*s, "agentd")
                .await
                .is_some_and(|st| st.status == "running" && st.summary["g"].running >= 2)
        }
    })
    .await;
    // Never two live allocations on one node.
    let all = job_allocs(&*store, "agentd").await;
    for n in ["n1", "n3"] {
        assert_eq!(
            all.iter()
                .filter(|a| a.node == n && a.desired_status == DesiredStatus::Run)
                .count(),
            1
        );
    }
    let stopped = all.iter().find(|a| a.node == "n2").unwrap().clone();
    assert_eq!(stopped.desired_status, DesiredStatus::Stop);
    eventually("the agent reports it stopped", 15, || {
        let s = store.clone();
        let a = stopped.clone();
        async move {
            alloc_status(&*s, &a)
                .await
                .is_some_and(|st| st.client_status == ClientStatus::Complete)
        }
    })
    .await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_too_small_for_the_system_job_says_why_in_the_status() {
    let store = store();
    join(&*store, &node("big", 4096), None).await;
    join(&*store, &node("tiny", 32), None).await;
    let _agent = Agent::start(store.clone(), &["big", "tiny"]);
    let cluster = Cluster::start(store.clone(), loops_config(std::sync::Arc::new(now_ms)));
    put_spec(&*store, "agentd", spec("agentd", "system", 1, json!({}))).await;
    eventually("placement failure reported", 15, || {
        let s = store.clone();
        async move {
            job_status(&*s, "agentd")
                .await
                .and_then(|st| st.placement_failures.get("g").cloned())
                .is_some_and(|f| f.contains("tiny (exhausted memory)"))
        }
    })
    .await;
    assert_eq!(job_allocs(&*store, "agentd").await.len(), 1);
    cluster.stop().await;
}
