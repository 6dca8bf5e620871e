//! The UI's resource charts, all computed from the agents' usage reports in the store
//! ([`crate::measured`]), so they survive a server restart and every server draws the same:
//! - the overview's cluster chart: per time bucket, CPU and memory measured, allocated and
//!   the capacity of the nodes that reported, and running allocations ([`cluster_points`]);
//! - a node's chart (the same points from its own history), an allocation's and a job's
//!   (measured CPU MHz and memory bytes).
//!
//! Nodes keep an hour of points and allocations ten minutes (see [`nomos_api::usage`]).

use std::time::Duration;

use nomos_api::usage::{NodePoint, NodeUsage, UsagePoint};
use serde::Serialize;

use crate::error::ServerError;
use crate::measured::{self, SeriesBody};
use crate::AppState;

/// How often the charts poll, by default (the agents write every 10 s).
pub const DEFAULT_SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// The cluster (or one node) at one moment: what was measured, what allocations hold, and
/// the capacity (less reservations) of the nodes that reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Point {
    /// Unix seconds.
    pub t: i64,
    pub cpu_used_mhz: u64,
    pub cpu_total_mhz: u64,
    pub memory_used_mb: u64,
    pub memory_total_mb: u64,
    pub cpu_measured_mhz: u64,
    pub memory_measured_mb: u64,
    /// Allocations with a running task.
    pub running_allocs: u64,
}

impl From<&NodePoint> for Point {
    fn from(p: &NodePoint) -> Self {
        Point {
            t: p.t,
            cpu_used_mhz: p.cpu_mhz_allocated,
            cpu_total_mhz: p.cpu_mhz_capacity,
            memory_used_mb: p.memory_bytes_allocated >> 20,
            memory_total_mb: p.memory_bytes_capacity >> 20,
            cpu_measured_mhz: p.cpu_mhz,
            memory_measured_mb: p.memory_bytes >> 20,
            running_allocs: p.running_allocs,
        }
    }
}

/// The cluster's points, oldest first.
pub fn cluster_points(reports: &[NodeUsage]) -> Vec<Point> {
    measured::cluster_series(reports)
        .iter()
        .map(Point::from)
        .collect()
}

fn body<P>(st: &AppState, points: Vec<P>) -> SeriesBody<P> {
    SeriesBody {
        interval_ms: st.ui.sample_every.as_millis() as u64,
        points,
    }
}

/// `GET /ui/series`: the cluster chart.
pub async fn cluster(st: &AppState) -> Result<SeriesBody<Point>, ServerError> {
    let reports = measured::reports(st).await?;
    Ok(body(st, cluster_points(&reports)))
}

/// `GET /ui/series/node/{name}`: a node's chart; 404 for an unknown node.
pub async fn node(st: &AppState, name: &str) -> Result<SeriesBody<Point>, ServerError> {
    let node = crate::reads::get_node(st, name).await?;
    let reports = measured::reports(st).await?;
    let points = measured::node_series(&reports, &node.node.name);
    Ok(body(st, points.iter().map(Point::from).collect()))
}

/// `GET /ui/series/allocation/{id}`: an allocation's chart; 404 for an unknown allocation.
pub async fn alloc(st: &AppState, id: &str) -> Result<SeriesBody<UsagePoint>, ServerError> {
    let view = crate::allocs::find_alloc(st, id).await?;
    let reports = measured::reports(st).await?;
    Ok(body(
        st,
        measured::alloc_series(&reports, &view.allocation.id),
    ))
}

/// `GET /ui/series/job/{id}?namespace=`: a job's chart; 404 for an unknown job.
pub async fn job(
    st: &AppState,
    namespace: &str,
    job: &str,
) -> Result<SeriesBody<UsagePoint>, ServerError> {
    let key = nomos_store::keys::job(namespace, job);
    if crate::kv::get_raw(st.store.as_ref(), &key).await?.is_none() {
        return Err(ServerError::NotFound(format!(
            "no job {job:?} in namespace {namespace:?}"
        )));
    }
    let reports = measured::reports(st).await?;
    Ok(body(st, measured::job_series(&reports, namespace, job)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_point_sums_every_nodes_report_of_its_bucket() {
        let node = |name: &str, t: i64, cpu: u64| NodeUsage {
            node: name.into(),
            interval_secs: 10,
            t,
            history: vec![NodePoint {
                t,
                cpu_mhz: cpu,
                memory_bytes: 3 << 20,
                cpu_mhz_allocated: 500,
                memory_bytes_allocated: 256 << 20,
                cpu_mhz_capacity: 4000,
                memory_bytes_capacity: 4096 << 20,
                running_allocs: 1,
            }],
            ..NodeUsage::default()
        };
        let points = cluster_points(&[node("n1", 1001, 100), node("n2", 1007, 50)]);
        assert_eq!(
            points,
            [Point {
                t: 1000,
                cpu_used_mhz: 1000,
                cpu_total_mhz: 8000,
                memory_used_mb: 512,
                memory_total_mb: 8192,
                cpu_measured_mhz: 150,
                memory_measured_mb: 6,
                running_allocs: 2,
            }]
        );
        assert!(cluster_points(&[]).is_empty());
    }
}
