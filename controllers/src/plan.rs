//! What the controllers would do with a job spec now, without writing anything: `nctl plan` and
//! `POST /v1/job/{id}/plan`. The spec is taken as the version the jobs controller would accept
//! (the newest one when it is the same spec, else the next number), and the very decision the
//! controller or the system loop runs ([`crate::jobs::decide::decide`], [`crate::system::plan`])
//! is made over one consistent read of the store ([`View`]); its buckets are counted per group.
//! So a plan can only disagree with the apply that follows when the cluster changes between
//! them.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};

use indexmap::IndexMap;
use nomos_api::Job;
use nomos_store::Store;

use crate::jobs::decide::{self, DecisionInput, PlacedFor};
use crate::loops::view::{Part, View};
use crate::reconcile::{NodeHealth, ObservedAlloc};
use crate::scheduler::SchedulerConfig;
use crate::system;
use crate::ControllerError;

/// Every prefix a plan reads (heartbeats say which nodes are ready).
const PARTS: [Part; 14] = [
    Part::Specs,
    Part::Versions,
    Part::JobStatus,
    Part::Deployments,
    Part::Allocs,
    Part::AllocStatus,
    Part::Nodes,
    Part::NodeSpecs,
    Part::Heartbeats,
    Part::Namespaces,
    Part::Quotas,
    Part::Config,
    Part::NodePools,
    Part::Stability,
];

/// One consistent read of what a plan needs.
pub async fn read(store: &dyn Store) -> Result<View, ControllerError> {
    View::read(store, &PARTS).await
}

/// What the decision does to one group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupPlan {
    /// Allocations desired to run and not finished now.
    pub existing: u32,
    /// New allocations at free indexes (a new job, a scale-up, a lost allocation's successor).
    pub place: u32,
    pub canary: u32,
    /// Allocations moved to the new version without a restart.
    pub inplace: u32,
    /// Allocations replaced by one of the new version (stop, then place).
    pub destructive: u32,
    /// Allocations moved off a draining or lost node.
    pub migrate: u32,
    /// Failed allocations replaced under their reschedule policy.
    pub reschedule: u32,
    /// Allocations stopped with nothing in their place (scale-down, a stopped job, a removed
    /// group, a stale canary).
    pub stop: u32,
    /// Placements that found no node, and the scheduler's reason.
    pub failed: u32,
    pub failure: Option<String>,
    /// Nodes the new allocations go to, with how many each.
    pub placements: IndexMap<String, u32>,
}

/// The plan for one job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobPlan {
    /// The version the spec would be (a new number when it differs from the newest).
    pub version: u64,
    pub new_version: bool,
    /// Per group, in the spec's order, then groups only the running allocations know.
    pub groups: IndexMap<String, GroupPlan>,
    /// Why nothing is placed now, for jobs the decision leaves to a later event (periodic
    /// and parameterized jobs are placed when launched or dispatched).
    pub note: Option<String>,
}

/// Plans `job` over `view` at `now_ms`, as the controller owning it would decide.
pub fn plan_job(view: &View, job: &Job, now_ms: i64, config: &SchedulerConfig) -> JobPlan {
    let jk = (job.namespace.clone(), job.id.clone());
    let status = view.job_status.get(&jk).map(|s| &s.value);
    // A purge under way: the spec would start a new job (see the jobs controller).
    let purging = status.is_some_and(|s| s.purging);
    let mut versions = match view.versions.get(&jk) {
        Some(v) if !purging => v.clone(),
        _ => BTreeMap::new(),
    };
    let (version, new_version) = match versions.last_key_value() {
        Some((v, newest)) if newest == job => (*v, false),
        Some((v, _)) => (v + 1, true),
        None => (0, true),
    };
    versions.insert(version, job.clone());
    let allocs = view.observed_allocs_of(&jk);
    let mut out = JobPlan {
        version,
        new_version,
        groups: groups_of(job, &allocs),
        note: None,
    };
    let mut snapshot = view.snapshot();
    if system::is_system(job) {
        let p = system::plan(job, version, &mut snapshot, &allocs, now_ms);
        count_system(&p, &allocs, &mut out.groups);
        return out;
    }
    if job.periodic.is_some() || job.parameterized.is_some() {
        out.note = Some(
            if job.periodic.is_some() {
                "a periodic job places nothing itself: each launch is a new batch job"
            } else {
                "a parameterized job places nothing itself: each dispatch is a new batch job"
            }
            .into(),
        );
        return out;
    }
    let stable_version = status.filter(|_| !purging).and_then(|s| s.stable_version);
    let stable_version = nomos_api::settings::latest_stable(
        view.stability.get(&jk).filter(|_| !purging),
        stable_version,
        versions.keys().copied(),
    );
    let config = &view.scheduling.config_for(&job.node_pool, config);
    let health = |n: &str| -> NodeHealth {
        decide::node_health(
            view.nodes.contains_key(n),
            view.node_specs.get(n).is_some_and(|s| s.drain.is_some()),
            view.heartbeats.contains(n),
        )
    };
    let deployments = view
        .deployments
        .get(&jk)
        .filter(|_| !purging)
        .map(|m| m.values().cloned().collect())
        .unwrap_or_default();
    let next = Cell::new(0u32);
    let new_id = || {
        next.set(next.get() + 1);
        format!("plan-{}", next.get())
    };
    let d = decide::decide(
        DecisionInput {
            job_key: &jk,
            job,
            version,
            versions: &versions,
            stable_version,
            allocs,
            deployments,
            node_health: &health,
            now_ms,
        },
        &mut snapshot,
        config,
        &new_id,
    );
    count_decision(&d, &mut out.groups);
    out
}

/// Every group of the spec, then those only existing allocations name, with their live count.
fn groups_of(job: &Job, allocs: &[ObservedAlloc]) -> IndexMap<String, GroupPlan> {
    let mut groups: IndexMap<String, GroupPlan> = job
        .groups
        .iter()
        .map(|g| (g.name.clone(), GroupPlan::default()))
        .collect();
    for a in allocs {
        let g = groups.entry(a.alloc.task_group.clone()).or_default();
        if a.is_live() {
            g.existing += 1;
        }
    }
    groups
}

fn count_decision(d: &decide::Decision, groups: &mut IndexMap<String, GroupPlan>) {
    let group_of: HashMap<&str, &str> = d
        .existing
        .iter()
        .map(|e| (e.alloc.id.as_str(), e.alloc.task_group.as_str()))
        .collect();
    for (a, why) in d.new_allocs.iter().zip(&d.placed_for) {
        let g = groups.entry(a.task_group.clone()).or_default();
        match why {
            PlacedFor::Place => g.place += 1,
            PlacedFor::Canary => g.canary += 1,
            PlacedFor::DestructiveUpdate => g.destructive += 1,
            PlacedFor::Migrate => g.migrate += 1,
            PlacedFor::Reschedule => g.reschedule += 1,
        }
        *g.placements.entry(a.node.clone()).or_default() += 1;
    }
    let mut count = |id: &str, f: fn(&mut GroupPlan)| {
        if let Some(name) = group_of.get(id) {
            f(groups.entry(name.to_string()).or_default());
        }
    };
    for id in &d.plan.inplace_update {
        count(id, |g| g.inplace += 1);
    }
    for s in &d.plan.stop {
        count(&s.alloc_id, |g| g.stop += 1);
    }
    for (name, (n, why)) in &d.failures {
        let g = groups.entry(name.clone()).or_default();
        g.failed += n;
        g.failure = Some(why.clone());
    }
}

/// A system job's plan: a placement on a node where an older version stops is an update.
fn count_system(
    p: &system::SystemPlan,
    allocs: &[ObservedAlloc],
    groups: &mut IndexMap<String, GroupPlan>,
) {
    let group_of: HashMap<&str, &str> = allocs
        .iter()
        .map(|e| (e.alloc.id.as_str(), e.alloc.task_group.as_str()))
        .collect();
    let mut replaced_on: HashMap<(&str, &str), u32> = HashMap::new();
    for s in &p.stop {
        let Some(group) = group_of.get(s.alloc_id.as_str()) else {
            continue;
        };
        if s.reason.starts_with(system::REPLACED_BY_VERSION) {
            *replaced_on.entry((group, s.node.as_str())).or_default() += 1;
        } else {
            groups.entry(group.to_string()).or_default().stop += 1;
        }
    }
    for n in &p.place {
        let a = &n.alloc;
        let replaces = replaced_on
            .remove(&(a.task_group.as_str(), a.node.as_str()))
            .is_some();
        let g = groups.entry(a.task_group.clone()).or_default();
        if replaces {
            g.destructive += 1;
        } else {
            g.place += 1;
        }
        *g.placements.entry(a.node.clone()).or_default() += 1;
    }
    for (name, why) in &p.failures {
        let g = groups.entry(name.clone()).or_default();
        g.failed += p.unplaced.get(name).copied().unwrap_or(1);
        g.failure = Some(why.clone());
    }
}
