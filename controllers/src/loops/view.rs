//! A consistent read of the prefixes the system, periodic, drain, node-lifecycle and gc loops look
//! at: every prefix is read at one store revision, so a pass decides on one instant of the
//! cluster. Each value keeps its key's `mod_revision` so writes can compare on it.
//!
//! The loops re-read what they need on every pass (level-triggered, nothing lives only in
//! memory); a pass is triggered by a watch event, a timer the decision asked for, or a resync.

use std::collections::{BTreeMap, HashMap, HashSet};

use nomos_api::eval::Evaluation;
use nomos_api::namespace::{Namespace, QuotaSpec};
use nomos_api::service::ServiceRegistration;
use nomos_api::{
    AllocStatus, Allocation, ClientStatus, Deployment, DesiredStatus, Job, JobStatus, Node,
    NodeSpec,
};
use nomos_store::{keys, KeySelector, RangeOptions, Store};
use serde::de::DeserializeOwned;

use crate::observed::ObservedAlloc;
use crate::scheduler::{AllocUsage, ClusterSnapshot};
use crate::ControllerError;

/// The store prefixes the controllers read: each loop pass reads the ones it needs, the jobs
/// controller keeps a reflector on [`Part::JOBS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    Specs,
    Versions,
    JobStatus,
    Allocs,
    AllocStatus,
    Nodes,
    NodeSpecs,
    Heartbeats,
    NodeLifecycle,
    DrainStatus,
    Deployments,
    /// `/nomos/namespaces/`: which namespaces exist and their quota.
    Namespaces,
    /// `/nomos/quotas/`: quota specifications.
    Quotas,
    /// `/nomos/services/`: the service catalogue.
    Services,
    /// `/nomos/evals/`: evaluations.
    Evals,
    /// `/nomos/config/`: the cluster's settings (the stored scheduler configuration).
    Config,
    /// `/nomos/nodepools/`: node pools written as objects.
    NodePools,
    /// `/nomos/jobstability/`: versions marked stable or not by hand.
    Stability,
}

impl Part {
    /// What the jobs controller watches.
    pub const JOBS: [Part; 15] = [
        Part::Specs,
        Part::Versions,
        Part::Allocs,
        Part::AllocStatus,
        Part::Nodes,
        Part::NodeSpecs,
        Part::Heartbeats,
        Part::Deployments,
        Part::JobStatus,
        Part::Namespaces,
        Part::Quotas,
        Part::Evals,
        Part::Config,
        Part::NodePools,
        Part::Stability,
    ];

    pub fn prefix(self) -> &'static str {
        match self {
            Part::Specs => keys::JOBS_PREFIX,
            Part::Versions => keys::JOB_VERSIONS_PREFIX,
            Part::JobStatus => keys::JOB_STATUS_PREFIX,
            Part::Allocs => keys::ALLOCS_PREFIX,
            Part::AllocStatus => keys::ALLOC_STATUS_PREFIX,
            Part::Nodes => keys::NODES_PREFIX,
            Part::NodeSpecs => keys::NODE_SPECS_PREFIX,
            Part::Heartbeats => keys::HEARTBEATS_PREFIX,
            Part::NodeLifecycle => keys::NODE_STATUS_PREFIX,
            Part::DrainStatus => keys::DRAIN_STATUS_PREFIX,
            Part::Deployments => keys::DEPLOYMENTS_PREFIX,
            Part::Namespaces => keys::NAMESPACES_PREFIX,
            Part::Quotas => keys::QUOTAS_PREFIX,
            Part::Services => keys::SERVICES_PREFIX,
            Part::Evals => keys::EVALS_PREFIX,
            Part::Config => keys::CONFIG_PREFIX,
            Part::NodePools => keys::NODE_POOLS_PREFIX,
            Part::Stability => keys::JOB_STABILITY_PREFIX,
        }
    }

    /// The prefix's last segment (`jobs`, `allocstatus`, ...), for metrics labels and traces.
    pub fn name(self) -> &'static str {
        self.prefix()
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("")
    }
}

/// A decoded value with its key's mod revision.
#[derive(Debug, Clone, PartialEq)]
pub struct Rev<T> {
    pub value: T,
    pub mod_revision: i64,
}

pub use crate::JobKey;

/// One consistent read.
#[derive(Debug, Default)]
pub struct View {
    pub revision: i64,
    /// Spec keys: raw value and mod revision.
    pub specs: BTreeMap<JobKey, Rev<Vec<u8>>>,
    /// Accepted versions per job.
    pub versions: BTreeMap<JobKey, BTreeMap<u64, Job>>,
    pub job_status: BTreeMap<JobKey, Rev<JobStatus>>,
    pub allocs: BTreeMap<String, Rev<Allocation>>,
    pub alloc_status: HashMap<String, Rev<AllocStatus>>,
    pub nodes: BTreeMap<String, Node>,
    pub node_specs: HashMap<String, NodeSpec>,
    pub heartbeats: HashSet<String>,
    pub lifecycle: HashMap<String, Rev<crate::nodes::NodeLifecycle>>,
    pub drain_status: HashMap<String, Rev<crate::drain::DrainStatus>>,
    /// Deployments per job, by id.
    pub deployments: BTreeMap<JobKey, BTreeMap<String, Deployment>>,
    /// Namespaces written as objects, by name (`default` exists without one).
    pub namespaces: BTreeMap<String, Namespace>,
    /// Quota specifications by name.
    pub quotas: BTreeMap<String, QuotaSpec>,
    /// The service catalogue, by key.
    pub services: BTreeMap<String, Rev<ServiceRegistration>>,
    /// Evaluations, by key.
    pub evals: BTreeMap<String, Rev<Evaluation>>,
    /// The scheduler algorithms stored through the API (the cluster's and the pools').
    pub scheduling: crate::scheduler::stored::StoredScheduling,
    /// Versions marked stable or not by hand, per job.
    pub stability: BTreeMap<JobKey, nomos_api::settings::StabilityMarks>,
}

fn decode<T: DeserializeOwned>(
    key: &str,
    raw: &[u8],
    what: &'static str,
) -> Result<T, ControllerError> {
    serde_json::from_slice(raw).map_err(|e| ControllerError::Decode {
        key: key.to_string(),
        what,
        message: e.to_string(),
    })
}

impl View {
    /// Reads `parts` at one revision. Values that do not decode are skipped with a warning (an
    /// invalid value written by hand must not stop every loop).
    pub async fn read(store: &dyn Store, parts: &[Part]) -> Result<View, ControllerError> {
        let mut view = View::default();
        let mut at = 0i64;
        for part in parts {
            let resp = store
                .range(
                    KeySelector::prefix(part.prefix().as_bytes().to_vec()),
                    RangeOptions {
                        revision: at,
                        ..Default::default()
                    },
                )
                .await
                .map_err(ControllerError::store("range"))?;
            if at == 0 {
                at = resp.revision;
                view.revision = resp.revision;
            }
            for kv in resp.kvs {
                let Some(key) = kv.key_utf8_or_skip().map(str::to_string) else {
                    continue;
                };
                if let Err(e) = view.insert(*part, &key, &kv.value, kv.mod_revision) {
                    tracing::warn!(key = %key, error = %e, "skipping a value the loops cannot read");
                }
            }
        }
        Ok(view)
    }

    fn insert(
        &mut self,
        part: Part,
        key: &str,
        raw: &[u8],
        rev: i64,
    ) -> Result<(), ControllerError> {
        let Some(parts) = keys::parts(key, part.prefix()) else {
            return Ok(());
        };
        match (part, parts.as_slice()) {
            (Part::Specs, [ns, job]) => {
                self.specs.insert(
                    (ns.to_string(), job.to_string()),
                    Rev {
                        value: raw.to_vec(),
                        mod_revision: rev,
                    },
                );
            }
            (Part::Versions, [ns, job, ver]) => {
                if let Ok(v) = ver.parse::<u64>() {
                    let j: Job = decode(key, raw, "job version")?;
                    self.versions
                        .entry((ns.to_string(), job.to_string()))
                        .or_default()
                        .insert(v, j);
                }
            }
            (Part::JobStatus, [ns, job]) => {
                let s = decode(key, raw, "job status")?;
                self.job_status.insert(
                    (ns.to_string(), job.to_string()),
                    Rev {
                        value: s,
                        mod_revision: rev,
                    },
                );
            }
            (Part::Allocs, [_node, id]) => {
                let a: Allocation = decode(key, raw, "allocation")?;
                self.allocs.insert(
                    id.to_string(),
                    Rev {
                        value: a,
                        mod_revision: rev,
                    },
                );
            }
            (Part::AllocStatus, [_node, id]) => {
                let s = decode(key, raw, "allocation status")?;
                self.alloc_status.insert(
                    id.to_string(),
                    Rev {
                        value: s,
                        mod_revision: rev,
                    },
                );
            }
            (Part::Nodes, [name]) => {
                let mut n: Node = decode(key, raw, "node")?;
                if n.name.is_empty() {
                    n.name = name.to_string();
                }
                self.nodes.insert(name.to_string(), n);
            }
            (Part::NodeSpecs, [name]) => {
                self.node_specs
                    .insert(name.to_string(), decode(key, raw, "node spec")?);
            }
            (Part::Heartbeats, [name]) => {
                self.heartbeats.insert(name.to_string());
            }
            (Part::NodeLifecycle, [name]) => {
                let v = decode(key, raw, "node lifecycle")?;
                self.lifecycle.insert(
                    name.to_string(),
                    Rev {
                        value: v,
                        mod_revision: rev,
                    },
                );
            }
            (Part::DrainStatus, [name]) => {
                let v = decode(key, raw, "drain status")?;
                self.drain_status.insert(
                    name.to_string(),
                    Rev {
                        value: v,
                        mod_revision: rev,
                    },
                );
            }
            (Part::Namespaces, [name]) => {
                self.namespaces
                    .insert(name.to_string(), decode(key, raw, "namespace")?);
            }
            (Part::Quotas, [name]) => {
                self.quotas
                    .insert(name.to_string(), decode(key, raw, "quota")?);
            }
            (Part::Services, [_ns, _name, _id]) => {
                // A registration that does not decode is held as an empty one, which nothing
                // wants, so the services loop replaces or removes it.
                let v = decode(key, raw, "service registration");
                self.services.insert(
                    key.to_string(),
                    Rev {
                        value: v.as_ref().cloned().unwrap_or_default(),
                        mod_revision: rev,
                    },
                );
                v?;
            }
            (Part::Evals, [_ns, _id]) => {
                let e = decode(key, raw, "evaluation")?;
                self.evals.insert(
                    key.to_string(),
                    Rev {
                        value: e,
                        mod_revision: rev,
                    },
                );
            }
            (Part::Config | Part::NodePools, _) => {
                self.scheduling.apply(key, Some(raw));
            }
            (Part::Stability, [ns, job]) => {
                let marks = decode(key, raw, "stability marks")?;
                self.stability
                    .insert((ns.to_string(), job.to_string()), marks);
            }
            (Part::Deployments, [ns, job, id]) => {
                let d = decode(key, raw, "deployment")?;
                self.deployments
                    .entry((ns.to_string(), job.to_string()))
                    .or_default()
                    .insert(id.to_string(), d);
            }
            _ => {}
        }
        Ok(())
    }

    /// The newest accepted version of a job whose spec key still exists.
    pub fn current(&self, key: &JobKey) -> Option<(u64, &Job)> {
        if !self.specs.contains_key(key) {
            return None;
        }
        self.versions
            .get(key)
            .and_then(|v| v.last_key_value())
            .map(|(v, j)| (*v, j))
    }

    /// An allocation with what its agent reported.
    pub fn observe(&self, a: &Allocation) -> ObservedAlloc {
        ObservedAlloc {
            alloc: a.clone(),
            status: self.alloc_status.get(&a.id).map(|s| s.value.clone()),
        }
    }

    /// The allocations `keep` selects, with what their agents reported.
    pub fn observed_allocs(&self, keep: impl Fn(&Allocation) -> bool) -> Vec<ObservedAlloc> {
        self.allocs
            .values()
            .filter(|a| keep(&a.value))
            .map(|a| self.observe(&a.value))
            .collect()
    }

    /// Allocations that name a predecessor, by its id, with what their agents reported.
    pub fn replacements_by_previous(&self) -> HashMap<&str, Vec<ObservedAlloc>> {
        let mut out: HashMap<&str, Vec<ObservedAlloc>> = HashMap::new();
        for a in self.allocs.values() {
            if !a.value.previous_alloc.is_empty() {
                out.entry(a.value.previous_alloc.as_str())
                    .or_default()
                    .push(self.observe(&a.value));
            }
        }
        out
    }

    /// The job's allocations with what their agents reported.
    pub fn observed_allocs_of(&self, job: &JobKey) -> Vec<ObservedAlloc> {
        self.observed_allocs(|a| a.namespace == job.0 && a.job_id == job.1)
    }

    /// The job version an allocation names.
    pub fn job_of(&self, a: &Allocation) -> Option<&Job> {
        self.versions
            .get(&(a.namespace.clone(), a.job_id.clone()))
            .and_then(|v| v.get(&a.job_version))
    }

    pub fn client_status(&self, alloc: &str) -> Option<ClientStatus> {
        self.alloc_status.get(alloc).map(|s| s.value.client_status)
    }

    /// Whether an allocation still holds resources on its node.
    pub fn holds_resources(&self, a: &Allocation) -> bool {
        a.desired_status == DesiredStatus::Run
            && !self
                .client_status(&a.id)
                .is_some_and(ClientStatus::is_terminal)
    }

    /// The scheduler's snapshot: every node (ready when its heartbeat key exists) and the usage of
    /// every allocation that still holds resources.
    pub fn snapshot(&self) -> ClusterSnapshot {
        let mut snap = ClusterSnapshot::new();
        for (name, n) in &self.nodes {
            snap.upsert_node(
                n.clone(),
                self.node_specs.get(name),
                self.heartbeats.contains(name),
            );
        }
        for a in self.allocs.values().map(|r| &r.value) {
            if !self.holds_resources(a) {
                continue;
            }
            let group = self
                .job_of(a)
                .and_then(|j| j.groups.iter().find(|g| g.name == a.task_group));
            let per_core = snap.node(&a.node).map(|n| n.mhz_per_core()).unwrap_or(0);
            snap.add_alloc(AllocUsage::of(a, group, per_core));
        }
        for (ns, quota) in crate::scheduler::quota::namespace_quotas(&self.namespaces, &self.quotas)
        {
            snap.set_namespace_quota(&ns, Some(quota));
        }
        snap
    }

    /// Allocations on `node`.
    pub fn allocs_on<'a>(
        &'a self,
        node: &'a str,
    ) -> impl Iterator<Item = &'a Rev<Allocation>> + 'a {
        self.allocs.values().filter(move |a| a.value.node == node)
    }

    /// Every allocation grouped by node.
    pub fn allocs_by_node(&self) -> HashMap<&str, Vec<&Rev<Allocation>>> {
        let mut out: HashMap<&str, Vec<&Rev<Allocation>>> = HashMap::new();
        for a in self.allocs.values() {
            out.entry(a.value.node.as_str()).or_default().push(a);
        }
        out
    }

    /// Allocations whose `previous_alloc` is `id`.
    pub fn replacements_of<'a>(
        &'a self,
        id: &'a str,
    ) -> impl Iterator<Item = &'a Rev<Allocation>> + 'a {
        self.allocs
            .values()
            .filter(move |a| a.value.previous_alloc == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nomos_api::{Resources, Task, TaskGroup};
    use nomos_store::embedded::EmbeddedStore;
    use nomos_store::PutOptions;

    async fn put(store: &dyn Store, key: &str, value: Vec<u8>) {
        store
            .put(key.as_bytes().to_vec(), value, PutOptions::default())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_view_indexes_the_prefixes_and_skips_what_does_not_decode() {
        let store = EmbeddedStore::in_memory();
        let node = Node {
            name: "n1".into(),
            ..Default::default()
        };
        put(
            &store,
            &keys::node("n1"),
            serde_json::to_vec(&node).unwrap(),
        )
        .await;
        put(&store, &keys::heartbeat("n1"), b"{}".to_vec()).await;
        let job = Job {
            id: "web".into(),
            namespace: "default".into(),
            groups: vec![TaskGroup {
                name: "g".into(),
                tasks: vec![Task {
                    resources: Resources {
                        cpu: 300,
                        memory_mb: 128,
                        ..Default::default()
                    },
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        put(
            &store,
            &keys::job("default", "web"),
            b"job \"web\" {}".to_vec(),
        )
        .await;
        put(
            &store,
            &keys::job_version("default", "web", 0),
            serde_json::to_vec(&job).unwrap(),
        )
        .await;
        let a = Allocation {
            id: "a1".into(),
            namespace: "default".into(),
            job_id: "web".into(),
            task_group: "g".into(),
            node: "n1".into(),
            ..Default::default()
        };
        put(
            &store,
            &keys::alloc("n1", "a1"),
            serde_json::to_vec(&a).unwrap(),
        )
        .await;
        put(&store, &keys::alloc("n1", "bad"), b"not json".to_vec()).await;

        let view = View::read(
            &store,
            &[
                Part::Specs,
                Part::Versions,
                Part::Allocs,
                Part::Nodes,
                Part::Heartbeats,
            ],
        )
        .await
        .unwrap();
        assert_eq!(
            view.allocs.len(),
            1,
            "the undecodable allocation is skipped"
        );
        assert_eq!(
            view.current(&("default".into(), "web".into()))
                .map(|(v, _)| v),
            Some(0)
        );
        let snap = view.snapshot();
        let n1 = snap.node("n1").unwrap();
        assert!(n1.ready);
        assert_eq!((n1.used_cpu, n1.used_memory_mb), (300, 128));
        assert!(
            view.allocs["a1"].mod_revision > 0 && view.revision >= view.allocs["a1"].mod_revision
        );
    }
}
