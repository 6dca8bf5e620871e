//! Jobs in Nomad's shapes, for the endpoints that have moved so far:
//! - `POST|PUT /v1/jobs/parse` `{"JobHCL", "Variables", "Canonicalize"}`: a job file (HCL2,
//!   with variables in the var-file format) parsed into Nomad's JSON job, as nomad-pack and
//!   the `nomad` CLI ask for it. Nothing is read from the server's disk: `file()` fails.
//! - `POST|PUT /v1/validate/job` `{"Job": {...}}`: Nomad's JSON job checked, answering
//!   `{DriverConfigValidated, ValidationErrors, Error, Warnings}`.
//! - `GET /v1/job/{id}/summary`: Nomad's `JobSummary`, with a periodic job's children counted.
//!
//! Parse and validate errors keep their `file:line:col` positions in the messages.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path, State};
use nomos_api::nomad_out::{job_summary, job_to_nomad, ChildrenSummary, JobMeta};
use nomos_api::{parse_source, Diagnostic, Job, JobStatus, MemFiles, ParseOptions};
use nomos_store::keys;
use serde::Deserialize;
use serde_json::{json, Value};

use super::blocking::{read_index, wait_for_change};
use super::query::QueryOptions;
use super::respond::Answer;
use crate::body::{JsonBody, RawBody};
use crate::error::ServerError;
use crate::kv;
use crate::specs::{job_status, locate_job, running_job, stored_jobs};
use crate::AppState;

/// The name the parse endpoint gives a request's variables (in diagnostics too).
const VARIABLES_FILE: &str = "variables.hcl";
/// The name of the job file a parse request carries (in diagnostics).
const JOB_FILE: &str = "job.nomad.hcl";

/// `POST /v1/jobs/parse`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ParseRequest {
    #[serde(rename = "JobHCL")]
    pub job_hcl: String,
    #[serde(default)]
    pub canonicalize: bool,
    /// HCL2 variables in the var-file format (`name = "value"` lines).
    #[serde(default)]
    pub variables: String,
    /// Nomad's older flag for HCL1; HCL2 is what Nomos reads.
    #[serde(default, rename = "HCLv1")]
    pub hcl_v1: bool,
}

/// Diagnostics as the lines of one error message.
fn diagnostics_text(diags: &[Diagnostic]) -> Vec<String> {
    diags.iter().map(ToString::to_string).collect()
}

/// Parses a job file's text into exactly one job.
fn parse_one(filename: &str, source: &str, options: &ParseOptions) -> Result<Job, ServerError> {
    let parsed = parse_source(filename, source, options).map_err(crate::jobfile::invalid)?;
    match <[Job; 1]>::try_from(parsed.jobs) {
        Ok([job]) => Ok(job),
        Err(jobs) => Err(ServerError::BadRequest(format!(
            "{filename}: expected one job, found {}",
            jobs.len()
        ))),
    }
}

/// `POST|PUT /v1/jobs/parse`.
pub async fn parse(
    q: QueryOptions,
    JsonBody(req): JsonBody<ParseRequest>,
) -> Result<Answer<Value>, ServerError> {
    if req.hcl_v1 {
        return Err(ServerError::BadRequest(
            "HCLv1: Nomos reads HCL2 job files only".into(),
        ));
    }
    let mut options = ParseOptions::default();
    if !req.variables.trim().is_empty() {
        options.var_files = vec![PathBuf::from(VARIABLES_FILE)];
    }
    // The request's variables are the one file a parse may read.
    let files = [(PathBuf::from(VARIABLES_FILE), req.variables)];
    options.files = Some(Arc::new(MemFiles(files.into_iter().collect())));
    let mut job = parse_one(JOB_FILE, &req.job_hcl, &options)?;
    // A file that names no namespace parses into `default`; the request's namespace then
    // applies, as in Nomad.
    if job.namespace.is_empty() || job.namespace == "default" {
        job.namespace = q.namespace.single().to_string();
    }
    // Canonical jobs carry their defaults already, so `Canonicalize` changes nothing.
    let _ = req.canonicalize;
    Ok(Answer::new(job_to_nomad(&job, &JobMeta::default()), 0, &q))
}

/// `POST|PUT /v1/validate/job`: Nomad's JSON job (`{"Job": ...}`), checked without writing.
pub async fn validate(
    q: QueryOptions,
    RawBody(body): RawBody,
) -> Result<Answer<Value>, ServerError> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| ServerError::BadRequest("the body is not UTF-8".into()))?;
    let value = crate::body::parse(text.as_bytes())?;
    if !value.get("Job").is_some_and(Value::is_object) {
        return Err(ServerError::BadRequest(
            "expected {\"Job\": {...}}: a job in Nomad's JSON form".into(),
        ));
    }
    let answer = match parse_source("job.json", text, &ParseOptions::default()) {
        Ok(parsed) => json!({
            "DriverConfigValidated": true,
            "ValidationErrors": null,
            "Error": "",
            "Warnings": warnings_text(&parsed.warnings),
        }),
        Err(diags) => {
            let (errors, warnings): (Vec<_>, Vec<_>) = diags
                .into_iter()
                .partition(|d| d.severity == nomos_api::diag::Severity::Error);
            let lines = diagnostics_text(&errors);
            json!({
                "DriverConfigValidated": true,
                "ValidationErrors": lines,
                "Error": format!("{} error(s) occurred:\n\n* {}", lines.len(), lines.join("\n* ")),
                "Warnings": warnings_text(&warnings),
            })
        }
    };
    Ok(Answer::new(answer, 0, &q))
}

fn warnings_text(warnings: &[Diagnostic]) -> String {
    if warnings.is_empty() {
        return String::new();
    }
    let lines = diagnostics_text(warnings);
    format!("{} warning(s):\n\n* {}", lines.len(), lines.join("\n* "))
}

/// `GET /v1/job/{id}/summary`.
pub async fn summary(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: QueryOptions,
) -> Result<Answer<Value>, ServerError> {
    let ns = q.namespace.single().to_string();
    let prefixes = [
        keys::jobs_prefix(Some(&ns)),
        format!("{}{ns}/", keys::JOB_STATUS_PREFIX),
    ];
    let prefixes: Vec<&str> = prefixes.iter().map(String::as_str).collect();
    wait_for_change(&st, &q, &prefixes).await?;
    let index = read_index(&st).await?;
    let found = locate_job(&st, &ns, &id).await?;
    let (job, _) = running_job(&st, &found).await?;
    let status = job_status(&st, &found.namespace, &found.id)
        .await?
        .unwrap_or_default();
    let meta = JobMeta {
        create_index: found.kv.create_revision.max(0) as u64,
        modify_index: status_index(&status, &found),
        ..JobMeta::default()
    };
    let children = children(&st, &found.namespace, &found.id).await?;
    Ok(Answer::new(
        job_summary(&job, &meta, &status.summary, children),
        index,
        &q,
    ))
}

fn status_index(status: &JobStatus, found: &crate::specs::FoundJob) -> u64 {
    status.observed_revision.max(found.kv.mod_revision).max(0) as u64
}

/// A periodic or parameterized job's children (jobs launched or dispatched from it) by status.
async fn children(st: &AppState, ns: &str, parent: &str) -> Result<ChildrenSummary, ServerError> {
    let statuses: HashMap<String, JobStatus> = kv::list_json::<JobStatus>(
        st.store.as_ref(),
        &format!("{}{ns}/", keys::JOB_STATUS_PREFIX),
    )
    .await?
    .into_iter()
    .map(|e| (e.key, e.value))
    .collect();
    let mut out = ChildrenSummary::default();
    for (_, job) in stored_jobs(st, Some(ns)).await? {
        let Ok(job) = job else { continue };
        if job.parent_id() != Some(parent) {
            continue;
        }
        let status = statuses.get(&keys::job_status(ns, &job.id));
        match status.map(|s| s.status.as_str()) {
            Some("running") => out.running += 1,
            Some("dead") => out.dead += 1,
            _ if job.stop => out.dead += 1,
            _ => out.pending += 1,
        }
    }
    Ok(out)
}
