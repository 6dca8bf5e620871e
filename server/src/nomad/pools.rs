//! Node pools in Nomad's shapes. Reads: `GET /v1/node/pools`, `/v1/node/pool/{name}` and
//! `/v1/node/pool/{name}/nodes`. The pools are Nomad's built-in `all` and `default`, every
//! pool a node registered in (`node_pool` in its agent's configuration), and every pool
//! written as an object (`/nomos/nodepools/<name>`, with its description, meta and scheduler
//! configuration). `all` holds every node.
//!
//! Writes (management tokens): `PUT|POST /v1/node/pools` (and `/v1/node/pool/{name}`) with
//! `{Name, Description, Meta, SchedulerConfiguration: {SchedulerAlgorithm}}` creates or
//! updates one (names of 1 to 128 `[a-zA-Z0-9-_]`; `all` and `default` cannot be written, 400);
//! the jobs controller places the pool's jobs with its algorithm. `DELETE
//! /v1/node/pool/{name}` deletes one: 400 for a built-in pool, 409 while a node registered in
//! it or a job that is not stopped names it, 404 for a pool that was never written.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, State};
use nomos_api::settings::{refuse_any, NodePool, BUILTIN_POOLS};
use nomos_store::keys;
use serde_json::{json, Value};

use super::blocking::{read_index, wait_for_change};
use super::nodes::{pool_of, stub, NodeStub};
use super::query::QueryOptions;
use super::respond::Answer;
use crate::body::JsonBody;
use crate::error::ServerError;
use crate::kv::{self, Entry};
use crate::reads::all_nodes;
use crate::views::NodeView;
use crate::AppState;

/// What a pool answer depends on.
const POOL_PREFIXES: &[&str] = &[keys::NODES_PREFIX, keys::NODE_POOLS_PREFIX];

/// The pools written as objects, by name.
async fn stored_pools(st: &AppState) -> Result<BTreeMap<String, Entry<NodePool>>, ServerError> {
    let entries = kv::list_json::<NodePool>(st.store.as_ref(), keys::NODE_POOLS_PREFIX).await?;
    Ok(entries
        .into_iter()
        .map(|e| (e.value.name.clone(), e))
        .collect())
}

/// A pool in Nomad's shape: as written, or as the built-in or derived pool it is.
fn pool(name: &str, stored: Option<&Entry<NodePool>>) -> Value {
    if let Some(e) = stored {
        return json!({
            "Name": name,
            "Description": e.value.description,
            "Meta": e.value.meta,
            "SchedulerConfiguration": e.value.scheduler_configuration,
            "CreateIndex": e.create_revision,
            "ModifyIndex": e.mod_revision,
        });
    }
    let description = match name {
        "all" => "Node pool with all nodes in the cluster.",
        "default" => "Default node pool.",
        _ => "",
    };
    json!({
        "Name": name,
        "Description": description,
        "Meta": null,
        "SchedulerConfiguration": null,
        "CreateIndex": 1,
        "ModifyIndex": 1,
    })
}

/// The pool names: the built-in ones, those nodes registered in and those written.
fn pool_names(nodes: &[NodeView], stored: &BTreeMap<String, Entry<NodePool>>) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = BUILTIN_POOLS.map(String::from).into();
    names.extend(nodes.iter().map(|n| pool_of(n).to_string()));
    names.extend(stored.keys().cloned());
    names
}

/// 404 unless `name` is a pool.
fn require_pool(names: &BTreeSet<String>, name: &str) -> Result<(), ServerError> {
    if names.contains(name) {
        return Ok(());
    }
    Err(ServerError::NotFound(format!(
        "node pool {name:?} not found"
    )))
}

/// `GET /v1/node/pools`.
pub async fn list_pools(
    State(st): State<AppState>,
    q: QueryOptions,
) -> Result<Answer<Vec<Value>>, ServerError> {
    wait_for_change(&st, &q, POOL_PREFIXES).await?;
    let index = read_index(&st).await?;
    let stored = stored_pools(&st).await?;
    let pools: Vec<Value> = pool_names(&all_nodes(&st).await?, &stored)
        .iter()
        .map(|p| pool(p, stored.get(p)))
        .collect();
    Ok(Answer::paged(pools, index, &q, |p| {
        p["Name"].as_str().unwrap_or("").to_string()
    }))
}

/// `GET /v1/node/pool/{name}`.
pub async fn get_pool(
    State(st): State<AppState>,
    Path(name): Path<String>,
    q: QueryOptions,
) -> Result<Answer<Value>, ServerError> {
    wait_for_change(&st, &q, POOL_PREFIXES).await?;
    let index = read_index(&st).await?;
    let stored = stored_pools(&st).await?;
    require_pool(&pool_names(&all_nodes(&st).await?, &stored), &name)?;
    Ok(Answer::new(pool(&name, stored.get(&name)), index, &q))
}

/// `GET /v1/node/pool/{name}/nodes`: the pool's nodes as list stubs.
pub async fn pool_nodes(
    State(st): State<AppState>,
    Path(name): Path<String>,
    q: QueryOptions,
) -> Result<Answer<Vec<NodeStub>>, ServerError> {
    wait_for_change(&st, &q, POOL_PREFIXES).await?;
    let index = read_index(&st).await?;
    let nodes = all_nodes(&st).await?;
    require_pool(&pool_names(&nodes, &stored_pools(&st).await?), &name)?;
    let members: Vec<NodeStub> = nodes
        .iter()
        .filter(|n| name == "all" || pool_of(n) == name)
        .map(|n| stub(n, false, false))
        .collect();
    Ok(Answer::paged(members, index, &q, |n| n.id.clone()))
}

/// Validates and writes a pool; answers it as stored.
async fn upsert(st: &AppState, new: NodePool) -> Result<Answer<Value>, ServerError> {
    refuse_any("node pool", new.problems()).map_err(ServerError::BadRequest)?;
    let key = keys::node_pool(&new.name);
    let rev = kv::get_raw(st.store.as_ref(), &key)
        .await?
        .map_or(0, |kv| kv.mod_revision);
    let index = kv::put_if(st.store.as_ref(), &key, &new, rev).await?;
    let stored = kv::get_json::<NodePool>(st.store.as_ref(), &key).await?;
    let answer = pool(&new.name, stored.as_ref());
    Ok(Answer::new(answer, index, &QueryOptions::default()))
}

/// `PUT|POST /v1/node/pools`: creates or updates the pool the body names.
pub async fn put_pool(
    State(st): State<AppState>,
    JsonBody(req): JsonBody<NodePool>,
) -> Result<Answer<Value>, ServerError> {
    upsert(&st, req).await
}

/// `PUT|POST /v1/node/pool/{name}`: the same, for the pool of the path (the body's `Name`,
/// when given, must match it).
pub async fn put_named_pool(
    State(st): State<AppState>,
    Path(name): Path<String>,
    JsonBody(mut req): JsonBody<NodePool>,
) -> Result<Answer<Value>, ServerError> {
    if !req.name.is_empty() && req.name != name {
        return Err(ServerError::BadRequest(format!(
            "node pool name {:?} in the body differs from {name:?} in the path",
            req.name
        )));
    }
    req.name = name;
    upsert(&st, req).await
}

/// `DELETE /v1/node/pool/{name}`.
pub async fn delete_pool(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<Answer<Value>, ServerError> {
    if BUILTIN_POOLS.contains(&name.as_str()) {
        return Err(ServerError::BadRequest(format!(
            "node pool {name:?} is built in and cannot be deleted"
        )));
    }
    let nodes = all_nodes(&st).await?;
    let members: Vec<&str> = nodes
        .iter()
        .filter(|n| pool_of(n) == name)
        .map(|n| n.node.name.as_str())
        .collect();
    let key = keys::node_pool(&name);
    let Some(stored) = kv::get_raw(st.store.as_ref(), &key).await? else {
        if !members.is_empty() {
            return Err(ServerError::Conflict(format!(
                "node pool {name:?} is not a stored pool: it exists because nodes registered in \
                 it ({})",
                members.join(", ")
            )));
        }
        return Err(ServerError::NotFound(format!(
            "node pool {name:?} not found"
        )));
    };
    if !members.is_empty() {
        return Err(ServerError::Conflict(format!(
            "node pool {name:?} has nodes: {} (move them to another pool first)",
            members.join(", ")
        )));
    }
    let jobs: Vec<String> = crate::specs::stored_jobs(&st, None)
        .await?
        .into_iter()
        .filter_map(|(_, job)| job.ok())
        .filter(|j| j.node_pool == name && !j.stop)
        .map(|j| format!("{}/{}", j.namespace, j.id))
        .collect();
    if !jobs.is_empty() {
        return Err(ServerError::Conflict(format!(
            "node pool {name:?} has jobs that are not stopped: {}",
            jobs.join(", ")
        )));
    }
    let index = kv::delete_if(st.store.as_ref(), &key, stored.mod_revision).await?;
    Ok(Answer::new(
        json!({"Index": index}),
        index,
        &QueryOptions::default(),
    ))
}
