//! The jobs controller against the embedded store: versions, placements, status, stop, purge,
//! invalid specs, blocked placements, concurrent writers, and kill points.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use nomos_api::{AllocStatus, Allocation, ClientStatus, DesiredStatus, JobStatus, Node};
use nomos_store::embedded::EmbeddedStore;
use nomos_store::{keys, KeySelector, PutOptions, RangeOptions, Store};
use serde_json::json;

use super::*;

pub(crate) fn node(name: &str, cpu: u32, mem: u32) -> Node {
    nomos_api::build::node(name).cpu(cpu).memory(mem).build()
}

pub(crate) async fn add_node(store: &dyn Store, n: &Node) {
    store
        .put(
            keys::node(&n.name).into_bytes(),
            serde_json::to_vec(n).unwrap(),
            PutOptions::default(),
        )
        .await
        .unwrap();
    store
        .put(
            keys::heartbeat(&n.name).into_bytes(),
            b"{}".to_vec(),
            PutOptions::default(),
        )
        .await
        .unwrap();
}

pub(crate) fn spec(name: &str, count: u32, cpu: u32, extra: serde_json::Value) -> Vec<u8> {
    let mut v = json!({
        "id": name,
        "namespace": "default",
        "datacenters": ["dc1"],
        "type": "service",
        "groups": [{
            "name": "g",
            "count": count,
            "tasks": [{"name": "t", "driver": "raw_exec", "config": {"command": "/bin/true"},
                       "resources": {"cpu": cpu, "memory_mb": 32}}]
        }]
    });
    if let (Some(obj), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in extra {
            obj.insert(k.clone(), x.clone());
        }
    }
    serde_json::to_vec(&v).unwrap()
}

pub(crate) async fn put_spec(store: &dyn Store, name: &str, value: Vec<u8>) {
    store
        .put(
            keys::job("default", name).into_bytes(),
            value,
            PutOptions::default(),
        )
        .await
        .unwrap();
}

pub(crate) async fn allocs(store: &dyn Store) -> Vec<Allocation> {
    let r = store
        .range(
            KeySelector::prefix(b"/nomos/allocs/".to_vec()),
            RangeOptions::default(),
        )
        .await
        .unwrap();
    r.kvs
        .iter()
        .map(|kv| serde_json::from_slice(&kv.value).unwrap())
        .collect()
}

pub(crate) async fn running_allocs(store: &dyn Store, job: &str) -> Vec<Allocation> {
    allocs(store)
        .await
        .into_iter()
        .filter(|a| a.job_id == job && a.desired_status == DesiredStatus::Run)
        .collect()
}

async fn status(store: &dyn Store, job: &str) -> Option<JobStatus> {
    let r = store
        .range(
            KeySelector::key(keys::job_status("default", job).into_bytes()),
            RangeOptions::default(),
        )
        .await
        .unwrap();
    r.kvs
        .first()
        .map(|kv| serde_json::from_slice(&kv.value).unwrap())
}

async fn versions(store: &dyn Store, job: &str) -> usize {
    let r = store
        .range(
            KeySelector::prefix(keys::job_versions_prefix("default", job).into_bytes()),
            RangeOptions::default(),
        )
        .await
        .unwrap();
    r.kvs.len()
}

pub(crate) async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..1500 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: not reached within 15s");
}

pub(crate) struct Controller {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ControllerError>>,
}

impl Controller {
    pub(crate) fn start(store: Arc<dyn Store>) -> Self {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let cfg = JobsConfig {
            resync: Duration::from_secs(1),
            ..Default::default()
        };
        let task = tokio::spawn(run(store, cfg, None, None, async move {
            let _ = rx.await;
        }));
        Controller {
            stop: Some(tx),
            task,
        }
    }

    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await.unwrap().unwrap();
    }

    /// Drops the controller at whatever await point it is at.
    pub(crate) async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

fn store() -> Arc<dyn Store> {
    Arc::new(EmbeddedStore::in_memory())
}

fn assert_no_duplicates(allocs: &[Allocation], job: &str, count: u32) {
    let live: Vec<&Allocation> = allocs
        .iter()
        .filter(|a| a.job_id == job && a.desired_status == DesiredStatus::Run)
        .collect();
    let mut idx: Vec<u32> = live.iter().map(|a| a.index).collect();
    idx.sort();
    assert_eq!(
        idx,
        (0..count).collect::<Vec<_>>(),
        "exactly one live allocation per index of {job}"
    );
}

#[tokio::test]
async fn a_new_spec_becomes_version_0_and_is_placed_with_a_status() {
    let s = store();
    for i in 0..3 {
        add_node(&*s, &node(&format!("n{i}"), 4000, 4096)).await;
    }
    put_spec(&*s, "web", spec("web", 3, 100, json!({}))).await;
    let c = Controller::start(s.clone());
    eventually("3 allocations", || async {
        running_allocs(&*s, "web").await.len() == 3
    })
    .await;
    eventually("status", || async {
        status(&*s, "web")
            .await
            .is_some_and(|st| st.summary["g"].starting == 3)
    })
    .await;
    assert_eq!(versions(&*s, "web").await, 1);
    let st = status(&*s, "web").await.unwrap();
    assert_eq!(st.version, 0);
    assert!(st.errors.is_empty());
    assert_no_duplicates(&allocs(&*s).await, "web", 3);
    let a = &allocs(&*s).await[0];
    assert_eq!(a.name, format!("web.g[{}]", a.index));
    c.stop().await;
}

#[tokio::test]
async fn only_a_changed_spec_makes_a_new_version_and_count_changes_follow() {
    let s = store();
    for i in 0..2 {
        add_node(&*s, &node(&format!("n{i}"), 4000, 4096)).await;
    }
    put_spec(&*s, "web", spec("web", 2, 100, json!({}))).await;
    let c = Controller::start(s.clone());
    eventually("2 allocations", || async {
        running_allocs(&*s, "web").await.len() == 2
    })
    .await;
    put_spec(&*s, "web", spec("web", 2, 100, json!({}))).await; // same content
    put_spec(&*s, "web", spec("web", 5, 100, json!({}))).await;
    eventually("5 allocations", || async {
        running_allocs(&*s, "web").await.len() == 5
    })
    .await;
    assert_eq!(versions(&*s, "web").await, 2);
    let st = status(&*s, "web").await.expect("status");
    assert_eq!(
        (st.version, st.spec_version),
        (1, Some(1)),
        "the spec is version 1"
    );
    // The same spec written again is that version still.
    put_spec(&*s, "web", spec("web", 5, 100, json!({}))).await;
    let seen = st.observed_revision;
    eventually("the rewrite observed", || async {
        status(&*s, "web")
            .await
            .is_some_and(|st| st.observed_revision > seen)
    })
    .await;
    let st = status(&*s, "web").await.expect("status");
    assert_eq!((st.spec_version, versions(&*s, "web").await), (Some(1), 2));
    put_spec(&*s, "web", spec("web", 1, 100, json!({}))).await;
    eventually("1 allocation", || async {
        running_allocs(&*s, "web").await.len() == 1
    })
    .await;
    assert_no_duplicates(&allocs(&*s).await, "web", 1);
    c.stop().await;
}

#[tokio::test]
async fn an_invalid_spec_is_reported_and_the_last_good_version_keeps_running() {
    let s = store();
    add_node(&*s, &node("n0", 4000, 4096)).await;
    put_spec(&*s, "web", spec("web", 2, 100, json!({}))).await;
    let c = Controller::start(s.clone());
    eventually("2 allocations", || async {
        running_allocs(&*s, "web").await.len() == 2
    })
    .await;
    put_spec(
        &*s,
        "web",
        br#"{"id": "web", "groups": [{"name": "g", "count": "many"}]}"#.to_vec(),
    )
    .await;
    eventually("error in status", || async {
        status(&*s, "web")
            .await
            .is_some_and(|st| !st.errors.is_empty())
    })
    .await;
    let st = status(&*s, "web").await.unwrap();
    assert!(
        st.errors
            .iter()
            .any(|e| e.contains("/nomos/jobs/default/web")),
        "{:?}",
        st.errors
    );
    assert_eq!(running_allocs(&*s, "web").await.len(), 2);
    assert_eq!(versions(&*s, "web").await, 1);
    c.stop().await;
}

#[tokio::test]
async fn a_placement_failure_is_explained_and_retried_when_a_node_joins() {
    let s = store();
    add_node(&*s, &node("small", 100, 4096)).await;
    put_spec(&*s, "big", spec("big", 1, 1000, json!({}))).await;
    let c = Controller::start(s.clone());
    eventually("failure in status", || async {
        status(&*s, "big").await.is_some_and(|st| {
            st.placement_failures
                .get("g")
                .is_some_and(|f| f == "1 exhausted cpu")
        })
    })
    .await;
    assert_eq!(status(&*s, "big").await.unwrap().summary["g"].queued, 1);
    add_node(&*s, &node("large", 4000, 4096)).await;
    eventually("placed on the new node", || async {
        running_allocs(&*s, "big")
            .await
            .first()
            .is_some_and(|a| a.node == "large")
    })
    .await;
    eventually("failure cleared", || async {
        status(&*s, "big")
            .await
            .is_some_and(|st| st.placement_failures.is_empty())
    })
    .await;
    c.stop().await;
}

#[tokio::test]
async fn stopping_stops_allocations_and_purging_removes_them_once_stopped() {
    let s = store();
    add_node(&*s, &node("n0", 4000, 4096)).await;
    put_spec(&*s, "web", spec("web", 2, 100, json!({}))).await;
    let c = Controller::start(s.clone());
    eventually("2 allocations", || async {
        running_allocs(&*s, "web").await.len() == 2
    })
    .await;
    put_spec(&*s, "web", spec("web", 2, 100, json!({"stop": true}))).await;
    eventually("all stopped", || async {
        let a = allocs(&*s).await;
        a.len() == 2 && a.iter().all(|a| a.desired_status == DesiredStatus::Stop)
    })
    .await;
    // The agent still runs them (status running): the purge must wait for it.
    for a in allocs(&*s).await {
        let st = AllocStatus {
            alloc_id: a.id.clone(),
            client_status: ClientStatus::Running,
            ..Default::default()
        };
        s.put(
            keys::alloc_status(&a.node, &a.id).into_bytes(),
            serde_json::to_vec(&st).unwrap(),
            PutOptions::default(),
        )
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.delete(
        KeySelector::key(keys::job("default", "web").into_bytes()),
        Default::default(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(allocs(&*s).await.len(), 2);
    for a in allocs(&*s).await {
        let st = AllocStatus {
            alloc_id: a.id.clone(),
            client_status: ClientStatus::Complete,
            ..Default::default()
        };
        s.put(
            keys::alloc_status(&a.node, &a.id).into_bytes(),
            serde_json::to_vec(&st).unwrap(),
            PutOptions::default(),
        )
        .await
        .unwrap();
    }
    eventually("purged", || async {
        allocs(&*s).await.is_empty()
            && versions(&*s, "web").await == 0
            && status(&*s, "web").await.is_none()
    })
    .await;
    c.stop().await;
}

#[tokio::test]
async fn failed_allocations_are_rescheduled_on_another_node() {
    let s = store();
    add_node(&*s, &node("a", 4000, 4096)).await;
    add_node(&*s, &node("b", 4000, 4096)).await;
    let extra = json!({"reschedule": {"attempts": 1, "interval_ns": 3_600_000_000_000u64, "delay_ns": 0, "delay_function": "constant", "max_delay_ns": 0, "unlimited": false}});
    put_spec(&*s, "web", spec("web", 1, 100, extra)).await;
    let c = Controller::start(s.clone());
    eventually("placed", || async {
        running_allocs(&*s, "web").await.len() == 1
    })
    .await;
    let first = running_allocs(&*s, "web").await.remove(0);
    let st = AllocStatus {
        alloc_id: first.id.clone(),
        client_status: ClientStatus::Failed,
        modified_at_ms: 1,
        ..Default::default()
    };
    s.put(
        keys::alloc_status(&first.node, &first.id).into_bytes(),
        serde_json::to_vec(&st).unwrap(),
        PutOptions::default(),
    )
    .await
    .unwrap();
    eventually("rescheduled", || async {
        running_allocs(&*s, "web")
            .await
            .iter()
            .any(|a| a.previous_alloc == first.id)
    })
    .await;
    let next = running_allocs(&*s, "web").await.remove(0);
    assert_ne!(next.node, first.node, "the failed node is avoided");
    assert_eq!(next.reschedule_attempts, 1);
    assert_eq!(
        next.reschedule_times_ms.len(),
        1,
        "the replacement records its reschedule"
    );
    c.stop().await;
}

#[tokio::test]
async fn a_new_job_is_versioned_placed_and_reported_in_one_transaction() {
    let s = store();
    for i in 0..3 {
        add_node(&*s, &node(&format!("n{i}"), 4000, 4096)).await;
    }
    put_spec(&*s, "web", spec("web", 3, 100, json!({}))).await;
    let c = Controller::start(s.clone());
    eventually("status", || async { status(&*s, "web").await.is_some() }).await;
    c.stop().await;
    let revisions = |prefix: String| {
        let s = s.clone();
        async move {
            s.range(
                KeySelector::prefix(prefix.into_bytes()),
                RangeOptions::default(),
            )
            .await
            .unwrap()
            .kvs
            .iter()
            .map(|kv| kv.create_revision)
            .collect::<Vec<i64>>()
        }
    };
    let version = revisions(keys::job_versions_prefix("default", "web")).await;
    let allocs = revisions("/nomos/allocs/".into()).await;
    let status = revisions(keys::job_status("default", "web")).await;
    assert_eq!(version.len(), 1);
    assert_eq!(allocs.len(), 3);
    assert!(
        allocs.iter().chain(&status).all(|r| *r == version[0]),
        "version {version:?}, allocations {allocs:?} and status {status:?} share one revision"
    );
}

#[tokio::test]
async fn a_rolling_update_replaces_allocations_and_records_a_deployment() {
    let s = store();
    for i in 0..2 {
        add_node(&*s, &node(&format!("n{i}"), 8000, 8192)).await;
    }
    let update = json!({"update": {"max_parallel": 1, "min_healthy_time_ns": 0, "healthy_deadline_ns": 300_000_000_000u64, "progress_deadline_ns": 600_000_000_000u64, "health_check": "task_states"}});
    put_spec(&*s, "web", spec("web", 3, 100, update.clone())).await;
    let c = Controller::start(s.clone());
    eventually("3 allocations", || async {
        running_allocs(&*s, "web").await.len() == 3
    })
    .await;
    let mut update2 = update.clone();
    update2["meta"] = json!({"rev": "2"});
    let mut v = serde_json::from_slice::<serde_json::Value>(&spec("web", 3, 100, update2)).unwrap();
    v["groups"][0]["tasks"][0]["env"] = json!({"V": "2"});
    put_spec(&*s, "web", serde_json::to_vec(&v).unwrap()).await;
    // The agent reports every allocation running and healthy as soon as it sees it.
    let agent = {
        let s = s.clone();
        tokio::spawn(async move {
            loop {
                for a in allocs(&*s).await {
                    if a.desired_status == DesiredStatus::Run {
                        let st = AllocStatus {
                            alloc_id: a.id.clone(),
                            client_status: ClientStatus::Running,
                            healthy: Some(true),
                            ..Default::default()
                        };
                        let key = keys::alloc_status(&a.node, &a.id);
                        let have = s
                            .range(
                                KeySelector::key(key.clone().into_bytes()),
                                RangeOptions::default(),
                            )
                            .await
                            .unwrap();
                        if have.kvs.is_empty() {
                            s.put(
                                key.into_bytes(),
                                serde_json::to_vec(&st).unwrap(),
                                PutOptions::default(),
                            )
                            .await
                            .unwrap();
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    eventually("all on version 1", || async {
        let r = running_allocs(&*s, "web").await;
        r.len() == 3 && r.iter().all(|a| a.job_version == 1)
    })
    .await;
    eventually("deployment successful", || async {
        let r = s
            .range(
                KeySelector::prefix(b"/nomos/deployments/default/web/".to_vec()),
                RangeOptions::default(),
            )
            .await
            .unwrap();
        r.kvs.iter().any(|kv| {
            serde_json::from_slice::<Deployment>(&kv.value)
                .unwrap()
                .status
                == nomos_api::deployment_status::SUCCESSFUL
        })
    })
    .await;
    agent.abort();
    c.stop().await;
}

#[tokio::test]
async fn two_concurrent_writers_never_over_commit_a_node() {
    let s = store();
    // 4 nodes x 1000 MHz; each allocation takes 300 MHz: at most 3 per node, 12 in all.
    for i in 0..4 {
        add_node(&*s, &node(&format!("n{i}"), 1000, 8192)).await;
    }
    let a = Controller::start(s.clone());
    let b = Controller::start(s.clone());
    for j in 0..4 {
        put_spec(
            &*s,
            &format!("j{j}"),
            spec(&format!("j{j}"), 5, 300, json!({})),
        )
        .await;
    }
    // Every look while both race must find no node over its capacity; the race ends
    // when the cluster is full (12), and a further pause must place nothing more.
    let live_checked = |s: Arc<dyn Store>| async move {
        let all = allocs(&*s).await;
        let mut per_node: HashMap<String, u32> = HashMap::new();
        for x in all
            .iter()
            .filter(|x| x.desired_status == DesiredStatus::Run)
        {
            *per_node.entry(x.node.clone()).or_default() += 300;
        }
        assert!(
            per_node.values().all(|cpu| *cpu <= 1000),
            "over-committed: {per_node:?}"
        );
        per_node.values().sum::<u32>() / 300
    };
    eventually("the cluster full", || {
        let s = s.clone();
        async move { live_checked(s).await == 12 }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.stop().await;
    b.stop().await;
    assert_eq!(
        live_checked(s.clone()).await,
        12,
        "the cluster is full and nothing is placed twice"
    );
}

/// Tiny seeded generator for the kill-point schedule.
fn lcg(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *seed >> 33
}

#[tokio::test]
async fn killed_at_random_points_the_controller_converges_without_duplicates_or_losses() {
    let s = store();
    for i in 0..6 {
        add_node(&*s, &node(&format!("n{i}"), 4000, 8192)).await;
    }
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    let mut seed = 42u64;
    for round in 0..12 {
        let job = format!("j{}", round % 3);
        let count = 1 + (lcg(&mut seed) % 12) as u32;
        counts.insert(job.clone(), count);
        put_spec(&*s, &job, spec(&job, count, 50, json!({}))).await;
        let c = Controller::start(s.clone());
        let delay = lcg(&mut seed) % 40;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        c.kill().await;
    }
    let c = Controller::start(s.clone());
    for (job, count) in &counts {
        let (job, count) = (job.clone(), *count);
        eventually("converged", || {
            let s = s.clone();
            let job = job.clone();
            async move { running_allocs(&*s, &job).await.len() as u32 == count }
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all = allocs(&*s).await;
    for (job, count) in &counts {
        assert_no_duplicates(&all, job, *count);
    }
    c.stop().await;
}

#[tokio::test]
async fn a_deposed_leader_writes_nothing() {
    let s = store();
    add_node(&*s, &node("n0", 4000, 4096)).await;
    let lease = s.lease_grant(30, 0).await.unwrap().id;
    let key = keys::election(NAME);
    let put = PutOptions {
        lease,
        ..Default::default()
    };
    s.put(key.clone().into_bytes(), b"old-leader".to_vec(), put)
        .await
        .unwrap();
    s.lease_revoke(lease).await.unwrap();
    put_spec(&*s, "web", spec("web", 2, 100, json!({}))).await;

    let (running, tasks, stop) = start(
        s.clone(),
        JobsConfig::default(),
        None,
        Some(Leadership { key, lease }),
    );
    for (_, h) in &running.reflectors {
        h.ready().await;
    }
    let r = running
        .ctx
        .reconcile(("default".to_string(), "web".to_string()))
        .await;
    assert!(r.is_err(), "the fenced writes must fail: {r:?}");
    assert!(allocs(&*s).await.is_empty());
    assert_eq!(versions(&*s, "web").await, 0);
    let _ = stop.send(true);
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn commits_to_disjoint_nodes_overlap_and_commits_to_one_node_take_turns() {
    use futures::FutureExt;
    let (running, tasks, stop) = start(store(), JobsConfig::default(), None, None);
    let ctx = running.ctx.clone();
    let first = ctx.claim(&["a", "b"]).await;
    // Other nodes: claimed at once.
    let other = ctx
        .claim(&["c"])
        .now_or_never()
        .expect("a disjoint claim does not wait");
    // A shared node: waits until the first commit releases it.
    let mut shared = Box::pin(ctx.claim(&["b", "d"]));
    assert!(shared.as_mut().now_or_never().is_none(), "b is in flight");
    drop(other);
    assert!(
        shared.as_mut().now_or_never().is_none(),
        "b is still in flight"
    );
    drop(first);
    let shared = shared.now_or_never().expect("b was released");
    assert!(ctx.claim(&["a"]).now_or_never().is_some(), "a was released");
    assert!(ctx.claim(&["d"]).now_or_never().is_none(), "d is held");
    drop(shared);
    let _ = stop.send(true);
    for t in tasks {
        let _ = t.await;
    }
}

pub(crate) async fn evals(store: &dyn Store) -> Vec<nomos_api::eval::Evaluation> {
    let r = store
        .range(
            KeySelector::prefix(keys::EVALS_PREFIX.as_bytes().to_vec()),
            RangeOptions::default(),
        )
        .await
        .unwrap();
    r.kvs
        .iter()
        .map(|kv| serde_json::from_slice(&kv.value).unwrap())
        .collect()
}

#[tokio::test]
async fn reconciles_record_evaluations_and_an_idle_job_records_none() {
    use nomos_api::eval::{eval_status, triggers, Evaluation};
    let s = store();
    add_node(&*s, &node("n1", 4000, 4096)).await;
    put_spec(&*s, "web", spec("web", 2, 100, json!({}))).await;
    let c = Controller::start(s.clone());
    eventually("the placement's evaluation", || async {
        evals(&*s).await.len() == 1
    })
    .await;
    let first = &evals(&*s).await[0];
    assert_eq!(first.status, eval_status::COMPLETE);
    assert_eq!(first.triggered_by, triggers::JOB_REGISTER);
    assert_eq!(first.placed_allocs.as_ref().map(Vec::len), Some(2));

    // A pending evaluation written by the API is completed by the next reconcile.
    let pending = Evaluation {
        id: "p1".into(),
        namespace: "default".into(),
        job_id: "web".into(),
        triggered_by: triggers::NODE_UPDATE.into(),
        status: eval_status::PENDING.into(),
        ..Default::default()
    };
    s.put(
        keys::eval("default", "p1").into_bytes(),
        serde_json::to_vec(&pending).unwrap(),
        PutOptions::default(),
    )
    .await
    .unwrap();
    eventually("the pending evaluation completes", || async {
        evals(&*s)
            .await
            .iter()
            .any(|e| e.id == "p1" && e.status == eval_status::COMPLETE)
    })
    .await;

    // Resyncs (every second here) that change nothing write no evaluation.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(evals(&*s).await.len(), 2, "{:?}", evals(&*s).await);
    c.stop().await;
}

#[tokio::test]
async fn more_pending_evaluations_than_a_transaction_holds_all_complete() {
    use nomos_api::eval::{eval_status, Evaluation};
    let s = store();
    add_node(&*s, &node("n1", 4000, 4096)).await;
    for i in 0..130 {
        let e = Evaluation {
            id: format!("p{i:03}"),
            namespace: "default".into(),
            job_id: "web".into(),
            status: eval_status::PENDING.into(),
            ..Default::default()
        };
        s.put(
            keys::eval("default", &e.id).into_bytes(),
            serde_json::to_vec(&e).unwrap(),
            PutOptions::default(),
        )
        .await
        .unwrap();
    }
    put_spec(&*s, "web", spec("web", 100, 10, json!({}))).await;
    let c = Controller::start(s.clone());
    eventually("every pending evaluation completes", || async {
        let all = evals(&*s).await;
        all.len() >= 130 && all.iter().all(|e| e.status == eval_status::COMPLETE)
    })
    .await;
    assert_eq!(running_allocs(&*s, "web").await.len(), 100);
    c.stop().await;
}
