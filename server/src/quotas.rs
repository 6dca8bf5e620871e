//! `/v1/quotas`, `/v1/quota/{name}` and `/v1/quota/usage/{name}`: quota specifications in
//! Nomad's shapes (an Enterprise feature in Nomad, free here). A quota limits the namespaces
//! whose `Quota` names it; the controllers refuse placements past it. Writes need a management
//! token; a caller other than management sees the quotas of namespaces it can see. A quota
//! still attached to a namespace cannot be deleted.
//!
//! Usage is what the namespaces' non-terminal allocations hold, computed by the controllers'
//! own rule (the scheduler snapshot over one read of the store), so it agrees with what the
//! placement engine enforces.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use nomos_api::namespace::{
    validate_object_name, validate_quota, QuotaLimit, QuotaSpec, QuotaUsage, RegionLimit,
    GLOBAL_REGION, MAX_OBJECTS,
};
use nomos_controllers::loops::view::{Part, View};
use nomos_store::keys;

use crate::acl::{Caller, PERMISSION_DENIED};
use crate::body::JsonBody;
use crate::error::ServerError;
use crate::namespaces::{self, may_see};
use crate::{kv, AppState};

/// The prefixes usage is computed from.
const USAGE_PARTS: [Part; 6] = [
    Part::Versions,
    Part::Allocs,
    Part::AllocStatus,
    Part::Nodes,
    Part::Namespaces,
    Part::Quotas,
];

fn with_index(mut q: QuotaSpec, mod_revision: i64) -> QuotaSpec {
    q.modify_index = mod_revision;
    q
}

/// The quotas the caller may read: every one for management (`None`), else those named by a
/// namespace it can see.
async fn readable(st: &AppState, caller: &Caller) -> Result<Option<Vec<String>>, ServerError> {
    if caller.acl.is_management() {
        return Ok(None);
    }
    Ok(Some(
        namespaces::all(st)
            .await?
            .into_iter()
            .filter(|ns| !ns.quota.is_empty() && may_see(&caller.acl, &ns.name))
            .map(|ns| ns.quota)
            .collect(),
    ))
}

/// Whether the caller may read quota `name`.
async fn may_read(st: &AppState, caller: &Caller, name: &str) -> Result<bool, ServerError> {
    Ok(readable(st, caller)
        .await?
        .is_none_or(|names| names.iter().any(|n| n == name)))
}

/// `GET /v1/quotas`.
pub async fn list(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<QuotaSpec>>, ServerError> {
    let readable = readable(&st, &caller).await?;
    let all = kv::list_json::<QuotaSpec>(st.store.as_ref(), keys::QUOTAS_PREFIX).await?;
    Ok(Json(
        all.into_iter()
            .filter(|e| {
                readable
                    .as_ref()
                    .is_none_or(|names| names.contains(&e.value.name))
            })
            .map(|e| with_index(e.value, e.mod_revision))
            .collect(),
    ))
}

async fn find(st: &AppState, name: &str) -> Result<kv::Entry<QuotaSpec>, ServerError> {
    validate_object_name("quota name", name).map_err(ServerError::BadRequest)?;
    let mut found = kv::get_json::<QuotaSpec>(st.store.as_ref(), &keys::quota(name))
        .await?
        .ok_or_else(|| ServerError::NotFound(format!("quota {name:?} not found")))?;
    found.value.modify_index = found.mod_revision;
    Ok(found)
}

/// `GET /v1/quota/{name}`.
pub async fn get(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<QuotaSpec>, ServerError> {
    if !may_read(&st, &caller, &name).await? {
        return Err(ServerError::Forbidden(PERMISSION_DENIED.into()));
    }
    Ok(Json(find(&st, &name).await?.value))
}

/// `POST /v1/quota/{name}`: create or update; the body's `Name`, when given, must match.
pub async fn put_named(
    State(st): State<AppState>,
    Path(name): Path<String>,
    JsonBody(mut req): JsonBody<QuotaSpec>,
) -> Result<Json<QuotaSpec>, ServerError> {
    if !req.name.is_empty() && req.name != name {
        return Err(ServerError::BadRequest(format!(
            "quota name {:?} in the body differs from {name:?} in the path",
            req.name
        )));
    }
    req.name = name;
    upsert(&st, req).await.map(Json)
}

/// `POST /v1/quota`: create or update the quota the body names.
pub async fn put(
    State(st): State<AppState>,
    JsonBody(req): JsonBody<QuotaSpec>,
) -> Result<Json<QuotaSpec>, ServerError> {
    upsert(&st, req).await.map(Json)
}

async fn upsert(st: &AppState, mut q: QuotaSpec) -> Result<QuotaSpec, ServerError> {
    validate_quota(&q).map_err(ServerError::BadRequest)?;
    let key = keys::quota(&q.name);
    let existing = kv::get_json::<QuotaSpec>(st.store.as_ref(), &key).await?;
    if existing.is_none() {
        let count = namespaces::count(st, keys::QUOTAS_PREFIX).await?;
        if count >= MAX_OBJECTS as i64 {
            return Err(ServerError::BadRequest(format!(
                "the cluster already holds {count} quotas, the limit is {MAX_OBJECTS}"
            )));
        }
    }
    let next = st.store.status().await?.revision + 1;
    q.create_index = existing
        .as_ref()
        .map(|e| e.value.create_index)
        .filter(|c| *c > 0)
        .unwrap_or(next);
    q.modify_index = 0;
    let expected = existing.map_or(0, |e| e.mod_revision);
    q.modify_index = kv::put_if(st.store.as_ref(), &key, &q, expected).await?;
    Ok(q)
}

/// `DELETE /v1/quota/{name}`: refused while a namespace names it.
pub async fn delete(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ServerError> {
    let found = find(&st, &name).await?;
    let users: Vec<String> = namespaces::all(&st)
        .await?
        .into_iter()
        .filter(|ns| ns.quota == name)
        .map(|ns| ns.name)
        .collect();
    if !users.is_empty() {
        return Err(ServerError::BadRequest(format!(
            "quota {name:?} is attached to namespaces [{}]; detach it first",
            users.join(", ")
        )));
    }
    kv::delete_if(st.store.as_ref(), &found.key, found.mod_revision).await?;
    Ok(Json(serde_json::Value::Null))
}

/// `GET /v1/quota/usage/{name}`: what the namespaces under the quota hold now.
pub async fn usage(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<QuotaUsage>, ServerError> {
    if !may_read(&st, &caller, &name).await? {
        return Err(ServerError::Forbidden(PERMISSION_DENIED.into()));
    }
    let found = find(&st, &name).await?;
    let view = View::read(st.store.as_ref(), &USAGE_PARTS).await?;
    let snap = view.snapshot();
    let namespaces: Vec<String> = view
        .namespaces
        .values()
        .filter(|ns| ns.quota == name)
        .map(|ns| ns.name.clone())
        .collect();
    let mut used = RegionLimit::default();
    for ns in &namespaces {
        let u = snap.namespace_usage(ns);
        used.cpu = used.cpu.saturating_add(clamp(u.cpu));
        used.memory_mb = used.memory_mb.saturating_add(clamp(u.memory_mb));
        used.allocations = used.allocations.saturating_add(clamp(u.allocs));
    }
    Ok(Json(QuotaUsage {
        name,
        used: BTreeMap::from([(
            GLOBAL_REGION.to_string(),
            QuotaLimit {
                region: GLOBAL_REGION.into(),
                region_limit: used,
            },
        )]),
        namespaces,
        create_index: found.value.create_index,
        modify_index: found.mod_revision,
    }))
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
