//! The rolling update of one group: canaries first, then `max_parallel` at a time while
//! `count - max_parallel` stay healthy, halted by an unhealthy allocation.

use std::collections::{BTreeMap, HashSet};

use nomos_api::{
    deployment_status as ds, ClientStatus, Deployment, DeploymentGroup, DesiredStatus, TaskGroup,
    UpdateStrategy,
};

use super::deployment::{alloc_health, deployment_health, healthy_at, new_deployment};
use super::index::{rule_of_version, runs_on_connected_node};
use super::model::{stop, successor, FollowUp, Input, ObservedAlloc, Place, Plan, Replace};
use crate::health::HealthRule;

/// Indexes served by healthy allocations, with how many serve each: two at one index (a canary
/// and its twin) serve it once, so stopping one of them leaves it served.
#[derive(Debug, Default)]
pub(super) struct ServedIndexes(BTreeMap<u32, u32>);

impl ServedIndexes {
    fn add(&mut self, index: u32) {
        *self.0.entry(index).or_default() += 1;
    }

    fn leave(&mut self, index: u32) {
        if let Some(n) = self.0.get_mut(&index) {
            *n -= 1;
            if *n == 0 {
                self.0.remove(&index);
            }
        }
    }

    fn only_one(&self, index: u32) -> bool {
        self.0.get(&index) == Some(&1)
    }

    fn len(&self) -> u32 {
        self.0.len() as u32
    }
}

/// What a rolling update looks at in one group.
pub(super) struct Rollout<'a> {
    pub(super) group: &'a TaskGroup,
    pub(super) u: &'a UpdateStrategy,
    pub(super) rule: &'a HealthRule,
    /// Live allocations by index.
    pub(super) live: &'a BTreeMap<u32, Vec<&'a ObservedAlloc>>,
    /// Live allocations of older versions that need a destructive update.
    pub(super) old: &'a [&'a ObservedAlloc],
    /// Every allocation of the new version in the group, whatever its state.
    pub(super) all_new: &'a [&'a ObservedAlloc],
    /// Failed allocations of the new version that nothing replaced yet.
    pub(super) failed_new: &'a [&'a ObservedAlloc],
}

pub(super) fn rolling_update(
    input: &Input<'_>,
    r: &Rollout<'_>,
    counts_as_new: &dyn Fn(&ObservedAlloc) -> bool,
    plan: &mut Plan,
    deployment: &mut Option<Deployment>,
) {
    let new_allocs: Vec<&ObservedAlloc> = r
        .live
        .values()
        .flatten()
        .copied()
        .filter(|a| counts_as_new(a))
        .collect();
    let s = NewVersion::of(input, r, new_allocs, plan);
    let d = deployment.get_or_insert_with(|| new_deployment(input));
    let paused = d.status == ds::PAUSED;
    // A failed or cancelled deployment rolls nothing more. After a successful one, what still
    // runs an older version (an allocation back from a lost node) is updated like the rest,
    // and the finished deployment is left as it is.
    let finished = d.status == ds::SUCCESSFUL;
    if d.status != ds::RUNNING && !paused && !finished {
        return;
    }
    let g = d
        .groups
        .entry(r.group.name.clone())
        .or_insert_with(|| DeploymentGroup {
            desired_canaries: if r.old.is_empty() { 0 } else { r.u.canary },
            auto_revert: r.u.auto_revert,
            auto_promote: r.u.auto_promote,
            progress_deadline_ms: progress_deadline_ms(r.u),
            ..Default::default()
        });
    if !finished {
        record_progress(input, r, &s, g, paused, counts_as_new);
    }
    if paused {
        return;
    }
    // Canaries first.
    if g.desired_canaries > 0 && !g.promoted && !finished && !canaries(input, r, &s, g, plan) {
        return;
    }
    replace_older(input, r, &s, plan);
}

/// The health a user set by hand for the allocation in the deployment of the new version.
fn manual_health(input: &Input<'_>, a: &ObservedAlloc) -> Option<bool> {
    input
        .deployment
        .and_then(|d| d.manual_health.get(&a.alloc.id).copied())
}

/// The new version's allocations in one group, as the rollout judges them.
struct NewVersion<'a> {
    /// Live allocations counted as new (updated in place ones included).
    allocs: Vec<&'a ObservedAlloc>,
    /// Their verdicts by the deployment's rule and healthy deadline.
    health: Vec<Option<bool>>,
    healthy: u32,
    unhealthy_live: u32,
    /// Failures this plan reschedules.
    rescheduling: u32,
    /// Failures waiting for the time their policy allows.
    awaiting_reschedule: u32,
    failed_total: u32,
}

impl<'a> NewVersion<'a> {
    /// Judges the allocations, and asks to be looked at again when one turns healthy by time
    /// or reaches its healthy deadline.
    fn of(
        input: &Input<'_>,
        r: &Rollout<'_>,
        allocs: Vec<&'a ObservedAlloc>,
        plan: &mut Plan,
    ) -> Self {
        let now = input.now_ms;
        let deadline_ms = (r.u.healthy_deadline_ns / 1_000_000) as i64;
        let health: Vec<Option<bool>> = allocs
            .iter()
            .map(|a| {
                manual_health(input, a).or_else(|| deployment_health(a, r.rule, deadline_ms, now))
            })
            .collect();
        for (a, h) in allocs.iter().zip(&health) {
            if let Some(t) = healthy_at(a, r.rule).filter(|t| *t > now) {
                plan.follow_ups.push(FollowUp {
                    at_ms: t,
                    reason: format!("{} healthy", a.alloc.name),
                });
            }
            if deadline_ms > 0 && h.is_none() {
                plan.follow_ups.push(FollowUp {
                    at_ms: a.alloc.created_at_ms.saturating_add(deadline_ms) + 1,
                    reason: format!("{} healthy deadline", a.alloc.name),
                });
            }
        }
        let rescheduling: HashSet<&str> = plan
            .reschedule
            .iter()
            .filter(|x| x.place.group == r.group.name)
            .map(|x| x.stop.alloc_id.as_str())
            .collect();
        let count = |v: Option<bool>| health.iter().filter(|h| **h == v).count() as u32;
        NewVersion {
            healthy: count(Some(true)),
            unhealthy_live: count(Some(false)),
            rescheduling: rescheduling.len() as u32,
            awaiting_reschedule: r
                .failed_new
                .iter()
                .filter(|a| !rescheduling.contains(a.alloc.id.as_str()))
                .count() as u32,
            failed_total: r
                .all_new
                .iter()
                .filter(|a| a.client_status() == ClientStatus::Failed)
                .count() as u32,
            allocs,
            health,
        }
    }

    fn judged(&self) -> impl Iterator<Item = (&'a ObservedAlloc, Option<bool>)> + '_ {
        self.allocs.iter().copied().zip(self.health.iter().copied())
    }
}

/// The deployment group's counts, and its progress deadline: it runs only while the group can
/// make progress (not while paused, not while its healthy canaries wait for a promotion, not
/// once it is done) and moves with each allocation that turns healthy.
fn record_progress(
    input: &Input<'_>,
    r: &Rollout<'_>,
    s: &NewVersion<'_>,
    g: &mut DeploymentGroup,
    paused: bool,
    counts_as_new: &dyn Fn(&ObservedAlloc) -> bool,
) {
    let progressed = s.healthy > g.healthy;
    // Nothing is left to update and no canary was placed (the last older copies went in
    // place, as after a revert, or were stopped): there is nothing to try a canary on, and
    // waiting for one would hold the deployment for good.
    let no_canary_yet = !r.all_new.iter().any(|a| a.alloc.canary);
    if g.desired_canaries > 0 && !g.promoted && r.old.is_empty() && no_canary_yet {
        g.desired_canaries = 0;
    }
    g.desired_total = r.group.count;
    g.placed = r
        .all_new
        .iter()
        .filter(|a| a.client_status() == ClientStatus::Failed || counts_as_new(a))
        .count()
        .max(s.allocs.len()) as u32;
    g.healthy = s.healthy;
    g.unhealthy = s.unhealthy_live + s.failed_total;
    if g.desired_canaries > 0 {
        g.placed_canaries = r
            .all_new
            .iter()
            .filter(|a| a.alloc.canary)
            .map(|a| a.alloc.id.clone())
            .collect();
    }
    let done = g.healthy >= g.desired_total && (g.desired_canaries == 0 || g.promoted);
    let progress_ms = progress_deadline_ms(r.u);
    if progress_ms > 0 {
        if paused || done || g.waits_for_promotion() {
            g.require_progress_by_ms = 0;
        } else if g.require_progress_by_ms == 0 || progressed {
            g.require_progress_by_ms = input.now_ms + progress_ms;
        }
    }
}

/// The canary phase: places the canaries still missing, at indexes of older allocations, and
/// promotes them once all are healthy when `auto_promote` asks. Returns whether the rest of the
/// group may roll now (the canaries were just promoted).
fn canaries(
    input: &Input<'_>,
    r: &Rollout<'_>,
    s: &NewVersion<'_>,
    g: &mut DeploymentGroup,
    plan: &mut Plan,
) -> bool {
    let live_canaries: Vec<(&ObservedAlloc, Option<bool>)> =
        s.judged().filter(|(a, _)| a.alloc.canary).collect();
    // Canaries that exist: running, starting, moving off a draining node, or failed and
    // waiting for their reschedule.
    let existing = r
        .all_new
        .iter()
        .filter(|a| {
            a.alloc.canary
                && a.alloc.desired_status == DesiredStatus::Run
                && (!a.client_status().is_terminal()
                    || r.failed_new.iter().any(|f| f.alloc.id == a.alloc.id))
        })
        .map(|a| a.alloc.index);
    // ...and canaries this plan places already (a lost canary's successor).
    let placing: Vec<u32> = plan
        .placements()
        .filter(|p| p.canary && p.group == r.group.name)
        .map(|p| p.index)
        .collect();
    let taken: Vec<u32> = existing.chain(placing).collect();
    let missing = (g.desired_canaries as usize).saturating_sub(taken.len());
    // (Not where the new version runs already: a successor of a lost allocation, placed
    // before its original came back.)
    let updated: HashSet<u32> = s
        .allocs
        .iter()
        .chain(r.failed_new)
        .map(|a| a.alloc.index)
        .collect();
    for a in r
        .old
        .iter()
        .filter(|a| !taken.contains(&a.alloc.index) && !updated.contains(&a.alloc.index))
        .take(missing)
    {
        plan.place.push(Place {
            group: r.group.name.clone(),
            index: a.alloc.index,
            canary: true,
            ..Default::default()
        });
    }
    let all_healthy = live_canaries.len() as u32 >= g.desired_canaries
        && live_canaries.iter().all(|(_, h)| *h == Some(true));
    if !(all_healthy && r.u.auto_promote) {
        return false;
    }
    g.promoted = true;
    let progress_ms = progress_deadline_ms(r.u);
    if progress_ms > 0 {
        g.require_progress_by_ms = input.now_ms + progress_ms;
    }
    true
}

fn progress_deadline_ms(u: &UpdateStrategy) -> i64 {
    (u.progress_deadline_ns / 1_000_000) as i64
}

/// Replaces older allocations: an unhealthy allocation stops the rollout until it is healthy
/// or replaced (Nomad's `computeLimit`); otherwise at most `max_parallel` new allocations are
/// not yet healthy, and a healthy allocation is only replaced while `count - max_parallel`
/// others stay healthy. (A failed allocation halts it in the pass that reschedules it, too.)
fn replace_older(input: &Input<'_>, r: &Rollout<'_>, s: &NewVersion<'_>, plan: &mut Plan) {
    let (group, u, now) = (r.group, r.u, input.now_ms);
    let halted = s.unhealthy_live > 0 || s.awaiting_reschedule > 0 || !r.failed_new.is_empty();
    let in_flight = s.allocs.len() as u32 - s.healthy + s.rescheduling;
    let mut budget = if halted {
        0
    } else {
        u.max_parallel.saturating_sub(in_flight)
    };
    // (Running: an allocation of a disconnected node keeps its verdict but serves nobody. With
    // no verdict from its agent yet, an older allocation is judged by its own version's rule.)
    let old_healthy = |a: &ObservedAlloc| {
        runs_on_connected_node(input, a)
            && manual_health(input, a)
                .or_else(|| alloc_health(a, &rule_of_version(input, &a.alloc, r.rule), now))
                == Some(true)
    };
    let mut served = ServedIndexes::default();
    for a in r.live.values().flatten().filter(|a| old_healthy(a)) {
        served.add(a.alloc.index);
    }
    let floor = group.count.saturating_sub(u.max_parallel);
    // Indexes a healthy new allocation serves: on a node in touch (a healthy canary whose node
    // missed its heartbeat keeps its verdict, but the older copy beside it still serves).
    let healthy_idx: HashSet<u32> = s
        .judged()
        .filter(|(a, h)| *h == Some(true) && runs_on_connected_node(input, a))
        .map(|(a, _)| a.alloc.index)
        .collect();
    let mut placing: HashSet<u32> = plan
        .placements()
        .filter(|p| p.group == group.name)
        .map(|p| p.index)
        .collect();
    // Old allocations that are not healthy go first.
    let mut order: Vec<&ObservedAlloc> = r.old.to_vec();
    order.sort_by_key(|a| (old_healthy(a), a.alloc.index));
    for a in order {
        if healthy_idx.contains(&a.alloc.index) {
            plan.stop.push(stop(
                &a.alloc,
                "replaced by a healthy allocation of the new version",
            ));
            if old_healthy(a) {
                served.leave(a.alloc.index);
            }
            continue;
        }
        if budget == 0
            || s.allocs.iter().any(|n| n.alloc.index == a.alloc.index)
            || placing.contains(&a.alloc.index)
        {
            // No room, its replacement (a canary) is not healthy yet, or a new allocation is
            // being placed at its index already (a reschedule or a migration).
            continue;
        }
        if old_healthy(a) {
            if served.only_one(a.alloc.index) && served.len() <= floor {
                continue;
            }
            served.leave(a.alloc.index);
        }
        budget -= 1;
        // One successor per index, even where two older allocations share it (one of them on
        // a node that is away).
        placing.insert(a.alloc.index);
        plan.destructive_update.push(Replace {
            stop: stop(&a.alloc, "rolling update"),
            place: successor(&group.name, &a.alloc),
        });
    }
}
