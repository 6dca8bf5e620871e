//! A job's versions and the writes that act on one, in Nomad's shapes:
//! - `GET /v1/job/{id}/versions?diffs=true`: `{Versions: [Job...], Diffs: [JobDiff...]}`, newest
//!   first; each diff is Nomad's ([`super::job_diff`]) from the version before to this one;
//! - `POST|PUT /v1/job/{id}/revert` `{JobID, JobVersion, EnforcePriorVersion}`: writes version
//!   `JobVersion` back as the spec (not stopped); with `EnforcePriorVersion`, only while the
//!   newest accepted version is that one (409 otherwise);
//! - `POST|PUT /v1/job/{id}/stable` `{JobID, JobVersion, Stable}`: marks a version stable or
//!   not ([`StabilityMarks`]: the mark overrides the deployments' verdict), answering
//!   `{Index, JobModifyIndex}`;
//! - `POST|PUT /v1/job/{id}/periodic/force`: launches a child of a periodic job now, answering
//!   `{EvalID, EvalCreateIndex, Index}` and Nomos's `ChildJobID` (409 when it cannot launch);
//! - `POST|PUT /v1/job/{id}/scale` `{Count, Target: {Group}, Message, Meta, Error,
//!   PolicyOverride}`: sets one group's count in the spec; `GET /v1/job/{id}/scale` answers
//!   Nomad's `JobScaleStatus`.
//!
//! The writes answer as a register does ([`RegisterResponse`]).

use axum::extract::{Path, State};
use indexmap::IndexMap;
use nomos_api::nomad_out::{job_to_nomad, JobMeta};
use nomos_api::settings::StabilityMarks;
use nomos_api::{to_canonical_json, Job};
use nomos_store::keys;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::blocking::{read_index, wait_for_change};
use super::evals;
use super::job_diff::job_diff;
use super::job_reads::JOB_PREFIXES;
use super::job_writes::{outcome_word, RegisterResponse};
use super::query::QueryOptions;
use super::respond::Answer;
use crate::body::JsonBody;
use crate::diff::diff_jobs;
use crate::error::ServerError;
use crate::jobs::apply_job;
use crate::kv;
use crate::specs::{find_job, job_status, job_versions, locate_job, FoundJob};
use crate::views::{ApplyResult, JobVersionView};
use crate::AppState;

/// Most characters of a scaling message, and entries of its meta.
const MAX_SCALE_MESSAGE: usize = 4096;
const MAX_SCALE_META: usize = 64;

/// A version as Nomad's job object.
fn version_to_nomad(v: &JobVersionView, job: &Job) -> Value {
    let index = u64::try_from(v.modify_index).unwrap_or(0);
    let meta = JobMeta {
        status: String::new(),
        version: v.version,
        stable: v.stable,
        submit_time_ns: v.submit_time_ns,
        create_index: index,
        modify_index: index,
        job_modify_index: index,
        stop: job.stop,
        ..JobMeta::default()
    };
    job_to_nomad(job, &meta)
}

/// `GET /v1/job/{id}/versions`.
pub async fn versions(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: QueryOptions,
) -> Result<Answer<Value>, ServerError> {
    wait_for_change(&st, &q, JOB_PREFIXES).await?;
    let index = read_index(&st).await?;
    let found = locate_job(&st, q.namespace.single(), &id).await?;
    let mut versions: Vec<(JobVersionView, Job)> = job_versions(&st, &found.namespace, &found.id)
        .await?
        .into_iter()
        .filter_map(|v| v.job.clone().map(|j| (v, j)))
        .collect();
    versions.reverse();
    let listed: Vec<Value> = versions
        .iter()
        .map(|(v, j)| version_to_nomad(v, j))
        .collect();
    let diffs = q.flag("diffs", false).then(|| {
        versions
            .windows(2)
            .map(|pair| {
                let (newer, older) = (&pair[0].1, &pair[1].1);
                let nomad = |job: &Job| job_to_nomad(job, &JobMeta::default());
                job_diff(
                    &found.id,
                    Some(&nomad(older)),
                    &nomad(newer),
                    &IndexMap::new(),
                )
            })
            .collect::<Vec<_>>()
    });
    Ok(Answer::new(
        json!({"Versions": listed, "Diffs": diffs}),
        index,
        &q,
    ))
}

fn canonical(job: &Job) -> Value {
    serde_json::to_value(job).unwrap_or(Value::Null)
}

/// The body of a revert.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RevertRequest {
    #[serde(rename = "JobID")]
    pub job_id: String,
    pub job_version: u64,
    #[serde(default)]
    pub enforce_prior_version: Option<u64>,
    /// Nomad's fields for Consul and Vault, which Nomos does not use.
    #[serde(default)]
    pub consul_token: String,
    #[serde(default)]
    pub vault_token: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default, rename = "SecretID")]
    pub secret_id: String,
}

/// The job of the path, which the body's `JobID`, when given, must name too (400).
pub async fn named_job(
    st: &AppState,
    q: &QueryOptions,
    id: &str,
    body_id: &str,
) -> Result<FoundJob, ServerError> {
    let found = locate_job(st, q.namespace.single(), id).await?;
    same_job(body_id, &found)?;
    Ok(found)
}

/// 400 unless a body's `JobID` names the job of the path.
fn same_job(body_id: &str, found: &FoundJob) -> Result<(), ServerError> {
    if body_id.is_empty() || body_id == found.id {
        return Ok(());
    }
    Err(ServerError::BadRequest(format!(
        "JobID {body_id:?} does not match the job of the path, {:?}",
        found.id
    )))
}

/// 404 for a version the job does not have.
fn no_version(found: &FoundJob, version: u64) -> ServerError {
    ServerError::NotFound(format!("job {:?} has no version {version}", found.id))
}

/// The stored version `version` of a found job, or 404.
async fn stored_version(
    st: &AppState,
    found: &FoundJob,
    version: u64,
) -> Result<JobVersionView, ServerError> {
    job_versions(st, &found.namespace, &found.id)
        .await?
        .into_iter()
        .find(|v| v.version == version)
        .ok_or_else(|| no_version(found, version))
}

/// The answer of a write that produced `result`, with the evaluation it created.
async fn write_answer(
    st: &AppState,
    result: ApplyResult,
    triggered_by: &str,
) -> Result<RegisterResponse, ServerError> {
    let index = result.modify_index;
    let eval_id = evals::create(st, &result.namespace, &result.id, triggered_by, index).await?;
    Ok(RegisterResponse {
        eval_id,
        eval_create_index: index,
        job_modify_index: index,
        index,
        known_leader: true,
        job_id: result.id,
        namespace: result.namespace,
        outcome: outcome_word(result.outcome).into(),
        changes: result.changes,
        ..RegisterResponse::default()
    })
}

/// `POST|PUT /v1/job/{id}/revert`.
pub async fn revert(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: QueryOptions,
    JsonBody(req): JsonBody<RevertRequest>,
) -> Result<Answer<RegisterResponse>, ServerError> {
    let found = named_job(&st, &q, &id, &req.job_id).await?;
    if let Some(prior) = req.enforce_prior_version {
        let current = job_status(&st, &found.namespace, &found.id)
            .await?
            .map_or(0, |s| s.version);
        if current != prior {
            return Err(ServerError::Conflict(format!(
                "Enforcing job version {prior}: current job version is {current}"
            )));
        }
    }
    let mut job = stored_version(&st, &found, req.job_version)
        .await?
        .job
        .ok_or_else(|| no_version(&found, req.job_version))?;
    job.stop = false;
    let result = apply_job(&st, &job, None).await?;
    let answer = write_answer(&st, result, "job-register").await?;
    let index = answer.index;
    Ok(Answer::new(answer, index, &q))
}

/// `POST|PUT /v1/job/{id}/periodic/force`. 409 when the job is not periodic, has no accepted
/// version, a child still runs under `prohibit_overlap`, or this second's child exists.
pub async fn periodic_force(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: QueryOptions,
) -> Result<Answer<Value>, ServerError> {
    let (job, _) = find_job(&st, q.namespace.single(), &id).await?;
    if job.periodic.is_none() {
        return Err(ServerError::Conflict(format!(
            "job `{}` is not periodic",
            job.id
        )));
    }
    let now = nomos_controllers::jobs::now_ms();
    let launched =
        nomos_controllers::periodic::run::force(st.store.as_ref(), &job.namespace, &job.id, now)
            .await
            .map_err(|e| ServerError::Internal(format!("periodic launch failed: {e}")))?;
    let child = launched.map_err(ServerError::Conflict)?;
    let index = read_index(&st).await?;
    let eval_id = evals::create(&st, &job.namespace, &child, "periodic-job", index).await?;
    let answer = json!({
        "EvalID": eval_id,
        "EvalCreateIndex": index,
        "Index": index,
        "ChildJobID": child,
    });
    Ok(Answer::new(answer, index, &q))
}

/// The body of `POST|PUT /v1/job/{id}/stable`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct StabilityRequest {
    #[serde(default, rename = "JobID")]
    pub job_id: String,
    #[serde(default)]
    pub job_version: u64,
    #[serde(default)]
    pub stable: bool,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default, rename = "SecretID")]
    pub secret_id: String,
}

/// `POST|PUT /v1/job/{id}/stable`: marks a stored version stable or not (404 for a version
/// the job does not have). The mark overrides the deployments' verdict for that version, in
/// what the API shows and in what `auto_revert` goes back to. Answers `{Index,
/// JobModifyIndex}`: the revision of the write.
pub async fn set_stable(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: QueryOptions,
    JsonBody(req): JsonBody<StabilityRequest>,
) -> Result<Answer<Value>, ServerError> {
    let found = named_job(&st, &q, &id, &req.job_id).await?;
    stored_version(&st, &found, req.job_version).await?;
    let key = keys::job_stability(&found.namespace, &found.id);
    let mut index = None;
    for _ in 0..3 {
        let (mut marks, rev) = match kv::get_json::<StabilityMarks>(st.store.as_ref(), &key).await?
        {
            Some(e) => (e.value, e.mod_revision),
            None => (StabilityMarks::default(), 0),
        };
        marks.versions.insert(req.job_version, req.stable);
        match kv::put_if(st.store.as_ref(), &key, &marks, rev).await {
            Ok(i) => {
                index = Some(i);
                break;
            }
            Err(ServerError::Conflict(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    let index =
        index.ok_or_else(|| ServerError::Conflict(format!("{key} keeps changing; try again")))?;
    Ok(Answer::new(
        json!({"Index": index, "JobModifyIndex": index}),
        index,
        &q,
    ))
}

/// The body of a scale.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ScaleRequest {
    pub count: Option<i64>,
    pub target: IndexMap<String, String>,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub error: bool,
    #[serde(default)]
    pub meta: Option<IndexMap<String, Value>>,
    #[serde(default)]
    pub policy_override: bool,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default, rename = "SecretID")]
    pub secret_id: String,
}

/// The group a scale names, and the count it asks for, checked.
fn scale_target(req: &ScaleRequest, job: &Job) -> Result<(String, Option<u32>), ServerError> {
    if req.message.len() > MAX_SCALE_MESSAGE
        || req.meta.as_ref().map_or(0, |m| m.len()) > MAX_SCALE_META
    {
        return Err(ServerError::BadRequest(format!(
            "Message: at most {MAX_SCALE_MESSAGE} bytes; Meta: at most {MAX_SCALE_META} entries"
        )));
    }
    if let Some(other) = req
        .target
        .keys()
        .find(|k| !matches!(k.as_str(), "Group" | "Job" | "Namespace"))
    {
        return Err(ServerError::BadRequest(format!(
            "Target: unknown target {other:?} (Group, Job, Namespace)"
        )));
    }
    let group = req
        .target
        .get("Group")
        .ok_or_else(|| ServerError::BadRequest("Target: Group is required".into()))?;
    if !job.groups.iter().any(|g| &g.name == group) {
        return Err(ServerError::BadRequest(format!(
            "Target: job {:?} has no task group {group:?}",
            job.id
        )));
    }
    let count = match req.count {
        None => None,
        Some(n) => Some(u32::try_from(n).map_err(|_| {
            ServerError::BadRequest(format!("Count: {n} is not a count (0 or more)"))
        })?),
    };
    Ok((group.clone(), count))
}

/// `POST|PUT /v1/job/{id}/scale`: sets the group's count (a request without `Count` only
/// records a scaling event in Nomad; Nomos keeps no events and changes nothing).
pub async fn scale(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: QueryOptions,
    JsonBody(req): JsonBody<ScaleRequest>,
) -> Result<Answer<RegisterResponse>, ServerError> {
    let found = locate_job(&st, q.namespace.single(), &id).await?;
    let mut job = found.valid_spec()?.clone();
    let (group, count) = scale_target(&req, &job)?;
    let result = match count {
        Some(count) => {
            if let Some(g) = job.groups.iter_mut().find(|g| g.name == group) {
                g.count = count;
            }
            refuse_invalid(&job)?;
            write_count(&st, &found, &job).await?
        }
        None => ApplyResult {
            namespace: found.namespace.clone(),
            id: found.id.clone(),
            outcome: crate::views::ApplyOutcome::Unchanged,
            modify_index: found.kv.mod_revision,
            changes: Vec::new(),
        },
    };
    let answer = write_answer(&st, result, "job-scaling").await?;
    let index = answer.index;
    Ok(Answer::new(answer, index, &q))
}

/// 400 when a job the server made (a scaled job, a dispatched child) breaks a rule, such as a
/// count over the limit.
pub fn refuse_invalid(job: &Job) -> Result<(), ServerError> {
    let errors: Vec<String> = nomos_api::validate::validate(job)
        .into_iter()
        .filter(|i| i.severity == nomos_api::Severity::Error)
        .map(|i| format!("{}: {}", i.path, i.message))
        .collect();
    if errors.is_empty() {
        return Ok(());
    }
    Err(ServerError::BadRequest(errors.join("; ")))
}

/// Writes a scaled spec over the one it was read from (409 when it changed meanwhile).
async fn write_count(
    st: &AppState,
    found: &FoundJob,
    job: &Job,
) -> Result<ApplyResult, ServerError> {
    let old = canonical(found.valid_spec()?);
    let changes = diff_jobs(Some(&old), &canonical(job));
    let outcome = if changes.is_empty() {
        crate::views::ApplyOutcome::Unchanged
    } else {
        crate::views::ApplyOutcome::Updated
    };
    let modify_index = if changes.is_empty() {
        found.kv.mod_revision
    } else {
        kv::put_raw_if(
            st.store.as_ref(),
            &keys::job(&found.namespace, &found.id),
            to_canonical_json(job).into_bytes(),
            found.kv.mod_revision,
        )
        .await?
    };
    Ok(ApplyResult {
        namespace: found.namespace.clone(),
        id: found.id.clone(),
        outcome,
        modify_index,
        changes,
    })
}

/// `GET /v1/job/{id}/scale`: Nomad's `JobScaleStatus`, counted from the job status.
pub async fn scale_status(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: QueryOptions,
) -> Result<Answer<Value>, ServerError> {
    wait_for_change(&st, &q, JOB_PREFIXES).await?;
    let index = read_index(&st).await?;
    let found = locate_job(&st, q.namespace.single(), &id).await?;
    let job = found.valid_spec()?;
    let status = job_status(&st, &found.namespace, &found.id)
        .await?
        .unwrap_or_default();
    let groups: serde_json::Map<String, Value> = job
        .groups
        .iter()
        .map(|g| {
            let s = status.summary.get(&g.name).cloned().unwrap_or_default();
            let counts = json!({
                "Desired": g.count,
                "Placed": s.starting + s.running,
                "Running": s.running,
                "Healthy": s.running,
                "Unhealthy": s.failed,
                "Events": null,
            });
            (g.name.clone(), counts)
        })
        .collect();
    let answer = json!({
        "JobID": found.id,
        "Namespace": found.namespace,
        "JobCreateIndex": found.kv.create_revision,
        "JobModifyIndex": found.kv.mod_revision,
        "JobStopped": job.stop,
        "TaskGroups": groups,
    });
    Ok(Answer::new(answer, index, &q))
}
