//! What the job endpoints share, and those not yet in Nomad's shapes: writing one job
//! ([`apply_job`]: validate and write `/nomos/jobs/<ns>/<job>` as canonical JSON, optionally
//! guarded by a check-index), stopping or purging one ([`stop_or_purge`]), the job's
//! allocations and deployments, the forced garbage collection, and
//! the web UI's job rows and job view. Writes compare the spec key's mod_revision, so a
//! concurrent writer is reported as a conflict rather than overwritten. A spec key holding no
//! valid job (written straight into the store) is read, stopped, purged, reverted and applied
//! over through [`crate::specs`]: what runs is then its latest accepted version. The endpoints
//! in Nomad's shapes are in [`crate::nomad`].

use axum::extract::{Path, State};
use axum::Json;
use nomos_api::acl::check::CAP_LIST_JOBS;
use nomos_api::{to_canonical_json, Job, JobStatus, JobType};
use nomos_store::keys;
use serde_json::Value;

use crate::acl::Caller;
use crate::diff::{diff_jobs, Change};
use crate::error::ServerError;
use crate::kv::{self, Entry};
use crate::nomad::allocs::AllocStub;
use crate::nomad::job_reads::display_status;
use crate::specs::{job_status, latest_accepted, locate_job, running_job, FoundJob};
use crate::views::*;
use crate::AppState;

pub use crate::specs::{find_job, job_versions, read_spec, split_job_key, stored_jobs};

/// `GET /v1/status`.
pub async fn status(State(st): State<AppState>) -> Result<Json<StatusView>, ServerError> {
    let s = st.store.status().await?;
    Ok(Json(StatusView {
        version: env!("CARGO_PKG_VERSION").to_string(),
        revision: s.revision,
        compact_revision: s.compact_revision,
    }))
}

/// The web UI's job rows: every job of `ns` (`None`: every namespace) that the caller may
/// `list-jobs` in, with its status and summary. (The API lists jobs in Nomad's shape:
/// [`crate::nomad::job_reads`].)
pub async fn list_entries(
    st: &AppState,
    caller: &Caller,
    ns: Option<&str>,
) -> Result<Vec<JobListEntry>, ServerError> {
    ns.map(crate::specs::check_namespace).transpose()?;
    let specs = stored_jobs(st, ns).await?;
    let statuses: Vec<Entry<JobStatus>> =
        kv::list_json(st.store.as_ref(), keys::JOB_STATUS_PREFIX).await?;
    let mut out = Vec::new();
    for (kv, job) in specs {
        let Some((namespace, id)) = split_job_key(&kv) else {
            continue;
        };
        if !caller.acl.allows_namespace(&namespace, CAP_LIST_JOBS) {
            continue;
        }
        let status = statuses
            .iter()
            .find(|s| s.key == keys::job_status(&namespace, &id))
            .map(|s| s.value.clone());
        let entry = match job {
            Ok(job) => JobListEntry {
                namespace,
                id,
                name: job.name.clone(),
                job_type: type_name(job.job_type),
                priority: job.priority,
                stop: job.stop,
                status: display_status(&job, status.as_ref()),
                version: status.as_ref().map(|s| s.version).unwrap_or(0),
                summary: status.map(|s| s.summary).unwrap_or_default(),
                modify_index: kv.mod_revision,
            },
            Err(_) => JobListEntry {
                namespace,
                name: id.clone(),
                id,
                job_type: String::new(),
                priority: 0,
                stop: false,
                status: "invalid".into(),
                version: status.as_ref().map(|s| s.version).unwrap_or(0),
                summary: status.map(|s| s.summary).unwrap_or_default(),
                modify_index: kv.mod_revision,
            },
        };
        out.push(entry);
    }
    Ok(out)
}

/// `service`, `batch`, `system` or `sysbatch`.
pub fn type_name(t: JobType) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The web UI's view of one job: the spec, or, while the spec key holds something that is not
/// a valid job, the latest accepted version (what runs) with the spec's errors in
/// `invalid_spec`. (The API answers in Nomad's shape: [`crate::nomad::job_reads`].)
pub async fn detail(st: &AppState, ns: &str, id: &str) -> Result<JobDetail, ServerError> {
    let found = locate_job(st, ns, id).await?;
    let (job, invalid_spec) = running_job(st, &found).await?;
    let status = job_status(st, &found.namespace, &found.id).await?;
    Ok(JobDetail {
        job,
        modify_index: found.kv.mod_revision,
        status,
        invalid_spec,
    })
}

/// The change an apply reports when it replaces a spec key's invalid value.
fn replaced_invalid_spec() -> Change {
    Change {
        path: "spec".into(),
        kind: crate::diff::ChangeKind::Changed,
        old: Some(Value::String("not a valid job".into())),
        new: Some(Value::String("a valid job".into())),
    }
}

/// A submitted job compared with what is stored.
pub(crate) struct Comparison {
    pub outcome: ApplyOutcome,
    pub changes: Vec<Change>,
    /// The stored spec's modify index; 0 when there is none.
    pub stored_index: i64,
    /// The job the changes are counted from: the stored spec, or the latest accepted version
    /// when the stored value is not a valid job; `None` for a new job.
    pub previous: Option<Job>,
}

/// Compares `job` with what is stored. A stored value that is not a valid job is compared
/// through the latest accepted version (what runs), and is always rewritten.
pub(crate) async fn compare_with_stored(
    st: &AppState,
    job: &Job,
) -> Result<Comparison, ServerError> {
    let key = keys::job(&job.namespace, &job.id);
    let new_value = serde_json::to_value(job).unwrap_or(Value::Null);
    let Some(kv) = kv::get_raw(st.store.as_ref(), &key).await? else {
        return Ok(Comparison {
            outcome: ApplyOutcome::Created,
            changes: diff_jobs(None, &new_value),
            stored_index: 0,
            previous: None,
        });
    };
    if let Ok(old) = read_spec(&kv) {
        let outcome = if &old == job {
            ApplyOutcome::Unchanged
        } else {
            ApplyOutcome::Updated
        };
        let old_value = serde_json::to_value(&old).unwrap_or(Value::Null);
        return Ok(Comparison {
            outcome,
            changes: diff_jobs(Some(&old_value), &new_value),
            stored_index: kv.mod_revision,
            previous: Some(old),
        });
    }
    let mut changes = vec![replaced_invalid_spec()];
    let accepted = latest_accepted(st, &job.namespace, &job.id).await?;
    if let Some((_, accepted)) = &accepted {
        let old_value = serde_json::to_value(accepted).unwrap_or(Value::Null);
        changes.extend(diff_jobs(Some(&old_value), &new_value));
    }
    Ok(Comparison {
        outcome: ApplyOutcome::Updated,
        changes,
        stored_index: kv.mod_revision,
        previous: accepted.map(|(_, job)| job),
    })
}

/// Writes one job unless it is unchanged; honours a check-index.
pub async fn apply_job(
    st: &AppState,
    job: &Job,
    check_index: Option<i64>,
) -> Result<ApplyResult, ServerError> {
    let Comparison {
        outcome,
        changes,
        stored_index,
        ..
    } = compare_with_stored(st, job).await?;
    if let Some(want) = check_index {
        if want != stored_index {
            return Err(ServerError::Conflict(format!(
                "check-index {want} does not match job {:?}'s modify index {stored_index}",
                job.id
            )));
        }
    }
    let modify_index = if outcome == ApplyOutcome::Unchanged {
        stored_index
    } else {
        let key = keys::job(&job.namespace, &job.id);
        kv::put_raw_if(
            st.store.as_ref(),
            &key,
            to_canonical_json(job).into_bytes(),
            stored_index,
        )
        .await?
    };
    Ok(ApplyResult {
        namespace: job.namespace.clone(),
        id: job.id.clone(),
        outcome,
        modify_index,
        changes,
    })
}

/// Stops a found job (writes its spec back with `stop = true`) or, with `purge`, deletes its
/// spec key with its submissions. A spec key holding an invalid value is purged as it is, or
/// stopped by writing the latest accepted version back with `stop = true`.
pub(crate) async fn stop_or_purge(
    st: &AppState,
    found: FoundJob,
    purge: bool,
) -> Result<ApplyResult, ServerError> {
    let key = found.kv.key_utf8()?.to_string();
    if purge {
        let rev = kv::delete_if(st.store.as_ref(), &key, found.kv.mod_revision).await?;
        let submissions = keys::job_submissions_prefix(&found.namespace, &found.id);
        st.store
            .delete(
                nomos_store::KeySelector::prefix(submissions.into_bytes()),
                nomos_store::DeleteOptions::default(),
            )
            .await?;
        return Ok(ApplyResult {
            namespace: found.namespace,
            id: found.id,
            outcome: ApplyOutcome::Updated,
            modify_index: rev,
            changes: vec![Change {
                path: "job".into(),
                kind: crate::diff::ChangeKind::Removed,
                old: None,
                new: None,
            }],
        });
    }
    let (mut job, mut changes) = stop_base(st, &found).await?;
    if job.stop && changes.is_empty() {
        return Ok(ApplyResult {
            namespace: found.namespace,
            id: found.id,
            outcome: ApplyOutcome::Unchanged,
            modify_index: found.kv.mod_revision,
            changes,
        });
    }
    if !job.stop {
        changes.push(Change {
            path: "stop".into(),
            kind: crate::diff::ChangeKind::Changed,
            old: Some(Value::Bool(false)),
            new: Some(Value::Bool(true)),
        });
    }
    job.stop = true;
    let rev = kv::put_raw_if(
        st.store.as_ref(),
        &key,
        to_canonical_json(&job).into_bytes(),
        found.kv.mod_revision,
    )
    .await?;
    Ok(ApplyResult {
        namespace: found.namespace,
        id: found.id,
        outcome: ApplyOutcome::Updated,
        modify_index: rev,
        changes,
    })
}

/// The job a stop writes back: the spec, or for an invalid spec the latest accepted version
/// (with the change that replaces the invalid value). 409 when an invalid spec has no accepted
/// version to stop: nothing runs, and only a purge or a valid apply helps.
async fn stop_base(st: &AppState, found: &FoundJob) -> Result<(Job, Vec<Change>), ServerError> {
    match &found.spec {
        Ok(job) => Ok((job.clone(), vec![])),
        Err(errors) => match latest_accepted(st, &found.namespace, &found.id).await? {
            Some((_, job)) => Ok((job, vec![replaced_invalid_spec()])),
            None => Err(ServerError::Conflict(format!(
                "job {:?} has no accepted version to stop (its stored spec is invalid: {}); \
                 purge it or apply a valid spec",
                found.id,
                errors.join("; ")
            ))),
        },
    }
}

/// `GET /v1/job/{id}/allocations`: Nomad's allocation stubs, with the query headers and
/// blocking queries of every Nomad read.
pub async fn allocations(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: crate::nomad::QueryOptions,
) -> Result<crate::nomad::Answer<Vec<AllocStub>>, ServerError> {
    let job = locate_job(&st, q.namespace.single(), &id).await?;
    crate::nomad::blocking::wait_for_change(&st, &q, crate::nomad::allocs::ALLOC_PREFIXES).await?;
    let index = crate::nomad::blocking::read_index(&st).await?;
    let stubs = crate::nomad::allocs::job_stubs(&st, &job.namespace, &job.id).await?;
    Ok(crate::nomad::Answer::new(stubs, index, &q))
}

/// `POST /v1/system/gc`: one forced garbage collection pass (every age threshold at zero; the
/// server's other gc settings, such as the versions kept per job).
pub async fn gc(State(st): State<AppState>) -> Result<Json<GcResponse>, ServerError> {
    let config = nomos_controllers::loops::LoopsConfig {
        gc: st.gc.clone(),
        ..Default::default()
    };
    let collected = nomos_controllers::gc::run::force_with(st.store.clone(), config)
        .await
        .map_err(|e| ServerError::Internal(format!("garbage collection failed: {e}")))?;
    Ok(Json(GcResponse { collected }))
}
