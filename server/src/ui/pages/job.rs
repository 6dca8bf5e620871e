//! The job page: the job's groups and their counts, its latest deployment, its periodic
//! schedule and launches, and its allocations.

use axum::extract::{Path, Query, State};
use axum::Extension;
use nomos_api::{GroupSummary, Job, JobStatus, Periodic};
use nomos_controllers::periodic::LAUNCH_LABEL;
use serde::Serialize;

use super::{html, Link, NsParam, Page};
use super::{job_entries, specs};
use crate::acl::Caller;
use crate::error::ServerError;
use crate::ui::model::{self, AllocRow, JobRow, When};
use crate::views::{AllocView, DeploymentView, JobDetail, JobListEntry};
use crate::AppState;

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
    /// The job's services in the catalogue: instances and how many are healthy.
    pub services: Vec<ServiceRow>,
    /// What the action buttons need (filled by the handler).
    pub actions: crate::ui::actions::JobActions,
    pub fragment_href: String,
}

/// One service of a job on its page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceRow {
    pub name: String,
    pub instances: usize,
    pub healthy: usize,
    pub tags: String,
}

/// The job's services, by name: instance and healthy counts and every tag seen.
pub fn service_rows(regs: &[nomos_api::service::ServiceRegistration]) -> Vec<ServiceRow> {
    let mut by_name: std::collections::BTreeMap<
        &str,
        (usize, usize, std::collections::BTreeSet<&str>),
    > = Default::default();
    for r in regs {
        let e = by_name.entry(&r.service_name).or_default();
        e.0 += 1;
        e.1 += usize::from(r.healthy);
        e.2.extend(r.tags.iter().map(String::as_str));
    }
    by_name
        .into_iter()
        .map(|(name, (instances, healthy, tags))| ServiceRow {
            name: name.to_string(),
            instances,
            healthy,
            tags: tags.into_iter().collect::<Vec<_>>().join(", "),
        })
        .collect()
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
    /// The job's instances in the service catalogue.
    pub services: Vec<nomos_api::service::ServiceRegistration>,
}

async fn load_job(
    st: &AppState,
    caller: &Caller,
    ns: &str,
    id: &str,
) -> Result<JobData, ServerError> {
    let detail = crate::jobs::detail(st, ns, id).await?;
    let job = &detail.job;
    let entries = job_entries(st, caller, Some(&job.namespace)).await?;
    let entry = entries.iter().find(|e| e.id == job.id).cloned();
    let mut allocs = crate::reads::all_allocs(st).await?;
    allocs.retain(|a| a.allocation.job_id == job.id && a.allocation.namespace == job.namespace);
    let mut deployments = crate::reads::all_deployments(st).await?;
    deployments
        .retain(|d| d.deployment.job_id == job.id && d.deployment.namespace == job.namespace);
    let mut children = Vec::new();
    if job.periodic.is_some() || job.parameterized.is_some() {
        for child in specs(st, caller, Some(&job.namespace)).await? {
            if child.parent_id() == Some(job.id.as_str()) {
                if let Some(e) = entries.iter().find(|e| e.id == child.id) {
                    children.push((child, e.clone()));
                }
            }
        }
    }
    let services =
        crate::services::registrations_in(st, &job.namespace, |r| r.job_id == job.id).await?;
    Ok(JobData {
        detail,
        entry,
        allocs,
        deployments,
        children,
        services,
    })
}

/// The job page's model.
pub fn job_page(d: &JobData, now_ms: i64) -> JobPage {
    let job = &d.detail.job;
    let status: JobStatus = d.detail.status.clone().unwrap_or_default();
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
        groups: group_details(job, &status),
        deployment: latest_deployment(&d.deployments, &status).map(|v| deployment_box(v, now_ms)),
        periodic: job
            .periodic
            .as_ref()
            .map(|p| periodic_box(p, &status, now_ms)),
        children: child_rows(&d.children, now_ms),
        parent: job.parent_id().map(|p| Link {
            text: p.to_string(),
            href: model::job_href(&job.namespace, p),
        }),
        allocs: model::alloc_rows(&d.allocs, now_ms),
        services: service_rows(&d.services),
        actions: Default::default(),
        fragment_href: format!(
            "/ui/fragments/job/{}{}",
            model::encode_segment(&job.id),
            model::ns_query(&job.namespace)
        ),
    }
}

/// Each group with its tasks, counts and why it last failed to place.
fn group_details(job: &Job, status: &JobStatus) -> Vec<GroupDetail> {
    job.groups
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
        .collect()
}

/// The deployment the status names as latest, else the newest of `deployments`.
fn latest_deployment<'a>(
    deployments: &'a [DeploymentView],
    status: &JobStatus,
) -> Option<&'a DeploymentView> {
    deployments
        .iter()
        .find(|v| {
            !status.latest_deployment.is_empty() && v.deployment.id == status.latest_deployment
        })
        .or_else(|| deployments.first())
}

fn deployment_box(v: &DeploymentView, now_ms: i64) -> DeploymentBox {
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
}

fn periodic_box(periodic: &Periodic, status: &JobStatus, now_ms: i64) -> PeriodicBox {
    let s = status.periodic.clone().unwrap_or_default();
    PeriodicBox {
        crons: periodic.crons.join("; "),
        time_zone: periodic.time_zone.clone(),
        enabled: periodic.enabled,
        prohibit_overlap: periodic.prohibit_overlap,
        next_launch: model::when(now_ms, s.next_launch_ms),
        last_launch: model::when(now_ms, s.last_launch_ms),
        last_success: model::when(now_ms, s.last_success_ms),
        last_failure: model::when(now_ms, s.last_failure_ms),
        skipped_overlaps: s.skipped_overlaps,
    }
}

/// The periodic children, newest launch first.
fn child_rows(children: &[(Job, JobListEntry)], now_ms: i64) -> Vec<ChildRow> {
    let mut rows: Vec<(i64, ChildRow)> = children
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
                total: e.summary.values().fold(GroupSummary::default(), add_counts),
            };
            (launched_ms.unwrap_or(0), row)
        })
        .collect();
    rows.sort_by(|a, b| (b.0, &b.1.row.id).cmp(&(a.0, &a.1.row.id)));
    rows.into_iter().map(|(_, c)| c).collect()
}

fn add_counts(mut total: GroupSummary, g: &GroupSummary) -> GroupSummary {
    total.queued += g.queued;
    total.starting += g.starting;
    total.running += g.running;
    total.failed += g.failed;
    total.complete += g.complete;
    total.lost += g.lost;
    total.unknown += g.unknown;
    total
}

async fn job_model(
    st: &AppState,
    caller: &Caller,
    id: &str,
    q: &NsParam,
) -> Result<JobPage, ServerError> {
    let data = load_job(st, caller, q.ns(), id).await?;
    let mut page = job_page(&data, nomos_api::now_ms());
    page.actions = crate::ui::actions::job_actions(st, &data.detail.job, page.version).await?;
    Ok(page)
}

/// `GET /ui/job/{id}?namespace=`.
pub async fn job(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<NsParam>,
) -> Page {
    let job = job_model(&st, &caller, &id, &q).await?;
    html("job.html", &serde_json::json!({ "job": job }))
}

/// `GET /ui/fragments/job/{id}?namespace=`.
pub async fn job_fragment(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<NsParam>,
) -> Page {
    let job = job_model(&st, &caller, &id, &q).await?;
    html("fragments/job.html", &serde_json::json!({ "job": job }))
}
