//! The jobs controller's view of the store: synchronous indexes over every prefix it reads
//! (specs, versions, allocations and their statuses, nodes, node specs, heartbeats,
//! deployments, job statuses), plus the scheduler's [`ClusterSnapshot`] kept in step with them.
//! Fed by reflector sinks ([`WorldSink`]) and by the controller's own committed writes; events
//! older than what the index already holds for a key are ignored, so both feeds may overlap.
//!
//! Namespaces and quota specifications are indexed too: the snapshot carries each namespace's
//! quota, a change to either touches the namespace's jobs, and an allocation of a namespace
//! with a quota that changes touches the namespace's blocked jobs (freed quota lets them place).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use nomos_api::namespace::{Namespace, QuotaSpec, DEFAULT_NAMESPACE};
use nomos_api::{
    AllocStatus, Allocation, Deployment, DesiredStatus, Job, JobStatus, Node, NodeSpec,
};
use nomos_store::{keys, EventKind, KeyValue, WatchEvent};

use crate::reconcile::ObservedAlloc;
use crate::runtime::queue::WorkQueue;
use crate::runtime::reflector::Sink;
use crate::scheduler::{AllocUsage, ClusterSnapshot};

pub use crate::JobKey;

pub use crate::loops::view::Part;

/// A spec as stored: raw bytes (parsed by the reconcile) and the key's mod revision.
#[derive(Debug, Clone)]
pub struct SpecEntry {
    pub raw: Vec<u8>,
    pub mod_revision: i64,
}

#[derive(Debug, Clone)]
pub struct AllocEntry {
    pub alloc: Allocation,
    pub mod_revision: i64,
}

#[derive(Default)]
pub struct World {
    pub specs: HashMap<JobKey, SpecEntry>,
    pub versions: HashMap<JobKey, BTreeMap<u64, Job>>,
    pub allocs: HashMap<String, AllocEntry>,
    pub allocs_by_job: HashMap<JobKey, BTreeSet<String>>,
    pub allocs_by_node: HashMap<String, BTreeSet<String>>,
    pub alloc_status: HashMap<String, AllocStatus>,
    pub nodes: HashMap<String, Arc<Node>>,
    pub node_specs: HashMap<String, NodeSpec>,
    pub heartbeats: HashSet<String>,
    pub deployments: HashMap<JobKey, BTreeMap<String, Deployment>>,
    /// Mod revision of each deployment key: writes compare on it, so a user's promotion, pause
    /// or failure is never overwritten by a decision taken before it.
    pub deployment_revs: HashMap<String, i64>,
    pub job_status: HashMap<JobKey, JobStatus>,
    /// Revision each prefix's reflector has reached.
    pub revisions: HashMap<Part, i64>,
    /// Per node: revision of this controller's last successful commit there.
    pub node_guard: HashMap<String, i64>,
    /// Deleted allocations, so stale events do not resurrect them.
    tombstones: HashMap<String, Tombstone>,
    pub snapshot: ClusterSnapshot,
    /// Jobs with placements that failed: any node change retries them.
    pub blocked: HashSet<JobKey>,
    /// Namespaces written as objects (`default` exists without one).
    pub namespaces: BTreeMap<String, Namespace>,
    /// Quota specifications by name.
    pub quotas: BTreeMap<String, QuotaSpec>,
}

fn job_key_from(ns: &str, job: &str) -> JobKey {
    (ns.to_string(), job.to_string())
}

impl World {
    pub fn revision(&self, kind: Part) -> i64 {
        self.revisions.get(&kind).copied().unwrap_or(0)
    }

    /// The revision a per-node commit guard compares against.
    pub fn guard_revision(&self, node: &str) -> i64 {
        self.revision(Part::Allocs)
            .max(self.node_guard.get(node).copied().unwrap_or(0))
    }

    /// Approximate number of objects per cache, for metrics.
    pub fn sizes(&self) -> Vec<(Part, usize)> {
        vec![
            (Part::Specs, self.specs.len()),
            (
                Part::Versions,
                self.versions.values().map(BTreeMap::len).sum(),
            ),
            (Part::Allocs, self.allocs.len()),
            (Part::AllocStatus, self.alloc_status.len()),
            (Part::Nodes, self.nodes.len()),
            (Part::NodeSpecs, self.node_specs.len()),
            (Part::Heartbeats, self.heartbeats.len()),
            (
                Part::Deployments,
                self.deployments.values().map(BTreeMap::len).sum(),
            ),
            (Part::JobStatus, self.job_status.len()),
        ]
    }

    /// Every job key the world knows of.
    pub fn all_jobs(&self) -> BTreeSet<JobKey> {
        let mut out: BTreeSet<JobKey> = self.specs.keys().cloned().collect();
        out.extend(self.versions.keys().cloned());
        out.extend(self.allocs_by_job.keys().cloned());
        out.extend(self.job_status.keys().cloned());
        out
    }

    fn jobs_on_node(&self, node: &str) -> BTreeSet<JobKey> {
        let mut out = BTreeSet::new();
        for id in self.allocs_by_node.get(node).into_iter().flatten() {
            if let Some(a) = self.allocs.get(id) {
                out.insert(job_key_from(&a.alloc.namespace, &a.alloc.job_id));
            }
        }
        out.extend(self.blocked.iter().cloned());
        out
    }

    /// Whether jobs may run in `namespace`: `default`, or one written as an object.
    pub fn namespace_exists(&self, namespace: &str) -> bool {
        namespace == DEFAULT_NAMESPACE || self.namespaces.contains_key(namespace)
    }

    /// Blocked jobs in the namespaces of `touched` that have a quota: an allocation of theirs
    /// changed, so quota may have been freed.
    pub fn blocked_by_quota(&self, touched: &BTreeSet<JobKey>) -> Vec<JobKey> {
        let namespaces: BTreeSet<&str> = touched
            .iter()
            .map(|(ns, _)| ns.as_str())
            .filter(|ns| self.snapshot.namespace_quota(ns).is_some())
            .collect();
        if namespaces.is_empty() {
            return Vec::new();
        }
        self.blocked
            .iter()
            .filter(|(ns, _)| namespaces.contains(ns.as_str()))
            .cloned()
            .collect()
    }

    /// Puts the quota of every namespace into the snapshot, after a namespace or quota changed.
    fn sync_quotas(&mut self) {
        let old: Vec<String> = self
            .snapshot
            .quota_namespaces()
            .map(str::to_string)
            .collect();
        for ns in old {
            self.snapshot.set_namespace_quota(&ns, None);
        }
        for (ns, q) in crate::scheduler::quota::namespace_quotas(&self.namespaces, &self.quotas) {
            self.snapshot.set_namespace_quota(&ns, Some(q));
        }
    }

    /// A namespace or quota specification written or deleted: the jobs of the namespaces it
    /// concerns (a namespace that now exists lets its jobs run; a new limit applies).
    fn apply_namespace_or_quota(
        &mut self,
        kind: Part,
        key: &str,
        name: &str,
        value: Option<&[u8]>,
    ) -> BTreeSet<JobKey> {
        let affected: BTreeSet<String> = match kind {
            Part::Namespaces => {
                match value.map(serde_json::from_slice::<Namespace>) {
                    Some(Ok(ns)) => {
                        self.namespaces.insert(name.to_string(), ns);
                    }
                    Some(Err(e)) => {
                        tracing::warn!(key, error = %e, "undecodable namespace ignored")
                    }
                    None => {
                        self.namespaces.remove(name);
                    }
                }
                BTreeSet::from([name.to_string()])
            }
            _ => {
                match value.map(serde_json::from_slice::<QuotaSpec>) {
                    Some(Ok(q)) => {
                        self.quotas.insert(name.to_string(), q);
                    }
                    Some(Err(e)) => tracing::warn!(key, error = %e, "undecodable quota ignored"),
                    None => {
                        self.quotas.remove(name);
                    }
                }
                self.namespaces
                    .iter()
                    .filter(|(_, ns)| ns.quota == name)
                    .map(|(n, _)| n.clone())
                    .collect()
            }
        };
        self.sync_quotas();
        self.specs
            .keys()
            .filter(|(ns, _)| affected.contains(ns))
            .cloned()
            .collect()
    }

    /// The job's allocations with their statuses, as the reconcile reads them.
    pub fn existing_allocs(&self, jk: &JobKey) -> Vec<ObservedAlloc> {
        self.allocs_by_job
            .get(jk)
            .into_iter()
            .flatten()
            .filter_map(|id| self.allocs.get(id))
            .map(|e| ObservedAlloc {
                alloc: e.alloc.clone(),
                status: self.alloc_status.get(&e.alloc.id).cloned(),
            })
            .collect()
    }

    fn usage_of(&self, a: &Allocation) -> Option<AllocUsage> {
        if a.desired_status != DesiredStatus::Run {
            return None;
        }
        if self
            .alloc_status
            .get(&a.id)
            .is_some_and(|s| s.client_status.is_terminal())
        {
            return None;
        }
        let group = self
            .versions
            .get(&job_key_from(&a.namespace, &a.job_id))
            .and_then(|v| v.get(&a.job_version))
            .and_then(|j| j.groups.iter().find(|g| g.name == a.task_group));
        let per_core = self
            .snapshot
            .node(&a.node)
            .map(|n| n.mhz_per_core())
            .unwrap_or(0);
        Some(AllocUsage::of(a, group, per_core))
    }

    fn refresh_usage(&mut self, id: &str) {
        let usage = self.allocs.get(id).and_then(|e| self.usage_of(&e.alloc));
        match usage {
            Some(u) => self.snapshot.add_alloc(u),
            None => {
                self.snapshot.remove_alloc(id);
            }
        }
    }

    /// Records an allocation (from the watch or from our own commit at `revision`).
    pub fn upsert_alloc(&mut self, alloc: Allocation, revision: i64) -> Option<JobKey> {
        if self
            .tombstones
            .get(&alloc.id)
            .is_some_and(|t| t.revision >= revision)
        {
            return None;
        }
        if self
            .allocs
            .get(&alloc.id)
            .is_some_and(|e| e.mod_revision > revision)
        {
            return None;
        }
        let jk = job_key_from(&alloc.namespace, &alloc.job_id);
        let id = alloc.id.clone();
        self.allocs_by_job
            .entry(jk.clone())
            .or_default()
            .insert(id.clone());
        self.allocs_by_node
            .entry(alloc.node.clone())
            .or_default()
            .insert(id.clone());
        self.allocs.insert(
            id.clone(),
            AllocEntry {
                alloc,
                mod_revision: revision,
            },
        );
        self.refresh_usage(&id);
        Some(jk)
    }

    /// Forgets an allocation deleted at `revision`.
    pub fn remove_alloc(&mut self, id: &str, revision: i64) -> Option<JobKey> {
        if self
            .allocs
            .get(id)
            .is_some_and(|e| e.mod_revision > revision)
        {
            return None; // a stale delete (e.g. from a list older than our own commit)
        }
        let Some(e) = self.allocs.remove(id) else {
            // Gone already: our own delete, now seen on the watch, touches its job as the
            // watch's event would had it come first (so what is queued does not depend on
            // which of the two came first).
            let known = self.tombstones.get(id).filter(|t| t.revision == revision);
            let job = known.and_then(|t| t.job.clone());
            if job.is_none() {
                let gone = Tombstone {
                    revision,
                    job: None,
                };
                self.tombstones.insert(id.to_string(), gone);
            }
            return job;
        };
        self.snapshot.remove_alloc(id);
        let jk = job_key_from(&e.alloc.namespace, &e.alloc.job_id);
        let gone = Tombstone {
            revision,
            job: Some(jk.clone()),
        };
        self.tombstones.insert(id.to_string(), gone);
        if let Some(s) = self.allocs_by_job.get_mut(&jk) {
            s.remove(id);
            if s.is_empty() {
                self.allocs_by_job.remove(&jk);
            }
        }
        if let Some(s) = self.allocs_by_node.get_mut(&e.alloc.node) {
            s.remove(id);
            if s.is_empty() {
                self.allocs_by_node.remove(&e.alloc.node);
            }
        }
        Some(jk)
    }

    fn node_ready(&self, name: &str) -> bool {
        self.heartbeats.contains(name)
    }

    fn refresh_node(&mut self, name: &str) {
        match self.nodes.get(name) {
            Some(n) => {
                let ready = self.node_ready(name);
                self.snapshot
                    .upsert_node(n.clone(), self.node_specs.get(name), ready);
                // Allocations that arrived before their node get their cores converted now.
                let ids: Vec<String> = self
                    .allocs_by_node
                    .get(name)
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect();
                for id in ids {
                    self.refresh_usage(&id);
                }
            }
            None => self.snapshot.remove_node(name),
        }
    }

    /// Applies one key's new value (`None` for a delete); returns the jobs to reconcile.
    pub fn apply(
        &mut self,
        kind: Part,
        key: &str,
        value: Option<&[u8]>,
        revision: i64,
    ) -> BTreeSet<JobKey> {
        let Some(parts) = keys::parts(key, kind.prefix()) else {
            return BTreeSet::new();
        };
        // Job ids may contain `/` (periodic children: `<job>/periodic-<time>`).
        let job_of =
            |ns: &str, job: &[&str]| (!job.is_empty()).then(|| job_key_from(ns, &job.join("/")));
        match (kind, &parts[..]) {
            (Part::Specs, [ns, job @ ..]) => job_of(ns, job)
                .map(|jk| self.apply_spec(jk, value, revision))
                .into_iter()
                .collect(),
            (Part::Versions, [ns, job @ .., ver]) => job_of(ns, job)
                .and_then(|jk| self.apply_version(key, jk, ver, value))
                .into_iter()
                .collect(),
            (Part::Allocs, [_node, id]) => match value.map(serde_json::from_slice::<Allocation>) {
                Some(Ok(a)) => self.upsert_alloc(a, revision).into_iter().collect(),
                Some(Err(e)) => {
                    tracing::warn!(key, error = %e, "undecodable allocation ignored");
                    BTreeSet::new()
                }
                None => self.remove_alloc(id, revision).into_iter().collect(),
            },
            (Part::AllocStatus, [_node, id]) => self.apply_alloc_status(key, id, value),
            (Part::Namespaces | Part::Quotas, [name]) => {
                self.apply_namespace_or_quota(kind, key, name, value)
            }
            (Part::Nodes | Part::NodeSpecs | Part::Heartbeats, [name]) => {
                self.apply_node(kind, key, name, value)
            }
            (Part::Deployments, [ns, job @ .., id]) => job_of(ns, job)
                .and_then(|jk| self.apply_deployment(key, jk, id, value, revision))
                .into_iter()
                .collect(),
            (Part::JobStatus, [ns, job @ ..]) => {
                if let Some(jk) = job_of(ns, job) {
                    match value.map(serde_json::from_slice::<JobStatus>) {
                        Some(Ok(s)) => {
                            self.job_status.insert(jk, s);
                        }
                        _ => {
                            self.job_status.remove(&jk);
                        }
                    }
                }
                // A status change alone never needs a reconcile.
                BTreeSet::new()
            }
            // Not watched by the jobs controller, or a key of another shape.
            _ => BTreeSet::new(),
        }
    }

    fn apply_spec(&mut self, jk: JobKey, value: Option<&[u8]>, revision: i64) -> JobKey {
        match value {
            Some(v) => {
                let entry = SpecEntry {
                    raw: v.to_vec(),
                    mod_revision: revision,
                };
                self.specs.insert(jk.clone(), entry);
            }
            None => {
                self.specs.remove(&jk);
            }
        }
        jk
    }

    fn apply_version(
        &mut self,
        key: &str,
        jk: JobKey,
        ver: &str,
        value: Option<&[u8]>,
    ) -> Option<JobKey> {
        let ver = ver.parse::<u64>().ok()?;
        match value.map(serde_json::from_slice::<Job>) {
            Some(Ok(j)) => {
                self.versions.entry(jk.clone()).or_default().insert(ver, j);
                // What the job's allocations hold is read from their version.
                let ids: Vec<String> = self
                    .allocs_by_job
                    .get(&jk)
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect();
                for id in ids {
                    self.refresh_usage(&id);
                }
            }
            Some(Err(e)) => tracing::warn!(key, error = %e, "undecodable job version ignored"),
            None => {
                if let Some(m) = self.versions.get_mut(&jk) {
                    m.remove(&ver);
                    if m.is_empty() {
                        self.versions.remove(&jk);
                    }
                }
            }
        }
        Some(jk)
    }

    fn apply_alloc_status(
        &mut self,
        key: &str,
        id: &str,
        value: Option<&[u8]>,
    ) -> BTreeSet<JobKey> {
        match value.map(serde_json::from_slice::<AllocStatus>) {
            Some(Ok(mut s)) => {
                // Keep what reconciles read; events and texts stay in the store.
                s.alloc_id = String::new();
                s.client_description = String::new();
                for t in s.task_states.values_mut() {
                    t.events = Vec::new();
                }
                self.alloc_status.insert(id.to_string(), s);
            }
            Some(Err(e)) => {
                tracing::warn!(key, error = %e, "undecodable allocation status ignored")
            }
            None => {
                self.alloc_status.remove(id);
            }
        }
        self.refresh_usage(id);
        self.allocs
            .get(id)
            .map(|e| job_key_from(&e.alloc.namespace, &e.alloc.job_id))
            .into_iter()
            .collect()
    }

    /// A node's registration, spec or heartbeat: every job with an allocation there is looked
    /// at again.
    fn apply_node(
        &mut self,
        kind: Part,
        key: &str,
        name: &str,
        value: Option<&[u8]>,
    ) -> BTreeSet<JobKey> {
        match kind {
            Part::Nodes => match value.map(serde_json::from_slice::<Node>) {
                Some(Ok(mut n)) => {
                    if n.name.is_empty() {
                        n.name = name.to_string();
                    }
                    self.nodes.insert(name.to_string(), Arc::new(n));
                }
                Some(Err(e)) => tracing::warn!(key, error = %e, "undecodable node ignored"),
                None => {
                    self.nodes.remove(name);
                }
            },
            Part::NodeSpecs => match value.map(serde_json::from_slice::<NodeSpec>) {
                Some(Ok(s)) => {
                    self.node_specs.insert(name.to_string(), s);
                }
                Some(Err(e)) => tracing::warn!(key, error = %e, "undecodable node spec ignored"),
                None => {
                    self.node_specs.remove(name);
                }
            },
            _ => {
                if value.is_some() {
                    self.heartbeats.insert(name.to_string());
                } else {
                    self.heartbeats.remove(name);
                }
            }
        }
        self.refresh_node(name);
        self.jobs_on_node(name)
    }

    fn apply_deployment(
        &mut self,
        key: &str,
        jk: JobKey,
        id: &str,
        value: Option<&[u8]>,
        revision: i64,
    ) -> Option<JobKey> {
        if self.deployment_revs.get(key).is_some_and(|r| *r > revision) {
            return None; // older than what we hold (our own commit)
        }
        match value.map(serde_json::from_slice::<Deployment>) {
            Some(Ok(d)) => {
                self.deployments
                    .entry(jk.clone())
                    .or_default()
                    .insert(id.to_string(), d);
                self.deployment_revs.insert(key.to_string(), revision);
            }
            Some(Err(e)) => tracing::warn!(key, error = %e, "undecodable deployment ignored"),
            None => {
                if let Some(m) = self.deployments.get_mut(&jk) {
                    m.remove(id);
                }
                self.deployment_revs.remove(key);
            }
        }
        Some(jk)
    }

    /// Replaces everything under one prefix with a fresh list.
    pub fn reset(&mut self, kind: Part, kvs: Vec<KeyValue>, revision: i64) -> BTreeSet<JobKey> {
        let mut touched = BTreeSet::new();
        let existing: Vec<String> = match kind {
            Part::Specs => self.specs.keys().map(|(n, j)| keys::job(n, j)).collect(),
            Part::Versions => self
                .versions
                .iter()
                .flat_map(|((n, j), m)| m.keys().map(move |v| keys::job_version(n, j, *v)))
                .collect(),
            Part::Allocs => self
                .allocs
                .values()
                .map(|e| keys::alloc(&e.alloc.node, &e.alloc.id))
                .collect(),
            Part::AllocStatus => {
                let ids: Vec<String> = self.alloc_status.keys().cloned().collect();
                ids.iter()
                    .map(|id| {
                        let node = self
                            .allocs
                            .get(id)
                            .map(|e| e.alloc.node.clone())
                            .unwrap_or_default();
                        keys::alloc_status(&node, id)
                    })
                    .collect()
            }
            Part::Nodes => self.nodes.keys().map(|n| keys::node(n)).collect(),
            Part::NodeSpecs => self.node_specs.keys().map(|n| keys::node_spec(n)).collect(),
            Part::Heartbeats => self.heartbeats.iter().map(|n| keys::heartbeat(n)).collect(),
            Part::Deployments => self
                .deployments
                .iter()
                .flat_map(|((n, j), m)| m.keys().map(move |id| keys::deployment(n, j, id)))
                .collect(),
            Part::JobStatus => self
                .job_status
                .keys()
                .map(|(n, j)| keys::job_status(n, j))
                .collect(),
            Part::Namespaces => self.namespaces.keys().map(|n| keys::namespace(n)).collect(),
            Part::Quotas => self.quotas.keys().map(|n| keys::quota(n)).collect(),
            Part::NodeLifecycle | Part::DrainStatus => Vec::new(),
        };
        let fresh: HashSet<String> = kvs.iter().map(|kv| kv.key_str().into_owned()).collect();
        for key in existing {
            if !fresh.contains(&key) {
                if kind == Part::AllocStatus {
                    // The node part may be unknown here; remove by id.
                    if let Some(id) = key.rsplit('/').next() {
                        self.alloc_status.remove(id);
                        self.refresh_usage(id);
                    }
                    continue;
                }
                touched.extend(self.apply(kind, &key, None, revision));
            }
        }
        for kv in kvs {
            let key = kv.key_str().into_owned();
            touched.extend(self.apply(kind, &key, Some(&kv.value), kv.mod_revision));
        }
        self.revisions.insert(kind, revision);
        touched
    }
}

/// A deleted allocation: the deletion's revision, and its job when it was known.
#[derive(Debug, Clone)]
struct Tombstone {
    revision: i64,
    job: Option<JobKey>,
}

/// Feeds one prefix of the [`World`] and queues the jobs each change touches.
pub struct WorldSink {
    pub world: Arc<Mutex<World>>,
    pub kind: Part,
    pub queue: Arc<WorkQueue<JobKey>>,
}

impl WorldSink {
    fn lock(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Sink for WorldSink {
    fn reset(&mut self, kvs: Vec<KeyValue>, revision: i64) {
        let touched = {
            let mut w = self.lock();
            let mut t = w.reset(self.kind, kvs, revision);
            if matches!(self.kind, Part::Nodes | Part::Heartbeats | Part::NodeSpecs) {
                t.extend(w.blocked.iter().cloned());
            }
            if matches!(self.kind, Part::Allocs | Part::AllocStatus) {
                let freed = w.blocked_by_quota(&t);
                t.extend(freed);
            }
            t
        };
        for k in touched {
            self.queue.add(k);
        }
    }

    fn apply(&mut self, events: Vec<WatchEvent>, revision: i64) {
        let mut touched = BTreeSet::new();
        {
            let mut w = self.lock();
            for e in events {
                let key = e.kv.key_str().into_owned();
                let value = (e.kind == EventKind::Put).then_some(e.kv.value.as_slice());
                touched.extend(w.apply(self.kind, &key, value, e.kv.mod_revision));
            }
            if matches!(self.kind, Part::Allocs | Part::AllocStatus) {
                let freed = w.blocked_by_quota(&touched);
                touched.extend(freed);
            }
            w.revisions.insert(self.kind, revision);
            if self.kind == Part::Allocs {
                w.tombstones.retain(|_, t| t.revision > revision);
            }
        }
        for k in touched {
            self.queue.add(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The determinism test's second rare divergence: whether the watch's echo of our own
    /// delete queued the job depended on which came first.
    #[test]
    fn a_deleted_allocation_touches_its_job_whichever_comes_first_our_delete_or_its_event() {
        let a = Allocation {
            id: "a1".into(),
            namespace: "default".into(),
            job_id: "web".into(),
            node: "n1".into(),
            ..Default::default()
        };
        let key = keys::alloc("n1", "a1");
        let web = ("default".to_string(), "web".to_string());
        for ours_first in [true, false] {
            let mut w = World::default();
            w.upsert_alloc(a.clone(), 5);
            let touched = if ours_first {
                w.remove_alloc("a1", 9);
                w.apply(Part::Allocs, &key, None, 9)
            } else {
                let t = w.apply(Part::Allocs, &key, None, 9);
                w.remove_alloc("a1", 9);
                t
            };
            assert_eq!(
                touched,
                BTreeSet::from([web.clone()]),
                "ours first: {ours_first}"
            );
            assert!(!w.allocs.contains_key("a1"));
            // A stale put (older than the delete) does not bring it back.
            w.apply(
                Part::Allocs,
                &key,
                Some(&serde_json::to_vec(&a).unwrap()),
                7,
            );
            assert!(!w.allocs.contains_key("a1"));
        }
    }

    #[test]
    fn world_indexes_job_ids_with_slashes_and_ignores_stale_alloc_events() {
        let mut w = World::default();
        let key = keys::job("default", "nightly/periodic-1700000000");
        let t = w.apply(Part::Specs, &key, Some(b"{}"), 5);
        let jk = (
            "default".to_string(),
            "nightly/periodic-1700000000".to_string(),
        );
        assert!(t.contains(&jk));
        assert!(w.specs.contains_key(&jk));
        let job = Job {
            id: jk.1.clone(),
            namespace: "default".into(),
            ..Default::default()
        };
        let vkey = keys::job_version("default", &jk.1, 3);
        w.apply(
            Part::Versions,
            &vkey,
            Some(&serde_json::to_vec(&job).unwrap()),
            6,
        );
        assert!(w.versions[&jk].contains_key(&3));

        let a = Allocation {
            id: "a1".into(),
            namespace: "default".into(),
            job_id: "web".into(),
            node: "n1".into(),
            ..Default::default()
        };
        let mut newer = a.clone();
        newer.desired_status = DesiredStatus::Stop;
        w.upsert_alloc(newer, 20);
        // An older event for the same key (from a watch that lags our own commit) is ignored.
        w.apply(
            Part::Allocs,
            &keys::alloc("n1", "a1"),
            Some(&serde_json::to_vec(&a).unwrap()),
            10,
        );
        assert_eq!(w.allocs["a1"].alloc.desired_status, DesiredStatus::Stop);
        // A stale delete is ignored too; a newer one removes it, and older puts cannot resurrect it.
        w.apply(Part::Allocs, &keys::alloc("n1", "a1"), None, 15);
        assert!(w.allocs.contains_key("a1"));
        w.apply(Part::Allocs, &keys::alloc("n1", "a1"), None, 25);
        assert!(!w.allocs.contains_key("a1"));
        w.apply(
            Part::Allocs,
            &keys::alloc("n1", "a1"),
            Some(&serde_json::to_vec(&a).unwrap()),
            21,
        );
        assert!(!w.allocs.contains_key("a1"));
    }
}
