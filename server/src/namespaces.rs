//! `/v1/namespaces` and `/v1/namespace/{name}`: namespaces as objects, in Nomad's paths and
//! shapes. `default` always exists (stored once someone writes it, implicit before). Writes
//! need a management token ([`crate::acl::rules`]); reads show a caller only the namespaces it
//! holds some capability in. A namespace with jobs cannot be deleted, nor can `default`.
//! Reads follow Nomad's conventions ([`crate::nomad`]): headers, blocking queries, `prefix`,
//! `filter` and pages by name.
//!
//! Jobs may only be submitted to a namespace that exists ([`require_namespaces`]): apply and
//! plan answer 400 naming the namespace otherwise.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use nomos_api::acl::check::{CAP_DENY, NAMESPACE_CAPABILITIES};
use nomos_api::acl::Acl;
use nomos_api::namespace::{
    validate_namespace, validate_object_name, Namespace, DEFAULT_NAMESPACE, MAX_OBJECTS,
};
use nomos_api::Job;
use nomos_store::{keys, Compare, CompareOp, KeySelector, RangeOptions, Txn, TxnOp};

use crate::acl::{Caller, PERMISSION_DENIED};
use crate::body::JsonBody;
use crate::error::ServerError;
use crate::nomad::blocking::{read_index, wait_for_change};
use crate::nomad::{Answer, QueryOptions};
use crate::{kv, AppState};

/// Whether `acl` holds any capability in `namespace` (Nomad's rule for seeing it).
pub fn may_see(acl: &Acl, namespace: &str) -> bool {
    acl.is_management()
        || NAMESPACE_CAPABILITIES
            .iter()
            .filter(|c| **c != CAP_DENY)
            .any(|c| acl.allows_namespace(namespace, c))
}

/// Every namespace, `default` included, in name order.
pub async fn all(st: &AppState) -> Result<Vec<Namespace>, ServerError> {
    let stored = kv::list_json::<Namespace>(st.store.as_ref(), keys::NAMESPACES_PREFIX).await?;
    let mut out: Vec<Namespace> = stored
        .into_iter()
        .map(|e| with_index(e.value, e.mod_revision))
        .collect();
    if !out.iter().any(|n| n.name == DEFAULT_NAMESPACE) {
        out.push(Namespace::implicit_default());
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn with_index(mut ns: Namespace, mod_revision: i64) -> Namespace {
    ns.modify_index = mod_revision;
    ns
}

/// The namespace `name` with its key's revision (0 for the implicit `default`), or 404.
pub async fn find(st: &AppState, name: &str) -> Result<(Namespace, i64), ServerError> {
    validate_object_name("namespace name", name).map_err(ServerError::BadRequest)?;
    match kv::get_json::<Namespace>(st.store.as_ref(), &keys::namespace(name)).await? {
        Some(e) => Ok((with_index(e.value, e.mod_revision), e.mod_revision)),
        None if name == DEFAULT_NAMESPACE => Ok((Namespace::implicit_default(), 0)),
        None => Err(ServerError::NotFound(format!(
            "namespace {name:?} not found"
        ))),
    }
}

/// Refuses (400) jobs whose namespace does not exist, naming the namespace, as Nomad does.
pub async fn require_namespaces(st: &AppState, jobs: &[Job]) -> Result<(), ServerError> {
    let mut checked: Vec<&str> = Vec::new();
    for job in jobs {
        let ns = job.namespace.as_str();
        if ns == DEFAULT_NAMESPACE || checked.contains(&ns) {
            continue;
        }
        if kv::get_raw(st.store.as_ref(), &keys::namespace(ns))
            .await?
            .is_none()
        {
            return Err(ServerError::BadRequest(format!(
                "job {:?}: nonexistent namespace {ns:?} (create it first: nctl namespace apply {ns})",
                job.id
            )));
        }
        checked.push(ns);
    }
    Ok(())
}

/// `GET /v1/namespaces`: the namespaces the caller holds some capability in.
pub async fn list(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    q: QueryOptions,
) -> Result<Answer<Vec<Namespace>>, ServerError> {
    wait_for_change(&st, &q, &[keys::NAMESPACES_PREFIX]).await?;
    let index = read_index(&st).await?;
    let mut out = all(&st).await?;
    out.retain(|ns| may_see(&caller.acl, &ns.name));
    Ok(Answer::paged(out, index, &q, |ns| ns.name.clone()))
}

/// `GET /v1/namespace/{name}`.
pub async fn get(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    q: QueryOptions,
) -> Result<Answer<Namespace>, ServerError> {
    if !may_see(&caller.acl, &name) {
        return Err(ServerError::Forbidden(PERMISSION_DENIED.into()));
    }
    wait_for_change(&st, &q, &[keys::NAMESPACES_PREFIX]).await?;
    let index = read_index(&st).await?;
    Ok(Answer::new(find(&st, &name).await?.0, index, &q))
}

/// `POST /v1/namespace/{name}` (and `PUT`): create or update. The body's `Name`, when given,
/// must match the path.
pub async fn put_named(
    State(st): State<AppState>,
    Path(name): Path<String>,
    JsonBody(mut req): JsonBody<Namespace>,
) -> Result<Json<Namespace>, ServerError> {
    if !req.name.is_empty() && req.name != name {
        return Err(ServerError::BadRequest(format!(
            "namespace name {:?} in the body differs from {name:?} in the path",
            req.name
        )));
    }
    req.name = name;
    upsert(&st, req).await.map(Json)
}

/// `POST /v1/namespace` (and `PUT`): create or update the namespace the body names.
pub async fn put(
    State(st): State<AppState>,
    JsonBody(req): JsonBody<Namespace>,
) -> Result<Json<Namespace>, ServerError> {
    upsert(&st, req).await.map(Json)
}

/// Validates and writes a namespace; its quota, when named, must exist (compared in the same
/// transaction, so a concurrent quota delete cannot slip between).
async fn upsert(st: &AppState, mut ns: Namespace) -> Result<Namespace, ServerError> {
    validate_namespace(&ns).map_err(ServerError::BadRequest)?;
    let key = keys::namespace(&ns.name);
    let existing = kv::get_json::<Namespace>(st.store.as_ref(), &key).await?;
    let expected = existing.as_ref().map_or(0, |e| e.mod_revision);
    if existing.is_none() {
        let count = count(st, keys::NAMESPACES_PREFIX).await?;
        if count >= MAX_OBJECTS as i64 {
            return Err(ServerError::BadRequest(format!(
                "the cluster already holds {count} namespaces, the limit is {MAX_OBJECTS}"
            )));
        }
    }
    let mut compares = vec![Compare::mod_revision(
        key.clone(),
        CompareOp::Equal,
        expected,
    )];
    if !ns.quota.is_empty() {
        let quota_key = keys::quota(&ns.quota);
        let Some(q) = kv::get_raw(st.store.as_ref(), &quota_key).await? else {
            return Err(ServerError::BadRequest(format!(
                "namespace {:?}: Quota {:?} does not exist",
                ns.name, ns.quota
            )));
        };
        compares.push(Compare::mod_revision(
            quota_key,
            CompareOp::Equal,
            q.mod_revision,
        ));
    }
    let next = st.store.status().await?.revision + 1;
    ns.create_index = existing
        .as_ref()
        .map(|e| e.value.create_index)
        .filter(|c| *c > 0)
        .unwrap_or(next);
    ns.modify_index = 0;
    let bytes = serde_json::to_vec(&ns).map_err(|e| ServerError::Internal(e.to_string()))?;
    let resp = st
        .store
        .txn(Txn::new().when(compares).and_then([TxnOp::put(key, bytes)]))
        .await?;
    if !resp.succeeded {
        return Err(ServerError::Conflict(format!(
            "namespace {:?} or its quota changed concurrently; retry",
            ns.name
        )));
    }
    ns.modify_index = resp.revision;
    Ok(ns)
}

/// How many keys lie under `prefix`.
pub async fn count(st: &AppState, prefix: &str) -> Result<i64, ServerError> {
    let resp = st
        .store
        .range(
            KeySelector::prefix(prefix),
            RangeOptions {
                count_only: true,
                ..Default::default()
            },
        )
        .await?;
    Ok(resp.count)
}

/// `DELETE /v1/namespace/{name}`: refused for `default` and while jobs remain (Nomad's words).
pub async fn delete(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ServerError> {
    validate_object_name("namespace name", &name).map_err(ServerError::BadRequest)?;
    if name == DEFAULT_NAMESPACE {
        return Err(ServerError::BadRequest(
            "default namespace can not be deleted".into(),
        ));
    }
    let (_, rev) = find(&st, &name).await?;
    let jobs = count(&st, &keys::jobs_prefix(Some(&name))).await?;
    if jobs > 0 {
        return Err(ServerError::BadRequest(format!(
            "namespace {name:?} has non-terminal jobs in regions: [global]"
        )));
    }
    kv::delete_if(st.store.as_ref(), &keys::namespace(&name), rev).await?;
    Ok(Json(serde_json::Value::Null))
}
