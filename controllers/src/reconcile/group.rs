//! One group's reconcile, step by step: read the group's facts ([`Group`]), sort its
//! allocations (stale canaries, what is already replaced, stopped, finished, failed, lost,
//! down, draining, live), scale down, settle each index, classify what the new version updates
//! in place, then migrate off draining nodes, roll the update and fill the free indexes.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use nomos_api::{
    Allocation, ClientStatus, Deployment, DesiredStatus, JobType, ReschedulePolicy, TaskGroup,
    UpdateStrategy,
};

use super::deployment::{alloc_health, stale_canary};
use super::index::*;
use super::migrate::{migrate_off_draining_nodes, Migration};
use super::model::*;
use super::reschedule::{default_reschedule, reschedule_at};
use super::rollout::{rolling_update, Rollout};
use crate::health::HealthRule;

/// What the steps of one group's reconcile share, read once.
struct Group<'a> {
    input: &'a Input<'a>,
    group: &'a TaskGroup,
    strategy: Option<&'a UpdateStrategy>,
    /// When an allocation counts as healthy for the update.
    update_rule: HealthRule,
    policy: ReschedulePolicy,
    /// The group's allocations.
    mine: Vec<&'a ObservedAlloc>,
    /// Allocations whose line of successors still holds one that should run (a failed one
    /// waiting for its reschedule counts: it is replaced in its turn).
    replaced_ids: HashSet<&'a str>,
    /// Indexes served by a live allocation, and whether of the new version.
    live_idx: HashSet<(u32, bool)>,
    /// A deployment is under way.
    active: bool,
    /// Canaries asked for and not promoted yet.
    canaries_wanted: bool,
    /// Until the promotion, an older allocation that moves or is replaced keeps its version
    /// (its index is not updated yet, and a new-version successor beside the canary would run
    /// that index twice).
    canary_phase: bool,
}

/// Where the sorting put each allocation the group keeps.
#[derive(Default)]
struct Sorted<'a> {
    /// Indexes that are taken and need nothing placed.
    occupied: BTreeSet<u32>,
    /// Live allocations by index.
    live: BTreeMap<u32, Vec<&'a ObservedAlloc>>,
    /// Service allocations on draining nodes, kept apart from `live`: a replacement shares
    /// their index until it is healthy.
    draining: Vec<&'a ObservedAlloc>,
}

impl<'a> Group<'a> {
    fn read(input: &'a Input<'a>, group: &'a TaskGroup, deployment: Option<&Deployment>) -> Self {
        let job = input.job;
        let strategy = update_strategy(job, group);
        let update_rule = strategy
            .map(|u| HealthRule::new(group, &u.health_check, u.min_healthy_time_ns))
            .unwrap_or_default();
        let policy = group
            .reschedule
            .clone()
            .or_else(|| job.reschedule.clone())
            .unwrap_or_else(|| default_reschedule(job.job_type));
        let mine: Vec<&ObservedAlloc> = input
            .allocs
            .iter()
            .filter(|a| a.alloc.task_group == group.name)
            .collect();
        let replaced_ids = replaced_by_live_successors(&mine);
        let is_new = |a: &ObservedAlloc| is_of_version(input, &a.alloc);
        // A terminal allocation at an index served by a live one of the same version (new or
        // old) is not replaced. A failed canary beside its old twin is not served: it is
        // rescheduled by its policy like any failed allocation of the new version.
        let live_idx = mine
            .iter()
            .filter(|a| a.alloc.desired_status == DesiredStatus::Run)
            .filter(|a| {
                !a.client_status().is_terminal() && a.client_status() != ClientStatus::Unknown
                    || a.status.is_none()
            })
            .filter(|a| (input.node_health)(&a.alloc.node) != NodeHealth::Down)
            .map(|a| (a.alloc.index, is_new(a)))
            .collect();
        let active = deployment.filter(|d| d.is_active());
        let canaries_wanted = active
            .and_then(|d| d.groups.get(&group.name))
            .is_some_and(|g| !g.promoted);
        let canary_phase = strategy.is_some_and(|u| u.canary > 0)
            && match deployment {
                Some(d) => d.is_active() && d.groups.get(&group.name).is_none_or(|g| !g.promoted),
                None => mine.iter().any(|a| {
                    !is_new(a)
                        && a.alloc.desired_status == DesiredStatus::Run
                        && !a.client_status().is_terminal()
                }),
            };
        Group {
            input,
            group,
            strategy,
            update_rule,
            policy,
            mine,
            replaced_ids,
            live_idx,
            active: active.is_some(),
            canaries_wanted,
            canary_phase,
        }
    }

    fn is_new(&self, a: &ObservedAlloc) -> bool {
        is_of_version(self.input, &a.alloc)
    }

    /// The version a successor of `al` keeps: its own during a canary phase.
    fn keep_version(&self, al: &Allocation) -> Option<u64> {
        (self.canary_phase
            && !is_of_version(self.input, al)
            && self
                .input
                .versions
                .get(&al.job_version)
                .is_some_and(|j| names_spec(al, j)))
        .then_some(al.job_version)
    }

    /// A successor keeps what its predecessor was: the version during a canary phase, and
    /// being a canary while the canaries wait for promotion.
    fn successor(&self, al: &Allocation) -> Place {
        Place {
            version: self.keep_version(al),
            canary: al.canary && is_of_version(self.input, al) && self.canaries_wanted,
            ..successor(&self.group.name, al)
        }
    }

    /// Healthy on a connected node: it serves its index.
    fn serving(&self, a: &ObservedAlloc) -> bool {
        runs_on_connected_node(self.input, a)
            && alloc_health(a, &self.update_rule, self.input.now_ms) == Some(true)
    }

    fn batch(&self) -> bool {
        matches!(self.input.job.job_type, JobType::Batch | JobType::Sysbatch)
    }
}

pub(super) fn reconcile_group(
    input: &Input<'_>,
    group: &TaskGroup,
    plan: &mut Plan,
    deployment: &mut Option<Deployment>,
    deployment_needed: &mut bool,
    facts: &mut GroupFacts,
) {
    let g = Group::read(input, group, deployment.as_ref());
    let mut sorted = Sorted::default();
    for a in &g.mine {
        sort(&g, a, deployment.as_ref(), &mut sorted, plan, facts);
    }
    scale_down(&g, &mut sorted, plan);
    let is_new = |a: &ObservedAlloc| g.is_new(a);
    let serving = |a: &ObservedAlloc| g.serving(a);
    for allocs in sorted.live.values_mut() {
        settle_index(input, group, allocs, &is_new, &serving, plan);
    }
    let in_place_before = plan.inplace_update.len();
    let old_destructive = classify_versions(&g, &sorted.live, plan);
    let updated_in_place = plan.inplace_update.len() > in_place_before;
    let migrate = crate::drain::migrate_for(input.job, &group.name);
    let migration = Migration {
        rule: &HealthRule::migration(group, &migrate),
        deadline_ms: (migrate.healthy_deadline_ns / 1_000_000) as i64,
        max_parallel: migrate.max_parallel.max(1),
    };
    let draining_ids: HashSet<&str> = g
        .mine
        .iter()
        .filter(|a| (input.node_health)(&a.alloc.node) == NodeHealth::Draining)
        .map(|a| a.alloc.id.as_str())
        .collect();
    let succ = |al: &Allocation| g.successor(al);
    migrate_off_draining_nodes(
        input,
        group,
        &migration,
        &sorted.draining,
        &draining_ids,
        &sorted.live,
        &mut sorted.occupied,
        &succ,
        plan,
    );
    let rolls = deployment
        .as_ref()
        .is_some_and(|d| d.groups.contains_key(&group.name));
    let first = first_placement(&g, &sorted);
    // As in Nomad, a new version that only updates allocations in place is rolled out under a
    // deployment too (of a service job's group with an `update` block): it watches their
    // health and makes the version stable.
    let in_place_rollout = updated_in_place && deploys(&g);
    *deployment_needed |= first || in_place_rollout;
    if !old_destructive.is_empty() || rolls || first || in_place_rollout {
        match g.strategy {
            None => replace_all_at_once(&g, &sorted.live, &old_destructive, plan),
            Some(u) => {
                *deployment_needed |= !old_destructive.is_empty();
                roll(&g, u, &sorted.live, &old_destructive, plan, deployment);
            }
        }
    }
    fill_free_indexes(group, &mut sorted, plan);
}

/// Whether the group's allocations of this version are placed for the first time with
/// nothing older to update (a job's version 0, or a stopped job started again): as in Nomad,
/// a service job's group with an `update` block gets a deployment for them, which watches
/// their health and makes the version stable once they are healthy.
fn first_placement(g: &Group<'_>, sorted: &Sorted<'_>) -> bool {
    deploys(g) && g.group.count > 0 && sorted.live.is_empty() && !g.mine.iter().any(|a| g.is_new(a))
}

/// Whether the group's versions roll out under deployments: a service job's group with an
/// `update` block.
fn deploys(g: &Group<'_>) -> bool {
    g.strategy.is_some() && g.input.job.job_type == JobType::Service
}

/// Puts one allocation where it belongs: stopped, replaced, rescheduled, or kept (occupying its
/// index, live, or draining).
fn sort<'a>(
    g: &Group<'a>,
    a: &'a ObservedAlloc,
    deployment: Option<&Deployment>,
    sorted: &mut Sorted<'a>,
    plan: &mut Plan,
    facts: &mut GroupFacts,
) {
    let (input, group) = (g.input, g.group);
    let al = &a.alloc;
    let client = a.client_status();
    if al.desired_status == DesiredStatus::Run && stops_as_stale_canary(g, a, deployment, plan) {
        return;
    }
    let served = if client == ClientStatus::Failed && g.is_new(a) {
        g.live_idx.contains(&(al.index, true))
    } else {
        g.live_idx.contains(&(al.index, true)) || g.live_idx.contains(&(al.index, false))
    };
    if al.desired_status == DesiredStatus::Run
        && served
        && (client.is_terminal() || (input.node_health)(&al.node) == NodeHealth::Down)
    {
        // A lost original stays as it is: its node may come back (the duplicate rule then
        // keeps the original and stops its replacement).
        if client != ClientStatus::Lost && !(client == ClientStatus::Complete && g.batch()) {
            plan.stop.push(stop(al, "replaced"));
        }
        return;
    }
    if al.desired_status != DesiredStatus::Run {
        // A finished batch allocation is the work done, unless a drain's deadline killed it.
        if client == ClientStatus::Complete
            && g.batch()
            && al.desired_description != crate::drain::DEADLINE_REASON
        {
            sorted.occupied.insert(al.index);
        }
        return;
    }
    match client {
        ClientStatus::Complete if g.batch() => {
            sorted.occupied.insert(al.index);
            return;
        }
        ClientStatus::Complete => {
            if al.index < group.count && !sorted.occupied.contains(&al.index) {
                plan.reschedule.push(Replace {
                    stop: stop(al, "allocation completed; replacing"),
                    place: g.successor(al),
                });
                sorted.occupied.insert(al.index);
            } else {
                plan.stop.push(stop(al, "scaled down or already replaced"));
            }
            return;
        }
        ClientStatus::Failed => {
            failed(g, a, &mut sorted.occupied, plan, facts);
            return;
        }
        _ => {}
    }
    let health = (input.node_health)(&al.node);
    // A lost allocation is replaced once: what became of its successor (failed, waiting for
    // its reschedule) is that successor's business, under its reschedule policy.
    let replaced_once = g.replaced_ids.contains(al.id.as_str());
    if client == ClientStatus::Lost && health != NodeHealth::Down {
        if al.index >= group.count {
            plan.stop.push(stop(al, "scaled down"));
        } else if !replaced_once && sorted.occupied.insert(al.index) {
            plan.place.push(g.successor(al));
        }
        return;
    }
    if health == NodeHealth::Down {
        if al.index < group.count && replaced_once {
            return;
        }
        if al.index < group.count && !sorted.occupied.contains(&al.index) {
            plan.migrate.push(Replace {
                stop: stop(al, "node down; allocation lost"),
                place: g.successor(al),
            });
            sorted.occupied.insert(al.index);
        } else {
            plan.stop.push(stop(al, "scaled down"));
        }
        return;
    }
    if health == NodeHealth::Draining && input.job.job_type == JobType::Service {
        // Batch allocations finish where they are (or are stopped at the drain's deadline and
        // placed again then), so their work never runs twice.
        sorted.draining.push(a);
        return;
    }
    sorted.live.entry(al.index).or_default().push(a);
}

/// A canary whose deployment is over (or superseded) stops, failed or not: it is never
/// rescheduled and holds no index. One that alone holds its index (its twin is gone) stays, and
/// is updated, or rescheduled once failed, like any allocation. Returns whether it stopped.
fn stops_as_stale_canary(
    g: &Group<'_>,
    a: &ObservedAlloc,
    deployment: Option<&Deployment>,
    plan: &mut Plan,
) -> bool {
    let input = g.input;
    let Some(why) = stale_canary(input, deployment, a) else {
        return false;
    };
    // The twin must serve in its place: a healthy canary stays until its twin is healthy too,
    // by its agent's verdict or by its own version's rule (seed 2248: not by the newest
    // version's, which an older copy is not held to).
    let canary_serves = g.serving(a);
    let twin_serves = |x: &ObservedAlloc| {
        let rule = rule_of_version(input, &x.alloc, &g.update_rule);
        alloc_health(x, &rule, input.now_ms) == Some(true)
    };
    let twin = another_at_its_index(input, a, |x| {
        runs_on_connected_node(input, x) && (!canary_serves || twin_serves(x))
    });
    if twin || (a.client_status().is_terminal() && !holds_its_index_alone(input, a)) {
        plan.stop.push(stop(&a.alloc, why));
        return true;
    }
    false
}

/// A failed allocation the group still wants: rescheduled by its policy (now, or a follow-up
/// at the time the policy allows), replaced by the new version at once when it is of an older
/// one, or kept when its attempts are used up (which fails a deployment of its version).
fn failed(
    g: &Group<'_>,
    a: &ObservedAlloc,
    occupied: &mut BTreeSet<u32>,
    plan: &mut Plan,
    facts: &mut GroupFacts,
) {
    let (al, now) = (&a.alloc, g.input.now_ms);
    if al.index >= g.group.count {
        plan.stop.push(stop(al, "scaled down"));
        return;
    }
    let next = reschedule_at(&g.policy, a, now);
    if next.is_none() && g.is_new(a) && g.active {
        // Whatever else holds its index (seed 1414: a lost original's successor).
        facts.unreschedulable = Some(format!(
            "{} failed with no reschedule attempts left",
            al.name
        ));
    }
    if !occupied.insert(al.index) {
        return; // another allocation of this index is already being replaced
    }
    if !g.is_new(a) && !g.canary_phase {
        // A failure of an older version: the new version takes its place now, with a fresh
        // reschedule budget (a user fixing a crashing job does not wait out the old version's
        // delays, nor find its attempts used up).
        plan.reschedule.push(Replace {
            stop: stop(al, "allocation failed; replaced by the new version"),
            place: Place {
                penalty_node: Some(al.node.clone()),
                ..g.successor(al)
            },
        });
        return;
    }
    match next {
        Some(r) if r.at_ms <= now => {
            let mut times = r.times_ms;
            times.push(now);
            plan.reschedule.push(Replace {
                stop: stop(al, "allocation failed; rescheduled"),
                place: Place {
                    group: g.group.name.clone(),
                    index: al.index,
                    previous_alloc: Some(al.id.clone()),
                    penalty_node: Some(al.node.clone()),
                    reschedule_attempts: r.attempts,
                    reschedule_times_ms: times,
                    // A failed canary's replacement is a canary too.
                    canary: al.canary && g.is_new(a) && g.canaries_wanted,
                    version: g.keep_version(al),
                },
            })
        }
        Some(r) => plan.follow_ups.push(FollowUp {
            at_ms: r.at_ms,
            reason: format!("reschedule {}", al.name),
        }),
        None => {}
    }
}

/// Scale down: every live or draining allocation at an index >= count stops.
fn scale_down(g: &Group<'_>, sorted: &mut Sorted<'_>, plan: &mut Plan) {
    let count = g.group.count;
    let high: Vec<u32> = sorted.live.range(count..).map(|(i, _)| *i).collect();
    for i in high {
        for a in sorted.live.remove(&i).unwrap_or_default() {
            plan.stop.push(stop(&a.alloc, "scaled down"));
        }
    }
    sorted.draining.retain(|a| {
        let keep = a.alloc.index < count;
        if !keep {
            plan.stop.push(stop(&a.alloc, "scaled down"));
        }
        keep
    });
}

/// Which older live allocations the new version updates in place (into the plan) and which it
/// replaces (returned). An older allocation beside one of the new version (a canary's twin) is
/// not updated in place, which would leave two of the new version at one index: it is replaced
/// by what runs beside it.
fn classify_versions<'a>(
    g: &Group<'_>,
    live: &BTreeMap<u32, Vec<&'a ObservedAlloc>>,
    plan: &mut Plan,
) -> Vec<&'a ObservedAlloc> {
    let mut old_destructive = Vec::new();
    for allocs in live.values() {
        let beside_new = allocs.iter().any(|a| g.is_new(a));
        for a in allocs.iter().copied().filter(|a| !g.is_new(a)) {
            let destructive = beside_new
                || match g
                    .input
                    .versions
                    .get(&a.alloc.job_version)
                    .filter(|j| names_spec(&a.alloc, j))
                    .and_then(|j| j.groups.iter().find(|x| x.name == g.group.name))
                {
                    Some(old) => needs_destructive_update(old, g.group),
                    None => true,
                };
            if destructive {
                old_destructive.push(a);
            } else {
                plan.inplace_update.push(a.alloc.id.clone());
            }
        }
    }
    old_destructive
}

/// Without an `update` block every older allocation is replaced at once; one beside an
/// allocation of the new version just stops (its index is taken).
fn replace_all_at_once(
    g: &Group<'_>,
    live: &BTreeMap<u32, Vec<&ObservedAlloc>>,
    old: &[&ObservedAlloc],
    plan: &mut Plan,
) {
    for a in old {
        let index_has_new = live
            .get(&a.alloc.index)
            .is_some_and(|b| b.iter().any(|b| g.is_new(b)));
        if index_has_new {
            plan.stop.push(stop(&a.alloc, "job updated"));
            continue;
        }
        plan.destructive_update.push(Replace {
            stop: stop(&a.alloc, "job updated"),
            place: Place {
                group: g.group.name.clone(),
                index: a.alloc.index,
                previous_alloc: Some(a.alloc.id.clone()),
                ..Default::default()
            },
        });
    }
}

/// The rolling update, with what it looks at: the new version's allocations, and its failures
/// that nothing replaced yet.
fn roll(
    g: &Group<'_>,
    u: &UpdateStrategy,
    live: &BTreeMap<u32, Vec<&ObservedAlloc>>,
    old: &[&ObservedAlloc],
    plan: &mut Plan,
    deployment: &mut Option<Deployment>,
) {
    let all_new: Vec<&ObservedAlloc> = g.mine.iter().copied().filter(|a| g.is_new(a)).collect();
    let replaced: HashSet<&str> = g
        .input
        .allocs
        .iter()
        .map(|a| a.alloc.previous_alloc.as_str())
        .filter(|p| !p.is_empty())
        .collect();
    let failed_new: Vec<&ObservedAlloc> = all_new
        .iter()
        .copied()
        .filter(|a| {
            a.client_status() == ClientStatus::Failed
                && a.alloc.desired_status == DesiredStatus::Run
                && a.alloc.index < g.group.count
                && !replaced.contains(a.alloc.id.as_str())
        })
        .collect();
    let inplace: HashSet<String> = plan.inplace_update.iter().cloned().collect();
    let counts_as_new = |a: &ObservedAlloc| g.is_new(a) || inplace.contains(&a.alloc.id);
    let rollout = Rollout {
        group: g.group,
        u,
        rule: &g.update_rule,
        live,
        old,
        all_new: &all_new,
        failed_new: &failed_new,
    };
    rolling_update(g.input, &rollout, &counts_as_new, plan, deployment);
}

/// Places every index below `count` that nothing holds.
fn fill_free_indexes(group: &TaskGroup, sorted: &mut Sorted<'_>, plan: &mut Plan) {
    for allocs in sorted.live.values() {
        if let Some(a) = allocs.first() {
            sorted.occupied.insert(a.alloc.index);
        }
    }
    for i in 0..group.count {
        if !sorted.occupied.contains(&i) {
            plan.place.push(Place {
                group: group.name.clone(),
                index: i,
                ..Default::default()
            });
        }
    }
}

/// Settles the allocations at one index (two writers raced, a retried commit, an original
/// back from a lost node): one allocation of the newest version survives, the oldest; of the
/// older versions, the one that serves best; and an older one beside a serving new one stops.
pub(super) fn settle_index(
    input: &Input<'_>,
    group: &TaskGroup,
    allocs: &mut Vec<&ObservedAlloc>,
    is_new: &dyn Fn(&ObservedAlloc) -> bool,
    serving: &dyn Fn(&ObservedAlloc) -> bool,
    plan: &mut Plan,
) {
    // (An allocation of a node that is away is left out until it is back: it is settled
    // then, not while nobody knows whether it runs.)
    let present = |a: &ObservedAlloc| {
        a.client_status() != ClientStatus::Unknown
            && (input.node_health)(&a.alloc.node) != NodeHealth::Disconnected
    };
    let mut same: Vec<&ObservedAlloc> = allocs
        .iter()
        .copied()
        .filter(|a| is_new(a) && present(a))
        .collect();
    if same.len() > 1 {
        // The oldest stays: an original back from a lost node keeps its place over its
        // replacement, as the node-lifecycle loop decides too (`keep_original`).
        same.sort_by(|a, b| {
            a.alloc
                .created_at_ms
                .cmp(&b.alloc.created_at_ms)
                .then(a.alloc.id.cmp(&b.alloc.id))
        });
        for extra in &same[1..] {
            plan.stop.push(stop(&extra.alloc, "duplicate allocation"));
            allocs.retain(|x| x.alloc.id != extra.alloc.id);
        }
    }
    // Two older allocations at one index (an original back from a lost node beside what
    // replaced it since, or a promoted canary beside its twin): the one that serves stays
    // (healthy, by its agent's own verdict first; then one the newest version can update
    // in place, as after a revert to its spec; then the newest version, then the oldest),
    // the other stops.
    let mut older: Vec<&ObservedAlloc> = allocs
        .iter()
        .copied()
        .filter(|a| !is_new(a) && present(a))
        .collect();
    if older.len() > 1 {
        let verdict = |a: &ObservedAlloc| a.status.as_ref().and_then(|s| s.healthy) == Some(true);
        let in_place = |a: &ObservedAlloc| {
            input
                .versions
                .get(&a.alloc.job_version)
                .filter(|j| names_spec(&a.alloc, j))
                .and_then(|j| j.groups.iter().find(|g| g.name == group.name))
                .is_some_and(|g| !needs_destructive_update(g, group))
        };
        older.sort_by(|a, b| {
            serving(b)
                .cmp(&serving(a))
                .then(verdict(b).cmp(&verdict(a)))
                .then(in_place(b).cmp(&in_place(a)))
                .then(b.alloc.job_version.cmp(&a.alloc.job_version))
                .then(a.alloc.created_at_ms.cmp(&b.alloc.created_at_ms))
                .then(a.alloc.id.cmp(&b.alloc.id))
        });
        for extra in &older[1..] {
            plan.stop.push(stop(
                &extra.alloc,
                "duplicate allocation of an older version",
            ));
            allocs.retain(|x| x.alloc.id != extra.alloc.id);
        }
    }
    // An older allocation beside a healthy one of the new version that is not a canary (an
    // original back from a lost node whose line of replacements moved on): whatever the
    // deployment's state, the index is served, and the older one stops.
    if allocs
        .iter()
        .any(|a| is_new(a) && !a.alloc.canary && serving(a))
    {
        for a in allocs.iter().filter(|a| !is_new(a)) {
            plan.stop.push(stop(
                &a.alloc,
                "replaced by a healthy allocation of the new version",
            ));
        }
        allocs.retain(|a| is_new(a));
    }
}
