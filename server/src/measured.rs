//! Measured usage as the agents store it (`/nomos/usage/<node>`, see
//! [`nomos_api::usage`]): one read of the prefix, and the pure series the UI charts from it:
//! the cluster's (every node's history summed by time bucket), a node's, an allocation's and
//! a job's (its allocations' histories summed). Everything comes from the store, so every
//! server answers alike and nothing is lost when one restarts.

use nomos_api::usage::{merge, NodePoint, NodeUsage, TaskUsage, UsagePoint};
use nomos_store::keys;
use serde::Serialize;

use crate::error::ServerError;
use crate::AppState;

/// Every node's usage report.
pub async fn reports(st: &AppState) -> Result<Vec<NodeUsage>, ServerError> {
    Ok(
        crate::kv::list_json::<NodeUsage>(st.store.as_ref(), keys::USAGE_PREFIX)
            .await?
            .into_iter()
            .map(|e| e.value)
            .collect(),
    )
}

/// The bucket series are merged on: the longest interval any node samples at.
pub fn bucket_secs(reports: &[NodeUsage]) -> u64 {
    reports
        .iter()
        .map(|r| r.interval_secs)
        .max()
        .unwrap_or(nomos_api::usage::DEFAULT_INTERVAL_SECS)
        .max(1)
}

/// The cluster's totals over time: every node's history summed by bucket.
pub fn cluster_series(reports: &[NodeUsage]) -> Vec<NodePoint> {
    merge(
        reports.iter().map(|r| r.history.as_slice()),
        bucket_secs(reports),
    )
}

/// One node's history.
pub fn node_series(reports: &[NodeUsage], node: &str) -> Vec<NodePoint> {
    reports
        .iter()
        .find(|r| r.node == node)
        .map(|r| r.history.clone())
        .unwrap_or_default()
}

/// One allocation's history (from the node that runs it).
pub fn alloc_series(reports: &[NodeUsage], alloc: &str) -> Vec<UsagePoint> {
    reports
        .iter()
        .find_map(|r| r.allocs.get(alloc))
        .map(|a| a.history.clone())
        .unwrap_or_default()
}

/// A job's allocations' histories summed by bucket, over every node.
pub fn job_series(reports: &[NodeUsage], namespace: &str, job: &str) -> Vec<UsagePoint> {
    let rings = reports
        .iter()
        .flat_map(|r| r.allocs.values())
        .filter(|a| a.namespace == namespace && a.job == job)
        .map(|a| a.history.as_slice());
    merge(rings, bucket_secs(reports))
}

/// One running task's figures with the labels that name it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskRow<'a> {
    pub node: &'a str,
    pub namespace: &'a str,
    pub job: &'a str,
    pub group: &'a str,
    pub alloc_id: &'a str,
    pub task: &'a str,
    pub usage: &'a TaskUsage,
}

/// Every task of the reports that are current: sampled within three of their intervals of
/// `now` (Unix seconds), so a node that stopped reporting stops counting.
pub fn current_tasks(reports: &[NodeUsage], now: i64) -> Vec<TaskRow<'_>> {
    reports
        .iter()
        .filter(|r| now - r.t <= 3 * r.interval_secs.max(1) as i64)
        .flat_map(|r| {
            r.allocs.iter().flat_map(move |(id, a)| {
                a.tasks.iter().map(move |(task, usage)| TaskRow {
                    node: &r.node,
                    namespace: &a.namespace,
                    job: &a.job,
                    group: &a.group,
                    alloc_id: id,
                    task,
                    usage,
                })
            })
        })
        .collect()
}

/// A chart's answer: the sampling interval and the points, oldest first.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesBody<P> {
    pub interval_ms: u64,
    pub points: Vec<P>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use nomos_api::usage::AllocUsage;

    fn np(t: i64, cpu: u64) -> NodePoint {
        NodePoint {
            t,
            cpu_mhz: cpu,
            cpu_mhz_capacity: 1000,
            ..NodePoint::default()
        }
    }

    fn up(t: i64, cpu: u64) -> UsagePoint {
        UsagePoint {
            t,
            cpu_mhz: cpu,
            memory_bytes: cpu * 10,
        }
    }

    fn alloc(job: &str, history: Vec<UsagePoint>) -> AllocUsage {
        let mut tasks = std::collections::BTreeMap::new();
        tasks.insert("t".to_string(), TaskUsage::default());
        AllocUsage {
            namespace: "default".into(),
            job: job.into(),
            group: "g".into(),
            tasks,
            history,
            ..AllocUsage::default()
        }
    }

    fn reports() -> Vec<NodeUsage> {
        let mut n1 = NodeUsage {
            node: "n1".into(),
            interval_secs: 10,
            t: 120,
            history: vec![np(100, 1), np(110, 2), np(120, 3)],
            ..NodeUsage::default()
        };
        n1.allocs
            .insert("a1".into(), alloc("web", vec![up(110, 5), up(120, 6)]));
        n1.allocs.insert("a2".into(), alloc("db", vec![up(120, 7)]));
        let mut n2 = NodeUsage {
            node: "n2".into(),
            interval_secs: 10,
            t: 50,
            history: vec![np(104, 10), np(113, 20)],
            ..NodeUsage::default()
        };
        n2.allocs
            .insert("a3".into(), alloc("web", vec![up(115, 8)]));
        vec![n1, n2]
    }

    #[test]
    fn series_come_from_the_stored_rings_summed_per_bucket() {
        let r = reports();
        let cluster = cluster_series(&r);
        let summed: Vec<(i64, u64, u64)> = cluster
            .iter()
            .map(|p| (p.t, p.cpu_mhz, p.cpu_mhz_capacity))
            .collect();
        assert_eq!(summed, [(100, 11, 2000), (110, 22, 2000), (120, 3, 1000)]);
        assert_eq!(node_series(&r, "n2").len(), 2);
        assert!(node_series(&r, "nope").is_empty());
        assert_eq!(alloc_series(&r, "a1"), [up(110, 5), up(120, 6)]);
        assert_eq!(
            job_series(&r, "default", "web"),
            [up(110, 13), up(120, 6)],
            "a1 and a3 add up in the 110 bucket"
        );
        assert!(job_series(&r, "other", "web").is_empty());
    }

    #[test]
    fn only_reports_sampled_lately_count_as_current() {
        let r = reports();
        let rows = current_tasks(&r, 125);
        let ids: Vec<&str> = rows.iter().map(|t| t.alloc_id).collect();
        assert_eq!(ids, ["a1", "a2"], "n2 last reported at 50: stale at 125");
        assert_eq!(rows[0].node, "n1");
        assert_eq!(rows[0].job, "web");
        assert!(current_tasks(&r, 1000).is_empty());
    }
}
