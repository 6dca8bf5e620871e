//! The invariants, checked after every action of a run (an agent round, one reconcile, one loop
//! pass, a user's write, a fault). Each is a function named after the property it guards and
//! compares the snapshot before the action with the one after. The first one that breaks stops
//! the run: the trace up to that moment is the reproduction.
//!
//! They are written from what users are promised (Nomad's documented behaviour), not from the
//! controllers' code, so they catch the controllers disagreeing with the promise.

use std::collections::{BTreeMap, BTreeSet};

use nomos_api::{
    deployment_status as ds, Allocation, ClientStatus, DesiredStatus, Job, JobType,
    ReschedulePolicy,
};

use crate::observe::{JobKey, Snapshot};

/// An invariant that broke, with what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub invariant: &'static str,
    pub detail: String,
}

/// Who acted between the two snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    User,
    Agents,
    /// One reconcile of this job by the jobs controller, finished.
    Reconcile(JobKey),
    /// One reconcile that failed part-way (a crash, a lost leadership): what it wrote must
    /// still keep every invariant, but it promises nothing about what is left to do.
    FailedReconcile(JobKey),
    Loop(&'static str),
    Fault,
}

impl Actor {
    fn is_controller(&self) -> bool {
        matches!(
            self,
            Actor::Reconcile(_) | Actor::FailedReconcile(_) | Actor::Loop(_)
        )
    }
}

/// What the checker remembers across actions.
#[derive(Debug, Default)]
pub struct Checker {
    prev: Snapshot,
    /// Hash of the last valid spec a user wrote, per job: any other new version is a revert.
    user_hashes: BTreeMap<JobKey, String>,
    /// Jobs whose spec in the store does not parse, with the newest version when it broke.
    invalid: BTreeMap<JobKey, u64>,
    /// Reverts made for each failed deployment.
    reverts: BTreeMap<String, u32>,
    /// Jobs with a version written by `auto_revert` that no reconcile applied yet, with the
    /// limit of live allocations of the version before it.
    reverted_pending: BTreeMap<JobKey, u32>,
    /// Allocations the agents found healthy that no finished reconcile of their job saw yet.
    healthy_unseen: BTreeSet<String>,
    /// Allocations seen failed while still desired to run (a failure, not a stop's outcome).
    failed_while_wanted: BTreeSet<String>,
    /// Live allocations of a node whose drain ended that no finished reconcile of their job saw
    /// yet: an original kept while its replacement moved on is settled by that reconcile.
    undrained_unseen: BTreeSet<String>,
}

type Check = fn(&Checker, &Snapshot, &Actor, &mut Vec<Violation>);

/// Every invariant, in the order they are checked.
const CHECKS: &[(&str, Check)] = &[
    (
        "every_allocation_names_the_spec_it_was_placed_with",
        every_allocation_names_the_spec_it_was_placed_with,
    ),
    ("no_node_is_over_committed", no_node_is_over_committed),
    ("no_allocation_is_duplicated", no_allocation_is_duplicated),
    (
        "allocations_are_deleted_only_when_stopped_and_finished",
        allocations_are_deleted_only_when_stopped_and_finished,
    ),
    (
        "never_more_than_count_plus_canary_are_desired_to_run",
        never_more_than_count_plus_canary_are_desired_to_run,
    ),
    (
        "an_update_never_leaves_fewer_than_count_minus_max_parallel_healthy",
        an_update_never_leaves_fewer_than_count_minus_max_parallel_healthy,
    ),
    (
        "an_unhealthy_allocation_stops_the_rollout",
        an_unhealthy_allocation_stops_the_rollout,
    ),
    (
        "a_deployment_fails_at_once_when_an_unhealthy_allocation_cannot_be_rescheduled",
        a_deployment_fails_at_once_when_an_unhealthy_allocation_cannot_be_rescheduled,
    ),
    (
        "a_deployment_fails_at_its_progress_deadline",
        a_deployment_fails_at_its_progress_deadline,
    ),
    (
        "healthy_canaries_awaiting_promotion_never_fail_at_the_progress_deadline",
        healthy_canaries_awaiting_promotion_never_fail_at_the_progress_deadline,
    ),
    (
        "a_deployment_waiting_for_promotion_says_so",
        a_deployment_waiting_for_promotion_says_so,
    ),
    (
        "auto_revert_reverts_once_per_failed_deployment_to_the_latest_stable_version",
        auto_revert_reverts_once_per_failed_deployment_to_the_latest_stable_version,
    ),
    (
        "no_failed_allocation_is_replaced_sooner_than_its_reschedule_policy_allows",
        no_failed_allocation_is_replaced_sooner_than_its_reschedule_policy_allows,
    ),
    (
        "an_invalid_spec_never_changes_what_runs",
        an_invalid_spec_never_changes_what_runs,
    ),
];

/// The names of every invariant (for the docs and `nomos-sim --list`).
pub fn names() -> Vec<&'static str> {
    CHECKS.iter().map(|(n, _)| *n).collect()
}

impl Checker {
    pub fn new(first: Snapshot) -> Self {
        Checker {
            prev: first,
            ..Default::default()
        }
    }

    pub fn previous(&self) -> &Snapshot {
        &self.prev
    }

    /// A user wrote a valid spec (`Some`) or one that does not parse (`None`).
    pub fn user_wrote(&mut self, job: &JobKey, spec: Option<&Job>) {
        match spec {
            Some(j) => {
                self.user_hashes
                    .insert(job.clone(), nomos_api::spec_hash(j));
                self.invalid.remove(job);
            }
            None => {
                let newest = self.prev.newest(job).map(|(v, _)| v).unwrap_or(0);
                self.invalid.entry(job.clone()).or_insert(newest);
            }
        }
    }

    /// A user deleted the spec (purge).
    pub fn user_purged(&mut self, job: &JobKey) {
        self.invalid.remove(job);
        // The job created again under this name starts afresh: its deployments are new ones.
        let prefix = format!("{}-v", job.1);
        self.reverts.retain(|id, _| !id.starts_with(&prefix));
    }

    /// Checks the action that led from the previous snapshot to `cur`, then remembers `cur`.
    pub fn check(&mut self, cur: Snapshot, actor: &Actor) -> Vec<Violation> {
        let mut out = Vec::new();
        self.note_new_health(&cur, actor);
        self.note_drains_ended(&cur, actor);
        for (_, check) in CHECKS {
            check(self, &cur, actor, &mut out);
        }
        self.count_reverts(&cur, actor);
        self.note_failures(&cur);
        self.prev = cur;
        out
    }

    fn note_new_health(&mut self, cur: &Snapshot, actor: &Actor) {
        if let Actor::Reconcile(job) = actor {
            forget_seen_by(&mut self.healthy_unseen, cur, job);
        }
        if matches!(actor, Actor::Agents) {
            for a in cur.allocs.values() {
                if cur.is_healthy(a) && !self.prev.is_healthy(a) {
                    self.healthy_unseen.insert(a.id.clone());
                }
            }
        }
        self.healthy_unseen
            .retain(|id| cur.allocs.get(id).is_some_and(|a| cur.is_healthy(a)));
    }

    fn note_drains_ended(&mut self, cur: &Snapshot, actor: &Actor) {
        if let Actor::Reconcile(job) = actor {
            forget_seen_by(&mut self.undrained_unseen, cur, job);
        }
        for a in cur.allocs.values() {
            if cur.is_live(a) && self.prev.draining(&a.node) && !cur.draining(&a.node) {
                self.undrained_unseen.insert(a.id.clone());
            }
        }
        self.undrained_unseen
            .retain(|id| cur.allocs.get(id).is_some_and(|a| cur.is_live(a)));
    }

    fn note_failures(&mut self, cur: &Snapshot) {
        self.failed_while_wanted
            .retain(|id| cur.allocs.contains_key(id));
        for a in cur.allocs.values() {
            if a.desired_status == DesiredStatus::Run
                && cur.client_status(&a.id) == Some(ClientStatus::Failed)
            {
                self.failed_while_wanted.insert(a.id.clone());
            }
        }
    }

    fn count_reverts(&mut self, cur: &Snapshot, actor: &Actor) {
        if let Actor::Reconcile(job) = actor {
            self.reverted_pending.remove(job);
        }
        for (job, _, failed) in new_reverts(self, cur) {
            *self.reverts.entry(failed).or_default() += 1;
            let limit = self.prev.newest(&job).map_or(0, |(_, j)| {
                j.groups.iter().map(|g| g.count).max().unwrap_or(0) + canaries_of(j)
            });
            self.reverted_pending.insert(job, limit);
        }
    }
}

/// Drops from `ids` the allocations a finished reconcile of `job` has now seen (and those gone).
fn forget_seen_by(ids: &mut BTreeSet<String>, cur: &Snapshot, job: &JobKey) {
    ids.retain(|id| {
        cur.allocs
            .get(id)
            .is_some_and(|a| a.job_id != job.1 || a.namespace != job.0)
    });
}

fn violation(out: &mut Vec<Violation>, invariant: &'static str, detail: String) {
    out.push(Violation { invariant, detail });
}

fn job_key(a: &Allocation) -> JobKey {
    (a.namespace.clone(), a.job_id.clone())
}

/// The group's job version as the allocation names it.
fn version_of<'a>(s: &'a Snapshot, a: &Allocation) -> Option<&'a Job> {
    s.versions
        .get(&job_key(a))?
        .get(&a.job_version)
        .map(|j| &**j)
}

fn is_service(s: &Snapshot, job: &JobKey) -> bool {
    s.newest(job)
        .is_some_and(|(_, j)| j.job_type == JobType::Service && j.periodic.is_none())
}

fn every_allocation_names_the_spec_it_was_placed_with(
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

fn no_node_is_over_committed(_: &Checker, cur: &Snapshot, _: &Actor, out: &mut Vec<Violation>) {
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
fn counts_as_serving(cur: &Snapshot, a: &Allocation, replaced: &BTreeSet<&str>) -> bool {
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
fn replaced_ids(cur: &Snapshot) -> BTreeSet<&str> {
    cur.allocs
        .values()
        .filter(|a| cur.is_live(a) && !a.previous_alloc.is_empty())
        .map(|a| a.previous_alloc.as_str())
        .collect()
}

fn no_allocation_is_duplicated(_: &Checker, cur: &Snapshot, _: &Actor, out: &mut Vec<Violation>) {
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

fn allocations_are_deleted_only_when_stopped_and_finished(
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

fn canaries_of(job: &Job) -> u32 {
    job.update
        .as_ref()
        .filter(|u| u.max_parallel > 0)
        .map(|u| u.canary)
        .unwrap_or(0)
}

fn max_parallel_of(job: &Job) -> u32 {
    job.update.as_ref().map(|u| u.max_parallel).unwrap_or(0)
}

fn never_more_than_count_plus_canary_are_desired_to_run(
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

fn an_update_never_leaves_fewer_than_count_minus_max_parallel_healthy(
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

fn an_unhealthy_allocation_stops_the_rollout(
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

/// The group's reschedule policy, with Nomad's defaults.
pub fn reschedule_policy(job: &Job, group: &str) -> ReschedulePolicy {
    job.groups
        .iter()
        .find(|g| g.name == group)
        .and_then(|g| g.reschedule.clone())
        .or_else(|| job.reschedule.clone())
        .unwrap_or_else(|| nomos_controllers::reconcile::default_reschedule(job.job_type))
}

/// When the agent says the allocation's last task finished (its failure), if it did.
/// Both allocations run the same version of the same job (a job purged and created again
/// reuses version numbers with another spec).
fn same_spec(a: &Allocation, b: &Allocation) -> bool {
    a.job_version == b.job_version
        && (a.job_spec_hash.is_empty()
            || b.job_spec_hash.is_empty()
            || a.job_spec_hash == b.job_spec_hash)
}

fn failed_at(s: &Snapshot, id: &str) -> Option<i64> {
    let st = s.alloc_status.get(id)?;
    st.task_states
        .values()
        .map(|t| t.finished_at_ms)
        .max()
        .filter(|t| *t > 0)
}

/// Reschedules of the allocation's lineage that count against `attempts` at its failure.
fn attempts_used(policy: &ReschedulePolicy, a: &Allocation, failed: i64) -> u32 {
    let window = (policy.interval_ns / 1_000_000) as i64;
    a.reschedule_times_ms
        .iter()
        .filter(|t| window <= 0 || **t > failed - window)
        .count() as u32
}

/// Nomad's reschedule delay before attempt `n` (0-based), written out independently.
fn delay_ms(policy: &ReschedulePolicy, n: u32) -> i64 {
    let base = (policy.delay_ns / 1_000_000) as i64;
    let mut d = base;
    match policy.delay_function.as_str() {
        "exponential" => {
            for _ in 0..n {
                d = d.saturating_mul(2);
            }
        }
        "fibonacci" => {
            let (mut a, mut b) = (base, base);
            for _ in 0..n {
                (a, b) = (b, a.saturating_add(b));
            }
            d = a;
        }
        _ => {}
    }
    let max = (policy.max_delay_ns / 1_000_000) as i64;
    if max > 0 {
        d.min(max)
    } else {
        d
    }
}

fn a_deployment_fails_at_once_when_an_unhealthy_allocation_cannot_be_rescheduled(
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

fn a_deployment_fails_at_its_progress_deadline(
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

fn healthy_canaries_awaiting_promotion_never_fail_at_the_progress_deadline(
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

fn a_deployment_waiting_for_promotion_says_so(
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
fn new_reverts(c: &Checker, cur: &Snapshot) -> Vec<(JobKey, u64, String)> {
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

fn auto_revert_reverts_once_per_failed_deployment_to_the_latest_stable_version(
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

fn no_failed_allocation_is_replaced_sooner_than_its_reschedule_policy_allows(
    c: &Checker,
    cur: &Snapshot,
    _: &Actor,
    out: &mut Vec<Violation>,
) {
    const NAME: &str = "no_failed_allocation_is_replaced_sooner_than_its_reschedule_policy_allows";
    let prev = &c.prev;
    for n in cur
        .allocs
        .values()
        .filter(|n| !prev.allocs.contains_key(&n.id))
    {
        let job = job_key(n);
        let Some((_, j)) = cur.newest(&job) else {
            continue;
        };
        if !is_service(cur, &job) {
            continue;
        }
        // The failed allocation this one takes over: its named predecessor, or else a failed
        // allocation of the same version at the same index that nothing replaced yet (one that
        // failed while wanted and was stopped since counts too: stopping a failure and filling
        // its index is a reschedule; one stopped first, by a drain's deadline say, does not).
        let failed: Option<&Allocation> = match prev.allocs.get(&n.previous_alloc) {
            Some(p) => Some(p),
            None => prev.allocs_of(&job).find(|f| {
                f.task_group == n.task_group
                    && f.index == n.index
                    && same_spec(f, n)
                    && (f.desired_status == DesiredStatus::Run
                        || c.failed_while_wanted.contains(&f.id))
                    && prev.client_status(&f.id) == Some(ClientStatus::Failed)
                    && !prev.allocs.values().any(|x| x.previous_alloc == f.id)
            }),
        };
        // (A newer version replaces a failure at once, with a fresh reschedule budget; so does
        // a job purged and created again.)
        let Some(f) = failed
            .filter(|f| prev.client_status(&f.id) == Some(ClientStatus::Failed) && same_spec(f, n))
        else {
            continue;
        };
        let Some(failed_ms) = failed_at(prev, &f.id) else {
            continue;
        };
        let policy = reschedule_policy(j, &f.task_group);
        let used = attempts_used(&policy, f, failed_ms);
        if !policy.unlimited && used >= policy.attempts {
            violation(
                out,
                NAME,
                format!(
                    "{} replaced {} although its {} reschedule attempts were used",
                    n.id, f.name, policy.attempts
                ),
            );
            continue;
        }
        let earliest = failed_ms + delay_ms(&policy, used);
        if n.created_at_ms < earliest {
            violation(out, NAME, format!(
                "{} replaced failed {} ({}) at +{} ms after its failure; the policy allows it after +{} ms (attempt {})",
                n.id, f.id, f.name, n.created_at_ms - failed_ms, earliest - failed_ms, used + 1
            ));
        }
        // (A failure the servers stopped earlier is not replaced by name: its index is refilled
        // as a free one, no sooner than the policy allows, which the check above holds.)
        if n.previous_alloc != f.id && f.desired_status == DesiredStatus::Run {
            violation(
                out,
                NAME,
                format!(
                    "{} took over failed {} without naming it as its predecessor",
                    n.id, f.id
                ),
            );
        }
    }
}

fn an_invalid_spec_never_changes_what_runs(
    c: &Checker,
    cur: &Snapshot,
    actor: &Actor,
    out: &mut Vec<Violation>,
) {
    const NAME: &str = "an_invalid_spec_never_changes_what_runs";
    for (job, since) in &c.invalid {
        // Only `auto_revert` may add a version meanwhile: the one after a failed deployment.
        let mut accepted = cur
            .versions
            .get(job)
            .into_iter()
            .flatten()
            .filter(|(v, _)| {
                **v > *since
                    && !c.prev.versions.get(job).is_some_and(|p| p.contains_key(v))
                    && !cur.deployments.get(job).is_some_and(|ds_| {
                        ds_.iter()
                            .any(|d| d.job_version + 1 == **v && d.status == ds::FAILED)
                    })
            });
        if let Some((v, _)) = accepted.next_back() {
            violation(
                out,
                NAME,
                format!(
                    "{} accepted version {v} while its spec in the store is invalid",
                    job.1
                ),
            );
        }
        if let Some((_, j)) = cur.newest(job) {
            if j.stop {
                continue;
            }
            for a in cur.allocs_of(job) {
                let was = c.prev.allocs.get(&a.id);
                if was.is_some_and(|w| w.desired_status == DesiredStatus::Run)
                    && a.desired_status == DesiredStatus::Stop
                    && (a.desired_description.contains("job stopped")
                        || a.desired_description.contains("purged"))
                {
                    violation(
                        out,
                        NAME,
                        format!(
                            "{} was stopped ({}) because of an invalid spec",
                            a.name, a.desired_description
                        ),
                    );
                }
            }
        }
        if let Actor::Reconcile(k) = actor {
            if k == job && cur.job_status.get(job).is_some_and(|s| s.errors.is_empty()) {
                violation(
                    out,
                    NAME,
                    format!("{}: the status shows no error for the invalid spec", job.1),
                );
            }
        }
    }
}

/// The jobs that did not converge once faults stopped: each non-stopped service job whose
/// newest version is good has `count` healthy allocations of that version and no deployment
/// left running, and nothing is left `unknown` on a connected node.
pub fn every_job_converges_once_faults_stop(
    cur: &Snapshot,
    good: &dyn Fn(&Job) -> bool,
) -> Vec<Violation> {
    const NAME: &str = "every_job_converges_once_faults_stop";
    let mut out = Vec::new();
    for (job, versions) in &cur.versions {
        let Some((v, j)) = versions.last_key_value() else {
            continue;
        };
        if !is_service(cur, job) || j.stop || !cur.specs.contains_key(job) || !good(j) {
            continue;
        }
        for g in &j.groups {
            let healthy = cur
                .allocs_of(job)
                .filter(|a| a.task_group == g.name && a.job_version == *v && cur.is_healthy(a))
                .count() as u32;
            if healthy != g.count {
                let seen: Vec<String> = cur
                    .allocs_of(job)
                    .filter(|a| a.desired_status == DesiredStatus::Run)
                    .map(|a| {
                        format!(
                            "{} v{}[{}] on {} {:?} healthy={:?}",
                            &a.id[..8.min(a.id.len())],
                            a.job_version,
                            a.index,
                            a.node,
                            cur.client_status(&a.id),
                            cur.alloc_status.get(&a.id).and_then(|s| s.healthy)
                        )
                    })
                    .collect();
                let d = cur
                    .current_deployment(job)
                    .map(|d| format!("{} {}", d.id, d.status));
                let st = cur.job_status.get(job).map(|s| {
                    format!(
                        "status {} v{} failures {:?} errors {:?}",
                        s.status, s.version, s.placement_failures, s.errors
                    )
                });
                violation(
                    &mut out,
                    NAME,
                                        format!(
                        "{}/{}: {healthy} healthy allocations of version {v}, count {}; deployment {d:?}; {st:?}; desired to run: {seen:?}",
                        job.1, g.name, g.count
                    ),
                );
            }
        }
        if let Some(d) = cur.current_deployment(job).filter(|d| d.is_active()) {
            violation(
                &mut out,
                NAME,
                format!(
                    "{}: deployment {} still {} ({})",
                    job.1, d.id, d.status, d.status_description
                ),
            );
        }
    }
    for a in cur.allocs.values() {
        if cur.node_up(&a.node) && cur.client_status(&a.id) == Some(ClientStatus::Unknown) {
            violation(
                &mut out,
                NAME,
                format!("{} stays unknown on connected node {}", a.name, a.node),
            );
        }
    }
    out
}
