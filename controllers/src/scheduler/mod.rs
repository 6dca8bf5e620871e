//! The placement engine: pure, no I/O. Given a job, one of its task groups and a
//! [`ClusterSnapshot`], it chooses nodes for new allocations and records them in the snapshot so
//! the next placement sees them.
//!
//! Pipeline per placement (after Nomad's stack):
//! 1. iterate nodes in a seeded pseudo-random order that continues across the batch;
//! 2. feasibility ([`feasible`]): liveness, eligibility, drain, datacenter, node pool, drivers,
//!    host volumes, constraints, distinct hosts / property, devices ([`devices`]), cpu, memory,
//!    static and dynamic ports;
//! 3. ranking ([`rank`]): bin-packing (or spread) fit, job anti-affinity, affinities, device
//!    affinities, spread blocks, reschedule penalty; the mean of the applicable scores;
//! 4. stop after `limit` feasible candidates: `max(2, ceil(log2 n))` for services, 2 for batch
//!    (power of two choices), every node when the group has affinities or spreads.
//!
//! A failed placement is data: a [`PlacementFailure`] whose summary reads like
//! "3 nodes excluded by constraint ${attr.kernel.name} = windows, 2 exhausted memory".
//!
//! Settings stored through the API ([`stored`]): the cluster's and each node pool's algorithm,
//! over the server's configured default.
//!
//! Quotas ([`quota`]): the snapshot carries each namespace's usage and quota; a placement whose
//! chosen node would take the namespace past its quota is not made, and its failure reads
//! `quota "team-a" exhausted: cpu 2600/2500 MHz`.

pub mod devices;
pub mod feasible;
pub mod quota;
pub mod rank;
pub mod snapshot;
pub mod stored;
pub mod units;

#[cfg(test)]
mod device_tests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use nomos_api::{AllocatedDevice, AllocatedPort, Job, JobType, TaskGroup};

use devices::{Assignment, DeviceAsk, DeviceRefusal};
use feasible::{datacenter_matches, resolve, CompiledConstraint};
use snapshot::JobNodes;
pub use snapshot::{AllocUsage, ClusterSnapshot, NodeState, PortSet};

/// Cluster-wide ranking choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// Fill nodes before using new ones (Nomad's default).
    #[default]
    Binpack,
    /// Prefer the emptiest nodes.
    Spread,
}

impl std::str::FromStr for Algorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "binpack" => Ok(Algorithm::Binpack),
            "spread" => Ok(Algorithm::Spread),
            other => Err(format!("expected `binpack` or `spread`, found `{other}`")),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct SchedulerConfig {
    pub algorithm: Algorithm,
}

/// One allocation to place.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlacementRequest {
    pub alloc_id: String,
    /// A node to avoid (the one a rescheduled allocation failed on).
    pub penalty_node: Option<String>,
}

/// A chosen node.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    pub alloc_id: String,
    pub node: String,
    pub score: f64,
    pub ports: Vec<AllocatedPort>,
    /// The device instances the allocation holds, per task.
    pub devices: Vec<AllocatedDevice>,
    pub cpu: u32,
    pub memory_mb: u32,
    pub nodes_evaluated: u32,
}

/// Why nothing fit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlacementFailure {
    pub alloc_id: String,
    pub nodes_evaluated: u32,
    /// Reason -> number of nodes excluded for it.
    pub filtered: BTreeMap<String, u32>,
    /// Dimension (`cpu`, `memory`, `dynamic ports`, ...) -> number of nodes exhausted.
    pub exhausted: BTreeMap<String, u32>,
    /// A node fit, but the namespace's quota did not: why (this is then the whole summary).
    pub quota: Option<String>,
}

impl PlacementFailure {
    /// "3 nodes excluded by constraint ${attr.kernel.name} = windows, 2 exhausted memory".
    pub fn summary(&self) -> String {
        if let Some(q) = &self.quota {
            return q.clone();
        }
        if self.nodes_evaluated == 0 {
            return "no nodes in the cluster".to_string();
        }
        let mut f: Vec<(&String, &u32)> = self.filtered.iter().collect();
        f.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let mut e: Vec<(&String, &u32)> = self.exhausted.iter().collect();
        e.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let mut parts = Vec::new();
        for (reason, n) in f {
            let nodes = if *n == 1 { "node" } else { "nodes" };
            parts.push(format!("{n} {nodes} excluded by {reason}"));
        }
        for (dim, n) in e {
            parts.push(format!("{n} exhausted {dim}"));
        }
        parts.join(", ")
    }
}

enum Reject {
    Filtered(String),
    Exhausted(&'static str),
}

/// What a group needs, computed once per batch.
struct Ask<'a> {
    /// `<ns>/<job>`, shared by the usage of every allocation placed.
    job_key: Arc<str>,
    group_name: Arc<str>,
    datacenters: Vec<String>,
    /// `datacenters` matches every node (none given, or a bare `*`).
    any_datacenter: bool,
    /// Whether `datacenters` matches each datacenter, by its id ([`snapshot::NameIds`]).
    datacenter_ok: Vec<bool>,
    node_pool: Option<String>,
    /// `node_pool`'s id; `None` when no node is in it.
    node_pool_id: Option<u32>,
    group: &'a TaskGroup,
    cpu: u32,
    cores: u32,
    memory_mb: u32,
    /// The drivers the tasks use, each with its bit in the nodes' healthy drivers when it has
    /// one.
    drivers: Vec<(&'a str, Option<u32>)>,
    static_ports: Vec<(String, u16, u16)>,
    dynamic_ports: Vec<(String, u16)>,
    constraints: Vec<CompiledConstraint>,
    /// distinct_hosts: `true` = per job, `false` = per group.
    distinct_hosts: Option<bool>,
    /// distinct_property constraints with their scope (job-wide or group) and counts by value.
    distinct_props: Vec<(CompiledConstraint, bool, HashMap<String, u32>)>,
    affinities: Vec<(CompiledConstraint, i32)>,
    spreads: Vec<rank::SpreadState>,
    /// The tasks' `device` blocks.
    devices: Vec<DeviceAsk>,
}

/// What [`Ask::check`] chose on a node that fits: port values and device instances.
#[derive(Debug, Default)]
struct Chosen {
    ports: Vec<u16>,
    devices: Assignment,
}

/// Places `requests` for `group` of `job`, recording each success in `snap`. Deterministic for
/// a given snapshot, job and `seed`.
pub fn place(
    snap: &mut ClusterSnapshot,
    job: &Job,
    group: &TaskGroup,
    requests: &[PlacementRequest],
    config: &SchedulerConfig,
    seed: u64,
) -> Vec<Result<Placement, PlacementFailure>> {
    let mut out = Vec::with_capacity(requests.len());
    let n = snap.nodes.len();
    let mut ask = Ask::new(snap, job, group);
    let limit = if !ask.affinities.is_empty() || !ask.spreads.is_empty() || ask.device_affinities()
    {
        n
    } else {
        match job.job_type {
            JobType::Batch | JobType::Sysbatch => 2,
            _ => (usize::BITS - n.max(1).leading_zeros()) as usize,
        }
        .max(2)
    };
    let mut rng = Rng::new(seed ^ hash_str(&ask.job_key) ^ hash_str(&group.name).rotate_left(17));
    let start = if n == 0 {
        0
    } else {
        (rng.next() % n as u64) as usize
    };
    let stride = coprime_stride(n, &mut rng);
    let mut cursor = 0usize;
    let mut failed: Option<PlacementFailure> = None;

    // What the candidate being checked and the best so far would get (swapped, so checking
    // a node allocates nothing).
    let mut candidate = Chosen::default();
    let mut best_chosen = Chosen::default();
    for req in requests {
        if let Some(f) = &failed {
            out.push(Err(PlacementFailure {
                alloc_id: req.alloc_id.clone(),
                ..f.clone()
            }));
            continue;
        }
        let job_nodes = snap.job_index.get(&*ask.job_key);
        let mut best: Option<(f64, usize)> = None;
        let mut found = 0usize;
        let mut visited = 0usize;
        let mut filtered: BTreeMap<String, u32> = BTreeMap::new();
        // Counted by their static names, made text only if the placement fails: on a full
        // cluster most nodes visited are exhausted, and this loop is the scheduler's hot path.
        let mut exhausted: Vec<(&'static str, u32)> = Vec::new();
        while visited < n && found < limit {
            let i = (start + cursor.wrapping_mul(stride)) % n;
            cursor += 1;
            visited += 1;
            match ask.check(snap, job_nodes, i, &mut rng, &mut candidate) {
                Err(Reject::Filtered(r)) => *filtered.entry(r).or_default() += 1,
                Err(Reject::Exhausted(d)) => match exhausted.iter_mut().find(|(x, _)| *x == d) {
                    Some((_, k)) => *k += 1,
                    None => exhausted.push((d, 1)),
                },
                Ok(()) => {
                    found += 1;
                    let penalty = req.penalty_node.as_deref();
                    let score = ask.score(snap, job_nodes, i, config, penalty, &candidate);
                    if best.is_none_or(|(s, _)| score > s) {
                        best = Some((score, i));
                        std::mem::swap(&mut best_chosen, &mut candidate);
                    }
                }
            }
        }
        let failure = || PlacementFailure {
            alloc_id: req.alloc_id.clone(),
            nodes_evaluated: visited as u32,
            filtered: filtered.clone(),
            exhausted: exhausted.iter().map(|(d, k)| (d.to_string(), *k)).collect(),
            quota: None,
        };
        match best {
            None => {
                failed = Some(failure());
                out.push(Err(failure()));
            }
            Some((score, i)) => {
                let st = &snap.nodes[i];
                let cpu = ask.cpu + ask.cores * st.mhz_per_core();
                if let Some(why) = snap.quota_refusal(&job.namespace, cpu, ask.memory_mb) {
                    let failure = PlacementFailure {
                        quota: Some(why),
                        ..failure()
                    };
                    failed = Some(failure.clone());
                    out.push(Err(failure));
                    continue;
                }
                let node = st.node.name.clone();
                let ports = ask.allocated_ports(&st.node, &best_chosen.ports);
                let devices = std::mem::take(&mut best_chosen.devices.devices);
                let usage = AllocUsage {
                    id: req.alloc_id.as_str().into(),
                    job: ask.job_key.clone(),
                    group: ask.group_name.clone(),
                    node: node.as_str().into(),
                    cpu,
                    memory_mb: ask.memory_mb,
                    ports: best_chosen.ports.as_slice().into(),
                    devices: devices::instance_ids(&devices),
                };
                ask.record(snap, i);
                snap.add_alloc(usage);
                out.push(Ok(Placement {
                    alloc_id: req.alloc_id.clone(),
                    node,
                    score,
                    ports,
                    devices,
                    cpu,
                    memory_mb: ask.memory_mb,
                    nodes_evaluated: visited as u32,
                }));
            }
        }
    }
    out
}

impl<'a> Ask<'a> {
    fn new(snap: &ClusterSnapshot, job: &'a Job, group: &'a TaskGroup) -> Self {
        let job_key: Arc<str> = format!("{}/{}", job.namespace, job.id).into();
        let (cpu, memory_mb, cores) = AllocUsage::ask(group);
        let mut drivers: Vec<&str> = group
            .tasks
            .iter()
            .map(|t| t.driver.as_str())
            .filter(|d| !d.is_empty())
            .collect();
        drivers.sort_unstable();
        drivers.dedup();
        let mut static_ports = Vec::new();
        let mut dynamic_ports = Vec::new();
        for net in &group.networks {
            for p in &net.ports {
                if p.static_port > 0 {
                    static_ports.push((p.label.clone(), p.static_port, p.to));
                } else {
                    dynamic_ports.push((p.label.clone(), p.to));
                }
            }
        }
        let mut constraints = Vec::new();
        let mut distinct_hosts = None;
        let mut distinct_props = Vec::new();
        let implied: Vec<_> = group
            .tasks
            .iter()
            .flat_map(nomos_api::driver_constraints::driver_constraints)
            .collect();
        let scoped = job
            .constraints
            .iter()
            .map(|c| (c, true))
            .chain(group.constraints.iter().map(|c| (c, false)))
            .chain(
                group
                    .tasks
                    .iter()
                    .flat_map(|t| t.constraints.iter().map(|c| (c, false))),
            )
            .chain(implied.iter().map(|c| (c, false)));
        for (c, job_scope) in scoped {
            let cc = CompiledConstraint::compile(c);
            if cc.is_distinct_hosts() {
                if c.value.trim() != "false" {
                    distinct_hosts = Some(distinct_hosts.unwrap_or(false) || job_scope);
                }
            } else if cc.is_distinct_property() {
                let mut counts = HashMap::new();
                if let Some(per_node) = snap.job_index.get(&*job_key) {
                    for (&i, groups) in per_node {
                        let k = if job_scope {
                            groups.values().sum()
                        } else {
                            groups.get(&group.name).copied().unwrap_or(0)
                        };
                        if k > 0 {
                            if let Some(v) = resolve(&c.attribute, &snap.nodes[i].node) {
                                *counts.entry(v).or_default() += k;
                            }
                        }
                    }
                }
                distinct_props.push((cc, job_scope, counts));
            } else {
                constraints.push(cc);
            }
        }
        let affinities = job
            .affinities
            .iter()
            .chain(group.affinities.iter())
            .chain(group.tasks.iter().flat_map(|t| t.affinities.iter()))
            .map(|a| {
                let c = nomos_api::Constraint {
                    attribute: a.attribute.clone(),
                    operator: a.operator.clone(),
                    value: a.value.clone(),
                };
                (CompiledConstraint::compile(&c), a.weight)
            })
            .collect();
        let spreads = job
            .spreads
            .iter()
            .chain(group.spreads.iter())
            .map(|s| rank::SpreadState::new(s, snap, &job_key, &group.name, group.count))
            .collect();
        let node_pool = match job.node_pool.as_str() {
            "" | "all" => None,
            p => Some(p.to_string()),
        };
        let names = &snap.names;
        let any_datacenter = job.datacenters.is_empty() || job.datacenters.iter().any(|d| d == "*");
        let mut datacenter_ok = Vec::new();
        if !any_datacenter {
            for (dc, id) in names.datacenters.iter() {
                let id = id as usize;
                if datacenter_ok.len() <= id {
                    datacenter_ok.resize(id + 1, false);
                }
                datacenter_ok[id] = datacenter_matches(&job.datacenters, dc);
            }
        }
        let node_pool_id = node_pool.as_deref().and_then(|p| names.pools.get(p));
        let drivers = drivers
            .into_iter()
            .map(|d| {
                let bit = names
                    .drivers
                    .get(d)
                    .filter(|&id| id < snapshot::DRIVER_BITS);
                (d, bit)
            })
            .collect();
        Ask {
            job_key,
            group_name: group.name.as_str().into(),
            datacenters: job.datacenters.clone(),
            any_datacenter,
            datacenter_ok,
            node_pool,
            node_pool_id,
            group,
            cpu,
            cores,
            memory_mb,
            drivers,
            static_ports,
            dynamic_ports,
            constraints,
            distinct_hosts,
            distinct_props,
            affinities,
            spreads,
            devices: DeviceAsk::of_group(group),
        }
    }

    /// Whether node `i` can take one more allocation of the group; on success `chosen` holds
    /// the port values it would get (static ones first, then dynamic, as
    /// [`Ask::allocated_ports`] labels them) and its device instances. `job_nodes` is the
    /// job's entry of the snapshot's job index.
    fn check(
        &self,
        snap: &ClusterSnapshot,
        job_nodes: Option<&JobNodes>,
        i: usize,
        rng: &mut Rng,
        chosen: &mut Chosen,
    ) -> Result<(), Reject> {
        let st = &snap.nodes[i];
        let node = &*st.node;
        if !st.ready {
            return Err(Reject::Filtered("node not ready".into()));
        }
        if !st.eligible {
            return Err(Reject::Filtered("node ineligible".into()));
        }
        if st.draining {
            return Err(Reject::Filtered("node draining".into()));
        }
        let dc_ok = self.any_datacenter
            || match self.datacenter_ok.get(st.facts.datacenter as usize) {
                Some(&ok) => ok,
                None => datacenter_matches(&self.datacenters, &node.datacenter),
            };
        if !dc_ok {
            return Err(Reject::Filtered(format!(
                "datacenter (job wants {})",
                self.datacenters.join(", ")
            )));
        }
        if let Some(pool) = &self.node_pool {
            if self.node_pool_id != Some(st.facts.pool) {
                return Err(Reject::Filtered(format!("node pool (job wants {pool})")));
            }
        }
        for &(d, bit) in &self.drivers {
            let healthy = match bit {
                Some(bit) => st.facts.healthy_drivers & (1 << bit) != 0,
                // A driver no node had when the batch began, or one past the bits.
                None => node
                    .drivers
                    .get(d)
                    .is_some_and(|info| info.detected && info.healthy),
            };
            if !healthy {
                return Err(Reject::Filtered(format!("missing driver {d}")));
            }
        }
        if !feasible::host_volumes_fit(self.group, node) {
            return Err(Reject::Filtered(feasible::MISSING_HOST_VOLUMES.into()));
        }
        for c in &self.constraints {
            if !c.matches(node) {
                return Err(Reject::Filtered(format!("constraint {}", c.describe())));
            }
        }
        if let Some(job_scope) = self.distinct_hosts {
            let g = if job_scope {
                None
            } else {
                Some(self.group.name.as_str())
            };
            if snapshot::allocs_on(job_nodes, g, i) > 0 {
                return Err(Reject::Filtered("constraint distinct_hosts".into()));
            }
        }
        for (c, _, counts) in &self.distinct_props {
            let Some(v) = resolve(&c.source.attribute, node) else {
                return Err(Reject::Filtered(format!("constraint {}", c.describe())));
            };
            let limit = c.source.value.trim().parse::<u32>().unwrap_or(1).max(1);
            if counts.get(&v).copied().unwrap_or(0) >= limit {
                return Err(Reject::Filtered(format!(
                    "constraint distinct_property {}",
                    c.source.attribute
                )));
            }
        }
        chosen.devices = Assignment::default();
        if !self.devices.is_empty() {
            chosen.devices =
                devices::assign(&self.devices, &node.resources.devices, &st.used_devices).map_err(
                    |refusal| match refusal {
                        DeviceRefusal::Missing => Reject::Filtered("missing devices".into()),
                        DeviceRefusal::Exhausted => Reject::Exhausted("devices"),
                    },
                )?;
        }
        let cpu = self.cpu + self.cores * st.mhz_per_core();
        if st.used_cpu.saturating_add(cpu) > st.cpu_capacity() {
            return Err(Reject::Exhausted("cpu"));
        }
        if st.used_memory_mb.saturating_add(self.memory_mb) > st.memory_capacity() {
            return Err(Reject::Exhausted("memory"));
        }
        let ports = &mut chosen.ports;
        ports.clear();
        for (_, p, _) in &self.static_ports {
            if st.port_taken(*p) {
                return Err(Reject::Filtered(format!("port collision on {p}")));
            }
            ports.push(*p);
        }
        if !self.dynamic_ports.is_empty() {
            let (lo, hi) = st.dynamic_range();
            let span = (hi - lo) as u64 + 1;
            let mut offset = rng.next() % span;
            for _ in &self.dynamic_ports {
                let mut chosen = None;
                for _ in 0..span {
                    let p = lo + (offset % span) as u16;
                    offset += 1;
                    if !st.port_taken(p) && !ports.contains(&p) {
                        chosen = Some(p);
                        break;
                    }
                }
                let Some(p) = chosen else {
                    return Err(Reject::Exhausted("dynamic ports"));
                };
                ports.push(p);
            }
        }
        Ok(())
    }

    /// The group's ports on `node` with the values [`Ask::check`] chose.
    fn allocated_ports(&self, node: &nomos_api::Node, values: &[u16]) -> Vec<AllocatedPort> {
        let statics = self.static_ports.iter().map(|(label, _, to)| (label, *to));
        let dynamics = self.dynamic_ports.iter().map(|(label, to)| (label, *to));
        statics
            .chain(dynamics)
            .zip(values)
            .map(|((label, to), &value)| AllocatedPort {
                label: label.clone(),
                value,
                to: if to == 0 { value } else { to },
                host_ip: node.address.clone(),
            })
            .collect()
    }

    /// The mean of the scores that apply to node `i`.
    fn score(
        &self,
        snap: &ClusterSnapshot,
        job_nodes: Option<&JobNodes>,
        i: usize,
        config: &SchedulerConfig,
        penalty: Option<&str>,
        chosen: &Chosen,
    ) -> f64 {
        let st = &snap.nodes[i];
        let cpu = self.cpu + self.cores * st.mhz_per_core();
        let mut sum = rank::fit(st, cpu, self.memory_mb, config.algorithm);
        let mut count = 1.0;
        let collisions = snapshot::allocs_on(job_nodes, Some(&self.group.name), i);
        if collisions > 0 {
            let desired = self.group.count.max(1) as f64;
            sum += -((collisions as f64 + 1.0) / desired).min(1.0);
            count += 1.0;
        }
        if !self.affinities.is_empty() {
            sum += rank::affinity(&self.affinities, &st.node);
            count += 1.0;
        }
        if let Some(device_affinity) = chosen.devices.affinity {
            sum += device_affinity;
            count += 1.0;
        }
        if !self.spreads.is_empty() {
            sum += rank::spread(&self.spreads, &st.node);
            count += 1.0;
        }
        if penalty == Some(st.node.name.as_str()) {
            sum += -1.0;
            count += 1.0;
        }
        sum / count
    }

    /// Whether some `device` block has affinities (every node is then ranked).
    fn device_affinities(&self) -> bool {
        self.devices.iter().any(DeviceAsk::has_affinities)
    }

    /// Updates the batch's distinct-property and spread counts after placing on node `i`.
    fn record(&mut self, snap: &ClusterSnapshot, i: usize) {
        let node = &snap.nodes[i].node;
        for (c, _, counts) in &mut self.distinct_props {
            if let Some(v) = resolve(&c.source.attribute, node) {
                *counts.entry(v).or_default() += 1;
            }
        }
        for s in &mut self.spreads {
            s.record(node);
        }
    }
}

fn coprime_stride(n: usize, rng: &mut Rng) -> usize {
    if n <= 2 {
        return 1;
    }
    let mut s = 1 + (rng.next() % (n as u64 - 1)) as usize;
    while gcd(s, n) != 1 {
        s = s % (n - 1) + 1;
    }
    s
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// FNV-1a, stable across builds, for seeding.
pub fn hash_str(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// splitmix64: small, seedable, stable.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }
}
