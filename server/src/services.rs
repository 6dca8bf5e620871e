//! The service catalogue's read API in Nomad's shapes, which Traefik's Nomad provider,
//! Prometheus's `nomad_sd_configs` and consul-template call: `GET /v1/services`,
//! `GET /v1/service/{name}` and `DELETE /v1/service/{name}/{id}`.
//!
//! Reads follow the conventions of every Nomad endpoint ([`crate::nomad`]): `namespace` (`*`:
//! every namespace the caller may read), `filter` (over the answer's fields), `per_page` /
//! `next_token` on a service's instances, blocking queries with `index` / `wait`, `stale`,
//! and Nomad's query headers, which Nomad's Go API client (Prometheus's `nomad_sd_configs`,
//! Traefik) requires: without `X-Nomad-LastContact` every query fails. A service's reads also
//! take `choose=N|key` (N instances picked by rendezvous hashing on `key`, the same N for the
//! same key while the instances stay). The index, in `X-Nomad-Index`, is the revision of the
//! catalogue's last change (`/nomos/servicesindex`, written with every registration change),
//! and a blocking query waits on that key alone.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, State};
use axum::Extension;
use nomos_api::acl::check::CAP_READ_JOB;
use nomos_api::service::ServiceRegistration;
use nomos_store::{keys, KeySelector, KeyValue, RangeOptions};
use serde::{Deserialize, Serialize};

use crate::acl::Caller;
use crate::error::ServerError;
use crate::nomad::blocking::wait_for_change;
use crate::nomad::query::{Namespaces, QueryOptions};
use crate::nomad::respond::Answer;
use crate::AppState;

pub use crate::nomad::query::MAX_WAIT;
pub use crate::nomad::respond::{INDEX_HEADER, KNOWN_LEADER_HEADER, LAST_CONTACT_HEADER};

/// One service of a namespace in `GET /v1/services`.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceStub {
    pub service_name: String,
    pub tags: Vec<String>,
}

/// A namespace's services in `GET /v1/services`.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct NamespaceServices {
    pub namespace: String,
    pub services: Vec<ServiceStub>,
}

/// A registration in Nomad's shape; `Healthy` and `Checks` are Nomos's additions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RegistrationView {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "ServiceName")]
    pub service_name: String,
    #[serde(rename = "Namespace")]
    pub namespace: String,
    #[serde(rename = "NodeID")]
    pub node_id: String,
    #[serde(rename = "Datacenter")]
    pub datacenter: String,
    #[serde(rename = "JobID")]
    pub job_id: String,
    #[serde(rename = "AllocID")]
    pub alloc_id: String,
    #[serde(rename = "Tags")]
    pub tags: Vec<String>,
    #[serde(rename = "Address")]
    pub address: String,
    #[serde(rename = "Port")]
    pub port: u16,
    #[serde(rename = "CreateIndex")]
    pub create_index: i64,
    #[serde(rename = "ModifyIndex")]
    pub modify_index: i64,
    #[serde(rename = "Healthy")]
    pub healthy: bool,
    #[serde(rename = "Checks")]
    pub checks: indexmap::IndexMap<String, String>,
}

impl RegistrationView {
    /// The registration stored in `kv`.
    pub fn of(r: ServiceRegistration, kv: &KeyValue) -> Self {
        RegistrationView {
            id: r.id,
            service_name: r.service_name,
            namespace: r.namespace,
            node_id: r.node_id,
            datacenter: r.datacenter,
            job_id: r.job_id,
            alloc_id: r.alloc_id,
            tags: r.tags,
            address: r.address,
            port: r.port,
            create_index: kv.create_revision,
            modify_index: kv.mod_revision,
            healthy: r.healthy,
            checks: r.checks,
        }
    }
}

/// The one namespace a read names, or none for `*`.
fn namespace_of(q: &QueryOptions) -> Option<&str> {
    match &q.namespace {
        Namespaces::One(ns) => Some(ns),
        Namespaces::All => None,
    }
}

/// The catalogue's index at `revision`: its last change's revision (1 before any).
async fn index_at(st: &AppState, revision: i64) -> Result<i64, ServerError> {
    let resp = st
        .store
        .range(
            KeySelector::key(keys::SERVICES_INDEX.as_bytes().to_vec()),
            RangeOptions {
                revision,
                ..Default::default()
            },
        )
        .await?;
    Ok(resp.kvs.first().map_or(1, |kv| kv.mod_revision.max(1)))
}

/// With `index`, waits until the catalogue changes after it, or `wait` runs out.
async fn block(st: &AppState, q: &QueryOptions) -> Result<(), ServerError> {
    wait_for_change(st, q, &[keys::SERVICES_INDEX]).await
}

/// Every registration under `prefix` with its key's revisions, and the revision read at; a
/// value that does not decode is skipped with a warning.
async fn stored(
    st: &AppState,
    prefix: &str,
) -> Result<(Vec<(ServiceRegistration, KeyValue)>, i64), ServerError> {
    let resp = st
        .store
        .range(
            KeySelector::prefix(prefix.as_bytes().to_vec()),
            RangeOptions::default(),
        )
        .await?;
    let mut out = Vec::with_capacity(resp.kvs.len());
    for kv in resp.kvs {
        match serde_json::from_slice::<ServiceRegistration>(&kv.value) {
            Ok(r) => out.push((r, kv)),
            Err(e) => {
                tracing::warn!(key = %kv.key_str(), error = %e, "skipping a service registration that does not decode");
            }
        }
    }
    Ok((out, resp.revision))
}

/// Every registration under `prefix` the caller may read, with the catalogue's index.
async fn read(
    st: &AppState,
    caller: &Caller,
    prefix: &str,
) -> Result<(Vec<RegistrationView>, i64), ServerError> {
    let (regs, revision) = stored(st, prefix).await?;
    let out = regs
        .into_iter()
        .filter(|(r, _)| caller.acl.allows_namespace(&r.namespace, CAP_READ_JOB))
        .map(|(r, kv)| RegistrationView::of(r, &kv))
        .collect();
    Ok((out, index_at(st, revision).await?))
}

/// `choose=N|key`: the N instances with the highest rendezvous score for `key`.
pub fn choose(
    items: Vec<RegistrationView>,
    spec: &str,
) -> Result<Vec<RegistrationView>, ServerError> {
    let (n, key) = spec.split_once('|').ok_or_else(|| {
        ServerError::BadRequest(format!("choose: expected N|key, found {spec:?}"))
    })?;
    let n: usize = n
        .parse()
        .map_err(|_| ServerError::BadRequest(format!("choose: {n:?} is not a count")))?;
    Ok(nomos_api::service::choose(items, n, key, |r| &r.id))
}

/// Every registration in `namespace` that `keep` keeps (for the UI's job and allocation
/// pages).
pub async fn registrations_in(
    st: &AppState,
    namespace: &str,
    keep: impl Fn(&ServiceRegistration) -> bool,
) -> Result<Vec<ServiceRegistration>, ServerError> {
    let prefix = keys::services_prefix(Some(namespace), None);
    let (regs, _) = stored(st, &prefix).await?;
    Ok(regs
        .into_iter()
        .map(|(r, _)| r)
        .filter(|r| keep(r))
        .collect())
}

/// The registrations of one allocation, in this API's shape (`GET /v1/allocation/{id}/services`).
pub async fn alloc_registrations(
    st: &AppState,
    namespace: &str,
    alloc_id: &str,
) -> Result<Vec<RegistrationView>, ServerError> {
    let prefix = keys::services_prefix(Some(namespace), None);
    let (regs, _) = stored(st, &prefix).await?;
    Ok(regs
        .into_iter()
        .filter(|(r, _)| r.alloc_id == alloc_id)
        .map(|(r, kv)| RegistrationView::of(r, &kv))
        .collect())
}

/// `GET /v1/services`: each namespace's services with the union of their instances' tags.
pub async fn list(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    q: QueryOptions,
) -> Result<Answer<Vec<NamespaceServices>>, ServerError> {
    block(&st, &q).await?;
    let prefix = keys::services_prefix(namespace_of(&q), None);
    let (mut items, index) = read(&st, &caller, &prefix).await?;
    if let Some(filter) = &q.filter {
        items.retain(|r| serde_json::to_value(r).is_ok_and(|v| filter.matches(&v)));
    }
    Ok(Answer::new(by_namespace(items), index, &q))
}

/// Each namespace's services, with the union of their instances' tags, in name order.
fn by_namespace(items: Vec<RegistrationView>) -> Vec<NamespaceServices> {
    let mut by_ns: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for r in items {
        by_ns
            .entry(r.namespace)
            .or_default()
            .entry(r.service_name)
            .or_default()
            .extend(r.tags);
    }
    by_ns
        .into_iter()
        .map(|(namespace, services)| NamespaceServices {
            namespace,
            services: services
                .into_iter()
                .map(|(service_name, tags)| ServiceStub {
                    service_name,
                    tags: tags.into_iter().collect(),
                })
                .collect(),
        })
        .collect()
}

/// `GET /v1/service/{name}`: the service's instances.
pub async fn get(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    q: QueryOptions,
) -> Result<Answer<Vec<RegistrationView>>, ServerError> {
    if let Some(why) = nomos_api::service::unfit_service_name(&name) {
        return Err(ServerError::BadRequest(why));
    }
    block(&st, &q).await?;
    let ns = namespace_of(&q);
    let prefix = match ns {
        Some(ns) => keys::services_prefix(Some(ns), Some(&name)),
        None => keys::SERVICES_PREFIX.to_string(),
    };
    let (mut items, index) = read(&st, &caller, &prefix).await?;
    items.retain(|r| r.service_name == name);
    let mut answer = Answer::paged(items, index, &q, |r| r.id.clone());
    if let Some(spec) = q.param("choose") {
        answer.body = choose(answer.body, spec)?;
    }
    Ok(answer)
}

/// `DELETE /v1/service/{name}/{id}`: removes one registration. While its allocation still
/// runs, the services loop registers it again (as Nomad's clients do).
pub async fn delete(
    State(st): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    q: QueryOptions,
) -> Result<Answer<serde_json::Value>, ServerError> {
    let ns = namespace_of(&q)
        .ok_or_else(|| ServerError::BadRequest("namespace: a delete names one namespace".into()))?;
    if nomos_api::service::unfit_service_name(&name).is_some() || id.contains('/') {
        return Err(ServerError::NotFound(format!(
            "no service registration {id:?}"
        )));
    }
    let key = keys::service(ns, &name, &id);
    let Some(kv) = crate::kv::get_raw(&*st.store, &key).await? else {
        return Err(ServerError::NotFound(format!(
            "no service registration {id:?} of service {name:?} in namespace {ns:?}"
        )));
    };
    let txn = nomos_store::Txn::new()
        .when([nomos_store::Compare::mod_revision(
            key.as_str(),
            nomos_store::CompareOp::Equal,
            kv.mod_revision,
        )])
        .and_then([
            nomos_store::TxnOp::delete(key.as_str()),
            nomos_store::TxnOp::put(keys::SERVICES_INDEX, Vec::new()),
        ]);
    let resp = st.store.txn(txn).await?;
    if !resp.succeeded {
        return Err(ServerError::Conflict(format!(
            "service registration {id:?} changed while it was being deleted"
        )));
    }
    Ok(Answer::new(serde_json::json!({}), resp.revision, &q))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: &str) -> RegistrationView {
        RegistrationView {
            id: id.into(),
            service_name: "web".into(),
            namespace: "default".into(),
            node_id: String::new(),
            datacenter: String::new(),
            job_id: String::new(),
            alloc_id: String::new(),
            tags: vec![],
            address: String::new(),
            port: 0,
            create_index: 0,
            modify_index: 0,
            healthy: true,
            checks: Default::default(),
        }
    }

    #[test]
    fn choose_picks_the_same_instances_for_a_key_whatever_their_order() {
        let ids: Vec<String> = (0..20).map(|i| format!("id-{i}")).collect();
        let items: Vec<RegistrationView> = ids.iter().map(|i| view(i)).collect();
        let mut reversed = items.clone();
        reversed.reverse();
        let a = choose(items.clone(), "3|client-a").unwrap();
        let b = choose(reversed, "3|client-a").unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!(a, b);
        // Removing an instance that was not chosen leaves the choice as it was.
        let unchosen = ids.iter().find(|i| !a.iter().any(|r| &&r.id == i)).unwrap();
        let fewer: Vec<RegistrationView> = items
            .iter()
            .filter(|r| &r.id != unchosen)
            .cloned()
            .collect();
        assert_eq!(choose(fewer, "3|client-a").unwrap(), a);
        let other = choose(items.clone(), "3|client-b").unwrap();
        assert_ne!(other, a, "another key spreads elsewhere");
        assert!(choose(items.clone(), "x|k").is_err());
        assert!(choose(items, "3").is_err());
    }
}
