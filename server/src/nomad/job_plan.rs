//! The dry run of a job in Nomad's shapes: `POST|PUT /v1/job/{id}/plan` `{"Job", "Diff",
//! "PolicyOverride"}` answers what a register would change and what the controllers would
//! then do, over one read of the store ([`nomos_controllers::plan`]), writing nothing:
//! `{Annotations: {DesiredTGUpdates: {group: {Ignore, Place, Migrate, Stop, InPlaceUpdate,
//! DestructiveUpdate, Canary, Preemptions}}}, FailedTGAllocs, JobModifyIndex, Diff,
//! NextPeriodicLaunch, Warnings, Index}`.
//!
//! Nomos adds `JobID`, `Namespace`, `Outcome` and `Changes` (as a register reports them),
//! `Version` (what the spec would be accepted as), `Note` (why a periodic or parameterized job
//! places nothing itself) and `NomosGroups` `{group: {Count, Existing, Reschedule, Failed,
//! PlacementFailure, Placements: {node: n}}}`. `Place` counts reschedules too, as Nomad's does.
//! [`plan_result_from_nomad`] reads an answer back (what `nctl plan` prints).

use axum::extract::{Path, State};
use axum::Extension;
use indexmap::IndexMap;
use nomos_api::acl::check::CAP_SUBMIT_JOB;
use nomos_api::nomad_out::{job_to_nomad, JobMeta};
use nomos_api::Job;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::job_diff::job_diff;
use super::job_writes::{job_of, outcome_word};
use super::query::QueryOptions;
use super::respond::Answer;
use crate::acl::Caller;
use crate::body::JsonBody;
use crate::diff::Change;
use crate::error::ServerError;
use crate::jobs::compare_with_stored;
use crate::views::{ApplyOutcome, PlanGroup, PlanResult};
use crate::AppState;

/// The body of a plan.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PlanRequest {
    /// Nomad's JSON job.
    pub job: Value,
    /// Answer the diff against the stored job.
    #[serde(default)]
    pub diff: bool,
    #[serde(default)]
    pub policy_override: bool,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default, rename = "SecretID")]
    pub secret_id: String,
}

/// Nomos's per-group extras of a plan.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PlanGroupExtras {
    pub count: u32,
    pub existing: u32,
    pub reschedule: u32,
    pub failed: u32,
    pub placement_failure: Option<String>,
    pub placements: IndexMap<String, u32>,
}

/// Nomad's `DesiredTGUpdates` entry of a group.
fn desired_updates(g: &PlanGroup) -> Value {
    let changed = g.inplace + g.destructive + g.migrate + g.stop;
    json!({
        "Ignore": g.existing.saturating_sub(changed),
        "Place": g.place + g.reschedule,
        "Migrate": g.migrate,
        "Stop": g.stop,
        "InPlaceUpdate": g.inplace,
        "DestructiveUpdate": g.destructive,
        "Canary": g.canary,
        "Preemptions": 0,
    })
}

/// Nomad's `AllocMetric` of a group whose placements failed, with the reason as Nomos's
/// `Reason`.
fn failed_metric(g: &PlanGroup) -> Value {
    json!({
        "NodesEvaluated": 0,
        "NodesFiltered": 0,
        "NodesInPool": 0,
        "NodesAvailable": null,
        "ClassFiltered": null,
        "ConstraintFiltered": null,
        "NodesExhausted": 0,
        "ClassExhausted": null,
        "DimensionExhausted": null,
        "QuotaExhausted": null,
        "ResourcesExhausted": null,
        "Scores": null,
        "ScoreMetaData": null,
        "AllocationTime": 0,
        "CoalescedFailures": g.failed.saturating_sub(1),
        "Reason": g.placement_failure,
    })
}

/// A group's updates as Nomad's diff names them (`create`, `in-place update`, ...).
fn diff_updates(g: &PlanGroup) -> IndexMap<String, u64> {
    [
        ("create", g.place + g.reschedule),
        ("canary", g.canary),
        ("create/destroy update", g.destructive),
        ("in-place update", g.inplace),
        ("migrate", g.migrate),
        ("destroy", g.stop),
        (
            "ignore",
            g.existing
                .saturating_sub(g.inplace + g.destructive + g.migrate + g.stop),
        ),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .map(|(k, n)| (k.to_string(), u64::from(n)))
    .collect()
}

/// The two jobs a plan's diff compares, in Nomad's JSON shape: what is stored (`None` for a
/// new job) and what was submitted.
pub struct DiffInput {
    pub stored: Option<Value>,
    pub submitted: Value,
}

impl DiffInput {
    fn of(stored: Option<&Job>, submitted: &Job) -> DiffInput {
        let nomad = |job: &Job| job_to_nomad(job, &JobMeta::default());
        DiffInput {
            stored: stored.map(nomad),
            submitted: nomad(submitted),
        }
    }
}

/// The plan's answer for one planned job, with the diff when `diff` is given.
fn answer_of(p: &PlanResult, diff: Option<&DiffInput>, warnings: String) -> Value {
    let mut desired = serde_json::Map::new();
    let mut failed = serde_json::Map::new();
    let mut extras = serde_json::Map::new();
    let mut updates = IndexMap::new();
    for g in &p.groups {
        desired.insert(g.name.clone(), desired_updates(g));
        if g.failed > 0 {
            failed.insert(g.name.clone(), failed_metric(g));
        }
        let extra = PlanGroupExtras {
            count: g.count,
            existing: g.existing,
            reschedule: g.reschedule,
            failed: g.failed,
            placement_failure: g.placement_failure.clone(),
            placements: g.placements.clone(),
        };
        extras.insert(g.name.clone(), json!(extra));
        updates.insert(g.name.clone(), diff_updates(g));
    }
    json!({
        "Annotations": {"DesiredTGUpdates": desired},
        "FailedTGAllocs": if failed.is_empty() { Value::Null } else { Value::Object(failed) },
        "JobModifyIndex": p.modify_index,
        "Diff": diff.map(|d| job_diff(&p.id, d.stored.as_ref(), &d.submitted, &updates)),
        "NextPeriodicLaunch": "0001-01-01T00:00:00Z",
        "Warnings": warnings,
        "JobID": p.id,
        "Namespace": p.namespace,
        "Outcome": outcome_word(p.outcome),
        "Changes": p.changes,
        "Version": p.version,
        "Note": p.note,
        "NomosGroups": extras,
    })
}

/// `POST|PUT /v1/job/{id}/plan`.
pub async fn plan(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    q: QueryOptions,
    JsonBody(req): JsonBody<PlanRequest>,
) -> Result<Answer<Value>, ServerError> {
    let (job, warnings) = job_of(&req.job, &q)?;
    if job.id != id {
        return Err(ServerError::BadRequest(format!(
            "Job ID does not match: the path names {id:?}, the job is {:?}",
            job.id
        )));
    }
    crate::specs::check_namespace(&job.namespace)?;
    caller.require_namespace(&job.namespace, CAP_SUBMIT_JOB)?;
    crate::namespaces::require_namespaces(&st, std::slice::from_ref(&job)).await?;
    let index = super::blocking::read_index(&st).await?;
    let view = nomos_controllers::plan::read(st.store.as_ref()).await?;
    let compared = compare_with_stored(&st, &job).await?;
    let diff = req
        .diff
        .then(|| DiffInput::of(compared.previous.as_ref(), &job));
    let decided =
        nomos_controllers::plan::plan_job(&view, &job, nomos_api::now_ms(), &st.scheduler);
    let groups = decided
        .groups
        .into_iter()
        .map(|(name, g)| PlanGroup {
            count: job
                .groups
                .iter()
                .find(|jg| jg.name == name)
                .map_or(0, |jg| jg.count),
            name,
            existing: g.existing,
            place: g.place,
            canary: g.canary,
            inplace: g.inplace,
            destructive: g.destructive,
            migrate: g.migrate,
            reschedule: g.reschedule,
            stop: g.stop,
            failed: g.failed,
            placement_failure: g.failure,
            placements: g.placements,
        })
        .collect();
    let result = PlanResult {
        namespace: job.namespace.clone(),
        id: job.id.clone(),
        outcome: compared.outcome,
        changes: compared.changes,
        modify_index: compared.stored_index,
        version: decided.version,
        note: decided.note,
        groups,
    };
    let lines: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    Ok(Answer::new(
        answer_of(&result, diff.as_ref(), lines.join("\n")),
        index,
        &q,
    ))
}

/// Reads a plan's answer back into the plan `nctl plan` prints.
pub fn plan_result_from_nomad(v: &Value) -> Result<PlanResult, String> {
    let text = |name: &str| v[name].as_str().unwrap_or_default().to_string();
    let outcome = match v["Outcome"].as_str() {
        Some("created") => ApplyOutcome::Created,
        Some("updated") => ApplyOutcome::Updated,
        Some("unchanged") => ApplyOutcome::Unchanged,
        other => return Err(format!("a plan without its outcome: {other:?}")),
    };
    let changes: Vec<Change> = decode(&v["Changes"])?;
    let extras: IndexMap<String, PlanGroupExtras> = decode(&v["NomosGroups"])?;
    let desired = &v["Annotations"]["DesiredTGUpdates"];
    let groups = extras
        .into_iter()
        .map(|(name, e)| {
            let d = &desired[&name];
            let n = |field: &str| u32::try_from(d[field].as_u64().unwrap_or(0)).unwrap_or(u32::MAX);
            PlanGroup {
                count: e.count,
                existing: e.existing,
                place: n("Place").saturating_sub(e.reschedule),
                canary: n("Canary"),
                inplace: n("InPlaceUpdate"),
                destructive: n("DestructiveUpdate"),
                migrate: n("Migrate"),
                reschedule: e.reschedule,
                stop: n("Stop"),
                failed: e.failed,
                placement_failure: e.placement_failure,
                placements: e.placements,
                name,
            }
        })
        .collect();
    Ok(PlanResult {
        namespace: text("Namespace"),
        id: text("JobID"),
        outcome,
        changes,
        modify_index: v["JobModifyIndex"].as_i64().unwrap_or(0),
        version: v["Version"].as_u64().unwrap_or(0),
        note: v["Note"].as_str().map(str::to_string),
        groups,
    })
}

fn decode<T: serde::de::DeserializeOwned + Default>(v: &Value) -> Result<T, String> {
    if v.is_null() {
        return Ok(T::default());
    }
    serde_json::from_value(v.clone()).map_err(|e| format!("reading a plan: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str) -> PlanGroup {
        PlanGroup {
            name: name.into(),
            count: 3,
            existing: 2,
            place: 1,
            canary: 0,
            inplace: 1,
            destructive: 0,
            migrate: 0,
            reschedule: 1,
            stop: 0,
            failed: 2,
            placement_failure: Some("memory exhausted".into()),
            placements: IndexMap::from([("n1".to_string(), 1)]),
        }
    }

    #[test]
    fn a_plan_reads_back_from_its_answer() {
        let plan = PlanResult {
            namespace: "default".into(),
            id: "web".into(),
            outcome: ApplyOutcome::Updated,
            changes: vec![],
            modify_index: 12,
            version: 3,
            note: Some("periodic".into()),
            groups: vec![group("a"), group("b")],
        };
        let diff = DiffInput {
            stored: None,
            submitted: json!({"ID": "web", "TaskGroups": [{"Name": "a"}, {"Name": "b"}]}),
        };
        let answer = answer_of(&plan, Some(&diff), String::new());
        assert_eq!(answer["Annotations"]["DesiredTGUpdates"]["a"]["Place"], 2);
        assert_eq!(answer["Annotations"]["DesiredTGUpdates"]["a"]["Ignore"], 1);
        assert_eq!(answer["FailedTGAllocs"]["a"]["CoalescedFailures"], 1);
        assert_eq!(answer["Diff"]["TaskGroups"][0]["Updates"]["create"], 2);
        let back = plan_result_from_nomad(&answer).unwrap();
        assert_eq!(back.groups.len(), 2);
        assert_eq!(back.groups[1].name, "b");
        let (g, want) = (&back.groups[0], group("a"));
        assert_eq!(
            (
                g.place,
                g.reschedule,
                g.inplace,
                g.failed,
                g.count,
                g.existing
            ),
            (
                want.place,
                want.reschedule,
                want.inplace,
                want.failed,
                want.count,
                want.existing
            )
        );
        assert_eq!(g.placement_failure, want.placement_failure);
        assert_eq!(g.placements, want.placements);
        assert_eq!(
            (back.version, back.modify_index, back.note),
            (3, 12, plan.note)
        );
        assert_eq!(back.outcome, ApplyOutcome::Updated);
    }

    #[test]
    fn an_answer_without_an_outcome_is_refused() {
        assert!(plan_result_from_nomad(&json!({})).is_err());
    }
}
