//! Job reads in Nomad's shapes:
//! - `GET /v1/jobs`: one `JobListStub` per job ([`nomos_api::nomad_out::job_list_stub`]) of the
//!   namespace asked for (`*`: every namespace the caller may `list-jobs` in), after `prefix`
//!   (on the ID), `filter` and paging; the page token is `<namespace>.<id>`, as Nomad's;
//! - `GET /v1/job/{id}`: Nomad's `Job` ([`nomos_api::nomad_out::job_to_nomad`]) for an exact ID
//!   or a unique ID prefix.
//!
//! Both are blocking queries over the spec, status and version keys. What Nomos adds, as extra
//! fields: `Version` on each list entry; `NomosStatus` (what the controllers report: errors,
//! placement failures, the latest deployment, the periodic launch times, the summary) on both;
//! and `InvalidSpec` `{Errors, RunningVersion}` while the spec key holds something that is not
//! a valid job (written straight into the store): the job shown is then the latest accepted
//! version, which keeps running, or, when there is none, a job with only its ID.
//!
//! [`JobDetail::from_nomad`] and [`JobStub`] read these answers back (what `nctl` does).

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::Extension;
use indexmap::IndexMap;
use nomos_api::acl::check::CAP_LIST_JOBS;
use nomos_api::nomad_out::{job_list_stub, job_to_nomad, ChildrenSummary, JobMeta};
use nomos_api::settings::StabilityMarks;
use nomos_api::{GroupSummary, Job, JobStatus, ParseOptions, PeriodicStatus};
use nomos_store::{keys, KeyValue};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::blocking::{read_index, wait_for_change};
use super::query::{Namespaces, QueryOptions};
use super::respond::Answer;
use super::shapes::ms_to_ns;
use crate::acl::Caller;
use crate::error::ServerError;
use crate::kv;
use crate::specs::{
    check_namespace, job_status, locate_job, running_job, split_job_key, stability_marks,
    stored_jobs,
};
use crate::views::{InvalidSpec, JobDetail};
use crate::AppState;

/// The keys a job read depends on: specs, statuses and accepted versions.
pub const JOB_PREFIXES: &[&str] = &[
    keys::JOBS_PREFIX,
    keys::JOB_STATUS_PREFIX,
    keys::JOB_VERSIONS_PREFIX,
    keys::JOB_STABILITY_PREFIX,
];

/// A group's allocation counts, as Nomad's job summary writes them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct GroupCounts {
    pub queued: u32,
    pub starting: u32,
    pub running: u32,
    pub failed: u32,
    pub complete: u32,
    pub lost: u32,
    pub unknown: u32,
}

/// A periodic job's launch times, in Unix nanoseconds (Nomad's time encoding).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PeriodicTimes {
    pub next_launch: Option<i64>,
    pub last_launch: Option<i64>,
    pub last_success: Option<i64>,
    pub last_failure: Option<i64>,
    pub skipped_overlaps: u64,
}

/// The extra `NomosStatus` field: the job status the controllers write, in PascalCase.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NomosStatus {
    pub status: String,
    /// The newest accepted version.
    pub version: u64,
    /// The spec key's modify index the controllers last looked at.
    pub observed_index: i64,
    /// The version the spec at `observed_index` was accepted as.
    pub spec_version: Option<u64>,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    pub summary: IndexMap<String, GroupCounts>,
    pub placement_failures: IndexMap<String, String>,
    #[serde(rename = "LatestDeploymentID")]
    pub latest_deployment_id: String,
    pub stable_version: Option<u64>,
    pub periodic: Option<PeriodicTimes>,
    pub purging: bool,
}

/// The extra `InvalidSpec` field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct InvalidSpecField {
    pub errors: Vec<String>,
    pub running_version: Option<u64>,
}

fn ns_to_ms(ns: Option<i64>) -> Option<i64> {
    ns.map(|n| n / 1_000_000)
}

impl From<&JobStatus> for NomosStatus {
    fn from(s: &JobStatus) -> Self {
        NomosStatus {
            status: s.status.clone(),
            version: s.version,
            observed_index: s.observed_revision,
            spec_version: s.spec_version,
            errors: s.errors.clone(),
            warnings: s.warnings.clone(),
            summary: s
                .summary
                .iter()
                .map(|(g, c)| (g.clone(), GroupCounts::from(c)))
                .collect(),
            placement_failures: s.placement_failures.clone(),
            latest_deployment_id: s.latest_deployment.clone(),
            stable_version: s.stable_version,
            periodic: s.periodic.as_ref().map(|p| PeriodicTimes {
                next_launch: p.next_launch_ms.map(ms_to_ns),
                last_launch: p.last_launch_ms.map(ms_to_ns),
                last_success: p.last_success_ms.map(ms_to_ns),
                last_failure: p.last_failure_ms.map(ms_to_ns),
                skipped_overlaps: p.skipped_overlaps,
            }),
            purging: s.purging,
        }
    }
}

impl From<&NomosStatus> for JobStatus {
    fn from(s: &NomosStatus) -> Self {
        JobStatus {
            status: s.status.clone(),
            version: s.version,
            observed_revision: s.observed_index,
            spec_version: s.spec_version,
            errors: s.errors.clone(),
            warnings: s.warnings.clone(),
            summary: s
                .summary
                .iter()
                .map(|(g, c)| (g.clone(), GroupSummary::from(c)))
                .collect(),
            placement_failures: s.placement_failures.clone(),
            latest_deployment: s.latest_deployment_id.clone(),
            stable_version: s.stable_version,
            periodic: s.periodic.as_ref().map(|p| PeriodicStatus {
                next_launch_ms: ns_to_ms(p.next_launch),
                last_launch_ms: ns_to_ms(p.last_launch),
                last_success_ms: ns_to_ms(p.last_success),
                last_failure_ms: ns_to_ms(p.last_failure),
                skipped_overlaps: p.skipped_overlaps,
            }),
            modified_at_ms: 0,
            purging: s.purging,
            // Answered as each version's `SubmitTime`, not in this view.
            submit_times_ns: Default::default(),
        }
    }
}

impl From<&GroupSummary> for GroupCounts {
    fn from(c: &GroupSummary) -> Self {
        GroupCounts {
            queued: c.queued,
            starting: c.starting,
            running: c.running,
            failed: c.failed,
            complete: c.complete,
            lost: c.lost,
            unknown: c.unknown,
        }
    }
}

impl From<&GroupCounts> for GroupSummary {
    fn from(c: &GroupCounts) -> Self {
        GroupSummary {
            queued: c.queued,
            starting: c.starting,
            running: c.running,
            failed: c.failed,
            complete: c.complete,
            lost: c.lost,
            unknown: c.unknown,
        }
    }
}

/// The status a user sees: the controller's, or `pending` before it wrote one (`dead` for a
/// stopped job).
pub fn display_status(job: &Job, status: Option<&JobStatus>) -> String {
    match status {
        Some(s) if !s.status.is_empty() => s.status.clone(),
        _ if job.stop => "dead".into(),
        _ => "pending".into(),
    }
}

/// Nomad's bookkeeping for a job read from its spec key `kv`.
pub fn job_meta(
    job: &Job,
    kv: &KeyValue,
    status: Option<&JobStatus>,
    marks: Option<&StabilityMarks>,
) -> JobMeta {
    let version = status.map_or(0, |s| s.version);
    let deployed_stable = status.and_then(|s| s.stable_version);
    let index = |rev: i64| u64::try_from(rev).unwrap_or(0);
    JobMeta {
        status: display_status(job, status),
        status_description: String::new(),
        version,
        stable: marks.map_or(deployed_stable == Some(version), |m| {
            m.is_stable(version, deployed_stable)
        }),
        submit_time_ns: status
            .and_then(|s| s.submit_times_ns.get(&version).copied())
            .unwrap_or(0),
        create_index: index(kv.create_revision),
        modify_index: index(
            status
                .map_or(0, |s| s.observed_revision)
                .max(kv.mod_revision),
        ),
        job_modify_index: index(kv.mod_revision),
        stop: job.stop,
        parent_id: job.parent_id().unwrap_or_default().to_string(),
    }
}

/// Adds Nomos's extra fields to a job object or list stub.
fn add_extras(
    out: &mut Value,
    status: Option<&JobStatus>,
    invalid: Option<&InvalidSpec>,
) -> Result<(), ServerError> {
    let Value::Object(map) = out else {
        return Ok(());
    };
    if let Some(s) = status {
        map.insert("NomosStatus".into(), encode(&NomosStatus::from(s))?);
    }
    if let Some(i) = invalid {
        let field = InvalidSpecField {
            errors: i.errors.clone(),
            running_version: i.running_version,
        };
        map.insert("InvalidSpec".into(), encode(&field)?);
    }
    Ok(())
}

fn encode<T: Serialize>(v: &T) -> Result<Value, ServerError> {
    serde_json::to_value(v)
        .map_err(|e| ServerError::Internal(format!("encoding a job's extras: {e}")))
}

/// Every job status of `namespaces`, by key.
async fn statuses(
    st: &AppState,
    namespaces: &Namespaces,
) -> Result<HashMap<String, JobStatus>, ServerError> {
    let prefix = match namespaces {
        Namespaces::One(ns) => format!("{}{ns}/", keys::JOB_STATUS_PREFIX),
        Namespaces::All => keys::JOB_STATUS_PREFIX.to_string(),
    };
    Ok(kv::list_json::<JobStatus>(st.store.as_ref(), &prefix)
        .await?
        .into_iter()
        .map(|e| (e.key, e.value))
        .collect())
}

/// A periodic or parameterized job's children (jobs launched or dispatched from it) by
/// status, from the jobs listed.
fn children_of(parent: &Job, jobs: &[(Job, Option<&JobStatus>)]) -> ChildrenSummary {
    let mut out = ChildrenSummary::default();
    if parent.periodic.is_none() && parent.parameterized.is_none() {
        return out;
    }
    for (job, status) in jobs {
        let is_child =
            job.namespace == parent.namespace && job.parent_id() == Some(parent.id.as_str());
        if !is_child {
            continue;
        }
        match display_status(job, *status).as_str() {
            "running" => out.running += 1,
            "dead" => out.dead += 1,
            _ => out.pending += 1,
        }
    }
    out
}

/// `GET /v1/jobs`.
pub async fn list_jobs(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    q: QueryOptions,
) -> Result<Answer<Vec<Value>>, ServerError> {
    if let Namespaces::One(ns) = &q.namespace {
        check_namespace(ns)?;
    }
    wait_for_change(&st, &q, JOB_PREFIXES).await?;
    let index = read_index(&st).await?;
    let statuses = statuses(&st, &q.namespace).await?;
    let only = match &q.namespace {
        Namespaces::One(ns) => Some(ns.as_str()),
        Namespaces::All => None,
    };
    let mut rows = Vec::new();
    for (kv, spec) in stored_jobs(&st, only).await? {
        let Some((namespace, id)) = split_job_key(&kv) else {
            continue;
        };
        let by_prefix = q.prefix.as_deref().is_none_or(|p| id.starts_with(p));
        if !by_prefix || !caller.acl.allows_namespace(&namespace, CAP_LIST_JOBS) {
            continue;
        }
        let (job, invalid) = match spec {
            Ok(job) => (job, None),
            Err(_) => running_job(&st, &locate_job(&st, &namespace, &id).await?).await?,
        };
        rows.push((job, kv, invalid));
    }
    let jobs: Vec<(Job, Option<&JobStatus>)> = rows
        .iter()
        .map(|(job, _, _)| {
            let status = statuses.get(&keys::job_status(&job.namespace, &job.id));
            (job.clone(), status)
        })
        .collect();
    let mut stubs = Vec::with_capacity(rows.len());
    for ((job, kv, invalid), (_, status)) in rows.iter().zip(&jobs) {
        // A list entry shows no `Stable` (Nomad's `JobListStub` has none).
        let meta = job_meta(job, kv, *status, None);
        let summary = status.map(|s| s.summary.clone()).unwrap_or_default();
        let mut stub = job_list_stub(job, &meta, &summary, children_of(job, &jobs));
        stub["Version"] = Value::from(meta.version);
        add_extras(&mut stub, *status, invalid.as_ref())?;
        stubs.push(stub);
    }
    let mut paging = q.clone();
    paging.prefix = None;
    Ok(Answer::paged(stubs, index, &paging, page_token))
}

/// A list entry's page token: `<namespace>.<id>`.
fn page_token(stub: &Value) -> String {
    let text = |name: &str| stub[name].as_str().unwrap_or_default().to_string();
    format!("{}.{}", text("Namespace"), text("ID"))
}

/// `GET /v1/job/{id}`.
pub async fn get_job(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: QueryOptions,
) -> Result<Answer<Value>, ServerError> {
    let ns = q.namespace.single().to_string();
    check_namespace(&ns)?;
    wait_for_change(&st, &q, JOB_PREFIXES).await?;
    let index = read_index(&st).await?;
    let found = locate_job(&st, &ns, &id).await?;
    let (job, invalid) = running_job(&st, &found).await?;
    let status = job_status(&st, &found.namespace, &found.id).await?;
    let marks = stability_marks(&st, &found.namespace, &found.id).await?;
    let meta = job_meta(&job, &found.kv, status.as_ref(), marks.as_ref());
    let mut out = job_to_nomad(&job, &meta);
    add_extras(&mut out, status.as_ref(), invalid.as_ref())?;
    Ok(Answer::new(out, index, &q))
}

/// One entry of `GET /v1/jobs` as a client reads it (the fields `nctl` shows).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct JobStub {
    #[serde(rename = "ID")]
    pub id: String,
    pub name: String,
    pub namespace: String,
    #[serde(rename = "Type")]
    pub job_type: String,
    pub priority: i32,
    pub stop: bool,
    pub status: String,
    pub version: u64,
    pub job_modify_index: i64,
    pub job_summary: StubSummary,
    pub invalid_spec: Option<InvalidSpecField>,
}

/// The summary inside a [`JobStub`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct StubSummary {
    #[serde(deserialize_with = "null_as_empty")]
    pub summary: IndexMap<String, GroupCounts>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<IndexMap<String, GroupCounts>, D::Error> {
    Ok(Option::deserialize(d)?.unwrap_or_default())
}

impl JobStub {
    /// Allocations running, over every group.
    pub fn running(&self) -> u32 {
        self.job_summary.summary.values().map(|c| c.running).sum()
    }
}

impl JobDetail {
    /// Reads `GET /v1/job/{id}`'s answer back: the job from Nomad's JSON, its job modify
    /// index, and the extras.
    pub fn from_nomad(value: &Value) -> Result<JobDetail, String> {
        let modify_index = value["JobModifyIndex"].as_i64().unwrap_or(0);
        let status = match value.get("NomosStatus") {
            Some(s) => Some(decode::<NomosStatus>(s)?),
            None => None,
        };
        let invalid_spec = match value.get("InvalidSpec") {
            Some(i) => {
                let field = decode::<InvalidSpecField>(i)?;
                Some(InvalidSpec {
                    errors: field.errors,
                    running_version: field.running_version,
                })
            }
            None => None,
        };
        // A job that never had an accepted version has nothing else to read.
        let job = if invalid_spec
            .as_ref()
            .is_some_and(|i| i.running_version.is_none())
        {
            Job {
                id: value["ID"].as_str().unwrap_or_default().to_string(),
                name: value["Name"].as_str().unwrap_or_default().to_string(),
                namespace: value["Namespace"].as_str().unwrap_or_default().to_string(),
                ..Job::default()
            }
        } else {
            job_from_nomad(value)?
        };
        Ok(JobDetail {
            job,
            modify_index,
            status: status.as_ref().map(JobStatus::from),
            invalid_spec,
        })
    }
}

fn decode<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, String> {
    serde_json::from_value(v.clone()).map_err(|e| format!("reading the job's extras: {e}"))
}

/// A job in Nomad's JSON read into the canonical job (defaults applied, validated).
pub fn job_from_nomad(value: &Value) -> Result<Job, String> {
    let mut job = value.clone();
    if let Value::Object(map) = &mut job {
        map.remove("NomosStatus");
        map.remove("InvalidSpec");
    }
    let text = serde_json::json!({ "Job": job }).to_string();
    let parsed =
        nomos_api::parse_source("job.json", &text, &ParseOptions::default()).map_err(|diags| {
            let lines: Vec<String> = diags.iter().map(ToString::to_string).collect();
            lines.join("; ")
        })?;
    parsed
        .jobs
        .into_iter()
        .next()
        .ok_or_else(|| "the answer holds no job".to_string())
}
