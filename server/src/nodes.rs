//! Node handlers: list and get (the agent's registration joined with the user's node spec,
//! liveness from `/nomos/heartbeats/`, `down` from the node-lifecycle record and the drain
//! report), eligibility and drain (written to `/nomos/nodespec/<node>`,
//! the key users own; the drain loop acts on it).

use axum::extract::{Path, State};
use axum::Json;
use nomos_api::{DrainSpec, DrainStatus, Node, NodeLifecycle, NodeSpec, NodeStatus};
use nomos_store::keys::{
    drain_status as drain_status_key, node_status as node_status_key, DRAIN_STATUS_PREFIX,
    NODE_STATUS_PREFIX,
};
use nomos_store::{KeySelector, RangeOptions};

use crate::body::JsonBody;
use crate::error::ServerError;
use crate::kv::{self, Entry};
use crate::views::{DrainRequest, EligibilityRequest, NodeView};
use crate::AppState;

/// Every registered node with spec, liveness and allocation count.
pub async fn all_nodes(st: &AppState) -> Result<Vec<NodeView>, ServerError> {
    let nodes: Vec<Entry<Node>> = kv::list_json(st.store.as_ref(), keys::NODES_PREFIX).await?;
    let specs: Vec<Entry<NodeSpec>> =
        kv::list_json(st.store.as_ref(), keys::NODE_SPECS_PREFIX).await?;
    let beats = st
        .store
        .range(
            KeySelector::prefix(keys::HEARTBEATS_PREFIX),
            RangeOptions {
                keys_only: true,
                ..RangeOptions::default()
            },
        )
        .await?;
    let alive: std::collections::HashSet<String> = beats
        .kvs
        .iter()
        .map(|kv| kv.key_str().into_owned())
        .collect();
    let drains: Vec<Entry<DrainStatus>> =
        kv::list_json(st.store.as_ref(), DRAIN_STATUS_PREFIX).await?;
    let lifecycles: Vec<Entry<NodeLifecycle>> =
        kv::list_json(st.store.as_ref(), NODE_STATUS_PREFIX).await?;
    let allocs = crate::allocs::all_allocs(st).await?;
    Ok(nodes
        .into_iter()
        .map(|e| {
            let name = e
                .key
                .strip_prefix(keys::NODES_PREFIX)
                .unwrap_or(&e.key)
                .to_string();
            let spec = specs
                .iter()
                .find(|s| s.key == keys::node_spec(&name))
                .map(|s| s.value.clone())
                .unwrap_or_default();
            let running = allocs
                .iter()
                .filter(|a| {
                    a.allocation.node == name
                        && a.allocation.desired_status == nomos_api::DesiredStatus::Run
                        && !a.client_status().is_terminal()
                })
                .count() as u32;
            let drain_status = drains
                .iter()
                .find(|d| d.key == drain_status_key(&name))
                .map(|d| d.value.clone());
            let mut v = view(
                e.value,
                name,
                spec,
                alive.contains(&keys::heartbeat_key(&e.key)),
                running,
            );
            v.drain_status = drain_status;
            // Without a heartbeat for `down_after`, the node-lifecycle loop calls it down.
            let down = lifecycles
                .iter()
                .find(|l| l.key == node_status_key(&v.node.name))
                .is_some_and(|l| l.value.status == NodeStatus::Down);
            if down && v.status != "ready" {
                v.status = "down".into();
            }
            v
        })
        .collect())
}

fn view(mut node: Node, name: String, spec: NodeSpec, alive: bool, allocations: u32) -> NodeView {
    if node.name.is_empty() {
        node.name = name;
    }
    NodeView {
        eligible: spec.eligible.unwrap_or(true),
        draining: spec.drain.is_some(),
        status: if alive { "ready" } else { "disconnected" }.to_string(),
        node,
        spec,
        allocations,
        drain_status: None,
    }
}

/// One node by exact name, unique name prefix, or unique id prefix.
pub async fn get_node(st: &AppState, name: &str) -> Result<NodeView, ServerError> {
    let all = all_nodes(st).await?;
    if let Some(n) = all
        .iter()
        .find(|n| n.node.name == name || n.node.id == name)
    {
        return Ok(n.clone());
    }
    match kv::resolve_prefix(&all, name, "node", |n| n.node.name.as_str()) {
        Ok(n) => Ok(n.clone()),
        Err(ServerError::NotFound(_)) => {
            kv::resolve_prefix(&all, name, "node", |n| n.node.id.as_str()).cloned()
        }
        Err(e) => Err(e),
    }
}

/// `GET /v1/nodes`.
pub async fn list(State(st): State<AppState>) -> Result<Json<Vec<NodeView>>, ServerError> {
    Ok(Json(all_nodes(&st).await?))
}

/// `GET /v1/node/{name}`.
pub async fn get(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<NodeView>, ServerError> {
    Ok(Json(get_node(&st, &name).await?))
}

/// Reads, changes and writes a node's spec with a compare on its mod_revision (retrying once on
/// a concurrent change).
async fn update_spec(
    st: &AppState,
    name: &str,
    change: impl Fn(&mut NodeSpec),
) -> Result<NodeView, ServerError> {
    let node = get_node(st, name).await?;
    let key = keys::node_spec(&node.node.name);
    for _ in 0..3 {
        let (mut spec, rev) = match kv::get_json::<NodeSpec>(st.store.as_ref(), &key).await? {
            Some(e) => (e.value, e.mod_revision),
            None => (NodeSpec::default(), 0),
        };
        change(&mut spec);
        match kv::put_if(st.store.as_ref(), &key, &spec, rev).await {
            Ok(_) => return get_node(st, &node.node.name).await,
            Err(ServerError::Conflict(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ServerError::Conflict(format!(
        "{key} keeps changing; try again"
    )))
}

/// `POST /v1/node/{name}/eligibility` `{ "eligible": bool }`.
pub async fn eligibility(
    State(st): State<AppState>,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<EligibilityRequest>,
) -> Result<Json<NodeView>, ServerError> {
    Ok(Json(
        update_spec(&st, &name, |s| s.eligible = Some(req.eligible)).await?,
    ))
}

/// `POST /v1/node/{name}/drain` `{ "enable": true, "deadline_secs": N, "ignore_system_jobs": b }`:
/// starts a drain (marking the node ineligible) or, with `enable: false`, cancels it and makes
/// the node eligible again (unless `keep_ineligible`), as Nomad's `node drain -disable` does.
pub async fn drain(
    State(st): State<AppState>,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<DrainRequest>,
) -> Result<Json<NodeView>, ServerError> {
    let now = crate::allocs::now_ms();
    let view = update_spec(&st, &name, |s| {
        if req.enable {
            s.eligible = Some(false);
            s.drain = Some(DrainSpec {
                deadline_ms: if req.deadline_secs == 0 {
                    0
                } else {
                    now + req.deadline_secs as i64 * 1000
                },
                ignore_system_jobs: req.ignore_system_jobs,
                started_at_ms: now,
            });
        } else {
            s.drain = None;
            if !req.keep_ineligible {
                s.eligible = Some(true);
            }
        }
    })
    .await?;
    Ok(Json(view))
}

mod keys_ext {
    /// `/nomos/heartbeats/<node>` for a `/nomos/nodes/<node>` key.
    pub fn heartbeat_key(node_key: &str) -> String {
        let name = node_key
            .strip_prefix(nomos_store::keys::NODES_PREFIX)
            .unwrap_or(node_key);
        nomos_store::keys::heartbeat(name)
    }
}

mod keys {
    pub use super::keys_ext::heartbeat_key;
    pub use nomos_store::keys::*;
}
