//! End to end: the node-lifecycle loop with the jobs controller and a simulated agent. A node
//! whose heartbeat lease lapses is disconnected at once with its allocations unknown, and nothing
//! is replaced before `lost_after`; after it the allocations are lost and replaced, and when the
//! node returns the originals are kept and the replacements stopped. A flapping node causes no
//! replacement at all.

mod loops_common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use loops_common::*;
use nomos_api::{ClientStatus, DesiredStatus, NodeStatus};
use nomos_controllers::nodes::{node_status_key, NodeLifecycle};
use nomos_store::Store;
use serde_json::json;

/// Keeps a node's heartbeat key on a 1-second lease, like an agent; `beating` off lets it lapse.
struct Heart {
    beating: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Heart {
    fn start(store: Arc<dyn Store>, name: &'static str) -> Self {
        let beating = Arc::new(AtomicBool::new(true));
        let b = beating.clone();
        let task = tokio::spawn(async move {
            let mut lease = 0i64;
            loop {
                if b.load(Ordering::SeqCst)
                    && (lease == 0 || store.lease_keep_alive(lease).await.is_err())
                {
                    lease = heartbeat(&*store, name, Some(1)).await;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Heart { beating, task }
    }
}

impl Drop for Heart {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn lifecycle(store: &dyn Store, node: &str) -> Option<NodeLifecycle> {
    get(store, &node_status_key(node)).await
}

async fn client_statuses(store: &dyn Store, node: &str) -> Vec<ClientStatus> {
    let mut out = Vec::new();
    for a in allocs(store)
        .await
        .into_iter()
        .filter(|a| a.node == node && a.desired_status == DesiredStatus::Run)
    {
        out.push(
            alloc_status(store, &a)
                .await
                .map(|s| s.client_status)
                .unwrap_or_default(),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_lease_disconnects_at_once_and_replaces_only_after_lost_after() {
    let store = store();
    let clock = FakeClock::new();
    for n in ["n1", "n2"] {
        join(&*store, &node(n, 4096), None).await;
    }
    // n0 is the node that will go away; it is the only one with room at first.
    store
        .put(
            nomos_store::keys::node("n0").into_bytes(),
            serde_json::to_vec(&node("n0", 4096)).unwrap(),
            Default::default(),
        )
        .await
        .unwrap();
    let heart = Heart::start(store.clone(), "n0");
    let agent = Agent::start(store.clone(), &["n0", "n1", "n2"]);
    let cluster = Cluster::start(store.clone(), loops_config(clock.clock()));
    put_spec(
        &*store,
        "web",
        spec("web", "service", 2, json!({"constraints": [{"attribute": "${node.unique.name}", "operator": "=", "value": "n0"}]})),
    )
    .await;
    eventually("two allocations running on n0", 15, || {
        let s = store.clone();
        async move { client_statuses(&*s, "n0").await == [ClientStatus::Running, ClientStatus::Running] }
    })
    .await;
    // Let the job run anywhere from now on, so a replacement would have somewhere to go.
    put_spec(&*store, "web", spec("web", "service", 2, json!({}))).await;
    let originals: Vec<String> = job_allocs(&*store, "web")
        .await
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(originals.len(), 2);

    // The agent on n0 goes silent: its lease lapses.
    agent.nodes.lock().unwrap().remove("n0");
    heart.beating.store(false, Ordering::SeqCst);
    eventually("n0 disconnected with its allocations unknown", 15, || {
        let s = store.clone();
        async move {
            lifecycle(&*s, "n0")
                .await
                .is_some_and(|l| l.status == NodeStatus::Disconnected)
                && client_statuses(&*s, "n0").await
                    == [ClientStatus::Unknown, ClientStatus::Unknown]
        }
    })
    .await;
    // Several loop passes later, still nothing replaced.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let now = job_allocs(&*store, "web").await;
    assert_eq!(now.len(), 2, "nothing is placed before lost_after: {now:?}");
    assert!(now.iter().all(|a| a.desired_status == DesiredStatus::Run));

    // lost_after (5 minutes by default) passes.
    clock.advance(300_000);
    eventually("lost and replaced elsewhere", 15, || {
        let s = store.clone();
        let originals = originals.clone();
        async move {
            let all = job_allocs(&*s, "web").await;
            let replacements = all
                .iter()
                .filter(|a| originals.contains(&a.previous_alloc) && a.node != "n0")
                .count();
            replacements == 2
        }
    })
    .await;
    assert_eq!(
        lifecycle(&*store, "n0").await.unwrap().status,
        NodeStatus::Down
    );

    // n0 comes back: the originals are kept, the replacements stop. (The agent resumes
    // reporting after its heartbeat: the jobs controller set the lost originals to stop when it
    // replaced them, and an agent acting on that before this loop resumes them would end them;
    // see docs/loops.md.)
    heart.beating.store(true, Ordering::SeqCst);
    eventually("originals kept, replacements stopped", 15, || {
        let s = store.clone();
        let originals = originals.clone();
        async move {
            let all = job_allocs(&*s, "web").await;
            let live: Vec<&str> = all
                .iter()
                .filter(|a| a.desired_status == DesiredStatus::Run)
                .map(|a| a.id.as_str())
                .collect();
            live.len() == 2 && originals.iter().all(|o| live.contains(&o.as_str()))
        }
    })
    .await;
    assert_eq!(
        lifecycle(&*store, "n0").await.unwrap().status,
        NodeStatus::Ready
    );
    agent.nodes.lock().unwrap().insert("n0".into());
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_node_causes_no_replacement_and_no_status_change() {
    let store = store();
    for n in ["n0", "n1"] {
        join(&*store, &node(n, 4096), None).await;
    }
    let _agent = Agent::start(store.clone(), &["n0", "n1"]);
    let clock = FakeClock::new();
    let cluster = Cluster::start(store.clone(), loops_config(clock.clock()));
    // lost_after of 3s: each gap below is shorter.
    let group_extra = json!({"groups": [{
        "name": "g", "count": 2,
        "disconnect": {"lost_after_ns": 3_000_000_000u64},
        "constraints": [{"attribute": "${node.unique.name}", "operator": "=", "value": "n0"}],
        "tasks": [{"name": "t", "driver": "raw_exec", "config": {"command": "/bin/true"}, "resources": {"cpu": 100, "memory_mb": 64}}]
    }]});
    put_spec(&*store, "web", spec("web", "service", 2, group_extra)).await;
    eventually("running on n0", 15, || {
        let s = store.clone();
        async move { client_statuses(&*s, "n0").await == [ClientStatus::Running, ClientStatus::Running] }
    })
    .await;
    let before: Vec<String> = job_allocs(&*store, "web")
        .await
        .into_iter()
        .map(|a| a.id)
        .collect();

    // Twelve cycles of 2 s without heartbeat and 0.3 s with it (times on the loops' clock, which
    // the test moves): 27.6 s in all, far beyond lost_after, but never 3 s in a row.
    for _ in 0..12 {
        heartbeat_lost(&*store, "n0").await;
        eventually("disconnected, allocations unknown", 15, || {
            let s = store.clone();
            async move {
                lifecycle(&*s, "n0")
                    .await
                    .is_some_and(|l| l.status == NodeStatus::Disconnected)
                    && client_statuses(&*s, "n0").await
                        == [ClientStatus::Unknown, ClientStatus::Unknown]
            }
        })
        .await;
        clock.advance(2_000);
        tokio::time::sleep(Duration::from_millis(100)).await;
        heartbeat(&*store, "n0", None).await;
        eventually("ready, allocations running again", 15, || {
            let s = store.clone();
            async move {
                lifecycle(&*s, "n0")
                    .await
                    .is_some_and(|l| l.status == NodeStatus::Ready)
                    && client_statuses(&*s, "n0").await
                        == [ClientStatus::Running, ClientStatus::Running]
            }
        })
        .await;
        clock.advance(300);
    }
    eventually("ready again with every allocation running", 15, || {
        let s = store.clone();
        async move {
            lifecycle(&*s, "n0")
                .await
                .is_some_and(|l| l.status == NodeStatus::Ready)
                && client_statuses(&*s, "n0").await
                    == [ClientStatus::Running, ClientStatus::Running]
        }
    })
    .await;
    let after = job_allocs(&*store, "web").await;
    assert_eq!(
        after.len(),
        before.len(),
        "no replacement was placed: {after:?}"
    );
    assert!(after
        .iter()
        .all(|a| before.contains(&a.id) && a.desired_status == DesiredStatus::Run));
    cluster.stop().await;
}
