//! One consistent read of everything the invariants look at: a single range over `/nomos/` at
//! one revision, decoded into typed maps. Values that do not decode (a garbage status written
//! by a fault) are kept as absent and counted, never a panic.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use nomos_api::eval::Evaluation;
use nomos_api::NodeLifecycle;
use nomos_api::{
    AllocStatus, Allocation, ClientStatus, Deployment, DesiredStatus, Job, JobStatus, Node,
    NodeSpec,
};
use nomos_store::{keys, KeySelector, RangeOptions, Store, StoreError};
use serde::de::DeserializeOwned;

pub use nomos_controllers::JobKey;

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub revision: i64,
    pub now_ms: i64,
    /// Raw spec values.
    pub specs: BTreeMap<JobKey, Vec<u8>>,
    pub versions: BTreeMap<JobKey, BTreeMap<u64, Arc<Job>>>,
    pub job_status: BTreeMap<JobKey, Arc<JobStatus>>,
    pub deployments: BTreeMap<JobKey, Vec<Deployment>>,
    pub allocs: BTreeMap<String, Arc<Allocation>>,
    pub alloc_status: BTreeMap<String, Arc<AllocStatus>>,
    pub nodes: BTreeMap<String, Node>,
    pub node_specs: BTreeMap<String, NodeSpec>,
    pub heartbeats: BTreeSet<String>,
    pub lifecycle: BTreeMap<String, NodeLifecycle>,
    /// Hash of each stored version's spec.
    pub version_hashes: BTreeMap<(JobKey, u64), String>,
    /// Nodes whose heartbeat just came back: their originals and the replacements placed
    /// while they were away both run until the controllers settle them (set by the harness).
    pub settling: BTreeSet<String>,
    /// Evaluations by ID (the jobs controller's records of its reconciles).
    pub evals: BTreeMap<String, Arc<Evaluation>>,
    /// Keys whose value did not decode.
    pub undecodable: Vec<String>,
}

/// Decoded values by key and mod revision, kept across snapshots: a run reads the whole store
/// after every action, and most keys have not changed since the last read.
#[derive(Default)]
pub struct DecodeCache {
    entries: HashMap<Vec<u8>, (i64, Decoded)>,
}

#[derive(Clone)]
enum Decoded {
    Version(Arc<Job>, String),
    JobStatus(Arc<JobStatus>),
    Deployment(Box<Deployment>),
    Alloc(Arc<Allocation>),
    AllocStatus(Arc<AllocStatus>),
    Node(Box<Node>),
    NodeSpec(NodeSpec),
    Lifecycle(NodeLifecycle),
    Eval(Arc<Evaluation>),
    Bad,
}

fn decode<T: DeserializeOwned>(value: &[u8], wrap: impl FnOnce(T) -> Decoded) -> Decoded {
    serde_json::from_slice(value).map_or(Decoded::Bad, wrap)
}

fn decode_kind(kind: &str, value: &[u8]) -> Decoded {
    match kind {
        "jobversions" => match serde_json::from_slice::<Job>(value) {
            Ok(j) => {
                let h = nomos_api::spec_hash(&j);
                Decoded::Version(Arc::new(j), h)
            }
            Err(_) => Decoded::Bad,
        },
        "jobstatus" => decode(value, |v| Decoded::JobStatus(Arc::new(v))),
        "deployments" => decode(value, |v| Decoded::Deployment(Box::new(v))),
        "allocs" => decode(value, |v| Decoded::Alloc(Arc::new(v))),
        "allocstatus" => decode(value, |v| Decoded::AllocStatus(Arc::new(v))),
        "nodes" => decode(value, |v| Decoded::Node(Box::new(v))),
        "nodespec" => decode(value, Decoded::NodeSpec),
        "nodestatus" => decode(value, Decoded::Lifecycle),
        "evals" => decode(value, |v| Decoded::Eval(Arc::new(v))),
        _ => Decoded::Bad,
    }
}

fn job_key(parts: &[&str]) -> Option<JobKey> {
    match parts {
        [ns, job, ..] => Some((ns.to_string(), job.to_string())),
        _ => None,
    }
}

impl Snapshot {
    pub async fn read(
        store: &dyn Store,
        now_ms: i64,
        cache: &mut DecodeCache,
    ) -> Result<Snapshot, StoreError> {
        let r = store
            .range(KeySelector::prefix(keys::ROOT), RangeOptions::default())
            .await?;
        let mut s = Snapshot {
            revision: r.revision,
            now_ms,
            ..Default::default()
        };
        let mut seen = std::collections::HashSet::new();
        for kv in r.kvs {
            let key = kv.key_str().into_owned();
            let rest = key.strip_prefix(keys::ROOT).unwrap_or(&key).to_string();
            let parts: Vec<&str> = rest.split('/').collect();
            match parts.as_slice() {
                ["jobs", ns, job] => {
                    s.specs
                        .insert((ns.to_string(), job.to_string()), kv.value.clone());
                    continue;
                }
                ["heartbeats", name] => {
                    s.heartbeats.insert(name.to_string());
                    continue;
                }
                _ => {}
            }
            let Some(kind) = parts.first().copied() else {
                continue;
            };
            seen.insert(kv.key.clone());
            let decoded = match cache.entries.get(&kv.key) {
                Some((rev, d)) if *rev == kv.mod_revision => d.clone(),
                _ => {
                    let d = decode_kind(kind, &kv.value);
                    cache
                        .entries
                        .insert(kv.key.clone(), (kv.mod_revision, d.clone()));
                    d
                }
            };
            s.add(&key, &parts, decoded);
        }
        cache.entries.retain(|k, _| seen.contains(k));
        for list in s.deployments.values_mut() {
            list.sort_by_key(|d| (d.job_version, d.created_at_ms));
        }
        Ok(s)
    }

    fn add(&mut self, key: &str, parts: &[&str], d: Decoded) {
        match (parts, d) {
            (["jobversions", ns, job, ver], Decoded::Version(j, h)) => {
                if let Ok(v) = ver.parse::<u64>() {
                    let k = (ns.to_string(), job.to_string());
                    self.version_hashes.insert((k.clone(), v), h);
                    self.versions.entry(k).or_default().insert(v, j);
                }
            }
            (["jobstatus", rest @ ..], Decoded::JobStatus(st)) => {
                if let Some(k) = job_key(rest) {
                    self.job_status.insert(k, st);
                }
            }
            (["deployments", rest @ ..], Decoded::Deployment(d)) => {
                if let Some(k) = job_key(rest) {
                    self.deployments.entry(k).or_default().push(*d);
                }
            }
            (["allocs", _, id], Decoded::Alloc(a)) => {
                self.allocs.insert(id.to_string(), a);
            }
            (["allocstatus", _, id], Decoded::AllocStatus(st)) => {
                self.alloc_status.insert(id.to_string(), st);
            }
            (["nodes", name], Decoded::Node(n)) => {
                self.nodes.insert(name.to_string(), *n);
            }
            (["nodespec", name], Decoded::NodeSpec(n)) => {
                self.node_specs.insert(name.to_string(), n);
            }
            (["nodestatus", name], Decoded::Lifecycle(n)) => {
                self.lifecycle.insert(name.to_string(), n);
            }
            (["evals", _, id], Decoded::Eval(e)) => {
                self.evals.insert(id.to_string(), e);
            }
            (_, Decoded::Bad) => self.undecodable.push(key.to_string()),
            _ => {}
        }
    }

    /// [`nomos_api::spec_hash`] of a stored version.
    pub fn version_hash(&self, job: &JobKey, version: u64) -> Option<&str> {
        self.version_hashes
            .get(&(job.clone(), version))
            .map(String::as_str)
    }

    pub fn client_status(&self, alloc_id: &str) -> Option<ClientStatus> {
        self.alloc_status.get(alloc_id).map(|s| s.client_status)
    }

    /// Desired to run and not finished (a pending allocation counts: it will run).
    pub fn is_live(&self, a: &Allocation) -> bool {
        a.desired_status == DesiredStatus::Run
            && !self
                .client_status(&a.id)
                .is_some_and(ClientStatus::is_terminal)
    }

    /// Running with the agent's healthy verdict.
    pub fn is_healthy(&self, a: &Allocation) -> bool {
        a.desired_status == DesiredStatus::Run
            && self.alloc_status.get(&a.id).is_some_and(|s| {
                s.client_status == ClientStatus::Running && s.healthy == Some(true)
            })
    }

    pub fn allocs_of<'a>(&'a self, job: &'a JobKey) -> impl Iterator<Item = &'a Allocation> + 'a {
        self.allocs
            .values()
            .map(|a| &**a)
            .filter(move |a| a.namespace == job.0 && a.job_id == job.1)
    }

    /// The newest accepted version of a job.
    pub fn newest(&self, job: &JobKey) -> Option<(u64, &Job)> {
        self.versions
            .get(job)
            .and_then(|v| v.last_key_value())
            .map(|(v, j)| (*v, &**j))
    }

    /// The deployment of the newest version, if any.
    pub fn current_deployment(&self, job: &JobKey) -> Option<&Deployment> {
        let (v, _) = self.newest(job)?;
        self.deployments
            .get(job)?
            .iter()
            .rev()
            .find(|d| d.job_version == v)
    }

    pub fn deployment(&self, job: &JobKey, id: &str) -> Option<&Deployment> {
        self.deployments.get(job)?.iter().find(|d| d.id == id)
    }

    /// Whether the node's agent is connected (heartbeat present) and registered.
    pub fn node_up(&self, node: &str) -> bool {
        self.heartbeats.contains(node) && self.nodes.contains_key(node)
    }

    pub fn draining(&self, node: &str) -> bool {
        self.node_specs.get(node).is_some_and(|s| s.drain.is_some())
    }
}
