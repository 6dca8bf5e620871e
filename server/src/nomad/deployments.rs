//! Deployments in Nomad's shapes: `GET /v1/deployments`, `GET /v1/deployment/{id}`, `GET
//! /v1/deployment/allocations/{id}`, `GET /v1/job/{id}/deployments` and `/deployment` (the
//! latest), and the user's requests on an active (running or paused) deployment: `POST|PUT
//! /v1/deployment/promote/{id}` (`{DeploymentID, All, Groups}`), `/fail/{id}`, `/pause/{id}`
//! (`{DeploymentID, Pause}`) and `/allocation-health/{id}` (`{DeploymentID,
//! HealthyAllocationIDs, UnhealthyAllocationIDs}`). Writes answer Nomad's
//! `DeploymentUpdateResponse`, whose `EvalID` is a pending evaluation (`deployment-watcher`)
//! the jobs controller completes when it carries the request forward.
//!
//! Deployments are written by the jobs controller; each request is written onto the deployment
//! key with a compare on its mod_revision, so a concurrent change (the controller's included)
//! answers 409, to retry. What a request changes is decided by pure functions
//! ([`promote_groups`], [`mark_failed`], [`set_paused`], [`set_health`]) over the deployment
//! read, so their rules are tested without a store.
//!
//! Nomos's additions to the shape: `CreateTime` and `ModifyTime` (Unix ns), and per group
//! nothing more. A deployment is named by its ID or a unique prefix of it.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, State};
use axum::Extension;
use nomos_api::acl::check::CAP_READ_JOB;
use nomos_api::deployment_status as ds;
use nomos_api::eval::triggers;
use nomos_api::{Deployment, DeploymentGroup};
use nomos_store::{keys, KeySelector, RangeOptions};
use serde::{Deserialize, Serialize};

use super::allocs::{stub, AllocStub, Lookup, Parts, ALLOC_PREFIXES};
use super::blocking::{read_index, wait_for_change};
use super::evals::{create_after_write, NewEval};
use super::query::QueryOptions;
use super::respond::Answer;
use super::shapes::{go_time, ms_to_ns, null_empty};
use crate::acl::Caller;
use crate::body::JsonBody;
use crate::error::ServerError;
use crate::kv;
use crate::reads::alloc_rows;
use crate::specs::locate_job;
use crate::AppState;

/// What a deployment answer depends on.
const DEPLOYMENT_PREFIXES: &[&str] = &[keys::DEPLOYMENTS_PREFIX];

/// Most allocation IDs one `allocation-health` request may name.
pub const MAX_HEALTH_ALLOCS: usize = 1024;

/// One group's rollout (Nomad's `DeploymentState`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeploymentStateOut {
    pub auto_revert: bool,
    pub auto_promote: bool,
    /// Nanoseconds.
    pub progress_deadline: i64,
    #[serde(with = "go_time")]
    pub require_progress_by: i64,
    pub promoted: bool,
    #[serde(with = "null_empty")]
    pub placed_canaries: Vec<String>,
    pub desired_canaries: u32,
    pub desired_total: u32,
    pub placed_allocs: u32,
    pub healthy_allocs: u32,
    pub unhealthy_allocs: u32,
}

/// A deployment (Nomad's `Deployment`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeploymentOut {
    #[serde(rename = "ID")]
    pub id: String,
    pub namespace: String,
    #[serde(rename = "JobID")]
    pub job_id: String,
    pub job_version: u64,
    pub job_modify_index: i64,
    pub job_spec_modify_index: i64,
    pub job_create_index: i64,
    pub is_multiregion: bool,
    #[serde(with = "null_empty")]
    pub task_groups: BTreeMap<String, DeploymentStateOut>,
    pub status: String,
    pub status_description: String,
    pub create_index: i64,
    pub modify_index: i64,
    /// Unix nanoseconds.
    pub create_time: i64,
    /// Unix nanoseconds.
    pub modify_time: i64,
}

/// The answer to a deployment write (Nomad's `DeploymentUpdateResponse`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeploymentUpdateResponse {
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    pub eval_create_index: i64,
    pub deployment_modify_index: i64,
    /// The version an `auto_revert` goes back to; the jobs controller decides it after the
    /// write, so this is `null` here (the job's versions show it).
    pub reverted_job_version: Option<u64>,
    pub index: i64,
}

/// `POST|PUT /v1/deployment/promote/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
pub struct PromoteRequest {
    #[serde(rename = "DeploymentID")]
    pub deployment_id: String,
    /// Every group that has canaries.
    pub all: bool,
    /// Only these groups (with `All` false).
    pub groups: Option<Vec<String>>,
}

/// `POST|PUT /v1/deployment/pause/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
pub struct PauseRequest {
    #[serde(rename = "DeploymentID")]
    pub deployment_id: String,
    /// `true` pauses a running deployment, `false` resumes a paused one.
    pub pause: bool,
}

/// `POST|PUT /v1/deployment/allocation-health/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
pub struct AllocHealthRequest {
    #[serde(rename = "DeploymentID")]
    pub deployment_id: String,
    #[serde(rename = "HealthyAllocationIDs")]
    pub healthy_allocation_ids: Option<Vec<String>>,
    #[serde(rename = "UnhealthyAllocationIDs")]
    pub unhealthy_allocation_ids: Option<Vec<String>>,
}

/// The store indexes of each job's versions and spec, which a deployment answer names.
#[derive(Debug, Default)]
struct JobIndexes {
    /// `(namespace, job, version)` -> (create, modify) revision of the version's key.
    versions: BTreeMap<(String, String, u64), (i64, i64)>,
    /// `(namespace, job)` -> create revision of the spec key.
    specs: BTreeMap<(String, String), i64>,
}

impl JobIndexes {
    async fn read(st: &AppState) -> Result<JobIndexes, ServerError> {
        let keys_only = RangeOptions {
            keys_only: true,
            ..Default::default()
        };
        let mut out = JobIndexes::default();
        let versions = st
            .store
            .range(
                KeySelector::prefix(keys::JOB_VERSIONS_PREFIX),
                keys_only.clone(),
            )
            .await?;
        for kv in versions.kvs {
            let Some(key) = kv.key_utf8_or_skip() else {
                continue;
            };
            let Some(rest) = key.strip_prefix(keys::JOB_VERSIONS_PREFIX) else {
                continue;
            };
            let mut parts = rest.rsplitn(2, '/');
            let (Some(ver), Some(ns_job)) = (parts.next(), parts.next()) else {
                continue;
            };
            let (Ok(ver), Some((ns, job))) = (ver.parse::<u64>(), ns_job.split_once('/')) else {
                continue;
            };
            out.versions.insert(
                (ns.to_string(), job.to_string(), ver),
                (kv.create_revision, kv.mod_revision),
            );
        }
        let specs = st
            .store
            .range(KeySelector::prefix(keys::JOBS_PREFIX), keys_only)
            .await?;
        for kv in specs.kvs {
            let Some(key) = kv.key_utf8_or_skip() else {
                continue;
            };
            if let Some((ns, job)) = key
                .strip_prefix(keys::JOBS_PREFIX)
                .and_then(|r| r.split_once('/'))
            {
                out.specs
                    .insert((ns.to_string(), job.to_string()), kv.create_revision);
            }
        }
        Ok(out)
    }
}

/// A deployment in Nomad's shape as an event carries it: from the stored value and its key
/// alone, so the job's indexes read 0.
pub fn event_shape(deployment: Deployment, kv: &nomos_store::KeyValue) -> DeploymentOut {
    let stored = Stored {
        deployment,
        create_index: kv.create_revision,
        modify_index: kv.mod_revision,
    };
    shape(&stored, &JobIndexes::default())
}

/// A deployment in Nomad's shape.
fn shape(v: &Stored, jobs: &JobIndexes) -> DeploymentOut {
    let d = &v.deployment;
    let version_key = (d.namespace.clone(), d.job_id.clone(), d.job_version);
    let (_, version_modify) = jobs.versions.get(&version_key).copied().unwrap_or_default();
    let job_create = jobs
        .specs
        .get(&(d.namespace.clone(), d.job_id.clone()))
        .copied()
        .unwrap_or_default();
    DeploymentOut {
        id: d.id.clone(),
        namespace: d.namespace.clone(),
        job_id: d.job_id.clone(),
        job_version: d.job_version,
        job_modify_index: version_modify,
        job_spec_modify_index: version_modify,
        job_create_index: job_create,
        is_multiregion: false,
        task_groups: d
            .groups
            .iter()
            .map(|(name, g)| (name.clone(), group_shape(g)))
            .collect(),
        status: d.status.to_string(),
        status_description: d.status_description.clone(),
        create_index: v.create_index,
        modify_index: v.modify_index,
        create_time: ms_to_ns(d.created_at_ms),
        modify_time: ms_to_ns(d.modified_at_ms.max(d.created_at_ms)),
    }
}

fn group_shape(g: &DeploymentGroup) -> DeploymentStateOut {
    DeploymentStateOut {
        auto_revert: g.auto_revert,
        auto_promote: g.auto_promote,
        progress_deadline: ms_to_ns(g.progress_deadline_ms),
        require_progress_by: ms_to_ns(g.require_progress_by_ms),
        promoted: g.promoted,
        placed_canaries: g.placed_canaries.clone(),
        desired_canaries: g.desired_canaries,
        desired_total: g.desired_total,
        placed_allocs: g.placed,
        healthy_allocs: g.healthy,
        unhealthy_allocs: g.unhealthy,
    }
}

/// A deployment as stored, with its key's revisions.
#[derive(Debug, Clone)]
pub struct Stored {
    pub deployment: Deployment,
    pub create_index: i64,
    pub modify_index: i64,
}

/// Every deployment, newest first.
pub async fn all_stored(st: &AppState) -> Result<Vec<Stored>, ServerError> {
    let entries: Vec<kv::Entry<Deployment>> =
        kv::list_json(st.store.as_ref(), keys::DEPLOYMENTS_PREFIX).await?;
    let mut out: Vec<Stored> = entries
        .into_iter()
        .map(|e| Stored {
            deployment: e.value,
            create_index: e.create_revision,
            modify_index: e.mod_revision,
        })
        .collect();
    out.sort_by(|a, b| {
        (b.deployment.created_at_ms, b.create_index)
            .cmp(&(a.deployment.created_at_ms, a.create_index))
    });
    Ok(out)
}

/// The deployment named by `id` (its ID or a unique prefix).
pub async fn find(st: &AppState, id: &str) -> Result<Stored, ServerError> {
    let all = all_stored(st).await?;
    kv::resolve_prefix(&all, id, "deployment", |d| d.deployment.id.as_str()).cloned()
}

/// `GET /v1/deployments`.
pub async fn list_deployments(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    q: QueryOptions,
) -> Result<Answer<Vec<DeploymentOut>>, ServerError> {
    wait_for_change(&st, &q, DEPLOYMENT_PREFIXES).await?;
    let index = read_index(&st).await?;
    let mut all = all_stored(&st).await?;
    all.retain(|v| {
        let ns = &v.deployment.namespace;
        q.namespace.covers(ns) && caller.acl.allows_namespace(ns, CAP_READ_JOB)
    });
    let jobs = JobIndexes::read(&st).await?;
    let shaped = all.iter().map(|v| shape(v, &jobs)).collect();
    Ok(Answer::paged(shaped, index, &q, |d| d.id.clone()))
}

/// `GET /v1/deployment/{id}`.
pub async fn get_one(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: QueryOptions,
) -> Result<Answer<DeploymentOut>, ServerError> {
    wait_for_change(&st, &q, DEPLOYMENT_PREFIXES).await?;
    let index = read_index(&st).await?;
    let view = find(&st, &id).await?;
    let jobs = JobIndexes::read(&st).await?;
    Ok(Answer::new(shape(&view, &jobs), index, &q))
}

/// `GET /v1/deployment/allocations/{id}`: the deployment's allocations, as stubs.
pub async fn allocations(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: QueryOptions,
) -> Result<Answer<Vec<AllocStub>>, ServerError> {
    let mut prefixes = DEPLOYMENT_PREFIXES.to_vec();
    prefixes.extend(ALLOC_PREFIXES);
    wait_for_change(&st, &q, &prefixes).await?;
    let index = read_index(&st).await?;
    let view = find(&st, &id).await?;
    let d = &view.deployment;
    let mut rows = alloc_rows(&st).await?;
    rows.retain(|r| r.alloc.deployment_id == d.id && r.alloc.namespace == d.namespace);
    let mut look = Lookup::new(&st, &rows).await?;
    look.load_jobs(&st, &rows).await?;
    let parts = Parts {
        resources: false,
        task_states: true,
    };
    let mut stubs: Vec<AllocStub> = rows.iter().map(|r| stub(r, &look, parts)).collect();
    stubs.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Answer::new(stubs, index, &q))
}

/// The deployments of the job the path names (in the query's namespace), newest first.
async fn of_job(
    st: &AppState,
    id: &str,
    q: &QueryOptions,
) -> Result<Vec<DeploymentOut>, ServerError> {
    let job = locate_job(st, q.namespace.single(), id).await?;
    let mut all = all_stored(st).await?;
    all.retain(|v| v.deployment.job_id == job.id && v.deployment.namespace == job.namespace);
    let jobs = JobIndexes::read(st).await?;
    Ok(all.iter().map(|v| shape(v, &jobs)).collect())
}

/// `GET /v1/job/{id}/deployments`, newest first.
pub async fn job_deployments(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: QueryOptions,
) -> Result<Answer<Vec<DeploymentOut>>, ServerError> {
    wait_for_change(&st, &q, DEPLOYMENT_PREFIXES).await?;
    let index = read_index(&st).await?;
    Ok(Answer::new(of_job(&st, &id, &q).await?, index, &q))
}

/// `GET /v1/job/{id}/deployment`: the job's latest deployment, `null` when it has none.
pub async fn job_latest(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: QueryOptions,
) -> Result<Answer<Option<DeploymentOut>>, ServerError> {
    wait_for_change(&st, &q, DEPLOYMENT_PREFIXES).await?;
    let index = read_index(&st).await?;
    let latest = of_job(&st, &id, &q).await?.into_iter().next();
    Ok(Answer::new(latest, index, &q))
}

/// A user's change to a deployment: `Ok(true)` when it changed something to write.
type Change<'a> = &'a (dyn Fn(&mut Deployment) -> Result<bool, ServerError> + Sync);

/// Applies `change` to an active deployment read as `view` and writes it if it changed
/// anything, comparing the key's mod_revision with the one read. `verb` names the request in
/// the messages.
pub async fn write_change(
    st: &AppState,
    mut view: Stored,
    verb: &str,
    change: Change<'_>,
) -> Result<Stored, ServerError> {
    let d = &mut view.deployment;
    if !d.is_active() {
        return Err(ServerError::Conflict(format!(
            "deployment {} is {}: only a running or paused deployment can be {verb}",
            d.id, d.status
        )));
    }
    if !change(d)? {
        return Ok(view);
    }
    d.modified_at_ms = nomos_api::now_ms();
    let key = keys::deployment(&d.namespace, &d.job_id, &d.id);
    let read_at = view.modify_index;
    view.modify_index = kv::put_if(st.store.as_ref(), &key, &view.deployment, read_at)
        .await
        .map_err(|e| match e {
            ServerError::Conflict(_) => ServerError::Conflict(format!(
                "deployment {} changed while it was being {verb} (it was read at modify \
                 index {read_at}); nothing was written, retry",
                view.deployment.id
            )),
            other => other,
        })?;
    Ok(view)
}

/// A name from a request, cut for an error message.
fn quoted(name: &str) -> String {
    const MAX: usize = 64;
    if name.chars().count() > MAX {
        format!("{:?}...", name.chars().take(MAX).collect::<String>())
    } else {
        format!("{name:?}")
    }
}

/// Promotes the canaries of `groups` (empty: every group that has canaries), as Nomad does:
/// a named group must exist and have canaries, and every group promoted must have all its
/// canaries placed and healthy. Groups already promoted are left as they are.
pub fn promote_groups(d: &mut Deployment, groups: &[String]) -> Result<bool, ServerError> {
    for name in groups {
        let Some(g) = d.groups.get(name) else {
            let known: Vec<&str> = d.groups.keys().map(String::as_str).collect();
            return Err(ServerError::BadRequest(format!(
                "deployment {} has no group {} (its groups: {})",
                d.id,
                quoted(name),
                known.join(", ")
            )));
        };
        if g.desired_canaries == 0 {
            return Err(ServerError::BadRequest(format!(
                "group {} of deployment {} has no canaries to promote",
                quoted(name),
                d.id
            )));
        }
    }
    let chosen: Vec<String> = d
        .groups
        .iter()
        .filter(|(name, g)| g.desired_canaries > 0 && (groups.is_empty() || groups.contains(name)))
        .map(|(name, _)| name.clone())
        .collect();
    if chosen.is_empty() {
        return Err(ServerError::BadRequest(format!(
            "deployment {} has no canaries to promote",
            d.id
        )));
    }
    let unhealthy: Vec<String> = chosen
        .iter()
        .filter_map(|name| {
            let g = &d.groups[name];
            let healthy = g.healthy.min(g.placed_canaries.len() as u32);
            (!g.promoted && healthy < g.desired_canaries).then(|| {
                format!(
                    "group {name:?} has {healthy}/{} healthy canaries",
                    g.desired_canaries
                )
            })
        })
        .collect();
    if !unhealthy.is_empty() {
        return Err(ServerError::BadRequest(format!(
            "deployment {}: cannot promote canaries that are not all healthy: {}",
            d.id,
            unhealthy.join("; ")
        )));
    }
    let mut changed = false;
    for name in &chosen {
        if let Some(g) = d.groups.get_mut(name) {
            changed |= !g.promoted;
            g.promoted = true;
        }
    }
    Ok(changed)
}

/// Marks the deployment failed by the user (the controller applies `auto_revert`).
pub fn mark_failed(d: &mut Deployment) -> bool {
    d.status = ds::FAILED;
    d.status_description = ds::DESC_FAILED_BY_USER.into();
    true
}

/// Pauses a running deployment or resumes a paused one; asking for the state it is already in
/// changes nothing.
pub fn set_paused(d: &mut Deployment, pause: bool) -> bool {
    let (status, description) = if pause {
        (ds::PAUSED, ds::DESC_PAUSED)
    } else {
        (ds::RUNNING, ds::DESC_RUNNING)
    };
    if d.status == status {
        return false;
    }
    d.status = status;
    d.status_description = description.into();
    true
}

/// Sets the health of allocations by hand (Nomad's manual health): each must be one of the
/// deployment's (`known` holds its allocation IDs), and none may be named both healthy and
/// unhealthy. Returns whether anything changed.
pub fn set_health(
    d: &mut Deployment,
    known: &BTreeSet<String>,
    healthy: &[String],
    unhealthy: &[String],
) -> Result<bool, ServerError> {
    if healthy.is_empty() && unhealthy.is_empty() {
        return Err(ServerError::BadRequest(
            "HealthyAllocationIDs and UnhealthyAllocationIDs are both empty: name at least \
             one allocation"
                .into(),
        ));
    }
    if healthy.len() + unhealthy.len() > MAX_HEALTH_ALLOCS {
        return Err(ServerError::BadRequest(format!(
            "{} allocations named: at most {MAX_HEALTH_ALLOCS} per request",
            healthy.len() + unhealthy.len()
        )));
    }
    if let Some(both) = healthy.iter().find(|id| unhealthy.contains(id)) {
        return Err(ServerError::BadRequest(format!(
            "allocation {} is named both healthy and unhealthy",
            quoted(both)
        )));
    }
    if let Some(stranger) = healthy
        .iter()
        .chain(unhealthy)
        .find(|id| !known.contains(*id))
    {
        return Err(ServerError::BadRequest(format!(
            "allocation {} is not part of deployment {}",
            quoted(stranger),
            d.id
        )));
    }
    let mut changed = false;
    for (ids, verdict) in [(healthy, true), (unhealthy, false)] {
        for id in ids {
            changed |= d.manual_health.insert(id.clone(), verdict) != Some(verdict);
        }
    }
    Ok(changed)
}

/// Refuses a body whose `DeploymentID` is missing or names another deployment than the path
/// (Nomad requires it and compares).
fn same_deployment(view: &Stored, path_id: &str, named: &str) -> Result<(), ServerError> {
    if named.is_empty() {
        return Err(ServerError::BadRequest("DeploymentID must be set".into()));
    }
    if named != view.deployment.id && named != path_id {
        return Err(ServerError::BadRequest(format!(
            "DeploymentID {} in the body does not match deployment {:?} in the path",
            quoted(named),
            view.deployment.id
        )));
    }
    Ok(())
}

/// The answer to a write: a pending evaluation for the jobs controller to carry the change
/// forward (`deployment-watcher`).
async fn update_response(
    st: &AppState,
    view: &Stored,
) -> Result<Answer<DeploymentUpdateResponse>, ServerError> {
    let d = &view.deployment;
    let new = NewEval {
        namespace: d.namespace.clone(),
        job_id: d.job_id.clone(),
        triggered_by: triggers::DEPLOYMENT_WATCHER.into(),
        deployment_id: d.id.clone(),
        ..Default::default()
    };
    let (eval_id, eval_index) = create_after_write(st, new).await?;
    let eval_index = if eval_index > 0 {
        eval_index
    } else {
        view.modify_index
    };
    let resp = DeploymentUpdateResponse {
        eval_id,
        eval_create_index: eval_index,
        deployment_modify_index: view.modify_index,
        reverted_job_version: None,
        index: eval_index,
    };
    Ok(Answer::new(resp, eval_index, &QueryOptions::default()))
}

/// `POST|PUT /v1/deployment/promote/{id}`: promotes the canaries of every group that has some
/// (`All`) or of `Groups`.
pub async fn promote(
    State(st): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<PromoteRequest>,
) -> Result<Answer<DeploymentUpdateResponse>, ServerError> {
    let view = find(&st, &id).await?;
    same_deployment(&view, &id, &req.deployment_id)?;
    let groups = match (req.all, req.groups) {
        (true, _) => Vec::new(),
        (false, Some(groups)) if !groups.is_empty() => groups,
        (false, _) => {
            return Err(ServerError::BadRequest(
                "name the groups to promote (Groups), or set All".into(),
            ))
        }
    };
    let change = |d: &mut Deployment| promote_groups(d, &groups);
    let view = write_change(&st, view, "promoted", &change).await?;
    update_response(&st, &view).await
}

/// `POST|PUT /v1/deployment/fail/{id}` (Nomad's clients send `{"DeploymentID"}`; no body at
/// all is taken too).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
pub struct FailRequest {
    #[serde(rename = "DeploymentID")]
    pub deployment_id: String,
}

/// `POST|PUT /v1/deployment/fail/{id}`: marks an active deployment failed (`auto_revert`
/// applies).
pub async fn fail(
    State(st): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<FailRequest>,
) -> Result<Answer<DeploymentUpdateResponse>, ServerError> {
    let view = find(&st, &id).await?;
    if !req.deployment_id.is_empty() {
        same_deployment(&view, &id, &req.deployment_id)?;
    }
    let change = |d: &mut Deployment| Ok(mark_failed(d));
    let view = write_change(&st, view, "failed", &change).await?;
    update_response(&st, &view).await
}

/// `POST|PUT /v1/deployment/pause/{id}`: pauses (no rollout moves) or resumes an active
/// deployment.
pub async fn pause(
    State(st): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<PauseRequest>,
) -> Result<Answer<DeploymentUpdateResponse>, ServerError> {
    let view = find(&st, &id).await?;
    same_deployment(&view, &id, &req.deployment_id)?;
    let verb = if req.pause { "paused" } else { "resumed" };
    let change = |d: &mut Deployment| Ok(set_paused(d, req.pause));
    let view = write_change(&st, view, verb, &change).await?;
    update_response(&st, &view).await
}

/// `POST|PUT /v1/deployment/allocation-health/{id}`: marks allocations of an active
/// deployment healthy or unhealthy by hand; the rollout counts them so.
pub async fn allocation_health(
    State(st): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<AllocHealthRequest>,
) -> Result<Answer<DeploymentUpdateResponse>, ServerError> {
    let view = find(&st, &id).await?;
    same_deployment(&view, &id, &req.deployment_id)?;
    let healthy = req.healthy_allocation_ids.unwrap_or_default();
    let unhealthy = req.unhealthy_allocation_ids.unwrap_or_default();
    let known: BTreeSet<String> = alloc_rows(&st)
        .await?
        .into_iter()
        .filter(|r| r.alloc.deployment_id == view.deployment.id)
        .map(|r| r.alloc.id)
        .collect();
    let change = |d: &mut Deployment| set_health(d, &known, &healthy, &unhealthy);
    let view = write_change(&st, view, "given allocation health", &change).await?;
    update_response(&st, &view).await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use nomos_api::DeploymentGroup;
    use nomos_store::{EmbeddedStore, PutOptions, Store};

    use super::*;

    /// A running deployment `web-v1` with a group `api` (one canary wanted, `placed` of them
    /// placed and `healthy` healthy) and a group `db` without canaries.
    fn deployment(placed: usize, healthy: u32) -> Deployment {
        let mut d = Deployment {
            id: "web-v1".into(),
            namespace: "default".into(),
            job_id: "web".into(),
            job_version: 1,
            status: ds::RUNNING,
            status_description: ds::DESC_RUNNING.into(),
            ..Default::default()
        };
        d.groups.insert(
            "api".into(),
            DeploymentGroup {
                desired_total: 3,
                desired_canaries: 1,
                placed_canaries: (0..placed).map(|i| format!("c{i}")).collect(),
                placed: placed as u32,
                healthy,
                ..Default::default()
            },
        );
        d.groups.insert(
            "db".into(),
            DeploymentGroup {
                desired_total: 1,
                ..Default::default()
            },
        );
        d
    }

    #[test]
    fn promotion_rules_follow_nomad() {
        let names = |gs: &[&str]| gs.iter().map(|g| g.to_string()).collect::<Vec<_>>();
        // (case, placed canaries, healthy, groups asked for, Ok(promoted api) or Err(message))
        type Case = (
            &'static str,
            usize,
            u32,
            Vec<String>,
            Result<bool, &'static str>,
        );
        let cases: Vec<Case> = vec![
            (
                "all groups with canaries by default",
                1,
                1,
                vec![],
                Ok(true),
            ),
            ("the named group", 1, 1, names(&["api"]), Ok(true)),
            (
                "a group that does not exist",
                1,
                1,
                names(&["nope"]),
                Err("has no group \"nope\" (its groups: api, db)"),
            ),
            (
                "a group without canaries",
                1,
                1,
                names(&["db"]),
                Err("group \"db\" of deployment web-v1 has no canaries"),
            ),
            (
                "a canary not healthy yet",
                1,
                0,
                vec![],
                Err("group \"api\" has 0/1 healthy canaries"),
            ),
            (
                "a canary not placed yet",
                0,
                0,
                names(&["api"]),
                Err("group \"api\" has 0/1 healthy canaries"),
            ),
        ];
        for (case, placed, healthy, groups, want) in cases {
            let mut d = deployment(placed, healthy);
            let got = promote_groups(&mut d, &groups);
            match (got, want) {
                (Ok(changed), Ok(promoted)) => {
                    assert!(changed, "{case}");
                    assert_eq!(d.groups["api"].promoted, promoted, "{case}");
                    assert!(!d.groups["db"].promoted, "{case}: db has no canaries");
                }
                (Err(e), Err(msg)) => {
                    assert!(matches!(e, ServerError::BadRequest(_)), "{case}: {e:?}");
                    assert!(e.to_string().contains(msg), "{case}: {e}");
                    assert!(!d.groups["api"].promoted, "{case}: nothing promoted");
                }
                (got, want) => panic!("{case}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn a_deployment_without_canaries_has_nothing_to_promote() {
        let mut d = deployment(0, 0);
        d.groups.shift_remove("api");
        let e = promote_groups(&mut d, &[]).unwrap_err();
        assert!(e.to_string().contains("no canaries to promote"), "{e}");
    }

    #[test]
    fn a_hostile_group_name_is_cut_in_the_message() {
        let mut d = deployment(1, 1);
        let e = promote_groups(&mut d, &["x".repeat(100_000)]).unwrap_err();
        assert!(e.to_string().len() < 300, "{e}");
    }

    #[test]
    fn pause_and_resume_use_nomads_words_and_repeat_harmlessly() {
        let mut d = deployment(0, 0);
        assert!(set_paused(&mut d, true));
        assert_eq!(
            (d.status, d.status_description.as_str()),
            (ds::PAUSED, ds::DESC_PAUSED)
        );
        assert!(
            !set_paused(&mut d, true),
            "pausing a paused one changes nothing"
        );
        assert!(set_paused(&mut d, false));
        assert_eq!(
            (d.status, d.status_description.as_str()),
            (ds::RUNNING, ds::DESC_RUNNING)
        );
        assert!(
            !set_paused(&mut d, false),
            "resuming a running one changes nothing"
        );
        assert!(mark_failed(&mut d));
        assert_eq!(
            (d.status, d.status_description.as_str()),
            (ds::FAILED, ds::DESC_FAILED_BY_USER)
        );
    }

    #[tokio::test]
    async fn a_change_made_after_the_read_is_never_overwritten() {
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
        let st = AppState::with_store(store.clone());
        let key = keys::deployment("default", "web", "web-v1");
        let put = |d: Deployment| {
            let store = store.clone();
            let key = key.clone();
            async move {
                store
                    .put(
                        key.into_bytes(),
                        serde_json::to_vec(&d).unwrap(),
                        PutOptions::default(),
                    )
                    .await
                    .unwrap()
            }
        };
        put(deployment(1, 1)).await;
        let read = find(&st, "web-v").await.unwrap();
        // The controller writes in between: its canary count moved on.
        put(deployment(1, 0)).await;
        let change = |d: &mut Deployment| promote_groups(d, &[]);
        let e = write_change(&st, read, "promoted", &change)
            .await
            .unwrap_err();
        assert!(matches!(e, ServerError::Conflict(_)), "{e:?}");
        assert!(e.to_string().contains("retry"), "{e}");
        let stored = find(&st, "web-v1").await.unwrap();
        assert!(
            !stored.deployment.groups["api"].promoted,
            "nothing was written"
        );
        assert_eq!(stored.deployment.groups["api"].healthy, 0);
    }
}
