//! End to end: draining a node with the jobs controller, the loops and a simulated agent. Service
//! allocations move elsewhere and their originals stop, the system allocation stops last, and the
//! drain reports `complete`; a drain whose allocations have nowhere to go reports it and waits
//! until its deadline, which stops what remains.

mod loops_common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use loops_common::*;
use nomos_api::{Allocation, DesiredStatus, DrainSpec, DrainState, NodeSpec};
use nomos_controllers::drain::{drain_status_key, DrainStatus};
use nomos_store::{KeySelector, Store, WatchOptions};
use serde_json::json;

async fn drain_status(store: &dyn Store, node: &str) -> Option<DrainStatus> {
    get(store, &drain_status_key(node)).await
}

/// Records the revision at which each allocation was first desired stopped.
async fn watch_stops(
    store: Arc<dyn Store>,
) -> (
    Arc<Mutex<HashMap<String, i64>>>,
    tokio::task::JoinHandle<()>,
) {
    let stops: Arc<Mutex<HashMap<String, i64>>> = Arc::default();
    let s = stops.clone();
    let from = store.status().await.unwrap().revision + 1;
    let task = tokio::spawn(async move {
        let mut w = store
            .watch(
                KeySelector::prefix(b"/nomos/allocs/".to_vec()),
                WatchOptions {
                    start_revision: from,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        while let Some(Ok(resp)) = w.next().await {
            for e in resp.events {
                if let Ok(a) = serde_json::from_slice::<Allocation>(&e.kv.value) {
                    if a.desired_status == DesiredStatus::Stop {
                        s.lock().unwrap().entry(a.id).or_insert(e.kv.mod_revision);
                    }
                }
            }
        }
    });
    (stops, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_migrates_services_then_stops_the_system_allocation_last() {
    drain_scenario(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_interrupted_by_a_server_restart_finishes_the_same_way() {
    drain_scenario(true).await;
}

/// A `migrate` block whose replacements count as healthy after 1s running (Nomad's default is
/// 10s), so the drains here finish quickly.
fn quick_migrate() -> serde_json::Value {
    json!({"max_parallel": 1, "health_check": "checks",
        "min_healthy_time_ns": 1_000_000_000u64, "healthy_deadline_ns": 300_000_000_000u64})
}

async fn drain_scenario(restart_mid_drain: bool) {
    let store = store();
    for n in ["n1", "n2", "n3"] {
        join(&*store, &node(n, 4096), None).await;
    }
    let _agent = Agent::start(store.clone(), &["n1", "n2", "n3"]);
    let mut cluster = Cluster::start(store.clone(), loops_config(Arc::new(now_ms)));
    put_spec(
        &*store,
        "web",
        spec(
            "web",
            "service",
            2,
            json!({"constraints": [{"operator": "distinct_hosts", "value": "true"}],
                   "migrate": quick_migrate()}),
        ),
    )
    .await;
    put_spec(&*store, "agentd", spec("agentd", "system", 1, json!({}))).await;
    eventually("web and agentd running", 15, || {
        let s = store.clone();
        async move {
            let live = |j: &str, all: &[Allocation]| {
                all.iter()
                    .filter(|a| a.job_id == j && a.desired_status == DesiredStatus::Run)
                    .count()
            };
            let all = allocs(&*s).await;
            live("web", &all) == 2 && live("agentd", &all) == 3
        }
    })
    .await;
    let victim = job_allocs(&*store, "web").await[0].node.clone();
    let originals: Vec<Allocation> = allocs(&*store)
        .await
        .into_iter()
        .filter(|a| a.node == victim)
        .collect();
    let (stops, watcher) = watch_stops(store.clone()).await;

    set_node_spec(
        &*store,
        &victim,
        &NodeSpec {
            eligible: Some(false),
            drain: Some(DrainSpec {
                deadline_ms: 0,
                ignore_system_jobs: false,
                started_at_ms: now_ms(),
            }),
        },
    )
    .await;
    if restart_mid_drain {
        // Kill the server (controllers and loops) right after the drain was requested and start
        // a new one: it re-reads everything and carries on.
        drop(cluster);
        cluster = Cluster::start(store.clone(), loops_config(Arc::new(now_ms)));
    }
    eventually("drain complete", 45, || {
        let s = store.clone();
        let v = victim.clone();
        async move {
            drain_status(&*s, &v)
                .await
                .is_some_and(|d| d.state == DrainState::Complete && d.remaining == 0)
        }
    })
    .await;
    eventually("the service is back to its count elsewhere", 15, || {
        let s = store.clone();
        let v = victim.clone();
        async move {
            let live: Vec<Allocation> = job_allocs(&*s, "web")
                .await
                .into_iter()
                .filter(|a| a.desired_status == DesiredStatus::Run)
                .collect();
            live.len() == 2 && live.iter().all(|a| a.node != v)
        }
    })
    .await;

    let all = allocs(&*store).await;
    let web_live: Vec<&Allocation> = all
        .iter()
        .filter(|a| a.job_id == "web" && a.desired_status == DesiredStatus::Run)
        .collect();
    assert_eq!(web_live.len(), 2, "the service kept its count");
    assert!(
        web_live.iter().all(|a| a.node != victim),
        "nothing of web runs on the drained node"
    );
    assert!(all
        .iter()
        .filter(|a| a.node == victim)
        .all(|a| a.desired_status == DesiredStatus::Stop));
    let sys_id = originals
        .iter()
        .find(|a| a.job_id == "agentd")
        .map(|a| a.id.clone());
    eventually("the watcher saw every stop", 15, || {
        let st = stops.clone();
        let sys_id = sys_id.clone();
        async move { sys_id.is_some_and(|id| st.lock().unwrap().contains_key(&id)) }
    })
    .await;
    let stops = stops.lock().unwrap().clone();
    let sys = originals
        .iter()
        .find(|a| a.job_id == "agentd")
        .expect("a system allocation on the victim");
    let web = originals
        .iter()
        .find(|a| a.job_id == "web")
        .expect("a web allocation on the victim");
    assert!(
        stops[&sys.id] > stops[&web.id],
        "the system allocation stops last"
    );
    watcher.abort();
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_with_nowhere_to_go_waits_for_its_deadline() {
    let store = store();
    let clock = FakeClock::new();
    for n in ["n1", "n2"] {
        join(&*store, &node(n, 4096), None).await;
    }
    let _agent = Agent::start(store.clone(), &["n1", "n2"]);
    let cluster = Cluster::start(store.clone(), loops_config(clock.clock()));
    put_spec(
        &*store,
        "web",
        spec(
            "web",
            "service",
            2,
            json!({"constraints": [{"operator": "distinct_hosts", "value": "true"}]}),
        ),
    )
    .await;
    eventually("web running on both nodes", 15, || {
        let s = store.clone();
        async move {
            job_allocs(&*s, "web")
                .await
                .iter()
                .filter(|a| a.desired_status == DesiredStatus::Run)
                .count()
                == 2
        }
    })
    .await;
    let deadline = clock.0.load(std::sync::atomic::Ordering::SeqCst) + 60_000;
    set_node_spec(
        &*store,
        "n1",
        &NodeSpec {
            eligible: Some(false),
            drain: Some(DrainSpec {
                deadline_ms: deadline,
                ignore_system_jobs: false,
                started_at_ms: now_ms(),
            }),
        },
    )
    .await;
    let on_n1 = |s: Arc<dyn Store>| async move {
        job_allocs(&*s, "web")
            .await
            .into_iter()
            .filter(|a| a.node == "n1" && a.desired_status == DesiredStatus::Run)
            .count()
    };
    // distinct_hosts leaves the allocation on n1 nowhere to go: reported, and it keeps running.
    eventually("the drain reports what has nowhere to go", 20, || {
        let s = store.clone();
        async move {
            drain_status(&*s, "n1").await.is_some_and(|d| {
                d.state == DrainState::Blocked && d.nowhere_to_go.len() == 1 && d.remaining == 1
            })
        }
    })
    .await;
    assert_eq!(on_n1(store.clone()).await, 1, "it waits for the deadline");
    clock.advance(61_000);
    eventually(
        "at the deadline nothing runs on n1 and the drain is complete",
        20,
        || {
            let s = store.clone();
            async move {
                on_n1(s.clone()).await == 0
                    && drain_status(&*s, "n1")
                        .await
                        .is_some_and(|d| d.state == DrainState::Complete)
            }
        },
    )
    .await;
    cluster.stop().await;
}

/// Two copies of `web` (with `extra` job fields) running on n1, then n2 joins with
/// `n2_memory_mb` and n1 is drained (no deadline). Returns the originals' ids.
async fn web_on_n1_then_drain_it(
    store: &Arc<dyn Store>,
    extra: serde_json::Value,
    n2_memory_mb: u32,
) -> Vec<String> {
    put_spec(&**store, "web", spec("web", "service", 2, extra)).await;
    eventually("web running on n1", 15, || {
        let s = store.clone();
        async move {
            allocs(&*s)
                .await
                .iter()
                .filter(|a| a.node == "n1" && a.desired_status == DesiredStatus::Run)
                .count()
                == 2
        }
    })
    .await;
    let originals = job_allocs(&**store, "web")
        .await
        .into_iter()
        .map(|a| a.id)
        .collect();
    join(&**store, &node("n2", n2_memory_mb), None).await;
    set_node_spec(
        &**store,
        "n1",
        &NodeSpec {
            eligible: Some(false),
            drain: Some(DrainSpec {
                deadline_ms: 0,
                ignore_system_jobs: false,
                started_at_ms: now_ms(),
            }),
        },
    )
    .await;
    originals
}

/// Originals stop only once their replacement is healthy: while nothing reports on the new
/// node, its one replacement stays unhealthy, `migrate.max_parallel` (1) holds and every original
/// keeps running; once the node reports, the drain completes with each original replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn originals_stop_only_once_their_replacement_is_healthy() {
    let store = store();
    join(&*store, &node("n1", 4096), None).await;
    let agent = Agent::start(store.clone(), &["n1"]);
    let cluster = Cluster::start(store.clone(), loops_config(Arc::new(now_ms)));
    let migrate = json!({"max_parallel": 1, "health_check": "checks",
        "min_healthy_time_ns": 0, "healthy_deadline_ns": 300_000_000_000u64});
    // n2 joins, but nothing reports for it yet.
    let originals = web_on_n1_then_drain_it(&store, json!({"migrate": migrate}), 4096).await;
    eventually("one replacement placed on n2", 15, || {
        let s = store.clone();
        async move { allocs(&*s).await.iter().filter(|a| a.node == "n2").count() == 1 }
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let all = allocs(&*store).await;
    assert_eq!(
        all.iter().filter(|a| a.node == "n2").count(),
        1,
        "max_parallel holds while the replacement is not healthy"
    );
    assert!(
        all.iter()
            .filter(|a| a.node == "n1")
            .all(|a| a.desired_status == DesiredStatus::Run),
        "no original stops before its replacement is healthy: {all:?}"
    );
    let status = drain_status(&*store, "n1").await.expect("drain status");
    assert_eq!((status.state.as_str(), status.remaining), ("draining", 2));

    // n2 reports its allocations running and healthy: the drain proceeds to the end.
    drop(agent);
    let _agent = Agent::start(store.clone(), &["n1", "n2"]);
    eventually("drain complete", 20, || {
        let s = store.clone();
        async move {
            drain_status(&*s, "n1")
                .await
                .is_some_and(|d| d.state == DrainState::Complete)
        }
    })
    .await;
    let all = allocs(&*store).await;
    assert!(all
        .iter()
        .filter(|a| a.node == "n1")
        .all(|a| a.desired_status == DesiredStatus::Stop));
    let moved: Vec<&Allocation> = all
        .iter()
        .filter(|a| a.node == "n2" && a.desired_status == DesiredStatus::Run)
        .collect();
    assert_eq!(moved.len(), 2);
    let mut prev: Vec<String> = moved.iter().map(|a| a.previous_alloc.clone()).collect();
    prev.sort();
    let mut want = originals.clone();
    want.sort();
    assert_eq!(prev, want, "each original replaced once");
    cluster.stop().await;
}

/// Cancelling a drain midway: what moved stays moved, what had nowhere to go stays where it is,
/// and the report says `cancelled`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_drain_keeps_what_moved_and_leaves_the_rest() {
    let store = store();
    join(&*store, &node("n1", 4096), None).await;
    let _agent = Agent::start(store.clone(), &["n1", "n2"]);
    let cluster = Cluster::start(store.clone(), loops_config(Arc::new(now_ms)));
    // n2 has room for one copy (64 MiB each).
    let originals = web_on_n1_then_drain_it(&store, json!({"migrate": quick_migrate()}), 100).await;
    eventually("one copy moved and the other blocked", 30, || {
        let s = store.clone();
        async move {
            drain_status(&*s, "n1")
                .await
                .is_some_and(|d| d.state == DrainState::Blocked && d.remaining == 1)
        }
    })
    .await;
    set_node_spec(
        &*store,
        "n1",
        &NodeSpec {
            eligible: Some(true),
            drain: None,
        },
    )
    .await;
    eventually("the drain reported cancelled", 15, || {
        let s = store.clone();
        async move {
            drain_status(&*s, "n1")
                .await
                .is_some_and(|d| d.state == DrainState::Cancelled)
        }
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let all = allocs(&*store).await;
    let live: Vec<&Allocation> = all
        .iter()
        .filter(|a| a.desired_status == DesiredStatus::Run)
        .collect();
    assert_eq!(live.len(), 2, "still two copies: {all:?}");
    let on_n2: Vec<&&Allocation> = live.iter().filter(|a| a.node == "n2").collect();
    assert_eq!(on_n2.len(), 1, "the moved copy stays moved: {all:?}");
    assert!(originals.contains(&on_n2[0].previous_alloc));
    let on_n1: Vec<&&Allocation> = live.iter().filter(|a| a.node == "n1").collect();
    assert_eq!(on_n1.len(), 1);
    assert!(
        originals.contains(&on_n1[0].id),
        "the copy with nowhere to go kept running where it was"
    );
    assert_ne!(on_n1[0].id, on_n2[0].previous_alloc);
    cluster.stop().await;
}
