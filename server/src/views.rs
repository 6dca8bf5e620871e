//! The JSON bodies of the API, shared with `nctl`: requests it sends and responses it decodes.
//! Stored objects (Job, Allocation, Node, ...) appear in their canonical form from `nomos-api`.

use indexmap::IndexMap;
use nomos_api::{
    AllocStatus, Allocation, Deployment, GroupSummary, Job, JobStatus, Node, NodeSpec,
};
use serde::{Deserialize, Serialize};

use crate::diff::Change;

/// A positioned message about a job file (`file:line:column: message`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DiagnosticView {
    pub file: String,
    pub line: u32,
    pub column: u32,
    /// `error` or `warning`.
    pub severity: String,
    pub message: String,
}

impl std::fmt::Display for DiagnosticView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if self.severity == "warning" {
            write!(f, "warning: ")?;
        }
        f.write_str(&self.message)
    }
}

/// What happened to one job of an apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplyOutcome {
    Created,
    Updated,
    Unchanged,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApplyResult {
    pub namespace: String,
    pub id: String,
    pub outcome: ApplyOutcome,
    /// mod_revision of the spec key after the apply (the check-index for the next one).
    pub modify_index: i64,
    pub changes: Vec<Change>,
}

/// The dry run of one job, as `nctl plan` prints it (the API answers Nomad's plan:
/// [`crate::nomad::job_plan`], which [`crate::nomad::job_plan::plan_result_from_nomad`] reads
/// back into this).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanResult {
    pub namespace: String,
    pub id: String,
    /// `created`, `updated` or `unchanged`, as an apply would report it.
    pub outcome: ApplyOutcome,
    pub changes: Vec<Change>,
    /// The stored spec's modify index, to pass as check-index to a following apply.
    pub modify_index: i64,
    /// The version the spec would be accepted as.
    #[serde(default)]
    pub version: u64,
    /// Why nothing is placed now, when the job places nothing itself (periodic, parameterized).
    #[serde(default)]
    pub note: Option<String>,
    /// Per group: desired count, what runs now, and what the controllers would do.
    pub groups: Vec<PlanGroup>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanGroup {
    pub name: String,
    pub count: u32,
    /// Allocations of the group desired to run and not finished now.
    pub existing: u32,
    /// The decision's buckets (see `nomos_controllers::plan::GroupPlan`): new allocations at
    /// free indexes, canaries, in-place updates, destructive updates, migrations off draining
    /// or lost nodes, reschedules of failures, and stops with nothing in their place.
    #[serde(default)]
    pub place: u32,
    #[serde(default)]
    pub canary: u32,
    #[serde(default)]
    pub inplace: u32,
    #[serde(default)]
    pub destructive: u32,
    #[serde(default)]
    pub migrate: u32,
    #[serde(default)]
    pub reschedule: u32,
    #[serde(default)]
    pub stop: u32,
    /// Placements that found no node, and why (the scheduler's summary).
    #[serde(default)]
    pub failed: u32,
    #[serde(default)]
    pub placement_failure: Option<String>,
    /// Nodes the new allocations would go to, with how many each.
    #[serde(default)]
    pub placements: IndexMap<String, u32>,
}

impl PlanGroup {
    /// Allocations the decision creates or stops (Nomad's plan exits 1 for these; an in-place
    /// update moves nothing).
    pub fn creates_or_stops(&self) -> bool {
        self.place
            + self.canary
            + self.destructive
            + self.migrate
            + self.reschedule
            + self.stop
            + self.failed
            > 0
    }
}

/// One job row of the web UI (the API lists jobs in Nomad's shape:
/// [`crate::nomad::job_reads`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobListEntry {
    pub namespace: String,
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub job_type: String,
    pub priority: i32,
    pub stop: bool,
    /// `pending`, `running` or `dead` (from the job status; `pending` before the controller wrote one).
    pub status: String,
    pub version: u64,
    pub summary: IndexMap<String, GroupSummary>,
    pub modify_index: i64,
}

/// One job as the web UI and `nctl` see it: the job, its spec key's modify index and what the
/// controllers report. The API answers Nomad's job ([`crate::nomad::job_reads`]), which
/// [`JobDetail::from_nomad`] reads back into this.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobDetail {
    /// The spec; when the spec key holds something that is not a valid job, the latest accepted
    /// version instead (what keeps running), and `invalid_spec` says so.
    pub job: Job,
    pub modify_index: i64,
    pub status: Option<JobStatus>,
    /// Set only when the stored spec is not a valid job (written straight into the store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid_spec: Option<InvalidSpec>,
}

/// Why a job's stored spec was not accepted, and which version runs instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct InvalidSpec {
    /// What is wrong with the spec key's value, one message per diagnostic (the controllers
    /// record the same in the job status's `errors`).
    pub errors: Vec<String>,
    /// The accepted version that `job` shows and that keeps running; `None` when the job never
    /// had one (nothing runs; `job` then holds only its id and namespace).
    pub running_version: Option<u64>,
}

impl JobDetail {
    /// Why the stored spec was not accepted: the spec's own errors (when it is invalid), then
    /// those the controllers recorded in the job status that are not among them.
    pub fn spec_errors(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .invalid_spec
            .as_ref()
            .map(|i| i.errors.clone())
            .unwrap_or_default();
        for e in self.status.iter().flat_map(|s| &s.errors) {
            if !out.contains(e) {
                out.push(e.clone());
            }
        }
        out
    }
}

/// One accepted version from `/nomos/jobversions/...` (as written by the controllers; the API
/// answers versions in Nomad's shape: [`crate::nomad::job_versions`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobVersionView {
    pub version: u64,
    pub job: Option<Job>,
    /// Whether this version is the job's last stable one.
    pub stable: bool,
    /// When it was submitted, in Unix nanoseconds (0: not recorded).
    pub submit_time_ns: i64,
    /// The stored value, as the controllers wrote it.
    pub raw: serde_json::Value,
    pub modify_index: i64,
}

/// An allocation joined with what its agent reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AllocView {
    pub allocation: Allocation,
    pub status: Option<AllocStatus>,
    pub modify_index: i64,
}

impl AllocView {
    /// The client status, `pending` until the agent reported.
    pub fn client_status(&self) -> nomos_api::ClientStatus {
        self.status
            .as_ref()
            .map(|s| s.client_status)
            .unwrap_or_default()
    }
}

/// A node with its user spec and liveness.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeView {
    pub node: Node,
    pub spec: NodeSpec,
    /// `ready` while the heartbeat key exists, `disconnected` once it lapsed, `down` once the
    /// node-lifecycle loop declared it down (no heartbeat for `down_after`).
    pub status: String,
    pub eligible: bool,
    pub draining: bool,
    /// Non-terminal allocations placed on the node.
    pub allocations: u32,
    /// The drain loop's progress report (`/nomos/drainstatus/<node>`), once a drain started.
    #[serde(default)]
    pub drain_status: Option<nomos_api::DrainStatus>,
    /// The revisions of the node's registration key.
    #[serde(default)]
    pub create_index: i64,
    #[serde(default)]
    pub modify_index: i64,
}

/// A deployment as stored, with its key's mod revision (the UI's and `nctl`'s tables; the
/// API answers in Nomad's shape, `crate::nomad::deployments::DeploymentOut`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeploymentView {
    pub deployment: Deployment,
    pub modify_index: i64,
}

/// `GET /v1/status`: the store's revision and the server's version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusView {
    pub version: String,
    pub revision: i64,
    pub compact_revision: i64,
}

/// `POST /v1/system/gc`: how many objects a forced collection removed.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct GcResponse {
    pub collected: usize,
}
