//! The jobs controller's decision for one job, as a pure function of what it reads: the job's
//! versions, its allocations with their statuses, its deployments, node health and the cluster
//! snapshot. [`decide`] runs the reconcile ([`crate::reconcile::reconcile`]), places its
//! placements on the snapshot ([`crate::scheduler::place`]) and returns the allocations to
//! create and to change. The controller commits them; `nctl plan` runs the same function over
//! a read of the store and reports what it would do ([`crate::plan`]).

use std::collections::{BTreeMap, HashMap, HashSet};

use indexmap::IndexMap;
use nomos_api::{Allocation, Deployment, DesiredStatus, Job};

use crate::reconcile::{self, NodeHealth, ObservedAlloc, Place, Plan};
use crate::scheduler::{self, hash_str, ClusterSnapshot, PlacementRequest, SchedulerConfig};
use crate::write::set_desired;

use super::world::JobKey;

/// Everything one decision reads about a job.
pub struct DecisionInput<'a> {
    pub job_key: &'a JobKey,
    /// The newest accepted version, numbered `version`.
    pub job: &'a Job,
    pub version: u64,
    /// Every accepted version, `version` included.
    pub versions: &'a BTreeMap<u64, Job>,
    pub stable_version: Option<u64>,
    pub allocs: Vec<ObservedAlloc>,
    pub deployments: Vec<Deployment>,
    pub node_health: &'a dyn Fn(&str) -> NodeHealth,
    pub now_ms: i64,
}

/// Which bucket of the plan a new allocation comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlacedFor {
    /// A missing index (a new job, a scale-up, a lost allocation's successor).
    Place,
    Canary,
    DestructiveUpdate,
    Migrate,
    Reschedule,
}

/// What a decision does: the reconcile's plan, and the allocation writes it becomes.
pub struct Decision {
    pub plan: Plan,
    pub new_allocs: Vec<Allocation>,
    /// Why each of `new_allocs` is placed (same order).
    pub placed_for: Vec<PlacedFor>,
    /// Existing allocations with a new version (in place) or `desired_status: stop`.
    pub changed: Vec<Allocation>,
    /// Per group: placements that failed, and the scheduler's reason for the last one.
    pub failures: IndexMap<String, (u32, String)>,
    /// Per group: the scheduler's account of the last placement that failed.
    pub failure_metrics: IndexMap<String, scheduler::PlacementFailure>,
    /// The allocations the decision read.
    pub existing: Vec<ObservedAlloc>,
}

/// A node's health as the reconcile sees it, from what the store says of it: its node key
/// exists, its spec asks for a drain, its heartbeat key exists.
pub fn node_health(known: bool, draining: bool, heartbeat: bool) -> NodeHealth {
    if !known {
        NodeHealth::Down
    } else if draining {
        NodeHealth::Draining
    } else if !heartbeat {
        NodeHealth::Disconnected
    } else {
        NodeHealth::Ready
    }
}

/// Reconciles the job, places what the plan asks for on `snapshot` (which records the
/// placements) and turns the plan into allocation writes. `new_id` names new allocations.
pub fn decide(
    input: DecisionInput<'_>,
    snapshot: &mut ClusterSnapshot,
    config: &SchedulerConfig,
    new_id: &dyn Fn() -> String,
) -> Decision {
    let DecisionInput {
        job_key,
        job,
        version,
        versions,
        stable_version,
        allocs,
        deployments,
        node_health,
        now_ms: now,
    } = input;
    let spec_hash = nomos_api::spec_hash(job);
    let deployment = deployments
        .iter()
        .find(|d| d.rolls_out(version, &spec_hash))
        .cloned();
    let plan = reconcile::reconcile(&reconcile::Input {
        job,
        version,
        versions,
        spec_hash: &spec_hash,
        deployment: deployment.as_ref(),
        deployments: &deployments,
        allocs: &allocs,
        node_health,
        now_ms: now,
        stable_version,
    });
    let deployment_id = plan
        .deployment
        .as_ref()
        .or(deployment.as_ref())
        .filter(|d| d.status == nomos_api::deployment_status::RUNNING)
        .map(|d| d.id.clone())
        .unwrap_or_default();
    let placing = Placing {
        job_key,
        job,
        version,
        versions,
        spec_hash: &spec_hash,
        deployment_id: &deployment_id,
        now,
    };
    let placed = placing.place_all(&plan, snapshot, config, new_id);
    let changed = changes(&plan, &allocs, &placed.succeeded, version, &spec_hash, now);
    Decision {
        plan,
        new_allocs: placed.allocs,
        placed_for: placed.placed_for,
        changed,
        failures: placed.failures,
        failure_metrics: placed.failure_metrics,
        existing: allocs,
    }
}

/// What placing a plan's placements produced.
struct Placed {
    allocs: Vec<Allocation>,
    placed_for: Vec<PlacedFor>,
    failures: IndexMap<String, (u32, String)>,
    failure_metrics: IndexMap<String, scheduler::PlacementFailure>,
    /// The placements that succeeded, by identity: a replacement's stop is applied only if its
    /// own placement succeeded (its predecessor is not always what it stops).
    succeeded: HashSet<*const Place>,
}

/// The fixed facts a placement needs.
struct Placing<'a> {
    job_key: &'a JobKey,
    job: &'a Job,
    version: u64,
    versions: &'a BTreeMap<u64, Job>,
    spec_hash: &'a str,
    deployment_id: &'a str,
    now: i64,
}

impl Placing<'_> {
    /// Places group by group (and by version: a successor may keep its predecessor's).
    fn place_all(
        &self,
        plan: &Plan,
        snapshot: &mut ClusterSnapshot,
        config: &SchedulerConfig,
        new_id: &dyn Fn() -> String,
    ) -> Placed {
        let mut why: HashMap<*const Place, PlacedFor> = HashMap::new();
        for p in &plan.place {
            let kind = if p.canary {
                PlacedFor::Canary
            } else {
                PlacedFor::Place
            };
            why.insert(p as *const Place, kind);
        }
        for (bucket, kind) in [
            (&plan.destructive_update, PlacedFor::DestructiveUpdate),
            (&plan.migrate, PlacedFor::Migrate),
            (&plan.reschedule, PlacedFor::Reschedule),
        ] {
            for r in bucket {
                why.insert(&r.place as *const Place, kind);
            }
        }
        let mut by_group: IndexMap<(&str, u64), Vec<&Place>> = IndexMap::new();
        for p in plan.placements() {
            let v = p.version.unwrap_or(self.version);
            by_group.entry((p.group.as_str(), v)).or_default().push(p);
        }
        let mut out = Placed {
            allocs: Vec::new(),
            placed_for: Vec::new(),
            failures: IndexMap::new(),
            failure_metrics: IndexMap::new(),
            succeeded: HashSet::new(),
        };
        let seed = hash_str(&format!("{}/{}", self.job_key.0, self.job_key.1)) ^ self.version;
        for ((gname, v), places) in by_group {
            let spec = if v == self.version {
                self.job
            } else {
                match self.versions.get(&v) {
                    Some(old) => old,
                    None => continue,
                }
            };
            let Some(group) = spec.groups.iter().find(|g| g.name == gname) else {
                continue;
            };
            let hash = if v == self.version {
                self.spec_hash.to_string()
            } else {
                nomos_api::spec_hash(spec)
            };
            let requests: Vec<PlacementRequest> = places
                .iter()
                .map(|p| PlacementRequest {
                    alloc_id: new_id(),
                    penalty_node: p.penalty_node.clone(),
                })
                .collect();
            let results = scheduler::place(snapshot, spec, group, &requests, config, seed);
            for (p, r) in places.iter().zip(results) {
                match r {
                    Ok(pl) => {
                        out.succeeded.insert(*p as *const Place);
                        out.placed_for.push(
                            why.get(&(*p as *const Place))
                                .copied()
                                .unwrap_or(PlacedFor::Place),
                        );
                        out.allocs.push(self.allocation(p, pl, group, v, &hash));
                    }
                    Err(f) => {
                        let e = out
                            .failures
                            .entry(group.name.clone())
                            .or_insert((0, String::new()));
                        e.0 += 1;
                        e.1 = f.summary();
                        out.failure_metrics.insert(group.name.clone(), f);
                    }
                }
            }
        }
        out
    }

    /// The allocation a successful placement creates.
    fn allocation(
        &self,
        p: &Place,
        pl: scheduler::Placement,
        group: &nomos_api::TaskGroup,
        version: u64,
        hash: &str,
    ) -> Allocation {
        Allocation {
            id: pl.alloc_id,
            namespace: self.job.namespace.clone(),
            job_id: self.job.id.clone(),
            job_version: version,
            job_spec_hash: hash.to_string(),
            task_group: group.name.clone(),
            name: format!("{}.{}[{}]", self.job.id, group.name, p.index),
            index: p.index,
            node: pl.node,
            desired_status: DesiredStatus::Run,
            desired_description: if p.canary {
                "canary".into()
            } else {
                String::new()
            },
            ports: pl.ports,
            devices: pl.devices,
            deployment_id: if version == self.version {
                self.deployment_id.to_string()
            } else {
                String::new()
            },
            canary: p.canary,
            previous_alloc: p.previous_alloc.clone().unwrap_or_default(),
            // Named by the controller once the pass's evaluation is known.
            eval_id: String::new(),
            reschedule_attempts: p.reschedule_attempts,
            reschedule_times_ms: p.reschedule_times_ms.clone(),
            created_at_ms: self.now,
            modified_at_ms: self.now,
        }
    }
}

/// Changes to existing allocations: in-place updates, then stops (a replacement's old
/// allocation stops only when its successor was placed).
fn changes(
    plan: &Plan,
    allocs: &[ObservedAlloc],
    succeeded: &HashSet<*const Place>,
    version: u64,
    spec_hash: &str,
    now: i64,
) -> Vec<Allocation> {
    let by_id: HashMap<&str, &Allocation> = allocs
        .iter()
        .map(|e| (e.alloc.id.as_str(), &e.alloc))
        .collect();
    let mut changed: BTreeMap<String, Allocation> = BTreeMap::new();
    for id in &plan.inplace_update {
        if let Some(a) = by_id.get(id.as_str()) {
            let mut a = (*a).clone();
            a.job_version = version;
            a.job_spec_hash = spec_hash.to_string();
            a.modified_at_ms = now;
            changed.insert(id.clone(), a);
        }
    }
    let replaced = plan
        .destructive_update
        .iter()
        .chain(&plan.migrate)
        .chain(&plan.reschedule);
    let stops = plan.stop.iter().chain(
        replaced
            .filter(|r| succeeded.contains(&(&r.place as *const Place)))
            .map(|r| &r.stop),
    );
    for s in stops {
        let base = changed
            .get(&s.alloc_id)
            .cloned()
            .or_else(|| by_id.get(s.alloc_id.as_str()).map(|a| (*a).clone()));
        if let Some(a) = base {
            let stopped = set_desired(&a, DesiredStatus::Stop, &s.reason, now);
            changed.insert(s.alloc_id.clone(), stopped);
        }
    }
    changed.into_values().collect()
}
