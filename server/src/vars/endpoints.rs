//! `/v1/vars` and `/v1/var/{*path}` in Nomad's paths, parameters and JSON shapes: list
//! metadata, read, write (with `?cas=`), delete (with `?cas=`), and the lock operations
//! (`?lock-acquire`, `?lock-renew`, `?lock-release`).
//!
//! The ACL middleware only resolves the caller (the route's rule is `Variables`); each handler
//! checks the variable capability on the namespace and path it learns here. A lost
//! compare-and-set or a refused lock answers 409 with the conflicting variable as the body, its
//! items only when the caller may read them, as Nomad does. Reads follow the conventions of
//! every Nomad read ([`crate::nomad`]): query headers, `pretty`, and blocking queries that wait
//! on the variable's key (a read) or the listed prefix (a list).

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use nomos_api::acl::check::{VAR_DESTROY, VAR_LIST, VAR_READ, VAR_WRITE};
use nomos_api::variables::{
    canonical_lock, validate_items, validate_path, Items, Variable, VariableLock, VariableMetadata,
    VariableRequest, MAX_PATH_BYTES,
};
use nomos_store::{keys, prefix_end, KeySelector, RangeOptions};
use serde::Serialize;

use super::lock::{self, StoredLock};
use super::record::{self, Current, StoredVariable};
use crate::acl::{Caller, PERMISSION_DENIED};
use crate::body::JsonBody;
use crate::error::ServerError;
use crate::nomad::blocking::wait_for_change;
use crate::nomad::query::{Namespaces, QueryOptions};
use crate::nomad::respond::Answer;
use crate::AppState;

/// The header reads carry their index in (Nomad's).
pub const INDEX_HEADER: &str = "x-nomad-index";
/// The header a paged list names the next page's `next_token` in (Nomad's).
pub const NEXT_TOKEN_HEADER: &str = "x-nomad-nexttoken";
/// How often a write re-reads and tries again when the variable changed under it.
const MAX_ATTEMPTS: usize = 8;
/// Largest `per_page` accepted.
pub const MAX_PER_PAGE: usize = 1000;
/// Longest namespace name accepted.
const MAX_NAMESPACE_BYTES: usize = 128;
/// Longest `next_token` accepted (a namespace, `/` and a path).
const MAX_TOKEN_BYTES: usize = MAX_NAMESPACE_BYTES + 1 + MAX_PATH_BYTES;

type Params = HashMap<String, String>;

fn params(q: Result<Query<Params>, QueryRejection>) -> Result<Params, ServerError> {
    q.map(|Query(p)| p)
        .map_err(|e| ServerError::BadRequest(format!("query string: {}", e.body_text())))
}

fn bad(msg: impl Into<String>) -> ServerError {
    ServerError::BadRequest(msg.into())
}

/// `?namespace=` (`default` when absent); `*` only where `allow_all`.
fn namespace_param(p: &Params, allow_all: bool) -> Result<String, ServerError> {
    let ns = p.get("namespace").map_or("default", String::as_str);
    check_namespace(ns, allow_all)?;
    Ok(ns.to_string())
}

fn check_namespace(ns: &str, allow_all: bool) -> Result<(), ServerError> {
    if ns == "*" {
        return if allow_all {
            Ok(())
        } else {
            Err(bad(
                "namespace: a variable cannot be in the wildcard (\"*\") namespace",
            ))
        };
    }
    nomos_api::namespace::validate_object_name("namespace", ns)
        .map_err(|e| bad(format!("namespace: {e}")))
}

/// The one namespace a read names (`default` when absent; never `*`).
fn read_namespace(q: &QueryOptions) -> Result<String, ServerError> {
    let ns = match &q.namespace {
        Namespaces::One(ns) => ns.as_str(),
        Namespaces::All => "*",
    };
    check_namespace(ns, false)?;
    Ok(ns.to_string())
}

/// `?cas=<ModifyIndex>`: `None` when absent.
fn cas_param(p: &Params) -> Result<Option<i64>, ServerError> {
    p.get("cas")
        .map(|v| {
            v.parse::<u64>()
                .ok()
                .and_then(|n| i64::try_from(n).ok())
                .ok_or_else(|| {
                    bad(format!(
                        "cas: expected a modify index (a whole number, 0: must not exist), found {:.32?}",
                        v
                    ))
                })
        })
        .transpose()
}

/// What a `PUT` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Set,
    Acquire,
    Renew,
    Release,
}

/// `?lock-acquire`, `?lock-renew`, `?lock-release` (or `?lock-operation=<one of them>`).
fn op_param(p: &Params) -> Result<Op, ServerError> {
    let named = |name: &str| match name {
        "lock-acquire" => Some(Op::Acquire),
        "lock-renew" => Some(Op::Renew),
        "lock-release" => Some(Op::Release),
        _ => None,
    };
    let mut ops: Vec<Op> = p.keys().filter_map(|k| named(k)).collect();
    if let Some(v) = p.get("lock-operation") {
        ops.push(named(v).ok_or_else(|| {
            bad(format!(
                "lock-operation: expected lock-acquire, lock-renew or lock-release, found {v:.32?}"
            ))
        })?);
    }
    match ops.as_slice() {
        [] => Ok(Op::Set),
        [op] => Ok(*op),
        _ => Err(bad(
            "give one lock operation: lock-acquire, lock-renew or lock-release",
        )),
    }
}

/// The variable a write names: the URL's path, the query's namespace (else the body's, else
/// `default`); a body naming another path or namespace is refused.
fn target(path: &str, p: &Params, req: &VariableRequest) -> Result<(String, String), ServerError> {
    validate_path(path).map_err(ServerError::BadRequest)?;
    let ns = match p.get("namespace") {
        Some(ns) => ns.clone(),
        None if !req.namespace.is_empty() => req.namespace.clone(),
        None => "default".to_string(),
    };
    check_namespace(&ns, false)?;
    if !req.path.is_empty() && req.path != path {
        return Err(bad(format!(
            "Path: {:.140?} in the body differs from {path:?} in the URL",
            req.path
        )));
    }
    Ok((ns, path.to_string()))
}

fn now_ns() -> i64 {
    i64::try_from(jiff::Timestamp::now().as_nanosecond()).unwrap_or(i64::MAX)
}

/// Refuses (403) a caller who could see no variable at all before anything else is looked at,
/// so an anonymous caller learns nothing, not even which inputs are malformed.
fn gate(caller: &Caller) -> Result<(), ServerError> {
    if caller.acl.allows_variables_anywhere() {
        Ok(())
    } else {
        Err(ServerError::Forbidden(PERMISSION_DENIED.into()))
    }
}

fn require(caller: &Caller, ns: &str, path: &str, cap: &str) -> Result<(), ServerError> {
    if caller.acl.allows_variable(ns, path, cap) {
        Ok(())
    } else {
        Err(ServerError::Forbidden(PERMISSION_DENIED.into()))
    }
}

/// A JSON answer with `X-Nomad-Index`.
fn indexed(status: StatusCode, body: &impl Serialize, index: i64) -> Response {
    let mut resp = (status, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&index.to_string()) {
        resp.headers_mut().insert(INDEX_HEADER, v);
    }
    resp
}

/// The lock as a caller may see it: management tokens and the lock's holder (who named its
/// ID) see it, others do not (Nomad's rule).
fn visible_lock(
    caller: &Caller,
    lock: Option<VariableLock>,
    holder_id: Option<&str>,
) -> Option<VariableLock> {
    lock.filter(|l| caller.acl.is_management() || holder_id.is_some_and(|id| id == l.id))
}

/// 409 with the conflicting variable (its items only if the caller may read them).
async fn conflict(
    st: &AppState,
    caller: &Caller,
    ns: &str,
    path: &str,
    current: Option<&Current>,
    reason: &str,
) -> Result<Response, ServerError> {
    tracing::debug!(namespace = %ns, path = %path, reason, "variable write refused with 409");
    let Some(c) = current else {
        let empty = Variable {
            meta: VariableMetadata {
                namespace: ns.to_string(),
                path: path.to_string(),
                ..VariableMetadata::default()
            },
            items: None,
        };
        return Ok(indexed(StatusCode::CONFLICT, &empty, 0));
    };
    let items = if caller.acl.allows_variable(ns, path, VAR_READ) {
        Some(record::open(st, &c.record).await?)
    } else {
        None
    };
    let mut meta = c.metadata();
    meta.lock = visible_lock(caller, meta.lock, None);
    let shown = Variable { meta, items };
    Ok(indexed(StatusCode::CONFLICT, &shown, c.modify_index))
}

/// The answer to a successful write: what was written, at revision `rev`.
fn written(
    caller: &Caller,
    record: &StoredVariable,
    before: Option<&Current>,
    rev: i64,
    items: Option<Items>,
    holder_id: Option<&str>,
) -> Response {
    let meta = VariableMetadata {
        namespace: record.namespace.clone(),
        path: record.path.clone(),
        lock: visible_lock(
            caller,
            record.lock.as_ref().map(|l| l.lock.clone()),
            holder_id,
        ),
        create_index: before.map_or(rev, |c| c.create_index),
        create_time: record.create_time,
        modify_index: rev,
        modify_time: record.modify_time,
    };
    indexed(StatusCode::OK, &Variable { meta, items }, rev)
}

fn retries_exhausted(path: &str) -> ServerError {
    ServerError::Conflict(format!(
        "variable {path:?} kept changing during the write; retry"
    ))
}

/// `GET /v1/var/{*path}?namespace=`: the variable with its items; 404 when missing. Its index
/// is the variable's modify index; a blocking read waits for the variable's next change.
pub async fn read(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(path): Path<String>,
    q: QueryOptions,
) -> Result<Answer<Variable>, ServerError> {
    gate(&caller)?;
    let ns = read_namespace(&q)?;
    validate_path(&path).map_err(ServerError::BadRequest)?;
    require(&caller, &ns, &path, VAR_READ)?;
    wait_for_change(&st, &q, &[&keys::variable(&ns, &path)]).await?;
    let current = record::load(&st, &ns, &path).await?.ok_or_else(|| {
        ServerError::NotFound(format!("variable {path:?} not found in namespace {ns:?}"))
    })?;
    let items = record::open(&st, &current.record).await?;
    let mut meta = current.metadata();
    meta.lock = visible_lock(&caller, meta.lock, None);
    let shown = Variable {
        meta,
        items: Some(items),
    };
    Ok(Answer::new(shown, current.modify_index, &q))
}

/// `PUT /v1/var/{*path}?namespace=&cas=` and the lock operations.
pub async fn write(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(path): Path<String>,
    q: Result<Query<Params>, QueryRejection>,
    JsonBody(req): JsonBody<VariableRequest>,
) -> Result<Response, ServerError> {
    gate(&caller)?;
    let p = params(q)?;
    let op = op_param(&p)?;
    let (ns, path) = target(&path, &p, &req)?;
    let cas = cas_param(&p)?;
    require(&caller, &ns, &path, VAR_WRITE)?;
    let w = Write {
        st: &st,
        caller: &caller,
        ns: &ns,
        path: &path,
    };
    match op {
        Op::Set => w.set(req, cas).await,
        Op::Acquire => w.acquire(req).await,
        Op::Renew => w.renew(req).await,
        Op::Release => w.release(req).await,
    }
}

/// One write's context.
struct Write<'a> {
    st: &'a AppState,
    caller: &'a Caller,
    ns: &'a str,
    path: &'a str,
}

impl Write<'_> {
    async fn load(&self) -> Result<Option<Current>, ServerError> {
        record::load(self.st, self.ns, self.path).await
    }

    async fn conflict(
        &self,
        current: Option<&Current>,
        why: &str,
    ) -> Result<Response, ServerError> {
        conflict(self.st, self.caller, self.ns, self.path, current, why).await
    }

    fn record(
        &self,
        before: Option<&Current>,
        now: i64,
        data: crate::keyring::Sealed,
    ) -> StoredVariable {
        StoredVariable {
            namespace: self.ns.to_string(),
            path: self.path.to_string(),
            create_time: before.map_or(now, |c| c.record.create_time),
            modify_time: now,
            // A lapsed lock protects nothing any more: a write drops it.
            lock: before
                .and_then(|c| c.record.lock.clone())
                .filter(|l| l.state(now) != lock::LockState::Lapsed),
            data,
        }
    }

    /// Creates or replaces the items (with `cas`: only if the variable's `ModifyIndex` still is
    /// it, 0 meaning absent); under a lock, only with the lock's ID in the body.
    async fn set(&self, req: VariableRequest, cas: Option<i64>) -> Result<Response, ServerError> {
        if req
            .lock
            .as_ref()
            .is_some_and(|l| l.ttl_ns != 0 || l.lock_delay_ns != 0)
        {
            return Err(bad(
                "Lock: a write may carry only the lock's ID; take a lock with ?lock-acquire",
            ));
        }
        let items = req.items.unwrap_or_default();
        validate_items(&items, false).map_err(ServerError::BadRequest)?;
        let lock_id = req.lock.as_ref().map(|l| l.id.as_str());
        let sealed = record::seal(self.st, self.ns, self.path, &items).await?;
        for _ in 0..MAX_ATTEMPTS {
            let now = now_ns();
            let current = self.load().await?;
            let expected = current.as_ref().map_or(0, |c| c.modify_index);
            if cas.is_some_and(|cas| cas != expected) {
                return self.conflict(current.as_ref(), "cas mismatch").await;
            }
            let held = current.as_ref().and_then(|c| c.record.lock.as_ref());
            if let Err(r) = lock::check_write(held, lock_id, now) {
                return self.conflict(current.as_ref(), r.message()).await;
            }
            let rec = self.record(current.as_ref(), now, sealed.clone());
            if let Some(rev) = record::commit(self.st, &rec, expected).await? {
                return Ok(written(
                    self.caller,
                    &rec,
                    current.as_ref(),
                    rev,
                    Some(items),
                    lock_id,
                ));
            }
        }
        Err(retries_exhausted(self.path))
    }

    /// Takes a new lock (creating the variable when missing); new items replace the old ones
    /// when given. A held lock, or one within its lock delay, answers 409.
    async fn acquire(&self, req: VariableRequest) -> Result<Response, ServerError> {
        let mut wanted = canonical_lock(req.lock.as_ref()).map_err(ServerError::BadRequest)?;
        wanted.id = uuid::Uuid::new_v4().to_string();
        if let Some(items) = &req.items {
            validate_items(items, true).map_err(ServerError::BadRequest)?;
        }
        let new_data = match &req.items {
            Some(items) => Some(record::seal(self.st, self.ns, self.path, items).await?),
            None => None,
        };
        for _ in 0..MAX_ATTEMPTS {
            let now = now_ns();
            let current = self.load().await?;
            let held = current.as_ref().and_then(|c| c.record.lock.as_ref());
            if let Err(r) = lock::check_acquire(held, now) {
                return self.conflict(current.as_ref(), r.message()).await;
            }
            let data = match (&new_data, &current) {
                (Some(d), _) => d.clone(),
                (None, Some(c)) => c.record.data.clone(),
                (None, None) => record::seal(self.st, self.ns, self.path, &Items::new()).await?,
            };
            let mut rec = self.record(current.as_ref(), now, data);
            rec.lock = Some(StoredLock::starting(wanted.clone(), now));
            let expected = current.as_ref().map_or(0, |c| c.modify_index);
            if let Some(rev) = record::commit(self.st, &rec, expected).await? {
                let id = Some(wanted.id.as_str());
                return Ok(written(
                    self.caller,
                    &rec,
                    current.as_ref(),
                    rev,
                    req.items,
                    id,
                ));
            }
        }
        Err(retries_exhausted(self.path))
    }

    /// Starts the holder's lock TTL again; only within the TTL.
    async fn renew(&self, req: VariableRequest) -> Result<Response, ServerError> {
        let id = lock_id_of(&req)?;
        for _ in 0..MAX_ATTEMPTS {
            let now = now_ns();
            let current = self.existing().await?;
            if let Err(r) = lock::check_renew(current.record.lock.as_ref(), id, now) {
                return self.conflict(Some(&current), r.message()).await;
            }
            let mut rec = current.record.clone();
            rec.lock = rec.lock.map(|l| StoredLock::starting(l.lock, now));
            if let Some(rev) = record::commit(self.st, &rec, current.modify_index).await? {
                return Ok(written(
                    self.caller,
                    &rec,
                    Some(&current),
                    rev,
                    None,
                    Some(id),
                ));
            }
        }
        Err(retries_exhausted(self.path))
    }

    /// Drops the holder's lock; the items stay.
    async fn release(&self, req: VariableRequest) -> Result<Response, ServerError> {
        let id = lock_id_of(&req)?;
        if req.items.is_some() {
            return Err(bad(
                "Items: the lock-release operation doesn't take variable items",
            ));
        }
        for _ in 0..MAX_ATTEMPTS {
            let current = self.existing().await?;
            if let Err(r) = lock::check_release(current.record.lock.as_ref(), id) {
                return self.conflict(Some(&current), r.message()).await;
            }
            let mut rec = current.record.clone();
            rec.lock = None;
            if let Some(rev) = record::commit(self.st, &rec, current.modify_index).await? {
                return Ok(written(
                    self.caller,
                    &rec,
                    Some(&current),
                    rev,
                    None,
                    Some(id),
                ));
            }
        }
        Err(retries_exhausted(self.path))
    }

    async fn existing(&self) -> Result<Current, ServerError> {
        self.load().await?.ok_or_else(|| {
            ServerError::NotFound(format!(
                "variable {:?} not found in namespace {:?}",
                self.path, self.ns
            ))
        })
    }
}

fn lock_id_of(req: &VariableRequest) -> Result<&str, ServerError> {
    req.lock
        .as_ref()
        .map(|l| l.id.as_str())
        .filter(|id| !id.is_empty())
        .ok_or_else(|| bad("Lock.ID: missing lock ID"))
}

/// The answer to a delete (Nomad's).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Deleted {
    index: i64,
}

/// `DELETE /v1/var/{*path}?namespace=&cas=`: refused (409) under someone's lock or when
/// `cas` is not the variable's `ModifyIndex`; deleting a missing variable without `cas`
/// succeeds.
pub async fn purge(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(path): Path<String>,
    q: Result<Query<Params>, QueryRejection>,
) -> Result<Response, ServerError> {
    gate(&caller)?;
    let p = params(q)?;
    let ns = namespace_param(&p, false)?;
    validate_path(&path).map_err(ServerError::BadRequest)?;
    let cas = cas_param(&p)?;
    require(&caller, &ns, &path, VAR_DESTROY)?;
    for _ in 0..MAX_ATTEMPTS {
        let Some(current) = record::load(&st, &ns, &path).await? else {
            if cas.is_some_and(|c| c != 0) {
                return conflict(&st, &caller, &ns, &path, None, "cas: no such variable").await;
            }
            let rev = st.store.status().await?.revision;
            return Ok(indexed(StatusCode::OK, &Deleted { index: rev }, rev));
        };
        if cas.is_some_and(|c| c != current.modify_index) {
            return conflict(&st, &caller, &ns, &path, Some(&current), "cas mismatch").await;
        }
        if let Err(r) = lock::check_write(current.record.lock.as_ref(), None, now_ns()) {
            let why = r.message();
            return conflict(&st, &caller, &ns, &path, Some(&current), why).await;
        }
        if let Some(rev) = record::remove(&st, &ns, &path, current.modify_index).await? {
            return Ok(indexed(StatusCode::OK, &Deleted { index: rev }, rev));
        }
    }
    Err(retries_exhausted(&path))
}

/// One page of a list: the metadata shown and the token of the next page, if any.
struct Page {
    items: Vec<VariableMetadata>,
    next_token: Option<String>,
    index: i64,
}

/// `GET /v1/vars?prefix=&namespace=&per_page=&next_token=`: metadata only (no items, so no
/// decryption), in path order, of the variables the caller may `list`; `namespace=*` spans
/// every namespace.
pub async fn list(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    q: QueryOptions,
) -> Result<Answer<Vec<VariableMetadata>>, ServerError> {
    gate(&caller)?;
    let ns = match &q.namespace {
        Namespaces::One(ns) => ns.clone(),
        Namespaces::All => "*".to_string(),
    };
    check_namespace(&ns, true)?;
    let prefix = q.prefix.as_deref().unwrap_or("");
    if prefix.len() > MAX_PATH_BYTES
        || prefix
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '~' | '/')))
    {
        return Err(bad(format!(
            "prefix: expected up to {MAX_PATH_BYTES} bytes of letters, digits, '-', '_', '~' and '/', found {prefix:.140?}"
        )));
    }
    let per_page = q.per_page.unwrap_or(0);
    if per_page > MAX_PER_PAGE {
        return Err(bad(format!(
            "per_page: expected 0 to {MAX_PER_PAGE}, found {per_page}"
        )));
    }
    let token = q.next_token.as_deref().unwrap_or("");
    if token.len() > MAX_TOKEN_BYTES {
        return Err(bad(format!(
            "next_token: over the limit of {MAX_TOKEN_BYTES} bytes"
        )));
    }
    let watched = keys::vars_prefix((ns != "*").then_some(ns.as_str()), prefix);
    wait_for_change(&st, &q, &[&watched]).await?;
    let page = list_page(&st, &caller, &ns, prefix, per_page, token).await?;
    let mut answer = Answer::new(page.items, page.index, &q);
    answer.next_token = page.next_token;
    Ok(answer)
}

async fn list_page(
    st: &AppState,
    caller: &Caller,
    ns: &str,
    prefix: &str,
    per_page: usize,
    token: &str,
) -> Result<Page, ServerError> {
    let all = ns == "*";
    let base = keys::vars_prefix((!all).then_some(ns), prefix);
    let from = format!("{}{token}", keys::VARS_PREFIX);
    let start = if from > base { from } else { base.clone() };
    let resp = st
        .store
        .range(
            KeySelector::Range {
                start: start.into_bytes(),
                end: prefix_end(base.as_bytes()),
            },
            RangeOptions::default(),
        )
        .await?;
    let mut page = Page {
        items: Vec::new(),
        next_token: None,
        index: resp.revision,
    };
    for kv in &resp.kvs {
        let current = match record::decode(kv) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "skipping a variable that does not decode");
                continue;
            }
        };
        let (vns, vpath) = (&current.record.namespace, &current.record.path);
        if !vpath.starts_with(prefix) || !caller.acl.allows_variable(vns, vpath, VAR_LIST) {
            continue;
        }
        if per_page > 0 && page.items.len() == per_page {
            page.next_token = Some(format!("{vns}/{vpath}"));
            break;
        }
        let mut meta = current.metadata();
        meta.lock = visible_lock(caller, meta.lock, None);
        page.items.push(meta);
    }
    Ok(page)
}
