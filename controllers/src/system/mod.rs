//! The system loop's decisions: `system` and `sysbatch` jobs run one allocation of each group on
//! every node that is ready, eligible and passes the job's datacenters, node pool, drivers and
//! constraints.
//!
//! [`plan`] is pure: `(job version, cluster snapshot, the job's allocations, now) -> SystemPlan`.
//! The per-node fit reuses the placement engine ([`crate::scheduler::place`]) on a one-node view
//! of the snapshot, so resources, ports and constraints are checked exactly as for any placement,
//! and a node that cannot fit says why (it lands in the job status' `placement_failures`).
//!
//! Rules:
//! - a feasible node without an allocation of the current version gets one (a node that joins
//!   later gets it on the next evaluation);
//! - a node that becomes ineligible, or no longer passes the constraints, loses it; a node that is
//!   disconnected or draining keeps what it has (the node-lifecycle and drain loops decide);
//! - `sysbatch` runs once per node and version: a finished allocation is not placed again;
//! - a new version replaces allocations node by node, at most `update.max_parallel` at a time
//!   (counting replacements not yet healthy).

pub mod evals;
pub mod run;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use indexmap::IndexMap;
use nomos_api::{Allocation, ClientStatus, DesiredStatus, GroupSummary, Job, JobType, TaskGroup};

use crate::health::HealthRule;
use crate::scheduler::{self, ClusterSnapshot, NodeState, PlacementRequest, SchedulerConfig};

pub use crate::observed::{ObservedAlloc, Stop};

impl ObservedAlloc {
    /// Healthy enough that a rolling update may move on: the agent says so, it finished, or it
    /// has run for the update's `min_healthy_time` with its checks passing.
    fn is_settled(&self, rule: &HealthRule, now_ms: i64) -> bool {
        match self.status.as_ref() {
            Some(s) => {
                s.healthy == Some(true)
                    || matches!(s.client_status, ClientStatus::Complete)
                    || (s.healthy.is_none() && rule.healthy_at(s).is_some_and(|t| t <= now_ms))
            }
            None => false,
        }
    }
}

/// An allocation to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAlloc {
    pub alloc: Allocation,
    /// Resources it holds (for the executor's metrics and the snapshot).
    pub cpu: u32,
    pub memory_mb: u32,
}

/// What one evaluation of a system job decided.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SystemPlan {
    pub place: Vec<NewAlloc>,
    pub stop: Vec<Stop>,
    /// Per group: nodes that should run it but cannot fit it, and why.
    pub failures: IndexMap<String, String>,
    /// Per group: how many nodes those are.
    pub unplaced: IndexMap<String, u32>,
    /// Nodes whose update waits for `max_parallel`.
    pub updates_waiting: u32,
}

impl SystemPlan {
    pub fn is_empty(&self) -> bool {
        self.place.is_empty() && self.stop.is_empty()
    }
}

/// Why a node does not get the group.
enum NodeFit {
    /// Ready, eligible, passes every filter, and the resources fit.
    Fits(scheduler::Placement),
    /// Should run it, but resources or ports do not fit.
    NoRoom(String),
    /// Not a node for this job (constraints, datacenter, pool, drivers, ineligible).
    Excluded(String),
    /// Disconnected or draining: keep what it has, place nothing.
    Hold,
}

/// Plans a system or sysbatch job's allocations at `now_ms`. `snapshot` holds every node and the
/// usage of every allocation in the cluster (this job's included); placements are recorded in it.
pub fn plan(
    job: &Job,
    version: u64,
    snapshot: &mut ClusterSnapshot,
    allocs: &[ObservedAlloc],
    now_ms: i64,
) -> SystemPlan {
    let mut out = SystemPlan::default();
    let spec = VersionRef {
        version,
        hash: nomos_api::spec_hash(job),
    };
    let mut nodes: Vec<String> = snapshot.nodes().map(|n| n.node.name.clone()).collect();
    nodes.sort();
    for group in &job.groups {
        let mine: Vec<&ObservedAlloc> = allocs
            .iter()
            .filter(|a| a.alloc.task_group == group.name)
            .collect();
        let rule = update_health_rule(job, group);
        let in_flight = mine
            .iter()
            .filter(|a| {
                a.alloc.job_version == version
                    && !a.alloc.previous_alloc.is_empty()
                    && a.is_live()
                    && !a.is_settled(&rule, now_ms)
            })
            .count() as u32;
        let mut pass = GroupPass {
            job,
            group,
            spec: &spec,
            now_ms,
            budget: max_parallel(job, group).map(|m| m.saturating_sub(in_flight)),
            failures: Vec::new(),
        };
        for node in &nodes {
            let on_node: Vec<&ObservedAlloc> = mine
                .iter()
                .copied()
                .filter(|a| &a.alloc.node == node)
                .collect();
            pass.node(snapshot, node, &on_node, &mut out);
        }
        pass.report(&mut out);
    }
    out
}

/// One group's pass over the nodes: what each node keeps, stops and gets.
struct GroupPass<'a> {
    job: &'a Job,
    group: &'a TaskGroup,
    spec: &'a VersionRef,
    now_ms: i64,
    /// Updates still allowed now (`max_parallel` minus those not yet healthy); `None`: any.
    budget: Option<u32>,
    /// Nodes that should run the group and have no room, with why.
    failures: Vec<String>,
}

impl GroupPass<'_> {
    fn node(
        &mut self,
        snapshot: &mut ClusterSnapshot,
        node: &str,
        on_node: &[&ObservedAlloc],
        out: &mut SystemPlan,
    ) {
        let version = self.spec.version;
        let live: Vec<&ObservedAlloc> = on_node
            .iter()
            .copied()
            .filter(|a| a.alloc.desired_status == DesiredStatus::Run)
            .collect();
        if self.job.stop {
            for a in live.iter().filter(|a| a.is_live()) {
                out.stop.push(stop(a, "job stopped"));
            }
            return;
        }
        let current: Vec<&ObservedAlloc> = live
            .iter()
            .copied()
            .filter(|a| a.alloc.job_version == version)
            .collect();
        let old: Vec<&ObservedAlloc> = live
            .iter()
            .copied()
            .filter(|a| a.alloc.job_version != version && a.is_live())
            .collect();
        let fit = fit(
            self.job,
            self.group,
            snapshot,
            node,
            on_node,
            version,
            self.now_ms,
        );
        match &fit {
            NodeFit::Hold => return,
            NodeFit::Excluded(reason) => {
                let why = format!("node no longer runs this job: {reason}");
                for a in live.iter().filter(|a| a.is_live()) {
                    out.stop.push(stop(a, &why));
                }
                return;
            }
            NodeFit::NoRoom(_) | NodeFit::Fits(_) => {}
        }
        // Extra live allocations of the current version (e.g. two writers raced): keep one.
        let mut current_live: Vec<&&ObservedAlloc> =
            current.iter().filter(|a| a.is_live()).collect();
        current_live.sort_by(|a, b| {
            a.alloc
                .created_at_ms
                .cmp(&b.alloc.created_at_ms)
                .then(a.alloc.id.cmp(&b.alloc.id))
        });
        for extra in current_live.iter().skip(1) {
            out.stop.push(stop(extra, "duplicate system allocation"));
        }
        let replaced = format!("{REPLACED_BY_VERSION} {version}");
        if !current.is_empty() {
            // Done for this version (running, or finished: sysbatch runs once, and a failed
            // system allocation is restarted by the agent, not replaced).
            for a in &old {
                out.stop.push(stop(a, &replaced));
            }
            return;
        }
        let is_update = !old.is_empty();
        if is_update && self.budget == Some(0) {
            out.updates_waiting += 1;
            return;
        }
        match fit {
            NodeFit::Fits(p) => {
                if let Some(b) = self.budget.as_mut().filter(|_| is_update) {
                    *b -= 1;
                }
                let previous = old
                    .first()
                    .map(|a| a.alloc.id.clone())
                    .or_else(|| newest(on_node))
                    .unwrap_or_default();
                self.place(snapshot, node, &previous, &p, out);
                for a in &old {
                    out.stop.push(stop(a, &replaced));
                }
            }
            NodeFit::NoRoom(reason) => self.failures.push(format!("{node} ({reason})")),
            NodeFit::Hold | NodeFit::Excluded(_) => {}
        }
    }

    /// A new allocation on `node`, recorded in the snapshot so later placements see it.
    fn place(
        &self,
        snapshot: &mut ClusterSnapshot,
        node: &str,
        previous: &str,
        p: &scheduler::Placement,
        out: &mut SystemPlan,
    ) {
        let job = self.job;
        let alloc = new_alloc(job, self.spec, self.group, node, previous, p, self.now_ms);
        snapshot.add_alloc(scheduler::AllocUsage {
            id: alloc.id.as_str().into(),
            job: format!("{}/{}", job.namespace, job.id).into(),
            group: self.group.name.as_str().into(),
            node: node.into(),
            cpu: p.cpu,
            memory_mb: p.memory_mb,
            ports: p.ports.iter().map(|x| x.value).collect(),
            devices: scheduler::devices::instance_ids(&p.devices),
        });
        out.place.push(NewAlloc {
            alloc,
            cpu: p.cpu,
            memory_mb: p.memory_mb,
        });
    }

    /// The group's placement failures, as the job status shows them.
    fn report(self, out: &mut SystemPlan) {
        if self.failures.is_empty() {
            return;
        }
        let n = self.failures.len();
        let nodes = if n == 1 { "node" } else { "nodes" };
        out.unplaced.insert(self.group.name.clone(), n as u32);
        out.failures.insert(
            self.group.name.clone(),
            format!(
                "{n} {nodes} cannot fit the group: {}",
                self.failures.join(", ")
            ),
        );
    }
}

/// When a replacement counts as healthy for a rolling update: the group's (or job's) `update`
/// block, else Nomad's defaults (checks, 10s).
fn update_health_rule(job: &Job, group: &TaskGroup) -> HealthRule {
    match job.update_for(group) {
        Some(u) => HealthRule::new(group, &u.health_check, u.min_healthy_time_ns),
        None => HealthRule::new(group, "checks", 10_000_000_000),
    }
}

/// `update.max_parallel` of the group (or job); `None` (no limit) when there is no update block
/// or it is 0.
fn max_parallel(job: &Job, group: &TaskGroup) -> Option<u32> {
    job.update_for(group)
        .map(|u| u.max_parallel)
        .filter(|m| *m > 0)
}

fn stop(a: &ObservedAlloc, reason: &str) -> Stop {
    Stop::of(&a.alloc, reason)
}

fn newest(allocs: &[&ObservedAlloc]) -> Option<String> {
    allocs
        .iter()
        .max_by(|a, b| {
            a.alloc
                .created_at_ms
                .cmp(&b.alloc.created_at_ms)
                .then(a.alloc.id.cmp(&b.alloc.id))
        })
        .map(|a| a.alloc.id.clone())
}

/// Whether `group` fits on `node`, judged by the placement engine on a one-node view that leaves
/// out this group's own allocations there (they are kept or replaced, not added to).
fn fit(
    job: &Job,
    group: &TaskGroup,
    snapshot: &ClusterSnapshot,
    node: &str,
    own: &[&ObservedAlloc],
    version: u64,
    now_ms: i64,
) -> NodeFit {
    let Some(st) = snapshot.node(node) else {
        return NodeFit::Hold;
    };
    if !st.ready || st.draining {
        return NodeFit::Hold;
    }
    if !st.eligible {
        return NodeFit::Excluded("node ineligible".into());
    }
    let mut one = ClusterSnapshot::new();
    one.upsert_node((*st.node).clone(), None, true);
    copy_usage(
        &mut one,
        st,
        own.iter().filter_map(|a| snapshot.alloc(&a.alloc.id)),
    );
    let req = PlacementRequest {
        alloc_id: format!("{}-{}-{}-{}", job.id, group.name, node, version),
        penalty_node: None,
    };
    let seed = scheduler::hash_str(node) ^ (now_ms as u64).rotate_left(7);
    match scheduler::place(
        &mut one,
        job,
        group,
        &[req],
        &SchedulerConfig::default(),
        seed,
    )
    .pop()
    {
        Some(Ok(p)) => NodeFit::Fits(p),
        Some(Err(f)) => {
            let excluded: Vec<&String> = f
                .filtered
                .keys()
                .filter(|r| !r.starts_with("port collision"))
                .collect();
            if let Some(r) = excluded.first() {
                NodeFit::Excluded((*r).clone())
            } else {
                let mut reasons: Vec<String> = f.filtered.keys().cloned().collect();
                reasons.extend(f.exhausted.keys().map(|d| format!("exhausted {d}")));
                NodeFit::NoRoom(reasons.join(", "))
            }
        }
        None => NodeFit::Hold,
    }
}

/// Copies a node's usage into a one-node snapshot, minus the given allocations.
fn copy_usage<'a>(
    one: &mut ClusterSnapshot,
    st: &NodeState,
    minus: impl Iterator<Item = &'a scheduler::AllocUsage>,
) {
    let mut cpu = st.used_cpu;
    let mut mem = st.used_memory_mb;
    let mut ports = st.used_ports.clone();
    let mut devices = st.used_devices.clone();
    for u in minus {
        cpu = cpu.saturating_sub(u.cpu);
        mem = mem.saturating_sub(u.memory_mb);
        for p in u.ports.iter() {
            ports.remove(p);
        }
        devices.retain(|held| !u.devices.contains(held));
    }
    one.add_alloc(scheduler::AllocUsage {
        id: "__others__".into(),
        job: "__others__".into(),
        group: "".into(),
        node: st.node.name.as_str().into(),
        cpu,
        memory_mb: mem,
        ports: ports.into_iter().collect(),
        devices: devices.into_boxed_slice(),
    });
}

/// A job version and the hash of its content ([`nomos_api::spec_hash`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRef {
    pub version: u64,
    pub hash: String,
}

/// A deterministic allocation id: the same job version (and content), group, node and
/// predecessor always give the same id, so a re-run of an interrupted evaluation finds what it
/// already wrote, while a job purged and created again gets new ids.
pub fn alloc_id(
    namespace: &str,
    job: &str,
    spec: &VersionRef,
    group: &str,
    node: &str,
    previous: &str,
) -> String {
    let VersionRef { version, hash } = spec;
    uuid_shaped(&format!(
        "{namespace}\u{0}{job}\u{0}{version}\u{0}{hash}\u{0}{group}\u{0}{node}\u{0}{previous}"
    ))
}

/// A UUID-shaped id hashed from `key`: the same key always gives the same id.
pub fn uuid_shaped(key: &str) -> String {
    let a = scheduler::hash_str(key);
    let b = scheduler::hash_str(&format!("system\u{0}{key}"));
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        (a >> 32) as u32,
        (a >> 16) as u16,
        a as u16,
        (b >> 48) as u16,
        b & 0xffff_ffff_ffff
    )
}

fn new_alloc(
    job: &Job,
    spec: &VersionRef,
    group: &TaskGroup,
    node: &str,
    previous: &str,
    p: &scheduler::Placement,
    now_ms: i64,
) -> Allocation {
    Allocation {
        id: alloc_id(&job.namespace, &job.id, spec, &group.name, node, previous),
        namespace: job.namespace.clone(),
        job_id: job.id.clone(),
        job_version: spec.version,
        job_spec_hash: spec.hash.clone(),
        task_group: group.name.clone(),
        name: format!("{}.{}[0]", job.id, group.name),
        index: 0,
        node: node.to_string(),
        desired_status: DesiredStatus::Run,
        desired_description: String::new(),
        ports: p.ports.clone(),
        devices: p.devices.clone(),
        deployment_id: String::new(),
        canary: false,
        previous_alloc: previous.to_string(),
        // Set by the executor to the evaluation that records the pass ([`evals`]).
        eval_id: String::new(),
        reschedule_attempts: 0,
        reschedule_times_ms: Vec::new(),
        created_at_ms: now_ms,
        modified_at_ms: now_ms,
    }
}

/// How a stop that makes way for a newer version on the same node begins (the plan counts
/// such a stop with its placement as one update).
pub const REPLACED_BY_VERSION: &str = "replaced by version";

/// Whether the system loop (rather than the jobs controller) owns a job.
pub fn is_system(job: &Job) -> bool {
    matches!(job.job_type, JobType::System | JobType::Sysbatch)
}

/// Per-group counts for the job status, and the job's overall status (`pending`, `running`,
/// `dead`) as Nomad shows it.
pub fn summarize(job: &Job, allocs: &[ObservedAlloc]) -> (IndexMap<String, GroupSummary>, String) {
    let mut out: IndexMap<String, GroupSummary> = job
        .groups
        .iter()
        .map(|g| (g.name.clone(), GroupSummary::default()))
        .collect();
    let mut live = 0;
    let mut by_group: BTreeMap<&str, Vec<&ObservedAlloc>> = BTreeMap::new();
    for a in allocs {
        by_group
            .entry(a.alloc.task_group.as_str())
            .or_default()
            .push(a);
    }
    for (g, list) in by_group {
        let s = out.entry(g.to_string()).or_default();
        for a in list {
            match a.client_status() {
                ClientStatus::Pending => s.starting += 1,
                ClientStatus::Running => s.running += 1,
                ClientStatus::Complete => s.complete += 1,
                ClientStatus::Failed => s.failed += 1,
                ClientStatus::Lost => s.lost += 1,
                ClientStatus::Unknown => s.unknown += 1,
            }
            if a.is_live() {
                live += 1;
            }
        }
    }
    let status =
        if job.stop || (job.job_type == JobType::Sysbatch && live == 0 && !allocs.is_empty()) {
            "dead"
        } else if live > 0 {
            "running"
        } else {
            "pending"
        };
    (out, status.to_string())
}
