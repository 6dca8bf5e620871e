//! The words of the reconcile: its input, its plan and the plan's parts.

use std::collections::BTreeMap;

use nomos_api::{Allocation, Deployment, Job};

pub use crate::observed::{ObservedAlloc, Stop};

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

/// Facts about one group's rollout that the deployment's verdict needs.
#[derive(Debug, Default)]
pub(super) struct GroupFacts {
    /// A failed allocation of the deployment's version has no reschedule attempts left.
    pub(super) unreschedulable: Option<String>,
}

pub(super) fn stop(a: &Allocation, why: &str) -> Stop {
    Stop::of(a, why)
}

/// A placement that takes over `a`'s index in `group`, naming `a` as its predecessor.
pub(super) fn successor(group: &str, a: &Allocation) -> Place {
    Place {
        group: group.to_string(),
        index: a.index,
        previous_alloc: Some(a.id.clone()),
        ..Default::default()
    }
}
