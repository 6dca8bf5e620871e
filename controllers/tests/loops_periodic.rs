//! End to end: a periodic job launches children at its ticks, the jobs controller runs them, and
//! children beyond the history limit are collected; a leader change in the middle never launches
//! a tick twice; the parent's status shows next launch, last launch and last success.

mod loops_common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use loops_common::*;
use nomos_controllers::loops::{run_loops, LoopName};
use nomos_controllers::periodic::{PeriodicConfig, LAUNCH_LABEL, PARENT_LABEL};
use nomos_store::{EventKind, KeySelector, WatchOptions};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_launch_once_per_tick_and_old_ones_are_collected_across_a_leader_change() {
    let store = store();
    join(&*store, &node("n1", 8192), None).await;
    let _agent = Agent::start(store.clone(), &["n1"]);

    // Every creation of a child spec, by key.
    let created: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let c = created.clone();
    let s = store.clone();
    let rev = store.status().await.unwrap().revision;
    let watcher = tokio::spawn(async move {
        let mut w = s
            .watch(
                KeySelector::prefix(b"/nomos/jobs/default/report-periodic-".to_vec()),
                WatchOptions {
                    start_revision: rev + 1,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        while let Some(Ok(resp)) = w.next().await {
            for e in resp.events {
                if e.kind == EventKind::Put && e.kv.version == 1 {
                    *c.lock()
                        .unwrap()
                        .entry(e.kv.key_str().into_owned())
                        .or_default() += 1;
                }
            }
        }
    });

    let mut config = loops_config(Arc::new(now_ms));
    config.periodic = PeriodicConfig {
        history_limit: 2,
        ..Default::default()
    };
    let first = Cluster::start(store.clone(), config.clone());
    // A second server running the periodic loop only, waiting for its turn.
    let (tx2, mut rx2) = tokio::sync::watch::channel(false);
    let mut second_cfg = config.clone();
    second_cfg.identity = "second".into();
    second_cfg.enabled = vec![LoopName::Periodic];
    let mut reg = prometheus_client::registry::Registry::default();
    let second = tokio::spawn(run_loops(second_cfg, store.clone(), &mut reg, async move {
        let _ = rx2.wait_for(|v| *v).await;
    }));

    put_spec(
        &*store,
        "report",
        spec(
            "report",
            "batch",
            1,
            json!({"periodic": {"crons": ["* * * * * * *"], "prohibit_overlap": false}}),
        ),
    )
    .await;
    eventually("three children launched", 20, || {
        let c = created.clone();
        async move { c.lock().unwrap().len() >= 3 }
    })
    .await;

    // The first server is killed (no clean shutdown, its leases just expire); the second takes
    // over within the election TTL.
    drop(first);
    let launched_before = created.lock().unwrap().len();
    eventually("launches continue under the new leader", 20, || {
        let c = created.clone();
        async move { c.lock().unwrap().len() >= launched_before + 3 }
    })
    .await;
    // A jobs controller again, so the newest children run and finish.
    let jobs_only = Cluster::start(store.clone(), {
        let mut c = config.clone();
        c.enabled = vec![];
        c
    });
    eventually(
        "children run, finish, and the oldest are collected down to the history limit",
        30,
        || {
            let s = store.clone();
            let c = created.clone();
            async move {
                let children: Vec<(String, nomos_api::Job)> =
                    list(&*s, "/nomos/jobs/default/report-periodic-").await;
                let mut finished = 0;
                for (_, j) in &children {
                    if job_status(&*s, &j.id)
                        .await
                        .is_some_and(|st| st.status == "dead")
                    {
                        finished += 1;
                    }
                }
                let launched = c.lock().unwrap().len();
                (1..=2).contains(&finished) && children.len() + 3 <= launched
            }
        },
    )
    .await;
    let counts = created.lock().unwrap().clone();
    assert!(
        counts.values().all(|n| *n == 1),
        "a child was created twice: {counts:?}"
    );
    let children: Vec<(String, nomos_api::Job)> =
        list(&*store, "/nomos/jobs/default/report-periodic-").await;
    assert!(
        children.len() < counts.len(),
        "old children were collected ({} kept of {})",
        children.len(),
        counts.len()
    );
    for (_, j) in &children {
        assert_eq!(
            j.labels.get(PARENT_LABEL).map(String::as_str),
            Some("report")
        );
        assert!(j.labels.contains_key(LAUNCH_LABEL));
        assert!(j.periodic.is_none());
    }
    eventually("parent status shows the schedule", 15, || {
        let s = store.clone();
        async move {
            job_status(&*s, "report")
                .await
                .and_then(|st| st.periodic)
                .is_some_and(|p| {
                    p.next_launch_ms.is_some()
                        && p.last_launch_ms.is_some()
                        && p.last_success_ms.is_some()
                })
        }
    })
    .await;

    let _ = tx2.send(true);
    second.await.unwrap().unwrap();
    jobs_only.stop().await;
    watcher.abort();
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_launches_one_child_now_and_refuses_a_second_in_the_same_second() {
    let store = store();
    let mut config = loops_config(Arc::new(now_ms));
    config.enabled = vec![];
    let cluster = Cluster::start(store.clone(), config);
    // A yearly schedule: nothing launches on its own during the test.
    put_spec(
        &*store,
        "report",
        spec(
            "report",
            "batch",
            1,
            json!({"periodic": {"crons": ["0 0 1 1 *"]}}),
        ),
    )
    .await;
    eventually("the parent is accepted", 15, || {
        let s = store.clone();
        async move {
            !list::<nomos_api::Job>(&*s, "/nomos/jobversions/default/report/")
                .await
                .is_empty()
        }
    })
    .await;
    let now = 1_700_000_000_123;
    let id = nomos_controllers::periodic::run::force(&*store, "default", "report", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(id, "report-periodic-1700000000");
    let child: nomos_api::Job = get(&*store, &nomos_store::keys::job("default", &id))
        .await
        .unwrap();
    assert_eq!(child.name, "report/periodic-1700000000");
    let again = nomos_controllers::periodic::run::force(&*store, "default", "report", now + 500)
        .await
        .unwrap();
    assert!(again.is_err(), "{again:?}");
    let missing = nomos_controllers::periodic::run::force(&*store, "default", "nope", now)
        .await
        .unwrap();
    assert!(missing.is_err());
    cluster.stop().await;
}
