//! Nodes in Nomad's shapes: `GET /v1/nodes` (`NodeListStub`s; `resources=true` adds their
//! resources, `os=true` their `os.*` attributes), `GET /v1/node/{id}` (a `Node`), and the
//! writes `POST|PUT /v1/node/{id}/drain` (`{"DrainSpec": {"Deadline", "IgnoreSystemJobs"},
//! "MarkEligible"}`) and `/v1/node/{id}/eligibility` (`{"Eligibility": "eligible"}`). A node
//! is named by its ID, its name, or a unique prefix of either.
//!
//! Nomos's additions, in the same style: `RunningAllocs` (allocations placed and not finished)
//! and, on a node, `DrainReport` (the drain loop's progress: what remains, what migrates, what
//! has nowhere to go).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use nomos_api::eval::triggers;
use nomos_api::{DrainSpec, DrainState, NodeSpec};
use nomos_store::keys;
use serde::{Deserialize, Serialize};

use super::blocking::{read_index, wait_for_change};
use super::query::QueryOptions;
use super::respond::Answer;
use super::shapes::{go_time, ms_to_ns, null_empty};
use crate::body::JsonBody;
use crate::error::ServerError;
use crate::kv;
use crate::reads::{all_nodes, get_node};
use crate::views::NodeView;
use crate::AppState;

/// What a node answer depends on (blocking queries wake on any change under these).
const NODE_PREFIXES: &[&str] = &[
    keys::NODES_PREFIX,
    keys::NODE_SPECS_PREFIX,
    keys::HEARTBEATS_PREFIX,
    keys::DRAIN_STATUS_PREFIX,
    keys::NODE_STATUS_PREFIX,
];

/// A driver as Nomad reports it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DriverView {
    #[serde(with = "null_empty")]
    pub attributes: BTreeMap<String, String>,
    pub detected: bool,
    pub healthy: bool,
    pub health_description: String,
    #[serde(with = "go_time")]
    pub update_time: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeCpu {
    pub cpu_shares: i64,
    pub total_cpu_cores: u32,
    #[serde(with = "null_empty")]
    pub reservable_cpu_cores: Vec<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MemoryMb {
    #[serde(rename = "MemoryMB")]
    pub memory_mb: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DiskMb {
    #[serde(rename = "DiskMB")]
    pub disk_mb: i64,
}

/// A node's resources (Nomad's `NodeResources`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeResourcesView {
    pub cpu: NodeCpu,
    pub memory: MemoryMb,
    pub disk: DiskMb,
    #[serde(with = "null_empty")]
    pub networks: Vec<serde_json::Value>,
    #[serde(with = "null_empty")]
    pub devices: Vec<serde_json::Value>,
    pub min_dynamic_port: u16,
    pub max_dynamic_port: u16,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CpuShares {
    pub cpu_shares: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ReservedPorts {
    pub reserved_host_ports: String,
}

/// What a node holds back for its OS and agent (Nomad's `NodeReservedResources`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ReservedView {
    pub cpu: CpuShares,
    pub memory: MemoryMb,
    pub disk: DiskMb,
    pub networks: ReservedPorts,
}

/// The last drain (Nomad's `DrainMetadata`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DrainMetadata {
    #[serde(with = "go_time")]
    pub started_at: i64,
    #[serde(with = "go_time")]
    pub updated_at: i64,
    /// `draining`, `complete` or `canceled`.
    pub status: String,
    #[serde(rename = "AccessorID")]
    pub accessor_id: String,
    #[serde(with = "null_empty")]
    pub meta: BTreeMap<String, String>,
}

/// A drain in progress (Nomad's `DrainStrategy`: its `DrainSpec` fields inline).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DrainStrategy {
    /// Nanoseconds from the start after which what remains is stopped; 0: no deadline.
    pub deadline: i64,
    pub ignore_system_jobs: bool,
    #[serde(with = "go_time")]
    pub force_deadline: i64,
    #[serde(with = "go_time")]
    pub started_at: i64,
}

/// Nomos's drain progress report (`/nomos/drainstatus/<node>`); times in Unix nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DrainReport {
    /// `draining`, `blocked` (something has nowhere to go), `complete` or `cancelled`.
    pub state: String,
    pub started_at: i64,
    pub deadline: i64,
    pub remaining: u32,
    pub migrating: u32,
    #[serde(with = "null_empty")]
    pub nowhere_to_go: Vec<String>,
    pub updated_at: i64,
}

/// A node in a list (Nomad's `NodeListStub`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeStub {
    pub address: String,
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<BTreeMap<String, String>>,
    pub datacenter: String,
    pub name: String,
    pub node_class: String,
    pub node_pool: String,
    pub version: String,
    pub drain: bool,
    pub scheduling_eligibility: String,
    pub status: String,
    pub status_description: String,
    #[serde(with = "null_empty")]
    pub drivers: BTreeMap<String, DriverView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_resources: Option<NodeResourcesView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reserved_resources: Option<ReservedView>,
    pub last_drain: Option<DrainMetadata>,
    pub create_index: i64,
    pub modify_index: i64,
    pub running_allocs: u32,
}

/// One node, whole (Nomad's `Node`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeDetail {
    #[serde(rename = "ID")]
    pub id: String,
    pub datacenter: String,
    pub name: String,
    #[serde(rename = "HTTPAddr")]
    pub http_addr: String,
    #[serde(rename = "TLSEnabled")]
    pub tls_enabled: bool,
    #[serde(with = "null_empty")]
    pub attributes: BTreeMap<String, String>,
    pub node_resources: NodeResourcesView,
    pub reserved_resources: ReservedView,
    #[serde(with = "null_empty")]
    pub meta: BTreeMap<String, String>,
    pub node_class: String,
    pub node_pool: String,
    pub drain: bool,
    pub drain_strategy: Option<DrainStrategy>,
    pub scheduling_eligibility: String,
    pub status: String,
    pub status_description: String,
    /// Unix seconds.
    pub status_updated_at: i64,
    #[serde(with = "null_empty")]
    pub drivers: BTreeMap<String, DriverView>,
    pub last_drain: Option<DrainMetadata>,
    pub create_index: i64,
    pub modify_index: i64,
    pub running_allocs: u32,
    pub drain_report: Option<DrainReport>,
    /// The address other hosts reach the node's ports on (the stub's `Address`).
    pub address: String,
    /// The agent's `host_volume`s, by name.
    #[serde(with = "null_empty")]
    pub host_volumes: BTreeMap<String, HostVolumeView>,
}

/// One host volume of a node (Nomad's `ClientHostVolumeConfig`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostVolumeView {
    pub name: String,
    pub path: String,
    pub read_only: bool,
}

/// `PUT /v1/node/{id}/drain`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
pub struct DrainRequest {
    #[serde(rename = "NodeID")]
    pub node_id: String,
    /// `null` cancels the drain.
    pub drain_spec: Option<DrainSpecRequest>,
    /// With a cancel: make the node eligible again.
    pub mark_eligible: bool,
    pub meta: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
pub struct DrainSpecRequest {
    /// Nanoseconds; 0: no deadline; negative: stop everything now (Nomad's `-force`).
    pub deadline: i64,
    pub ignore_system_jobs: bool,
}

/// `PUT /v1/node/{id}/eligibility`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
pub struct EligibilityRequest {
    #[serde(rename = "NodeID")]
    pub node_id: String,
    /// `eligible` or `ineligible`.
    pub eligibility: String,
}

/// The answer to a node write (Nomad's `NodeDrainUpdateResponse` and
/// `NodeEligibilityUpdateResponse`): `EvalIDs` are the pending evaluations written for the
/// jobs with allocations on the node ([`super::evals::evaluate_node`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeUpdateResponse {
    pub node_modify_index: i64,
    #[serde(rename = "EvalIDs")]
    pub eval_ids: Option<Vec<String>>,
    pub eval_create_index: i64,
    pub index: i64,
    /// The node as the write left it (Nomos's addition).
    pub node: NodeDetail,
}

fn eligibility(n: &NodeView) -> String {
    if n.eligible { "eligible" } else { "ineligible" }.to_string()
}

fn drivers(n: &NodeView) -> BTreeMap<String, DriverView> {
    n.node
        .drivers
        .iter()
        .map(|(name, d)| {
            let view = DriverView {
                attributes: d.attributes.clone().into_iter().collect(),
                detected: d.detected,
                healthy: d.healthy,
                health_description: if d.healthy { "Healthy" } else { "Unhealthy" }.into(),
                update_time: ms_to_ns(n.node.registered_at_ms),
            };
            (name.clone(), view)
        })
        .collect()
}

fn resources(n: &NodeView) -> (NodeResourcesView, ReservedView) {
    let r = &n.node.resources;
    let res = NodeResourcesView {
        cpu: NodeCpu {
            cpu_shares: i64::from(r.cpu_mhz),
            total_cpu_cores: r.cores,
            reservable_cpu_cores: (0..r.cores).collect(),
        },
        memory: MemoryMb {
            memory_mb: i64::from(r.memory_mb),
        },
        disk: DiskMb {
            disk_mb: i64::from(r.disk_mb),
        },
        networks: Vec::new(),
        devices: r.devices.iter().map(device_group_view).collect(),
        min_dynamic_port: r.min_dynamic_port,
        max_dynamic_port: r.max_dynamic_port,
    };
    let ports: Vec<String> = r.reserved_ports.iter().map(u16::to_string).collect();
    let reserved = ReservedView {
        cpu: CpuShares {
            cpu_shares: i64::from(r.reserved_cpu_mhz),
        },
        memory: MemoryMb {
            memory_mb: i64::from(r.reserved_memory_mb),
        },
        disk: DiskMb::default(),
        networks: ReservedPorts {
            reserved_host_ports: ports.join(","),
        },
    };
    (res, reserved)
}

/// A device group as Nomad's `NodeDeviceResource`: `Vendor`, `Type`, `Name`, `Instances`
/// (`ID`, `Healthy`, `Locality.PciBusID`) and typed `Attributes`.
fn device_group_view(g: &nomos_api::NodeDeviceGroup) -> serde_json::Value {
    let instances: Vec<serde_json::Value> = g
        .instances
        .iter()
        .map(|i| {
            serde_json::json!({
                "ID": i.id,
                "Healthy": i.healthy,
                "HealthDescription": "",
                "Locality": if i.pci_bus_id.is_empty() {
                    serde_json::Value::Null
                } else {
                    serde_json::json!({ "PciBusID": i.pci_bus_id })
                },
            })
        })
        .collect();
    let attributes: serde_json::Map<String, serde_json::Value> = g
        .attributes
        .iter()
        .map(|(k, v)| (k.clone(), device_attribute_view(v)))
        .collect();
    serde_json::json!({
        "Vendor": g.vendor,
        "Type": g.device_type,
        "Name": g.name,
        "Instances": instances,
        "Attributes": attributes,
    })
}

/// A device attribute as Nomad's typed `Attribute`: `16384 MiB` is `IntVal` 16384 with
/// `Unit` `MiB`, `1.5 GHz` a `FloatVal`, anything else a `StringVal`.
fn device_attribute_view(text: &str) -> serde_json::Value {
    let (number, unit) = text.trim().split_once(' ').unwrap_or((text.trim(), ""));
    let unit = unit.trim();
    if !unit.contains(' ') {
        if let Ok(n) = number.parse::<i64>() {
            return serde_json::json!({ "IntVal": n, "Unit": unit });
        }
        if let Ok(f) = number.parse::<f64>() {
            return serde_json::json!({ "FloatVal": f, "Unit": unit });
        }
    }
    serde_json::json!({ "StringVal": text, "Unit": "" })
}

fn last_drain(n: &NodeView) -> Option<DrainMetadata> {
    let report = n.drain_status.as_ref()?;
    let status = match report.state {
        DrainState::Complete => "complete",
        DrainState::Cancelled => "canceled",
        DrainState::Draining | DrainState::Blocked => "draining",
    };
    Some(DrainMetadata {
        started_at: ms_to_ns(report.started_at_ms),
        updated_at: ms_to_ns(report.updated_at_ms),
        status: status.into(),
        ..Default::default()
    })
}

fn drain_report(n: &NodeView) -> Option<DrainReport> {
    let d = n.drain_status.as_ref()?;
    Some(DrainReport {
        state: d.state.as_str().into(),
        started_at: ms_to_ns(d.started_at_ms),
        deadline: ms_to_ns(d.deadline_ms),
        remaining: d.remaining,
        migrating: d.migrating,
        nowhere_to_go: d.nowhere_to_go.clone(),
        updated_at: ms_to_ns(d.updated_at_ms),
    })
}

fn drain_strategy(n: &NodeView) -> Option<DrainStrategy> {
    let d = n.spec.drain.as_ref()?;
    Some(DrainStrategy {
        deadline: if d.deadline_ms == 0 {
            0
        } else {
            ms_to_ns(d.deadline_ms - d.started_at_ms)
        },
        ignore_system_jobs: d.ignore_system_jobs,
        force_deadline: ms_to_ns(d.deadline_ms),
        started_at: ms_to_ns(d.started_at_ms),
    })
}

/// A node as a list stub; `with_resources` and `with_os` as the query asked.
pub fn stub(n: &NodeView, with_resources: bool, with_os: bool) -> NodeStub {
    let (res, reserved) = resources(n);
    let os = n
        .node
        .attributes
        .iter()
        .filter(|(k, _)| k.starts_with("os."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    NodeStub {
        address: n.node.address.clone(),
        id: n.node.id.clone(),
        attributes: with_os.then_some(os),
        datacenter: n.node.datacenter.clone(),
        name: n.node.name.clone(),
        node_class: n.node.node_class.clone(),
        node_pool: pool_of(n).to_string(),
        version: env!("CARGO_PKG_VERSION").into(),
        drain: n.draining,
        scheduling_eligibility: eligibility(n),
        status: n.status.clone(),
        status_description: String::new(),
        drivers: drivers(n),
        node_resources: with_resources.then_some(res),
        reserved_resources: with_resources.then_some(reserved),
        last_drain: last_drain(n),
        create_index: n.create_index,
        modify_index: n.modify_index,
        running_allocs: n.allocations,
    }
}

/// The node pool a node registered in (`default` when its agent named none).
pub fn pool_of(n: &NodeView) -> &str {
    if n.node.node_pool.is_empty() {
        "default"
    } else {
        &n.node.node_pool
    }
}

/// A node, whole.
pub fn detail(n: &NodeView) -> NodeDetail {
    let (node_resources, reserved_resources) = resources(n);
    NodeDetail {
        id: n.node.id.clone(),
        datacenter: n.node.datacenter.clone(),
        name: n.node.name.clone(),
        http_addr: n.node.http_addr.clone(),
        tls_enabled: n.node.http_addr.starts_with("https://"),
        attributes: n.node.attributes.clone().into_iter().collect(),
        node_resources,
        reserved_resources,
        meta: n.node.meta.clone().into_iter().collect(),
        node_class: n.node.node_class.clone(),
        node_pool: pool_of(n).to_string(),
        drain: n.draining,
        drain_strategy: drain_strategy(n),
        scheduling_eligibility: eligibility(n),
        status: n.status.clone(),
        status_description: String::new(),
        status_updated_at: n.node.registered_at_ms / 1000,
        drivers: drivers(n),
        last_drain: last_drain(n),
        create_index: n.create_index,
        modify_index: n.modify_index,
        running_allocs: n.allocations,
        drain_report: drain_report(n),
        address: n.node.address.clone(),
        host_volumes: host_volumes(n),
    }
}

fn host_volumes(n: &NodeView) -> BTreeMap<String, HostVolumeView> {
    n.node
        .host_volumes
        .iter()
        .map(|(name, v)| {
            let view = HostVolumeView {
                name: name.clone(),
                path: v.path.clone(),
                read_only: v.read_only,
            };
            (name.clone(), view)
        })
        .collect()
}

/// `GET /v1/nodes`.
pub async fn list_nodes(
    State(st): State<AppState>,
    q: QueryOptions,
) -> Result<Answer<Vec<NodeStub>>, ServerError> {
    wait_for_change(&st, &q, NODE_PREFIXES).await?;
    let index = read_index(&st).await?;
    let (with_resources, with_os) = (q.flag("resources", false), q.flag("os", false));
    let stubs: Vec<NodeStub> = all_nodes(&st)
        .await?
        .iter()
        .map(|n| stub(n, with_resources, with_os))
        .collect();
    Ok(Answer::paged(stubs, index, &q, |n| n.id.clone()))
}

/// `GET /v1/node/{id}`.
pub async fn get_one(
    State(st): State<AppState>,
    Path(name): Path<String>,
    q: QueryOptions,
) -> Result<Answer<NodeDetail>, ServerError> {
    wait_for_change(&st, &q, NODE_PREFIXES).await?;
    let index = read_index(&st).await?;
    let node = get_node(&st, &name).await?;
    Ok(Answer::new(detail(&node), index, &q))
}

/// Reads, changes and writes a node's spec with a compare on its mod_revision (retrying on a
/// concurrent change); returns the write's revision and the node after it.
async fn update_spec(
    st: &AppState,
    name: &str,
    change: impl Fn(&mut NodeSpec),
) -> Result<NodeUpdateResponse, ServerError> {
    let node = get_node(st, name).await?;
    let key = keys::node_spec(&node.node.name);
    for _ in 0..3 {
        let (mut spec, rev) = match kv::get_json::<NodeSpec>(st.store.as_ref(), &key).await? {
            Some(e) => (e.value, e.mod_revision),
            None => (NodeSpec::default(), 0),
        };
        change(&mut spec);
        match kv::put_if(st.store.as_ref(), &key, &spec, rev).await {
            Ok(index) => {
                let after = get_node(st, &node.node.name).await?;
                return Ok(NodeUpdateResponse {
                    node_modify_index: index,
                    eval_ids: None,
                    eval_create_index: 0,
                    index,
                    node: detail(&after),
                });
            }
            Err(ServerError::Conflict(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ServerError::Conflict(format!(
        "{key} keeps changing; try again"
    )))
}

/// `POST|PUT /v1/node/{id}/eligibility`.
pub async fn set_eligibility(
    State(st): State<AppState>,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<EligibilityRequest>,
) -> Result<Answer<NodeUpdateResponse>, ServerError> {
    let eligible = match req.eligibility.as_str() {
        "eligible" => true,
        "ineligible" => false,
        other => {
            return Err(ServerError::BadRequest(format!(
                "Eligibility: {other:?} is neither \"eligible\" nor \"ineligible\""
            )))
        }
    };
    let resp = update_spec(&st, &name, |s| s.eligible = Some(eligible)).await?;
    let resp = with_evals(&st, resp, triggers::NODE_UPDATE).await?;
    let index = resp.index;
    Ok(Answer::new(resp, index, &QueryOptions::default()))
}

/// `POST|PUT /v1/node/{id}/drain`: a `DrainSpec` starts a drain (marking the node
/// ineligible); `null` cancels it, making the node eligible again only with `MarkEligible`.
pub async fn set_drain(
    State(st): State<AppState>,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<DrainRequest>,
) -> Result<Answer<NodeUpdateResponse>, ServerError> {
    let now = nomos_api::now_ms();
    let deadline = match &req.drain_spec {
        Some(spec) => deadline_ms(now, spec.deadline)?,
        None => 0,
    };
    let resp = update_spec(&st, &name, |s| match &req.drain_spec {
        Some(spec) => {
            s.eligible = Some(false);
            s.drain = Some(DrainSpec {
                deadline_ms: deadline,
                ignore_system_jobs: spec.ignore_system_jobs,
                started_at_ms: now,
            });
        }
        None => {
            s.drain = None;
            if req.mark_eligible {
                s.eligible = Some(true);
            }
        }
    })
    .await?;
    let resp = with_evals(&st, resp, triggers::NODE_DRAIN).await?;
    let index = resp.index;
    Ok(Answer::new(resp, index, &QueryOptions::default()))
}

/// A node write's answer with the evaluations it asks for: one per job with allocations on
/// the node, triggered by `trigger`.
async fn with_evals(
    st: &AppState,
    mut resp: NodeUpdateResponse,
    trigger: &str,
) -> Result<NodeUpdateResponse, ServerError> {
    let (ids, index, _) = super::evals::evaluate_node(st, &resp.node.name, trigger, true).await?;
    if !ids.is_empty() {
        resp.eval_ids = Some(ids);
        resp.eval_create_index = index;
        resp.index = index;
    }
    Ok(resp)
}

/// The longest drain deadline accepted: a year, in nanoseconds.
pub const MAX_DRAIN_DEADLINE_NS: i64 = 365 * 24 * 3600 * 1_000_000_000;

/// Nomad's drain deadline (nanoseconds) as Nomos's (Unix ms, 0 for none): negative forces
/// the drain now, 0 has no deadline, anything else counts from `now` (at least a
/// millisecond); past a year is a 400.
fn deadline_ms(now: i64, deadline_ns: i64) -> Result<i64, ServerError> {
    Ok(match deadline_ns {
        0 => 0,
        d if d < 0 => now,
        d if d > MAX_DRAIN_DEADLINE_NS => {
            return Err(ServerError::BadRequest(format!(
                "DrainSpec.Deadline is {d} ns: at most {MAX_DRAIN_DEADLINE_NS} (a year)"
            )))
        }
        d => now.saturating_add((d / 1_000_000).max(1)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nomads_drain_deadlines_become_unix_milliseconds() {
        assert_eq!(deadline_ms(1_000, 0).unwrap(), 0);
        assert_eq!(deadline_ms(1_000, -1).unwrap(), 1_000);
        assert_eq!(deadline_ms(1_000, 3_600_000_000_000).unwrap(), 3_601_000);
        assert_eq!(deadline_ms(1_000, 1).unwrap(), 1_001);
        assert!(deadline_ms(1_000, i64::MAX).is_err());
        assert!(deadline_ms(1_000, MAX_DRAIN_DEADLINE_NS).is_ok());
    }
}
