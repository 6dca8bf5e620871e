//! Evaluations as Nomad records them: Nomos has no evaluation broker (controllers reconcile
//! from the store), so each reconcile of a job version, node event or deployment step is
//! written down as an evaluation with Nomad's fields, for Nomad's tools to follow.
//!
//! Stored at `/nomos/evals/<namespace>/<eval-id>` in Nomad's own JSON shape (PascalCase,
//! times in Unix nanoseconds); `CreateIndex` and `ModifyIndex` are the key's create and mod
//! revisions, filled in when the record is read. A `pending` evaluation is written by the API
//! (register, deregister, evaluate, drain...); the jobs controller completes it when it
//! reconciles the job, and records `blocked` ones for placements that failed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Nomad's evaluation statuses.
pub mod eval_status {
    pub const PENDING: &str = "pending";
    pub const COMPLETE: &str = "complete";
    pub const BLOCKED: &str = "blocked";
    pub const FAILED: &str = "failed";
    pub const CANCELED: &str = "canceled";
}

/// Nomad's `TriggeredBy` words that Nomos records.
pub mod triggers {
    pub const JOB_REGISTER: &str = "job-register";
    pub const JOB_DEREGISTER: &str = "job-deregister";
    pub const NODE_UPDATE: &str = "node-update";
    pub const NODE_DRAIN: &str = "node-drain";
    pub const DEPLOYMENT_WATCHER: &str = "deployment-watcher";
    pub const ALLOC_FAILURE: &str = "alloc-failure";
    pub const PERIODIC_JOB: &str = "periodic-job";
    pub const JOB_SCALING: &str = "job-scaling";
    pub const ALLOC_STOP: &str = "alloc-stop";
    pub const QUEUED_ALLOCS: &str = "queued-allocs";
    pub const ROLLING_UPDATE: &str = "rolling-update";

    /// Every word a client may ask for (`/v1/evaluations?filter=TriggeredBy == ...`).
    pub const ALL: &[&str] = &[
        JOB_REGISTER,
        JOB_DEREGISTER,
        NODE_UPDATE,
        NODE_DRAIN,
        DEPLOYMENT_WATCHER,
        ALLOC_FAILURE,
        PERIODIC_JOB,
        JOB_SCALING,
        ALLOC_STOP,
        QUEUED_ALLOCS,
        ROLLING_UPDATE,
    ];
}

/// The priority Nomad gives an evaluation of a job that names none.
pub const DEFAULT_PRIORITY: i32 = 50;

/// One evaluation (Nomad's `Evaluation`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct Evaluation {
    #[serde(rename = "ID")]
    pub id: String,
    pub namespace: String,
    pub priority: i32,
    /// The job's type (`service`, `batch`, `system`, `sysbatch`), or `_core` for Nomad's own.
    #[serde(rename = "Type")]
    pub kind: String,
    pub triggered_by: String,
    #[serde(rename = "JobID")]
    pub job_id: String,
    pub job_modify_index: i64,
    #[serde(rename = "NodeID")]
    pub node_id: String,
    pub node_modify_index: i64,
    #[serde(rename = "DeploymentID")]
    pub deployment_id: String,
    pub status: String,
    pub status_description: String,
    /// Per group: why placements failed (Nomad's `AllocMetric`); `null` when none did.
    #[serde(rename = "FailedTGAllocs")]
    pub failed_tg_allocs: Option<BTreeMap<String, AllocMetric>>,
    /// The `blocked` evaluation made for this one's failed placements.
    pub blocked_eval: String,
    /// The evaluation this one follows (a blocked one names the evaluation that failed).
    pub previous_eval: String,
    pub next_eval: String,
    /// Per group: placements still to make.
    pub queued_allocations: Option<BTreeMap<String, u32>>,
    pub create_index: i64,
    pub modify_index: i64,
    /// Unix nanoseconds.
    pub create_time: i64,
    /// Unix nanoseconds.
    pub modify_time: i64,
    /// Nomos's addition: the allocations this evaluation placed or changed (at most
    /// [`MAX_PLACED_ALLOCS`]), which `/v1/evaluation/{id}/allocations` lists.
    pub placed_allocs: Option<Vec<String>>,
}

/// Most allocation IDs an evaluation keeps ([`Evaluation::placed_allocs`]).
pub const MAX_PLACED_ALLOCS: usize = 512;

/// Evaluations kept per job by default: the oldest finished ones beyond this are collected.
pub const EVALS_KEPT_PER_JOB: usize = 50;

impl Evaluation {
    /// Complete, failed or canceled: nothing will change it again.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self.status.as_str(),
            eval_status::COMPLETE | eval_status::FAILED | eval_status::CANCELED
        )
    }

    pub fn is_pending(&self) -> bool {
        self.status == eval_status::PENDING
    }

    pub fn is_blocked(&self) -> bool {
        self.status == eval_status::BLOCKED
    }
}

/// Why a group's placements failed (Nomad's `AllocMetric`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocMetric {
    pub nodes_evaluated: u32,
    pub nodes_filtered: u32,
    pub nodes_in_pool: u32,
    /// Nodes per datacenter that could be looked at (Nomos does not count these: `null`).
    pub nodes_available: Option<BTreeMap<String, u32>>,
    /// Filtered nodes by node class (`null`: Nomos counts by constraint only).
    pub class_filtered: Option<BTreeMap<String, u32>>,
    /// Filtered nodes by the reason they were excluded.
    pub constraint_filtered: Option<BTreeMap<String, u32>>,
    pub nodes_exhausted: u32,
    pub class_exhausted: Option<BTreeMap<String, u32>>,
    /// Exhausted nodes by the resource they ran out of.
    pub dimension_exhausted: Option<BTreeMap<String, u32>>,
    /// The namespace's quota that refused the placement.
    pub quota_exhausted: Option<Vec<String>>,
    pub resources_exhausted: Option<BTreeMap<String, serde_json::Value>>,
    pub scores: Option<BTreeMap<String, f64>>,
    pub score_meta_data: Option<Vec<serde_json::Value>>,
    /// Nanoseconds the placement took (Nomos does not time it: 0).
    pub allocation_time: i64,
    /// How many placements of the group failed.
    pub coalesced_failures: u32,
}

/// A map that is `None` when empty (Nomad writes empty maps as `null`).
pub fn non_empty<K: Ord, V>(m: BTreeMap<K, V>) -> Option<BTreeMap<K, V>> {
    (!m.is_empty()).then_some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_evaluation_reads_and_writes_nomads_field_names() {
        let e = Evaluation {
            id: "e1".into(),
            namespace: "default".into(),
            job_id: "web".into(),
            status: eval_status::BLOCKED.into(),
            failed_tg_allocs: Some(BTreeMap::from([("g".into(), AllocMetric::default())])),
            ..Default::default()
        };
        let v = serde_json::to_value(&e).unwrap();
        for field in [
            "ID",
            "JobID",
            "NodeID",
            "DeploymentID",
            "FailedTGAllocs",
            "BlockedEval",
            "QueuedAllocations",
            "CreateTime",
        ] {
            assert!(v.get(field).is_some(), "{field} in {v}");
        }
        assert!(v["FailedTGAllocs"]["g"]["DimensionExhausted"].is_null());
        assert_eq!(serde_json::from_value::<Evaluation>(v).unwrap(), e);
        assert!(e.is_blocked() && !e.is_terminal());
    }
}
