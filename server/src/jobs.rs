//! Job handlers: list, get, apply (validate and write `/nomos/jobs/<ns>/<job>` as canonical
//! JSON, optionally guarded by a check-index), plan (the same without writing), stop, purge,
//! versions and revert. Writes compare the spec key's mod_revision, so a concurrent writer is
//! reported as a conflict rather than overwritten.

use axum::extract::{Path, Query, State};
use axum::Json;
use nomos_api::{to_canonical_json, Job, JobStatus, JobType};
use nomos_store::keys;
use nomos_store::{KeyValue, RangeOptions};
use serde::Deserialize;
use serde_json::Value;

use crate::body::{JsonBody, RawBody};
use crate::diff::{diff_jobs, Change};
use crate::error::ServerError;
use crate::jobfile::{jobs_from_body, JobsInput};
use crate::kv::{self, Entry};
use crate::views::*;
use crate::AppState;

/// `?namespace=` (default `default`; `*` lists every namespace).
#[derive(Debug, Deserialize, Default)]
pub struct NsQuery {
    pub namespace: Option<String>,
    pub prefix: Option<String>,
    pub check_index: Option<i64>,
    pub purge: Option<bool>,
}

impl NsQuery {
    pub fn ns(&self) -> &str {
        self.namespace
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or("default")
    }
}

/// `GET /v1/status`.
pub async fn status(State(st): State<AppState>) -> Result<Json<StatusView>, ServerError> {
    let s = st.store.status().await?;
    Ok(Json(StatusView {
        version: env!("CARGO_PKG_VERSION").to_string(),
        revision: s.revision,
        compact_revision: s.compact_revision,
    }))
}

/// Decodes a stored spec: canonical JSON first, then anything `parse_stored_spec` accepts
/// (a manifest written by GitOps or etcdctl).
pub fn read_spec(kv: &KeyValue) -> Result<Job, ServerError> {
    if let Ok(job) = serde_json::from_slice::<Job>(&kv.value) {
        return Ok(job);
    }
    let key = kv.key_str().into_owned();
    match nomos_api::parse_stored_spec(&key, &kv.value) {
        Ok(parsed) if !parsed.jobs.is_empty() => {
            Ok(parsed.jobs.into_iter().next().unwrap_or_default())
        }
        Ok(_) => Err(ServerError::Corrupt {
            key,
            message: "no job in the value".into(),
        }),
        Err(diags) => Err(ServerError::Corrupt {
            key,
            message: diags
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        }),
    }
}

/// `(namespace, id)` of a spec key.
pub fn split_job_key(key: &str) -> Option<(String, String)> {
    let rest = key.strip_prefix(keys::jobs_prefix(None).as_str())?;
    let (ns, id) = rest.split_once('/')?;
    Some((ns.to_string(), id.to_string()))
}

/// Every stored spec under a namespace (`None`: all), with its key metadata.
pub async fn stored_jobs(
    st: &AppState,
    namespace: Option<&str>,
) -> Result<Vec<(KeyValue, Result<Job, ServerError>)>, ServerError> {
    let resp = st
        .store
        .range(
            nomos_store::KeySelector::prefix(keys::jobs_prefix(namespace)),
            RangeOptions::default(),
        )
        .await?;
    Ok(resp
        .kvs
        .into_iter()
        .map(|kv| {
            let job = read_spec(&kv);
            (kv, job)
        })
        .collect())
}

/// Finds one job by exact id or unique id prefix.
pub async fn find_job(st: &AppState, ns: &str, id: &str) -> Result<(Job, KeyValue), ServerError> {
    // Nomad names a periodic child `<job>/periodic-<secs>`; here its id has a '-' for the '/'
    // (ids cannot hold '/'), and either spelling finds it.
    let id = &id.replacen("/periodic-", "-periodic-", 1);
    if let Some(kv) = kv::get_raw(st.store.as_ref(), &keys::job(ns, id)).await? {
        let job = read_spec(&kv)?;
        return Ok((job, kv));
    }
    let all = stored_jobs(st, Some(ns)).await?;
    let ids: Vec<String> = all
        .iter()
        .filter_map(|(kv, _)| split_job_key(&kv.key_str()).map(|(_, i)| i))
        .collect();
    let found = kv::resolve_prefix(&ids, id, "job", |s| s.as_str())?.clone();
    let (kv, job) = all
        .into_iter()
        .find(|(kv, _)| split_job_key(&kv.key_str()).is_some_and(|(_, i)| i == found))
        .ok_or_else(|| ServerError::NotFound(format!("job {id:?} not found")))?;
    Ok((job?, kv))
}

async fn job_status(st: &AppState, ns: &str, id: &str) -> Result<Option<JobStatus>, ServerError> {
    Ok(
        kv::get_json::<JobStatus>(st.store.as_ref(), &keys::job_status(ns, id))
            .await?
            .map(|e| e.value),
    )
}

/// `GET /v1/jobs`.
pub async fn list(
    State(st): State<AppState>,
    Query(q): Query<NsQuery>,
) -> Result<Json<Vec<JobListEntry>>, ServerError> {
    let ns = match q.namespace.as_deref() {
        Some("*") => None,
        _ => Some(q.ns()),
    };
    let specs = stored_jobs(&st, ns).await?;
    let statuses: Vec<Entry<JobStatus>> =
        kv::list_json(st.store.as_ref(), keys::JOB_STATUS_PREFIX).await?;
    let mut out = Vec::new();
    for (kv, job) in specs {
        let Some((namespace, id)) = split_job_key(&kv.key_str()) else {
            continue;
        };
        if q.prefix.as_deref().is_some_and(|p| !id.starts_with(p)) {
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
    Ok(Json(out))
}

/// `service`, `batch`, `system` or `sysbatch`.
pub fn type_name(t: JobType) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The status a user sees: the controller's, or `pending` before it wrote one; a stopped job
/// whose controller has not caught up yet shows `dead` only once the controller says so.
fn display_status(job: &Job, status: Option<&JobStatus>) -> String {
    match status {
        Some(s) if !s.status.is_empty() => s.status.clone(),
        _ if job.stop => "dead".into(),
        _ => "pending".into(),
    }
}

/// `GET /v1/job/{id}`.
pub async fn get(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<NsQuery>,
) -> Result<Json<JobDetail>, ServerError> {
    let (job, kv) = find_job(&st, q.ns(), &id).await?;
    let status = job_status(&st, &job.namespace, &job.id).await?;
    Ok(Json(JobDetail {
        job,
        modify_index: kv.mod_revision,
        status,
    }))
}

/// Compares `job` with what is stored: outcome, changes and the stored modify index.
async fn compare_with_stored(
    st: &AppState,
    job: &Job,
) -> Result<(ApplyOutcome, Vec<Change>, i64), ServerError> {
    let key = keys::job(&job.namespace, &job.id);
    let new_value = serde_json::to_value(job).unwrap_or(Value::Null);
    match kv::get_raw(st.store.as_ref(), &key).await? {
        None => Ok((ApplyOutcome::Created, diff_jobs(None, &new_value), 0)),
        Some(kv) => {
            let old = read_spec(&kv).ok();
            let old_value = old.as_ref().and_then(|j| serde_json::to_value(j).ok());
            let outcome = if old.as_ref() == Some(job) {
                ApplyOutcome::Unchanged
            } else {
                ApplyOutcome::Updated
            };
            let changes = match &old_value {
                Some(v) => diff_jobs(Some(v), &new_value),
                None => vec![],
            };
            Ok((outcome, changes, kv.mod_revision))
        }
    }
}

/// Writes one job unless it is unchanged; honours a check-index.
pub async fn apply_job(
    st: &AppState,
    job: &Job,
    check_index: Option<i64>,
) -> Result<ApplyResult, ServerError> {
    let (outcome, changes, stored_index) = compare_with_stored(st, job).await?;
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

/// `POST /v1/jobs`: validate and write.
pub async fn apply(
    State(st): State<AppState>,
    Query(q): Query<NsQuery>,
    RawBody(body): RawBody,
) -> Result<Json<ApplyResponse>, ServerError> {
    let JobsInput {
        jobs,
        warnings,
        check_index,
    } = jobs_from_body(&body)?;
    let check_index = check_index.or(q.check_index);
    let mut results = Vec::new();
    for job in &jobs {
        results.push(apply_job(&st, job, check_index).await?);
    }
    Ok(Json(ApplyResponse {
        jobs: results,
        warnings,
    }))
}

/// `POST /v1/jobs/plan`: what an apply would change, and how each group would move.
pub async fn plan(
    State(st): State<AppState>,
    RawBody(body): RawBody,
) -> Result<Json<PlanResponse>, ServerError> {
    let JobsInput { jobs, warnings, .. } = jobs_from_body(&body)?;
    let allocs = crate::allocs::all_allocs(&st).await?;
    let nodes = crate::nodes::all_nodes(&st).await?;
    let st_specs: Vec<Job> = stored_jobs(&st, None)
        .await?
        .into_iter()
        .filter_map(|(_, j)| j.ok())
        .collect();
    let mut out = Vec::new();
    for job in &jobs {
        let (outcome, changes, modify_index) = compare_with_stored(&st, job).await?;
        let existing = |group: &str| {
            allocs
                .iter()
                .filter(|a| {
                    a.allocation.namespace == job.namespace
                        && a.allocation.job_id == job.id
                        && a.allocation.task_group == group
                        && a.allocation.desired_status == nomos_api::DesiredStatus::Run
                        && !a.client_status().is_terminal()
                })
                .count() as u32
        };
        let mut groups: Vec<PlanGroup> = job
            .groups
            .iter()
            .map(|g| {
                let n = existing(&g.name);
                let touched = changes
                    .iter()
                    .any(|c| c.path.starts_with(&format!("groups[{}]", g.name)))
                    || changes.iter().any(|c| !c.path.starts_with("groups"));
                // A change the running allocations can take in place (count, priority,
                // restart policy...) moves nothing; a destructive one replaces every copy.
                let destructive = st_specs
                    .iter()
                    .find(|s| s.namespace == job.namespace && s.id == job.id)
                    .and_then(|s| s.groups.iter().find(|sg| sg.name == g.name))
                    .is_none_or(|old| {
                        nomos_controllers::reconcile::needs_destructive_update(old, g)
                    });
                let action = if job.stop && n > 0 {
                    "destroy"
                } else if n == 0 && g.count > 0 && !job.stop {
                    "create"
                } else if outcome == ApplyOutcome::Updated && touched && destructive {
                    "update"
                } else if outcome == ApplyOutcome::Updated && touched {
                    "in-place"
                } else {
                    "none"
                };
                let mut pg = PlanGroup {
                    name: g.name.clone(),
                    count: g.count,
                    existing: n,
                    action: action.to_string(),
                    feasible_nodes: Some(crate::nodes::feasible_nodes(job, g, &nodes)),
                    placed: 0,
                    placements: Default::default(),
                    placement_failure: None,
                };
                if !job.stop && (action == "create" || action == "update" || n < g.count) {
                    crate::dryrun::place_group(
                        &st_specs,
                        &nodes,
                        &allocs,
                        job,
                        g,
                        action == "update",
                        &mut pg,
                    );
                }
                pg
            })
            .collect();
        for a in allocs
            .iter()
            .filter(|a| a.allocation.job_id == job.id && a.allocation.namespace == job.namespace)
        {
            let g = &a.allocation.task_group;
            if !job.groups.iter().any(|jg| &jg.name == g) && !groups.iter().any(|pg| &pg.name == g)
            {
                groups.push(PlanGroup {
                    name: g.clone(),
                    count: 0,
                    existing: existing(g),
                    action: "destroy".into(),
                    feasible_nodes: None,
                    placed: 0,
                    placements: Default::default(),
                    placement_failure: None,
                });
            }
        }
        out.push(PlanResult {
            namespace: job.namespace.clone(),
            id: job.id.clone(),
            outcome,
            changes,
            modify_index,
            groups,
        });
    }
    Ok(Json(PlanResponse {
        jobs: out,
        warnings,
    }))
}

/// `POST /v1/job/{id}/stop` (`?purge=true` or `{"purge": true}` deletes the spec).
pub async fn stop(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<NsQuery>,
    JsonBody(req): JsonBody<StopRequest>,
) -> Result<Json<ApplyResult>, ServerError> {
    let (mut job, kv) = find_job(&st, q.ns(), &id).await?;
    let key = kv.key_str().into_owned();
    if req.purge || q.purge.unwrap_or(false) {
        let rev = kv::delete_if(st.store.as_ref(), &key, kv.mod_revision).await?;
        return Ok(Json(ApplyResult {
            namespace: job.namespace,
            id: job.id,
            outcome: ApplyOutcome::Updated,
            modify_index: rev,
            changes: vec![Change {
                path: "job".into(),
                kind: crate::diff::ChangeKind::Removed,
                old: None,
                new: None,
            }],
        }));
    }
    if job.stop {
        return Ok(Json(ApplyResult {
            namespace: job.namespace,
            id: job.id,
            outcome: ApplyOutcome::Unchanged,
            modify_index: kv.mod_revision,
            changes: vec![],
        }));
    }
    job.stop = true;
    let rev = kv::put_raw_if(
        st.store.as_ref(),
        &key,
        to_canonical_json(&job).into_bytes(),
        kv.mod_revision,
    )
    .await?;
    Ok(Json(ApplyResult {
        namespace: job.namespace,
        id: job.id,
        outcome: ApplyOutcome::Updated,
        modify_index: rev,
        changes: vec![Change {
            path: "stop".into(),
            kind: crate::diff::ChangeKind::Changed,
            old: Some(Value::Bool(false)),
            new: Some(Value::Bool(true)),
        }],
    }))
}

/// `DELETE /v1/job/{id}`: purge the spec.
pub async fn purge(
    st: State<AppState>,
    id: Path<String>,
    Query(mut q): Query<NsQuery>,
) -> Result<Json<ApplyResult>, ServerError> {
    q.purge = Some(true);
    stop(st, id, Query(q), JsonBody(StopRequest { purge: true })).await
}

/// Every stored version of a job, oldest first.
pub async fn job_versions(
    st: &AppState,
    ns: &str,
    id: &str,
) -> Result<Vec<JobVersionView>, ServerError> {
    let entries: Vec<Entry<Value>> =
        kv::list_json(st.store.as_ref(), &keys::job_versions_prefix(ns, id)).await?;
    let stable = job_status(st, ns, id).await?.and_then(|s| s.stable_version);
    let mut out = Vec::new();
    for e in entries {
        let Some(version) = e.key.rsplit('/').next().and_then(|v| v.parse::<u64>().ok()) else {
            continue;
        };
        let job = serde_json::from_value::<Job>(e.value.clone())
            .ok()
            .or_else(|| {
                e.value
                    .get("job")
                    .and_then(|j| serde_json::from_value(j.clone()).ok())
            })
            .or_else(|| {
                e.value
                    .get("spec")
                    .and_then(|j| serde_json::from_value(j.clone()).ok())
            });
        out.push(JobVersionView {
            version,
            job,
            stable: stable == Some(version),
            raw: e.value,
            modify_index: e.mod_revision,
        });
    }
    out.sort_by_key(|v| v.version);
    Ok(out)
}

/// `GET /v1/job/{id}/versions`.
pub async fn versions(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<NsQuery>,
) -> Result<Json<Vec<JobVersionView>>, ServerError> {
    let (job, _) = find_job(&st, q.ns(), &id).await?;
    Ok(Json(job_versions(&st, &job.namespace, &job.id).await?))
}

/// `POST /v1/job/{id}/revert` `{ "version": N }`: write version N back as the spec.
pub async fn revert(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<NsQuery>,
    JsonBody(req): JsonBody<RevertRequest>,
) -> Result<Json<ApplyResult>, ServerError> {
    let (current, _) = find_job(&st, q.ns(), &id).await?;
    let versions = job_versions(&st, &current.namespace, &current.id).await?;
    let v = versions
        .into_iter()
        .find(|v| v.version == req.version)
        .ok_or_else(|| {
            ServerError::NotFound(format!(
                "job {:?} has no version {}",
                current.id, req.version
            ))
        })?;
    let mut job = v.job.ok_or_else(|| ServerError::Corrupt {
        key: keys::job_version(&current.namespace, &current.id, req.version),
        message: "not a job".into(),
    })?;
    job.stop = false;
    Ok(Json(apply_job(&st, &job, req.check_index).await?))
}

/// `GET /v1/job/{id}/allocations`.
pub async fn allocations(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<NsQuery>,
) -> Result<Json<Vec<AllocView>>, ServerError> {
    let (job, _) = find_job(&st, q.ns(), &id).await?;
    let all = crate::allocs::all_allocs(&st).await?;
    Ok(Json(
        all.into_iter()
            .filter(|a| a.allocation.job_id == job.id && a.allocation.namespace == job.namespace)
            .collect(),
    ))
}

/// `GET /v1/job/{id}/deployments`, newest first.
pub async fn deployments(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<NsQuery>,
) -> Result<Json<Vec<DeploymentView>>, ServerError> {
    let (job, _) = find_job(&st, q.ns(), &id).await?;
    let mut all = crate::deployments::all_deployments(&st).await?;
    all.retain(|d| d.deployment.job_id == job.id && d.deployment.namespace == job.namespace);
    Ok(Json(all))
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

/// `POST /v1/job/{id}/periodic/force`: launches a child of a periodic job now (what
/// `nctl job periodic force` calls). 409 when it cannot launch (not periodic, a child still runs
/// under `prohibit_overlap`, or this second's child exists).
pub async fn periodic_force(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<NsQuery>,
) -> Result<Json<PeriodicForceResponse>, ServerError> {
    let (job, _) = find_job(&st, q.ns(), &id).await?;
    if job.periodic.is_none() {
        return Err(ServerError::Conflict(format!(
            "job `{}` is not periodic",
            job.id
        )));
    }
    let now = nomos_controllers::jobs::now_ms();
    match nomos_controllers::periodic::run::force(st.store.as_ref(), &job.namespace, &job.id, now)
        .await
        .map_err(|e| ServerError::Internal(format!("periodic launch failed: {e}")))?
    {
        Ok(child) => Ok(Json(PeriodicForceResponse {
            namespace: job.namespace,
            child,
        })),
        Err(why) => Err(ServerError::Conflict(why)),
    }
}
