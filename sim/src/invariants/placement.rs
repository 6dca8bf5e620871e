//! Where allocations run: each names the spec it was placed with, no node holds more than it
//! has, no index runs twice, and nothing is deleted before it stopped and finished.

use std::collections::{BTreeMap, BTreeSet};

use nomos_api::{Allocation, ClientStatus, DesiredStatus, JobType};

use super::{job_key, version_of, violation, Actor, Checker, Violation};
use crate::observe::{JobKey, Snapshot};

pub(super) fn every_allocation_names_the_spec_it_was_placed_with(
    c: &Checker,
    cur: &Snapshot,
    _: &Actor,
    out: &mut Vec<Violation>,
) {
    for a in cur.allocs.values() {
        if a.job_spec_hash.is_empty() {
            violation(
                out,
                "every_allocation_names_the_spec_it_was_placed_with",
                format!("{} ({}) names no spec hash", a.id, a.name),
            );
            continue;
        }
        // Checked when it is placed: a job purged and created again writes its version 0
        // while the purged job's stopped allocations may still be there.
        if c.prev.allocs.contains_key(&a.id) {
            continue;
        }
        if let Some(h) = cur.version_hash(&job_key(a), a.job_version) {
            if h != a.job_spec_hash {
                violation(
                    out,
                    "every_allocation_names_the_spec_it_was_placed_with",
                    format!(
                        "{} ({}) names spec {} but version {} holds spec {h}",
                        a.id, a.name, a.job_spec_hash, a.job_version
                    ),
                );
            }
        }
    }
}

pub(super) fn no_node_is_over_committed(
    _: &Checker,
    cur: &Snapshot,
    _: &Actor,
    out: &mut Vec<Violation>,
) {
    let mut used: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for a in cur.allocs.values().filter(|a| cur.is_live(a)) {
        let Some(job) = version_of(cur, a) else {
            continue;
        };
        let Some(g) = job.groups.iter().find(|g| g.name == a.task_group) else {
            continue;
        };
        let e = used.entry(a.node.as_str()).or_default();
        for t in &g.tasks {
            e.0 += t.resources.cpu as u64;
            e.1 += t.resources.memory_mb as u64;
        }
    }
    for (node, (cpu, mem)) in used {
        let Some(n) = cur.nodes.get(node) else {
            continue;
        };
        let r = &n.resources;
        let cap_cpu = r.cpu_mhz.saturating_sub(r.reserved_cpu_mhz) as u64;
        let cap_mem = r.memory_mb.saturating_sub(r.reserved_memory_mb) as u64;
        if cpu > cap_cpu || mem > cap_mem {
            violation(
                out,
                "no_node_is_over_committed",
                format!("{node}: {cpu} MHz / {mem} MB held, capacity {cap_cpu} MHz / {cap_mem} MB"),
            );
        }
    }
}

/// Live, on a connected, non-draining node, with a status that is neither unknown nor lost,
/// and not the original of a live replacement (a lost or draining original and its
/// replacement share an index by design until one of them stops).
pub(super) fn counts_as_serving(cur: &Snapshot, a: &Allocation, replaced: &BTreeSet<&str>) -> bool {
    cur.is_live(a)
        && cur.node_up(&a.node)
        && !cur.draining(&a.node)
        && !cur.settling.contains(&a.node)
        && !matches!(
            cur.client_status(&a.id),
            Some(ClientStatus::Unknown | ClientStatus::Lost)
        )
        && !replaced.contains(a.id.as_str())
}

/// Ids of allocations that a live allocation names as its predecessor.
pub(super) fn replaced_ids(cur: &Snapshot) -> BTreeSet<&str> {
    cur.allocs
        .values()
        .filter(|a| cur.is_live(a) && !a.previous_alloc.is_empty())
        .map(|a| a.previous_alloc.as_str())
        .collect()
}

pub(super) fn no_allocation_is_duplicated(
    _: &Checker,
    cur: &Snapshot,
    _: &Actor,
    out: &mut Vec<Violation>,
) {
    let replaced = replaced_ids(cur);
    let mut seen: BTreeMap<(JobKey, String, String), Vec<&str>> = BTreeMap::new();
    for a in cur.allocs.values() {
        let job = job_key(a);
        let Some((newest, j)) = cur.newest(&job) else {
            continue;
        };
        if a.job_version != newest || !counts_as_serving(cur, a, &replaced) {
            continue;
        }
        let slot = match j.job_type {
            JobType::System | JobType::Sysbatch => a.node.clone(),
            _ if j.periodic.is_some() => continue,
            _ => a.index.to_string(),
        };
        seen.entry((job, a.task_group.clone(), slot))
            .or_default()
            .push(&a.id);
    }
    for ((job, group, slot), ids) in seen {
        if ids.len() > 1 {
            violation(
                out,
                "no_allocation_is_duplicated",
                format!(
                    "{}/{group} slot {slot}: {} live allocations of the newest version: {ids:?}",
                    job.1,
                    ids.len()
                ),
            );
        }
    }
}

pub(super) fn allocations_are_deleted_only_when_stopped_and_finished(
    c: &Checker,
    cur: &Snapshot,
    _: &Actor,
    out: &mut Vec<Violation>,
) {
    let prev = &c.prev;
    for (id, a) in &prev.allocs {
        if cur.allocs.contains_key(id) {
            continue;
        }
        let finished = prev.client_status(id).is_none_or(ClientStatus::is_terminal);
        let node_gone = !prev.nodes.contains_key(&a.node);
        if a.desired_status == DesiredStatus::Run || !(finished || node_gone) {
            violation(
                out,
                "allocations_are_deleted_only_when_stopped_and_finished",
                format!(
                    "{id} ({}) was deleted while desired {:?} with status {:?}",
                    a.name,
                    a.desired_status,
                    prev.client_status(id)
                ),
            );
        }
    }
}
