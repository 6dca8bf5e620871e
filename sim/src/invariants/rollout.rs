//! Rolling updates: never more than count plus canaries desired, never fewer healthy than count
//! minus max_parallel, and an unhealthy allocation stops the rollout.

use std::collections::{BTreeMap, BTreeSet};

use nomos_api::{Allocation, ClientStatus, DesiredStatus, Job};

use super::placement::{counts_as_serving, replaced_ids};
use super::{is_service, job_key, violation, Actor, Checker, Violation};
use crate::observe::{JobKey, Snapshot};

pub(super) fn canaries_of(job: &Job) -> u32 {
    job.update
        .as_ref()
        .filter(|u| u.max_parallel > 0)
        .map(|u| u.canary)
        .unwrap_or(0)
}

fn max_parallel_of(job: &Job) -> u32 {
    job.update.as_ref().map(|u| u.max_parallel).unwrap_or(0)
}

pub(super) fn never_more_than_count_plus_canary_are_desired_to_run(
    c: &Checker,
    cur: &Snapshot,
    _: &Actor,
    out: &mut Vec<Violation>,
) {
    let replaced = replaced_ids(cur);
    for (job, versions) in &cur.versions {
        let Some((v, j)) = versions.last_key_value() else {
            continue;
        };
        if !is_service(cur, job) || j.stop {
            continue;
        }
        // A version written by `auto_revert` is applied by the job's next reconcile: until then
        // the count of the version before it holds.
        let reverting = c.reverted_pending.get(job).copied().unwrap_or(0).max(
            c.prev
                .newest(job)
                .filter(|(pv, _)| pv < v)
                .map_or(0, |(_, p)| {
                    p.groups.iter().map(|g| g.count).max().unwrap_or(0) + canaries_of(p)
                }),
        );
        for g in &j.groups {
            let serving: Vec<String> = cur
                .allocs_of(job)
                .filter(|a| a.task_group == g.name && counts_as_serving(cur, a, &replaced))
                // An allocation of a node whose drain just ended is settled by the job's next
                // reconcile.
                .filter(|a| !c.undrained_unseen.contains(&a.id))
                // An original back from a lost node (or a superseded canary that alone served
                // its index) beside the newer allocation that took its index, not healthy yet or
                // healthy only since this step: it stops once the controllers see that one healthy.
                .filter(|a| {
                    !cur.allocs_of(job).any(|n| {
                        n.task_group == a.task_group
                            && n.index == a.index
                            && n.job_version > a.job_version
                            && cur.is_live(n)
                            && (!cur.is_healthy(n) || c.healthy_unseen.contains(&n.id))
                    })
                })
                .map(|a| {
                    format!(
                        "{} v{}[{}] on {}",
                        &a.id[..8.min(a.id.len())],
                        a.job_version,
                        a.index,
                        a.node
                    )
                })
                .collect();
            let live = serving.len() as u32;
            let limit = (g.count + canaries_of(j)).max(reverting);
            if live > limit {
                violation(
                    out,
                    "never_more_than_count_plus_canary_are_desired_to_run",
                    format!(
                        "{}/{}: {live} live allocations, count {} + canary {}: {serving:?}",
                        job.1,
                        g.name,
                        g.count,
                        canaries_of(j)
                    ),
                );
            }
        }
    }
}

/// Indexes of the group served by a healthy allocation on a connected node (two at one index,
/// a canary beside its twin, serve it once).
fn healthy_count(s: &Snapshot, job: &JobKey, group: &str) -> u32 {
    // (An allocation on a node just back counts: it is being restored, and an original kept
    // over its replacement serves in its place.)
    // A drain judges what takes over an index by the `migrate` block's rule, which may differ
    // from the agent's deployment verdict: an allocation at the index of one on a draining
    // node serves it as soon as the drain counts it healthy.
    let migrated_healthy = |a: &Allocation| {
        let on_draining = s.allocs_of(job).any(|d| {
            d.task_group == group && d.index == a.index && d.id != a.id && s.draining(&d.node)
        });
        let Some((_, j)) = s.newest(job) else {
            return false;
        };
        let Some(g) = j.groups.iter().find(|g| g.name == group) else {
            return false;
        };
        let migrate = nomos_controllers::drain::migrate_for(j, group);
        let rule = nomos_controllers::health::HealthRule::migration(g, &migrate);
        on_draining
            && a.desired_status == DesiredStatus::Run
            && s.client_status(&a.id) == Some(ClientStatus::Running)
            && nomos_controllers::health::migration_health(
                s.alloc_status.get(&a.id).map(|x| &**x),
                &rule,
                s.now_ms,
            ) == nomos_controllers::health::MigrationHealth::Healthy
    };
    s.allocs_of(job)
        .filter(|a| {
            a.task_group == group
                && s.node_up(&a.node)
                && (s.is_healthy(a)
                    || migrated_healthy(a)
                    || (s.settling.contains(&a.node) && s.is_live(a)))
        })
        .map(|a| a.index)
        .collect::<BTreeSet<u32>>()
        .len() as u32
}

/// Allocations that went from desired run to stop in this action while a new allocation that
/// names them as predecessor appeared: destructive updates, migrations and reschedules.
fn replaced_now<'a>(
    prev: &'a Snapshot,
    cur: &'a Snapshot,
) -> Vec<(&'a Allocation, &'a Allocation)> {
    let mut out = Vec::new();
    for n in cur.allocs.values() {
        if prev.allocs.contains_key(&n.id) || n.previous_alloc.is_empty() {
            continue;
        }
        let (Some(before), Some(after)) = (
            prev.allocs.get(&n.previous_alloc),
            cur.allocs.get(&n.previous_alloc),
        ) else {
            continue;
        };
        // A failed or finished allocation is rescheduled, not updated.
        // Neither is one whose node is gone: it is replaced because it no longer runs.
        let was_running = !prev
            .client_status(&before.id)
            .is_some_and(ClientStatus::is_terminal)
            && cur.nodes.contains_key(&before.node);
        if before.desired_status == DesiredStatus::Run
            && after.desired_status == DesiredStatus::Stop
            && was_running
        {
            out.push((&**before, &**n));
        }
    }
    out
}

pub(super) fn an_update_never_leaves_fewer_than_count_minus_max_parallel_healthy(
    c: &Checker,
    cur: &Snapshot,
    actor: &Actor,
    out: &mut Vec<Violation>,
) {
    if !actor.is_controller() {
        return;
    }
    let prev = &c.prev;
    // Healthy allocations the controllers stopped in this action, by job and group.
    let mut stopped: BTreeMap<(JobKey, String), u32> = BTreeMap::new();
    for (id, before) in &prev.allocs {
        let Some(after) = cur.allocs.get(id) else {
            continue;
        };
        // Scaling down stops the highest indexes on purpose.
        let scaled_away = cur
            .newest(&job_key(after))
            .and_then(|(_, j)| j.groups.iter().find(|g| g.name == after.task_group))
            .is_none_or(|g| after.index >= g.count);
        // (A node just back is settled by the node-lifecycle loop, not by an update.)
        if prev.is_healthy(before)
            && prev.node_up(&before.node)
            && !prev.settling.contains(&before.node)
            && after.desired_status == DesiredStatus::Stop
            && after.desired_description != nomos_controllers::drain::DEADLINE_REASON
            && !scaled_away
        {
            *stopped
                .entry((job_key(after), after.task_group.clone()))
                .or_default() += 1;
        }
    }
    for ((job, group), n) in stopped {
        let Some((_, j)) = cur.newest(&job) else {
            continue;
        };
        // Stopping or purging a job stops its allocations on purpose.
        if !is_service(cur, &job) || j.stop || !cur.specs.contains_key(&job) {
            continue;
        }
        let Some(g) = j.groups.iter().find(|g| g.name == group) else {
            continue;
        };
        let before = healthy_count(prev, &job, &group);
        let after = healthy_count(cur, &job, &group);
        let drain_budget = if cur.allocs_of(&job).any(|a| cur.draining(&a.node)) {
            nomos_controllers::drain::migrate_for(j, &group)
                .max_parallel
                .max(1)
        } else {
            0
        };
        // A group scaled up has not reached its new count yet: the floor follows the smaller.
        let count_before = prev
            .newest(&job)
            .and_then(|(_, p)| p.groups.iter().find(|x| x.name == group).map(|x| x.count));
        let floor = g
            .count
            .min(count_before.unwrap_or(g.count))
            .saturating_sub(max_parallel_of(j).max(1) + drain_budget);
        // Scaling down or stopping stops healthy allocations on purpose.
        let scaled_down = count_before.is_some_and(|c| c > g.count);
        if after < floor && after < before && !scaled_down {
            violation(
                out,
                "an_update_never_leaves_fewer_than_count_minus_max_parallel_healthy",
                format!(
                    "{}/{group}: {n} healthy allocation(s) stopped, healthy {before} -> {after}, floor {floor} (count {}, max_parallel {})",
                    job.1, g.count, max_parallel_of(j)
                ),
            );
        }
    }
}

/// New-version allocations of the job's active deployment that are unhealthy and neither
/// replaced nor covered by a healthy allocation at their index.
fn unhealthy_unreplaced<'a>(s: &'a Snapshot, job: &'a JobKey) -> Vec<&'a Allocation> {
    let Some(d) = s.current_deployment(job).filter(|d| d.is_active()) else {
        return Vec::new();
    };
    let replaced: BTreeSet<&str> = s
        .allocs_of(job)
        .filter(|a| !a.previous_alloc.is_empty())
        .map(|a| a.previous_alloc.as_str())
        .collect();
    let healthy_idx: BTreeSet<u32> = s
        .allocs_of(job)
        .filter(|a| d.rolls_out(a.job_version, &a.job_spec_hash) && s.is_healthy(a))
        .map(|a| a.index)
        .collect();
    // Indexes held by a live allocation of the deployment's version: a failure there that the
    // servers stopped is replaced, named or not (seed 2689: a lost canary got a fresh canary,
    // then came back failed and was stopped).
    let held_idx: BTreeSet<u32> = s
        .allocs_of(job)
        .filter(|a| d.rolls_out(a.job_version, &a.job_spec_hash) && s.is_live(a))
        .map(|a| a.index)
        .collect();
    s.allocs_of(job)
        .filter(|a| {
            d.rolls_out(a.job_version, &a.job_spec_hash) && !replaced.contains(a.id.as_str())
        })
        .filter(|a| !healthy_idx.contains(&a.index))
        .filter(|a| a.desired_status == DesiredStatus::Run || !held_idx.contains(&a.index))
        .filter(|a| {
            s.alloc_status.get(&a.id).is_some_and(|st| {
                st.client_status == ClientStatus::Failed || st.healthy == Some(false)
            })
        })
        .collect()
}

pub(super) fn an_unhealthy_allocation_stops_the_rollout(
    c: &Checker,
    cur: &Snapshot,
    actor: &Actor,
    out: &mut Vec<Violation>,
) {
    if !actor.is_controller() {
        return;
    }
    let prev = &c.prev;
    for (old, new) in replaced_now(prev, cur) {
        let job = job_key(old);
        let Some(d) = prev.current_deployment(&job) else {
            continue;
        };
        // A destructive update: an older version replaced by the deployment's version.
        if !d.rolls_out(new.job_version, &new.job_spec_hash)
            || d.rolls_out(old.job_version, &old.job_spec_hash)
        {
            continue;
        }
        let bad = unhealthy_unreplaced(prev, &job);
        if !bad.is_empty() {
            violation(
                out,
                "an_unhealthy_allocation_stops_the_rollout",
                format!(
                    "{} replaced by {} while {} of the deployment {} were unhealthy: {:?}",
                    old.name,
                    new.id,
                    bad.len(),
                    d.id,
                    bad.iter().map(|a| &a.id).collect::<Vec<_>>()
                ),
            );
        }
    }
}
