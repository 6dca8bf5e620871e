//! The scheduler's read-only view of the cluster: nodes with their eligibility and liveness, and
//! the resources and ports each node's allocations hold. It is updated incrementally (an
//! allocation added or removed at a time) so a controller can keep one for 10,000 nodes and
//! 100,000 allocations and place against it without rebuilding it.

use std::collections::HashMap;
use std::sync::Arc;

use nomos_api::{Node, NodeSpec, TaskGroup};

use super::quota::{self, NamespaceQuota, QuotaUsage};
use crate::FastMap;

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
    /// The device instances it holds (their ids).
    pub devices: Box<[Box<str>]>,
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
            devices: super::devices::instance_ids(&alloc.devices),
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
            devices: alloc.device_ids().map(Into::into).collect(),
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

/// Small numbers for the names placement compares on every node it visits (datacenters, node
/// pools, drivers), so a visit reads them from the node's state instead of following the
/// node's registration (a cache miss per node at 15,000 nodes).
#[derive(Debug, Clone, Default)]
pub(crate) struct NameIds(FastMap<Box<str>, u32>);

impl NameIds {
    /// The id of `name`, given it now if it has none.
    fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.0.get(name) {
            return id;
        }
        let id = self.0.len() as u32;
        self.0.insert(name.into(), id);
        id
    }

    /// The id of `name` if some node has had it.
    pub(crate) fn get(&self, name: &str) -> Option<u32> {
        self.0.get(name).copied()
    }

    /// Every name with its id.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, u32)> {
        self.0.iter().map(|(name, &id)| (&**name, id))
    }
}

/// The registries of [`NameIds`] a snapshot keeps.
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeNames {
    pub(crate) datacenters: NameIds,
    /// Node pools (an empty pool is `default`).
    pub(crate) pools: NameIds,
    pub(crate) drivers: NameIds,
}

/// Drivers whose id is below this have a bit in [`NodeFacts::healthy_drivers`]; others (a
/// cluster with more distinct driver names) are looked up in the node's registration.
pub(crate) const DRIVER_BITS: u32 = u64::BITS;

/// What placement reads of a node's registration on every visit, copied into its state.
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeFacts {
    pub(crate) datacenter: u32,
    pub(crate) pool: u32,
    /// Bit `id` set for each detected, healthy driver with an id below [`DRIVER_BITS`].
    pub(crate) healthy_drivers: u64,
    cpu_capacity: u32,
    memory_capacity: u32,
    mhz_per_core: u32,
    dynamic_range: (u16, u16),
    has_reserved_ports: bool,
}

impl NodeFacts {
    fn of(node: &Node, names: &mut NodeNames) -> Self {
        let r = &node.resources;
        let pool = if node.node_pool.is_empty() {
            "default"
        } else {
            node.node_pool.as_str()
        };
        let mut healthy_drivers = 0u64;
        for (name, info) in &node.drivers {
            let id = names.drivers.id(name);
            if info.detected && info.healthy && id < DRIVER_BITS {
                healthy_drivers |= 1 << id;
            }
        }
        NodeFacts {
            datacenter: names.datacenters.id(&node.datacenter),
            pool: names.pools.id(pool),
            healthy_drivers,
            cpu_capacity: r.cpu_mhz.saturating_sub(r.reserved_cpu_mhz),
            memory_capacity: r.memory_mb.saturating_sub(r.reserved_memory_mb),
            mhz_per_core: r.cpu_mhz.checked_div(r.cores.max(1)).unwrap_or(0),
            dynamic_range: if r.min_dynamic_port == 0 || r.max_dynamic_port < r.min_dynamic_port {
                (20000, 32000)
            } else {
                (r.min_dynamic_port, r.max_dynamic_port)
            },
            has_reserved_ports: !r.reserved_ports.is_empty(),
        }
    }
}

/// One node as the scheduler sees it.
#[derive(Debug, Clone)]
pub struct NodeState {
    /// The registration; set through [`ClusterSnapshot::upsert_node`], which keeps `facts` in
    /// step with it.
    pub node: Arc<Node>,
    pub(crate) facts: NodeFacts,
    /// `false` when `/nomos/nodespec/<node>` says `eligible: false`.
    pub eligible: bool,
    /// A drain is requested.
    pub draining: bool,
    /// The node's heartbeat lease is alive.
    pub ready: bool,
    pub used_cpu: u32,
    pub used_memory_mb: u32,
    pub used_ports: PortSet,
    /// Device instances held by the node's allocations (a node has a handful).
    pub used_devices: Vec<Box<str>>,
    /// Number of allocations on the node.
    pub alloc_count: u32,
}

impl NodeState {
    fn new(node: Arc<Node>, spec: Option<&NodeSpec>, ready: bool, names: &mut NodeNames) -> Self {
        let (eligible, draining) = spec_flags(spec);
        NodeState {
            facts: NodeFacts::of(&node, names),
            node,
            eligible,
            draining,
            ready,
            used_cpu: 0,
            used_memory_mb: 0,
            used_ports: PortSet::default(),
            used_devices: Vec::new(),
            alloc_count: 0,
        }
    }

    /// Usable CPU in MHz (total minus the node's reservation).
    pub fn cpu_capacity(&self) -> u32 {
        self.facts.cpu_capacity
    }

    /// Usable memory in MiB.
    pub fn memory_capacity(&self) -> u32 {
        self.facts.memory_capacity
    }

    /// MHz per core, for groups that ask for whole `cores`.
    pub fn mhz_per_core(&self) -> u32 {
        self.facts.mhz_per_core
    }

    /// The node's dynamic port range (Nomad's default 20000-32000 when unset).
    pub fn dynamic_range(&self) -> (u16, u16) {
        self.facts.dynamic_range
    }

    pub fn port_taken(&self, port: u16) -> bool {
        self.used_ports.contains(&port)
            || (self.facts.has_reserved_ports && self.node.resources.reserved_ports.contains(&port))
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
    by_name: FastMap<String, usize>,
    /// Boxed, as the jobs world's allocations are (see [`crate::jobs::world::World::allocs`]).
    allocs: FastMap<Arc<str>, Box<AllocUsage>>,
    /// `<ns>/<job>` -> node index -> group -> number of allocations.
    pub(crate) job_index: FastMap<Arc<str>, JobNodes>,
    /// Allocations whose node is not (yet) known, applied when it registers.
    orphans: HashMap<Arc<str>, Vec<Arc<str>>>,
    /// What each namespace's allocations hold (every allocation recorded, orphans included).
    ns_usage: HashMap<String, QuotaUsage>,
    /// The quota of each namespace that has one (set by the controller from the store).
    quotas: HashMap<String, NamespaceQuota>,
    pub(crate) names: NodeNames,
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
                st.facts = NodeFacts::of(&node, &mut self.names);
                st.node = node;
                let (e, d) = spec_flags(spec);
                st.eligible = e;
                st.draining = d;
                st.ready = ready;
            }
            None => {
                self.nodes
                    .push(NodeState::new(node, spec, ready, &mut self.names));
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
        st.used_devices.extend(usage.devices.iter().cloned());
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
        for id in usage.devices.iter() {
            if let Some(at) = st.used_devices.iter().position(|held| held == id) {
                st.used_devices.swap_remove(at);
            }
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
}

/// Allocations of a job (its [`JobNodes`], looked up once for many nodes) and optionally one
/// group on node `i`.
pub(crate) fn allocs_on(job: Option<&JobNodes>, group: Option<&str>, i: usize) -> u32 {
    let Some(groups) = job.and_then(|m| m.get(&i)) else {
        return 0;
    };
    match group {
        Some(g) => groups.get(g).copied().unwrap_or(0),
        None => groups.values().sum(),
    }
}

/// The nodes (by index) a job has allocations on, with their counts per group.
pub(crate) type JobNodes = FastMap<usize, GroupCounts>;

/// The ports in use on one node: a sorted vector (a node holds tens to a few thousand), half
/// the size of a hash set and faster to probe for the few a placement checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortSet(Vec<u16>);

impl PortSet {
    pub fn contains(&self, port: &u16) -> bool {
        self.0.binary_search(port).is_ok()
    }

    /// Adds `port`; `false` when it was already in.
    pub fn insert(&mut self, port: u16) -> bool {
        match self.0.binary_search(&port) {
            Ok(_) => false,
            Err(at) => {
                self.0.insert(at, port);
                true
            }
        }
    }

    /// Removes `port`; `false` when it was not in.
    pub fn remove(&mut self, port: &u16) -> bool {
        match self.0.binary_search(port) {
            Ok(at) => {
                self.0.remove(at);
                true
            }
            Err(_) => false,
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The ports, lowest first.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        self.0.iter().copied()
    }
}

impl Extend<u16> for PortSet {
    fn extend<I: IntoIterator<Item = u16>>(&mut self, ports: I) {
        for p in ports {
            self.insert(p);
        }
    }
}

impl IntoIterator for PortSet {
    type Item = u16;
    type IntoIter = std::vec::IntoIter<u16>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
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
