//! Runtime objects: nodes, allocations and their observed state, job status and deployments.
//! Each lives under its own key (see `docs/keys.md`); spec and status never share a key.
//! Times are Unix milliseconds.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// `/nomos/nodes/<node>`: what an agent registers about its machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Node {
    /// The node name (unique in the cluster); allocations are keyed by it.
    pub name: String,
    /// A random id kept in the agent's data dir.
    pub id: String,
    pub datacenter: String,
    pub node_class: String,
    pub node_pool: String,
    /// Fingerprinted attributes, Nomad-style keys (`kernel.name`, `cpu.numcores`, `unique.hostname`, ...).
    pub attributes: IndexMap<String, String>,
    pub meta: IndexMap<String, String>,
    pub resources: NodeResources,
    /// Drivers that work here, with their fingerprinted attributes.
    pub drivers: IndexMap<String, DriverInfo>,
    /// Address other hosts reach this node's ports on.
    pub address: String,
    /// Where the agent serves its HTTP endpoints (logs, metrics).
    pub http_addr: String,
    pub registered_at_ms: i64,
    /// The agent's `host_volume`s by name. Left out of the record while empty, so nodes
    /// registered before it keep their shape.
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub host_volumes: IndexMap<String, HostVolume>,
}

/// A directory an agent publishes to jobs (`client { host_volume "name" { path, read_only } }`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct HostVolume {
    /// Absolute path of the directory on the node.
    pub path: String,
    /// Tasks may only read it; a group asking for write access is not placed here.
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct NodeResources {
    pub cpu_mhz: u32,
    pub cores: u32,
    pub memory_mb: u32,
    pub disk_mb: u32,
    /// Inclusive range of ports handed out as dynamic ports.
    pub min_dynamic_port: u16,
    pub max_dynamic_port: u16,
    /// Resources held back for the OS and the agent.
    pub reserved_cpu_mhz: u32,
    pub reserved_memory_mb: u32,
    pub reserved_ports: Vec<u16>,
    /// Devices found on the node (GPUs), grouped by vendor, type and model; left out when
    /// there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<NodeDeviceGroup>,
}

/// Identical devices of one node, grouped as Nomad groups them: by vendor, type and model
/// (`nvidia`/`gpu`/`Tesla T4`). A task's `device` block asks for instances of a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct NodeDeviceGroup {
    pub vendor: String,
    #[serde(rename = "type")]
    pub device_type: String,
    /// The model (Nomad's `Name`).
    pub name: String,
    pub instances: Vec<DeviceInstance>,
    /// Attributes shared by the instances, a value with its unit where it has one
    /// (`memory` = `16384 MiB`, `driver_version` = `550.54.15`).
    pub attributes: IndexMap<String, String>,
}

impl NodeDeviceGroup {
    /// `<vendor>/<type>/<model>`, the fullest name a `device` block can ask for.
    pub fn id(&self) -> String {
        format!("{}/{}/{}", self.vendor, self.device_type, self.name)
    }
}

/// One device: a GPU, named by the id its vendor gives it (an NVIDIA GPU's UUID).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct DeviceInstance {
    pub id: String,
    pub healthy: bool,
    /// Where it sits on the PCI bus (`00000000:3B:00.0`); empty when unknown.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pci_bus_id: String,
}

/// Device instances an allocation holds for one of its tasks (Nomad's
/// `AllocatedResources.Tasks[task].Devices[]`). An instance is held by one live allocation at
/// a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct AllocatedDevice {
    pub task: String,
    pub vendor: String,
    #[serde(rename = "type")]
    pub device_type: String,
    pub name: String,
    pub device_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct DriverInfo {
    pub detected: bool,
    pub healthy: bool,
    pub version: String,
    pub attributes: IndexMap<String, String>,
}

/// `/nomos/nodespec/<node>`: what users decide about a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct NodeSpec {
    /// `false` marks the node ineligible for new placements.
    pub eligible: Option<bool>,
    pub drain: Option<DrainSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct DrainSpec {
    /// Unix ms after which whatever remains is stopped; 0 for no deadline.
    pub deadline_ms: i64,
    pub ignore_system_jobs: bool,
    pub started_at_ms: i64,
}

/// What the cluster thinks of a node (derived by the node-lifecycle loop).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    #[default]
    Initializing,
    Ready,
    Disconnected,
    Down,
}

/// What the scheduler wants done with an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DesiredStatus {
    #[default]
    Run,
    Stop,
    Evict,
}

/// `/nomos/allocs/<node>/<alloc>`: a desired allocation, written by controllers. It names its job
/// version instead of copying the spec, so values stay small.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Allocation {
    pub id: String,
    pub namespace: String,
    pub job_id: String,
    pub job_version: u64,
    pub task_group: String,
    /// `<job>.<group>[<index>]`, as Nomad names allocations.
    pub name: String,
    pub index: u32,
    pub node: String,
    pub desired_status: DesiredStatus,
    pub desired_description: String,
    /// Host ports assigned at placement, by label.
    pub ports: Vec<AllocatedPort>,
    /// Device instances assigned at placement, per task; left out when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<AllocatedDevice>,
    pub deployment_id: String,
    /// Placed as a canary of its deployment (Nomad's `DeploymentStatus.Canary`): it runs beside
    /// the allocation at its index until the deployment is promoted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub canary: bool,
    /// Identity of the exact spec this allocation runs ([`crate::spec_hash`] of its job
    /// version): a job purged and created again starts at version 0 once more, so the version
    /// number alone does not name a spec. Agents run an allocation only with a version whose
    /// hash matches. Empty on allocations written before the field existed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub job_spec_hash: String,
    /// The allocation this one replaces (reschedule, migrate, destructive update).
    pub previous_alloc: String,
    /// The evaluation whose reconcile last wrote this allocation (Nomad's `EvalID`): the
    /// one that placed it, or that changed it since. Empty on allocations written before
    /// the field existed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub eval_id: String,
    pub reschedule_attempts: u32,
    /// When each reschedule of this allocation's lineage happened (ms since the epoch, oldest
    /// first, pruned to the reschedule policy's interval): the reschedule `attempts` are counted
    /// over these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reschedule_times_ms: Vec<i64>,
    pub created_at_ms: i64,
    pub modified_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct AllocatedPort {
    pub label: String,
    pub value: u16,
    pub to: u16,
    pub host_ip: String,
}

/// What the agent reports about an allocation as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ClientStatus {
    #[default]
    Pending,
    Running,
    Complete,
    Failed,
    Lost,
    Unknown,
}

impl ClientStatus {
    /// The name as serialized (`running`, `complete`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ClientStatus::Pending => "pending",
            ClientStatus::Running => "running",
            ClientStatus::Complete => "complete",
            ClientStatus::Failed => "failed",
            ClientStatus::Lost => "lost",
            ClientStatus::Unknown => "unknown",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ClientStatus::Complete | ClientStatus::Failed | ClientStatus::Lost
        )
    }
}

/// `/nomos/allocstatus/<node>/<alloc>`: observed state, written by the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct AllocStatus {
    pub alloc_id: String,
    pub client_status: ClientStatus,
    pub client_description: String,
    pub task_states: IndexMap<String, TaskState>,
    /// `None` until health is known; drives deployments.
    pub healthy: Option<bool>,
    pub modified_at_ms: i64,
    /// Results of the service checks the agent runs (http, tcp, script), by check name.
    pub checks: IndexMap<String, CheckResult>,
}

/// The latest result of one service check run by the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct CheckResult {
    /// `passing` or `critical`, as Consul and Nomad name them.
    pub status: String,
    pub output: String,
    pub checked_at_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TaskRunState {
    #[default]
    Pending,
    Running,
    Dead,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct TaskState {
    pub state: TaskRunState,
    pub failed: bool,
    pub restarts: u32,
    pub exit_code: Option<i32>,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    /// Newest last; kept to a bounded number.
    pub events: Vec<TaskEvent>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct TaskEvent {
    pub time_ms: i64,
    /// Nomad's event types: `Received`, `Task Setup`, `Started`, `Terminated`, `Restarting`,
    /// `Killing`, `Killed`, `Driver Failure`, `Not Restarting`, `Downloading Artifacts`, ...
    #[serde(rename = "type")]
    pub event_type: String,
    pub message: String,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub oom_killed: bool,
}

/// `/nomos/jobstatus/<ns>/<job>`: written by controllers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct JobStatus {
    /// `pending`, `running` or `dead`, as Nomad shows it.
    pub status: String,
    /// The newest version accepted from the spec key.
    pub version: u64,
    /// mod_revision of the spec key that was last looked at.
    pub observed_revision: i64,
    /// The version the spec at `observed_revision` was accepted as. `version` may be newer (an
    /// `auto_revert` writes one); `nctl apply --wait` follows this one. `None` while the spec
    /// does not parse and before the field existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec_version: Option<u64>,
    /// Why the spec in the store could not be accepted; the last good version keeps running.
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    pub summary: IndexMap<String, GroupSummary>,
    /// Per group: why placements failed, if they did.
    pub placement_failures: IndexMap<String, String>,
    pub latest_deployment: String,
    pub stable_version: Option<u64>,
    pub periodic: Option<PeriodicStatus>,
    pub modified_at_ms: i64,
    /// The job's spec was deleted and its purge began (its allocations are stopped in the
    /// same write). A spec written before the purge ends starts a new job: the old versions,
    /// deployments and status are forgotten first, never run again.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub purging: bool,
    /// When each version was submitted, in Unix nanoseconds (Nomad's `SubmitTime`): the time
    /// of the register that wrote its spec (its pending evaluation's), or, for a spec written
    /// straight into the store or a revert, when the controller accepted it. Versions gone
    /// from the store leave it.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub submit_times_ns: BTreeMap<u64, i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct GroupSummary {
    pub queued: u32,
    pub starting: u32,
    pub running: u32,
    pub failed: u32,
    pub complete: u32,
    pub lost: u32,
    pub unknown: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct PeriodicStatus {
    pub next_launch_ms: Option<i64>,
    pub last_launch_ms: Option<i64>,
    pub last_success_ms: Option<i64>,
    pub last_failure_ms: Option<i64>,
    pub skipped_overlaps: u64,
}

/// `/nomos/deployments/<ns>/<job>/<id>`: a rollout of one job version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Deployment {
    pub id: String,
    pub namespace: String,
    pub job_id: String,
    pub job_version: u64,
    /// [`crate::spec_hash`] of the version it rolls out: a job purged and created again reuses
    /// version numbers, and its new versions must not take over the old job's deployments.
    /// Empty on deployments written before the field existed.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub job_spec_hash: String,
    pub status: DeploymentState,
    /// Nomad's wording ([`deployment_status`] has the descriptions).
    pub status_description: String,
    pub groups: IndexMap<String, DeploymentGroup>,
    pub created_at_ms: i64,
    pub modified_at_ms: i64,
    /// Health set by a user (`/v1/deployment/allocation-health/{id}`, Nomad's manual health
    /// for `health_check = "manual"`): allocation id -> healthy. It wins over the agent's
    /// verdict and the time rule while the deployment runs.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub manual_health: std::collections::BTreeMap<String, bool>,
}

impl Deployment {
    /// Whether this deployment rolls out this version of the job (the number, and the spec
    /// when the deployment names one).
    pub fn rolls_out(&self, version: u64, spec_hash: &str) -> bool {
        self.job_version == version
            && (self.job_spec_hash.is_empty() || self.job_spec_hash == spec_hash)
    }

    /// Running or paused: the rollout is not over.
    pub fn is_active(&self) -> bool {
        self.status == deployment_status::RUNNING || self.status == deployment_status::PAUSED
    }

    /// Some group has unpromoted canaries that are all placed and healthy, and waits for a
    /// user's promotion (`auto_promote` off).
    pub fn waits_for_promotion(&self) -> bool {
        self.is_active()
            && self
                .groups
                .values()
                .any(DeploymentGroup::waits_for_promotion)
    }
}

/// A deployment's status words and Nomad's descriptions of them.
/// Where a deployment stands (stored as Nomad names it: `running`, `paused`, `successful`,
/// `failed`, `cancelled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DeploymentState {
    #[default]
    Running,
    Paused,
    Successful,
    Failed,
    Cancelled,
}

impl DeploymentState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentState::Running => "running",
            DeploymentState::Paused => "paused",
            DeploymentState::Successful => "successful",
            DeploymentState::Failed => "failed",
            DeploymentState::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for DeploymentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub mod deployment_status {
    use super::DeploymentState;

    pub const RUNNING: DeploymentState = DeploymentState::Running;
    pub const PAUSED: DeploymentState = DeploymentState::Paused;
    pub const SUCCESSFUL: DeploymentState = DeploymentState::Successful;
    pub const FAILED: DeploymentState = DeploymentState::Failed;
    pub const CANCELLED: DeploymentState = DeploymentState::Cancelled;

    pub const DESC_RUNNING: &str = "Deployment is running";
    pub const DESC_NEEDS_PROMOTION: &str = "Deployment is running but requires manual promotion";
    pub const DESC_AUTO_PROMOTION: &str = "Deployment is running pending automatic promotion";
    pub const DESC_PAUSED: &str = "Deployment is paused";
    pub const DESC_SUCCESSFUL: &str = "Deployment completed successfully";
    pub const DESC_PROGRESS_DEADLINE: &str = "Failed due to progress deadline";
    pub const DESC_UNHEALTHY: &str = "Failed due to unhealthy allocations";
    pub const DESC_FAILED_BY_USER: &str = "Deployment marked as failed";
    pub const DESC_STOPPED_JOB: &str = "Cancelled because job is stopped";
    pub const DESC_NEWER_JOB: &str = "Cancelled due to newer version of job";

    /// A failure description with the version `auto_revert` rolls back to.
    pub fn rolling_back(description: &str, version: u64) -> String {
        format!("{description} - rolling back to job version {version}")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct DeploymentGroup {
    pub desired_total: u32,
    pub desired_canaries: u32,
    /// Ids of the canaries placed for this deployment.
    pub placed_canaries: Vec<String>,
    pub promoted: bool,
    /// The group's `update` settings when the deployment started.
    pub auto_revert: bool,
    pub auto_promote: bool,
    pub progress_deadline_ms: i64,
    /// Allocations of the new version placed, healthy and unhealthy.
    pub placed: u32,
    pub healthy: u32,
    pub unhealthy: u32,
    /// The deployment fails if no allocation becomes healthy before this (Unix ms; 0: none).
    pub require_progress_by_ms: i64,
}

impl DeploymentGroup {
    /// Canaries are asked for, all placed and healthy, and only a user's promotion is missing.
    pub fn waits_for_promotion(&self) -> bool {
        self.desired_canaries > 0
            && !self.promoted
            && !self.auto_promote
            && self.placed_canaries.len() as u32 >= self.desired_canaries
            && self.healthy >= self.desired_canaries
    }
}

/// The wall clock in Unix milliseconds, the unit of every time Nomos stores. (Decisions take
/// their time as an input; only the processes' edges read the clock.)
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Where a node's drain stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DrainState {
    #[default]
    Draining,
    /// Something on the node has nowhere to go.
    Blocked,
    Complete,
    Cancelled,
}

impl DrainState {
    pub fn as_str(self) -> &'static str {
        match self {
            DrainState::Draining => "draining",
            DrainState::Blocked => "blocked",
            DrainState::Complete => "complete",
            DrainState::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for DrainState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The drain loop's progress report for a node, at `/nomos/drainstatus/<node>` (what
/// `nctl node drain --wait` follows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct DrainStatus {
    pub state: DrainState,
    pub started_at_ms: i64,
    pub deadline_ms: i64,
    /// Allocations still on the node (desired to run, not finished).
    pub remaining: u32,
    /// Replacements placed and not yet healthy.
    pub migrating: u32,
    /// `<alloc id>: <why>` for allocations that cannot be placed elsewhere.
    pub nowhere_to_go: Vec<String>,
    pub updated_at_ms: i64,
}

/// The node-lifecycle loop's record of a node, at `/nomos/nodestatus/<node>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct NodeLifecycle {
    pub status: NodeStatus,
    /// When `status` last changed (Unix ms).
    pub since_ms: i64,
    /// When the heartbeat was found missing, while it is.
    pub disconnected_at_ms: Option<i64>,
    /// Allocations whose client status this loop overwrote, by id.
    pub marks: std::collections::BTreeMap<String, AllocMark>,
}

/// A client status set by the lifecycle loop on an allocation of an absent node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct AllocMark {
    /// What the agent had reported before.
    pub previous: ClientStatus,
    /// `unknown` or `lost`.
    pub marked: ClientStatus,
    pub lost_at_ms: Option<i64>,
    /// The node returned and the previous status was given back; the originals and their
    /// replacements are settled on the next pass.
    pub restored: bool,
}
