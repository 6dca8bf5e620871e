//! Deployments: they fail at once when an unhealthy allocation cannot be rescheduled and at
//! their progress deadline (but never while healthy canaries await promotion), say when they wait
//! for promotion, and auto-revert once to the latest stable version.

use nomos_api::{deployment_status as ds, ClientStatus};

use super::reschedule::{attempts_used, failed_at};
use super::{reschedule_policy, violation, Actor, Checker, Violation};
use crate::observe::{JobKey, Snapshot};

pub(super) fn a_deployment_fails_at_once_when_an_unhealthy_allocation_cannot_be_rescheduled(
    _: &Checker,
    cur: &Snapshot,
    actor: &Actor,
    out: &mut Vec<Violation>,
) {
    let Actor::Reconcile(job) = actor else { return };
    if !cur.specs.contains_key(job) {
        return; // being purged: its deployments go with it
    }
    let Some(d) = cur.current_deployment(job).filter(|d| d.is_active()) else {
        return;
    };
    let Some((_, j)) = cur.newest(job) else {
        return;
    };
    for a in cur
        .allocs_of(job)
        .filter(|a| d.rolls_out(a.job_version, &a.job_spec_hash))
    {
        if cur.client_status(&a.id) != Some(ClientStatus::Failed) {
            continue;
        }
        let policy = reschedule_policy(j, &a.task_group);
        let Some(failed) = failed_at(cur, &a.id) else {
            continue;
        };
        // (One replaced before it failed, as a migration off a draining node replaces it,
        // needs no reschedule: its successor already holds its index.)
        let replaced_before = cur
            .allocs_of(job)
            .any(|n| n.previous_alloc == a.id && n.created_at_ms <= failed);
        if replaced_before {
            continue;
        }
        if !policy.unlimited && attempts_used(&policy, a, failed) >= policy.attempts {
            violation(
                out,
                "a_deployment_fails_at_once_when_an_unhealthy_allocation_cannot_be_rescheduled",
                format!(
                    "deployment {} is still {} after {} failed with no reschedule attempts left",
                    d.id, d.status, a.name
                ),
            );
        }
    }
}

pub(super) fn a_deployment_fails_at_its_progress_deadline(
    _: &Checker,
    cur: &Snapshot,
    actor: &Actor,
    out: &mut Vec<Violation>,
) {
    let Actor::Reconcile(job) = actor else { return };
    if !cur.specs.contains_key(job) {
        return; // being purged: its deployments go with it
    }
    let Some(d) = cur.current_deployment(job) else {
        return;
    };
    if d.status != ds::RUNNING {
        return;
    }
    for (name, g) in &d.groups {
        let done = g.healthy >= g.desired_total && (g.desired_canaries == 0 || g.promoted);
        if g.require_progress_by_ms > 0
            && cur.now_ms > g.require_progress_by_ms
            && !g.waits_for_promotion()
            && !done
        {
            violation(
                out,
                "a_deployment_fails_at_its_progress_deadline",
                format!(
                    "deployment {} group {name} is still running {} ms past its progress deadline",
                    d.id,
                    cur.now_ms - g.require_progress_by_ms
                ),
            );
        }
    }
}

pub(super) fn healthy_canaries_awaiting_promotion_never_fail_at_the_progress_deadline(
    c: &Checker,
    cur: &Snapshot,
    _: &Actor,
    out: &mut Vec<Violation>,
) {
    for (job, deps) in &cur.deployments {
        for d in deps {
            if d.status != ds::FAILED
                || !d.status_description.starts_with(ds::DESC_PROGRESS_DEADLINE)
            {
                continue;
            }
            let Some(before) = c.prev.deployment(job, &d.id) else {
                continue;
            };
            if before.status == ds::RUNNING
                && before
                    .groups
                    .values()
                    .all(|g| g.waits_for_promotion() || g.healthy >= g.desired_total)
                && before.groups.values().any(|g| g.waits_for_promotion())
            {
                violation(
                    out,
                    "healthy_canaries_awaiting_promotion_never_fail_at_the_progress_deadline",
                    format!(
                        "deployment {} failed at its progress deadline while waiting for promotion",
                        d.id
                    ),
                );
            }
        }
    }
}

pub(super) fn a_deployment_waiting_for_promotion_says_so(
    _: &Checker,
    cur: &Snapshot,
    actor: &Actor,
    out: &mut Vec<Violation>,
) {
    let Actor::Reconcile(job) = actor else { return };
    if !cur.specs.contains_key(job) {
        return; // being purged: its deployments go with it
    }
    let Some(d) = cur.current_deployment(job) else {
        return;
    };
    if d.status != ds::RUNNING {
        return;
    }
    // Canaries placed for the deployment, all healthy, not promoted, no auto_promote.
    let waiting = d.groups.values().any(|g| {
        g.desired_canaries > 0
            && !g.promoted
            && !g.auto_promote
            && g.placed_canaries.len() as u32 >= g.desired_canaries
            && g.placed_canaries
                .iter()
                .filter(|id| {
                    cur.allocs.get(*id).is_some_and(|a| {
                        cur.is_healthy(a) && cur.node_up(&a.node) && !cur.draining(&a.node)
                    })
                })
                .count() as u32
                >= g.desired_canaries
    });
    if waiting && d.status_description != ds::DESC_NEEDS_PROMOTION {
        violation(
            out,
            "a_deployment_waiting_for_promotion_says_so",
            format!(
                "deployment {} has healthy canaries awaiting promotion but says {:?}",
                d.id, d.status_description
            ),
        );
    }
}

/// Versions that appeared in `cur` and no user wrote: `(job, version, failed deployment id)`.
pub(super) fn new_reverts(c: &Checker, cur: &Snapshot) -> Vec<(JobKey, u64, String)> {
    let mut out = Vec::new();
    for (job, versions) in &cur.versions {
        // Only jobs users declare (a periodic parent's children are written by its loop).
        if !c.user_hashes.contains_key(job) {
            continue;
        }
        let before = c.prev.versions.get(job);
        for (v, j) in versions {
            if before.is_some_and(|b| b.contains_key(v)) {
                continue;
            }
            // The spec the user wrote last (every write is a distinct spec): anything else is
            // a revert.
            let user = c.user_hashes.get(job) == Some(&nomos_api::spec_hash(j));
            if user {
                continue;
            }
            let failed = cur
                .deployments
                .get(job)
                .and_then(|ds_| ds_.iter().rev().find(|d| d.job_version + 1 == *v))
                .map(|d| d.id.clone())
                .unwrap_or_default();
            out.push((job.clone(), *v, failed));
        }
    }
    out
}

pub(super) fn auto_revert_reverts_once_per_failed_deployment_to_the_latest_stable_version(
    c: &Checker,
    cur: &Snapshot,
    _: &Actor,
    out: &mut Vec<Violation>,
) {
    const NAME: &str =
        "auto_revert_reverts_once_per_failed_deployment_to_the_latest_stable_version";
    for (job, v, failed) in new_reverts(c, cur) {
        let Some(d) = cur.deployment(&job, &failed) else {
            violation(
                out,
                NAME,
                format!(
                    "{} version {v} appeared with no user write and no failed deployment before it",
                    job.1
                ),
            );
            continue;
        };
        let reverted = &cur.versions[&job][&v];
        let failed_job = cur.versions[&job].get(&d.job_version).or_else(|| {
            c.prev
                .versions
                .get(&job)
                .and_then(|m| m.get(&d.job_version))
        });
        let auto_revert = failed_job.is_some_and(|j| {
            j.update.as_ref().is_some_and(|u| u.auto_revert)
                || j.groups
                    .iter()
                    .any(|g| g.update.as_ref().is_some_and(|u| u.auto_revert))
        });
        if d.status != ds::FAILED || !auto_revert {
            violation(
                out,
                NAME,
                format!(
                    "{} version {v} reverted deployment {} which is {} (auto_revert {auto_revert})",
                    job.1, d.id, d.status
                ),
            );
        }
        if c.reverts.get(&failed).copied().unwrap_or(0) >= 1 {
            violation(
                out,
                NAME,
                format!(
                    "{} version {v} is a second revert for deployment {}",
                    job.1, d.id
                ),
            );
        }
        let stable = c
            .prev
            .job_status
            .get(&job)
            .and_then(|s| s.stable_version)
            .and_then(|sv| c.prev.versions.get(&job).and_then(|m| m.get(&sv)));
        let mut want = stable.map(|j| (**j).clone());
        if let Some(w) = want.as_mut() {
            w.stop = false;
        }
        if want.as_ref() != Some(reverted) {
            violation(
                out,
                NAME,
                format!(
                    "{} version {v} is not the latest stable version's spec (stable: {:?})",
                    job.1,
                    c.prev.job_status.get(&job).and_then(|s| s.stable_version)
                ),
            );
        }
        if failed_job.is_some_and(|f| f == reverted) {
            violation(
                out,
                NAME,
                format!("{} version {v} reverts to the very spec that failed", job.1),
            );
        }
    }
}
