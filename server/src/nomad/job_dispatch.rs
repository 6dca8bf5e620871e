//! `POST|PUT /v1/job/{id}/dispatch`: a new instance of a parameterized job, in Nomad's
//! shapes. The rules and the child's name are [`nomos_api::dispatch`]'s; here the child spec
//! and its pending evaluation are written in one transaction that creates the spec only if
//! absent, so a dispatch with an idempotency token makes one child however often, and from
//! however many servers, it is sent (the child's id is derived from the token).

use axum::extract::{Path, State};
use base64::Engine;
use indexmap::IndexMap;
use nomos_api::dispatch::{self, DispatchRequest};
use nomos_api::to_canonical_json;
use nomos_store::{keys, Compare, CompareOp, Txn, TxnOp};
use serde::{Deserialize, Serialize};

use super::evals::{self, NewEval};
use super::job_versions::{named_job, refuse_invalid};
use super::query::QueryOptions;
use super::respond::Answer;
use crate::body::JsonBody;
use crate::error::ServerError;
use crate::kv;
use crate::AppState;

/// The body of a dispatch (Nomad's `JobDispatchRequest`). The idempotency token comes in the
/// query (`idempotency_token`), as Nomad's Go client sends it, or in the body under that name,
/// as python-nomad sends it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields, default)]
pub struct DispatchBody {
    #[serde(rename = "JobID")]
    pub job_id: String,
    /// Base64, as Go encodes a byte slice.
    pub payload: Option<String>,
    pub meta: Option<IndexMap<String, String>>,
    /// `null` from python-nomad when not given.
    pub id_prefix_template: Option<String>,
    /// Overrides the parent's priority when not 0 (1 to 100).
    pub priority: i32,
    #[serde(rename = "idempotency_token", skip_serializing_if = "Option::is_none")]
    pub idempotency_token: Option<String>,
}

/// Nomad's `JobDispatchResponse`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DispatchResponse {
    #[serde(rename = "DispatchedJobID")]
    pub dispatched_job_id: String,
    /// Empty when the idempotency token named a child that already exists.
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    pub eval_create_index: i64,
    pub job_create_index: i64,
    pub index: i64,
}

/// The request in Nomos's terms; 400 for a payload that is not base64.
fn request_of(body: DispatchBody, q: &QueryOptions) -> Result<DispatchRequest, ServerError> {
    let payload = match body.payload.as_deref().filter(|p| !p.is_empty()) {
        None => Vec::new(),
        Some(text) => base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| ServerError::BadRequest(format!("Payload: not base64: {e}")))?,
    };
    Ok(DispatchRequest {
        payload,
        meta: body.meta.unwrap_or_default(),
        id_prefix_template: body.id_prefix_template.unwrap_or_default(),
        idempotency_token: q
            .param("idempotency_token")
            .map(str::to_string)
            .or(body.idempotency_token)
            .unwrap_or_default(),
    })
}

/// The child job, checked as any job is before it is stored.
fn child_of(
    parent: &nomos_api::Job,
    req: &DispatchRequest,
    priority: i32,
) -> Result<nomos_api::Job, ServerError> {
    dispatch::check(parent, req).map_err(ServerError::BadRequest)?;
    if !(0..=100).contains(&priority) {
        return Err(ServerError::BadRequest(format!(
            "Priority: {priority} is not between 1 and 100"
        )));
    }
    let now_ms = nomos_api::now_ms();
    let random = uuid::Uuid::new_v4().simple().to_string();
    let name = dispatch::child_name(&parent.id, req, now_ms.div_euclid(1000), &random[..8]);
    let mut child = dispatch::child_job(parent, req, &name);
    if priority != 0 {
        child.priority = priority;
    }
    nomos_api::names::check_job_id(&child.id).map_err(ServerError::BadRequest)?;
    refuse_invalid(&child)?;
    Ok(child)
}

/// `POST|PUT /v1/job/{id}/dispatch`.
pub async fn dispatch_job(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: QueryOptions,
    JsonBody(body): JsonBody<DispatchBody>,
) -> Result<Answer<DispatchResponse>, ServerError> {
    let found = named_job(&st, &q, &id, &body.job_id).await?;
    let parent = found.valid_spec()?.clone();
    let priority = body.priority;
    let req = request_of(body, &q)?;
    let child = child_of(&parent, &req, priority)?;
    let key = keys::job(&child.namespace, &child.id);
    let pending = NewEval {
        namespace: child.namespace.clone(),
        job_id: child.id.clone(),
        triggered_by: "job-register".into(),
        job_kind: Some((child.job_type.as_str().to_string(), child.priority)),
        ..Default::default()
    };
    let (eval_id, eval_compares, eval_ops) = evals::pending_ops(&st, pending).await?;
    let mut compares = vec![Compare::mod_revision(key.as_str(), CompareOp::Equal, 0)];
    compares.extend(eval_compares);
    let mut ops = vec![TxnOp::put(
        key.as_str(),
        to_canonical_json(&child).into_bytes(),
    )];
    ops.extend(eval_ops);
    let resp = st
        .store
        .txn(Txn::new().when(compares).and_then(ops))
        .await?;
    let answer = if resp.succeeded {
        DispatchResponse {
            dispatched_job_id: child.id,
            eval_id,
            eval_create_index: resp.revision,
            job_create_index: resp.revision,
            index: resp.revision,
        }
    } else {
        already_dispatched(&st, &key, &child.id, &req).await?
    };
    let index = answer.index;
    Ok(Answer::new(answer, index, &q))
}

/// The answer when the child's key was taken: the child an idempotency token already made
/// (no evaluation, as Nomad answers), or 409 for a race to be retried.
async fn already_dispatched(
    st: &AppState,
    key: &str,
    child_id: &str,
    req: &DispatchRequest,
) -> Result<DispatchResponse, ServerError> {
    let existing = kv::get_raw(st.store.as_ref(), key).await?;
    match existing {
        Some(kv) if !req.idempotency_token.is_empty() => Ok(DispatchResponse {
            dispatched_job_id: child_id.to_string(),
            eval_id: String::new(),
            eval_create_index: 0,
            job_create_index: kv.create_revision,
            index: kv.mod_revision,
        }),
        _ => Err(ServerError::Conflict(format!(
            "dispatching {child_id:?} raced with another write; retry"
        ))),
    }
}
