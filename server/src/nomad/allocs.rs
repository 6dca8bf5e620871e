//! Allocations in Nomad's shapes: `GET /v1/allocations` (`AllocationListStub`s; `resources=true`
//! adds `AllocatedResources`, `task_states=false` leaves `TaskStates` out), `GET
//! /v1/allocation/{id}` (an `Allocation`, with the job version it runs), `GET
//! /v1/node/{id}/allocations` (the node's `Allocation`s) and `GET /v1/allocation/{id}/services`.
//! An allocation is named by its ID or a unique prefix of it. The writes (stop, restart,
//! signal) are in [`super::alloc_writes`].
//!
//! Nomos's additions to the list: `job=` (a job ID) and `node=` (a node's name or ID) narrow it.
//! `EvalID` names the evaluation whose reconcile placed the allocation or last updated it;
//! `FollowupEvalID` is empty; `Metrics` is `null`. Lists are sorted by ID (Nomad sorts by creation unless a prefix is given).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Extension;
use indexmap::IndexMap;
use nomos_api::acl::check::CAP_READ_JOB;
use nomos_api::nomad_out::{job_to_nomad, JobMeta};
use nomos_api::{Allocation, Job, Node, TaskEvent, TaskState};
use nomos_store::keys;
use serde::{Deserialize, Serialize};

use super::blocking::{read_index, wait_for_change};
use super::nodes::CpuShares;
use super::query::QueryOptions;
use super::respond::Answer;
use super::shapes::{go_time, ms_to_ns, null_empty};
use crate::acl::Caller;
use crate::error::ServerError;
use crate::kv::{self, Entry};
use crate::reads::{alloc_rows, AllocRow};
use crate::services::RegistrationView;
use crate::AppState;

/// What an allocation answer depends on (blocking queries wake on any change under these).
pub const ALLOC_PREFIXES: &[&str] = &[
    keys::ALLOCS_PREFIX,
    keys::ALLOC_STATUS_PREFIX,
    keys::NODES_PREFIX,
];

/// One event of a task (Nomad's `TaskEvent`; its deprecated fields beyond these are left out).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskEventView {
    #[serde(rename = "Type")]
    pub event_type: String,
    /// Unix nanoseconds.
    pub time: i64,
    pub display_message: String,
    #[serde(with = "null_empty")]
    pub details: BTreeMap<String, String>,
    pub message: String,
    pub fails_task: bool,
    pub exit_code: i64,
    pub signal: i64,
}

/// A task's state (Nomad's `TaskState`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskStateView {
    /// `pending`, `running` or `dead`.
    pub state: String,
    pub failed: bool,
    pub restarts: u64,
    #[serde(with = "go_time")]
    pub last_restart: i64,
    #[serde(with = "go_time")]
    pub started_at: i64,
    #[serde(with = "go_time")]
    pub finished_at: i64,
    /// Oldest first.
    #[serde(with = "null_empty")]
    pub events: Vec<TaskEventView>,
}

/// The allocation's part in a deployment (Nomad's `AllocDeploymentStatus`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocDeploymentStatus {
    /// `null` until health is known.
    pub healthy: Option<bool>,
    #[serde(with = "go_time")]
    pub timestamp: i64,
    pub canary: bool,
    pub modify_index: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RescheduleEvent {
    /// Unix nanoseconds.
    pub reschedule_time: i64,
    #[serde(rename = "PrevAllocID")]
    pub prev_alloc_id: String,
    #[serde(rename = "PrevNodeID")]
    pub prev_node_id: String,
    /// Nanoseconds.
    pub delay: i64,
}

/// The reschedules of an allocation's lineage (Nomad's `RescheduleTracker`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RescheduleTracker {
    #[serde(with = "null_empty")]
    pub events: Vec<RescheduleEvent>,
    pub last_reschedule: String,
}

/// A host port assigned to the allocation (Nomad's `PortMapping`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortMapping {
    pub label: String,
    pub value: u16,
    pub to: u16,
    #[serde(rename = "HostIP")]
    pub host_ip: String,
}

/// A port of a network (Nomad's `Port`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortView {
    pub label: String,
    pub value: u16,
    pub to: u16,
    pub host_network: String,
}

/// A group network with its assigned ports (Nomad's `NetworkResource`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkView {
    pub mode: String,
    #[serde(rename = "IP")]
    pub ip: String,
    #[serde(rename = "MBits")]
    pub mbits: u32,
    #[serde(with = "null_empty")]
    pub reserved_ports: Vec<PortView>,
    #[serde(with = "null_empty")]
    pub dynamic_ports: Vec<PortView>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocatedMemory {
    #[serde(rename = "MemoryMB")]
    pub memory_mb: i64,
    #[serde(rename = "MemoryMaxMB")]
    pub memory_max_mb: i64,
}

/// One task's share (Nomad's `AllocatedTaskResources`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocatedTaskResources {
    pub cpu: CpuShares,
    pub memory: AllocatedMemory,
    #[serde(with = "null_empty")]
    pub networks: Vec<NetworkView>,
    #[serde(with = "null_empty")]
    pub devices: Vec<serde_json::Value>,
}

/// What the group's tasks share (Nomad's `AllocatedSharedResources`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocatedSharedResources {
    #[serde(rename = "DiskMB")]
    pub disk_mb: i64,
    #[serde(with = "null_empty")]
    pub networks: Vec<NetworkView>,
    #[serde(with = "null_empty")]
    pub ports: Vec<PortMapping>,
}

/// Nomad's `AllocatedResources`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocatedResources {
    #[serde(with = "null_empty")]
    pub tasks: BTreeMap<String, AllocatedTaskResources>,
    pub shared: AllocatedSharedResources,
}

/// Nomad's `DesiredTransition`: Nomos marks none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DesiredTransition {
    pub migrate: Option<bool>,
    pub reschedule: Option<bool>,
    pub force_reschedule: Option<bool>,
}

/// An allocation in a list (Nomad's `AllocationListStub`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocStub {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    pub name: String,
    pub namespace: String,
    #[serde(rename = "NodeID")]
    pub node_id: String,
    pub node_name: String,
    #[serde(rename = "JobID")]
    pub job_id: String,
    pub job_type: String,
    pub job_version: u64,
    pub task_group: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allocated_resources: Option<AllocatedResources>,
    pub desired_status: String,
    pub desired_description: String,
    pub client_status: String,
    pub client_description: String,
    #[serde(with = "null_empty")]
    pub task_states: IndexMap<String, TaskStateView>,
    pub deployment_status: Option<AllocDeploymentStatus>,
    #[serde(rename = "FollowupEvalID")]
    pub followup_eval_id: String,
    pub next_allocation: String,
    pub reschedule_tracker: Option<RescheduleTracker>,
    #[serde(with = "null_empty")]
    pub preempted_allocations: Vec<String>,
    pub preempted_by_allocation: String,
    pub create_index: i64,
    pub modify_index: i64,
    /// Unix nanoseconds.
    pub create_time: i64,
    pub modify_time: i64,
}

impl AllocStub {
    /// Whether the allocation's agent has reported on it (a task state or a status past
    /// `pending`).
    pub fn reported(&self) -> bool {
        self.client_status != "pending" || !self.task_states.is_empty()
    }

    /// Whether the client status is final (`complete`, `failed` or `lost`).
    pub fn is_terminal(&self) -> bool {
        matches!(self.client_status.as_str(), "complete" | "failed" | "lost")
    }

    /// `DeploymentStatus.Healthy`.
    pub fn healthy(&self) -> Option<bool> {
        self.deployment_status.as_ref().and_then(|d| d.healthy)
    }
}

/// One allocation, whole (Nomad's `Allocation`): the stub's fields and these.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocDetail {
    #[serde(flatten)]
    pub stub: AllocStub,
    /// The job version the allocation runs, as `GET /v1/job/{id}` writes a job.
    pub job: Option<serde_json::Value>,
    pub metrics: Option<serde_json::Value>,
    pub desired_transition: DesiredTransition,
    #[serde(rename = "DeploymentID")]
    pub deployment_id: String,
    pub previous_allocation: String,
    pub alloc_modify_index: i64,
}

/// A job version: namespace, job ID, version.
type JobKey = (String, String, u64);
/// A stored job version with its key's create and modify revisions.
type StoredJob = (Arc<Job>, i64, i64);

/// What converting allocations looks up beside each one: node IDs by name, the allocation
/// that replaced each, and the job versions they run.
#[derive(Default)]
pub struct Lookup {
    node_ids: HashMap<String, String>,
    next: HashMap<String, String>,
    jobs: HashMap<JobKey, Option<StoredJob>>,
}

/// Which optional parts a conversion writes.
#[derive(Debug, Clone, Copy)]
pub struct Parts {
    pub resources: bool,
    pub task_states: bool,
}

/// One allocation by ID or unique prefix.
pub fn find_row<'a>(rows: &'a [AllocRow], id: &str) -> Result<&'a AllocRow, ServerError> {
    kv::resolve_prefix(rows, id, "allocation", |r| r.alloc.id.as_str())
}

impl Lookup {
    /// Node IDs and replacements for `rows`.
    pub async fn new(st: &AppState, rows: &[AllocRow]) -> Result<Lookup, ServerError> {
        let nodes: Vec<Entry<Node>> = kv::list_json(st.store.as_ref(), keys::NODES_PREFIX).await?;
        Ok(Lookup {
            node_ids: nodes
                .into_iter()
                .map(|e| (e.value.name, e.value.id))
                .collect(),
            next: rows
                .iter()
                .filter(|r| !r.alloc.previous_alloc.is_empty())
                .map(|r| (r.alloc.previous_alloc.clone(), r.alloc.id.clone()))
                .collect(),
            jobs: HashMap::new(),
        })
    }

    /// Reads the job versions `rows` run, once each.
    pub async fn load_jobs(&mut self, st: &AppState, rows: &[AllocRow]) -> Result<(), ServerError> {
        for r in rows {
            let a = &r.alloc;
            let key = (a.namespace.clone(), a.job_id.clone(), a.job_version);
            if self.jobs.contains_key(&key) {
                continue;
            }
            let stored = keys::job_version(&a.namespace, &a.job_id, a.job_version);
            let found = kv::get_json::<serde_json::Value>(st.store.as_ref(), &stored)
                .await?
                .and_then(|e| {
                    let job = crate::specs::version_job(&e.value)?;
                    Some((Arc::new(job), e.create_revision, e.mod_revision))
                });
            self.jobs.insert(key, found);
        }
        Ok(())
    }

    fn job(&self, a: &Allocation) -> Option<&StoredJob> {
        self.jobs
            .get(&(a.namespace.clone(), a.job_id.clone(), a.job_version))?
            .as_ref()
    }
}

/// A serde enum as the word it serializes to.
fn word<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Event types after which a task does not run again on its own.
const FAILING_EVENTS: &[&str] = &[
    "Setup Failure",
    "Driver Failure",
    "Failed Validation",
    "Failed Artifact Download",
    "Not Restarting",
];

fn event_view(e: &TaskEvent) -> TaskEventView {
    let mut details = BTreeMap::new();
    if let Some(code) = e.exit_code {
        details.insert("exit_code".to_string(), code.to_string());
    }
    if let Some(sig) = e.signal {
        details.insert("signal".to_string(), sig.to_string());
    }
    if e.oom_killed {
        details.insert("oom_killed".to_string(), "true".to_string());
    }
    TaskEventView {
        event_type: e.event_type.clone(),
        time: ms_to_ns(e.time_ms),
        display_message: if e.message.is_empty() {
            e.event_type.clone()
        } else {
            e.message.clone()
        },
        details,
        message: e.message.clone(),
        fails_task: FAILING_EVENTS.contains(&e.event_type.as_str()),
        exit_code: e.exit_code.map_or(0, i64::from),
        signal: e.signal.map_or(0, i64::from),
    }
}

/// A task's state as Nomad writes it; `LastRestart` is the newest `Restarting` event.
pub fn task_state_view(ts: &TaskState) -> TaskStateView {
    let last_restart = ts
        .events
        .iter()
        .rev()
        .find(|e| e.event_type == "Restarting")
        .map_or(0, |e| ms_to_ns(e.time_ms));
    TaskStateView {
        state: word(&ts.state),
        failed: ts.failed,
        restarts: u64::from(ts.restarts),
        last_restart,
        started_at: ms_to_ns(ts.started_at_ms),
        finished_at: ms_to_ns(ts.finished_at_ms),
        events: ts.events.iter().map(event_view).collect(),
    }
}

fn deployment_status(r: &AllocRow) -> Option<AllocDeploymentStatus> {
    let healthy = r.status.as_ref().and_then(|s| s.healthy);
    if r.alloc.deployment_id.is_empty() && healthy.is_none() && !r.alloc.canary {
        return None;
    }
    Some(AllocDeploymentStatus {
        healthy,
        timestamp: match (healthy, &r.status) {
            (Some(_), Some(s)) => ms_to_ns(s.modified_at_ms),
            _ => 0,
        },
        canary: r.alloc.canary,
        modify_index: r.modify_index,
    })
}

fn reschedule_tracker(a: &Allocation) -> Option<RescheduleTracker> {
    let n = a.reschedule_times_ms.len();
    if n == 0 {
        return None;
    }
    let events = a
        .reschedule_times_ms
        .iter()
        .enumerate()
        .map(|(i, t)| RescheduleEvent {
            reschedule_time: ms_to_ns(*t),
            prev_alloc_id: if i + 1 == n {
                a.previous_alloc.clone()
            } else {
                String::new()
            },
            ..Default::default()
        })
        .collect();
    Some(RescheduleTracker {
        events,
        last_reschedule: "ok".into(),
    })
}

/// The group's first network with the ports assigned to the allocation.
fn network_view(a: &Allocation, net: &nomos_api::job::Network) -> NetworkView {
    let mut view = NetworkView {
        mode: if net.mode.is_empty() {
            "host"
        } else {
            &net.mode
        }
        .to_string(),
        mbits: net.mbits,
        ..Default::default()
    };
    for p in &net.ports {
        let assigned = a.ports.iter().find(|x| x.label == p.label);
        if let Some(x) = assigned.filter(|x| !x.host_ip.is_empty()) {
            view.ip = x.host_ip.clone();
        }
        let port = PortView {
            label: p.label.clone(),
            value: assigned.map_or(p.static_port, |x| x.value),
            to: assigned.map_or(p.to, |x| x.to),
            host_network: if p.host_network.is_empty() {
                "default".into()
            } else {
                p.host_network.clone()
            },
        };
        if p.static_port != 0 {
            view.reserved_ports.push(port);
        } else {
            view.dynamic_ports.push(port);
        }
    }
    view
}

/// The resources the allocation holds: its tasks' from the job version it runs, and its
/// assigned ports.
pub fn allocated_resources(a: &Allocation, job: Option<&Job>) -> AllocatedResources {
    let group = job.and_then(|j| j.groups.iter().find(|g| g.name == a.task_group));
    let tasks = group
        .map(|g| {
            g.tasks
                .iter()
                .map(|t| {
                    let r = &t.resources;
                    // -1 (no limit) is reported as Nomad reports it.
                    let max = if r.memory_max_mb == 0 {
                        i64::from(r.memory_mb)
                    } else {
                        r.memory_max_mb
                    };
                    let res = AllocatedTaskResources {
                        cpu: CpuShares {
                            cpu_shares: i64::from(r.cpu),
                        },
                        memory: AllocatedMemory {
                            memory_mb: i64::from(r.memory_mb),
                            memory_max_mb: max,
                        },
                        devices: task_devices(a, &t.name),
                        ..Default::default()
                    };
                    (t.name.clone(), res)
                })
                .collect()
        })
        .unwrap_or_default();
    let shared = AllocatedSharedResources {
        disk_mb: group
            .and_then(|g| g.ephemeral_disk.as_ref())
            .map_or(0, |d| i64::from(d.size_mb)),
        networks: group
            .map(|g| g.networks.iter().map(|n| network_view(a, n)).collect())
            .unwrap_or_default(),
        ports: a
            .ports
            .iter()
            .map(|p| PortMapping {
                label: p.label.clone(),
                value: p.value,
                to: p.to,
                host_ip: p.host_ip.clone(),
            })
            .collect(),
    };
    AllocatedResources { tasks, shared }
}

/// The device instances `a` holds for `task`, as Nomad's `AllocatedDeviceResource`s.
fn task_devices(a: &Allocation, task: &str) -> Vec<serde_json::Value> {
    a.devices
        .iter()
        .filter(|d| d.task == task)
        .map(|d| {
            serde_json::json!({
                "Vendor": d.vendor,
                "Type": d.device_type,
                "Name": d.name,
                "DeviceIDs": d.device_ids,
            })
        })
        .collect()
}

/// An allocation as a list stub.
pub fn stub(r: &AllocRow, look: &Lookup, parts: Parts) -> AllocStub {
    let a = &r.alloc;
    let job = look.job(a).map(|(j, _, _)| j.as_ref());
    let status = r.status.clone().unwrap_or_default();
    let task_states = if parts.task_states {
        status
            .task_states
            .iter()
            .map(|(name, ts)| (name.clone(), task_state_view(ts)))
            .collect()
    } else {
        IndexMap::new()
    };
    AllocStub {
        id: a.id.clone(),
        eval_id: a.eval_id.clone(),
        name: a.name.clone(),
        namespace: a.namespace.clone(),
        node_id: look.node_ids.get(&a.node).cloned().unwrap_or_default(),
        node_name: a.node.clone(),
        job_id: a.job_id.clone(),
        job_type: job.map(|j| word(&j.job_type)).unwrap_or_default(),
        job_version: a.job_version,
        task_group: a.task_group.clone(),
        allocated_resources: parts.resources.then(|| allocated_resources(a, job)),
        desired_status: word(&a.desired_status),
        desired_description: a.desired_description.clone(),
        client_status: word(&status.client_status),
        client_description: status.client_description.clone(),
        task_states,
        deployment_status: deployment_status(r),
        next_allocation: look.next.get(&a.id).cloned().unwrap_or_default(),
        reschedule_tracker: reschedule_tracker(a),
        create_index: r.create_index,
        modify_index: r.modify_index,
        create_time: ms_to_ns(a.created_at_ms),
        modify_time: ms_to_ns(a.modified_at_ms.max(status.modified_at_ms)),
        ..Default::default()
    }
}

/// An allocation, whole, with the job version it runs in Nomad's job shape.
pub fn detail(r: &AllocRow, look: &Lookup) -> AllocDetail {
    let parts = Parts {
        resources: true,
        task_states: true,
    };
    let job = look.job(&r.alloc).map(|(job, create, modify)| {
        let meta = JobMeta {
            version: r.alloc.job_version,
            create_index: u64::try_from(*create).unwrap_or(0),
            modify_index: u64::try_from(*modify).unwrap_or(0),
            job_modify_index: u64::try_from(*modify).unwrap_or(0),
            stop: job.stop,
            ..Default::default()
        };
        job_to_nomad(job, &meta)
    });
    AllocDetail {
        stub: stub(r, look, parts),
        job,
        metrics: None,
        desired_transition: DesiredTransition::default(),
        deployment_id: r.alloc.deployment_id.clone(),
        previous_allocation: r.alloc.previous_alloc.clone(),
        alloc_modify_index: r.alloc_modify_index,
    }
}

/// The allocations a job answers with (`GET /v1/job/{id}/allocations`), as stubs with their
/// task states.
pub async fn job_stubs(st: &AppState, ns: &str, job: &str) -> Result<Vec<AllocStub>, ServerError> {
    let mut rows = alloc_rows(st).await?;
    rows.retain(|r| r.alloc.namespace == ns && r.alloc.job_id == job);
    let mut look = Lookup::new(st, &rows).await?;
    look.load_jobs(st, &rows).await?;
    let parts = Parts {
        resources: false,
        task_states: true,
    };
    let mut stubs: Vec<AllocStub> = rows.iter().map(|r| stub(r, &look, parts)).collect();
    stubs.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(stubs)
}

/// `GET /v1/allocations`.
pub async fn list_allocs(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    q: QueryOptions,
) -> Result<Answer<Vec<AllocStub>>, ServerError> {
    wait_for_change(&st, &q, ALLOC_PREFIXES).await?;
    let index = read_index(&st).await?;
    let parts = Parts {
        resources: q.flag("resources", false),
        task_states: q.flag("task_states", true),
    };
    let wanted = |name: &str| q.param(name).filter(|v| !v.is_empty());
    let (job, node) = (wanted("job"), wanted("node"));
    let mut rows = alloc_rows(&st).await?;
    let mut look = Lookup::new(&st, &rows).await?;
    rows.retain(|r| {
        let a = &r.alloc;
        q.namespace.covers(&a.namespace)
            && caller.acl.allows_namespace(&a.namespace, CAP_READ_JOB)
            && job.is_none_or(|j| a.job_id == j)
            && node
                .is_none_or(|n| a.node == n || look.node_ids.get(&a.node).is_some_and(|id| id == n))
    });
    look.load_jobs(&st, &rows).await?;
    let stubs = rows.iter().map(|r| stub(r, &look, parts)).collect();
    Ok(Answer::paged(stubs, index, &q, |a| a.id.clone()))
}

/// `GET /v1/allocation/{id}`.
pub async fn get_one(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: QueryOptions,
) -> Result<Answer<AllocDetail>, ServerError> {
    wait_for_change(&st, &q, ALLOC_PREFIXES).await?;
    let index = read_index(&st).await?;
    let rows = alloc_rows(&st).await?;
    let row = find_row(&rows, &id)?;
    let mut look = Lookup::new(&st, &rows).await?;
    look.load_jobs(&st, std::slice::from_ref(row)).await?;
    Ok(Answer::new(detail(row, &look), index, &q))
}

/// `GET /v1/node/{id}/allocations`: every allocation placed on the node, whole, in the
/// namespaces the caller may read.
pub async fn node_allocs(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    q: QueryOptions,
) -> Result<Answer<Vec<AllocDetail>>, ServerError> {
    wait_for_change(&st, &q, ALLOC_PREFIXES).await?;
    let index = read_index(&st).await?;
    let node = crate::reads::get_node(&st, &name).await?;
    let mut rows = alloc_rows(&st).await?;
    let mut look = Lookup::new(&st, &rows).await?;
    rows.retain(|r| {
        r.alloc.node == node.node.name
            && caller
                .acl
                .allows_namespace(&r.alloc.namespace, CAP_READ_JOB)
    });
    look.load_jobs(&st, &rows).await?;
    let mut all: Vec<AllocDetail> = rows.iter().map(|r| detail(r, &look)).collect();
    all.sort_by(|a, b| a.stub.id.cmp(&b.stub.id));
    Ok(Answer::new(all, index, &q))
}

/// `GET /v1/allocation/{id}/services`: the service registrations of the allocation.
pub async fn services(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: QueryOptions,
) -> Result<Answer<Vec<RegistrationView>>, ServerError> {
    wait_for_change(&st, &q, &[keys::SERVICES_PREFIX, keys::ALLOCS_PREFIX]).await?;
    let index = read_index(&st).await?;
    let rows = alloc_rows(&st).await?;
    let a = &find_row(&rows, &id)?.alloc;
    let regs = crate::services::alloc_registrations(&st, &a.namespace, &a.id).await?;
    Ok(Answer::new(regs, index, &q))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nomos_api::{AllocatedPort, TaskRunState};

    #[test]
    fn task_states_are_written_in_nomads_units() {
        let ts = TaskState {
            state: TaskRunState::Running,
            restarts: 2,
            started_at_ms: 1_700_000_000_000,
            events: vec![
                TaskEvent {
                    time_ms: 1_699_999_999_000,
                    event_type: "Restarting".into(),
                    ..Default::default()
                },
                TaskEvent {
                    time_ms: 1_700_000_000_000,
                    event_type: "Terminated".into(),
                    exit_code: Some(3),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let v = serde_json::to_value(task_state_view(&ts)).unwrap();
        assert_eq!(v["State"], "running");
        assert_eq!(v["Restarts"], 2);
        assert_eq!(v["StartedAt"], "2023-11-14T22:13:20Z");
        assert_eq!(v["FinishedAt"], super::super::shapes::GO_ZERO_TIME);
        assert_eq!(v["LastRestart"], "2023-11-14T22:13:19Z");
        assert_eq!(v["Events"][1]["Time"], 1_700_000_000_000_000_000i64);
        assert_eq!(v["Events"][1]["ExitCode"], 3);
        assert_eq!(v["Events"][1]["Details"]["exit_code"], "3");
        assert_eq!(v["Events"][0]["Details"], serde_json::Value::Null);
    }

    #[test]
    fn allocated_resources_carry_the_tasks_and_the_assigned_ports() {
        let job = nomos_api::build::job("web").group("g", 1).build();
        let a = Allocation {
            task_group: "g".into(),
            ports: vec![AllocatedPort {
                label: "http".into(),
                value: 20001,
                to: 8080,
                host_ip: "10.0.0.1".into(),
            }],
            ..Default::default()
        };
        let r = allocated_resources(&a, Some(&job));
        assert!(r.tasks.contains_key("t"));
        assert_eq!(r.shared.ports[0].value, 20001);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["Shared"]["Ports"][0]["HostIP"], "10.0.0.1");
        assert_eq!(v["Tasks"]["t"]["Cpu"]["CpuShares"], 100);
        assert_eq!(v["Tasks"]["t"]["Memory"]["MemoryMB"], 64);
    }
}
