//! Facts about one allocation and the index it holds: its version, whether it serves, what
//! else runs at its index, what replaced it, and whether a new version changes it in place.

use std::collections::{HashMap, HashSet};

use nomos_api::{Allocation, ClientStatus, DesiredStatus, Job, TaskGroup, UpdateStrategy};

use super::model::{Input, NodeHealth, ObservedAlloc};
use crate::health::HealthRule;

/// The effective update strategy of a group (its own, else the job's), if it rolls.
pub fn update_strategy<'a>(job: &'a Job, group: &'a TaskGroup) -> Option<&'a UpdateStrategy> {
    job.update_for(group).filter(|u| u.max_parallel > 0)
}

/// Whether moving an allocation from `old` to `new` needs a restart.
pub fn needs_destructive_update(old: &TaskGroup, new: &TaskGroup) -> bool {
    old.tasks != new.tasks
        || old.networks != new.networks
        || old.ephemeral_disk != new.ephemeral_disk
        || old.volumes != new.volumes
        || old.meta != new.meta
        || old.services != new.services
}

/// Running on a node that is in touch (ready or draining): an allocation of a node that missed
/// its heartbeat, or is gone, serves nobody anyone knows of.
pub(super) fn runs_on_connected_node(input: &Input<'_>, a: &ObservedAlloc) -> bool {
    a.client_status() == ClientStatus::Running
        && matches!(
            (input.node_health)(&a.alloc.node),
            NodeHealth::Ready | NodeHealth::Draining
        )
}

/// A running allocation on a connected node, with no other allocation (not a canary) running
/// at its index on a connected node: stopping it leaves the index unserved. (A failed
/// deployment keeps such a canary; the next passes treat it as a stale canary.)
pub(super) fn serves_its_index_alone(input: &Input<'_>, a: &ObservedAlloc) -> bool {
    let connected = |x: &ObservedAlloc| runs_on_connected_node(input, x);
    connected(a) && !another_at_its_index(input, a, connected)
}

/// Whether another allocation (not a canary, desired to run) at `a`'s index passes `also`.
pub(super) fn another_at_its_index(
    input: &Input<'_>,
    a: &ObservedAlloc,
    also: impl Fn(&ObservedAlloc) -> bool,
) -> bool {
    input.allocs.iter().any(|x| {
        x.alloc.task_group == a.alloc.task_group
            && x.alloc.index == a.alloc.index
            && x.alloc.id != a.alloc.id
            && !x.alloc.canary
            && x.alloc.desired_status == DesiredStatus::Run
            && also(x)
    })
}

/// A canary whose stop would free its index for an immediate refill: one that alone serves
/// it, or a failure of the newest version with no other live allocation there. Such a failure
/// is kept and replaced by its reschedule policy, as any failure is; the policy's delay is what
/// stops a crashing version from being placed again and again.
pub(super) fn holds_its_index_alone(input: &Input<'_>, a: &ObservedAlloc) -> bool {
    if a.client_status() != ClientStatus::Failed {
        return serves_its_index_alone(input, a);
    }
    is_of_version(input, &a.alloc) && !another_at_its_index(input, a, |x| !x.is_terminal())
}

/// Whether an allocation is of the input's newest version: its number, and the same spec when
/// the allocation names one (a purged job created again reuses version numbers).
pub(super) fn is_of_version(input: &Input<'_>, a: &Allocation) -> bool {
    a.job_version == input.version
        && (a.job_spec_hash.is_empty() || a.job_spec_hash == input.spec_hash)
}

/// Whether the allocation names this version's spec (or names none, from before hashes).
pub(super) fn names_spec(a: &Allocation, version: &Job) -> bool {
    a.job_spec_hash.is_empty() || a.job_spec_hash == nomos_api::spec_hash(version)
}

/// The health rule of the version an allocation runs (its group's `update` block), or
/// `fallback` when that version is not known.
pub(super) fn rule_of_version(
    input: &Input<'_>,
    a: &Allocation,
    fallback: &HealthRule,
) -> HealthRule {
    input
        .versions
        .get(&a.job_version)
        .filter(|j| names_spec(a, j))
        .and_then(|j| {
            let g = j.groups.iter().find(|g| g.name == a.task_group)?;
            let u = update_strategy(j, g)?;
            Some(HealthRule::new(g, &u.health_check, u.min_healthy_time_ns))
        })
        .unwrap_or(*fallback)
}

/// Ids of allocations with a successor (direct or further down the line of replacements)
/// that is still desired to run.
pub(super) fn replaced_by_live_successors<'a>(mine: &[&'a ObservedAlloc]) -> HashSet<&'a str> {
    let mut successors: HashMap<&str, Vec<&ObservedAlloc>> = HashMap::new();
    for a in mine {
        if !a.alloc.previous_alloc.is_empty() {
            successors
                .entry(a.alloc.previous_alloc.as_str())
                .or_default()
                .push(a);
        }
    }
    let mut out = HashSet::new();
    for a in mine {
        let mut stack: Vec<&ObservedAlloc> = successors
            .get(a.alloc.id.as_str())
            .cloned()
            .unwrap_or_default();
        let mut seen = 0usize;
        while let Some(s) = stack.pop() {
            if s.alloc.desired_status == DesiredStatus::Run {
                out.insert(a.alloc.id.as_str());
                break;
            }
            seen += 1;
            if seen > mine.len() {
                break; // a cycle in corrupt data
            }
            stack.extend(successors.get(s.alloc.id.as_str()).into_iter().flatten());
        }
    }
    out
}
