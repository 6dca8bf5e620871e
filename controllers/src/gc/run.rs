//! The garbage collector's executor: runs every `interval_ms` (and on demand for
//! `nctl system gc`), plans over a fresh view and deletes: an allocation with its status; a job's
//! spec, status, versions and deployments; single old versions. Each allocation delete compares on
//! the revision it was read at, so an allocation that changed meanwhile is left for the next pass;
//! evaluations go in batches.

use std::collections::{BTreeMap, HashSet};

use async_trait::async_trait;
use nomos_api::eval::Evaluation;
use nomos_store::{keys, Store};

use super::{plan, plan_evals, GcConfig, GcJob, GcPlan};
use crate::loops::ctx::{Ctx, Loop, LoopName, LoopsConfig, PassOutcome};
use crate::loops::view::{JobKey, Part, View};
use crate::write::{delete, delete_prefix, unchanged};
use crate::ControllerError;

/// The collector's plan over a view.
pub fn plan_for(view: &View, now: i64, config: &GcConfig) -> GcPlan {
    let mut jobs: BTreeMap<JobKey, GcJob> = BTreeMap::new();
    let keys_seen = view
        .specs
        .keys()
        .chain(view.versions.keys())
        .chain(view.job_status.keys());
    for k in keys_seen {
        jobs.entry(k.clone()).or_insert_with(|| GcJob {
            namespace: k.0.clone(),
            id: k.1.clone(),
            spec: view
                .versions
                .get(k)
                .and_then(|v| v.last_key_value())
                .map(|(_, j)| j.clone())
                .filter(|_| view.specs.contains_key(k)),
            // The stable version kept is the one auto_revert would go back to: the
            // controllers' verdict with the versions marked by hand over it.
            status: view.job_status.get(k).map(|s| {
                let mut status = s.value.clone();
                status.stable_version = nomos_api::settings::latest_stable(
                    view.stability.get(k),
                    status.stable_version,
                    view.versions
                        .get(k)
                        .into_iter()
                        .flat_map(|v| v.keys().copied()),
                );
                status
            }),
            versions: view
                .versions
                .get(k)
                .map(|v| v.keys().copied().collect())
                .unwrap_or_default(),
        });
    }
    // A spec key whose value was never accepted still counts as a live job.
    for (k, j) in jobs.iter_mut() {
        if j.spec.is_none() && view.specs.contains_key(k) {
            j.spec = Some(nomos_api::Job {
                id: k.1.clone(),
                namespace: k.0.clone(),
                ..Default::default()
            });
        }
    }
    let jobs: Vec<GcJob> = jobs.into_values().collect();
    let allocs = view.observed_allocs(|_| true);
    let mut p = plan(&jobs, &allocs, now, config);
    let mut live: HashSet<JobKey> = jobs
        .iter()
        .map(|j| (j.namespace.clone(), j.id.clone()))
        .collect();
    for purged in &p.jobs {
        live.remove(purged);
    }
    let evals: Vec<Evaluation> = view.evals.values().map(|e| e.value.clone()).collect();
    p.evals = plan_evals(&evals, &live, now, config);
    p
}

/// Applies a plan. Returns how many objects went.
pub async fn apply(ctx: &Ctx, view: &View, p: &GcPlan) -> Result<usize, ControllerError> {
    let mut n = 0;
    for (node, id) in &p.allocs {
        let k = keys::alloc(node, id);
        let rev = view.allocs.get(id).map(|a| a.mod_revision).unwrap_or(0);
        if ctx
            .commit(
                vec![unchanged(&k, rev)],
                vec![delete(&k), delete(&keys::alloc_status(node, id))],
            )
            .await?
        {
            n += 1;
        }
    }
    for (ns, job) in &p.jobs {
        let spec_rev = view
            .specs
            .get(&(ns.clone(), job.clone()))
            .map(|s| s.mod_revision)
            .unwrap_or(0);
        let ops = vec![
            delete(&keys::job(ns, job)),
            delete(&keys::job_status(ns, job)),
            delete_prefix(&keys::job_versions_prefix(ns, job)),
            delete_prefix(&format!("{}{ns}/{job}/", keys::DEPLOYMENTS_PREFIX)),
            delete_prefix(&keys::job_submissions_prefix(ns, job)),
            delete(&keys::job_stability(ns, job)),
        ];
        if ctx
            .commit(vec![unchanged(&keys::job(ns, job), spec_rev)], ops)
            .await?
        {
            n += 1;
        }
    }
    for (ns, job, v) in &p.versions {
        let mut ops = vec![delete(&keys::job_version(ns, job, *v))];
        ops.extend(lone_submission(view, p, (ns, job, *v)).map(|k| delete(&k)));
        ctx.commit(vec![], ops).await?;
        n += 1;
    }
    for chunk in p.evals.chunks(100) {
        let ops = chunk
            .iter()
            .map(|(ns, id)| delete(&keys::eval(ns, id)))
            .collect();
        ctx.commit(vec![], ops).await?;
        n += chunk.len();
    }
    Ok(n)
}

/// The submission key of a version the plan deletes, when no version the plan keeps has the
/// same spec (a revert writes an old spec again as a new version, which shares it).
fn lone_submission(view: &View, p: &GcPlan, (ns, job, v): (&str, &str, u64)) -> Option<String> {
    let key = (ns.to_string(), job.to_string());
    let versions = view.versions.get(&key)?;
    let hash = nomos_api::spec_hash(versions.get(&v)?);
    let deleted = |other: u64| {
        p.versions
            .iter()
            .any(|d| (&d.0, &d.1, d.2) == (&key.0, &key.1, other))
    };
    let shared = versions
        .iter()
        .any(|(other, j)| !deleted(*other) && nomos_api::spec_hash(j) == hash);
    (!shared).then(|| keys::job_submission(ns, job, &hash))
}

/// The garbage collector: deletes what is finished and old enough.
pub struct GcLoop;

#[async_trait]
impl Loop for GcLoop {
    fn name(&self) -> LoopName {
        LoopName::Gc
    }

    fn reads(&self) -> &'static [Part] {
        &[
            Part::Specs,
            Part::Versions,
            Part::JobStatus,
            Part::Allocs,
            Part::AllocStatus,
            Part::Evals,
            Part::Stability,
        ]
    }

    fn wakes_on(&self) -> &'static [Part] {
        &[]
    }

    async fn pass(&self, ctx: &Ctx, view: &View, now: i64) -> Result<PassOutcome, ControllerError> {
        pass(ctx, view, now, &ctx.config.gc).await
    }
}

pub async fn pass(
    ctx: &Ctx,
    view: &View,
    now: i64,
    config: &GcConfig,
) -> Result<PassOutcome, ControllerError> {
    let p = plan_for(view, now, config);
    if !p.is_empty() {
        let n = apply(ctx, view, &p).await?;
        tracing::info!(
            objects = n,
            allocs = p.allocs.len(),
            jobs = p.jobs.len(),
            versions = p.versions.len(),
            evals = p.evals.len(),
            "gc"
        );
    }
    Ok(PassOutcome {
        wake_at_ms: Some(now + config.interval_ms.max(1_000)),
    })
}

/// `nctl system gc`: one pass now with every age threshold at zero (not leader-fenced: deletes
/// still compare on the revisions they read). Returns how many objects went.
pub async fn force(ctx: &Ctx) -> Result<usize, ControllerError> {
    let view = View::read(&*ctx.store, GcLoop.reads()).await?;
    let p = plan_for(&view, ctx.now(), &ctx.config.gc.forced());
    apply(ctx, &view, &p).await
}

/// Convenience for callers without a loop context (the server's `POST /v1/system/gc`).
pub async fn force_with(
    store: std::sync::Arc<dyn Store>,
    config: LoopsConfig,
) -> Result<usize, ControllerError> {
    let ctx = Ctx {
        store,
        leadership: None,
        config,
        metrics: Default::default(),
        name: LoopName::Gc,
    };
    force(&ctx).await
}
