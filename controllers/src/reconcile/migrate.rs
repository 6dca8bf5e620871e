//! Migrations off draining nodes, `migrate.max_parallel` at a time.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use nomos_api::{Allocation, TaskGroup};

use super::index::is_of_version;
use super::model::{stop, FollowUp, Input, NodeHealth, ObservedAlloc, Place, Plan, Replace};
use crate::health::{migration_health, HealthRule, MigrationHealth};

/// The `migrate` block of a group, as the migrations read it.
pub(super) struct Migration<'a> {
    pub(super) rule: &'a HealthRule,
    pub(super) deadline_ms: i64,
    pub(super) max_parallel: u32,
}

/// Migrations off draining nodes: a replacement is placed elsewhere first, with at most
/// `migrate.max_parallel` replacements not yet healthy per group, and the original stops only
/// once a live allocation at its index elsewhere is healthy (`migrate.min_healthy_time`).
/// (`draining_ids`: every allocation of the group on a draining node, none of which counts as
/// a replacement.)
#[allow(clippy::too_many_arguments)]
pub(super) fn migrate_off_draining_nodes<'a>(
    input: &Input<'_>,
    group: &TaskGroup,
    m: &Migration<'_>,
    draining: &[&'a ObservedAlloc],
    draining_ids: &HashSet<&str>,
    live: &'a BTreeMap<u32, Vec<&'a ObservedAlloc>>,
    occupied: &mut BTreeSet<u32>,
    succ: &dyn Fn(&Allocation) -> Place,
    plan: &mut Plan,
) {
    let now = input.now_ms;
    let being_placed: HashSet<u32> = plan
        .place
        .iter()
        .chain(plan.reschedule.iter().map(|r| &r.place))
        .filter(|p| p.group == group.name)
        .map(|p| p.index)
        .collect();
    let mut in_flight_migrations = 0u32;
    let mut waiting: Vec<&ObservedAlloc> = Vec::new();
    let mut given_up: HashSet<&str> = HashSet::new();
    for a in draining {
        let al = &a.alloc;
        occupied.insert(al.index);
        // Its replacement: a live allocation at its index elsewhere, the one that names it
        // first. A canary of this version is replaced only by its own successor or another
        // allocation of this version (its older twin is what it canaries, not a replacement);
        // an old allocation, or a canary of an older version, moves onto whatever serves its
        // index (placing a successor beside it would run the index twice).
        let canary_of_this_version = al.canary && is_of_version(input, al);
        let replacement = live.get(&al.index).and_then(|v| {
            let elsewhere = || {
                v.iter()
                    .filter(|x| !draining_ids.contains(x.alloc.id.as_str()))
            };
            elsewhere()
                .find(|x| x.alloc.previous_alloc == al.id)
                .or_else(|| {
                    elsewhere().find(|x| !canary_of_this_version || is_of_version(input, &x.alloc))
                })
        });
        match replacement {
            // (Healthy where its node is in touch: one that missed its heartbeat serves nobody
            // anyone knows of.)
            Some(r)
                if migration_health(r.status.as_ref(), m.rule, now) == MigrationHealth::Healthy
                    && matches!(
                        (input.node_health)(&r.alloc.node),
                        NodeHealth::Ready | NodeHealth::Draining
                    ) =>
            {
                plan.stop
                    .push(stop(al, "node draining; replacement healthy"));
            }
            Some(r) => {
                in_flight_migrations += 1;
                let give_up_at = (m.deadline_ms > 0)
                    .then(|| r.alloc.created_at_ms.saturating_add(m.deadline_ms));
                if give_up_at.is_some_and(|t| now >= t) {
                    // Not healthy within `migrate.healthy_deadline`: replace the replacement,
                    // away from its node; the original keeps running meanwhile. (Once: two
                    // draining allocations of one index may share the replacement.)
                    if !given_up.insert(r.alloc.id.as_str()) {
                        continue;
                    }
                    plan.reschedule.push(Replace {
                        stop: stop(&r.alloc, "not healthy within migrate.healthy_deadline"),
                        place: Place {
                            penalty_node: Some(r.alloc.node.clone()),
                            ..succ(al)
                        },
                    });
                    continue;
                }
                let healthy = match migration_health(r.status.as_ref(), m.rule, now) {
                    MigrationHealth::At(t) => Some(t),
                    _ => None,
                };
                let at = match (healthy, give_up_at) {
                    (Some(h), Some(g)) => h.min(g),
                    (h, g) => h.or(g).unwrap_or(now + 5_000),
                };
                plan.follow_ups.push(FollowUp {
                    at_ms: at,
                    reason: format!("migration of {}", al.name),
                });
            }
            None if being_placed.contains(&al.index) => in_flight_migrations += 1,
            None => waiting.push(a),
        }
    }
    let mut budget = m.max_parallel.saturating_sub(in_flight_migrations);
    // One successor per index and kind: two draining allocations of one index (an original
    // and its replacement, both on the node) move as one.
    // (A replacement given up on above is placed again already.)
    let mut moving: HashSet<(u32, bool)> = being_placed.iter().map(|i| (*i, false)).collect();
    moving.extend(
        plan.reschedule
            .iter()
            .filter(|r| r.place.group == group.name)
            .map(|r| (r.place.index, r.place.canary)),
    );
    for a in waiting {
        if !moving.insert((a.alloc.index, succ(&a.alloc).canary)) {
            continue;
        }
        if budget == 0 {
            plan.follow_ups.push(FollowUp {
                at_ms: now + 5_000,
                reason: "drain in progress".into(),
            });
            break;
        }
        budget -= 1;
        plan.place.push(succ(&a.alloc));
    }
}
