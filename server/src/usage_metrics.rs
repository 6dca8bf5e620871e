//! The cluster's metrics on the server's `/metrics`, computed from the store at each scrape so
//! every server exports the same figures: measured usage per task, allocation and job (from
//! the agents' usage reports), allocations by job and client status, and the cluster's
//! allocated resources and capacity (the placement engine's own snapshot).
//!
//! [`registry`] builds a fresh registry from those inputs (pure); [`collect`] reads the store.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

use nomos_api::usage::NodeUsage;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::error::ServerError;
use crate::measured::current_tasks;
use crate::ui::model::NodeUsage as Allocated;
use crate::views::AllocView;
use crate::AppState;

type Labels = Vec<(String, String)>;
type GaugeF = Family<Labels, Gauge<f64, AtomicU64>>;
type CounterF = Family<Labels, Counter<f64, AtomicU64>>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What the metrics are computed from.
pub struct Inputs<'a> {
    pub reports: &'a [NodeUsage],
    pub allocs: &'a [AllocView],
    pub allocated: Allocated,
    /// Unix seconds, to leave out reports that stopped coming.
    pub now: i64,
}

/// The registry of the cluster's metrics for `inputs`.
pub fn registry(inputs: &Inputs) -> Registry {
    let mut reg = Registry::default();
    register_tasks(&mut reg, inputs);
    register_allocations(&mut reg, inputs.allocs);
    register_cluster(&mut reg, inputs.allocated);
    reg
}

fn register_tasks(reg: &mut Registry, inputs: &Inputs) {
    let task_cpu = CounterF::default();
    let task_mem = GaugeF::default();
    let alloc_cpu = CounterF::default();
    let alloc_mem = GaugeF::default();
    let job_cpu = GaugeF::default();
    let job_mem = GaugeF::default();
    for row in current_tasks(inputs.reports, inputs.now) {
        let u = row.usage;
        let alloc = labels(&[
            ("namespace", row.namespace),
            ("job", row.job),
            ("group", row.group),
            ("alloc_id", row.alloc_id),
            ("node", row.node),
        ]);
        let mut task = alloc.clone();
        task.push(("task".into(), row.task.into()));
        let job = labels(&[("namespace", row.namespace), ("job", row.job)]);
        task_cpu.get_or_create(&task).inc_by(u.cpu_seconds);
        task_mem.get_or_create(&task).set(u.memory_bytes as f64);
        alloc_cpu.get_or_create(&alloc).inc_by(u.cpu_seconds);
        alloc_mem
            .get_or_create(&alloc)
            .inc_by(u.memory_bytes as f64);
        job_cpu.get_or_create(&job).inc_by(u.cpu_mhz as f64);
        job_mem.get_or_create(&job).inc_by(u.memory_bytes as f64);
    }
    reg.register(
        "nomos_task_cpu_seconds",
        "CPU time a running task has used (user plus system), measured by its agent",
        task_cpu,
    );
    reg.register(
        "nomos_task_memory_bytes",
        "Memory a running task uses (its cgroup's, or its processes' resident set)",
        task_mem,
    );
    reg.register(
        "nomos_alloc_cpu_seconds",
        "CPU time an allocation's running tasks have used",
        alloc_cpu,
    );
    reg.register(
        "nomos_alloc_memory_bytes",
        "Memory an allocation's running tasks use",
        alloc_mem,
    );
    reg.register(
        "nomos_job_cpu_mhz",
        "CPU a job's running tasks used over their agents' last interval, in MHz",
        job_cpu,
    );
    reg.register(
        "nomos_job_memory_bytes",
        "Memory a job's running tasks use",
        job_mem,
    );
}

fn register_allocations(reg: &mut Registry, allocs: &[AllocView]) {
    let mut counts: BTreeMap<(&str, &str, &'static str), u64> = BTreeMap::new();
    for a in allocs {
        let key = (
            a.allocation.namespace.as_str(),
            a.allocation.job_id.as_str(),
            a.client_status().as_str(),
        );
        *counts.entry(key).or_default() += 1;
    }
    let family = Family::<Labels, Gauge>::default();
    for ((namespace, job, status), n) in counts {
        let l = labels(&[("namespace", namespace), ("job", job), ("status", status)]);
        family.get_or_create(&l).set(n as i64);
    }
    reg.register(
        "nomos_allocations",
        "Allocations in the store, by job and client status",
        family,
    );
}

fn register_cluster(reg: &mut Registry, total: Allocated) {
    let gauges = [
        (
            "nomos_cluster_cpu_allocated_mhz",
            "CPU that live allocations hold on ready nodes, in MHz",
            total.cpu_used_mhz,
        ),
        (
            "nomos_cluster_cpu_capacity_mhz",
            "CPU of ready nodes less their reservations, in MHz",
            total.cpu_total_mhz,
        ),
        (
            "nomos_cluster_memory_allocated_bytes",
            "Memory that live allocations hold on ready nodes",
            total.memory_used_mb << 20,
        ),
        (
            "nomos_cluster_memory_capacity_bytes",
            "Memory of ready nodes less their reservations",
            total.memory_total_mb << 20,
        ),
    ];
    for (name, help, value) in gauges {
        let g = Gauge::<i64>::default();
        g.set(value as i64);
        reg.register(name, help, g);
    }
}

/// Reads what the metrics need and encodes them as OpenMetrics text (without `# EOF`).
pub async fn collect(st: &AppState) -> Result<String, ServerError> {
    let reports = crate::measured::reports(st).await?;
    let allocs = crate::reads::all_allocs(st).await?;
    let snap = crate::usage::snapshot(st).await?;
    let allocated = crate::ui::model::cluster_usage(&crate::ui::model::node_usage(&snap));
    let reg = registry(&Inputs {
        reports: &reports,
        allocs: &allocs,
        allocated,
        now: nomos_api::now_ms().div_euclid(1000),
    });
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &reg)
        .map_err(|e| ServerError::Internal(format!("encoding cluster metrics: {e}")))?;
    Ok(out.trim_end_matches("# EOF\n").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nomos_api::usage::{AllocUsage, TaskUsage};
    use nomos_api::{AllocStatus, Allocation, ClientStatus};

    fn text(inputs: &Inputs) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry(inputs)).unwrap();
        crate::metrics::to_prometheus_text(&out)
    }

    #[test]
    fn tasks_allocations_and_the_cluster_are_exported_with_stable_labels() {
        let mut report = NodeUsage {
            node: "n1".into(),
            interval_secs: 10,
            t: 100,
            ..NodeUsage::default()
        };
        let mut a = AllocUsage {
            namespace: "default".into(),
            job: "web".into(),
            group: "g".into(),
            ..AllocUsage::default()
        };
        let task = TaskUsage {
            cpu_seconds: 2.5,
            cpu_mhz: 300,
            memory_bytes: 1 << 20,
            ..TaskUsage::default()
        };
        a.tasks.insert("t".into(), task);
        report.allocs.insert("a1".into(), a);
        let alloc = AllocView {
            allocation: Allocation {
                id: "a1".into(),
                namespace: "default".into(),
                job_id: "web".into(),
                ..Allocation::default()
            },
            status: Some(AllocStatus {
                client_status: ClientStatus::Running,
                ..AllocStatus::default()
            }),
            modify_index: 1,
        };
        let allocated = Allocated {
            ready: true,
            cpu_used_mhz: 500,
            cpu_total_mhz: 4000,
            memory_used_mb: 256,
            memory_total_mb: 1024,
        };
        let reports = [report];
        let allocs = [alloc];
        let out = text(&Inputs {
            reports: &reports,
            allocs: &allocs,
            allocated,
            now: 105,
        });
        let task_labels =
            r#"{namespace="default",job="web",group="g",alloc_id="a1",node="n1",task="t"}"#;
        for want in [
            format!("nomos_task_cpu_seconds_total{task_labels} 2.5"),
            format!("nomos_task_memory_bytes{task_labels} 1048576.0"),
            r#"nomos_job_cpu_mhz{namespace="default",job="web"} 300.0"#.to_string(),
            r#"nomos_allocations{namespace="default",job="web",status="running"} 1"#.to_string(),
            "nomos_cluster_cpu_capacity_mhz 4000".to_string(),
            "nomos_cluster_memory_allocated_bytes 268435456".to_string(),
        ] {
            assert!(out.contains(&want), "missing {want} in\n{out}");
        }
        let stale = text(&Inputs {
            reports: &reports,
            allocs: &allocs,
            allocated,
            now: 1000,
        });
        assert!(
            !stale.contains("nomos_task_cpu_seconds_total{"),
            "a node that stopped reporting exports no task figures"
        );
    }
}
