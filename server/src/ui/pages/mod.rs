//! The UI's pages and their live fragments. Each page is three steps: load what it shows through
//! the API's own data functions (`jobs`, `nodes`, `allocs`, `deployments`), build the page's
//! model purely (with the clock passed in), and render its template. A page's fragment renders
//! the same model without the surrounding layout; htmx swaps it in every few seconds.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::Html;
use axum::Extension;
use nomos_api::acl::check::CAP_READ_JOB;
use nomos_api::acl::Access;
use nomos_api::Job;
use serde::{Deserialize, Serialize};

use super::model::{self, Counts, JobRow, NodeRow};
use super::render::render;
use super::UiError;
use crate::acl::Caller;
use crate::error::ServerError;
use crate::views::{AllocView, JobListEntry, NodeView};
use crate::AppState;

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

/// A link with its text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Link {
    pub text: String,
    pub href: String,
}

type Page = Result<Html<String>, UiError>;

fn html<S: Serialize>(template: &str, ctx: &S) -> Page {
    Ok(Html(render(template, ctx)?))
}

// ---- loading -------------------------------------------------------------------------------

/// Every job of every namespace the caller may read, as `GET /v1/jobs?namespace=*` lists
/// them.
async fn job_entries(
    st: &AppState,
    caller: &Caller,
    ns: Option<&str>,
) -> Result<Vec<JobListEntry>, ServerError> {
    crate::jobs::list_entries(st, caller, ns).await
}

/// The specs that decode (those that do not show as `invalid` in the job list), in the
/// namespaces the caller may read.
async fn specs(st: &AppState, caller: &Caller, ns: Option<&str>) -> Result<Vec<Job>, ServerError> {
    Ok(crate::jobs::stored_jobs(st, ns)
        .await?
        .into_iter()
        .filter_map(|(_, j)| j.ok())
        .filter(|j| caller.acl.allows_namespace(&j.namespace, CAP_READ_JOB))
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
    /// What `caller` may see: jobs and allocations of the namespaces it may read; nodes and
    /// their usage only with `node` read.
    async fn load(st: &AppState, caller: &Caller) -> Result<Self, ServerError> {
        let jobs = job_entries(st, caller, None).await?;
        let specs = specs(st, caller, None).await?;
        let mut allocs = crate::reads::all_allocs(st).await?;
        allocs.retain(|a| {
            caller
                .acl
                .allows_namespace(&a.allocation.namespace, CAP_READ_JOB)
        });
        let (nodes, usage) = if caller.acl.allows_node(Access::Read) {
            let usage = model::node_usage(&crate::usage::snapshot(st).await?);
            (crate::reads::all_nodes(st).await?, usage)
        } else {
            (Vec::new(), HashMap::new())
        };
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
pub async fn overview(State(st): State<AppState>, Extension(caller): Extension<Caller>) -> Page {
    let c = Cluster::load(&st, &caller).await?;
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
pub async fn counts_fragment(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Page {
    let c = Cluster::load(&st, &caller).await?;
    html(
        "fragments/counts.html",
        &serde_json::json!({ "counts": c.counts(&c.job_rows()) }),
    )
}

/// `GET /ui/fragments/jobs`.
pub async fn jobs_fragment(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Page {
    let jobs = job_entries(&st, &caller, None).await?;
    let specs = specs(&st, &caller, None).await?;
    html(
        "fragments/jobs.html",
        &serde_json::json!({ "jobs": model::job_rows(&jobs, &specs) }),
    )
}

/// `GET /ui/fragments/nodes`.
pub async fn nodes_fragment(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Page {
    let c = Cluster::load(&st, &caller).await?;
    html(
        "fragments/nodes.html",
        &serde_json::json!({ "nodes": c.node_rows() }),
    )
}

type Series<P> = Result<axum::Json<crate::measured::SeriesBody<P>>, crate::error::ServerError>;

/// `GET /ui/series`: the cluster's points, oldest first.
pub async fn series(State(st): State<AppState>) -> Series<super::series::Point> {
    Ok(axum::Json(super::series::cluster(&st).await?))
}

/// `GET /ui/series/node/{name}`.
pub async fn node_series(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Series<super::series::Point> {
    Ok(axum::Json(super::series::node(&st, &name).await?))
}

/// `GET /ui/series/allocation/{id}`.
pub async fn alloc_series(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Series<nomos_api::usage::UsagePoint> {
    Ok(axum::Json(super::series::alloc(&st, &id).await?))
}

/// `GET /ui/series/job/{id}?namespace=`.
pub async fn job_series(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<NsParam>,
) -> Series<nomos_api::usage::UsagePoint> {
    Ok(axum::Json(super::series::job(&st, q.ns(), &id).await?))
}

mod alloc;
mod job;
mod node;

pub use alloc::*;
pub use job::*;
pub use node::*;
