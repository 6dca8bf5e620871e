//! The job specification: Job, TaskGroup, Task and the blocks inside them, in the canonical form
//! stored in `/nomos/jobs/...` (snake_case JSON, every default filled in by [`crate::defaults`]).
//!
//! Field names follow Nomad's job specification. Free-form maps (`meta`, `env`, driver `config`)
//! keep their insertion order.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// A free-form JSON value, used for driver `config` and for blocks Nomos keeps but does not act on.
pub type Value = serde_json::Value;

/// Kinds of job, as in Nomad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum JobType {
    #[default]
    Service,
    Batch,
    System,
    Sysbatch,
}

impl JobType {
    /// The name job files use (`service`, `batch`, `system`, `sysbatch`).
    pub fn as_str(self) -> &'static str {
        match self {
            JobType::Service => "service",
            JobType::Batch => "batch",
            JobType::System => "system",
            JobType::Sysbatch => "sysbatch",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Job {
    /// Unique within the namespace; the block label in HCL, `metadata.name` in manifests.
    pub id: String,
    /// Display name; defaults to `id`.
    pub name: String,
    pub namespace: String,
    pub region: String,
    pub datacenters: Vec<String>,
    pub node_pool: String,
    #[serde(rename = "type")]
    pub job_type: JobType,
    pub priority: i32,
    pub all_at_once: bool,
    pub meta: IndexMap<String, String>,
    /// Labels from a manifest's `metadata.labels`.
    pub labels: IndexMap<String, String>,
    pub constraints: Vec<Constraint>,
    pub affinities: Vec<Affinity>,
    pub spreads: Vec<Spread>,
    pub update: Option<UpdateStrategy>,
    pub periodic: Option<Periodic>,
    pub parameterized: Option<Parameterized>,
    pub reschedule: Option<ReschedulePolicy>,
    pub migrate: Option<MigrateStrategy>,
    pub groups: Vec<TaskGroup>,
    /// Whether the job was stopped by a user (`nctl stop`); a stopped job places nothing.
    pub stop: bool,
    /// Blocks Nomos recognises but does not act on yet (`vault`, `consul`, `ui`, ...), kept as given.
    pub ignored: IndexMap<String, Value>,
    /// Set on a job dispatched from a parameterized one ([`crate::dispatch`]); absent from
    /// the canonical JSON of every other job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dispatched: Option<Dispatched>,
}

/// The label a periodic job's children carry, naming their parent.
pub const PERIODIC_PARENT_LABEL: &str = "nomos/periodic-parent";

/// What a dispatched job was dispatched with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Dispatched {
    /// The parameterized job it was dispatched from.
    pub parent_id: String,
    /// The payload, base64 (standard alphabet, padded), as Nomad's JSON carries it.
    pub payload: String,
    /// The idempotency token it was dispatched with, if any.
    pub idempotency_token: String,
}

impl Job {
    /// The job this one was launched from: a dispatched job's parameterized parent, or a
    /// periodic child's parent.
    pub fn parent_id(&self) -> Option<&str> {
        match &self.dispatched {
            Some(d) => Some(d.parent_id.as_str()),
            None => self.labels.get(PERIODIC_PARENT_LABEL).map(String::as_str),
        }
    }

    /// The `update` block that applies to `group`: its own, else the job's.
    pub fn update_for<'a>(&'a self, group: &'a TaskGroup) -> Option<&'a UpdateStrategy> {
        group.update.as_ref().or(self.update.as_ref())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct TaskGroup {
    pub name: String,
    pub count: u32,
    pub constraints: Vec<Constraint>,
    pub affinities: Vec<Affinity>,
    pub spreads: Vec<Spread>,
    pub networks: Vec<Network>,
    pub services: Vec<Service>,
    pub restart: Option<RestartPolicy>,
    pub reschedule: Option<ReschedulePolicy>,
    pub migrate: Option<MigrateStrategy>,
    pub update: Option<UpdateStrategy>,
    pub disconnect: Option<Disconnect>,
    pub ephemeral_disk: Option<EphemeralDisk>,
    /// `volume "name" { ... }`: the host volumes the group needs, keyed by the name its tasks'
    /// `volume_mount`s use.
    pub volumes: IndexMap<String, VolumeRequest>,
    pub meta: IndexMap<String, String>,
    pub tasks: Vec<Task>,
    pub shutdown_delay_ns: u64,
    pub stop_after_client_disconnect_ns: Option<u64>,
    pub max_client_disconnect_ns: Option<u64>,
    /// Batch and sysbatch groups: the agent stops an allocation this long after it was
    /// created (Nomad's `max_run_duration`). Left out of the stored form while unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_run_duration_ns: Option<u64>,
    pub ignored: IndexMap<String, Value>,
}

impl TaskGroup {
    /// How many service checks the group declares (its own services' and its tasks'): the
    /// checks the agent runs and health waits on.
    pub fn check_count(&self) -> usize {
        self.services
            .iter()
            .chain(self.tasks.iter().flat_map(|t| t.services.iter()))
            .map(|s| s.checks.len())
            .sum()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Task {
    pub name: String,
    pub driver: String,
    /// Driver configuration, free-form; `${...}` kept as text for the agent to expand.
    pub config: IndexMap<String, Value>,
    pub env: IndexMap<String, String>,
    pub resources: Resources,
    pub artifacts: Vec<Artifact>,
    pub templates: Vec<Template>,
    /// Left out of the stored form while empty, so specs from before it keep their hash.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub identities: Vec<WorkloadIdentity>,
    pub lifecycle: Option<Lifecycle>,
    pub services: Vec<Service>,
    pub constraints: Vec<Constraint>,
    pub affinities: Vec<Affinity>,
    /// Nanoseconds between the kill signal and SIGKILL (Nomad default 5s).
    pub kill_timeout_ns: u64,
    pub kill_signal: String,
    pub user: String,
    pub leader: bool,
    pub logs: LogConfig,
    pub meta: IndexMap<String, String>,
    pub restart: Option<RestartPolicy>,
    pub shutdown_delay_ns: u64,
    /// Where the payload of a dispatched job is written (`dispatch_payload { file }`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dispatch_payload: Option<DispatchPayload>,
    /// `volume_mount { ... }`: where the group's volumes appear in the task. Left out of the
    /// stored form while empty, so specs from before it keep their hash.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    pub ignored: IndexMap<String, Value>,
}

/// The only volume type Nomos places and mounts: a directory a node's agent publishes.
pub const VOLUME_TYPE_HOST: &str = "host";

/// A group's `volume "name" { type, source, read_only }`: a host volume the group needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct VolumeRequest {
    /// The block label: what the tasks' `volume_mount { volume }` names.
    pub name: String,
    /// `host` (`csi` is refused by validation).
    #[serde(rename = "type")]
    pub volume_type: String,
    /// The name of the node's `host_volume` to use.
    pub source: String,
    /// Only read access is needed: the group may be placed on a node whose volume is read-only,
    /// and every mount of it is read-only.
    pub read_only: bool,
}

/// Mount propagation modes of a `volume_mount`, as Nomad names them; `private` is the default.
pub const PROPAGATION_MODES: [&str; 3] = ["private", "host-to-task", "bidirectional"];

/// A task's `volume_mount { volume, destination, read_only, propagation_mode }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct VolumeMount {
    /// The group volume to mount.
    pub volume: String,
    /// Where it appears: absolute inside the task's filesystem, or relative to the task
    /// directory.
    pub destination: String,
    /// Mount read-only even when the volume is writable.
    pub read_only: bool,
    /// One of [`PROPAGATION_MODES`]; empty means `private`.
    pub propagation_mode: String,
}

impl VolumeMount {
    /// Whether this mount of `volume` is read-only: when either the mount or the group's
    /// request says so.
    pub fn is_read_only(&self, volume: &VolumeRequest) -> bool {
        self.read_only || volume.read_only
    }
}

/// `dispatch_payload`: the file, relative to the task's `local/` directory, that receives the
/// payload of a dispatched job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct DispatchPayload {
    pub file: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Resources {
    /// MHz reserved for placement.
    pub cpu: u32,
    /// Whole cores reserved (alternative to `cpu`).
    pub cores: u32,
    /// MiB reserved for placement (the soft limit).
    pub memory_mb: u32,
    /// MiB at which the task is killed; 0 means "same as memory_mb", and
    /// [`MEMORY_NO_LIMIT`] (Nomad's `memory_max = -1`) means no hard limit.
    pub memory_max_mb: i64,
    pub disk_mb: u32,
    pub devices: Vec<Device>,
    /// HCL1 files put `network` inside `resources`; the parser moves such networks to the group.
    pub networks: Vec<Network>,
}

/// `memory_max = -1`: the task has no hard memory limit (only `memory` is reserved).
pub const MEMORY_NO_LIMIT: i64 = -1;

/// A task's memory bounds in MiB from `memory` and `memory_max`: the hard limit (`memory_max`,
/// else `memory`; `None` for no limit: `memory_max = -1`, or nothing set) and the soft
/// reservation (`memory`, when the hard limit is above it or there is none).
pub fn memory_bounds(memory_mb: u32, memory_max_mb: i64) -> (Option<u64>, Option<u64>) {
    let memory = u64::from(memory_mb);
    let hard = match memory_max_mb {
        MEMORY_NO_LIMIT => None,
        n if n > 0 => Some(n as u64),
        _ => Some(memory).filter(|m| *m > 0),
    };
    let soft = (memory > 0 && hard.is_none_or(|h| h > memory)).then_some(memory);
    (hard, soft)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Device {
    pub name: String,
    pub count: u32,
    pub constraints: Vec<Constraint>,
    pub affinities: Vec<Affinity>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Network {
    /// `host`, `bridge`, `none`, or `cni/<name>`.
    pub mode: String,
    pub hostname: String,
    pub mbits: u32,
    pub ports: Vec<Port>,
    pub dns: Option<Value>,
    /// `cni { args = {...} }`: arguments for the CNI plugins of a `cni/<name>` network.
    /// Recorded, not acted on (the agent sets up no CNI networks); left out while unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cni: Option<CniConfig>,
}

/// A network's `cni` block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct CniConfig {
    pub args: IndexMap<String, String>,
}

/// A port label; `static_port` 0 means dynamic (allocated from the node's dynamic range).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Port {
    pub label: String,
    #[serde(rename = "static")]
    pub static_port: u16,
    /// Port inside the task (`to`); 0 means the same as the host port.
    pub to: u16,
    pub host_network: String,
}

/// `constraint { attribute, operator, value }`; `operator` uses Nomad's spelling
/// (`=`, `!=`, `>`, `>=`, `<`, `<=`, `regexp`, `version`, `semver`, `set_contains`,
/// `set_contains_any`, `is_set`, `is_not_set`, `distinct_hosts`, `distinct_property`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Constraint {
    pub attribute: String,
    pub operator: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Affinity {
    pub attribute: String,
    pub operator: String,
    pub value: String,
    /// -100..=100, Nomad default 50.
    pub weight: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Spread {
    pub attribute: String,
    /// 0..=100, Nomad default 50.
    pub weight: i32,
    pub targets: Vec<SpreadTarget>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct SpreadTarget {
    pub value: String,
    pub percent: u32,
}

/// Durations are nanoseconds, as in Nomad's JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct UpdateStrategy {
    pub max_parallel: u32,
    /// `checks` or `task_states` or `manual`.
    pub health_check: String,
    pub min_healthy_time_ns: u64,
    pub healthy_deadline_ns: u64,
    pub progress_deadline_ns: u64,
    pub auto_revert: bool,
    pub auto_promote: bool,
    pub canary: u32,
    pub stagger_ns: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct MigrateStrategy {
    pub max_parallel: u32,
    pub health_check: String,
    pub min_healthy_time_ns: u64,
    pub healthy_deadline_ns: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Periodic {
    pub crons: Vec<String>,
    pub time_zone: String,
    pub prohibit_overlap: bool,
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Parameterized {
    /// `optional`, `required` or `forbidden`.
    pub payload: String,
    pub meta_required: Vec<String>,
    pub meta_optional: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct RestartPolicy {
    pub attempts: u32,
    pub interval_ns: u64,
    pub delay_ns: u64,
    /// `fail` or `delay`.
    pub mode: String,
    pub render_templates: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ReschedulePolicy {
    pub attempts: u32,
    pub interval_ns: u64,
    pub delay_ns: u64,
    /// `constant`, `exponential` or `fibonacci`.
    pub delay_function: String,
    pub max_delay_ns: u64,
    pub unlimited: bool,
}

/// The `disconnect` block: how long a disconnected node's allocations stay `unknown`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Disconnect {
    /// 0 means "use the cluster default".
    pub lost_after_ns: u64,
    pub replace: bool,
    /// `keep_original`, `keep_replacement`, `best_score`, `longest_running`.
    pub reconcile: String,
    pub stop_on_client_after_ns: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct EphemeralDisk {
    pub size_mb: u32,
    pub sticky: bool,
    pub migrate: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Service {
    pub name: String,
    pub port: String,
    pub provider: String,
    pub tags: Vec<String>,
    /// Tags an unpromoted canary registers with instead of `tags` (left out of the stored
    /// form while empty, so specs from before it keep their hash).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub canary_tags: Vec<String>,
    pub address_mode: String,
    pub checks: Vec<Check>,
    pub meta: IndexMap<String, String>,
    /// Restarts a task whose checks keep failing; each check without its own inherits it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_restart: Option<CheckRestart>,
    pub ignored: IndexMap<String, Value>,
}

/// `check_restart`: restart the task after `limit` consecutive unhealthy results, not before
/// `grace` has passed since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct CheckRestart {
    pub limit: u32,
    pub grace_ns: u64,
    /// A `warning` counts as passing: only critical results count toward the restart.
    pub ignore_warnings: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Check {
    pub name: String,
    /// `http`, `tcp`, `script` or `grpc`.
    #[serde(rename = "type")]
    pub check_type: String,
    pub port: String,
    pub path: String,
    pub method: String,
    pub protocol: String,
    pub command: String,
    pub args: Vec<String>,
    pub interval_ns: u64,
    pub timeout_ns: u64,
    pub header: IndexMap<String, Vec<String>>,
    /// An https check accepts any certificate.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tls_skip_verify: bool,
    /// Consecutive passing results before the check passes (0 or 1: the first).
    #[serde(skip_serializing_if = "is_zero")]
    pub success_before_passing: u32,
    /// Consecutive failing results before the check is critical (0 or 1: the first).
    #[serde(skip_serializing_if = "is_zero")]
    pub failures_before_critical: u32,
    /// Consecutive failing results before the check is a warning (0: never from failures).
    #[serde(skip_serializing_if = "is_zero")]
    pub failures_before_warning: u32,
    /// A `grpc` check's service name in the health protocol (empty: the whole server).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub grpc_service: String,
    /// A `grpc` check speaks TLS (verified unless `tls_skip_verify`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub grpc_use_tls: bool,
    /// The name an https or TLS `grpc` check verifies the certificate for and sends by SNI
    /// (empty: the host of the address it probes).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub tls_server_name: String,
    /// How the check counts while a deployment judges health: `require_healthy` (empty, the
    /// default), `ignore_warnings`, `ignore`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub on_update: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_restart: Option<CheckRestart>,
    pub ignored: IndexMap<String, Value>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Artifact {
    pub source: String,
    pub destination: String,
    pub mode: String,
    pub options: IndexMap<String, String>,
    pub headers: IndexMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Template {
    pub data: String,
    pub source: String,
    pub destination: String,
    pub env: bool,
    pub change_mode: String,
    pub change_signal: String,
    pub perms: String,
    pub left_delimiter: String,
    pub right_delimiter: String,
    /// Fail the render on a missing map key instead of writing `<no value>`. (Left out of
    /// the stored form while false, so specs from before it keep their hash.)
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub error_on_missing_key: bool,
    // When and as whom the file is written (`splay`, `wait`, `uid`, `gid`), kept together.
    // Each is left out of the stored form while unset, so specs from before keep their hash.
    /// The most random delay before `change_mode` acts on a change; `None`: Nomad's 5 s
    /// ([`DEFAULT_TEMPLATE_SPLAY_NS`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub splay_ns: Option<u64>,
    /// consul-template's quiescence (`wait { min max }`); `None`: re-render at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait: Option<TemplateWait>,
    /// The rendered file's owner (user ID); `None` or negative: left as the agent writes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<i64>,
    /// The rendered file's group ID; `None` or negative: left as the agent writes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<i64>,
    /// What `change_mode = "script"` runs inside the task when the output changes. (Left out
    /// of the stored form while unset, so specs from before it keep their hash.)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_script: Option<ChangeScript>,
}

/// Nomad's `splay` when a template sets none: 5 s.
pub const DEFAULT_TEMPLATE_SPLAY_NS: u64 = 5_000_000_000;
/// The largest `splay` and `wait` bound accepted: one hour.
pub const MAX_TEMPLATE_DELAY_NS: u64 = 3_600_000_000_000;

/// A template's `wait { min max }`: after what it reads changes, render once nothing more
/// changed for `min`, and at the latest `max` after the first change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct TemplateWait {
    pub min_ns: u64,
    /// `None`: four times `min`, as consul-template does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_ns: Option<u64>,
}

impl TemplateWait {
    /// `max`, or four times `min` when unset.
    pub fn max_or_default(&self) -> u64 {
        self.max_ns.unwrap_or(self.min_ns.saturating_mul(4))
    }
}

/// A template's `change_script`: a command run inside the task (as a script check is) when the
/// template's output changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ChangeScript {
    pub command: String,
    pub args: Vec<String>,
    /// How long it may run (5s when 0, as in Nomad); then it is killed and counts as failed.
    pub timeout_ns: u64,
    /// A failure (exit code not 0, or the timeout) kills the task.
    pub fail_on_error: bool,
}

/// A task's workload identity (Nomad's `identity` block): a JWT the servers sign for the
/// task, naming its namespace, job, group, task and allocation. The default identity (no
/// `name`) is what templates and the task itself use to call the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct WorkloadIdentity {
    /// Empty or `default` for the default identity; other names are for third parties
    /// (Vault, Consul) and are not issued.
    pub name: String,
    pub aud: Vec<String>,
    /// Expose the token to the task as `NOMAD_TOKEN`.
    pub env: bool,
    /// Write the token to `secrets/nomad_token`.
    pub file: bool,
    pub ttl_ns: u64,
    pub change_mode: String,
    pub change_signal: String,
}

impl WorkloadIdentity {
    /// Whether this is the task's default identity (the one the servers issue).
    pub fn is_default(&self) -> bool {
        self.name.is_empty() || self.name == "default"
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Lifecycle {
    /// `prestart`, `poststart` or `poststop`.
    pub hook: String,
    pub sidecar: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub max_files: u32,
    pub max_file_size_mb: u32,
    pub disabled: bool,
}
