//! The overview's resource chart: cluster-wide allocated CPU and memory and running allocations
//! over the last minutes.
//!
//! Three parts: [`sample`] turns nodes and allocations into one [`Point`] (pure, table-tested);
//! [`Series`] is a bounded ring buffer of points; [`run`] is the background sampler that reads
//! the store every `sample_every`, pushes a point and ends when the server starts closing.
//! `GET /ui/series` serves the buffer as JSON.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use nomos_api::ClientStatus;
use nomos_controllers::scheduler::ClusterSnapshot;
use serde::Serialize;

use crate::error::ServerError;
use crate::views::AllocView;
use crate::AppState;

/// How often the sampler records a point, by default.
pub const DEFAULT_SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// How much history the chart keeps.
pub const HISTORY: Duration = Duration::from_secs(600);

/// The cluster at one moment. CPU and memory are summed over ready nodes: capacity (minus each
/// node's reservation) and what live allocations (desired to run, not finished) hold there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Point {
    /// Unix seconds.
    pub t: i64,
    pub cpu_used_mhz: u64,
    pub cpu_total_mhz: u64,
    pub memory_used_mb: u64,
    pub memory_total_mb: u64,
    /// Allocations whose agent reports them `running`, on any node.
    pub running_allocs: u64,
}

/// One point from what the store holds now: the cluster's snapshot and every allocation.
pub fn sample(snap: &ClusterSnapshot, allocs: &[AllocView], now_ms: i64) -> Point {
    let usage = super::model::node_usage(snap);
    let total = super::model::cluster_usage(&usage);
    Point {
        t: now_ms.div_euclid(1000),
        cpu_used_mhz: total.cpu_used_mhz,
        cpu_total_mhz: total.cpu_total_mhz,
        memory_used_mb: total.memory_used_mb,
        memory_total_mb: total.memory_total_mb,
        running_allocs: allocs
            .iter()
            .filter(|a| a.client_status() == ClientStatus::Running)
            .count() as u64,
    }
}

/// A bounded buffer of the newest points.
#[derive(Debug)]
pub struct Series {
    capacity: usize,
    points: Mutex<VecDeque<Point>>,
}

impl Series {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Series {
            capacity,
            points: Mutex::new(VecDeque::with_capacity(capacity)),
        }
    }

    /// Enough room for [`HISTORY`] at one point every `every`.
    pub fn for_interval(every: Duration) -> Self {
        let n = HISTORY.as_millis() / every.as_millis().max(1);
        Self::new(n.clamp(2, 10_000) as usize)
    }

    /// Appends a point, dropping the oldest once full.
    pub fn push(&self, p: Point) {
        let mut points = self.points.lock().unwrap_or_else(|e| e.into_inner());
        if points.len() == self.capacity {
            points.pop_front();
        }
        points.push_back(p);
    }

    /// The points, oldest first.
    pub fn points(&self) -> Vec<Point> {
        let points = self.points.lock().unwrap_or_else(|e| e.into_inner());
        points.iter().copied().collect()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// `GET /ui/series`.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesBody {
    pub interval_ms: u64,
    pub points: Vec<Point>,
}

/// Reads the store and computes one point.
pub async fn sample_now(st: &AppState) -> Result<Point, ServerError> {
    let snap = crate::usage::snapshot(st).await?;
    let allocs = crate::reads::all_allocs(st).await?;
    Ok(sample(&snap, &allocs, nomos_api::now_ms()))
}

/// The sampler: a point every `st.ui.sample_every` until the server starts closing. A failed
/// read (store unavailable) skips that point.
pub async fn run(st: AppState) {
    let mut closed = std::pin::pin!(st.closed());
    let mut tick = tokio::time::interval(st.ui.sample_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut closed => return,
            _ = tick.tick() => {}
        }
        // A store that hangs must not hold up shutdown.
        tokio::select! {
            _ = &mut closed => return,
            sampled = sample_now(&st) => match sampled {
                Ok(p) => st.ui.series.push(p),
                Err(e) => tracing::debug!(error = %e, "resource sample skipped"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::NodeView;
    use nomos_api::{build, AllocStatus, Allocation, DesiredStatus, Job, NodeSpec, TaskGroup};
    use nomos_controllers::loops::view::{Rev, View};

    /// The snapshot the server builds from the store, here from the test's rows (every spec
    /// is version 0, as every allocation names).
    fn snapshot(specs: &[Job], nodes: &[NodeView], allocs: &[AllocView]) -> ClusterSnapshot {
        let mut view = View::default();
        for j in specs {
            view.versions
                .entry((j.namespace.clone(), j.id.clone()))
                .or_default()
                .insert(0, j.clone());
        }
        for n in nodes {
            let name = n.node.name.clone();
            view.nodes.insert(name.clone(), n.node.clone());
            view.node_specs.insert(name.clone(), n.spec.clone());
            if n.status == "ready" {
                view.heartbeats.insert(name);
            }
        }
        for a in allocs {
            let id = a.allocation.id.clone();
            if let Some(st) = &a.status {
                let st = Rev {
                    value: st.clone(),
                    mod_revision: 1,
                };
                view.alloc_status.insert(id.clone(), st);
            }
            let value = a.allocation.clone();
            view.allocs.insert(
                id,
                Rev {
                    value,
                    mod_revision: 1,
                },
            );
        }
        view.snapshot()
    }

    fn node(name: &str, status: &str, cpu: u32, mem: u32) -> NodeView {
        let mut node = build::node(name).cpu(cpu).memory(mem).build();
        node.resources.reserved_cpu_mhz = 100;
        node.resources.reserved_memory_mb = 24;
        NodeView {
            node,
            spec: NodeSpec::default(),
            status: status.into(),
            eligible: true,
            draining: false,
            allocations: 0,
            drain_status: None,
            create_index: 0,
            modify_index: 0,
        }
    }

    fn job(id: &str, cpu: u32, mem: u32) -> Job {
        let group = TaskGroup {
            tasks: vec![build::task("t", cpu, mem)],
            ..build::group("g", 1)
        };
        build::job(id).with_group(group).build()
    }

    fn alloc(
        id: &str,
        job: &str,
        node: &str,
        desired: DesiredStatus,
        client: Option<ClientStatus>,
    ) -> AllocView {
        AllocView {
            allocation: Allocation {
                id: id.into(),
                namespace: "default".into(),
                job_id: job.into(),
                task_group: "g".into(),
                node: node.into(),
                desired_status: desired,
                ..Allocation::default()
            },
            status: client.map(|c| AllocStatus {
                client_status: c,
                ..AllocStatus::default()
            }),
            modify_index: 1,
        }
    }

    #[test]
    fn a_sample_sums_ready_capacity_and_what_live_allocations_hold() {
        use ClientStatus::*;
        use DesiredStatus::*;
        let specs = [job("web", 500, 256), job("db", 1000, 1024)];
        let two_nodes = [
            node("n1", "ready", 4100, 4120),
            node("n2", "ready", 2100, 2072),
        ];
        struct Case {
            name: &'static str,
            nodes: Vec<NodeView>,
            allocs: Vec<AllocView>,
            want: (u64, u64, u64, u64, u64),
        }
        let cases = [
            Case {
                name: "empty cluster",
                nodes: vec![],
                allocs: vec![],
                want: (0, 0, 0, 0, 0),
            },
            Case {
                name: "capacity is minus the reservation",
                nodes: two_nodes.to_vec(),
                allocs: vec![],
                want: (0, 6000, 0, 6144, 0),
            },
            Case {
                name: "pending and running allocations hold resources; only running ones count as running",
                nodes: two_nodes.to_vec(),
                allocs: vec![
                    alloc("a1", "web", "n1", Run, Some(Running)),
                    alloc("a2", "web", "n2", Run, None),
                    alloc("a3", "db", "n1", Run, Some(Running)),
                ],
                want: (2000, 6000, 1536, 6144, 2),
            },
            Case {
                name: "finished and stopped allocations hold nothing",
                nodes: two_nodes.to_vec(),
                allocs: vec![
                    alloc("a1", "web", "n1", Run, Some(Complete)),
                    alloc("a2", "web", "n1", Run, Some(Failed)),
                    alloc("a3", "db", "n2", Stop, Some(Running)),
                ],
                want: (0, 6000, 0, 6144, 1),
            },
            Case {
                name: "a disconnected node adds no capacity and its allocations no usage",
                nodes: vec![node("n1", "ready", 4100, 4120), node("n2", "disconnected", 2100, 2072)],
                allocs: vec![
                    alloc("a1", "web", "n1", Run, Some(Running)),
                    alloc("a2", "db", "n2", Run, Some(Running)),
                ],
                want: (500, 4000, 256, 4096, 2),
            },
            Case {
                name: "an allocation of a job without a spec holds nothing known",
                nodes: two_nodes.to_vec(),
                allocs: vec![alloc("a1", "gone", "n1", Run, Some(Running))],
                want: (0, 6000, 0, 6144, 1),
            },
        ];
        for c in cases {
            let snap = snapshot(&specs, &c.nodes, &c.allocs);
            let p = sample(&snap, &c.allocs, 1_700_000_000_999);
            assert_eq!(p.t, 1_700_000_000, "{}", c.name);
            assert_eq!(
                (
                    p.cpu_used_mhz,
                    p.cpu_total_mhz,
                    p.memory_used_mb,
                    p.memory_total_mb,
                    p.running_allocs
                ),
                c.want,
                "{}",
                c.name
            );
        }
    }

    fn point(t: i64) -> Point {
        Point {
            t,
            cpu_used_mhz: 0,
            cpu_total_mhz: 0,
            memory_used_mb: 0,
            memory_total_mb: 0,
            running_allocs: 0,
        }
    }

    #[test]
    fn the_series_keeps_only_the_newest_points() {
        let s = Series::new(3);
        for t in 1..=5 {
            s.push(point(t));
        }
        let ts: Vec<i64> = s.points().iter().map(|p| p.t).collect();
        assert_eq!(ts, [3, 4, 5]);
    }

    #[test]
    fn the_series_holds_ten_minutes_at_its_interval() {
        assert_eq!(Series::for_interval(DEFAULT_SAMPLE_EVERY).capacity(), 120);
        assert_eq!(
            Series::for_interval(Duration::from_millis(1)).capacity(),
            10_000
        );
        assert_eq!(
            Series::for_interval(Duration::from_secs(3600)).capacity(),
            2
        );
    }
}
