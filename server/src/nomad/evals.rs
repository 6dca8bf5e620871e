//! Evaluations in Nomad's shapes. Nomos has no evaluation broker: the API writes a `pending`
//! evaluation for each request that asks for a reconcile ([`create`]: register, deregister,
//! revert, scale, evaluate, drain, eligibility, deployment writes) and the jobs controller
//! completes it when it reconciles the job (or records it `blocked` while placements fail).
//!
//! Reads: `GET /v1/evaluations` (Nomad's QueryOptions, plus its `job` and `status`
//! parameters), `GET /v1/evaluation/{id}` (`related=true` adds `RelatedEvals`), `GET
//! /v1/evaluation/{id}/allocations`, `GET /v1/job/{id}/evaluations`. Writes:
//! `POST|PUT /v1/job/{id}/evaluate` and `POST|PUT /v1/node/{id}/evaluate`, which force a
//! reconcile by writing a pending evaluation (the jobs controller watches them).
//!
//! An evaluation is named by its ID or a unique prefix of it. Each job keeps at most
//! [`GcConfig::evals_kept_per_job`](nomos_controllers::gc::GcConfig) evaluations: a new one
//! replaces the oldest finished ones, and while that many are still unfinished a new one is
//! refused (409).

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use axum::Extension;
use nomos_api::acl::check::CAP_READ_JOB;
use nomos_api::eval::{eval_status, triggers, Evaluation, DEFAULT_PRIORITY};
use nomos_store::{keys, Compare, CompareOp, TxnOp};
use serde::{Deserialize, Serialize};

use super::allocs::{stub, AllocStub, Lookup, Parts};
use super::blocking::{read_index, wait_for_change};
use super::query::QueryOptions;
use super::respond::Answer;
use crate::acl::Caller;
use crate::body::JsonBody;
use crate::error::ServerError;
use crate::kv::{self, Entry};
use crate::reads::{alloc_rows, get_node};
use crate::specs::{locate_job, read_spec};
use crate::AppState;

/// What an evaluation answer depends on.
pub const EVAL_PREFIXES: &[&str] = &[keys::EVALS_PREFIX];

/// A pending evaluation to write.
#[derive(Debug, Clone, Default)]
pub struct NewEval {
    pub namespace: String,
    pub job_id: String,
    pub triggered_by: String,
    pub job_modify_index: i64,
    pub node_id: String,
    pub node_modify_index: i64,
    pub deployment_id: String,
    /// The job's type and priority, for a job written in the same transaction (not in the
    /// store yet); read from its spec otherwise.
    pub job_kind: Option<(String, i32)>,
}

/// Writes a pending evaluation for a job write that already happened (register, deregister,
/// revert, scale, periodic force) and returns its ID, empty when the job is at its cap of
/// unfinished evaluations ([`create_after_write`]); the jobs controller completes it when it
/// reconciles the job.
pub async fn create(
    st: &AppState,
    namespace: &str,
    job_id: &str,
    triggered_by: &str,
    job_modify_index: i64,
) -> Result<String, ServerError> {
    let new = NewEval {
        namespace: namespace.to_string(),
        job_id: job_id.to_string(),
        triggered_by: triggered_by.to_string(),
        job_modify_index,
        ..Default::default()
    };
    Ok(create_after_write(st, new).await?.0)
}

/// [`create`] with every field; returns the ID and the index (store revision) it was
/// written at.
pub async fn create_with(st: &AppState, new: NewEval) -> Result<(String, i64), ServerError> {
    let job = new.job_id.clone();
    let (id, compares, ops) = pending_ops(st, new).await?;
    let index = kv::commit(st.store.as_ref(), compares, ops, || {
        format!("the evaluations of job {job:?} changed while one was being written; retry")
    })
    .await?;
    Ok((id, index))
}

/// The writes of a pending evaluation, to commit in a transaction of the caller's (a job's
/// register writes it with the spec, so the controllers never see one without the other):
/// its ID, the comparisons and the operations (the evaluation, and the removal of the oldest
/// finished ones beyond the job's cap). The cap reached by unfinished ones is a conflict.
pub async fn pending_ops(
    st: &AppState,
    new: NewEval,
) -> Result<(String, Vec<Compare>, Vec<TxnOp>), ServerError> {
    let (kind, priority) = match new.job_kind.clone() {
        Some(known) => known,
        None => job_kind(st, &new.namespace, &new.job_id).await,
    };
    let now = nomos_api::now_ms().saturating_mul(1_000_000);
    let eval = Evaluation {
        id: uuid::Uuid::new_v4().to_string(),
        namespace: new.namespace,
        priority,
        kind,
        triggered_by: new.triggered_by,
        job_id: new.job_id,
        job_modify_index: new.job_modify_index,
        node_id: new.node_id,
        node_modify_index: new.node_modify_index,
        deployment_id: new.deployment_id,
        status: eval_status::PENDING.into(),
        create_time: now,
        modify_time: now,
        ..Default::default()
    };
    let existing: Vec<Entry<Evaluation>> = kv::list_json(
        st.store.as_ref(),
        &keys::evals_prefix(Some(&eval.namespace)),
    )
    .await?;
    let replaced = to_replace(&existing, &eval.job_id, st.gc.evals_kept_per_job)?;
    let key = keys::eval(&eval.namespace, &eval.id);
    let value = serde_json::to_vec(&eval).map_err(|e| ServerError::Internal(e.to_string()))?;
    let mut compares = vec![Compare::mod_revision(key.as_str(), CompareOp::Equal, 0)];
    let mut ops = vec![TxnOp::put(key.as_str(), value)];
    for e in &replaced {
        compares.push(Compare::mod_revision(
            e.key.as_str(),
            CompareOp::Equal,
            e.mod_revision,
        ));
        ops.push(TxnOp::delete(e.key.as_str()));
    }
    Ok((eval.id, compares, ops))
}

/// [`create_with`] for a write that already happened (a stop, a drain, a deployment change):
/// a job at its cap of unfinished evaluations gets none more, and the write still answers,
/// with an empty ID (the controller reconciles the job anyway).
pub async fn create_after_write(st: &AppState, new: NewEval) -> Result<(String, i64), ServerError> {
    let job = new.job_id.clone();
    match create_with(st, new).await {
        Err(ServerError::Conflict(why)) => {
            tracing::warn!(job, %why, "no evaluation recorded for a write");
            Ok((String::new(), 0))
        }
        other => other,
    }
}

/// The job's type and priority, from its spec (a job already gone is a service job of the
/// default priority, as its deregistration is evaluated).
async fn job_kind(st: &AppState, namespace: &str, job_id: &str) -> (String, i32) {
    let spec = kv::get_raw(st.store.as_ref(), &keys::job(namespace, job_id))
        .await
        .ok()
        .flatten()
        .and_then(|kv| read_spec(&kv).ok());
    match spec {
        Some(job) if job.priority > 0 => (job.job_type.as_str().into(), job.priority),
        Some(job) => (job.job_type.as_str().into(), DEFAULT_PRIORITY),
        None => ("service".into(), DEFAULT_PRIORITY),
    }
}

/// The oldest finished evaluations of `job_id` to delete so that one more fits under `kept`;
/// 409 when too many are unfinished to make room.
pub fn to_replace<'a>(
    existing: &'a [Entry<Evaluation>],
    job_id: &str,
    kept: usize,
) -> Result<Vec<&'a Entry<Evaluation>>, ServerError> {
    let kept = kept.max(1);
    let mut of_job: Vec<&Entry<Evaluation>> = existing
        .iter()
        .filter(|e| e.value.job_id == job_id)
        .collect();
    if of_job.len() < kept {
        return Ok(Vec::new());
    }
    let excess = of_job.len() + 1 - kept;
    of_job.retain(|e| e.value.is_terminal());
    if of_job.len() < excess {
        return Err(ServerError::Conflict(format!(
            "job {job_id:?} has {kept} evaluations not finished yet; wait for the jobs \
             controller to complete them"
        )));
    }
    of_job.sort_by_key(|e| (e.value.modify_time, e.create_revision));
    of_job.truncate(excess);
    Ok(of_job)
}

/// An evaluation as read, with its indexes from the key's revisions.
fn with_indexes(e: Entry<Evaluation>) -> Evaluation {
    let mut eval = e.value;
    eval.create_index = e.create_revision;
    eval.modify_index = e.mod_revision;
    eval
}

/// Every evaluation, in key order.
pub async fn all_evals(st: &AppState) -> Result<Vec<Evaluation>, ServerError> {
    let entries: Vec<Entry<Evaluation>> =
        kv::list_json(st.store.as_ref(), keys::EVALS_PREFIX).await?;
    Ok(entries.into_iter().map(with_indexes).collect())
}

/// The evaluation named by `id` (its ID or a unique prefix).
pub async fn find(st: &AppState, id: &str) -> Result<Evaluation, ServerError> {
    let all = all_evals(st).await?;
    kv::resolve_prefix(&all, id, "evaluation", |e| e.id.as_str()).cloned()
}

/// `GET /v1/evaluations`: Nomad's `job` and `status` parameters narrow the list.
pub async fn list_evals(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    q: QueryOptions,
) -> Result<Answer<Vec<Evaluation>>, ServerError> {
    wait_for_change(&st, &q, EVAL_PREFIXES).await?;
    let index = read_index(&st).await?;
    let wanted = |name: &str| q.param(name).filter(|v| !v.is_empty());
    let (job, status) = (wanted("job"), wanted("status"));
    let mut evals = all_evals(&st).await?;
    evals.retain(|e| {
        q.namespace.covers(&e.namespace)
            && caller.acl.allows_namespace(&e.namespace, CAP_READ_JOB)
            && job.is_none_or(|j| e.job_id == j)
            && status.is_none_or(|s| e.status == s)
    });
    Ok(Answer::paged(evals, index, &q, |e| e.id.clone()))
}

/// One evaluation, with `RelatedEvals` when asked for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalDetail {
    #[serde(flatten)]
    pub eval: Evaluation,
    /// With `related=true`: the evaluations linked to this one through `NextEval`,
    /// `PreviousEval` and `BlockedEval`, transitively.
    #[serde(
        rename = "RelatedEvals",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub related: Option<Vec<Evaluation>>,
}

/// The evaluations linked to `start` by `NextEval`, `PreviousEval` and `BlockedEval`, in
/// either direction and transitively, in ID order (`start` left out).
pub fn related(all: &[Evaluation], start: &Evaluation) -> Vec<Evaluation> {
    let links = |e: &Evaluation| -> Vec<String> {
        [&e.next_eval, &e.previous_eval, &e.blocked_eval]
            .into_iter()
            .filter(|id| !id.is_empty())
            .cloned()
            .collect()
    };
    let mut seen = BTreeSet::from([start.id.clone()]);
    let mut todo = vec![start.clone()];
    while let Some(e) = todo.pop() {
        let mine = links(&e);
        for other in all {
            if seen.contains(&other.id) {
                continue;
            }
            if mine.contains(&other.id) || links(other).contains(&e.id) {
                seen.insert(other.id.clone());
                todo.push(other.clone());
            }
        }
    }
    let mut out: Vec<Evaluation> = all
        .iter()
        .filter(|e| e.id != start.id && seen.contains(&e.id))
        .cloned()
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// `GET /v1/evaluation/{id}`.
pub async fn get_one(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: QueryOptions,
) -> Result<Answer<EvalDetail>, ServerError> {
    wait_for_change(&st, &q, EVAL_PREFIXES).await?;
    let index = read_index(&st).await?;
    let all = all_evals(&st).await?;
    let eval = kv::resolve_prefix(&all, &id, "evaluation", |e| e.id.as_str())?.clone();
    let related = q.flag("related", false).then(|| {
        related(&all, &eval)
            .into_iter()
            .filter(|e| e.namespace == eval.namespace)
            .collect()
    });
    Ok(Answer::new(EvalDetail { eval, related }, index, &q))
}

/// `GET /v1/evaluation/{id}/allocations`: the allocations the evaluation placed or changed
/// that still exist, as stubs: those whose `EvalID` names it, and those its `PlacedAllocs`
/// lists (it stopped them, or they were written before allocations carried an `EvalID`).
pub async fn allocations(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: QueryOptions,
) -> Result<Answer<Vec<AllocStub>>, ServerError> {
    let mut prefixes = EVAL_PREFIXES.to_vec();
    prefixes.extend(super::allocs::ALLOC_PREFIXES);
    wait_for_change(&st, &q, &prefixes).await?;
    let index = read_index(&st).await?;
    let eval = find(&st, &id).await?;
    let ids: BTreeSet<String> = eval.placed_allocs.unwrap_or_default().into_iter().collect();
    let mut rows = alloc_rows(&st).await?;
    rows.retain(|r| {
        (r.alloc.eval_id == eval.id || ids.contains(&r.alloc.id))
            && r.alloc.namespace == eval.namespace
    });
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

/// `GET /v1/job/{id}/evaluations`: the job's evaluations (by its exact ID: a purged job's
/// are listed until they are collected), newest first.
pub async fn job_evaluations(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: QueryOptions,
) -> Result<Answer<Vec<Evaluation>>, ServerError> {
    let ns = q.namespace.single().to_string();
    crate::specs::check_namespace(&ns)?;
    let prefix = keys::evals_prefix(Some(&ns));
    wait_for_change(&st, &q, &[prefix.as_str()]).await?;
    let index = read_index(&st).await?;
    let entries: Vec<Entry<Evaluation>> = kv::list_json(st.store.as_ref(), &prefix).await?;
    let mut evals: Vec<Evaluation> = entries
        .into_iter()
        .map(with_indexes)
        .filter(|e| e.job_id == id)
        .collect();
    evals.sort_by_key(|e| std::cmp::Reverse(e.create_index));
    Ok(Answer::new(evals, index, &q))
}

/// `POST|PUT /v1/job/{id}/evaluate` (Nomad's `JobEvaluateRequest`; every field optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
pub struct JobEvaluateRequest {
    #[serde(rename = "JobID")]
    pub job_id: String,
    pub eval_options: EvalOptions,
    pub namespace: String,
    pub region: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
pub struct EvalOptions {
    /// Nomos reschedules failed allocations by their policy; this is accepted and ignored.
    pub force_reschedule: bool,
}

/// The answer to a job evaluation (Nomad's `JobRegisterResponse` fields that apply).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct JobEvaluateResponse {
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    pub eval_create_index: i64,
    pub job_modify_index: i64,
    pub index: i64,
}

/// `POST|PUT /v1/job/{id}/evaluate`: writes a pending evaluation, which makes the jobs
/// controller reconcile the job now.
pub async fn job_evaluate(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: QueryOptions,
    JsonBody(req): JsonBody<JobEvaluateRequest>,
) -> Result<Answer<JobEvaluateResponse>, ServerError> {
    let found = locate_job(&st, q.namespace.single(), &id).await?;
    if !req.job_id.is_empty() && req.job_id != found.id {
        return Err(ServerError::BadRequest(format!(
            "JobID {:?} in the body differs from job {:?} in the path",
            req.job_id, found.id
        )));
    }
    let job_modify_index = found.kv.mod_revision;
    let new = NewEval {
        namespace: found.namespace.clone(),
        job_id: found.id.clone(),
        triggered_by: triggers::JOB_REGISTER.into(),
        job_modify_index,
        ..Default::default()
    };
    let (eval_id, index) = create_with(&st, new).await?;
    let resp = JobEvaluateResponse {
        eval_id,
        eval_create_index: index,
        job_modify_index,
        index,
    };
    Ok(Answer::new(resp, index, &QueryOptions::default()))
}

/// The answer to a node evaluation (Nomad's `NodeUpdateResponse` fields that apply).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeEvaluateResponse {
    #[serde(rename = "EvalIDs")]
    pub eval_ids: Option<Vec<String>>,
    pub eval_create_index: i64,
    pub node_modify_index: i64,
    pub index: i64,
}

/// The jobs (namespace, ID) with allocations on `node`, in order.
async fn jobs_on_node(st: &AppState, node: &str) -> Result<Vec<(String, String)>, ServerError> {
    let allocs: Vec<Entry<nomos_api::Allocation>> =
        kv::list_json(st.store.as_ref(), &keys::allocs_prefix(Some(node))).await?;
    let jobs: BTreeSet<(String, String)> = allocs
        .into_iter()
        .map(|e| (e.value.namespace, e.value.job_id))
        .collect();
    Ok(jobs.into_iter().collect())
}

/// Writes a pending evaluation, triggered by `trigger`, for each job with allocations on the
/// node named `name`; returns their IDs and the last one's index (0 when there was none).
/// With `after_write` (a drain or eligibility change already written), a job at its cap of
/// unfinished evaluations is passed over ([`create_after_write`]).
pub async fn evaluate_node(
    st: &AppState,
    name: &str,
    trigger: &str,
    after_write: bool,
) -> Result<(Vec<String>, i64, i64), ServerError> {
    let node = get_node(st, name).await?;
    let (ids, index) =
        evaluate_node_jobs(st, &node.node, node.modify_index, trigger, after_write).await?;
    Ok((ids, index, node.modify_index))
}

/// [`evaluate_node`] for a node already read (or already gone: a purge): one evaluation per
/// job with allocations under its name, recording `node_modify_index`; returns their IDs and
/// the last one's index.
pub async fn evaluate_node_jobs(
    st: &AppState,
    node: &nomos_api::Node,
    node_modify_index: i64,
    trigger: &str,
    after_write: bool,
) -> Result<(Vec<String>, i64), ServerError> {
    let mut ids = Vec::new();
    let mut index = 0;
    for (namespace, job_id) in jobs_on_node(st, &node.name).await? {
        let new = NewEval {
            namespace,
            job_id,
            triggered_by: trigger.to_string(),
            node_id: node.id.clone(),
            node_modify_index,
            ..Default::default()
        };
        let (id, at) = if after_write {
            create_after_write(st, new).await?
        } else {
            create_with(st, new).await?
        };
        if !id.is_empty() {
            ids.push(id);
            index = at;
        }
    }
    Ok((ids, index))
}

/// `POST|PUT /v1/node/{id}/evaluate`: a pending evaluation for each job with allocations on
/// the node (`node-update`).
pub async fn node_evaluate(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<Answer<NodeEvaluateResponse>, ServerError> {
    let (ids, index, node_modify_index) =
        evaluate_node(&st, &name, triggers::NODE_UPDATE, false).await?;
    let answer_index = if index > 0 {
        index
    } else {
        read_index(&st).await?
    };
    let resp = NodeEvaluateResponse {
        eval_ids: (!ids.is_empty()).then_some(ids),
        eval_create_index: index,
        node_modify_index,
        index: answer_index,
    };
    Ok(Answer::new(resp, answer_index, &QueryOptions::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(id: &str, status: &str, modify_time: i64) -> Entry<Evaluation> {
        Entry {
            key: keys::eval("default", id),
            value: Evaluation {
                id: id.into(),
                job_id: "web".into(),
                status: status.into(),
                modify_time,
                ..Default::default()
            },
            mod_revision: modify_time,
            create_revision: modify_time,
        }
    }

    #[test]
    fn a_new_evaluation_replaces_the_oldest_finished_ones_beyond_the_cap() {
        let existing = vec![
            eval("a", eval_status::COMPLETE, 3),
            eval("b", eval_status::COMPLETE, 1),
            eval("c", eval_status::PENDING, 2),
            eval("d", eval_status::CANCELED, 4),
        ];
        let ids =
            |v: Vec<&Entry<Evaluation>>| v.iter().map(|e| e.value.id.clone()).collect::<Vec<_>>();
        assert!(to_replace(&existing, "web", 5).unwrap().is_empty());
        assert_eq!(ids(to_replace(&existing, "web", 4).unwrap()), ["b"]);
        assert_eq!(
            ids(to_replace(&existing, "web", 2).unwrap()),
            ["b", "a", "d"]
        );
        assert!(to_replace(&existing, "other", 1).unwrap().is_empty());
        let all_pending = vec![eval("p", eval_status::PENDING, 1)];
        let e = to_replace(&all_pending, "web", 1).unwrap_err();
        assert!(matches!(e, ServerError::Conflict(_)), "{e:?}");
    }

    #[test]
    fn related_evaluations_follow_links_both_ways() {
        let mk = |id: &str, prev: &str, blocked: &str| Evaluation {
            id: id.into(),
            previous_eval: prev.into(),
            blocked_eval: blocked.into(),
            ..Default::default()
        };
        let all = vec![
            mk("a", "", "b"),
            mk("b", "a", ""),
            mk("c", "b", ""),
            mk("x", "", ""),
        ];
        let ids = |v: Vec<Evaluation>| v.into_iter().map(|e| e.id).collect::<Vec<_>>();
        assert_eq!(ids(related(&all, &all[0])), ["b", "c"]);
        assert_eq!(ids(related(&all, &all[2])), ["a", "b"]);
        assert!(related(&all, &all[3]).is_empty());
    }
}
