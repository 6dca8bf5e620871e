//! The scheduler's read-only view of the cluster: nodes with their eligibility and liveness, and
//! the resources and ports each node's allocations hold. It is updated incrementally (an
//! allocation added or removed at a time) so a controller can keep one for 10,000 nodes and
//! 100,000 allocations and place against it without rebuilding it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use nomos_api::{Node, NodeSpec, TaskGroup};

use super::quota::{self, NamespaceQuota, QuotaUsage};

/// What one allocation holds on its node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AllocUsage {
    pub id: Arc<str>,
    /// `<ns>/<job>`.
    pub job: Arc<str>,
    pub group: Arc<str>,
    pub node: Arc<str>,
    pub cpu: u32,
    pub memory_mb: u32,
    pub ports: Box<[u16]>,
}

impl AllocUsage {
    /// What `alloc` holds on its node: the resources its group asks for in the version the
    /// allocation runs (`group`; nothing when that version is gone), its reserved cores
    /// converted at the node's MHz per core, and its ports. The one place allocation usage is
    /// computed, for the jobs controller, the loops and the plan alike.
    pub fn of(alloc: &nomos_api::Allocation, group: Option<&TaskGroup>, mhz_per_core: u32) -> Self {
        let (cpu, memory_mb, cores) = group.map(Self::ask).unwrap_or((0, 0, 0));
        AllocUsage {
            id: alloc.id.as_str().into(),
            job: format!("{}/{}", alloc.namespace, alloc.job_id).into(),
            group: alloc.task_group.as_str().into(),
            node: alloc.node.as_str().into(),
            cpu: cpu.saturating_add(cores.saturating_mul(mhz_per_core)),
            memory_mb,
            ports: alloc.ports.iter().map(|p| p.value).collect(),
        }
    }

    /// [`AllocUsage::of`] for the jobs controller's compact copy, its strings shared with it
    /// (and the job's `<ns>/<job>` through `strings`).
    pub(crate) fn of_compact(
        alloc: &crate::jobs::compact::CompactAlloc,
        group: Option<&TaskGroup>,
        mhz_per_core: u32,
        strings: &mut crate::jobs::compact::Interner,
    ) -> Self {
        let (cpu, memory_mb, cores) = group.map(Self::ask).unwrap_or((0, 0, 0));
        AllocUsage {
            id: alloc.id().clone(),
            job: strings.get(&format!("{}/{}", alloc.namespace(), alloc.job_id())),
            group: alloc.task_group_shared().clone(),
            node: alloc.node().clone(),
            cpu: cpu.saturating_add(cores.saturating_mul(mhz_per_core)),
            memory_mb,
            ports: alloc.port_values().collect(),
        }
    }

    /// The resources a task group asks for on a node (cores are converted with the node's MHz
    /// per core when the node is known).
    pub fn ask(group: &TaskGroup) -> (u32, u32, u32) {
        let mut cpu = 0u32;
        let mut mem = 0u32;
        let mut cores = 0u32;
        for t in &group.tasks {
            cpu = cpu.saturating_add(t.resources.cpu);
            mem = mem.saturating_add(t.resources.memory_mb);
            cores = cores.saturating_add(t.resources.cores);
        }
        (cpu, mem, cores)
    }
}

/// One node as the scheduler sees it.
#[derive(Debug, Clone)]
pub struct NodeState {
    pub node: Arc<Node>,
    /// `false` when `/nomos/nodespec/<node>` says `eligible: false`.
    pub eligible: bool,
    /// A drain is requested.
    pub draining: bool,
    /// The node's heartbeat lease is alive.
    pub ready: bool,
    pub used_cpu: u32,
    pub used_memory_mb: u32,
    pub used_ports: HashSet<u16>,
    /// Number of allocations on the node.
    pub alloc_count: u32,
}

impl NodeState {
    pub fn new(node: impl Into<Arc<Node>>, spec: Option<&NodeSpec>, ready: bool) -> Self {
        let (eligible, draining) = spec_flags(spec);
        NodeState {
            node: node.into(),
            eligible,
            draining,
            ready,
            used_cpu: 0,
            used_memory_mb: 0,
            used_ports: HashSet::new(),
            alloc_count: 0,
        }
    }

    /// Usable CPU in MHz (total minus the node's reservation).
    pub fn cpu_capacity(&self) -> u32 {
        let r = &self.node.resources;
        r.cpu_mhz.saturating_sub(r.reserved_cpu_mhz)
    }

    /// Usable memory in MiB.
    pub fn memory_capacity(&self) -> u32 {
        let r = &self.node.resources;
        r.memory_mb.saturating_sub(r.reserved_memory_mb)
    }

    /// MHz per core, for groups that ask for whole `cores`.
    pub fn mhz_per_core(&self) -> u32 {
        let r = &self.node.resources;
        r.cpu_mhz.checked_div(r.cores.max(1)).unwrap_or(0)
    }

    /// The node's dynamic port range (Nomad's default 20000-32000 when unset).
    pub fn dynamic_range(&self) -> (u16, u16) {
        let r = &self.node.resources;
        if r.min_dynamic_port == 0 || r.max_dynamic_port < r.min_dynamic_port {
            (20000, 32000)
        } else {
            (r.min_dynamic_port, r.max_dynamic_port)
        }
    }

    pub fn port_taken(&self, port: u16) -> bool {
        self.used_ports.contains(&port) || self.node.resources.reserved_ports.contains(&port)
    }
}

fn spec_flags(spec: Option<&NodeSpec>) -> (bool, bool) {
    match spec {
        Some(s) => (s.eligible != Some(false), s.drain.is_some()),
        None => (true, false),
    }
}

/// The cluster: nodes by name and the allocations placed on them.
#[derive(Debug, Clone, Default)]
pub struct ClusterSnapshot {
    pub(crate) nodes: Vec<NodeState>,
    by_name: HashMap<String, usize>,
    /// Boxed, as the jobs world's allocations are (see [`crate::jobs::world::World::allocs`]).
    allocs: HashMap<Arc<str>, Box<AllocUsage>>,
    /// `<ns>/<job>` -> node index -> group -> number of allocations.
    pub(crate) job_index: HashMap<Arc<str>, HashMap<usize, GroupCounts>>,
    /// Allocations whose node is not (yet) known, applied when it registers.
    orphans: HashMap<Arc<str>, Vec<Arc<str>>>,
    /// What each namespace's allocations hold (every allocation recorded, orphans included).
    ns_usage: HashMap<String, QuotaUsage>,
    /// The quota of each namespace that has one (set by the controller from the store).
    quotas: HashMap<String, NamespaceQuota>,
}

/// The namespace of a `<ns>/<job>` key.
fn namespace_of(job_key: &str) -> &str {
    job_key.split_once('/').map_or(job_key, |(ns, _)| ns)
}

impl ClusterSnapshot {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn alloc_count(&self) -> usize {
        self.allocs.len()
    }

    pub fn nodes(&self) -> impl Iterator<Item = &NodeState> {
        self.nodes.iter()
    }

    pub fn node(&self, name: &str) -> Option<&NodeState> {
        self.by_name.get(name).map(|&i| &self.nodes[i])
    }

    pub fn alloc(&self, id: &str) -> Option<&AllocUsage> {
        self.allocs.get(id).map(|u| &**u)
    }

    /// Adds or replaces a node's registration, keeping its allocations' usage.
    pub fn upsert_node(
        &mut self,
        node: impl Into<Arc<Node>>,
        spec: Option<&NodeSpec>,
        ready: bool,
    ) {
        let node: Arc<Node> = node.into();
        let name = node.name.clone();
        match self.by_name.get(&name) {
            Some(&i) => {
                let st = &mut self.nodes[i];
                st.node = node;
                let (e, d) = spec_flags(spec);
                st.eligible = e;
                st.draining = d;
                st.ready = ready;
            }
            None => {
                self.nodes.push(NodeState::new(node, spec, ready));
                self.by_name.insert(name.clone(), self.nodes.len() - 1);
                for id in self.orphans.remove(name.as_str()).unwrap_or_default() {
                    if let Some(u) = self.allocs.remove(&id) {
                        self.count_usage(&u, false);
                        self.add_alloc(*u);
                    }
                }
            }
        }
    }

    /// Updates eligibility and drain of a known node.
    pub fn set_node_spec(&mut self, name: &str, spec: Option<&NodeSpec>) {
        if let Some(&i) = self.by_name.get(name) {
            let (e, d) = spec_flags(spec);
            self.nodes[i].eligible = e;
            self.nodes[i].draining = d;
        }
    }

    /// Marks a known node live or not.
    pub fn set_node_ready(&mut self, name: &str, ready: bool) {
        if let Some(&i) = self.by_name.get(name) {
            self.nodes[i].ready = ready;
        }
    }

    /// Removes a node from placement (its registration was deleted); it stays in the index as
    /// not ready so its allocations' usage is kept.
    pub fn remove_node(&mut self, name: &str) {
        self.set_node_ready(name, false);
        if let Some(&i) = self.by_name.get(name) {
            self.nodes[i].eligible = false;
        }
    }

    /// Records an allocation's usage; replacing an allocation with the same id is idempotent
    /// (and the same usage again, as a placement's commit records it, changes nothing).
    pub fn add_alloc(&mut self, usage: AllocUsage) {
        match self.allocs.get_mut(&usage.id) {
            // Taken as is (the caller's copy may share its strings where the held one did not).
            Some(held) if **held == usage => {
                **held = usage;
                return;
            }
            Some(_) => {
                self.remove_alloc(&usage.id.clone());
            }
            None => {}
        }
        self.count_usage(&usage, true);
        let Some(&i) = self.by_name.get(&*usage.node) else {
            self.orphans
                .entry(usage.node.clone())
                .or_default()
                .push(usage.id.clone());
            self.allocs.insert(usage.id.clone(), Box::new(usage));
            return;
        };
        let st = &mut self.nodes[i];
        st.used_cpu = st.used_cpu.saturating_add(usage.cpu);
        st.used_memory_mb = st.used_memory_mb.saturating_add(usage.memory_mb);
        st.used_ports.extend(usage.ports.iter().copied());
        st.alloc_count += 1;
        self.job_index
            .entry(usage.job.clone())
            .or_default()
            .entry(i)
            .or_default()
            .add(&usage.group, 1);
        self.allocs.insert(usage.id.clone(), Box::new(usage));
    }

    /// Releases an allocation's usage (it stopped or was deleted).
    pub fn remove_alloc(&mut self, id: &str) -> Option<AllocUsage> {
        let usage = self.allocs.remove(id)?;
        self.count_usage(&usage, false);
        let Some(&i) = self.by_name.get(&*usage.node) else {
            if let Some(v) = self.orphans.get_mut(&usage.node) {
                v.retain(|x| &**x != id);
            }
            return Some(*usage);
        };
        let st = &mut self.nodes[i];
        st.used_cpu = st.used_cpu.saturating_sub(usage.cpu);
        st.used_memory_mb = st.used_memory_mb.saturating_sub(usage.memory_mb);
        for p in usage.ports.iter() {
            st.used_ports.remove(p);
        }
        st.alloc_count = st.alloc_count.saturating_sub(1);
        if let Some(per_node) = self.job_index.get_mut(&usage.job) {
            if let Some(groups) = per_node.get_mut(&i) {
                groups.sub(&usage.group, 1);
                if groups.is_empty() {
                    per_node.remove(&i);
                }
            }
            if per_node.is_empty() {
                self.job_index.remove(&usage.job);
            }
        }
        Some(*usage)
    }

    fn count_usage(&mut self, usage: &AllocUsage, add: bool) {
        let ns = namespace_of(&usage.job);
        if add {
            self.ns_usage
                .entry(ns.to_string())
                .or_default()
                .add(usage.cpu, usage.memory_mb);
        } else if let Some(u) = self.ns_usage.get_mut(ns) {
            u.sub(usage.cpu, usage.memory_mb);
            if u.is_zero() {
                self.ns_usage.remove(ns);
            }
        }
    }

    /// What the allocations of `namespace` hold now.
    pub fn namespace_usage(&self, namespace: &str) -> QuotaUsage {
        self.ns_usage.get(namespace).copied().unwrap_or_default()
    }

    /// Sets (or with `None` clears) the quota placements in `namespace` must stay within.
    pub fn set_namespace_quota(&mut self, namespace: &str, quota: Option<NamespaceQuota>) {
        match quota {
            Some(q) => {
                self.quotas.insert(namespace.to_string(), q);
            }
            None => {
                self.quotas.remove(namespace);
            }
        }
    }

    /// The quota of `namespace`, if it has one.
    pub fn namespace_quota(&self, namespace: &str) -> Option<&NamespaceQuota> {
        self.quotas.get(namespace)
    }

    /// Namespaces that have a quota.
    pub fn quota_namespaces(&self) -> impl Iterator<Item = &str> {
        self.quotas.keys().map(String::as_str)
    }

    /// Why one more allocation of `namespace` asking `cpu` and `memory_mb` would exceed the
    /// namespace's quota; `None` when it fits or there is no quota.
    pub fn quota_refusal(&self, namespace: &str, cpu: u32, memory_mb: u32) -> Option<String> {
        let q = self.quotas.get(namespace)?;
        quota::admit(q, &self.namespace_usage(namespace), cpu, memory_mb).err()
    }

    /// Allocations of a job (and optionally one group) on node `i`.
    pub(crate) fn job_allocs_on(&self, job: &str, group: Option<&str>, i: usize) -> u32 {
        let Some(groups) = self.job_index.get(job).and_then(|m| m.get(&i)) else {
            return 0;
        };
        match group {
            Some(g) => groups.get(g).copied().unwrap_or(0),
            None => groups.values().sum(),
        }
    }
}

/// Allocation counts per group of one job on one node: a small vector, since a job has few
/// groups (a map per node and job would cost hundreds of bytes per allocation at scale).
#[derive(Debug, Clone, Default)]
pub(crate) struct GroupCounts(Vec<(Box<str>, u32)>);

impl GroupCounts {
    pub(crate) fn get(&self, group: &str) -> Option<&u32> {
        self.0.iter().find(|(g, _)| &**g == group).map(|(_, n)| n)
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &u32> {
        self.0.iter().map(|(_, n)| n)
    }

    fn add(&mut self, group: &str, n: u32) {
        match self.0.iter_mut().find(|(g, _)| &**g == group) {
            Some((_, c)) => *c += n,
            None => {
                self.0.push((group.into(), n));
                self.0.shrink_to_fit();
            }
        }
    }

    fn sub(&mut self, group: &str, n: u32) {
        if let Some(pos) = self.0.iter().position(|(g, _)| &**g == group) {
            let c = &mut self.0[pos].1;
            *c = c.saturating_sub(n);
            if *c == 0 {
                self.0.swap_remove(pos);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
