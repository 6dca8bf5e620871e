//! Measured usage, sampled in the background and reported to `/nomos/usage/<node>`.
//!
//! Three parts:
//! - the cgroup readers: [`parse_cpu_usage_usec`] and [`parse_bytes`] (pure, on the text of
//!   `cpu.stat`, `memory.current` and v1's `memory.usage_in_bytes`) and [`cgroup_stats`];
//!   `raw_exec` tasks have no cgroup and are read from `/proc` by their driver;
//! - [`next_report`]: the previous report plus this interval's samples gives the new one: CPU
//!   rates from the difference of cumulative CPU seconds, and the bounded rings pushed (pure);
//! - [`sampler`]: every interval, asks the drivers of every running task (one read of a few
//!   small files per task, nothing per second) and writes one key. It starts from the report
//!   already stored, so an agent restart keeps the node's history.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nomos_api::usage::{
    cpu_percent, percent_to_mhz, push_bounded, AllocUsage, NodePoint, NodeUsage, TaskUsage,
    UsagePoint, ALLOC_POINTS, NODE_POINTS,
};
use nomos_api::Node;
use nomos_store::{keys, KeySelector, PutOptions, RangeOptions, Store};

use crate::driver::{StatsSource, TaskStats};
use crate::runner::LiveAllocs;

/// `usage_usec` of a cgroup v2 `cpu.stat`: CPU time of every process in the cgroup, ever.
pub fn parse_cpu_usage_usec(cpu_stat: &str) -> Option<u64> {
    cpu_stat.lines().find_map(|l| {
        let (name, value) = l.split_once(' ')?;
        (name == "usage_usec").then(|| value.trim().parse().ok())?
    })
}

/// A file holding one number of bytes (`memory.current`, `memory.usage_in_bytes`).
pub fn parse_bytes(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The usage of a task in cgroup `dir`: cgroup v2's CPU and memory accounting when `dir` has
/// them; a v1 memory cgroup's `memory.usage_in_bytes` with `procs`' CPU; else `procs`, the
/// task's figures from `/proc`.
pub fn cgroup_stats(dir: &Path, procs: TaskStats) -> TaskStats {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let cpu_usec = read("cpu.stat").as_deref().and_then(parse_cpu_usage_usec);
    let memory_v2 = read("memory.current").as_deref().and_then(parse_bytes);
    if let (Some(usec), Some(memory)) = (cpu_usec, memory_v2) {
        return TaskStats {
            memory_rss_bytes: memory,
            cpu_total_ns: usec.saturating_mul(1_000),
            pids: procs.pids,
            source: StatsSource::Cgroup,
        };
    }
    match read("memory.usage_in_bytes")
        .as_deref()
        .and_then(parse_bytes)
    {
        Some(memory) => TaskStats {
            memory_rss_bytes: memory,
            source: StatsSource::CgroupMemoryProcfsCpu,
            ..procs
        },
        None => procs,
    }
}

/// One allocation's tasks as sampled this interval.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AllocSample {
    pub id: String,
    pub namespace: String,
    pub job: String,
    pub group: String,
    pub cpu_mhz_allocated: u64,
    pub memory_mb_allocated: u64,
    pub tasks: Vec<(String, TaskStats)>,
}

/// The node's capacity for the report: its CPU (MHz over `cores`) and memory less its
/// reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capacity {
    pub cpu_mhz: u32,
    pub cores: u32,
    pub reserved_cpu_mhz: u32,
    pub memory_mb: u32,
    pub reserved_memory_mb: u32,
}

impl Capacity {
    pub fn of(node: &Node) -> Self {
        let r = &node.resources;
        Capacity {
            cpu_mhz: r.cpu_mhz,
            cores: r.cores,
            reserved_cpu_mhz: r.reserved_cpu_mhz,
            memory_mb: r.memory_mb,
            reserved_memory_mb: r.reserved_memory_mb,
        }
    }
}

/// The report after `prev` given this interval's samples at Unix second `now`: a task's CPU
/// rate is its CPU seconds' growth since `prev` over the time between them (since its first
/// sample, none is known: 0); allocations no longer sampled drop out with their history.
pub fn next_report(
    prev: &NodeUsage,
    node: &str,
    capacity: Capacity,
    interval_secs: u64,
    now: i64,
    samples: &[AllocSample],
) -> NodeUsage {
    let wall = (now - prev.t) as f64;
    let mut allocs = BTreeMap::new();
    for s in samples {
        let before = prev.allocs.get(&s.id);
        let tasks: BTreeMap<String, TaskUsage> = s
            .tasks
            .iter()
            .map(|(name, stats)| {
                let seconds = stats.cpu_total_ns as f64 / 1e9;
                let percent = before
                    .and_then(|b| b.tasks.get(name))
                    .map_or(0.0, |t| cpu_percent(t.cpu_seconds, seconds, wall));
                let usage = TaskUsage {
                    cpu_seconds: seconds,
                    cpu_percent: percent,
                    cpu_mhz: percent_to_mhz(percent, capacity.cpu_mhz, capacity.cores),
                    memory_bytes: stats.memory_rss_bytes,
                    source: stats.source.as_str().to_string(),
                };
                (name.clone(), usage)
            })
            .collect();
        let point = UsagePoint {
            t: now,
            cpu_mhz: tasks.values().map(|t| t.cpu_mhz).sum(),
            memory_bytes: tasks.values().map(|t| t.memory_bytes).sum(),
        };
        let mut history = before.map(|b| b.history.clone()).unwrap_or_default();
        push_bounded(&mut history, point, ALLOC_POINTS);
        let usage = AllocUsage {
            namespace: s.namespace.clone(),
            job: s.job.clone(),
            group: s.group.clone(),
            cpu_mhz_allocated: s.cpu_mhz_allocated,
            memory_mb_allocated: s.memory_mb_allocated,
            tasks,
            history,
        };
        allocs.insert(s.id.clone(), usage);
    }
    let node_point = node_point(now, capacity, &allocs);
    let mut history = prev.history.clone();
    push_bounded(&mut history, node_point, NODE_POINTS);
    NodeUsage {
        node: node.to_string(),
        interval_secs,
        t: now,
        allocs,
        history,
    }
}

fn node_point(now: i64, c: Capacity, allocs: &BTreeMap<String, AllocUsage>) -> NodePoint {
    let newest = |a: &AllocUsage| a.history.last().copied().unwrap_or_default();
    NodePoint {
        t: now,
        cpu_mhz: allocs.values().map(|a| newest(a).cpu_mhz).sum(),
        memory_bytes: allocs.values().map(|a| newest(a).memory_bytes).sum(),
        cpu_mhz_allocated: allocs.values().map(|a| a.cpu_mhz_allocated).sum(),
        memory_bytes_allocated: allocs.values().map(|a| a.memory_mb_allocated << 20).sum(),
        cpu_mhz_capacity: c.cpu_mhz.saturating_sub(c.reserved_cpu_mhz) as u64,
        memory_bytes_capacity: (c.memory_mb.saturating_sub(c.reserved_memory_mb) as u64) << 20,
        running_allocs: allocs.len() as u64,
    }
}

/// The report stored for `node`, if there is one this agent can read.
async fn stored_report(store: &dyn Store, node: &str) -> Option<NodeUsage> {
    let resp = store
        .range(KeySelector::key(keys::usage(node)), RangeOptions::default())
        .await
        .ok()?;
    serde_json::from_slice::<NodeUsage>(&resp.kvs.first()?.value)
        .ok()
        .filter(|u| u.node == node)
}

/// Samples every `interval` and writes the node's report; runs until aborted. A failed write
/// is logged and the next interval writes again (the history is kept in memory meanwhile).
pub async fn sampler(store: Arc<dyn Store>, live: LiveAllocs, node: Arc<Node>, interval: Duration) {
    let interval = interval.max(Duration::from_millis(100));
    let mut report = stored_report(store.as_ref(), &node.name)
        .await
        .unwrap_or_default();
    report.allocs.clear();
    let capacity = Capacity::of(&node);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let samples = live.sample_all(&node).await;
        let now = nomos_api::now_ms().div_euclid(1000);
        if now <= report.t {
            continue;
        }
        report = next_report(
            &report,
            &node.name,
            capacity,
            interval.as_secs().max(1),
            now,
            &samples,
        );
        let bytes = match serde_json::to_vec(&report) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "encoding the usage report failed");
                continue;
            }
        };
        let key = keys::usage(&node.name);
        if let Err(e) = store
            .put(key.into_bytes(), bytes, PutOptions::default())
            .await
        {
            tracing::debug!(error = %e, "writing the usage report failed; the next one retries");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_files_give_cpu_microseconds_and_bytes() {
        let cpu_stat = "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n\
                        nr_periods 0\nnr_throttled 0\nthrottled_usec 0\n";
        assert_eq!(parse_cpu_usage_usec(cpu_stat), Some(2_500_000));
        assert_eq!(parse_cpu_usage_usec("user_usec 1\n"), None);
        assert_eq!(parse_cpu_usage_usec("usage_usec x\n"), None);
        assert_eq!(parse_bytes("52428800\n"), Some(52_428_800));
        assert_eq!(parse_bytes("max\n"), None);
    }

    #[test]
    fn a_cgroup_directory_is_read_as_v2_then_v1_memory_then_left_to_proc() {
        let procs = TaskStats {
            memory_rss_bytes: 7,
            cpu_total_ns: 9,
            pids: 2,
            source: StatsSource::Procfs,
        };
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            cgroup_stats(dir.path(), procs),
            procs,
            "no accounting files"
        );
        std::fs::write(dir.path().join("memory.usage_in_bytes"), "4096\n").unwrap();
        let v1 = cgroup_stats(dir.path(), procs);
        assert_eq!(
            (v1.memory_rss_bytes, v1.cpu_total_ns, v1.source),
            (4096, 9, StatsSource::CgroupMemoryProcfsCpu)
        );
        std::fs::write(dir.path().join("cpu.stat"), "usage_usec 3\n").unwrap();
        std::fs::write(dir.path().join("memory.current"), "8192\n").unwrap();
        let v2 = cgroup_stats(dir.path(), procs);
        assert_eq!(
            (v2.memory_rss_bytes, v2.cpu_total_ns, v2.pids, v2.source),
            (8192, 3000, 2, StatsSource::Cgroup)
        );
    }

    fn sample(id: &str, cpu_s: u64, mem: u64) -> AllocSample {
        AllocSample {
            id: id.into(),
            namespace: "default".into(),
            job: "web".into(),
            group: "g".into(),
            cpu_mhz_allocated: 500,
            memory_mb_allocated: 256,
            tasks: vec![(
                "t".into(),
                TaskStats {
                    memory_rss_bytes: mem,
                    cpu_total_ns: cpu_s * 1_000_000_000,
                    pids: 1,
                    source: StatsSource::Procfs,
                },
            )],
        }
    }

    const CAP: Capacity = Capacity {
        cpu_mhz: 4000,
        cores: 2,
        reserved_cpu_mhz: 100,
        memory_mb: 1024,
        reserved_memory_mb: 24,
    };

    #[test]
    fn a_report_rates_cpu_against_the_previous_one_and_keeps_bounded_rings() {
        let first = next_report(
            &NodeUsage::default(),
            "n1",
            CAP,
            10,
            100,
            &[sample("a", 5, 10)],
        );
        let t = &first.allocs["a"].tasks["t"];
        assert_eq!(
            (t.cpu_seconds, t.cpu_percent, t.memory_bytes),
            (5.0, 0.0, 10)
        );
        let second = next_report(&first, "n1", CAP, 10, 110, &[sample("a", 10, 20)]);
        let t = &second.allocs["a"].tasks["t"];
        assert_eq!(
            (t.cpu_percent, t.cpu_mhz),
            (50.0, 1000),
            "5 s of CPU in 10 s"
        );
        assert_eq!(second.allocs["a"].history.len(), 2);
        let p = *second.history.last().unwrap();
        assert_eq!(
            (
                p.t,
                p.cpu_mhz,
                p.memory_bytes,
                p.cpu_mhz_allocated,
                p.memory_bytes_allocated
            ),
            (110, 1000, 20, 500, 256 << 20)
        );
        assert_eq!(
            (p.cpu_mhz_capacity, p.memory_bytes_capacity),
            (3900, 1000 << 20)
        );
        assert_eq!(p.running_allocs, 1);

        let mut r = second;
        for i in 0..(NODE_POINTS as i64 + 5) {
            r = next_report(&r, "n1", CAP, 10, 120 + i * 10, &[sample("a", 10, 20)]);
        }
        assert_eq!(r.history.len(), NODE_POINTS);
        assert_eq!(r.allocs["a"].history.len(), ALLOC_POINTS);
        let gone = next_report(&r, "n1", CAP, 10, 100_000, &[]);
        assert!(gone.allocs.is_empty(), "a finished allocation drops out");
        assert_eq!(gone.history.last().unwrap().running_allocs, 0);
    }
}
