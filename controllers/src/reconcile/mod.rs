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

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::health::{migration_health, HealthRule, MigrationHealth};
use indexmap::IndexMap;
use nomos_api::{
    deployment_status as ds, Allocation, ClientStatus, Deployment, DeploymentGroup, DesiredStatus,
    GroupSummary, Job, JobType, ReschedulePolicy, TaskGroup, UpdateStrategy,
};

/// What the reconcile needs to know about a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeHealth {
    Ready,
    /// Its heartbeat is missing: its allocations stay as they are (the node-lifecycle loop
    /// marks them unknown, then lost), but none of them counts as serving.
    Disconnected,
    /// A drain is requested: migrate.
    Draining,
    /// Down or deregistered: replace.
    Down,
}

pub use crate::observed::{ObservedAlloc, Stop};

/// Inputs of one reconcile of one job.
pub struct Input<'a> {
    /// The newest accepted version of the job.
    pub job: &'a Job,
    pub version: u64,
    /// Older accepted versions, to tell in-place from destructive updates.
    pub versions: &'a BTreeMap<u64, Job>,
    /// [`nomos_api::spec_hash`] of `job`: an allocation of the same version number that names
    /// another spec (a job purged and created again) is not of this version.
    pub spec_hash: &'a str,
    /// The deployment of `version`, if one exists.
    pub deployment: Option<&'a Deployment>,
    /// Every deployment of the job (older ones are cancelled; their canaries stopped).
    pub deployments: &'a [Deployment],
    pub allocs: &'a [ObservedAlloc],
    pub node_health: &'a dyn Fn(&str) -> NodeHealth,
    pub now_ms: i64,
    /// The job's last stable version (a deployment of it succeeded), the target of
    /// `auto_revert`; when unknown, the version before the failed one.
    pub stable_version: Option<u64>,
}

/// A new allocation to place.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Place {
    pub group: String,
    pub index: u32,
    pub previous_alloc: Option<String>,
    /// Node the previous allocation failed on, to avoid.
    pub penalty_node: Option<String>,
    pub reschedule_attempts: u32,
    /// The reschedule times the new allocation carries (its lineage's, within the interval,
    /// and this one's).
    pub reschedule_times_ms: Vec<i64>,
    pub canary: bool,
    /// Place this older version instead of the newest (a successor during a canary phase keeps
    /// its predecessor's version: the index is not updated before the promotion).
    pub version: Option<u64>,
}

/// Stop one allocation and place its successor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replace {
    pub stop: Stop,
    pub place: Place,
}

/// A time at which the job must be reconciled again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUp {
    pub at_ms: i64,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub place: Vec<Place>,
    pub stop: Vec<Stop>,
    /// Allocation ids whose `job_version` moves to the new version without a restart.
    pub inplace_update: Vec<String>,
    pub destructive_update: Vec<Replace>,
    pub migrate: Vec<Replace>,
    pub reschedule: Vec<Replace>,
    pub follow_ups: Vec<FollowUp>,
    /// The deployment to write, when it is new or changed.
    pub deployment: Option<Deployment>,
    /// Older deployments still running, now cancelled by the newer version.
    pub cancel_deployments: Vec<Deployment>,
    /// The deployment failed and `auto_revert` asks for this older version.
    pub revert_to: Option<u64>,
}

impl Plan {
    /// Whether applying the plan changes nothing in the store.
    pub fn is_empty(&self) -> bool {
        self.place.is_empty()
            && self.stop.is_empty()
            && self.inplace_update.is_empty()
            && self.destructive_update.is_empty()
            && self.migrate.is_empty()
            && self.reschedule.is_empty()
            && self.deployment.is_none()
            && self.cancel_deployments.is_empty()
            && self.revert_to.is_none()
    }

    /// Every placement the plan asks for, in order: place, then the replacements.
    pub fn placements(&self) -> impl Iterator<Item = &Place> {
        self.place.iter().chain(
            self.destructive_update
                .iter()
                .chain(self.migrate.iter())
                .chain(self.reschedule.iter())
                .map(|r| &r.place),
        )
    }

    /// Every stop the plan asks for.
    pub fn stops(&self) -> impl Iterator<Item = &Stop> {
        self.stop.iter().chain(
            self.destructive_update
                .iter()
                .chain(self.migrate.iter())
                .chain(self.reschedule.iter())
                .map(|r| &r.stop),
        )
    }

    /// The earliest follow-up, if any.
    pub fn next_follow_up(&self) -> Option<i64> {
        self.follow_ups.iter().map(|f| f.at_ms).min()
    }
}

/// `Nomad`'s defaults when a group has no `reschedule` block.
pub fn default_reschedule(job_type: JobType) -> ReschedulePolicy {
    match job_type {
        JobType::Batch | JobType::Sysbatch => ReschedulePolicy {
            attempts: 1,
            interval_ns: 24 * 3600 * 1_000_000_000,
            delay_ns: 5_000_000_000,
            delay_function: "constant".into(),
            max_delay_ns: 0,
            unlimited: false,
        },
        _ => ReschedulePolicy {
            attempts: 0,
            interval_ns: 0,
            delay_ns: 30_000_000_000,
            delay_function: "exponential".into(),
            max_delay_ns: 3600 * 1_000_000_000,
            unlimited: true,
        },
    }
}

/// Delay before reschedule attempt number `attempt` (0 for the first), in ms.
pub fn reschedule_delay_ms(policy: &ReschedulePolicy, attempt: u32) -> i64 {
    let base = (policy.delay_ns / 1_000_000) as i64;
    let d = match policy.delay_function.as_str() {
        "exponential" => base.saturating_mul(1i64.checked_shl(attempt.min(40)).unwrap_or(i64::MAX)),
        "fibonacci" => {
            let (mut a, mut b) = (base, base);
            for _ in 0..attempt.min(90) {
                (a, b) = (b, a.saturating_add(b));
            }
            a
        }
        _ => base,
    };
    let max = (policy.max_delay_ns / 1_000_000) as i64;
    if max > 0 {
        d.min(max)
    } else {
        d
    }
}

/// Most reschedule times an allocation carries when the policy has no interval (they then only
/// grow the delay, which `max_delay` caps long before this).
pub const MAX_RESCHEDULE_TIMES: usize = 64;

/// The decision for a failed allocation that may still be rescheduled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RescheduleAt {
    /// When the replacement may be placed.
    pub at_ms: i64,
    /// Reschedules in the interval window, this one included.
    pub attempts: u32,
    /// The lineage's reschedule times that are still inside the interval window; the caller
    /// appends the time of this reschedule.
    pub times_ms: Vec<i64>,
}

/// When the agent reports an allocation failed (its last task's finish, else the status'
/// modification), or `now_ms` when it reported no time.
fn failed_at(alloc: &ObservedAlloc, now_ms: i64) -> i64 {
    alloc
        .status
        .as_ref()
        .map(|s| {
            let t = s
                .task_states
                .values()
                .map(|t| t.finished_at_ms)
                .max()
                .unwrap_or(0);
            t.max(s.modified_at_ms)
        })
        .filter(|t| *t > 0)
        .unwrap_or(now_ms)
}

/// When (and whether) a failed allocation may be rescheduled, or `None` when its attempts are
/// used up. The attempts are the reschedules of its lineage (`reschedule_times_ms`) that happened
/// within `interval` before the failure (every one when the interval is 0). An allocation written
/// before the times were recorded falls back to its `reschedule_attempts`, which count when it
/// was created within the interval.
pub fn reschedule_at(
    policy: &ReschedulePolicy,
    alloc: &ObservedAlloc,
    now_ms: i64,
) -> Option<RescheduleAt> {
    let a = &alloc.alloc;
    let failed = failed_at(alloc, now_ms);
    let interval_ms = (policy.interval_ns / 1_000_000) as i64;
    let in_window = |t: i64| interval_ms <= 0 || t > failed - interval_ms;
    let mut times: Vec<i64> = a
        .reschedule_times_ms
        .iter()
        .copied()
        .filter(|t| in_window(*t))
        .collect();
    if times.len() > MAX_RESCHEDULE_TIMES {
        times.drain(..times.len() - MAX_RESCHEDULE_TIMES);
    }
    let prior = if a.reschedule_times_ms.is_empty() && a.reschedule_attempts > 0 {
        if in_window(a.created_at_ms) {
            a.reschedule_attempts
        } else {
            0
        }
    } else {
        times.len() as u32
    };
    if !policy.unlimited && prior >= policy.attempts {
        return None;
    }
    Some(RescheduleAt {
        at_ms: failed + reschedule_delay_ms(policy, prior),
        attempts: prior + 1,
        times_ms: times,
    })
}

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
fn healthy_at(a: &ObservedAlloc, rule: &HealthRule) -> Option<i64> {
    let s = a.status.as_ref()?;
    if s.healthy.is_some() {
        return None;
    }
    rule.healthy_at(s)
}

fn stop(a: &Allocation, why: &str) -> Stop {
    Stop::of(a, why)
}

/// A placement that takes over `a`'s index in `group`, naming `a` as its predecessor.
fn successor(group: &str, a: &Allocation) -> Place {
    Place {
        group: group.to_string(),
        index: a.index,
        previous_alloc: Some(a.id.clone()),
        ..Default::default()
    }
}

/// Facts about one group's rollout that the deployment's verdict needs.
#[derive(Debug, Default)]
struct GroupFacts {
    /// A failed allocation of the deployment's version has no reschedule attempts left.
    unreschedulable: Option<String>,
}

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

/// Deterministic deployment id for a job version, so a restarted controller finds it again.
/// `<job>-v<version>-<first 8 of the spec hash>`: unique across a purge and re-creation of the
/// job, which starts its versions again at 0.
pub fn deployment_id(job: &str, version: u64, spec_hash: &str) -> String {
    format!("{job}-v{version}-{}", &spec_hash[..spec_hash.len().min(8)])
}

fn new_deployment(input: &Input<'_>) -> Deployment {
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
fn finish_deployment(input: &Input<'_>, d: &mut Deployment, facts: &[GroupFacts], plan: &mut Plan) {
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
fn auto_revert(job: &Job) -> bool {
    job.update.as_ref().is_some_and(|u| u.auto_revert)
        || job
            .groups
            .iter()
            .any(|g| g.update.as_ref().is_some_and(|u| u.auto_revert))
}

/// The version `auto_revert` rolls a failed deployment back to: the latest stable version,
/// while the failed version is still the newest, and only when it holds another spec (a
/// revert to the same spec would fail the same way, version after version).
fn revert_target(input: &Input<'_>, d: &Deployment) -> Option<u64> {
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
fn fail_deployment(input: &Input<'_>, d: &mut Deployment, plan: &mut Plan, why: &str) {
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

/// Running on a node that is in touch (ready or draining): an allocation of a node that missed
/// its heartbeat, or is gone, serves nobody anyone knows of.
fn runs_on_connected_node(input: &Input<'_>, a: &ObservedAlloc) -> bool {
    a.client_status() == ClientStatus::Running
        && matches!(
            (input.node_health)(&a.alloc.node),
            NodeHealth::Ready | NodeHealth::Draining
        )
}

/// A running allocation on a connected node, with no other allocation (not a canary) running
/// at its index on a connected node: stopping it leaves the index unserved. (A failed
/// deployment keeps such a canary; the next passes treat it as a stale canary.)
fn serves_its_index_alone(input: &Input<'_>, a: &ObservedAlloc) -> bool {
    let connected = |x: &ObservedAlloc| runs_on_connected_node(input, x);
    connected(a) && !another_at_its_index(input, a, connected)
}

/// Whether another allocation (not a canary, desired to run) at `a`'s index passes `also`.
fn another_at_its_index(
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
fn holds_its_index_alone(input: &Input<'_>, a: &ObservedAlloc) -> bool {
    if a.client_status() != ClientStatus::Failed {
        return serves_its_index_alone(input, a);
    }
    is_of_version(input, &a.alloc) && !another_at_its_index(input, a, |x| !x.is_terminal())
}

/// Whether an allocation is of the input's newest version: its number, and the same spec when
/// the allocation names one (a purged job created again reuses version numbers).
fn is_of_version(input: &Input<'_>, a: &Allocation) -> bool {
    a.job_version == input.version
        && (a.job_spec_hash.is_empty() || a.job_spec_hash == input.spec_hash)
}

/// Whether the allocation names this version's spec (or names none, from before hashes).
fn names_spec(a: &Allocation, version: &Job) -> bool {
    a.job_spec_hash.is_empty() || a.job_spec_hash == nomos_api::spec_hash(version)
}

/// The health rule of the version an allocation runs (its group's `update` block), or
/// `fallback` when that version is not known.
fn rule_of_version(input: &Input<'_>, a: &Allocation, fallback: &HealthRule) -> HealthRule {
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
fn replaced_by_live_successors<'a>(mine: &[&'a ObservedAlloc]) -> HashSet<&'a str> {
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

/// Why a live canary must stop: its deployment was never promoted and is over (failed,
/// cancelled) or belongs to an older version. A promoted canary is an ordinary allocation.
fn stale_canary(
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

fn reconcile_group(
    input: &Input<'_>,
    group: &TaskGroup,
    plan: &mut Plan,
    deployment: &mut Option<Deployment>,
    deployment_needed: &mut bool,
    facts: &mut GroupFacts,
) {
    let job = input.job;
    let now = input.now_ms;
    let is_new = |a: &ObservedAlloc| is_of_version(input, &a.alloc);
    let strategy = update_strategy(job, group);
    let update_rule = strategy
        .map(|u| HealthRule::new(group, &u.health_check, u.min_healthy_time_ns))
        .unwrap_or_default();
    let policy = group
        .reschedule
        .clone()
        .or_else(|| job.reschedule.clone())
        .unwrap_or_else(|| default_reschedule(job.job_type));
    let migrate = crate::drain::migrate_for(job, &group.name);
    let migrate_parallel = migrate.max_parallel.max(1);
    let migrate_rule = HealthRule::migration(group, &migrate);
    let migrate_deadline_ms = (migrate.healthy_deadline_ns / 1_000_000) as i64;

    let mine: Vec<&ObservedAlloc> = input
        .allocs
        .iter()
        .filter(|a| a.alloc.task_group == group.name)
        .collect();
    let draining_ids: HashSet<&str> = mine
        .iter()
        .filter(|a| (input.node_health)(&a.alloc.node) == NodeHealth::Draining)
        .map(|a| a.alloc.id.as_str())
        .collect();

    // Allocations whose line of successors still holds one that should run (a failed one
    // waiting for its reschedule counts: it is replaced in its turn).
    let replaced_ids = replaced_by_live_successors(&mine);
    // Indexes that are taken and need nothing placed.
    let mut occupied: BTreeSet<u32> = BTreeSet::new();
    // Live allocations by index.
    let mut live: BTreeMap<u32, Vec<&ObservedAlloc>> = BTreeMap::new();
    let mut draining: Vec<&ObservedAlloc> = Vec::new();

    // Indexes served by a live allocation of the same version (new or old): a terminal one at
    // the same index is not replaced. A failed canary beside its old twin is not served: it is
    // rescheduled by its policy like any failed allocation of the new version.
    let live_idx: HashSet<(u32, bool)> = mine
        .iter()
        .filter(|a| a.alloc.desired_status == DesiredStatus::Run)
        .filter(|a| {
            !a.client_status().is_terminal() && a.client_status() != ClientStatus::Unknown
                || a.status.is_none()
        })
        .filter(|a| (input.node_health)(&a.alloc.node) != NodeHealth::Down)
        .map(|a| (a.alloc.index, is_new(a)))
        .collect();
    let active = deployment.as_ref().filter(|d| d.is_active());
    let canaries_wanted = active
        .and_then(|d| d.groups.get(&group.name))
        .is_some_and(|g| !g.promoted);
    // A canary phase: canaries asked for and not promoted yet. Until the promotion, an older
    // allocation that moves or is replaced keeps its version (its index is not updated yet,
    // and a new-version successor beside the canary would run that index twice).
    let canary_phase = strategy.is_some_and(|u| u.canary > 0)
        && match deployment.as_ref() {
            Some(d) => d.is_active() && d.groups.get(&group.name).is_none_or(|g| !g.promoted),
            None => mine.iter().any(|a| {
                !is_new(a)
                    && a.alloc.desired_status == DesiredStatus::Run
                    && !a.client_status().is_terminal()
            }),
        };
    let keep_version = |al: &Allocation| -> Option<u64> {
        (canary_phase
            && !is_of_version(input, al)
            && input
                .versions
                .get(&al.job_version)
                .is_some_and(|j| names_spec(al, j)))
        .then_some(al.job_version)
    };
    // A successor keeps what its predecessor was: the version during a canary phase, and
    // being a canary while the canaries wait for promotion.
    let succ = |al: &Allocation| Place {
        version: keep_version(al),
        canary: al.canary && is_of_version(input, al) && canaries_wanted,
        ..successor(&group.name, al)
    };

    // Healthy on a connected node: it serves its index.
    let serving = |a: &ObservedAlloc| {
        runs_on_connected_node(input, a) && alloc_health(a, &update_rule, now) == Some(true)
    };

    for a in &mine {
        let al = &a.alloc;
        let client = a.client_status();
        // A canary whose deployment is over (or superseded) stops, failed or not: it is never
        // rescheduled and holds no index. One that alone holds its index (its twin is gone)
        // stays, and is updated, or rescheduled once failed, like any allocation.
        if al.desired_status == DesiredStatus::Run {
            if let Some(why) = stale_canary(input, deployment.as_ref(), a) {
                // The twin must serve in its place: a healthy canary stays until its twin is
                // healthy too, by its agent's verdict or by its own version's rule (seed 2248:
                // not by the newest version's, which an older copy is not held to).
                let canary_serves = serving(a);
                let twin_serves = |x: &ObservedAlloc| {
                    let rule = rule_of_version(input, &x.alloc, &update_rule);
                    alloc_health(x, &rule, now) == Some(true)
                };
                let twin = another_at_its_index(input, a, |x| {
                    runs_on_connected_node(input, x) && (!canary_serves || twin_serves(x))
                });
                if twin || (client.is_terminal() && !holds_its_index_alone(input, a)) {
                    plan.stop.push(stop(al, why));
                    continue;
                }
            }
        }
        let served = if client == ClientStatus::Failed && is_new(a) {
            live_idx.contains(&(al.index, true))
        } else {
            live_idx.contains(&(al.index, true)) || live_idx.contains(&(al.index, false))
        };
        if al.desired_status == DesiredStatus::Run
            && served
            && (client.is_terminal() || (input.node_health)(&al.node) == NodeHealth::Down)
        {
            // A lost original stays as it is: its node may come back (the duplicate rule then
            // keeps the original and stops its replacement).
            if client != ClientStatus::Lost
                && !(client == ClientStatus::Complete
                    && matches!(job.job_type, JobType::Batch | JobType::Sysbatch))
            {
                plan.stop.push(stop(al, "replaced"));
            }
            continue;
        }
        if al.desired_status != DesiredStatus::Run {
            // A finished batch allocation is the work done, unless a drain's deadline killed it.
            if client == ClientStatus::Complete
                && matches!(job.job_type, JobType::Batch | JobType::Sysbatch)
                && al.desired_description != crate::drain::DEADLINE_REASON
            {
                occupied.insert(al.index);
            }
            continue;
        }
        match client {
            ClientStatus::Complete
                if matches!(job.job_type, JobType::Batch | JobType::Sysbatch) =>
            {
                occupied.insert(al.index);
                continue;
            }
            ClientStatus::Complete => {
                if al.index < group.count && !occupied.contains(&al.index) {
                    plan.reschedule.push(Replace {
                        stop: stop(al, "allocation completed; replacing"),
                        place: succ(al),
                    });
                    occupied.insert(al.index);
                } else {
                    plan.stop.push(stop(al, "scaled down or already replaced"));
                }
                continue;
            }
            ClientStatus::Failed => {
                if al.index >= group.count {
                    plan.stop.push(stop(al, "scaled down"));
                    continue;
                }
                let next = reschedule_at(&policy, a, now);
                if next.is_none() && is_new(a) && active.is_some() {
                    // Whatever else holds its index (seed 1414: a lost original's successor).
                    facts.unreschedulable = Some(format!(
                        "{} failed with no reschedule attempts left",
                        al.name
                    ));
                }
                if !occupied.insert(al.index) {
                    continue; // another allocation of this index is already being replaced
                }
                if !is_new(a) && !canary_phase {
                    // A failure of an older version: the new version takes its place now, with
                    // a fresh reschedule budget (a user fixing a crashing job does not wait out
                    // the old version's delays, nor find its attempts used up).
                    plan.reschedule.push(Replace {
                        stop: stop(al, "allocation failed; replaced by the new version"),
                        place: Place {
                            penalty_node: Some(al.node.clone()),
                            ..succ(al)
                        },
                    });
                    continue;
                }
                match next {
                    Some(r) if r.at_ms <= now => {
                        let mut times = r.times_ms;
                        times.push(now);
                        plan.reschedule.push(Replace {
                            stop: stop(al, "allocation failed; rescheduled"),
                            place: Place {
                                group: group.name.clone(),
                                index: al.index,
                                previous_alloc: Some(al.id.clone()),
                                penalty_node: Some(al.node.clone()),
                                reschedule_attempts: r.attempts,
                                reschedule_times_ms: times,
                                // A failed canary's replacement is a canary too.
                                canary: al.canary && is_new(a) && canaries_wanted,
                                version: keep_version(al),
                            },
                        })
                    }
                    Some(r) => plan.follow_ups.push(FollowUp {
                        at_ms: r.at_ms,
                        reason: format!("reschedule {}", al.name),
                    }),
                    None => {}
                }
                continue;
            }
            _ => {}
        }
        let health = (input.node_health)(&al.node);
        // A lost allocation is replaced once: what became of its successor (failed, waiting
        // for its reschedule) is that successor's business, under its reschedule policy.
        let replaced_once = replaced_ids.contains(al.id.as_str());
        if client == ClientStatus::Lost && health != NodeHealth::Down {
            if al.index >= group.count {
                plan.stop.push(stop(al, "scaled down"));
            } else if !replaced_once && occupied.insert(al.index) {
                plan.place.push(succ(al));
            }
            continue;
        }
        if health == NodeHealth::Down {
            if al.index < group.count && replaced_once {
                continue;
            }
            if al.index < group.count && !occupied.contains(&al.index) {
                plan.migrate.push(Replace {
                    stop: stop(al, "node down; allocation lost"),
                    place: succ(al),
                });
                occupied.insert(al.index);
            } else {
                plan.stop.push(stop(al, "scaled down"));
            }
            continue;
        }
        if health == NodeHealth::Draining && job.job_type == JobType::Service {
            // Kept apart from `live`: its replacement shares its index until it is healthy.
            // Batch allocations finish where they are (or are stopped at the drain's deadline
            // and placed again then), so their work never runs twice.
            draining.push(a);
            continue;
        }
        live.entry(al.index).or_default().push(a);
    }

    // Scale down: every live allocation at an index >= count.
    let high: Vec<u32> = live.range(group.count..).map(|(i, _)| *i).collect();
    for i in high {
        for a in live.remove(&i).unwrap_or_default() {
            plan.stop.push(stop(&a.alloc, "scaled down"));
        }
    }
    draining.retain(|a| {
        let keep = a.alloc.index < group.count;
        if !keep {
            plan.stop.push(stop(&a.alloc, "scaled down"));
        }
        keep
    });

    // Duplicates, index by index.
    for allocs in live.values_mut() {
        settle_index(input, group, allocs, &is_new, &serving, plan);
    }

    // Classify versions. An older allocation beside one of the new version (a canary's twin)
    // is not updated in place, which would leave two of the new version at one index: it is
    // replaced by what runs beside it.
    let mut old_destructive: Vec<&ObservedAlloc> = Vec::new();
    for allocs in live.values() {
        let beside_new = allocs.iter().any(|a| is_new(a));
        for a in allocs {
            if is_new(a) {
                continue;
            }
            let destructive = beside_new
                || match input
                    .versions
                    .get(&a.alloc.job_version)
                    .filter(|j| names_spec(&a.alloc, j))
                    .and_then(|j| j.groups.iter().find(|g| g.name == group.name))
                {
                    Some(old) => needs_destructive_update(old, group),
                    None => true,
                };
            if destructive {
                old_destructive.push(a);
            } else {
                plan.inplace_update.push(a.alloc.id.clone());
            }
        }
    }
    let inplace: HashSet<String> = plan.inplace_update.iter().cloned().collect();
    let counts_as_new = |a: &ObservedAlloc| is_new(a) || inplace.contains(&a.alloc.id);

    let migration = Migration {
        rule: &migrate_rule,
        deadline_ms: migrate_deadline_ms,
        max_parallel: migrate_parallel,
    };
    migrate_off_draining_nodes(
        input,
        group,
        &migration,
        &draining,
        &draining_ids,
        &live,
        &mut occupied,
        &succ,
        plan,
    );

    // Rolling update.
    if !old_destructive.is_empty()
        || deployment
            .as_ref()
            .is_some_and(|d| d.groups.contains_key(&group.name))
    {
        match strategy {
            None => {
                for a in &old_destructive {
                    let index_has_new = live
                        .get(&a.alloc.index)
                        .is_some_and(|b| b.iter().any(|b| is_new(b)));
                    if index_has_new {
                        plan.stop.push(stop(&a.alloc, "job updated"));
                        continue;
                    }
                    plan.destructive_update.push(Replace {
                        stop: stop(&a.alloc, "job updated"),
                        place: Place {
                            group: group.name.clone(),
                            index: a.alloc.index,
                            previous_alloc: Some(a.alloc.id.clone()),
                            ..Default::default()
                        },
                    });
                }
            }
            Some(u) => {
                *deployment_needed |= !old_destructive.is_empty();
                let all_new: Vec<&ObservedAlloc> =
                    mine.iter().copied().filter(|a| is_new(a)).collect();
                let replaced: HashSet<&str> = input
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
                            && a.alloc.index < group.count
                            && !replaced.contains(a.alloc.id.as_str())
                    })
                    .collect();
                let rollout = Rollout {
                    group,
                    u,
                    rule: &update_rule,
                    live: &live,
                    old: &old_destructive,
                    all_new: &all_new,
                    failed_new: &failed_new,
                };
                rolling_update(input, &rollout, &counts_as_new, plan, deployment);
            }
        }
    }
    for allocs in live.values() {
        if !allocs.is_empty() {
            occupied.insert(allocs[0].alloc.index);
        }
    }

    // Fill the free indexes.
    for i in 0..group.count {
        if !occupied.contains(&i) {
            plan.place.push(Place {
                group: group.name.clone(),
                index: i,
                ..Default::default()
            });
        }
    }
}

/// The `migrate` block of a group, as the migrations read it.
struct Migration<'a> {
    rule: &'a HealthRule,
    deadline_ms: i64,
    max_parallel: u32,
}

/// Migrations off draining nodes: a replacement is placed elsewhere first, with at most
/// `migrate.max_parallel` replacements not yet healthy per group, and the original stops only
/// once a live allocation at its index elsewhere is healthy (`migrate.min_healthy_time`).
/// (`draining_ids`: every allocation of the group on a draining node, none of which counts as
/// a replacement.)
#[allow(clippy::too_many_arguments)]
fn migrate_off_draining_nodes<'a>(
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

/// Settles the allocations at one index (two writers raced, a retried commit, an original
/// back from a lost node): one allocation of the newest version survives, the oldest; of the
/// older versions, the one that serves best; and an older one beside a serving new one stops.
fn settle_index(
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

/// Indexes served by healthy allocations, with how many serve each: two at one index (a canary
/// and its twin) serve it once, so stopping one of them leaves it served.
#[derive(Debug, Default)]
struct ServedIndexes(BTreeMap<u32, u32>);

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
struct Rollout<'a> {
    group: &'a TaskGroup,
    u: &'a UpdateStrategy,
    rule: &'a HealthRule,
    /// Live allocations by index.
    live: &'a BTreeMap<u32, Vec<&'a ObservedAlloc>>,
    /// Live allocations of older versions that need a destructive update.
    old: &'a [&'a ObservedAlloc],
    /// Every allocation of the new version in the group, whatever its state.
    all_new: &'a [&'a ObservedAlloc],
    /// Failed allocations of the new version that nothing replaced yet.
    failed_new: &'a [&'a ObservedAlloc],
}

fn rolling_update(
    input: &Input<'_>,
    r: &Rollout<'_>,
    counts_as_new: &dyn Fn(&ObservedAlloc) -> bool,
    plan: &mut Plan,
    deployment: &mut Option<Deployment>,
) {
    let (group, u) = (r.group, r.u);
    let now = input.now_ms;
    let deadline_ms = (u.healthy_deadline_ns / 1_000_000) as i64;
    let health = |a: &ObservedAlloc| deployment_health(a, r.rule, deadline_ms, now);
    let new_allocs: Vec<&ObservedAlloc> = r
        .live
        .values()
        .flatten()
        .copied()
        .filter(|a| counts_as_new(a))
        .collect();
    let healthy_new = new_allocs
        .iter()
        .filter(|a| health(a) == Some(true))
        .count() as u32;
    let unhealthy_live = new_allocs
        .iter()
        .filter(|a| health(a) == Some(false))
        .count() as u32;
    for a in &new_allocs {
        if let Some(t) = healthy_at(a, r.rule) {
            if t > now {
                plan.follow_ups.push(FollowUp {
                    at_ms: t,
                    reason: format!("{} healthy", a.alloc.name),
                });
            }
        }
        if deadline_ms > 0 && health(a).is_none() {
            plan.follow_ups.push(FollowUp {
                at_ms: a.alloc.created_at_ms.saturating_add(deadline_ms) + 1,
                reason: format!("{} healthy deadline", a.alloc.name),
            });
        }
    }
    let rescheduling: HashSet<&str> = plan
        .reschedule
        .iter()
        .filter(|x| x.place.group == group.name)
        .map(|x| x.stop.alloc_id.as_str())
        .collect();
    let awaiting_reschedule = r
        .failed_new
        .iter()
        .filter(|a| !rescheduling.contains(a.alloc.id.as_str()))
        .count() as u32;
    let failed_total = r
        .all_new
        .iter()
        .filter(|a| a.client_status() == ClientStatus::Failed)
        .count() as u32;

    let d = deployment.get_or_insert_with(|| new_deployment(input));
    let paused = d.status == ds::PAUSED;
    // A failed or cancelled deployment rolls nothing more. After a successful one, what still
    // runs an older version (an allocation back from a lost node) is updated like the rest,
    // and the finished deployment is left as it is.
    let finished = d.status == ds::SUCCESSFUL;
    if d.status != ds::RUNNING && !paused && !finished {
        return;
    }
    let progress_ms = (u.progress_deadline_ns / 1_000_000) as i64;
    let g = d
        .groups
        .entry(group.name.clone())
        .or_insert_with(|| DeploymentGroup {
            desired_canaries: if r.old.is_empty() { 0 } else { u.canary },
            auto_revert: u.auto_revert,
            auto_promote: u.auto_promote,
            progress_deadline_ms: progress_ms,
            ..Default::default()
        });
    if !finished {
        let progressed = healthy_new > g.healthy;
        // Nothing is left to update and no canary was placed (the last older copies went in
        // place, as after a revert, or were stopped): there is nothing to try a canary on, and
        // waiting for one would hold the deployment for good.
        let no_canary_yet = !r.all_new.iter().any(|a| a.alloc.canary);
        if g.desired_canaries > 0 && !g.promoted && r.old.is_empty() && no_canary_yet {
            g.desired_canaries = 0;
        }
        g.desired_total = group.count;
        g.placed = r
            .all_new
            .iter()
            .filter(|a| a.client_status() == ClientStatus::Failed || counts_as_new(a))
            .count()
            .max(new_allocs.len()) as u32;
        g.healthy = healthy_new;
        g.unhealthy = unhealthy_live + failed_total;
        if g.desired_canaries > 0 {
            g.placed_canaries = r
                .all_new
                .iter()
                .filter(|a| a.alloc.canary)
                .map(|a| a.alloc.id.clone())
                .collect();
        }
        // The progress deadline runs only while the group can make progress: not while
        // paused, not while its healthy canaries wait for a promotion, not once it is done.
        let done = g.healthy >= g.desired_total && (g.desired_canaries == 0 || g.promoted);
        if progress_ms > 0 {
            if paused || done || g.waits_for_promotion() {
                g.require_progress_by_ms = 0;
            } else if g.require_progress_by_ms == 0 || progressed {
                g.require_progress_by_ms = now + progress_ms;
            }
        }
    }
    if paused {
        return;
    }
    // Canaries first.
    if g.desired_canaries > 0 && !g.promoted && !finished {
        let live_canaries: Vec<&ObservedAlloc> = new_allocs
            .iter()
            .copied()
            .filter(|a| a.alloc.canary)
            .collect();
        // Canaries that exist: running, starting, moving off a draining node, or failed and
        // waiting for their reschedule.
        let existing: Vec<&ObservedAlloc> = r
            .all_new
            .iter()
            .copied()
            .filter(|a| {
                a.alloc.canary
                    && a.alloc.desired_status == DesiredStatus::Run
                    && (!a.client_status().is_terminal()
                        || r.failed_new.iter().any(|f| f.alloc.id == a.alloc.id))
            })
            .collect();
        // ...and canaries this plan places already (a lost canary's successor).
        let placing: Vec<u32> = plan
            .placements()
            .filter(|p| p.canary && p.group == group.name)
            .map(|p| p.index)
            .collect();
        let missing = (g.desired_canaries as usize).saturating_sub(existing.len() + placing.len());
        let taken: HashSet<u32> = existing
            .iter()
            .map(|a| a.alloc.index)
            .chain(placing)
            .collect();
        // (Not where the new version runs already: a successor of a lost allocation, placed
        // before its original came back.)
        let updated: HashSet<u32> = new_allocs
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
                group: group.name.clone(),
                index: a.alloc.index,
                canary: true,
                ..Default::default()
            });
        }
        let all_healthy = live_canaries.len() as u32 >= g.desired_canaries
            && live_canaries.iter().all(|a| health(a) == Some(true));
        if !(all_healthy && u.auto_promote) {
            return;
        }
        g.promoted = true;
        if progress_ms > 0 {
            g.require_progress_by_ms = now + progress_ms;
        }
    }
    // An unhealthy allocation stops the rollout until it is healthy or replaced (Nomad's
    // `computeLimit`); otherwise at most `max_parallel` new allocations are not yet healthy.
    // (A failed allocation halts it in the pass that reschedules it, too.)
    let halted = unhealthy_live > 0 || awaiting_reschedule > 0 || !r.failed_new.is_empty();
    let in_flight = new_allocs.len() as u32 - healthy_new + rescheduling.len() as u32;
    let mut budget = if halted {
        0
    } else {
        u.max_parallel.saturating_sub(in_flight)
    };
    // And a healthy allocation is only replaced while `count - max_parallel` others stay healthy.
    // (Running: an allocation of a disconnected node keeps its verdict but serves nobody. With
    // no verdict from its agent yet, an older allocation is judged by its own version's rule.)
    let old_healthy = |a: &ObservedAlloc| {
        runs_on_connected_node(input, a)
            && alloc_health(a, &rule_of_version(input, &a.alloc, r.rule), now) == Some(true)
    };
    let mut served = ServedIndexes::default();
    for a in r.live.values().flatten().filter(|a| old_healthy(a)) {
        served.add(a.alloc.index);
    }
    let floor = group.count.saturating_sub(u.max_parallel);
    // Indexes a healthy new allocation serves: on a node in touch (a healthy canary whose node
    // missed its heartbeat keeps its verdict, but the older copy beside it still serves).
    let healthy_idx: HashSet<u32> = new_allocs
        .iter()
        .filter(|a| health(a) == Some(true) && runs_on_connected_node(input, a))
        .map(|a| a.alloc.index)
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
            || new_allocs.iter().any(|n| n.alloc.index == a.alloc.index)
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

/// Per-group summary as `nctl status` shows it; `queued` is the number of placements that
/// could not be made.
pub fn summarize(
    job: &Job,
    allocs: &[ObservedAlloc],
    queued: &IndexMap<String, u32>,
) -> IndexMap<String, GroupSummary> {
    let mut out: IndexMap<String, GroupSummary> = job
        .groups
        .iter()
        .map(|g| {
            (
                g.name.clone(),
                GroupSummary {
                    queued: queued.get(&g.name).copied().unwrap_or(0),
                    ..Default::default()
                },
            )
        })
        .collect();
    for a in allocs {
        let Some(s) = out.get_mut(&a.alloc.task_group) else {
            continue;
        };
        match a.client_status() {
            ClientStatus::Pending if a.alloc.desired_status == DesiredStatus::Run => {
                s.starting += 1
            }
            ClientStatus::Pending => {}
            ClientStatus::Running => s.running += 1,
            ClientStatus::Failed => s.failed += 1,
            ClientStatus::Complete => s.complete += 1,
            ClientStatus::Lost => s.lost += 1,
            ClientStatus::Unknown => s.unknown += 1,
        }
    }
    out
}

/// `pending`, `running` or `dead`, as Nomad shows a job.
pub fn job_status_word(job: &Job, allocs: &[ObservedAlloc]) -> &'static str {
    let active = allocs
        .iter()
        .any(|a| !a.client_status().is_terminal() && a.alloc.desired_status == DesiredStatus::Run);
    let running = allocs
        .iter()
        .any(|a| a.client_status() == ClientStatus::Running);
    if job.stop {
        return if allocs
            .iter()
            .any(|a| a.client_status() == ClientStatus::Running)
        {
            "running"
        } else {
            "dead"
        };
    }
    if running
        || active
            && allocs
                .iter()
                .any(|a| a.client_status() == ClientStatus::Pending && a.status.is_some())
    {
        return "running";
    }
    if matches!(job.job_type, JobType::Batch | JobType::Sysbatch)
        && !allocs.is_empty()
        && job.groups.iter().all(|g| {
            allocs
                .iter()
                .filter(|a| {
                    a.alloc.task_group == g.name && a.client_status() == ClientStatus::Complete
                })
                .count() as u32
                >= g.count
        })
    {
        return "dead";
    }
    "pending"
}
