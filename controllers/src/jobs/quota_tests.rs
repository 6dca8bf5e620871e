//! The jobs controller and namespaces: quotas on CPU, memory and allocation count (exactly at
//! the limit, one over, freed usage, a namespace without a quota) and jobs in namespaces that
//! do not exist (written straight into the store).

use std::sync::Arc;

use nomos_api::namespace::{Namespace, QuotaLimit, QuotaSpec, RegionLimit};
use nomos_api::JobStatus;
use nomos_store::embedded::EmbeddedStore;
use nomos_store::{keys, KeySelector, PutOptions, RangeOptions, Store};
use serde_json::json;

use super::tests::{add_node, allocs, eventually, node, spec, Controller};
use nomos_api::DesiredStatus;

fn store() -> Arc<dyn Store> {
    Arc::new(EmbeddedStore::in_memory())
}

async fn put_json(store: &dyn Store, key: String, value: &impl serde::Serialize) {
    store
        .put(
            key.into_bytes(),
            serde_json::to_vec(value).unwrap(),
            PutOptions::default(),
        )
        .await
        .unwrap();
}

async fn quota(store: &dyn Store, name: &str, limit: RegionLimit) {
    let q = QuotaSpec {
        name: name.into(),
        limits: vec![QuotaLimit {
            region: "global".into(),
            region_limit: limit,
        }],
        ..Default::default()
    };
    put_json(store, keys::quota(name), &q).await;
}

async fn namespace(store: &dyn Store, name: &str, quota: &str) {
    let ns = Namespace {
        name: name.into(),
        quota: quota.into(),
        ..Default::default()
    };
    put_json(store, keys::namespace(name), &ns).await;
}

/// A job `name` of `count` allocations asking `cpu` MHz (and 32 MB) each, in `ns`.
async fn job_in(store: &dyn Store, ns: &str, name: &str, count: u32, cpu: u32) {
    let value = spec(name, count, cpu, json!({"namespace": ns}));
    store
        .put(
            keys::job(ns, name).into_bytes(),
            value,
            PutOptions::default(),
        )
        .await
        .unwrap();
}

async fn stop_job(store: &dyn Store, ns: &str, name: &str, count: u32, cpu: u32) {
    let value = spec(name, count, cpu, json!({"namespace": ns, "stop": true}));
    store
        .put(
            keys::job(ns, name).into_bytes(),
            value,
            PutOptions::default(),
        )
        .await
        .unwrap();
}

async fn status_in(store: &dyn Store, ns: &str, job: &str) -> Option<JobStatus> {
    let r = store
        .range(
            KeySelector::key(keys::job_status(ns, job).into_bytes()),
            RangeOptions::default(),
        )
        .await
        .unwrap();
    r.kvs
        .first()
        .map(|kv| serde_json::from_slice(&kv.value).unwrap())
}

async fn running_in(store: &dyn Store, ns: &str, job: &str) -> usize {
    allocs(store)
        .await
        .into_iter()
        .filter(|a| a.namespace == ns && a.job_id == job && a.desired_status == DesiredStatus::Run)
        .count()
}

fn cpu(mhz: i64) -> RegionLimit {
    RegionLimit {
        cpu: mhz,
        ..Default::default()
    }
}

async fn failure_of(store: &dyn Store, ns: &str, job: &str) -> Option<String> {
    status_in(store, ns, job)
        .await
        .and_then(|st| st.placement_failures.get("g").cloned())
}

#[tokio::test]
async fn a_job_exactly_at_the_quota_is_placed_whole() {
    let s = store();
    add_node(&*s, &node("n0", 10_000, 10_000)).await;
    quota(&*s, "team-a", cpu(300)).await;
    namespace(&*s, "team-a", "team-a").await;
    job_in(&*s, "team-a", "web", 3, 100).await;
    let c = Controller::start(s.clone());
    eventually("3 allocations", || async {
        running_in(&*s, "team-a", "web").await == 3
    })
    .await;
    eventually("a status without failures", || async {
        status_in(&*s, "team-a", "web")
            .await
            .is_some_and(|st| st.version == 0 && st.placement_failures.is_empty())
    })
    .await;
    c.stop().await;
}

#[tokio::test]
async fn one_over_the_quota_is_queued_with_the_reason_in_the_status() {
    let s = store();
    add_node(&*s, &node("n0", 10_000, 10_000)).await;
    quota(&*s, "team-a", cpu(250)).await;
    namespace(&*s, "team-a", "team-a").await;
    job_in(&*s, "team-a", "web", 3, 100).await;
    let c = Controller::start(s.clone());
    eventually("the reason in the status", || async {
        failure_of(&*s, "team-a", "web").await.as_deref()
            == Some("quota \"team-a\" exhausted: cpu 300/250 MHz")
    })
    .await;
    assert_eq!(running_in(&*s, "team-a", "web").await, 2);
    let st = status_in(&*s, "team-a", "web").await.unwrap();
    assert_eq!(st.summary["g"].queued, 1);
    c.stop().await;
}

#[tokio::test]
async fn freed_quota_lets_a_queued_placement_proceed() {
    let s = store();
    add_node(&*s, &node("n0", 10_000, 10_000)).await;
    let two = RegionLimit {
        allocations: 2,
        ..Default::default()
    };
    quota(&*s, "team-a", two).await;
    namespace(&*s, "team-a", "team-a").await;
    job_in(&*s, "team-a", "first", 2, 100).await;
    let c = Controller::start(s.clone());
    eventually("first placed", || async {
        running_in(&*s, "team-a", "first").await == 2
    })
    .await;
    job_in(&*s, "team-a", "second", 1, 100).await;
    eventually("second queued with the reason", || async {
        failure_of(&*s, "team-a", "second").await.as_deref()
            == Some("quota \"team-a\" exhausted: allocations 3/2")
    })
    .await;
    assert_eq!(running_in(&*s, "team-a", "second").await, 0);
    stop_job(&*s, "team-a", "first", 2, 100).await;
    eventually("second placed once first stopped", || async {
        running_in(&*s, "team-a", "second").await == 1
    })
    .await;
    eventually("failure cleared", || async {
        failure_of(&*s, "team-a", "second").await.is_none()
    })
    .await;
    c.stop().await;
}

#[tokio::test]
async fn a_namespace_without_a_quota_is_not_limited() {
    let s = store();
    add_node(&*s, &node("n0", 10_000, 10_000)).await;
    quota(&*s, "tight", cpu(100)).await;
    namespace(&*s, "limited", "tight").await;
    namespace(&*s, "free", "").await;
    job_in(&*s, "free", "web", 5, 100).await;
    job_in(&*s, "limited", "web", 2, 100).await;
    let c = Controller::start(s.clone());
    eventually("5 allocations in the free namespace", || async {
        running_in(&*s, "free", "web").await == 5
    })
    .await;
    eventually("the limited namespace queued one", || async {
        failure_of(&*s, "limited", "web").await.is_some()
    })
    .await;
    assert_eq!(running_in(&*s, "limited", "web").await, 1);
    c.stop().await;
}

#[tokio::test]
async fn a_spec_in_a_missing_namespace_is_not_run_until_the_namespace_exists() {
    let s = store();
    add_node(&*s, &node("n0", 10_000, 10_000)).await;
    job_in(&*s, "ghost", "web", 1, 100).await;
    let c = Controller::start(s.clone());
    eventually("the error in the status", || async {
        status_in(&*s, "ghost", "web").await.is_some_and(|st| {
            st.errors
                .iter()
                .any(|e| e.contains("namespace \"ghost\" does not exist"))
        })
    })
    .await;
    assert_eq!(running_in(&*s, "ghost", "web").await, 0);
    namespace(&*s, "ghost", "").await;
    eventually("placed once the namespace exists", || async {
        running_in(&*s, "ghost", "web").await == 1
    })
    .await;
    eventually("error cleared", || async {
        status_in(&*s, "ghost", "web")
            .await
            .is_some_and(|st| st.errors.is_empty())
    })
    .await;
    c.stop().await;
}
