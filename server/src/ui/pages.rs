//! The UI's pages and their live fragments. Each page is three steps: load what it shows through
//! the API's own data functions (`jobs`, `nodes`, `allocs`, `deployments`), build the page's
//! model purely (with the clock passed in), and render its template. A page's fragment renders
//! the same model without the surrounding layout; htmx swaps it in every few seconds.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::Html;
use nomos_api::{GroupSummary, Job, JobStatus};
use nomos_controllers::periodic::{LAUNCH_LABEL, PARENT_LABEL};
use serde::{Deserialize, Serialize};

use super::model::{self, AllocRow, Bar, Counts, JobRow, NodeRow, When};
use super::render::render;
use super::UiError;
use crate::error::ServerError;
use crate::jobs::NsQuery;
use crate::views::{AllocView, DeploymentView, JobDetail, JobListEntry, NodeView};
use crate::AppState;

/// Task events shown per task on an allocation page, newest first.
pub const RECENT_EVENTS: usize = 20;

/// `?namespace=` on job pages.
#[derive(Debug, Deserialize, Default)]
pub struct NsParam {
    pub namespace: Option<String>,
}

impl NsParam {
    fn ns(&self) -> &str {
        self.namespace
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or("default")
    }
}

type Page = Result<Html<String>, UiError>;

fn html<S: Serialize>(template: &str, ctx: &S) -> Page {
    Ok(Html(render(template, ctx)?))
}

// ---- loading -------------------------------------------------------------------------------

/// Every job of every namespace, as `GET /v1/jobs?namespace=*` lists them.
async fn job_entries(st: &AppState, ns: Option<&str>) -> Result<Vec<JobListEntry>, ServerError> {
    let q = NsQuery {
        namespace: Some(ns.unwrap_or("*").to_string()),
        ..NsQuery::default()
    };
    Ok(crate::jobs::list(State(st.clone()), Query(q)).await?.0)
}

/// The specs that decode (those that do not show as `invalid` in the job list).
async fn specs(st: &AppState, ns: Option<&str>) -> Result<Vec<Job>, ServerError> {
    Ok(crate::jobs::stored_jobs(st, ns)
        .await?
        .into_iter()
        .filter_map(|(_, j)| j.ok())
        .collect())
}

/// Everything the overview shows.
struct Cluster {
    jobs: Vec<JobListEntry>,
    specs: Vec<Job>,
    nodes: Vec<NodeView>,
    allocs: Vec<AllocView>,
    usage: HashMap<String, model::NodeUsage>,
}

impl Cluster {
    async fn load(st: &AppState) -> Result<Self, ServerError> {
        let jobs = job_entries(st, None).await?;
        let specs = specs(st, None).await?;
        let nodes = crate::nodes::all_nodes(st).await?;
        let allocs = crate::allocs::all_allocs(st).await?;
        let usage = model::node_usage(&crate::usage::snapshot(st).await?);
        Ok(Cluster {
            jobs,
            specs,
            nodes,
            allocs,
            usage,
        })
    }

    fn node_rows(&self) -> Vec<NodeRow> {
        self.nodes
            .iter()
            .map(|n| model::node_row(n, self.usage.get(&n.node.name)))
            .collect()
    }

    fn job_rows(&self) -> Vec<JobRow> {
        model::job_rows(&self.jobs, &self.specs)
    }

    fn counts(&self, rows: &[JobRow]) -> Counts {
        model::counts(rows, &self.nodes, &self.allocs, &self.usage)
    }
}

// ---- overview ------------------------------------------------------------------------------

#[derive(Serialize)]
struct Overview {
    counts: Counts,
    jobs: Vec<JobRow>,
    nodes: Vec<NodeRow>,
    interval_ms: u64,
}

/// `GET /ui`: counts, the resource chart, jobs and nodes.
pub async fn overview(State(st): State<AppState>) -> Page {
    let c = Cluster::load(&st).await?;
    let jobs = c.job_rows();
    html(
        "overview.html",
        &Overview {
            counts: c.counts(&jobs),
            jobs,
            nodes: c.node_rows(),
            interval_ms: st.ui.sample_every.as_millis() as u64,
        },
    )
}

/// `GET /ui/fragments/counts`.
pub async fn counts_fragment(State(st): State<AppState>) -> Page {
    let c = Cluster::load(&st).await?;
    html(
        "fragments/counts.html",
        &serde_json::json!({ "counts": c.counts(&c.job_rows()) }),
    )
}

/// `GET /ui/fragments/jobs`.
pub async fn jobs_fragment(State(st): State<AppState>) -> Page {
    let jobs = job_entries(&st, None).await?;
    let specs = specs(&st, None).await?;
    html(
        "fragments/jobs.html",
        &serde_json::json!({ "jobs": model::job_rows(&jobs, &specs) }),
    )
}

/// `GET /ui/fragments/nodes`.
pub async fn nodes_fragment(State(st): State<AppState>) -> Page {
    let c = Cluster::load(&st).await?;
    html(
        "fragments/nodes.html",
        &serde_json::json!({ "nodes": c.node_rows() }),
    )
}

/// `GET /ui/series`: the sampled points, oldest first.
pub async fn series(State(st): State<AppState>) -> axum::Json<super::series::SeriesBody> {
    axum::Json(super::series::SeriesBody {
        interval_ms: st.ui.sample_every.as_millis() as u64,
        points: st.ui.series.points(),
    })
}

// ---- job -----------------------------------------------------------------------------------

/// A link with its text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Link {
    pub text: String,
    pub href: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupDetail {
    pub name: String,
    pub count: u32,
    /// `web (docker), sidecar (exec)`.
    pub tasks: String,
    pub summary: GroupSummary,
    pub placement_failure: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeploymentGroupRow {
    pub name: String,
    pub desired_total: u32,
    pub desired_canaries: u32,
    pub placed_canaries: usize,
    pub promoted: bool,
    pub placed: u32,
    pub healthy: u32,
    pub unhealthy: u32,
    pub progress_deadline: When,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeploymentBox {
    /// The full ID: deployment IDs (`<job>-v<version>`) are never cut.
    pub id: String,
    pub status: String,
    pub description: String,
    pub job_version: u64,
    pub created: When,
    pub groups: Vec<DeploymentGroupRow>,
}

/// What the job page says about a spec key that holds an invalid value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InvalidSpecBox {
    /// The accepted version shown and running; `None` when there never was one.
    pub running_version: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeriodicBox {
    /// The cron expressions, `; `-separated.
    pub crons: String,
    pub time_zone: String,
    pub enabled: bool,
    pub prohibit_overlap: bool,
    pub next_launch: When,
    pub last_launch: When,
    pub last_success: When,
    pub last_failure: When,
    pub skipped_overlaps: u64,
}

/// A periodic child: its list row, launch time and counts over all groups.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChildRow {
    pub row: JobRow,
    pub launched: When,
    pub total: GroupSummary,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobPage {
    pub namespace: String,
    pub id: String,
    pub name: String,
    pub job_type: String,
    pub status: String,
    pub version: u64,
    pub stable_version: Option<u64>,
    pub priority: i32,
    pub stop: bool,
    pub datacenters: String,
    pub modify_index: i64,
    /// Why the stored spec was not accepted: the spec's own errors, then the controllers'.
    pub errors: Vec<String>,
    /// Set when the spec key holds something that is not a valid job: the page then shows the
    /// latest accepted version, which keeps running.
    pub invalid_spec: Option<InvalidSpecBox>,
    pub warnings: Vec<String>,
    pub groups: Vec<GroupDetail>,
    pub deployment: Option<DeploymentBox>,
    pub periodic: Option<PeriodicBox>,
    pub children: Vec<ChildRow>,
    pub parent: Option<Link>,
    pub allocs: Vec<AllocRow>,
    pub fragment_href: String,
}

/// What a job page is built from.
pub struct JobData {
    pub detail: JobDetail,
    /// The job's list entry (its displayed status).
    pub entry: Option<JobListEntry>,
    pub allocs: Vec<AllocView>,
    /// The job's deployments, newest first.
    pub deployments: Vec<DeploymentView>,
    /// Periodic children: spec and list entry.
    pub children: Vec<(Job, JobListEntry)>,
}

async fn load_job(st: &AppState, ns: &str, id: &str) -> Result<JobData, ServerError> {
    let q = NsQuery {
        namespace: Some(ns.to_string()),
        ..NsQuery::default()
    };
    let detail = crate::jobs::get(State(st.clone()), Path(id.to_string()), Query(q))
        .await?
        .0;
    let job = &detail.job;
    let entries = job_entries(st, Some(&job.namespace)).await?;
    let entry = entries.iter().find(|e| e.id == job.id).cloned();
    let mut allocs = crate::allocs::all_allocs(st).await?;
    allocs.retain(|a| a.allocation.job_id == job.id && a.allocation.namespace == job.namespace);
    let mut deployments = crate::deployments::all_deployments(st).await?;
    deployments
        .retain(|d| d.deployment.job_id == job.id && d.deployment.namespace == job.namespace);
    let mut children = Vec::new();
    if job.periodic.is_some() {
        for child in specs(st, Some(&job.namespace)).await? {
            if child.labels.get(PARENT_LABEL) == Some(&job.id) {
                if let Some(e) = entries.iter().find(|e| e.id == child.id) {
                    children.push((child, e.clone()));
                }
            }
        }
    }
    Ok(JobData {
        detail,
        entry,
        allocs,
        deployments,
        children,
    })
}

/// The job page's model.
pub fn job_page(d: &JobData, now_ms: i64) -> JobPage {
    let job = &d.detail.job;
    let status: JobStatus = d.detail.status.clone().unwrap_or_default();
    let groups = job
        .groups
        .iter()
        .map(|g| GroupDetail {
            name: g.name.clone(),
            count: g.count,
            tasks: g
                .tasks
                .iter()
                .map(|t| format!("{} ({})", t.name, t.driver))
                .collect::<Vec<_>>()
                .join(", "),
            summary: status.summary.get(&g.name).cloned().unwrap_or_default(),
            placement_failure: status.placement_failures.get(&g.name).cloned(),
        })
        .collect();
    let latest = d
        .deployments
        .iter()
        .find(|v| {
            !status.latest_deployment.is_empty() && v.deployment.id == status.latest_deployment
        })
        .or_else(|| d.deployments.first());
    let deployment = latest.map(|v| {
        let dep = &v.deployment;
        DeploymentBox {
            id: dep.id.clone(),
            status: dep.status.to_string(),
            description: dep.status_description.clone(),
            job_version: dep.job_version,
            created: model::when(now_ms, Some(dep.created_at_ms)),
            groups: dep
                .groups
                .iter()
                .map(|(name, g)| DeploymentGroupRow {
                    name: name.clone(),
                    desired_total: g.desired_total,
                    desired_canaries: g.desired_canaries,
                    placed_canaries: g.placed_canaries.len(),
                    promoted: g.promoted,
                    placed: g.placed,
                    healthy: g.healthy,
                    unhealthy: g.unhealthy,
                    progress_deadline: model::when(now_ms, Some(g.require_progress_by_ms)),
                })
                .collect(),
        }
    });
    let periodic = job.periodic.as_ref().map(|p| {
        let s = status.periodic.clone().unwrap_or_default();
        PeriodicBox {
            crons: p.crons.join("; "),
            time_zone: p.time_zone.clone(),
            enabled: p.enabled,
            prohibit_overlap: p.prohibit_overlap,
            next_launch: model::when(now_ms, s.next_launch_ms),
            last_launch: model::when(now_ms, s.last_launch_ms),
            last_success: model::when(now_ms, s.last_success_ms),
            last_failure: model::when(now_ms, s.last_failure_ms),
            skipped_overlaps: s.skipped_overlaps,
        }
    });
    let mut children: Vec<(i64, ChildRow)> = d
        .children
        .iter()
        .map(|(spec, e)| {
            let launched_ms = spec
                .labels
                .get(LAUNCH_LABEL)
                .and_then(|s| s.parse::<i64>().ok())
                .map(|s| s * 1000);
            let row = ChildRow {
                row: model::job_row(e, 0),
                launched: model::when(now_ms, launched_ms),
                total: e
                    .summary
                    .values()
                    .fold(GroupSummary::default(), |mut t, g| {
                        t.queued += g.queued;
                        t.starting += g.starting;
                        t.running += g.running;
                        t.failed += g.failed;
                        t.complete += g.complete;
                        t.lost += g.lost;
                        t.unknown += g.unknown;
                        t
                    }),
            };
            (launched_ms.unwrap_or(0), row)
        })
        .collect();
    // Newest launch first.
    children.sort_by(|a, b| (b.0, &b.1.row.id).cmp(&(a.0, &a.1.row.id)));
    let children = children.into_iter().map(|(_, c)| c).collect();
    JobPage {
        namespace: job.namespace.clone(),
        id: job.id.clone(),
        name: job.name.clone(),
        job_type: crate::jobs::type_name(job.job_type),
        status: d
            .entry
            .as_ref()
            .map(|e| e.status.clone())
            .unwrap_or_else(|| "pending".into()),
        version: status.version,
        stable_version: status.stable_version,
        priority: job.priority,
        stop: job.stop,
        datacenters: if job.datacenters.is_empty() {
            "any".into()
        } else {
            job.datacenters.join(", ")
        },
        modify_index: d.detail.modify_index,
        errors: d.detail.spec_errors(),
        invalid_spec: d.detail.invalid_spec.as_ref().map(|i| InvalidSpecBox {
            running_version: i.running_version,
        }),
        warnings: status.warnings.clone(),
        groups,
        deployment,
        periodic,
        children,
        parent: job.labels.get(PARENT_LABEL).map(|p| Link {
            text: p.clone(),
            href: model::job_href(&job.namespace, p),
        }),
        allocs: model::alloc_rows(&d.allocs, now_ms),
        fragment_href: format!(
            "/ui/fragments/job/{}{}",
            model::encode_segment(&job.id),
            model::ns_query(&job.namespace)
        ),
    }
}

async fn job_model(st: &AppState, id: &str, q: &NsParam) -> Result<JobPage, ServerError> {
    let data = load_job(st, q.ns(), id).await?;
    Ok(job_page(&data, crate::allocs::now_ms()))
}

/// `GET /ui/job/{id}?namespace=`.
pub async fn job(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<NsParam>,
) -> Page {
    let job = job_model(&st, &id, &q).await?;
    html("job.html", &serde_json::json!({ "job": job }))
}

/// `GET /ui/fragments/job/{id}?namespace=`.
pub async fn job_fragment(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<NsParam>,
) -> Page {
    let job = job_model(&st, &id, &q).await?;
    html("fragments/job.html", &serde_json::json!({ "job": job }))
}

// ---- node ----------------------------------------------------------------------------------

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
            deadline: model::when(
                now_ms,
                spec.as_ref()
                    .map(|s| s.deadline_ms)
                    .or(report.as_ref().map(|d| d.deadline_ms)),
            ),
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

async fn node_model(st: &AppState, name: &str) -> Result<NodePage, ServerError> {
    let n = crate::nodes::get_node(st, name).await?;
    let all = crate::allocs::all_allocs(st).await?;
    let usage = model::node_usage(&crate::usage::snapshot(st).await?);
    let mine: Vec<AllocView> = all
        .into_iter()
        .filter(|a| a.allocation.node == n.node.name)
        .collect();
    Ok(node_page(
        &n,
        usage.get(&n.node.name),
        &mine,
        crate::allocs::now_ms(),
    ))
}

/// `GET /ui/node/{name}` (name, unique name prefix or unique id prefix).
pub async fn node(State(st): State<AppState>, Path(name): Path<String>) -> Page {
    let node = node_model(&st, &name).await?;
    html("node.html", &serde_json::json!({ "node": node }))
}

/// `GET /ui/fragments/node/{name}`.
pub async fn node_fragment(State(st): State<AppState>, Path(name): Path<String>) -> Page {
    let node = node_model(&st, &name).await?;
    html("fragments/node.html", &serde_json::json!({ "node": node }))
}

// ---- allocation ----------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRow {
    pub time: When,
    pub event_type: String,
    pub message: String,
    /// `exit code 1, signal 9, OOM killed`.
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskBox {
    pub name: String,
    pub state: String,
    pub failed: bool,
    pub restarts: u32,
    pub exit_code: Option<i32>,
    pub started: When,
    pub finished: When,
    pub stdout_href: String,
    pub stderr_href: String,
    pub events: Vec<EventRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckRow {
    pub name: String,
    pub status: String,
    pub output: String,
    pub checked: When,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PortRow {
    pub label: String,
    pub value: u16,
    pub to: u16,
    pub host_ip: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AllocPage {
    pub id: String,
    pub short_id: String,
    pub name: String,
    pub namespace: String,
    pub job_id: String,
    pub job_href: String,
    pub job_version: u64,
    pub group: String,
    pub node: String,
    pub node_href: String,
    pub desired: String,
    pub desired_description: String,
    pub client_status: String,
    pub client_description: String,
    pub healthy: Option<bool>,
    pub deployment_id: String,
    pub previous: Option<Link>,
    pub ports: Vec<PortRow>,
    pub created: When,
    pub modified: When,
    pub tasks: Vec<TaskBox>,
    pub checks: Vec<CheckRow>,
    pub fragment_href: String,
}

/// The allocation page's model. `spec_tasks` names the group's tasks from the job spec, shown
/// (pending) before the agent reported any.
pub fn alloc_page(a: &AllocView, spec_tasks: &[String], now_ms: i64) -> AllocPage {
    let al = &a.allocation;
    let row = model::alloc_row(a, now_ms);
    let status = a.status.clone().unwrap_or_default();
    let logs = |task: &str, stream: &str| {
        format!(
            "/v1/allocation/{}/logs?task={}{}",
            model::encode_segment(&al.id),
            model::encode_segment(task),
            if stream == "stderr" {
                "&type=stderr"
            } else {
                ""
            }
        )
    };
    let mut tasks: Vec<TaskBox> = status
        .task_states
        .iter()
        .map(|(name, t)| TaskBox {
            name: name.clone(),
            state: model::enum_name(&t.state),
            failed: t.failed,
            restarts: t.restarts,
            exit_code: t.exit_code,
            started: model::when(now_ms, Some(t.started_at_ms)),
            finished: model::when(now_ms, Some(t.finished_at_ms)),
            stdout_href: logs(name, "stdout"),
            stderr_href: logs(name, "stderr"),
            events: t
                .events
                .iter()
                .rev()
                .take(RECENT_EVENTS)
                .map(|e| {
                    let mut detail = Vec::new();
                    if let Some(c) = e.exit_code {
                        detail.push(format!("exit code {c}"));
                    }
                    if let Some(s) = e.signal {
                        detail.push(format!("signal {s}"));
                    }
                    if e.oom_killed {
                        detail.push("OOM killed".to_string());
                    }
                    EventRow {
                        time: model::when(now_ms, Some(e.time_ms)),
                        event_type: e.event_type.clone(),
                        message: e.message.clone(),
                        detail: detail.join(", "),
                    }
                })
                .collect(),
        })
        .collect();
    for name in spec_tasks {
        if !tasks.iter().any(|t| &t.name == name) {
            tasks.push(TaskBox {
                name: name.clone(),
                state: "pending".into(),
                failed: false,
                restarts: 0,
                exit_code: None,
                started: model::when(now_ms, None),
                finished: model::when(now_ms, None),
                stdout_href: logs(name, "stdout"),
                stderr_href: logs(name, "stderr"),
                events: Vec::new(),
            });
        }
    }
    AllocPage {
        id: al.id.clone(),
        short_id: row.short_id,
        name: al.name.clone(),
        namespace: al.namespace.clone(),
        job_id: al.job_id.clone(),
        job_href: row.job_href,
        job_version: al.job_version,
        group: al.task_group.clone(),
        node: al.node.clone(),
        node_href: row.node_href,
        desired: row.desired,
        desired_description: al.desired_description.clone(),
        client_status: row.client_status,
        client_description: status.client_description.clone(),
        healthy: status.healthy,
        deployment_id: al.deployment_id.clone(),
        previous: (!al.previous_alloc.is_empty()).then(|| Link {
            text: model::short_id(&al.previous_alloc),
            href: model::alloc_href(&al.previous_alloc),
        }),
        ports: al
            .ports
            .iter()
            .map(|p| PortRow {
                label: p.label.clone(),
                value: p.value,
                to: p.to,
                host_ip: p.host_ip.clone(),
            })
            .collect(),
        created: model::when(now_ms, Some(al.created_at_ms)),
        modified: model::when(now_ms, Some(al.modified_at_ms.max(status.modified_at_ms))),
        tasks,
        checks: status
            .checks
            .iter()
            .map(|(name, c)| CheckRow {
                name: name.clone(),
                status: c.status.clone(),
                output: c.output.clone(),
                checked: model::when(now_ms, Some(c.checked_at_ms)),
            })
            .collect(),
        fragment_href: format!("/ui/fragments/allocation/{}", model::encode_segment(&al.id)),
    }
}

async fn alloc_model(st: &AppState, id: &str) -> Result<AllocPage, ServerError> {
    let a = crate::allocs::find_alloc(st, id).await?;
    let al = &a.allocation;
    // The spec names the tasks before the agent reports them; a job gone since is no error.
    let spec_tasks = match crate::jobs::find_job(st, &al.namespace, &al.job_id).await {
        Ok((job, _)) => job
            .groups
            .iter()
            .find(|g| g.name == al.task_group)
            .map(|g| g.tasks.iter().map(|t| t.name.clone()).collect())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    Ok(alloc_page(&a, &spec_tasks, crate::allocs::now_ms()))
}

/// `GET /ui/allocation/{id}` (ID or unique prefix).
pub async fn alloc(State(st): State<AppState>, Path(id): Path<String>) -> Page {
    let alloc = alloc_model(&st, &id).await?;
    html("alloc.html", &serde_json::json!({ "alloc": alloc }))
}

/// `GET /ui/fragments/allocation/{id}`.
pub async fn alloc_fragment(State(st): State<AppState>, Path(id): Path<String>) -> Page {
    let alloc = alloc_model(&st, &id).await?;
    html(
        "fragments/alloc.html",
        &serde_json::json!({ "alloc": alloc }),
    )
}
