//! Job writes in Nomad's shapes:
//! - register: `POST|PUT /v1/jobs` and `POST|PUT /v1/job/{id}` with `{"Job", "EnforceIndex",
//!   "JobModifyIndex", "PreserveCounts", "PolicyOverride", "Submission"}` (strict decode; the
//!   job is Nomad's JSON job, validated as a job file is). `JobModifyIndex` is the spec key's
//!   modify index: with `EnforceIndex` the write happens only if it still matches (0: the job
//!   must not exist), else 409 in Nomad's words. The spec and its submission (the source text a
//!   client sent along, at most [`MAX_SUBMISSION_BYTES`]) commit in one transaction; the
//!   submission is keyed by the spec's hash, so an accepted version finds it again;
//! - deregister: `DELETE /v1/job/{id}` (`?purge=true` deletes the spec and its submissions;
//!   otherwise the job is stopped);
//! - `GET /v1/job/{id}/submission?version=N`: Nomad's `JobSubmission` of version N.
//!
//! Register answers Nomad's `{EvalID, EvalCreateIndex, JobModifyIndex, Warnings, Index,
//! LastContact, KnownLeader}` plus Nomos's `Outcome` (`created`, `updated`, `unchanged`) and
//! `Changes` (`[{Path, Kind, Old, New}]`: what differs from the stored spec).

use axum::extract::{Path, State};
use axum::Extension;
use indexmap::IndexMap;
use nomos_api::acl::check::CAP_SUBMIT_JOB;
use nomos_api::{parse_source, spec_hash, to_canonical_json, Job, ParseOptions};
use nomos_store::{keys, Compare, CompareOp, Txn, TxnOp};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::evals;
use super::query::QueryOptions;
use super::respond::Answer;
use crate::acl::Caller;
use crate::body::JsonBody;
use crate::diff::Change;
use crate::error::ServerError;
use crate::jobs::{compare_with_stored, Comparison};
use crate::kv;
use crate::specs::{check_namespace, job_versions, locate_job, read_spec};
use crate::views::{ApplyOutcome, DiagnosticView};
use crate::AppState;

/// Largest submission kept: its source, variables and variable flags together.
pub const MAX_SUBMISSION_BYTES: usize = 256 * 1024;

/// The body of a register.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RegisterRequest {
    /// Nomad's JSON job.
    pub job: Value,
    #[serde(default)]
    pub enforce_index: bool,
    #[serde(default)]
    pub job_modify_index: i64,
    /// Keep the stored groups' counts (groups new to the job take theirs from the job).
    #[serde(default)]
    pub preserve_counts: bool,
    /// Sentinel policies are Nomad Enterprise's; Nomos has none to override.
    #[serde(default)]
    pub policy_override: bool,
    #[serde(default)]
    pub submission: Option<Submission>,
    /// Nomad's write-request fields, accepted and not needed (the job names its namespace,
    /// the token comes in its header).
    #[serde(default)]
    pub eval_priority: i64,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default, rename = "SecretID")]
    pub secret_id: String,
    #[serde(default)]
    pub idempotency_token: String,
}

/// The source a job was submitted as.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Submission {
    pub source: String,
    /// `hcl2` or `json`.
    #[serde(default)]
    pub format: String,
    /// The `-var` flags.
    #[serde(default)]
    pub variable_flags: Option<IndexMap<String, String>>,
    /// The variables file's text.
    #[serde(default)]
    pub variables: String,
}

impl Submission {
    fn size(&self) -> usize {
        let flags = self.variable_flags.iter().flatten();
        self.source.len()
            + self.variables.len()
            + flags.map(|(k, v)| k.len() + v.len()).sum::<usize>()
    }
}

/// The answer of a register (and of a deregister, whose extras are empty).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RegisterResponse {
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    pub eval_create_index: i64,
    pub job_modify_index: i64,
    pub warnings: String,
    pub index: i64,
    pub last_contact: i64,
    pub known_leader: bool,
    /// Nomos: the job's ID and namespace, and what the write did.
    #[serde(rename = "JobID")]
    pub job_id: String,
    pub namespace: String,
    pub outcome: String,
    pub changes: Vec<Change>,
}

/// The job of a register: Nomad's JSON read and validated as a job file, in the request's
/// namespace when the job names none. Returns it with its warnings.
pub fn job_of(value: &Value, q: &QueryOptions) -> Result<(Job, Vec<DiagnosticView>), ServerError> {
    if !value.is_object() {
        return Err(ServerError::BadRequest(
            "Job: expected a job in Nomad's JSON form".into(),
        ));
    }
    let text = json!({ "Job": value }).to_string();
    let parsed = parse_source("job.json", &text, &ParseOptions::default())
        .map_err(crate::jobfile::invalid)?;
    let warnings = crate::jobfile::views(&parsed.warnings);
    let Ok([mut job]) = <[Job; 1]>::try_from(parsed.jobs) else {
        return Err(ServerError::BadRequest("Job: expected one job".into()));
    };
    let names_namespace = value
        .get("Namespace")
        .and_then(Value::as_str)
        .is_some_and(|ns| !ns.is_empty());
    if !names_namespace {
        job.namespace = q.namespace.single().to_string();
    }
    Ok((job, warnings))
}

/// 409 unless the stored modify index is the one enforced, in Nomad's words.
fn enforce_index(want: i64, stored: i64) -> Result<(), ServerError> {
    let why = match (want, stored) {
        _ if want == stored => return Ok(()),
        (0, _) => "job already exists".to_string(),
        (_, 0) => "job does not exist".to_string(),
        _ => format!("job exists with conflicting job modify index: {stored}"),
    };
    Err(ServerError::Conflict(format!(
        "Enforcing job modify index {want}: {why}"
    )))
}

/// Takes the stored groups' counts into `job` (`PreserveCounts`).
async fn preserve_counts(st: &AppState, job: &mut Job) -> Result<(), ServerError> {
    let Some(kv) = kv::get_raw(st.store.as_ref(), &keys::job(&job.namespace, &job.id)).await?
    else {
        return Ok(());
    };
    let Ok(stored) = read_spec(&kv) else {
        return Ok(());
    };
    for g in &mut job.groups {
        if let Some(old) = stored.groups.iter().find(|o| o.name == g.name) {
            g.count = old.count;
        }
    }
    Ok(())
}

/// Writes the spec (unless unchanged) and its submission in one transaction that compares the
/// spec key's modify index with `stored_index`. Returns the spec key's modify index after.
async fn write_spec(
    st: &AppState,
    job: &Job,
    stored_index: i64,
    submission: Option<&Submission>,
    unchanged: bool,
    eval: (Vec<Compare>, Vec<TxnOp>),
) -> Result<i64, ServerError> {
    let key = keys::job(&job.namespace, &job.id);
    let (eval_compares, eval_ops) = eval;
    let mut ops = Vec::new();
    if !unchanged {
        ops.push(TxnOp::put(
            key.as_str(),
            to_canonical_json(job).into_bytes(),
        ));
    }
    if let Some(sub) = submission {
        let sub_key = keys::job_submission(&job.namespace, &job.id, &spec_hash(job));
        let value = serde_json::to_vec(sub)
            .map_err(|e| ServerError::Internal(format!("encoding a submission: {e}")))?;
        ops.push(TxnOp::put(sub_key, value));
    }
    let unwritten = ops.is_empty();
    ops.extend(eval_ops);
    let mut compares = vec![Compare::mod_revision(
        key.as_str(),
        CompareOp::Equal,
        stored_index,
    )];
    compares.extend(eval_compares);
    let txn = Txn::new().when(compares).and_then(ops);
    let resp = st.store.txn(txn).await?;
    if !resp.succeeded {
        return Err(ServerError::Conflict(format!(
            "{key} was modified concurrently (expected modify index {stored_index})"
        )));
    }
    Ok(if unchanged || unwritten {
        stored_index
    } else {
        resp.revision
    })
}

/// Registers one job: validated, checked against ACLs, namespaces and the enforced index,
/// then written with its submission.
async fn register(
    st: &AppState,
    caller: &Caller,
    q: &QueryOptions,
    req: RegisterRequest,
    path_id: Option<&str>,
) -> Result<RegisterResponse, ServerError> {
    let (mut job, warnings) = job_of(&req.job, q)?;
    if let Some(id) = path_id.filter(|id| *id != job.id) {
        return Err(ServerError::BadRequest(format!(
            "Job ID does not match: the path names {id:?}, the job is {:?}",
            job.id
        )));
    }
    check_namespace(&job.namespace)?;
    caller.require_namespace(&job.namespace, CAP_SUBMIT_JOB)?;
    crate::namespaces::require_namespaces(st, std::slice::from_ref(&job)).await?;
    if let Some(sub) = &req.submission {
        if sub.size() > MAX_SUBMISSION_BYTES {
            return Err(ServerError::BadRequest(format!(
                "Submission: {} bytes, more than the {MAX_SUBMISSION_BYTES} kept",
                sub.size()
            )));
        }
    }
    if req.preserve_counts {
        preserve_counts(st, &mut job).await?;
    }
    let Comparison {
        outcome,
        changes,
        stored_index,
        ..
    } = compare_with_stored(st, &job).await?;
    if req.enforce_index {
        enforce_index(req.job_modify_index, stored_index)?;
    }
    let unchanged = outcome == ApplyOutcome::Unchanged;
    // The evaluation is written with the spec, so the controllers see both at once and
    // complete it with what they do; they fill in its job modify index.
    let pending = evals::NewEval {
        namespace: job.namespace.clone(),
        job_id: job.id.clone(),
        triggered_by: "job-register".into(),
        ..Default::default()
    };
    let (eval_id, compares, ops) = evals::pending_ops(st, pending).await?;
    let index = write_spec(
        st,
        &job,
        stored_index,
        req.submission.as_ref(),
        unchanged,
        (compares, ops),
    )
    .await?;
    Ok(RegisterResponse {
        eval_id,
        eval_create_index: index,
        job_modify_index: index,
        warnings: warnings_text(&warnings),
        index,
        last_contact: 0,
        known_leader: true,
        job_id: job.id,
        namespace: job.namespace,
        outcome: outcome_word(outcome).into(),
        changes: if unchanged { Vec::new() } else { changes },
    })
}

/// `created`, `updated` or `unchanged`.
pub fn outcome_word(outcome: ApplyOutcome) -> &'static str {
    match outcome {
        ApplyOutcome::Created => "created",
        ApplyOutcome::Updated => "updated",
        ApplyOutcome::Unchanged => "unchanged",
    }
}

/// Warnings as one text, one positioned line each (Nomad's `Warnings` is a string).
fn warnings_text(warnings: &[DiagnosticView]) -> String {
    let lines: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

/// `POST|PUT /v1/jobs`.
pub async fn register_jobs(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    q: QueryOptions,
    JsonBody(req): JsonBody<RegisterRequest>,
) -> Result<Answer<RegisterResponse>, ServerError> {
    let answer = register(&st, &caller, &q, req, None).await?;
    let index = answer.index;
    Ok(Answer::new(answer, index, &q))
}

/// `POST|PUT /v1/job/{id}`.
pub async fn register_job(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    q: QueryOptions,
    JsonBody(req): JsonBody<RegisterRequest>,
) -> Result<Answer<RegisterResponse>, ServerError> {
    let answer = register(&st, &caller, &q, req, Some(&id)).await?;
    let index = answer.index;
    Ok(Answer::new(answer, index, &q))
}

/// `DELETE /v1/job/{id}` (`?purge=true`: delete the spec; otherwise stop the job).
pub async fn deregister(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: QueryOptions,
) -> Result<Answer<RegisterResponse>, ServerError> {
    let found = locate_job(&st, q.namespace.single(), &id).await?;
    let purge = q.flag("purge", false);
    let result = crate::jobs::stop_or_purge(&st, found, purge).await?;
    let index = result.modify_index;
    let eval_id =
        evals::create(&st, &result.namespace, &result.id, "job-deregister", index).await?;
    let answer = RegisterResponse {
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
    };
    Ok(Answer::new(answer, index, &q))
}

/// `GET /v1/job/{id}/submission?version=N`: the source version N was submitted as.
pub async fn submission(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: QueryOptions,
) -> Result<Answer<Value>, ServerError> {
    let version: u64 = q
        .param("version")
        .ok_or_else(|| ServerError::BadRequest("version: required".into()))?
        .parse()
        .map_err(|_| ServerError::BadRequest("version: not a number".into()))?;
    let found = locate_job(&st, q.namespace.single(), &id).await?;
    let versions = job_versions(&st, &found.namespace, &found.id).await?;
    let job = versions
        .into_iter()
        .find(|v| v.version == version)
        .and_then(|v| v.job)
        .ok_or_else(|| {
            ServerError::NotFound(format!("job {:?} has no version {version}", found.id))
        })?;
    let key = keys::job_submission(&found.namespace, &found.id, &spec_hash(&job));
    let entry = kv::get_json::<Submission>(st.store.as_ref(), &key)
        .await?
        .ok_or_else(|| {
            ServerError::NotFound(format!(
                "job {:?} version {version} has no submission",
                found.id
            ))
        })?;
    let sub = entry.value;
    let answer = json!({
        "Source": sub.source,
        "Format": sub.format,
        "VariableFlags": sub.variable_flags,
        "Variables": sub.variables,
        "Namespace": found.namespace,
        "JobID": found.id,
        "Version": version,
        "JobModifyIndex": entry.mod_revision,
    });
    Ok(Answer::new(answer, entry.mod_revision, &q))
}
