//! One consistent read of everything the invariants look at: a single range over `/nomos/` at
//! one revision, decoded into typed maps. Values that do not decode (a garbage status written
//! by a fault) are kept as absent and counted, never a panic.

use std::collections::{BTreeMap, BTreeSet};

use nomos_api::{
    AllocStatus, Allocation, ClientStatus, Deployment, DesiredStatus, Job, JobStatus, Node,
    NodeSpec,
};
use nomos_controllers::nodes::NodeLifecycle;
use nomos_store::{keys, KeySelector, RangeOptions, Store, StoreError};
use serde::de::DeserializeOwned;

/// `(namespace, job)`.
pub type JobKey = (String, String);

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub revision: i64,
    pub now_ms: i64,
    /// Raw spec values.
    pub specs: BTreeMap<JobKey, Vec<u8>>,
    pub versions: BTreeMap<JobKey, BTreeMap<u64, Job>>,
    pub job_status: BTreeMap<JobKey, JobStatus>,
    pub deployments: BTreeMap<JobKey, Vec<Deployment>>,
    pub allocs: BTreeMap<String, Allocation>,
    pub alloc_status: BTreeMap<String, AllocStatus>,
    pub nodes: BTreeMap<String, Node>,
    pub node_specs: BTreeMap<String, NodeSpec>,
    pub heartbeats: BTreeSet<String>,
    pub lifecycle: BTreeMap<String, NodeLifecycle>,
    /// Keys whose value did not decode.
    pub undecodable: Vec<String>,
}

fn decode<T: DeserializeOwned>(key: &str, value: &[u8], bad: &mut Vec<String>) -> Option<T> {
    match serde_json::from_slice(value) {
        Ok(v) => Some(v),
        Err(_) => {
            bad.push(key.to_string());
            None
        }
    }
}

fn job_key(parts: &[&str]) -> Option<JobKey> {
    match parts {
        [ns, job, ..] => Some((ns.to_string(), job.to_string())),
        _ => None,
    }
}

impl Snapshot {
    pub async fn read(store: &dyn Store, now_ms: i64) -> Result<Snapshot, StoreError> {
        let r = store
            .range(KeySelector::prefix(keys::ROOT), RangeOptions::default())
            .await?;
        let mut s = Snapshot {
            revision: r.revision,
            now_ms,
            ..Default::default()
        };
        for kv in r.kvs {
            let key = kv.key_str().into_owned();
            let rest = key.strip_prefix(keys::ROOT).unwrap_or(&key);
            let parts: Vec<&str> = rest.split('/').collect();
            let bad = &mut s.undecodable;
            match parts.as_slice() {
                ["jobs", ns, job] => {
                    s.specs
                        .insert((ns.to_string(), job.to_string()), kv.value.clone());
                }
                ["jobversions", ns, job, ver] => {
                    if let (Some(j), Ok(v)) = (decode::<Job>(&key, &kv.value, bad), ver.parse()) {
                        s.versions
                            .entry((ns.to_string(), job.to_string()))
                            .or_default()
                            .insert(v, j);
                    }
                }
                ["jobstatus", rest @ ..] => {
                    if let (Some(k), Some(st)) = (job_key(rest), decode(&key, &kv.value, bad)) {
                        s.job_status.insert(k, st);
                    }
                }
                ["deployments", rest @ ..] => {
                    if let (Some(k), Some(d)) = (job_key(rest), decode(&key, &kv.value, bad)) {
                        s.deployments.entry(k).or_default().push(d);
                    }
                }
                ["allocs", _node, id] => {
                    if let Some(a) = decode::<Allocation>(&key, &kv.value, bad) {
                        s.allocs.insert(id.to_string(), a);
                    }
                }
                ["allocstatus", _node, id] => {
                    if let Some(st) = decode::<AllocStatus>(&key, &kv.value, bad) {
                        s.alloc_status.insert(id.to_string(), st);
                    }
                }
                ["nodes", name] => {
                    if let Some(n) = decode(&key, &kv.value, bad) {
                        s.nodes.insert(name.to_string(), n);
                    }
                }
                ["nodespec", name] => {
                    if let Some(n) = decode(&key, &kv.value, bad) {
                        s.node_specs.insert(name.to_string(), n);
                    }
                }
                ["heartbeats", name] => {
                    s.heartbeats.insert(name.to_string());
                }
                ["nodestatus", name] => {
                    if let Some(n) = decode(&key, &kv.value, bad) {
                        s.lifecycle.insert(name.to_string(), n);
                    }
                }
                _ => {}
            }
        }
        for list in s.deployments.values_mut() {
            list.sort_by_key(|d| (d.job_version, d.created_at_ms));
        }
        Ok(s)
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
            .filter(move |a| a.namespace == job.0 && a.job_id == job.1)
    }

    /// The newest accepted version of a job.
    pub fn newest(&self, job: &JobKey) -> Option<(u64, &Job)> {
        self.versions
            .get(job)
            .and_then(|v| v.last_key_value())
            .map(|(v, j)| (*v, j))
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
