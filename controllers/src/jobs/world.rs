//! The jobs controller's view of the store: synchronous indexes over every prefix it reads
//! (specs, versions, allocations and their statuses, nodes, node specs, heartbeats,
//! deployments, job statuses, unfinished evaluations), plus the scheduler's [`ClusterSnapshot`] kept in step with them.
//! Fed by reflector sinks ([`WorldSink`]) and by the controller's own committed writes; events
//! older than what the index already holds for a key are ignored, so both feeds may overlap.
//!
//! Namespaces and quota specifications are indexed too: the snapshot carries each namespace's
//! quota, a change to either touches the namespace's jobs, and an allocation of a namespace
//! with a quota that changes touches the namespace's blocked jobs (freed quota lets them place).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

use nomos_api::eval::Evaluation;
use nomos_api::namespace::{Namespace, QuotaSpec, DEFAULT_NAMESPACE};
use nomos_api::settings::StabilityMarks;
use nomos_api::{
    AllocStatus, Allocation, ClientStatus, Deployment, DesiredStatus, Job, JobStatus, Node,
    NodeSpec,
};
use nomos_store::{keys, EventKind, KeyValue, WatchEvent};

use super::compact::{CompactAlloc, Interner};
use crate::reconcile::ObservedAlloc;
use crate::runtime::queue::WorkQueue;
use crate::runtime::reflector::Sink;
use crate::scheduler::stored::StoredScheduling;
use crate::scheduler::{AllocUsage, ClusterSnapshot};
use crate::{FastMap, FastSet};

pub use crate::JobKey;

pub use crate::loops::view::Part;

/// A spec as stored: raw bytes (parsed by the reconcile) and the key's mod revision.
#[derive(Debug, Clone)]
pub struct SpecEntry {
    pub raw: Vec<u8>,
    pub mod_revision: i64,
}

/// An allocation as the world holds it (compact: see [`CompactAlloc`]) and the revision it
/// was written at.
#[derive(Debug, Clone)]
pub struct AllocEntry {
    pub alloc: CompactAlloc,
    pub mod_revision: i64,
}

impl AllocEntry {
    pub fn job_key(&self) -> JobKey {
        job_key_from(self.alloc.namespace(), self.alloc.job_id())
    }
}

#[derive(Default)]
pub struct World {
    pub specs: FastMap<JobKey, SpecEntry>,
    pub versions: FastMap<JobKey, BTreeMap<u64, Job>>,
    /// Allocations by id; the indexes below and the statuses share the id's one copy. Entries
    /// are boxed: a map's table is up to twice as long as its entries (it grows in powers of
    /// two), and empty slots then cost a pointer, not a whole allocation.
    pub allocs: FastMap<Arc<str>, Box<AllocEntry>>,
    pub allocs_by_job: FastMap<JobKey, BTreeSet<Arc<str>>>,
    pub allocs_by_node: FastMap<Arc<str>, BTreeSet<Arc<str>>>,
    pub alloc_status: FastMap<Arc<str>, Box<AllocStatus>>,
    /// Shared copies of the strings allocations repeat (namespaces, jobs, nodes, hashes).
    strings: Interner,
    pub nodes: FastMap<String, Arc<Node>>,
    pub node_specs: FastMap<String, NodeSpec>,
    pub heartbeats: FastSet<String>,
    pub deployments: FastMap<JobKey, BTreeMap<String, Deployment>>,
    /// Mod revision of each deployment key: writes compare on it, so a user's promotion, pause
    /// or failure is never overwritten by a decision taken before it.
    pub deployment_revs: FastMap<String, i64>,
    pub job_status: FastMap<JobKey, JobStatus>,
    /// Revision each prefix's reflector has reached.
    pub revisions: FastMap<Part, i64>,
    /// Per node: revision of this controller's last successful commit there.
    pub node_guard: FastMap<String, i64>,
    /// Deleted allocations, so stale events do not resurrect them.
    tombstones: FastMap<String, Tombstone>,
    pub snapshot: ClusterSnapshot,
    /// Jobs with placements that failed: any node change retries them.
    pub blocked: FastSet<JobKey>,
    /// Namespaces written as objects (`default` exists without one).
    pub namespaces: BTreeMap<String, Namespace>,
    /// Quota specifications by name.
    pub quotas: BTreeMap<String, QuotaSpec>,
    /// Unfinished (pending and blocked) evaluations per job, by key.
    pub evals: FastMap<JobKey, BTreeMap<String, Evaluation>>,
    /// The job of each unfinished evaluation, by key.
    eval_jobs: FastMap<String, JobKey>,
    /// Evaluations this controller finished, with the revision of that write: older events
    /// of their keys (a pending write seen late) are ignored until the watch passes it.
    /// Keys read straight from the store ([`World::absorb_read`]) are held here too, at the
    /// revision read.
    pub eval_done: FastMap<String, i64>,
    /// Per namespace: the revision at which its evaluations were last read straight from the
    /// store (the view of them holds at least that much, whatever the watch reached).
    evals_read_at: FastMap<String, i64>,
    /// Per job: the revision at which its spec was last read straight from the store.
    spec_read_at: FastMap<JobKey, i64>,
    /// Specs found deleted by such a read, with its revision: older events of the key (a put
    /// the watch has not delivered yet) are ignored until the watch passes it.
    spec_gone: FastMap<JobKey, i64>,
    /// The scheduler algorithms stored through the API (the cluster's and the pools').
    pub scheduling: StoredScheduling,
    /// Versions marked stable or not by hand, per job.
    pub stability: FastMap<JobKey, StabilityMarks>,
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
            (Part::Evals, self.eval_jobs.len()),
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
            if let Some(e) = self.allocs.get(id) {
                out.insert(e.job_key());
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
            .filter_map(|id| Some((id, self.allocs.get(id)?)))
            .map(|(id, e)| ObservedAlloc {
                alloc: e.alloc.to_allocation(),
                status: self.alloc_status.get(id).map(|s| AllocStatus::clone(s)),
            })
            .collect()
    }

    /// One allocation, as written.
    pub fn alloc(&self, id: &str) -> Option<Allocation> {
        self.allocs.get(id).map(|e| e.alloc.to_allocation())
    }

    fn usage_of(&self, a: &CompactAlloc, strings: &mut Interner) -> Option<AllocUsage> {
        if a.desired_status() != DesiredStatus::Run {
            return None;
        }
        if self
            .alloc_status
            .get(&**a.id())
            .is_some_and(|s| s.client_status.is_terminal())
        {
            return None;
        }
        let group = self
            .versions
            .get(&job_key_from(a.namespace(), a.job_id()))
            .and_then(|v| v.get(&a.job_version()))
            .and_then(|j| j.groups.iter().find(|g| g.name == a.task_group()));
        let per_core = self
            .snapshot
            .node(a.node())
            .map(|n| n.mhz_per_core())
            .unwrap_or(0);
        Some(AllocUsage::of_compact(a, group, per_core, strings))
    }

    fn refresh_usage(&mut self, id: &str) {
        let mut strings = std::mem::take(&mut self.strings);
        let usage = self
            .allocs
            .get(id)
            .and_then(|e| self.usage_of(&e.alloc, &mut strings));
        self.strings = strings;
        match usage {
            Some(u) => self.snapshot.add_alloc(u),
            None => {
                self.snapshot.remove_alloc(id);
            }
        }
    }

    /// What [`World::upsert_alloc`] returns for a write of allocation `id` at `revision` when
    /// it needs no look at the value: `Some(None)` for a stale write (older than the held
    /// allocation or its deletion), `Some(job)` for the same write seen again (our own commit,
    /// then its event on the watch: it touches its job all the same, whichever of the two
    /// comes first), `None` when the write is new.
    fn upsert_shortcut(&self, id: &str, revision: i64) -> Option<Option<JobKey>> {
        if self
            .tombstones
            .get(id)
            .is_some_and(|t| t.revision >= revision)
        {
            return Some(None);
        }
        let e = self.allocs.get(id)?;
        match e.mod_revision.cmp(&revision) {
            std::cmp::Ordering::Greater => Some(None),
            std::cmp::Ordering::Equal => Some(Some(e.job_key())),
            std::cmp::Ordering::Less => None,
        }
    }

    /// Whether an allocation put `event` carries needs no decoding
    /// ([`World::upsert_shortcut`], the id taken from the key).
    fn holds_event(&self, event: &WatchEvent) -> bool {
        let Ok(key) = event.kv.key_utf8() else {
            return false;
        };
        let id = key.rsplit('/').next().unwrap_or_default();
        event.kind == EventKind::Put && self.upsert_shortcut(id, event.kv.mod_revision).is_some()
    }

    /// Records an allocation (from the watch or from our own commit at `revision`).
    pub fn upsert_alloc(&mut self, alloc: Allocation, revision: i64) -> Option<JobKey> {
        if let Some(outcome) = self.upsert_shortcut(&alloc.id, revision) {
            return outcome;
        }
        let jk = job_key_from(&alloc.namespace, &alloc.job_id);
        let (id, old_node) = match self.allocs.get_key_value(alloc.id.as_str()) {
            Some((id, e)) => (id.clone(), Some(e.alloc.node().clone())),
            None => (Arc::from(alloc.id.as_str()), None),
        };
        let compact = CompactAlloc::new(alloc, id.clone(), &mut self.strings);
        // A move to another node (only in tests and hand edits): leave the old index.
        if let Some(old_node) = old_node.filter(|n| n != compact.node()) {
            self.unindex_node(&old_node, &id);
        }
        self.allocs_by_job
            .entry(jk.clone())
            .or_default()
            .insert(id.clone());
        self.allocs_by_node
            .entry(compact.node().clone())
            .or_default()
            .insert(id.clone());
        let entry = AllocEntry {
            alloc: compact,
            mod_revision: revision,
        };
        self.allocs.insert(id.clone(), Box::new(entry));
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
        let jk = e.job_key();
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
        self.unindex_node(e.alloc.node(), id);
        Some(jk)
    }

    fn unindex_node(&mut self, node: &Arc<str>, id: &str) {
        if let Some(s) = self.allocs_by_node.get_mut(node) {
            s.remove(id);
            if s.is_empty() {
                self.allocs_by_node.remove(node);
            }
        }
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
                let ids: Vec<Arc<str>> = self
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
        let (mut now, later) = self.apply_classified(kind, key, value, Decoded::Raw, revision);
        now.extend(later);
        now
    }

    /// [`World::apply`], with the jobs to reconcile at once apart from the one an agent's
    /// report that changes no decision touches ([`status_change_is_urgent`]), which may wait.
    fn apply_classified(
        &mut self,
        kind: Part,
        key: &str,
        value: Option<&[u8]>,
        decoded: Decoded,
        revision: i64,
    ) -> (BTreeSet<JobKey>, Option<JobKey>) {
        let Some(parts) = keys::parts(key, kind.prefix()) else {
            return (BTreeSet::new(), None);
        };
        // Job ids may contain `/` (periodic children: `<job>/periodic-<time>`).
        let job_of =
            |ns: &str, job: &[&str]| (!job.is_empty()).then(|| job_key_from(ns, &job.join("/")));
        let now = match (kind, &parts[..]) {
            (Part::Specs, [ns, job @ ..]) => job_of(ns, job)
                .map(|jk| self.apply_spec(jk, value, revision))
                .into_iter()
                .collect(),
            (Part::Versions, [ns, job @ .., ver]) => job_of(ns, job)
                .and_then(|jk| self.apply_version(key, jk, ver, value))
                .into_iter()
                .collect(),
            (Part::Allocs, [_node, id]) => match value.and(self.upsert_shortcut(id, revision)) {
                // Stale, or the same write seen again: no need to decode it.
                Some(outcome) => outcome.into_iter().collect(),
                None => self.apply_alloc(key, id, value, decoded, revision),
            },
            (Part::AllocStatus, [_node, id]) => {
                match self.apply_alloc_status(key, id, decoded.status(value)) {
                    (Some(jk), false) => return (BTreeSet::new(), Some(jk)),
                    (job, _) => job.into_iter().collect(),
                }
            }
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
            (Part::Evals, [_ns, _id]) => {
                self.apply_eval(key, value, revision).into_iter().collect()
            }
            (Part::Config | Part::NodePools, _) => {
                // Read by the next placements; nothing to reconcile for it.
                self.scheduling.apply(key, value);
                BTreeSet::new()
            }
            (Part::Stability, [ns, job @ ..]) => job_of(ns, job)
                .map(|jk| self.apply_stability(key, jk, value))
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
        };
        (now, None)
    }

    /// A job's stability marks written or deleted: the job, whose auto-revert target may change.
    fn apply_stability(&mut self, key: &str, jk: JobKey, value: Option<&[u8]>) -> JobKey {
        match value.map(serde_json::from_slice::<StabilityMarks>) {
            Some(Ok(m)) => {
                self.stability.insert(jk.clone(), m);
            }
            Some(Err(e)) => tracing::warn!(key, error = %e, "undecodable stability marks ignored"),
            None => {
                self.stability.remove(&jk);
            }
        }
        jk
    }

    fn apply_spec(&mut self, jk: JobKey, value: Option<&[u8]>, revision: i64) -> JobKey {
        let held = self.specs.get(&jk).map_or(0, |s| s.mod_revision);
        let gone = self.spec_gone.get(&jk).copied().unwrap_or(0);
        if held.max(gone) > revision {
            // Older than what a read straight from the store found.
            return jk;
        }
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
                let ids: Vec<Arc<str>> = self
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

    /// An agent's report on an allocation: its job, and whether the change can alter a decision
    /// at once ([`status_change_is_urgent`]); other changes (an acknowledgement that it runs,
    /// new task counters) only move the job's summary.
    /// An allocation's put (decoded ahead, or now) or delete; the jobs to reconcile.
    fn apply_alloc(
        &mut self,
        key: &str,
        id: &str,
        value: Option<&[u8]>,
        decoded: Decoded,
        revision: i64,
    ) -> BTreeSet<JobKey> {
        match decoded.alloc(value) {
            Some(Ok(a)) => self.upsert_alloc(a, revision).into_iter().collect(),
            Some(Err(e)) => {
                tracing::warn!(key, error = %e, "undecodable allocation ignored");
                BTreeSet::new()
            }
            None => self.remove_alloc(id, revision).into_iter().collect(),
        }
    }

    fn apply_alloc_status(
        &mut self,
        key: &str,
        id: &str,
        status: Option<serde_json::Result<AllocStatus>>,
    ) -> (Option<JobKey>, bool) {
        let terminal = |s: Option<&AllocStatus>| s.is_some_and(|s| s.client_status.is_terminal());
        let was_terminal = terminal(self.alloc_status.get(id).map(|s| &**s));
        let urgent = match status {
            Some(Ok(s)) => {
                let (key, alloc) = match self.allocs.get_key_value(id) {
                    Some((key, e)) => (key.clone(), Some(&e.alloc)),
                    None => (Arc::from(id), None),
                };
                let old = self.alloc_status.get(id).map(|s| &**s);
                let urgent = status_change_is_urgent(alloc, old, &s);
                self.alloc_status.insert(key, Box::new(s));
                urgent
            }
            Some(Err(e)) => {
                tracing::warn!(key, error = %e, "undecodable allocation status ignored");
                false
            }
            None => self.alloc_status.remove(id).is_some(),
        };
        // What the allocation holds on its node depends on its status only through whether
        // the status is terminal: a report that leaves that as it was (most of them: running,
        // health, counters) leaves the usage alone.
        if terminal(self.alloc_status.get(id).map(|s| &**s)) != was_terminal {
            self.refresh_usage(id);
        }
        let job = self.allocs.get(id).map(|e| e.job_key());
        (job, urgent)
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

    /// An evaluation's new value: unfinished ones are indexed by job, and a new pending one
    /// returns its job to reconcile; finished and deleted ones leave the index.
    fn apply_eval(&mut self, key: &str, value: Option<&[u8]>, revision: i64) -> Option<JobKey> {
        if self.eval_done.get(key).is_some_and(|done| revision < *done) {
            return None;
        }
        if let Some(jk) = self.eval_jobs.remove(key) {
            if let Some(m) = self.evals.get_mut(&jk) {
                m.remove(key);
                if m.is_empty() {
                    self.evals.remove(&jk);
                }
            }
        }
        let e = match value.map(serde_json::from_slice::<Evaluation>) {
            // The view keeps each evaluation's revision as its `ModifyIndex` (as the API
            // answers it); records written from it leave the indexes out.
            Some(Ok(e)) if !e.is_terminal() => Evaluation {
                modify_index: revision,
                ..e
            },
            Some(Err(err)) => {
                tracing::warn!(key, error = %err, "undecodable evaluation ignored");
                return None;
            }
            _ => return None,
        };
        let jk = job_key_from(&e.namespace, &e.job_id);
        let pending = e.is_pending();
        self.eval_jobs.insert(key.to_string(), jk.clone());
        self.evals
            .entry(jk.clone())
            .or_default()
            .insert(key.to_string(), e);
        pending.then_some(jk)
    }

    /// Whether the view holds the job's spec and evaluations as of one instant: the view of
    /// the namespace's evaluations has reached the spec's revision, and the view of the spec
    /// has reached the revision of each of the job's pending evaluations. The two come from
    /// separate watches, so after a register (the spec and its pending evaluation in one
    /// transaction) either may lead; a reconcile on a view that is not consistent records an
    /// evaluation of its own beside the pending one, or completes the pending one without
    /// the spec it was written with.
    pub fn consistent_for(&self, jk: &JobKey) -> bool {
        let spec_rev = self.specs.get(jk).map_or(0, |s| s.mod_revision);
        let evals_seen = self
            .revision(Part::Evals)
            .max(self.evals_read_at.get(&jk.0).copied().unwrap_or(0));
        let pending_rev = self
            .evals
            .get(jk)
            .into_iter()
            .flat_map(BTreeMap::values)
            .filter(|e| e.is_pending())
            .map(|e| e.modify_index)
            .max()
            .unwrap_or(0);
        let spec_seen = self
            .revision(Part::Specs)
            .max(self.spec_read_at.get(jk).copied().unwrap_or(0));
        evals_seen >= spec_rev && spec_seen >= pending_rev
    }

    /// Takes in what a read straight from the store found at `revision`: the job's spec
    /// (`None`: absent) and every evaluation of its namespace. Each key keeps the newest of
    /// what it held and what was read; the watch's older events of these keys are ignored
    /// until it passes them.
    pub fn absorb_read(
        &mut self,
        jk: &JobKey,
        spec: Option<&KeyValue>,
        evals: &[KeyValue],
        revision: i64,
    ) {
        match spec {
            Some(kv) => {
                self.apply_spec(jk.clone(), Some(&kv.value), kv.mod_revision);
            }
            None if self.specs.contains_key(jk) => {
                self.apply_spec(jk.clone(), None, revision);
                self.spec_gone.insert(jk.clone(), revision);
            }
            None => {}
        }
        self.spec_read_at.insert(jk.clone(), revision);
        let prefix = keys::evals_prefix(Some(&jk.0));
        let mut read = HashSet::new();
        for kv in evals {
            let Ok(key) = kv.key_utf8() else { continue };
            read.insert(key.to_string());
            self.apply_eval(key, Some(&kv.value), kv.mod_revision);
            let done = self.eval_done.entry(key.to_string()).or_insert(0);
            *done = (*done).max(kv.mod_revision);
        }
        let gone: Vec<String> = self
            .eval_jobs
            .keys()
            .filter(|k| k.starts_with(&prefix) && !read.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            self.apply_eval(&key, None, revision);
            self.eval_done.insert(key, revision);
        }
        let at = self.evals_read_at.entry(jk.0.clone()).or_insert(0);
        *at = (*at).max(revision);
    }

    /// A job's unfinished evaluations: the pending ones, and the newest blocked one.
    pub fn unfinished_evals(&self, jk: &JobKey) -> (Vec<Evaluation>, Option<Evaluation>) {
        let Some(m) = self.evals.get(jk) else {
            return (Vec::new(), None);
        };
        let pending = m.values().filter(|e| e.is_pending()).cloned().collect();
        let blocked = m
            .values()
            .filter(|e| e.is_blocked())
            .max_by_key(|e| e.create_time)
            .cloned();
        (pending, blocked)
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
                .map(|e| keys::alloc(e.alloc.node(), e.alloc.id()))
                .collect(),
            Part::AllocStatus => self
                .alloc_status
                .keys()
                .map(|id| {
                    let node = self.allocs.get(id).map(|e| &**e.alloc.node());
                    keys::alloc_status(node.unwrap_or_default(), id)
                })
                .collect(),
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
            Part::Evals => self.eval_jobs.keys().cloned().collect(),
            Part::Config | Part::NodePools => self.scheduling.keys(),
            Part::Stability => self
                .stability
                .keys()
                .map(|(n, j)| keys::job_stability(n, j))
                .collect(),
            Part::NodeLifecycle | Part::DrainStatus | Part::Services => Vec::new(),
        };
        let fresh: HashSet<String> = kvs
            .iter()
            .filter_map(|kv| kv.key_utf8_or_skip().map(str::to_string))
            .collect();
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
            let Ok(key) = kv.key_utf8() else {
                continue;
            };
            touched.extend(self.apply(kind, key, Some(&kv.value), kv.mod_revision));
        }
        self.revisions.insert(kind, revision);
        touched
    }
}

/// Whether an agent's new report on an allocation can change what the job's reconcile decides
/// now: any change for an allocation a deployment or a migration watches (health, checks and
/// running times decide their progress), and a change into or out of a finished, lost or
/// unknown state for any other. A report that only says it runs, or updates its tasks'
/// counters, changes no decision; its job is reconciled within [`STATUS_COALESCE`] instead,
/// so a burst of reports costs one reconcile, not one each.
fn status_change_is_urgent(
    alloc: Option<&CompactAlloc>,
    old: Option<&AllocStatus>,
    new: &AllocStatus,
) -> bool {
    let Some(alloc) = alloc else {
        return false; // no job to touch
    };
    if !alloc.deployment_id().is_empty() || !alloc.previous_alloc().is_empty() {
        return old != Some(new);
    }
    let settled = |c: ClientStatus| c.is_terminal() || c == ClientStatus::Unknown;
    let before = old.map(|s| s.client_status).unwrap_or_default();
    settled(before) != settled(new.client_status)
        || settled(new.client_status) && before != new.client_status
}

/// How long a job may wait for a reconcile after reports that change no decision
/// ([`status_change_is_urgent`]): they are merged into one.
pub const STATUS_COALESCE: std::time::Duration = std::time::Duration::from_millis(250);

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
    /// How long reports that change no decision wait ([`STATUS_COALESCE`]; zero: not at all).
    pub coalesce: std::time::Duration,
}

impl WorldSink {
    fn lock(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// An event's value decoded before the world lock is taken, for the two kinds written by the
/// million (allocations and their statuses), so decoding them does not hold up reconciles.
pub(crate) enum Decoded {
    /// Not decoded ahead: another kind, a delete, or an allocation the world already holds at
    /// that revision (its own commit, seen again on the watch).
    Raw,
    Alloc(serde_json::Result<Allocation>),
    Status(serde_json::Result<AllocStatus>),
}

impl Decoded {
    /// Decodes a put of `kind` ahead, unless the world `holds` it already.
    fn ahead(kind: Part, value: Option<&[u8]>, holds: bool) -> Self {
        match (kind, value) {
            (Part::Allocs, Some(v)) if !holds => Decoded::Alloc(serde_json::from_slice(v)),
            (Part::AllocStatus, Some(v)) => {
                Decoded::Status(serde_json::from_slice(v).map(slim_status))
            }
            _ => Decoded::Raw,
        }
    }

    /// The allocation `value` holds: decoded ahead, or now.
    fn alloc(self, value: Option<&[u8]>) -> Option<serde_json::Result<Allocation>> {
        match self {
            Decoded::Alloc(a) => Some(a),
            _ => value.map(serde_json::from_slice),
        }
    }

    /// The status `value` holds, as the world keeps it: decoded ahead, or now.
    fn status(self, value: Option<&[u8]>) -> Option<serde_json::Result<AllocStatus>> {
        match self {
            Decoded::Status(s) => Some(s),
            _ => value.map(|v| serde_json::from_slice(v).map(slim_status)),
        }
    }
}

/// The value a put event carries; `None` for a delete.
fn put_value(e: &WatchEvent) -> Option<&[u8]> {
    (e.kind == EventKind::Put).then_some(e.kv.value.as_slice())
}

/// An allocation's status with only what reconciles read: events and texts stay in the store.
fn slim_status(mut s: AllocStatus) -> AllocStatus {
    s.alloc_id = String::new();
    s.client_description = String::new();
    for t in s.task_states.values_mut() {
        t.events = Vec::new();
    }
    s
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
        // Which allocations the world holds at their revision already: not decoded again.
        let held: Vec<bool> = if self.kind == Part::Allocs {
            let w = self.lock();
            events.iter().map(|e| w.holds_event(e)).collect()
        } else {
            Vec::new()
        };
        let decoded: Vec<Decoded> = events
            .iter()
            .enumerate()
            .map(|(i, e)| Decoded::ahead(self.kind, put_value(e), held.get(i) == Some(&true)))
            .collect();
        let mut touched = BTreeSet::new();
        let mut coalesced = BTreeSet::new();
        {
            let mut w = self.lock();
            for (e, decoded) in events.iter().zip(decoded) {
                let Some(key) = e.kv.key_utf8_or_skip() else {
                    continue;
                };
                let rev = e.kv.mod_revision;
                let (now, later) = w.apply_classified(self.kind, key, put_value(e), decoded, rev);
                touched.extend(now);
                coalesced.extend(later);
            }
            if matches!(self.kind, Part::Allocs | Part::AllocStatus) {
                let freed = w.blocked_by_quota(&touched);
                touched.extend(freed);
            }
            w.revisions.insert(self.kind, revision);
            if self.kind == Part::Allocs {
                w.tombstones.retain(|_, t| t.revision > revision);
            }
            if self.kind == Part::Evals {
                w.eval_done.retain(|_, done| *done > revision);
            }
            if self.kind == Part::Specs {
                w.spec_gone.retain(|_, gone| *gone > revision);
            }
        }
        for k in coalesced.difference(&touched) {
            if self.coalesce.is_zero() {
                self.queue.add(k.clone());
            } else {
                self.queue.add_after(k.clone(), self.coalesce);
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

    /// Allocation `a1` of job `web` on node `n1`.
    fn web_alloc() -> Allocation {
        Allocation {
            id: "a1".into(),
            namespace: "default".into(),
            job_id: "web".into(),
            node: "n1".into(),
            ..Default::default()
        }
    }

    fn put_event(key: &str, value: Vec<u8>, revision: i64) -> WatchEvent {
        WatchEvent {
            kind: EventKind::Put,
            kv: KeyValue {
                key: key.as_bytes().to_vec(),
                value,
                mod_revision: revision,
                ..Default::default()
            },
            prev_kv: None,
        }
    }

    /// Stored settings reach the world: a job's stability marks touch the job and go with a
    /// re-list that no longer holds them; the scheduler configuration and a pool's algorithm
    /// are taken without touching any job.
    #[test]
    fn stability_marks_and_stored_algorithms_are_kept_in_step() {
        use crate::scheduler::{Algorithm, SchedulerConfig};
        let mut w = World::default();
        let marks_key = keys::job_stability("default", "web");
        let touched = w.apply(
            Part::Stability,
            &marks_key,
            Some(br#"{"versions": {"2": true}}"#),
            3,
        );
        let jk = job_key_from("default", "web");
        assert_eq!(touched, BTreeSet::from([jk.clone()]));
        assert!(w.stability[&jk].is_stable(2, Some(4)));
        let config = br#"{"SchedulerAlgorithm": "spread"}"#;
        assert!(w
            .apply(Part::Config, keys::SCHEDULER_CONFIG, Some(config), 4)
            .is_empty());
        let pool =
            br#"{"Name": "edge", "SchedulerConfiguration": {"SchedulerAlgorithm": "binpack"}}"#;
        assert!(w
            .apply(Part::NodePools, &keys::node_pool("edge"), Some(pool), 5)
            .is_empty());
        let default = SchedulerConfig::default();
        assert_eq!(
            w.scheduling.config_for("default", &default).algorithm,
            Algorithm::Spread
        );
        assert_eq!(
            w.scheduling.config_for("edge", &default).algorithm,
            Algorithm::Binpack
        );

        assert_eq!(
            w.reset(Part::Stability, Vec::new(), 6),
            BTreeSet::from([jk.clone()])
        );
        assert!(!w.stability.contains_key(&jk));
        w.reset(Part::Config, Vec::new(), 6);
        w.reset(Part::NodePools, Vec::new(), 6);
        assert_eq!(
            w.scheduling.config_for("edge", &default).algorithm,
            Algorithm::Binpack
        );
        assert_eq!(w.scheduling, Default::default(), "both forgotten");
    }

    /// The sink decodes allocations and statuses before it takes the world's lock: what the
    /// world ends up holding, and which jobs are queued, are as if it decoded them under it.
    #[test]
    fn the_sink_decodes_ahead_what_the_world_would_have_decoded() {
        use crate::runtime::queue::{Backoff, WorkQueue};
        let world = Arc::new(Mutex::new(World::default()));
        let queue = Arc::new(WorkQueue::new(Backoff::default()));
        let sink = |kind| WorldSink {
            world: world.clone(),
            kind,
            queue: queue.clone(),
            coalesce: std::time::Duration::ZERO,
        };
        let a = web_alloc();
        let alloc_key = keys::alloc("n1", "a1");
        let encoded = serde_json::to_vec(&a).unwrap();
        // Held at revision 5 already (our own commit): its echo is not decoded, and still
        // queues the job; an undecodable value at a newer revision is ignored.
        world.lock().unwrap().upsert_alloc(a.clone(), 5);
        sink(Part::Allocs).apply(vec![put_event(&alloc_key, encoded.clone(), 5)], 5);
        assert_eq!(queue.len(), 1);
        sink(Part::Allocs).apply(vec![put_event(&alloc_key, b"{".to_vec(), 6)], 6);
        assert_eq!(world.lock().unwrap().allocs["a1"].mod_revision, 5);

        let mut status = AllocStatus {
            alloc_id: "a1".into(),
            client_status: ClientStatus::Running,
            client_description: "long text".into(),
            ..Default::default()
        };
        status.task_states.insert(
            "t".into(),
            nomos_api::TaskState {
                events: vec![Default::default()],
                ..Default::default()
            },
        );
        let status_key = keys::alloc_status("n1", "a1");
        let events = vec![
            put_event(&status_key, serde_json::to_vec(&status).unwrap(), 7),
            put_event(&keys::alloc_status("n1", "a2"), b"not json".to_vec(), 8),
        ];
        sink(Part::AllocStatus).apply(events, 8);
        let w = world.lock().unwrap();
        let held = &w.alloc_status["a1"];
        assert_eq!(held.client_status, ClientStatus::Running);
        assert!(held.client_description.is_empty() && held.alloc_id.is_empty());
        assert!(held.task_states["t"].events.is_empty());
        assert!(!w.alloc_status.contains_key("a2"));
    }

    /// Only a report that makes an allocation terminal (or no longer terminal) changes what
    /// it holds on its node; the others leave the snapshot's usage as it was.
    #[test]
    fn a_report_frees_the_usage_only_when_the_allocation_becomes_terminal() {
        let mut w = World::default();
        w.upsert_alloc(web_alloc(), 5);
        assert!(w.snapshot.alloc("a1").is_some());
        let key = keys::alloc_status("n1", "a1");
        let report = |status| {
            let s = AllocStatus {
                client_status: status,
                ..Default::default()
            };
            serde_json::to_vec(&s).unwrap()
        };
        let cases = [
            (Some(ClientStatus::Running), true),
            (Some(ClientStatus::Running), true),
            (Some(ClientStatus::Failed), false),
            (Some(ClientStatus::Complete), false),
            (None, true),
            (Some(ClientStatus::Lost), false),
            (Some(ClientStatus::Pending), true),
        ];
        for (rev, (status, holds)) in (6..).zip(cases) {
            let value = status.map(report);
            w.apply(Part::AllocStatus, &key, value.as_deref(), rev);
            assert_eq!(w.snapshot.alloc("a1").is_some(), holds, "{status:?}");
        }
    }

    /// The determinism test's second rare divergence: whether the watch's echo of our own
    /// delete queued the job depended on which came first.
    #[test]
    fn a_deleted_allocation_touches_its_job_whichever_comes_first_our_delete_or_its_event() {
        let a = web_alloc();
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
    fn only_reports_that_can_change_a_decision_are_urgent() {
        use ClientStatus::*;
        let mut strings = Interner::default();
        let compact = |deployment: &str, previous: &str, strings: &mut Interner| {
            let a = Allocation {
                id: "a1".into(),
                deployment_id: deployment.into(),
                previous_alloc: previous.into(),
                ..Default::default()
            };
            CompactAlloc::new(a, Arc::from("a1"), strings)
        };
        let plain = compact("", "", &mut strings);
        let rolled = compact("web-v1-abc", "", &mut strings);
        let replacement = compact("", "a0", &mut strings);
        let st = |c: ClientStatus, healthy: Option<bool>| AllocStatus {
            client_status: c,
            healthy,
            ..Default::default()
        };
        let cases: Vec<(&CompactAlloc, Option<AllocStatus>, AllocStatus, bool)> = vec![
            // It runs: only the summary moves.
            (&plain, None, st(Running, None), false),
            (
                &plain,
                Some(st(Pending, None)),
                st(Running, Some(true)),
                false,
            ),
            (
                &plain,
                Some(st(Running, None)),
                st(Running, Some(true)),
                false,
            ),
            // It finished, failed, was lost or came back: a decision may follow.
            (&plain, Some(st(Running, None)), st(Failed, None), true),
            (&plain, Some(st(Running, None)), st(Complete, None), true),
            (&plain, None, st(Failed, None), true),
            (&plain, Some(st(Failed, None)), st(Lost, None), true),
            (&plain, Some(st(Unknown, None)), st(Running, None), true),
            (&plain, Some(st(Failed, None)), st(Failed, None), false),
            // A deployment or a migration reads its health and times: every change counts.
            (
                &rolled,
                Some(st(Running, None)),
                st(Running, Some(true)),
                true,
            ),
            (&rolled, None, st(Running, None), true),
            (&rolled, Some(st(Running, None)), st(Running, None), false),
            (
                &replacement,
                Some(st(Running, None)),
                st(Running, Some(true)),
                true,
            ),
        ];
        for (alloc, old, new, urgent) in cases {
            assert_eq!(
                status_change_is_urgent(Some(alloc), old.as_ref(), &new),
                urgent,
                "{old:?} -> {new:?} (deployment {:?}, previous {:?})",
                alloc.deployment_id(),
                alloc.previous_alloc()
            );
        }
        // No allocation known: no job to touch.
        assert!(!status_change_is_urgent(None, None, &st(Failed, None)));
    }

    /// A burst of reports that change no decision queues its job once, after
    /// [`STATUS_COALESCE`]; a failure queues it at once.
    #[tokio::test(start_paused = true)]
    async fn a_burst_of_running_reports_is_one_reconcile_later_and_a_failure_is_one_now() {
        use crate::runtime::queue::Backoff;
        use nomos_store::KeyValue;
        let world = Arc::new(Mutex::new(World::default()));
        let queue = Arc::new(WorkQueue::new(Backoff::default()));
        let web = ("default".to_string(), "web".to_string());
        for i in 0..3 {
            let a = Allocation {
                id: format!("a{i}"),
                namespace: "default".into(),
                job_id: "web".into(),
                node: "n1".into(),
                ..Default::default()
            };
            world.lock().unwrap().upsert_alloc(a, 5);
        }
        let mut sink = WorldSink {
            world: world.clone(),
            kind: Part::AllocStatus,
            queue: queue.clone(),
            coalesce: STATUS_COALESCE,
        };
        let event = |id: &str, c: ClientStatus, rev: i64| {
            let st = AllocStatus {
                alloc_id: id.into(),
                client_status: c,
                ..Default::default()
            };
            WatchEvent {
                kind: EventKind::Put,
                kv: KeyValue {
                    key: keys::alloc_status("n1", id).into_bytes(),
                    value: serde_json::to_vec(&st).unwrap(),
                    mod_revision: rev,
                    ..Default::default()
                },
                prev_kv: None,
            }
        };
        let running = (0..3)
            .map(|i| event(&format!("a{i}"), ClientStatus::Running, 10 + i))
            .collect();
        let start = tokio::time::Instant::now();
        sink.apply(running, 12);
        assert_eq!(queue.next().await, Some(web.clone()));
        assert_eq!(
            start.elapsed(),
            STATUS_COALESCE,
            "queued after the window, not at once"
        );
        queue.done(&web);
        assert!(queue.is_empty(), "once for the whole burst");
        let start = tokio::time::Instant::now();
        sink.apply(vec![event("a1", ClientStatus::Failed, 20)], 20);
        assert_eq!(queue.next().await, Some(web.clone()));
        assert_eq!(
            start.elapsed(),
            std::time::Duration::ZERO,
            "a failure is queued at once"
        );
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

        let a = web_alloc();
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
        assert_eq!(w.allocs["a1"].alloc.desired_status(), DesiredStatus::Stop);
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

    #[test]
    fn pending_evaluations_queue_their_job_and_a_late_event_cannot_reopen_a_finished_one() {
        let eval = |id: &str, status: &str| {
            serde_json::to_vec(&Evaluation {
                id: id.into(),
                namespace: "default".into(),
                job_id: "web".into(),
                status: status.into(),
                ..Default::default()
            })
            .unwrap()
        };
        let web = job_key_from("default", "web");
        let (p1, b1) = (keys::eval("default", "p1"), keys::eval("default", "b1"));
        let mut w = World::default();
        let queued = w.apply(Part::Evals, &p1, Some(&eval("p1", "pending")), 10);
        assert_eq!(
            queued,
            BTreeSet::from([web.clone()]),
            "a pending one asks for a reconcile"
        );
        let queued = w.apply(Part::Evals, &b1, Some(&eval("b1", "blocked")), 11);
        assert!(
            queued.is_empty(),
            "a blocked one waits for the cluster to change"
        );
        let (pending, blocked) = w.unfinished_evals(&web);
        assert_eq!(pending.len(), 1);
        assert_eq!(blocked.map(|b| b.id), Some("b1".to_string()));

        // The controller completes p1 at revision 15; the watch then delivers p1's pending
        // write (revision 10) late: it is ignored.
        w.apply(Part::Evals, &p1, Some(&eval("p1", "complete")), 15);
        w.eval_done.insert(p1.clone(), 15);
        assert!(w
            .apply(Part::Evals, &p1, Some(&eval("p1", "pending")), 10)
            .is_empty());
        assert!(w.unfinished_evals(&web).0.is_empty());

        // Deleted (collected) ones leave the index.
        w.apply(Part::Evals, &b1, None, 20);
        assert_eq!(w.unfinished_evals(&web), (Vec::new(), None));
        assert!(w.evals.is_empty());
    }
}
