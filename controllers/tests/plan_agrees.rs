//! `nctl plan` and the jobs controller must agree: for each case the plan of a spec is taken
//! over the store ([`plan::plan_job`]), then the spec is written and the controller reconciles
//! it once, at the same instant, and what it wrote is counted bucket by bucket (new
//! allocations by node, stops, in-place updates, failed placements) against the plan. The
//! cases include those where the server's old copies of the rules drifted: a completed batch
//! job applied unchanged, a datacenter glob with two `*`, reserved cores, and an allocation
//! whose older version asks for more than the newest.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use nomos_api::{AllocStatus, Allocation, ClientStatus, DesiredStatus, Job, JobStatus};
use nomos_controllers::jobs::{self, JobsConfig};
use nomos_controllers::plan::{self, GroupPlan};
use nomos_store::{keys, KeySelector, PutOptions, RangeOptions, Store};
use serde_json::{json, Value};

mod loops_common;

const NOW: i64 = 1_800_000_000_000;

/// A registered, heartbeating node of `cpu` MHz over `cores` cores in datacenter `dc`.
async fn add_node(store: &dyn Store, name: &str, dc: &str, cpu: u32, cores: u32, mem: u32) {
    let mut n = loops_common::node(name, mem);
    n.datacenter = dc.into();
    n.resources.cpu_mhz = cpu;
    n.resources.cores = cores;
    loops_common::join(store, &n, None).await;
}

/// A job spec as users write it to the store; `extra` overrides top-level fields, `task`
/// fields of the one task.
fn spec(id: &str, kind: &str, count: u32, extra: Value, task: Value) -> Value {
    let mut t = json!({"name": "t", "driver": "raw_exec", "config": {"command": "/bin/true"},
                       "resources": {"cpu": 100, "memory_mb": 32}});
    merge(&mut t, task);
    let mut v = json!({
        "id": id, "namespace": "default", "datacenters": ["dc1"], "type": kind,
        "groups": [{"name": "g", "count": count, "tasks": [t]}]
    });
    merge(&mut v, extra);
    v
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(a), Value::Object(b)) = (into.as_object_mut(), from) {
        for (k, v) in b {
            a.insert(k, v);
        }
    }
}

async fn put(store: &dyn Store, key: String, value: &impl serde::Serialize) {
    store
        .put(
            key.into_bytes(),
            serde_json::to_vec(value).unwrap(),
            PutOptions::default(),
        )
        .await
        .unwrap();
}

async fn allocs(store: &dyn Store) -> BTreeMap<String, Allocation> {
    loops_common::allocs(store)
        .await
        .into_iter()
        .map(|a| (a.id.clone(), a))
        .collect()
}

/// Reports every live allocation of the job as `client` (healthy when running).
async fn report(store: &dyn Store, job: &str, client: ClientStatus) {
    for a in allocs(store).await.into_values() {
        if a.job_id != job || a.desired_status != DesiredStatus::Run {
            continue;
        }
        let st = AllocStatus {
            client_status: client,
            healthy: (client == ClientStatus::Running).then_some(true),
            ..Default::default()
        };
        put(store, keys::alloc_status(&a.node, &a.id), &st).await;
    }
}

static IDS: AtomicU64 = AtomicU64::new(0);

/// One reconcile of `job` by a fresh jobs controller at `NOW`, once its caches hold what the
/// store holds.
async fn reconcile(store: &Arc<dyn Store>, job: &str) {
    let config = JobsConfig {
        clock: Arc::new(|| NOW),
        ids: Arc::new(|| format!("a-{}", IDS.fetch_add(1, Ordering::Relaxed))),
        ..Default::default()
    };
    let (running, tasks, stop) = jobs::start(store.clone(), config, None, None);
    for (kind, h) in &running.reflectors {
        let r = store
            .range(
                KeySelector::prefix(kind.prefix().as_bytes().to_vec()),
                RangeOptions::default(),
            )
            .await
            .unwrap();
        let newest = r.kvs.iter().map(|kv| kv.mod_revision).max().unwrap_or(0);
        for _ in 0..2000 {
            if h.is_ready() && h.revision() >= newest {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let jk = ("default".to_string(), job.to_string());
    running
        .ctx
        .reconcile_once(&jk)
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    let _ = stop.send(true);
    for t in tasks {
        let _ = t.await;
    }
}

/// What the controller's reconcile did, counted as a plan counts it.
#[derive(Debug, PartialEq, Eq, Default)]
struct Counted {
    new_per_group: BTreeMap<String, u32>,
    placements: BTreeMap<String, IndexMap<String, u32>>,
    stopped: BTreeMap<String, u32>,
    inplace: BTreeMap<String, u32>,
    failed: BTreeMap<String, bool>,
}

fn count_plan(p: &plan::JobPlan) -> Counted {
    let mut c = Counted::default();
    for (name, g) in &p.groups {
        let GroupPlan {
            place,
            canary,
            inplace,
            destructive,
            migrate,
            reschedule,
            stop,
            failed,
            ..
        } = g;
        let new = place + canary + destructive + migrate + reschedule;
        c.new_per_group.insert(name.clone(), new);
        let mut on = g.placements.clone();
        on.sort_keys();
        c.placements.insert(name.clone(), on);
        c.stopped
            .insert(name.clone(), stop + destructive + migrate + reschedule);
        c.inplace.insert(name.clone(), *inplace);
        c.failed.insert(name.clone(), *failed > 0);
    }
    c
}

fn count_reconcile(
    before: &BTreeMap<String, Allocation>,
    after: &BTreeMap<String, Allocation>,
    status: Option<&JobStatus>,
    job: &str,
    groups: &[String],
) -> Counted {
    let mut c = Counted::default();
    for g in groups {
        c.new_per_group.insert(g.clone(), 0);
        c.placements.insert(g.clone(), IndexMap::new());
        c.stopped.insert(g.clone(), 0);
        c.inplace.insert(g.clone(), 0);
        c.failed.insert(
            g.clone(),
            status.is_some_and(|s| s.placement_failures.contains_key(g)),
        );
    }
    for (id, a) in after.iter().filter(|(_, a)| a.job_id == job) {
        let g = a.task_group.clone();
        match before.get(id) {
            None => {
                *c.new_per_group.entry(g.clone()).or_default() += 1;
                *c.placements
                    .entry(g)
                    .or_default()
                    .entry(a.node.clone())
                    .or_default() += 1;
            }
            Some(b)
                if b.desired_status == DesiredStatus::Run
                    && a.desired_status == DesiredStatus::Stop =>
            {
                *c.stopped.entry(g).or_default() += 1;
            }
            Some(b) if b.job_version != a.job_version => {
                *c.inplace.entry(g).or_default() += 1;
            }
            _ => {}
        }
    }
    for m in c.placements.values_mut() {
        m.sort_keys();
    }
    c
}

/// Plans `spec` over the store, writes it, reconciles once; both must count the same.
async fn assert_agree(store: &Arc<dyn Store>, spec: &Value, expect: &str) -> plan::JobPlan {
    // Parsed as the server parses a submitted job and the controller a stored spec.
    let key = keys::job("default", spec["id"].as_str().unwrap());
    let raw = serde_json::to_vec(spec).unwrap();
    let job: Job = nomos_api::parse_stored_spec(&key, &raw)
        .unwrap()
        .jobs
        .remove(0);
    let view = plan::read(store.as_ref()).await.unwrap();
    let planned = plan::plan_job(&view, &job, NOW, &Default::default());
    let before = allocs(store.as_ref()).await;
    put(store.as_ref(), keys::job("default", &job.id), spec).await;
    reconcile(store, &job.id).await;
    let after = allocs(store.as_ref()).await;
    let status = loops_common::job_status(store.as_ref(), &job.id).await;
    let groups: Vec<String> = planned.groups.keys().cloned().collect();
    let did = count_reconcile(&before, &after, status.as_ref(), &job.id, &groups);
    assert_eq!(
        count_plan(&planned),
        did,
        "{expect}: the plan (left) and the controller (right) disagree\nplan: {planned:?}"
    );
    planned
}

async fn three_nodes(s: &dyn Store) {
    for i in 0..3 {
        add_node(s, &format!("n{i}"), "dc1", 4000, 4, 4096).await;
    }
}

#[tokio::test]
async fn a_new_job_places_its_count() {
    let s = loops_common::store();
    three_nodes(s.as_ref()).await;
    let p = assert_agree(
        &s,
        &spec("web", "service", 3, json!({}), json!({})),
        "new job",
    )
    .await;
    assert_eq!((p.version, p.new_version), (0, true));
    assert_eq!(p.groups["g"].place, 3);
}

#[tokio::test]
async fn an_unchanged_completed_batch_job_places_nothing() {
    let s = loops_common::store();
    three_nodes(s.as_ref()).await;
    let job = spec("report", "batch", 1, json!({}), json!({}));
    assert_agree(&s, &job, "first apply").await;
    report(s.as_ref(), "report", ClientStatus::Complete).await;
    reconcile(&s, "report").await;
    let p = assert_agree(&s, &job, "unchanged, completed").await;
    assert!(!p.new_version, "the same spec is the same version");
    assert_eq!(p.groups["g"], GroupPlan::default(), "nothing moves");
}

#[tokio::test]
async fn updates_are_in_place_or_destructive_as_the_reconcile_decides() {
    let s = loops_common::store();
    three_nodes(s.as_ref()).await;
    let v0 = spec("web", "service", 3, json!({}), json!({}));
    assert_agree(&s, &v0, "first version").await;
    report(s.as_ref(), "web", ClientStatus::Running).await;

    let v1 = spec("web", "service", 3, json!({"priority": 70}), json!({}));
    let p = assert_agree(&s, &v1, "priority only: in place").await;
    assert_eq!(p.groups["g"].inplace, 3, "{p:?}");

    let v2 = spec(
        "web",
        "service",
        3,
        json!({"priority": 70}),
        json!({"config": {"command": "/bin/sleep"}}),
    );
    let p = assert_agree(
        &s,
        &v2,
        "a task change: one destructive update (max_parallel 1)",
    )
    .await;
    assert_eq!(p.groups["g"].destructive, 1, "{p:?}");
}

#[tokio::test]
async fn a_scale_down_stops_the_highest_indexes_and_a_lost_node_migrates() {
    let s = loops_common::store();
    three_nodes(s.as_ref()).await;
    assert_agree(
        &s,
        &spec("web", "service", 3, json!({}), json!({})),
        "first",
    )
    .await;
    report(s.as_ref(), "web", ClientStatus::Running).await;
    let p = assert_agree(
        &s,
        &spec("web", "service", 1, json!({}), json!({})),
        "count 3 to 1",
    )
    .await;
    assert_eq!(p.groups["g"].stop, 2, "{p:?}");

    let job = spec("web", "service", 1, json!({}), json!({}));
    let survivor = allocs(s.as_ref())
        .await
        .into_values()
        .find(|a| a.desired_status == DesiredStatus::Run)
        .unwrap();
    s.delete(
        KeySelector::key(keys::node(&survivor.node).into_bytes()),
        Default::default(),
    )
    .await
    .unwrap();
    let p = assert_agree(&s, &job, "its node deregistered").await;
    assert_eq!(p.groups["g"].migrate, 1, "{p:?}");
}

#[tokio::test]
async fn a_datacenter_glob_with_two_wildcards_matches_as_the_scheduler_reads_it() {
    let s = loops_common::store();
    add_node(s.as_ref(), "eu", "dc-eu-west-1", 4000, 4, 4096).await;
    let job = spec(
        "web",
        "service",
        2,
        json!({"datacenters": ["dc-*-*-1"]}),
        json!({}),
    );
    let p = assert_agree(&s, &job, "two wildcards").await;
    assert_eq!(p.groups["g"].place, 2, "{p:?}");
}

#[tokio::test]
async fn reserved_cores_and_the_allocations_own_version_count_as_used() {
    let s = loops_common::store();
    // 2 cores of 1000 MHz: a job reserving both leaves no CPU.
    add_node(s.as_ref(), "n0", "dc1", 2000, 2, 4096).await;
    let cores = spec(
        "pinned",
        "service",
        1,
        json!({}),
        json!({"resources": {"cores": 2, "memory_mb": 32}}),
    );
    assert_agree(&s, &cores, "the pinned job").await;
    report(s.as_ref(), "pinned", ClientStatus::Running).await;
    let p = assert_agree(
        &s,
        &spec("web", "service", 1, json!({}), json!({})),
        "no CPU left",
    )
    .await;
    assert_eq!((p.groups["g"].place, p.groups["g"].failed), (0, 1), "{p:?}");

    // A big version 0 still runs while its newest version asks for little: v0's memory counts.
    let s = loops_common::store();
    add_node(s.as_ref(), "n0", "dc1", 8000, 4, 1024).await;
    let big = spec(
        "db",
        "service",
        1,
        json!({}),
        json!({"resources": {"cpu": 100, "memory_mb": 900}}),
    );
    assert_agree(&s, &big, "the big version").await;
    report(s.as_ref(), "db", ClientStatus::Running).await;
    let small = spec(
        "db",
        "service",
        1,
        json!({"update": {"canary": 1}}),
        json!({"resources": {"cpu": 100, "memory_mb": 32}}),
    );
    // The canary needs a node with room beside the running big copy: only 124 MB are left.
    let p = assert_agree(&s, &small, "a canary of a small version").await;
    assert_eq!(p.groups["g"].canary, 1, "{p:?}");
    let other = spec(
        "other",
        "service",
        1,
        json!({}),
        json!({"resources": {"cpu": 100, "memory_mb": 200}}),
    );
    let p = assert_agree(&s, &other, "200 MB do not fit beside the big copy").await;
    assert_eq!(p.groups["g"].failed, 1, "{p:?}");
}

#[tokio::test]
async fn a_stopped_job_stops_everything() {
    let s = loops_common::store();
    three_nodes(s.as_ref()).await;
    assert_agree(
        &s,
        &spec("web", "service", 2, json!({}), json!({})),
        "first",
    )
    .await;
    report(s.as_ref(), "web", ClientStatus::Running).await;
    let p = assert_agree(
        &s,
        &spec("web", "service", 2, json!({"stop": true}), json!({})),
        "stop",
    )
    .await;
    assert_eq!(p.groups["g"].stop, 2, "{p:?}");
}
