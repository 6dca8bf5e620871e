//! Deployments: allocation health as a deployment judges it, the deployment's id, its verdict
//! (successful, failed at once, failed at the progress deadline, waiting for promotion), the
//! revert `auto_revert` asks for, and canaries left over from a deployment that is over.

use nomos_api::{
    deployment_status as ds, ClientStatus, Deployment, DeploymentGroup, DesiredStatus, Job,
};

use super::index::{holds_its_index_alone, is_of_version};
use super::model::{stop, FollowUp, GroupFacts, Input, ObservedAlloc, Plan};
use crate::health::HealthRule;

/// Health as deployments see it: the agent's verdict, or running long enough with the checks
/// the rule requires passing ([`HealthRule`]).
pub fn alloc_health(a: &ObservedAlloc, rule: &HealthRule, now_ms: i64) -> Option<bool> {
    let s = a.status.as_ref()?;
    if let Some(h) = s.healthy {
        return Some(h);
    }
    match s.client_status {
        ClientStatus::Failed | ClientStatus::Lost => Some(false),
        ClientStatus::Running => rule
            .healthy_at(s)
            .is_some_and(|t| t <= now_ms)
            .then_some(true),
        _ => None,
    }
}

/// Health during a deployment: [`alloc_health`], except that an allocation that has not become
/// healthy within `healthy_deadline_ms` (0: no deadline) of its placement counts as unhealthy.
/// An agent's explicit verdict always wins.
pub fn deployment_health(
    a: &ObservedAlloc,
    rule: &HealthRule,
    healthy_deadline_ms: i64,
    now_ms: i64,
) -> Option<bool> {
    if healthy_deadline_ms <= 0 {
        return alloc_health(a, rule, now_ms);
    }
    let deadline = a.alloc.created_at_ms.saturating_add(healthy_deadline_ms);
    if let Some(h) = a.status.as_ref().and_then(|s| s.healthy) {
        return Some(h);
    }
    match alloc_health(a, rule, now_ms) {
        Some(true) => match healthy_at(a, rule) {
            // Healthy by time, but only after its deadline had passed.
            Some(t) if t > deadline => Some(false),
            _ => Some(true),
        },
        Some(false) => Some(false),
        None if now_ms > deadline => Some(false),
        None => None,
    }
}

/// When an allocation without a verdict becomes healthy by time, if it keeps running.
pub(super) fn healthy_at(a: &ObservedAlloc, rule: &HealthRule) -> Option<i64> {
    let s = a.status.as_ref()?;
    if s.healthy.is_some() {
        return None;
    }
    rule.healthy_at(s)
}

/// Deterministic deployment id for a job version, so a restarted controller finds it again.
/// `<job>-v<version>-<first 8 of the spec hash>`: unique across a purge and re-creation of the
/// job, which starts its versions again at 0.
pub fn deployment_id(job: &str, version: u64, spec_hash: &str) -> String {
    format!("{job}-v{version}-{}", &spec_hash[..spec_hash.len().min(8)])
}

pub(super) fn new_deployment(input: &Input<'_>) -> Deployment {
    Deployment {
        id: deployment_id(&input.job.id, input.version, input.spec_hash),
        namespace: input.job.namespace.clone(),
        job_id: input.job.id.clone(),
        job_version: input.version,
        job_spec_hash: input.spec_hash.to_string(),
        status: ds::RUNNING,
        status_description: ds::DESC_RUNNING.into(),
        created_at_ms: input.now_ms,
        ..Default::default()
    }
}

/// Decides whether a running deployment succeeded or failed, and what it says meanwhile.
pub(super) fn finish_deployment(
    input: &Input<'_>,
    d: &mut Deployment,
    facts: &[GroupFacts],
    plan: &mut Plan,
) {
    if d.status == ds::FAILED {
        plan.revert_to = revert_target(input, d);
    }
    // A paused deployment places nothing, but what its allocations did still counts: one that
    // failed for good fails it (below); only the progress deadline waits for the resume.
    let paused = d.status == ds::PAUSED;
    if d.status != ds::RUNNING && !paused {
        return;
    }
    let done = d
        .groups
        .values()
        .all(|g| g.healthy >= g.desired_total && (g.desired_canaries == 0 || g.promoted));
    let old_left = input.allocs.iter().any(|a| {
        a.alloc.desired_status == DesiredStatus::Run
            && a.alloc.job_version != input.version
            && !a.client_status().is_terminal()
    }) || !plan.destructive_update.is_empty();
    if done && !old_left && !paused {
        d.status = ds::SUCCESSFUL;
        d.status_description = ds::DESC_SUCCESSFUL.into();
        return;
    }
    // A failed allocation that may not be rescheduled again fails the deployment at once; so
    // does any unhealthy allocation of a group without a progress deadline (Nomad's deployment
    // watcher). Otherwise unhealthy allocations make no progress and the deadline decides.
    if let Some(why) = facts.iter().find_map(|f| f.unreschedulable.clone()) {
        tracing::debug!(deployment = %d.id, %why, "deployment fails");
        fail_deployment(input, d, plan, ds::DESC_UNHEALTHY);
        return;
    }
    let unhealthy_fails = d
        .groups
        .values()
        .any(|g| g.progress_deadline_ms == 0 && g.unhealthy > 0);
    if unhealthy_fails {
        fail_deployment(input, d, plan, ds::DESC_UNHEALTHY);
        return;
    }
    if paused {
        return;
    }
    let deadline = d
        .groups
        .values()
        .map(|g| g.require_progress_by_ms)
        .filter(|t| *t > 0)
        .min();
    if let Some(t) = deadline {
        if input.now_ms > t {
            fail_deployment(input, d, plan, ds::DESC_PROGRESS_DEADLINE);
            return;
        }
        plan.follow_ups.push(FollowUp {
            at_ms: t + 1,
            reason: "progress deadline".into(),
        });
    }
    d.status_description = if d.groups.values().any(DeploymentGroup::waits_for_promotion) {
        ds::DESC_NEEDS_PROMOTION
    } else if d
        .groups
        .values()
        .any(|g| g.desired_canaries > 0 && !g.promoted && g.auto_promote)
    {
        ds::DESC_AUTO_PROMOTION
    } else {
        ds::DESC_RUNNING
    }
    .into();
}

/// Whether the job (or one of its groups) asks for `auto_revert`.
pub(super) fn auto_revert(job: &Job) -> bool {
    job.update.as_ref().is_some_and(|u| u.auto_revert)
        || job
            .groups
            .iter()
            .any(|g| g.update.as_ref().is_some_and(|u| u.auto_revert))
}

/// The version `auto_revert` rolls a failed deployment back to: the latest stable version,
/// while the failed version is still the newest, and only when it holds another spec (a
/// revert to the same spec would fail the same way, version after version).
pub(super) fn revert_target(input: &Input<'_>, d: &Deployment) -> Option<u64> {
    if d.job_version != input.version || !auto_revert(input.job) {
        return None;
    }
    let stable = input.stable_version.filter(|v| *v < input.version)?;
    let target = input.versions.get(&stable)?;
    let mut same = target.clone();
    same.stop = input.job.stop;
    (same != *input.job).then_some(stable)
}

/// Marks a deployment failed: nothing more rolls, its unpromoted canaries stop, and with
/// `auto_revert` the latest stable version is asked for.
pub(super) fn fail_deployment(input: &Input<'_>, d: &mut Deployment, plan: &mut Plan, why: &str) {
    d.status = ds::FAILED;
    plan.revert_to = revert_target(input, d);
    d.status_description = match plan.revert_to {
        Some(v) => ds::rolling_back(why, v),
        None => why.into(),
    };
    plan.destructive_update.clear();
    plan.place.retain(|p| !p.canary);
    for a in input.allocs {
        let promoted = d
            .groups
            .get(&a.alloc.task_group)
            .is_some_and(|g| g.promoted);
        if a.alloc.canary
            && !promoted
            && a.alloc.job_version == d.job_version
            && a.alloc.desired_status == DesiredStatus::Run
            && !plan.stop.iter().any(|s| s.alloc_id == a.alloc.id)
            && !holds_its_index_alone(input, a)
        {
            plan.stop
                .push(stop(&a.alloc, "canary of a failed deployment"));
        }
    }
}

/// Why a live canary must stop: its deployment was never promoted and is over (failed,
/// cancelled) or belongs to an older version. A promoted canary is an ordinary allocation.
pub(super) fn stale_canary(
    input: &Input<'_>,
    current: Option<&Deployment>,
    a: &ObservedAlloc,
) -> Option<&'static str> {
    if !a.alloc.canary {
        return None;
    }
    let own = if is_of_version(input, &a.alloc) {
        current.filter(|d| d.job_version == a.alloc.job_version)
    } else {
        input
            .deployments
            .iter()
            .find(|d| d.id == a.alloc.deployment_id)
    };
    let promoted = own
        .and_then(|d| d.groups.get(&a.alloc.task_group))
        .is_some_and(|g| g.promoted);
    if promoted {
        return None;
    }
    match own {
        None if !is_of_version(input, &a.alloc) => Some("canary of an older deployment"),
        Some(d) if d.job_version != input.version => Some("canary of an older deployment"),
        Some(d) if d.status == ds::FAILED || d.status == ds::CANCELLED => {
            Some("canary of a failed deployment")
        }
        _ => None,
    }
}
