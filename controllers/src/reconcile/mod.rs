//! The jobs reconcile, as a pure function: `(job version, existing allocations with their
//! statuses, node health, deployment, now) -> Plan`. The plan names its buckets, after Nomad's
//! reconciler: place, stop, in-place update, destructive update, migrate, reschedule, and
//! follow-ups (times at which the job must be looked at again). Nothing here writes; the jobs
//! controller turns a plan into placements (through [`crate::scheduler`]) and transactions.
//!
//! Rules:
//! - a stopped job stops everything; groups gone from the job are stopped;
//! - `count` up places the lowest free indexes, `count` down stops the highest;
//! - batch allocations that completed are never replaced; service ones are;
//! - failed allocations are rescheduled per `reschedule` (attempts within interval, delay
//!   constant / exponential / fibonacci capped at max_delay, unlimited); every allocation carries
//!   its lineage's reschedule times, and the attempts are those within `interval` before the
//!   failure;
//! - allocations on deregistered nodes are stopped and replaced at once; allocations reported
//!   `lost` are replaced but kept (desired run), so a node that comes back keeps its originals
//!   (two allocations of the newest version at one index: the oldest stays); an allocation on a
//!   draining node gets its replacement placed first (`migrate.max_parallel` not yet healthy at a
//!   time) and stops once the replacement is healthy (`migrate.min_healthy_time`); a replacement
//!   not healthy within `migrate.healthy_deadline` is itself replaced, away from its node; batch
//!   allocations on draining nodes are not migrated: they finish, or the drain's deadline stops
//!   them and they are placed again;
//! - a new version updates allocations in place when only non-task fields changed, otherwise
//!   destructively, limited by `update.max_parallel` minus new allocations not yet healthy; with
//!   `canary`, canaries are placed first and the rest waits for promotion (or `auto_promote`);
//! - an allocation not healthy within `healthy_deadline` of its placement is unhealthy; without a
//!   `progress_deadline` the first unhealthy allocation fails the deployment, with one the
//!   deployment fails when no allocation became healthy before it; a failed deployment stops
//!   rolling and, with `auto_revert`, asks for the last stable version.

//!
//! Files: [`model`] (input, plan), [`group`] (one group, step by step), [`rollout`],
//! [`migrate`], [`reschedule`], [`deployment`] (health and verdicts), [`index`] (facts about
//! one allocation and its index), [`summary`].

mod deployment;
mod group;
mod index;
mod migrate;
mod model;
mod reschedule;
mod rollout;
mod summary;
#[cfg(test)]
mod tests;

use std::collections::HashSet;

use nomos_api::{deployment_status as ds, Deployment, DesiredStatus};

pub use deployment::{alloc_health, deployment_health, deployment_id};
use deployment::{finish_deployment, new_deployment, revert_target};
use group::reconcile_group;
pub use index::{needs_destructive_update, update_strategy};
use model::{stop, GroupFacts};
pub use model::{FollowUp, Input, NodeHealth, ObservedAlloc, Place, Plan, Replace, Stop};
pub use reschedule::{
    default_reschedule, reschedule_at, reschedule_delay_ms, RescheduleAt, MAX_RESCHEDULE_TIMES,
};
pub use summary::{job_status_word, summarize};

/// Computes the plan for one job.
pub fn reconcile(input: &Input<'_>) -> Plan {
    let job = input.job;
    let mut plan = Plan::default();
    let wanted: HashSet<&str> = job.groups.iter().map(|g| g.name.as_str()).collect();

    // Deployments of older versions that still run are superseded by this one (and so are
    // those of a job purged and created again under this name).
    for d in input.deployments {
        if d.is_active() && !d.rolls_out(input.version, input.spec_hash) {
            let mut d = d.clone();
            d.status = ds::CANCELLED;
            d.status_description = ds::DESC_NEWER_JOB.into();
            d.modified_at_ms = input.now_ms;
            plan.cancel_deployments.push(d);
        }
    }

    // Stopped job, or groups removed from it: stop whatever still should run.
    for a in input.allocs {
        if a.alloc.desired_status != DesiredStatus::Run {
            continue;
        }
        if job.stop {
            plan.stop.push(stop(&a.alloc, "job stopped"));
        } else if !wanted.contains(a.alloc.task_group.as_str()) {
            plan.stop.push(stop(&a.alloc, "group removed from job"));
        }
    }
    if job.stop {
        if let Some(d) = input.deployment.filter(|d| d.is_active()) {
            let mut d = d.clone();
            d.status = ds::CANCELLED;
            d.status_description = ds::DESC_STOPPED_JOB.into();
            d.modified_at_ms = input.now_ms;
            plan.deployment = Some(d);
        }
        return plan;
    }

    let mut deployment = input.deployment.cloned();
    let mut deployment_needed = false;
    let mut facts = Vec::new();
    for group in &job.groups {
        let mut f = GroupFacts::default();
        reconcile_group(
            input,
            group,
            &mut plan,
            &mut deployment,
            &mut deployment_needed,
            &mut f,
        );
        facts.push(f);
    }

    if deployment_needed || deployment.as_ref().is_some_and(Deployment::is_active) {
        let mut d = deployment.unwrap_or_else(|| new_deployment(input));
        finish_deployment(input, &mut d, &facts, &mut plan);
        if input.deployment != Some(&d) {
            d.modified_at_ms = input.now_ms;
            plan.deployment = Some(d);
        }
    } else if let Some(d) = deployment.filter(|d| d.status == ds::FAILED) {
        // A deployment failed earlier (by the controller or by a user): revert while the
        // failed version is still the newest, so a crash between the two cannot lose it.
        plan.revert_to = revert_target(input, &d);
    }
    if plan.revert_to.is_some() {
        // Nothing more of the failed version is placed: the reverted version, written with
        // this plan, is decided on next.
        plan.place.clear();
        plan.destructive_update.clear();
        plan.migrate.clear();
        plan.reschedule.clear();
    }
    plan
}
