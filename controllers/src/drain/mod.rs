//! The drain loop's decisions: move a draining node's allocations elsewhere before stopping them.
//!
//! [`decide`] is pure: `(drain spec, the node's allocations with their replacements and health,
//! now) -> DrainPlan`. The replacements themselves are placed by the jobs controller's reconcile
//! (it owns each job's placements and counts), under the same rules; this loop follows them, stops
//! what the deadline and the system-jobs rule stop, and reports progress. Rules (after Nomad's
//! node drainer):
//! - service allocations migrate: a replacement is placed elsewhere first, at most the group's
//!   `migrate.max_parallel` at a time (replacements not yet healthy count against it), and the
//!   original stops only once its replacement is healthy (every task running for
//!   `migrate.min_healthy_time` with its checks passing, see [`crate::health`]);
//! - batch allocations are left to finish until the deadline;
//! - at the deadline whatever remains is stopped (and given a replacement if it had none);
//! - system and sysbatch allocations stop last, once nothing else remains, or stay with
//!   `ignore_system_jobs`;
//! - an allocation that cannot be placed anywhere is reported and the drain waits;
//! - cancelling a drain (removing it from the node spec) stops the loop: what moved stays moved.

pub mod run;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use nomos_api::{DesiredStatus, DrainSpec, Job, JobType, MigrateStrategy};

use crate::health::{migration_health, HealthRule, MigrationHealth};

/// Why an allocation still running at a drain's deadline was stopped. The jobs controller places
/// such an allocation again even when it is a batch allocation that reports `complete` (it was
/// killed, not finished).
pub const DEADLINE_REASON: &str = "node drain deadline reached";

pub use nomos_store::keys::{drain_status as drain_status_key, DRAIN_STATUS_PREFIX};

pub use nomos_api::{DrainState, DrainStatus};

/// One allocation on the draining node.
#[derive(Debug, Clone, PartialEq)]
pub struct DrainAlloc {
    /// The allocation and what its agent reports (its fields and methods read through).
    pub observed: ObservedAlloc,
    pub job_type: JobType,
    /// The group's `migrate` block (group, else job, else Nomad's defaults).
    pub migrate: MigrateStrategy,
    /// When a replacement counts as healthy: the `migrate` block's `min_healthy_time`, and its
    /// checks passing unless `health_check = "task_states"`.
    pub health: HealthRule,
    /// Allocations whose `previous_alloc` is this one.
    pub replacements: Vec<ObservedAlloc>,
    /// Ids of those whose node missed its heartbeat: they keep their verdict but serve nobody
    /// anyone knows of, so none of them counts as a healthy replacement (seed 1549).
    pub replacements_away: BTreeSet<String>,
}

pub use crate::observed::{ObservedAlloc, Stop};

impl std::ops::Deref for DrainAlloc {
    type Target = ObservedAlloc;

    fn deref(&self) -> &ObservedAlloc {
        &self.observed
    }
}

/// How far a replacement got towards counting as migrated, by the `migrate` block's rule.
fn replacement_health(a: &DrainAlloc, r: &ObservedAlloc, now_ms: i64) -> MigrationHealth {
    match migration_health(r.status.as_ref(), &a.health, now_ms) {
        MigrationHealth::Healthy if a.replacements_away.contains(&r.alloc.id) => {
            MigrationHealth::Pending
        }
        h => h,
    }
}

/// Nomad's `migrate` defaults: one at a time, 10s healthy, 5 minutes to get healthy.
pub fn default_migrate() -> MigrateStrategy {
    MigrateStrategy {
        max_parallel: 1,
        health_check: "checks".into(),
        min_healthy_time_ns: 10_000_000_000,
        healthy_deadline_ns: 300_000_000_000,
    }
}

/// The `migrate` block that applies to `group` of `job`.
pub fn migrate_for(job: &Job, group: &str) -> MigrateStrategy {
    job.groups
        .iter()
        .find(|g| g.name == group)
        .and_then(|g| g.migrate.clone())
        .or_else(|| job.migrate.clone())
        .unwrap_or_else(default_migrate)
}

/// What one evaluation of a draining node decided.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DrainPlan {
    /// Allocations to give a replacement elsewhere now.
    pub migrate: Vec<String>,
    pub stop: Vec<Stop>,
    /// Allocations still on the node after this plan (desired to run, not finished).
    pub remaining: u32,
    /// Replacements placed and not yet healthy.
    pub migrating: u32,
    /// Nothing is left to move or stop.
    pub complete: bool,
    pub wake_at_ms: Option<i64>,
}

/// One evaluation of a draining node at `now_ms`.
pub fn decide(drain: &DrainSpec, allocs: &[DrainAlloc], now_ms: i64) -> DrainPlan {
    let mut plan = DrainPlan::default();
    let deadline_passed = drain.deadline_ms > 0 && now_ms >= drain.deadline_ms;
    if drain.deadline_ms > 0 && !deadline_passed {
        plan.wake_at_ms = Some(drain.deadline_ms);
    }
    let remaining: Vec<&DrainAlloc> = allocs
        .iter()
        .filter(|a| {
            a.alloc.desired_status == DesiredStatus::Run
                && !a
                    .status
                    .as_ref()
                    .is_some_and(|s| s.client_status.is_terminal())
        })
        .collect();
    let (system, others): (Vec<&DrainAlloc>, Vec<&DrainAlloc>) = remaining
        .iter()
        .partition(|a| matches!(a.job_type, JobType::System | JobType::Sysbatch));

    // Per group: how many replacements are in flight (placed, live, not yet healthy).
    let mut in_flight: BTreeMap<(String, String, String), u32> = BTreeMap::new();
    let group_key = |a: &DrainAlloc| {
        (
            a.alloc.namespace.clone(),
            a.alloc.job_id.clone(),
            a.alloc.task_group.clone(),
        )
    };
    for a in &others {
        if a.replacements
            .iter()
            .any(|r| r.is_live() && replacement_health(a, r, now_ms) != MigrationHealth::Healthy)
        {
            *in_flight.entry(group_key(a)).or_default() += 1;
        }
    }
    // Reported as migrating: replacements placed and not yet healthy (before this plan's own).
    plan.migrating = in_flight.values().sum();
    let mut stopped = 0u32;
    let mut ordered = others.clone();
    ordered.sort_by(|a, b| a.alloc.id.cmp(&b.alloc.id));
    for a in ordered {
        let live: Vec<&ObservedAlloc> = a.replacements.iter().filter(|r| r.is_live()).collect();
        if deadline_passed {
            if live.is_empty() && a.job_type == JobType::Service {
                plan.migrate.push(a.alloc.id.clone());
            }
            plan.stop.push(Stop::of(&a.alloc, DEADLINE_REASON));
            stopped += 1;
            continue;
        }
        if a.job_type != JobType::Service {
            // Batch allocations finish where they are until the deadline.
            continue;
        }
        let mut healthy = None;
        for r in &live {
            match replacement_health(a, r, now_ms) {
                MigrationHealth::Healthy => healthy = Some(r.alloc.id.clone()),
                MigrationHealth::At(t) => {
                    plan.wake_at_ms = Some(plan.wake_at_ms.map_or(t, |w| w.min(t)))
                }
                MigrationHealth::Pending => {}
            }
        }
        if let Some(r) = healthy {
            plan.stop.push(Stop::of(
                &a.alloc,
                format!("node drain: replacement {r} is healthy"),
            ));
            stopped += 1;
        } else if live.is_empty() {
            let limit = a.migrate.max_parallel.max(1);
            let n = in_flight.entry(group_key(a)).or_default();
            if *n < limit {
                *n += 1;
                plan.migrate.push(a.alloc.id.clone());
            }
        }
    }
    let others_left = others.len() as u32 - stopped;
    let mut system_left = system.len() as u32;
    if others.is_empty() && !drain.ignore_system_jobs {
        // System allocations go last: only once nothing else was left at the start of this pass.
        for a in &system {
            plan.stop.push(Stop::of(
                &a.alloc,
                "node drain: system allocations stop last",
            ));
        }
        system_left = 0;
    }
    plan.remaining = others_left
        + if drain.ignore_system_jobs {
            0
        } else {
            system_left
        };
    plan.complete = plan.remaining == 0;
    if plan.complete {
        plan.wake_at_ms = None;
    }
    plan
}
