//! The invariants, checked after every action of a run (an agent round, one reconcile, one loop
//! pass, a user's write, a fault). Each is a function named after the property it guards and
//! compares the snapshot before the action with the one after. The first one that breaks stops
//! the run: the trace up to that moment is the reproduction.
//!
//! They are written from what users are promised (Nomad's documented behaviour), not from the
//! controllers' code, so they catch the controllers disagreeing with the promise.

use std::collections::{BTreeMap, BTreeSet};

use nomos_api::{Allocation, ClientStatus, DesiredStatus, Job, JobType};

use crate::observe::{JobKey, Snapshot};

mod convergence;
mod deployment;
mod placement;
mod reschedule;
mod rollout;

use convergence::an_invalid_spec_never_changes_what_runs;
pub use convergence::every_job_converges_once_faults_stop;
use deployment::{
    a_deployment_fails_at_its_progress_deadline,
    a_deployment_fails_at_once_when_an_unhealthy_allocation_cannot_be_rescheduled,
    a_deployment_waiting_for_promotion_says_so,
    auto_revert_reverts_once_per_failed_deployment_to_the_latest_stable_version,
    healthy_canaries_awaiting_promotion_never_fail_at_the_progress_deadline, new_reverts,
};
use placement::{
    allocations_are_deleted_only_when_stopped_and_finished,
    every_allocation_names_the_spec_it_was_placed_with, no_allocation_is_duplicated,
    no_node_is_over_committed,
};
use reschedule::no_failed_allocation_is_replaced_sooner_than_its_reschedule_policy_allows;
pub use reschedule::reschedule_policy;
use rollout::{
    an_unhealthy_allocation_stops_the_rollout,
    an_update_never_leaves_fewer_than_count_minus_max_parallel_healthy, canaries_of,
    never_more_than_count_plus_canary_are_desired_to_run,
};

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
