//! Whole-cluster reads the handlers and UI pages share: every allocation joined with its
//! status, every node joined with its spec, liveness, drain report and lifecycle record, and
//! every deployment. Handler modules read through here rather than through each other, so none
//! of them depends on another.

use nomos_api::{
    AllocStatus, Allocation, Deployment, DrainStatus, Node, NodeLifecycle, NodeSpec, NodeStatus,
};
use nomos_store::keys::{
    self, drain_status as drain_status_key, node_status as node_status_key, DRAIN_STATUS_PREFIX,
    NODE_STATUS_PREFIX,
};
use nomos_store::{KeySelector, RangeOptions};

use crate::error::ServerError;
use crate::kv::{self, Entry};
use crate::views::{AllocView, DeploymentView, NodeView};
use crate::AppState;

/// An allocation as stored: what the scheduler wants, what the agent reports, and the
/// revisions of both keys.
#[derive(Debug, Clone)]
pub struct AllocRow {
    pub alloc: Allocation,
    pub status: Option<AllocStatus>,
    /// The allocation key's create revision.
    pub create_index: i64,
    /// The allocation key's mod revision (its last desired change).
    pub alloc_modify_index: i64,
    /// The newer of the allocation's and its status's mod revisions.
    pub modify_index: i64,
}

/// Every allocation joined with its status and the revisions of both, in key order.
pub async fn alloc_rows(st: &AppState) -> Result<Vec<AllocRow>, ServerError> {
    let allocs: Vec<Entry<Allocation>> =
        kv::list_json(st.store.as_ref(), &keys::allocs_prefix(None)).await?;
    let statuses: Vec<Entry<AllocStatus>> =
        kv::list_json(st.store.as_ref(), &keys::alloc_status_prefix(None)).await?;
    let mut by_key: std::collections::HashMap<String, Entry<AllocStatus>> =
        statuses.into_iter().map(|e| (e.key.clone(), e)).collect();
    Ok(allocs
        .into_iter()
        .map(|e| {
            let status = by_key.remove(&keys::alloc_status(&e.value.node, &e.value.id));
            AllocRow {
                create_index: e.create_revision,
                alloc_modify_index: e.mod_revision,
                modify_index: e
                    .mod_revision
                    .max(status.as_ref().map_or(0, |s| s.mod_revision)),
                status: status.map(|s| s.value),
                alloc: e.value,
            }
        })
        .collect())
}

/// Every allocation joined with its status, in key order.
pub async fn all_allocs(st: &AppState) -> Result<Vec<AllocView>, ServerError> {
    Ok(alloc_rows(st)
        .await?
        .into_iter()
        .map(|r| AllocView {
            allocation: r.alloc,
            status: r.status,
            modify_index: r.alloc_modify_index,
        })
        .collect())
}

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
        .filter_map(|kv| kv.key_utf8_or_skip().map(str::to_string))
        .collect();
    let drains: Vec<Entry<DrainStatus>> =
        kv::list_json(st.store.as_ref(), DRAIN_STATUS_PREFIX).await?;
    let lifecycles: Vec<Entry<NodeLifecycle>> =
        kv::list_json(st.store.as_ref(), NODE_STATUS_PREFIX).await?;
    let allocs = crate::reads::all_allocs(st).await?;
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
            let beating = alive.contains(&keys::heartbeat(&name));
            let mut v = node_view(e.value, name, spec, beating, running);
            v.drain_status = drain_status;
            v.create_index = e.create_revision;
            v.modify_index = e.mod_revision;
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

fn node_view(
    mut node: Node,
    name: String,
    spec: NodeSpec,
    alive: bool,
    allocations: u32,
) -> NodeView {
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
        create_index: 0,
        modify_index: 0,
    }
}

/// A node whose registration was deleted, from its last registration (`down`, with no spec).
pub fn departed_node_view(node: Node, name: &str) -> NodeView {
    let mut view = node_view(node, name.to_string(), NodeSpec::default(), false, 0);
    view.status = "down".into();
    view
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

/// Every deployment, newest first.
pub async fn all_deployments(st: &AppState) -> Result<Vec<DeploymentView>, ServerError> {
    let entries: Vec<Entry<Deployment>> =
        kv::list_json(st.store.as_ref(), keys::DEPLOYMENTS_PREFIX).await?;
    let mut out: Vec<DeploymentView> = entries
        .into_iter()
        .map(|e| DeploymentView {
            deployment: e.value,
            modify_index: e.mod_revision,
        })
        .collect();
    out.sort_by(|a, b| {
        (b.deployment.created_at_ms, b.modify_index)
            .cmp(&(a.deployment.created_at_ms, a.modify_index))
    });
    Ok(out)
}
