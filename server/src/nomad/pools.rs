//! Node pools, read-only: `GET /v1/node/pools`, `/v1/node/pool/{name}` and
//! `/v1/node/pool/{name}/nodes`, in Nomad's shapes. Nomos keeps no pool objects: the pools are
//! Nomad's built-in `all` and `default` and every pool a node registered in (`node_pool` in
//! its agent's configuration). `all` holds every node.

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use nomos_store::keys;
use serde_json::{json, Value};

use super::blocking::{read_index, wait_for_change};
use super::nodes::{pool_of, stub, NodeStub};
use super::query::QueryOptions;
use super::respond::{list, Answer};
use crate::error::ServerError;
use crate::reads::all_nodes;
use crate::views::NodeView;
use crate::AppState;

fn pool(name: &str) -> Value {
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

/// The pool names: the built-in ones and those nodes registered in.
fn pool_names(nodes: &[NodeView]) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = ["all", "default"].map(String::from).into();
    names.extend(nodes.iter().map(|n| pool_of(n).to_string()));
    names
}

/// `GET /v1/node/pools`.
pub async fn list_pools(
    State(st): State<AppState>,
    q: QueryOptions,
) -> Result<Answer<Vec<Value>>, ServerError> {
    wait_for_change(&st, &q, &[keys::NODES_PREFIX]).await?;
    let index = read_index(&st).await?;
    let pools: Vec<Value> = pool_names(&all_nodes(&st).await?)
        .iter()
        .map(|p| pool(p))
        .collect();
    let (page, next) = list(pools, &q, |p| p["Name"].as_str().unwrap_or("").to_string());
    let mut answer = Answer::new(page, index, &q);
    answer.next_token = next;
    Ok(answer)
}

/// `GET /v1/node/pool/{name}`.
pub async fn get_pool(
    State(st): State<AppState>,
    Path(name): Path<String>,
    q: QueryOptions,
) -> Result<Answer<Value>, ServerError> {
    let index = read_index(&st).await?;
    if !pool_names(&all_nodes(&st).await?).contains(&name) {
        return Err(ServerError::NotFound(format!(
            "node pool {name:?} not found"
        )));
    }
    Ok(Answer::new(pool(&name), index, &q))
}

/// `GET /v1/node/pool/{name}/nodes`: the pool's nodes as list stubs.
pub async fn pool_nodes(
    State(st): State<AppState>,
    Path(name): Path<String>,
    q: QueryOptions,
) -> Result<Answer<Vec<NodeStub>>, ServerError> {
    wait_for_change(&st, &q, &[keys::NODES_PREFIX]).await?;
    let index = read_index(&st).await?;
    let nodes = all_nodes(&st).await?;
    if !pool_names(&nodes).contains(&name) {
        return Err(ServerError::NotFound(format!(
            "node pool {name:?} not found"
        )));
    }
    let members: Vec<NodeStub> = nodes
        .iter()
        .filter(|n| name == "all" || pool_of(n) == name)
        .map(|n| stub(n, false, false))
        .collect();
    let (page, next) = list(members, &q, |n| n.id.clone());
    let mut answer = Answer::new(page, index, &q);
    answer.next_token = next;
    Ok(answer)
}
