//! The node page: resources and what the node's allocations hold of them, drain progress,
//! drivers, attributes and allocations.

use axum::extract::{Path, State};
use axum::Extension;
use nomos_api::acl::check::CAP_READ_JOB;
use serde::Serialize;

use super::{html, Page};
use crate::acl::Caller;
use crate::error::ServerError;
use crate::ui::model::{self, AllocRow, Bar, When};
use crate::views::{AllocView, NodeView};
use crate::AppState;

/// Attributes shown at the top of a node page, when the agent fingerprinted them.
const KEY_ATTRIBUTES: &[&str] = &[
    "unique.hostname",
    "unique.network.ip-address",
    "kernel.name",
    "kernel.version",
    "kernel.arch",
    "os.name",
    "os.version",
    "cpu.arch",
    "cpu.modelname",
    "cpu.numcores",
    "nomos.version",
];

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriverRow {
    pub name: String,
    pub detected: bool,
    pub healthy: bool,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrainBox {
    /// The drain loop's state, or `draining` before it reported.
    pub state: String,
    pub started: When,
    pub deadline: When,
    pub ignore_system_jobs: bool,
    pub remaining: u32,
    pub migrating: u32,
    pub nowhere_to_go: Vec<String>,
    pub updated: When,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodePage {
    pub name: String,
    pub id: String,
    pub datacenter: String,
    pub node_class: String,
    pub node_pool: String,
    pub address: String,
    pub http_addr: String,
    pub status: String,
    pub eligible: bool,
    pub registered: When,
    pub cores: u32,
    pub cpu_total: String,
    pub cpu_reserved: String,
    pub memory_total: String,
    pub memory_reserved: String,
    pub disk_total: String,
    pub ports: String,
    pub reserved_ports: String,
    pub cpu: Bar,
    pub memory: Bar,
    pub drain: Option<DrainBox>,
    pub drivers: Vec<DriverRow>,
    pub key_attributes: Vec<(String, String)>,
    pub attributes: Vec<(String, String)>,
    pub meta: Vec<(String, String)>,
    pub allocs: Vec<AllocRow>,
    pub fragment_href: String,
}

/// The node page's model: `allocs` are the node's allocations, `usage` what they hold.
pub fn node_page(
    n: &NodeView,
    usage: Option<&model::NodeUsage>,
    allocs: &[AllocView],
    now_ms: i64,
) -> NodePage {
    let node = &n.node;
    let r = &node.resources;
    let row = model::node_row(n, usage);
    let (lo, hi) = if r.min_dynamic_port == 0 {
        (20000, 32000)
    } else {
        (r.min_dynamic_port, r.max_dynamic_port)
    };
    // A drain shows while requested, and its last report after it completed or was cancelled.
    let drain = match (&n.spec.drain, &n.drain_status) {
        (None, None) => None,
        (spec, report) => Some(DrainBox {
            state: report
                .as_ref()
                .map(|d| d.state.to_string())
                .unwrap_or_else(|| "draining".into()),
            started: model::when(
                now_ms,
                spec.as_ref()
                    .map(|s| s.started_at_ms)
                    .or(report.as_ref().map(|d| d.started_at_ms)),
            ),
            // Only a drain still requested has a deadline ahead of it.
            deadline: model::when(now_ms, spec.as_ref().map(|s| s.deadline_ms)),
            ignore_system_jobs: spec.as_ref().is_some_and(|s| s.ignore_system_jobs),
            remaining: report.as_ref().map(|d| d.remaining).unwrap_or(0),
            migrating: report.as_ref().map(|d| d.migrating).unwrap_or(0),
            nowhere_to_go: report
                .as_ref()
                .map(|d| d.nowhere_to_go.clone())
                .unwrap_or_default(),
            updated: model::when(now_ms, report.as_ref().map(|d| d.updated_at_ms)),
        }),
    };
    let pairs = |m: &indexmap::IndexMap<String, String>| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort();
        v
    };
    NodePage {
        name: node.name.clone(),
        id: node.id.clone(),
        datacenter: node.datacenter.clone(),
        node_class: node.node_class.clone(),
        node_pool: node.node_pool.clone(),
        address: node.address.clone(),
        http_addr: node.http_addr.clone(),
        status: n.status.clone(),
        eligible: n.eligible,
        registered: model::when(now_ms, Some(node.registered_at_ms)),
        cores: r.cores,
        cpu_total: model::mhz(r.cpu_mhz as u64),
        cpu_reserved: model::mhz(r.reserved_cpu_mhz as u64),
        memory_total: model::mib(r.memory_mb as u64),
        memory_reserved: model::mib(r.reserved_memory_mb as u64),
        disk_total: model::mib(r.disk_mb as u64),
        ports: format!("{lo}–{hi}"),
        reserved_ports: r
            .reserved_ports
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        cpu: row.cpu,
        memory: row.memory,
        drain,
        drivers: node
            .drivers
            .iter()
            .map(|(name, d)| DriverRow {
                name: name.clone(),
                detected: d.detected,
                healthy: d.healthy,
                version: d.version.clone(),
            })
            .collect(),
        key_attributes: KEY_ATTRIBUTES
            .iter()
            .filter_map(|k| node.attributes.get(*k).map(|v| (k.to_string(), v.clone())))
            .collect(),
        attributes: pairs(&node.attributes),
        meta: pairs(&node.meta),
        allocs: model::alloc_rows(allocs, now_ms),
        fragment_href: format!("/ui/fragments/node/{}", model::encode_segment(&node.name)),
    }
}

/// The node page for `caller`: its allocations only from namespaces the caller may read.
async fn node_model(st: &AppState, caller: &Caller, name: &str) -> Result<NodePage, ServerError> {
    let n = crate::reads::get_node(st, name).await?;
    let all = crate::reads::all_allocs(st).await?;
    let usage = model::node_usage(&crate::usage::snapshot(st).await?);
    let mine: Vec<AllocView> = all
        .into_iter()
        .filter(|a| a.allocation.node == n.node.name)
        .filter(|a| {
            caller
                .acl
                .allows_namespace(&a.allocation.namespace, CAP_READ_JOB)
        })
        .collect();
    Ok(node_page(
        &n,
        usage.get(&n.node.name),
        &mine,
        nomos_api::now_ms(),
    ))
}

/// `GET /ui/node/{name}` (name, unique name prefix or unique id prefix).
pub async fn node(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Page {
    let node = node_model(&st, &caller, &name).await?;
    html("node.html", &serde_json::json!({ "node": node }))
}

/// `GET /ui/fragments/node/{name}`.
pub async fn node_fragment(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Page {
    let node = node_model(&st, &caller, &name).await?;
    html("fragments/node.html", &serde_json::json!({ "node": node }))
}
