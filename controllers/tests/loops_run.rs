//! `nomos_controllers::run` (what `nctl dev` and `nctl server` start) runs the loops beside the
//! jobs controller: a system job is placed on every node, and the loops' election keys exist.

mod loops_common;

use loops_common::*;
use nomos_api::DesiredStatus;
use nomos_controllers::{run, ControllersConfig};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_starts_the_loops_beside_the_jobs_controller() {
    let store = store();
    join(&*store, &node("n1", 4096), None).await;
    join(&*store, &node("n2", 4096), None).await;
    let mut registry = prometheus_client::registry::Registry::default();
    let config = ControllersConfig {
        identity: "test".into(),
        election_ttl_secs: 2,
        ..Default::default()
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run(config, store.clone(), &mut registry, async move {
        let _ = rx.await;
    }));
    put_spec(&*store, "agentd", spec("agentd", "system", 1, json!({}))).await;
    eventually("the system loop placed agentd on both nodes", 20, || {
        let s = store.clone();
        async move {
            job_allocs(&*s, "agentd")
                .await
                .iter()
                .filter(|a| a.desired_status == DesiredStatus::Run)
                .count()
                == 2
        }
    })
    .await;
    for name in ["system", "periodic", "drain", "nodes", "gc"] {
        let raw = store
            .range(
                nomos_store::KeySelector::key(nomos_store::keys::election(name).into_bytes()),
                Default::default(),
            )
            .await
            .unwrap();
        assert!(!raw.kvs.is_empty(), "the {name} loop has a leader");
    }
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(
        text.contains("nomos_loops_leader{loop=\"system\"} 1"),
        "{text}"
    );
    let _ = tx.send(());
    task.await.unwrap().unwrap();
}
