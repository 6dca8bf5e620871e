//! The system loop's executor: for every system and sysbatch job whose spec exists, plan against
//! the cluster snapshot and write the plan. New allocations are created only if absent and only
//! if nothing changed on their node since the read (the jobs controller's per-node guard), so two
//! writers can never over-commit a node; stops compare on the allocation's revision. A pass
//! that places or stops allocations of a job records an evaluation ([`super::evals`]), written
//! after the placements with those that committed; the allocations name it as their `EvalID`.
//! The job status (summary, placement failures) is written here for these jobs.

use async_trait::async_trait;
use nomos_api::DesiredStatus;
use nomos_store::keys;

use super::{evals, plan, summarize};
use crate::jobs::{job_facts, now_ns};
use crate::loops::ctx::{Ctx, Loop, LoopName, PassOutcome};
use crate::loops::view::{Part, View};
use crate::write::{alloc_update, encode, node_guard, put, set_desired, unchanged};
use crate::ControllerError;

/// The system loop: system and sysbatch jobs on every eligible node.
pub struct SystemLoop;

#[async_trait]
impl Loop for SystemLoop {
    fn name(&self) -> LoopName {
        LoopName::System
    }

    fn reads(&self) -> &'static [Part] {
        &[
            Part::Specs,
            Part::Versions,
            Part::JobStatus,
            Part::Allocs,
            Part::AllocStatus,
            Part::Nodes,
            Part::NodeSpecs,
            Part::Heartbeats,
            Part::Namespaces,
            Part::Quotas,
        ]
    }

    fn wakes_on(&self) -> &'static [Part] {
        &[
            Part::Specs,
            Part::Versions,
            Part::Allocs,
            Part::AllocStatus,
            Part::Nodes,
            Part::NodeSpecs,
            Part::Heartbeats,
            Part::Namespaces,
            Part::Quotas,
        ]
    }

    async fn pass(&self, ctx: &Ctx, view: &View, now: i64) -> Result<PassOutcome, ControllerError> {
        pass(ctx, view, now).await
    }
}

pub async fn pass(ctx: &Ctx, view: &View, now: i64) -> Result<PassOutcome, ControllerError> {
    let mut snapshot = view.snapshot();
    let mut outcome = PassOutcome::default();
    for key in view.specs.keys() {
        let Some((version, job)) = view.current(key) else {
            continue;
        };
        if !super::is_system(job) {
            continue;
        }
        let allocs = view.observed_allocs_of(key);
        let mut p = plan(job, version, &mut snapshot, &allocs, now);
        let trigger = evals::trigger(job, version, &p, &allocs);
        let eval_id = trigger.map(|t| evals::eval_id(job, t, &p, now));
        let mut conflicted = false;
        let mut placed = Vec::new();
        for n in &mut p.place {
            n.alloc.eval_id = eval_id.clone().unwrap_or_default();
            let k = keys::alloc(&n.alloc.node, &n.alloc.id);
            let value = encode(&k, &n.alloc, "allocation")?;
            let ok = ctx
                .commit(
                    vec![unchanged(&k, 0), node_guard(&n.alloc.node, view.revision)],
                    vec![put(&k, value)],
                )
                .await?;
            conflicted |= !ok;
            if ok {
                placed.push(n.alloc.id.clone());
            }
        }
        for s in &p.stop {
            let Some(cur) = view.allocs.get(&s.alloc_id) else {
                continue;
            };
            let stopped = set_desired(&cur.value, DesiredStatus::Stop, &s.reason, now);
            let (compare, op) = alloc_update(&stopped, cur.mod_revision)?;
            conflicted |= !ctx.commit(vec![compare], vec![op]).await?;
        }
        if let (Some(trigger), Some(id)) = (trigger, eval_id) {
            let spec_revision = view.specs.get(key).map_or(0, |s| s.mod_revision);
            let facts = job_facts(key, job, spec_revision);
            let record = evals::record(&facts, trigger, &p, placed, id, now_ns(now));
            let k = keys::eval(&record.namespace, &record.id);
            let value = encode(&k, &record, "evaluation")?;
            conflicted |= !ctx.commit(vec![], vec![put(&k, value)]).await?;
        }
        // Status: what the agents report now (the next pass sees the new allocations).
        let (summary, status_word) = summarize(job, &allocs);
        let old = view.job_status.get(key);
        let mut status = old.map(|s| s.value.clone()).unwrap_or_default();
        let before = status.clone();
        status.status = status_word;
        status.version = version;
        status.summary = summary;
        status.placement_failures = p.failures.clone();
        if status != before || old.is_none() {
            status.modified_at_ms = now;
            let k = keys::job_status(&key.0, &key.1);
            let value = encode(&k, &status, "job status")?;
            conflicted |= !ctx
                .commit(
                    vec![unchanged(&k, old.map(|s| s.mod_revision).unwrap_or(0))],
                    vec![put(&k, value)],
                )
                .await?;
        }
        if conflicted || p.updates_waiting > 0 || !p.place.is_empty() {
            // Look again soon: a conflict needs a re-read, a rolling update moves on with health.
            outcome.wake_at_ms = Some(
                outcome
                    .wake_at_ms
                    .map_or(now + 1_000, |w| w.min(now + 1_000)),
            );
        }
    }
    Ok(outcome)
}
