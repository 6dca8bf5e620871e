//! Measured resource usage as agents report it to `/nomos/usage/<node>`: what each running
//! task uses now (cumulative CPU seconds, a CPU rate, memory bytes), a short history per
//! allocation and a longer one per node, so any server can chart and export it without asking
//! the agent, and the charts survive a server restart.
//!
//! The rings are bounded: [`NODE_POINTS`] node points (an hour at the default 10 s interval)
//! and [`ALLOC_POINTS`] points per allocation (ten minutes). [`merge`] sums the rings of
//! several nodes or allocations into one series by time bucket (pure).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Node history kept in the store: an hour at the default interval.
pub const NODE_POINTS: usize = 360;
/// History per allocation kept in the store: ten minutes at the default interval.
pub const ALLOC_POINTS: usize = 60;
/// How often agents sample and report, by default.
pub const DEFAULT_INTERVAL_SECS: u64 = 10;

/// The value of `/nomos/usage/<node>`, written by the node's agent every interval.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NodeUsage {
    pub node: String,
    /// Seconds between two samples.
    pub interval_secs: u64,
    /// Unix seconds of the newest sample.
    pub t: i64,
    /// The allocations with a running task, by id.
    #[serde(default)]
    pub allocs: BTreeMap<String, AllocUsage>,
    /// The node's totals, oldest first, at most [`NODE_POINTS`].
    #[serde(default)]
    pub history: Vec<NodePoint>,
}

/// One allocation's usage now and lately.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AllocUsage {
    pub namespace: String,
    pub job: String,
    pub group: String,
    /// What its tasks ask for: CPU MHz and memory MB.
    pub cpu_mhz_allocated: u64,
    pub memory_mb_allocated: u64,
    #[serde(default)]
    pub tasks: BTreeMap<String, TaskUsage>,
    /// The allocation's totals, oldest first, at most [`ALLOC_POINTS`].
    #[serde(default)]
    pub history: Vec<UsagePoint>,
}

/// One running task's usage at the newest sample.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TaskUsage {
    /// CPU time used since the task started, user plus system.
    pub cpu_seconds: f64,
    /// Per cent of one core over the last interval.
    pub cpu_percent: f64,
    /// The same as MHz of the node's cores (Nomad's `TotalTicks`).
    pub cpu_mhz: u64,
    /// Resident memory: the cgroup's `memory.current` or the sum of the processes' RSS.
    pub memory_bytes: u64,
    /// How it was measured: `cgroup` or `procfs` (or the driver's own, `docker`).
    pub source: String,
}

/// A measured point: CPU in MHz and memory in bytes at Unix second `t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UsagePoint {
    pub t: i64,
    pub cpu_mhz: u64,
    pub memory_bytes: u64,
}

/// A node's totals at Unix second `t`: measured, allocated and capacity (less the node's
/// reservation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NodePoint {
    pub t: i64,
    pub cpu_mhz: u64,
    pub memory_bytes: u64,
    pub cpu_mhz_allocated: u64,
    pub memory_bytes_allocated: u64,
    pub cpu_mhz_capacity: u64,
    pub memory_bytes_capacity: u64,
    pub running_allocs: u64,
}

/// What [`merge`] can add up.
pub trait Summable: Copy + Default {
    fn t(&self) -> i64;
    fn with_t(self, t: i64) -> Self;
    fn add(self, other: &Self) -> Self;
}

impl Summable for UsagePoint {
    fn t(&self) -> i64 {
        self.t
    }
    fn with_t(self, t: i64) -> Self {
        UsagePoint { t, ..self }
    }
    fn add(self, o: &Self) -> Self {
        UsagePoint {
            t: self.t,
            cpu_mhz: self.cpu_mhz + o.cpu_mhz,
            memory_bytes: self.memory_bytes + o.memory_bytes,
        }
    }
}

impl Summable for NodePoint {
    fn t(&self) -> i64 {
        self.t
    }
    fn with_t(self, t: i64) -> Self {
        NodePoint { t, ..self }
    }
    fn add(self, o: &Self) -> Self {
        NodePoint {
            t: self.t,
            cpu_mhz: self.cpu_mhz + o.cpu_mhz,
            memory_bytes: self.memory_bytes + o.memory_bytes,
            cpu_mhz_allocated: self.cpu_mhz_allocated + o.cpu_mhz_allocated,
            memory_bytes_allocated: self.memory_bytes_allocated + o.memory_bytes_allocated,
            cpu_mhz_capacity: self.cpu_mhz_capacity + o.cpu_mhz_capacity,
            memory_bytes_capacity: self.memory_bytes_capacity + o.memory_bytes_capacity,
            running_allocs: self.running_allocs + o.running_allocs,
        }
    }
}

/// Sums several rings into one series: points fall into buckets of `bucket_secs` (their time
/// rounded down), each ring adds at most its newest point per bucket, and the result is oldest
/// first with each bucket's start as its time. Agents sample out of step, so this is what lines
/// their points up.
pub fn merge<'a, P: Summable + 'a>(
    rings: impl IntoIterator<Item = &'a [P]>,
    bucket_secs: u64,
) -> Vec<P> {
    let bucket = bucket_secs.max(1) as i64;
    let mut sums: BTreeMap<i64, P> = BTreeMap::new();
    for ring in rings {
        let mut newest: BTreeMap<i64, &P> = BTreeMap::new();
        for p in ring {
            newest.insert(p.t().div_euclid(bucket) * bucket, p);
        }
        for (start, p) in newest {
            let sum = sums
                .entry(start)
                .or_insert_with(|| P::default().with_t(start));
            *sum = sum.add(p).with_t(start);
        }
    }
    sums.into_values().collect()
}

/// Appends `p` to `ring`, dropping the oldest points beyond `cap`.
pub fn push_bounded<P>(ring: &mut Vec<P>, p: P, cap: usize) {
    ring.push(p);
    if ring.len() > cap {
        let extra = ring.len() - cap;
        ring.drain(..extra);
    }
}

/// Per cent of one core used between two readings of cumulative CPU seconds `wall_secs` apart.
pub fn cpu_percent(cpu_before: f64, cpu_now: f64, wall_secs: f64) -> f64 {
    if wall_secs <= 0.0 || cpu_now < cpu_before {
        return 0.0;
    }
    (cpu_now - cpu_before) / wall_secs * 100.0
}

/// Per cent of one core as MHz of a node whose `cores` give `cpu_mhz` in all.
pub fn percent_to_mhz(percent: f64, cpu_mhz: u32, cores: u32) -> u64 {
    let per_core = cpu_mhz as f64 / cores.max(1) as f64;
    (percent / 100.0 * per_core).round().max(0.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(t: i64, cpu: u64, mem: u64) -> UsagePoint {
        UsagePoint {
            t,
            cpu_mhz: cpu,
            memory_bytes: mem,
        }
    }

    #[test]
    fn merging_rings_sums_points_of_the_same_bucket_and_keeps_each_rings_newest() {
        let a = [up(100, 1, 10), up(110, 2, 20), up(119, 3, 30)];
        let b = [up(103, 10, 100), up(125, 20, 200)];
        let merged = merge([&a[..], &b[..]], 10);
        assert_eq!(
            merged,
            [up(100, 11, 110), up(110, 3, 30), up(120, 20, 200)],
            "the 110 bucket takes a's newest (119), not 110 + 119"
        );
        assert!(merge::<UsagePoint>([], 10).is_empty());
    }

    #[test]
    fn a_bounded_ring_drops_its_oldest_points() {
        let mut ring = vec![1, 2, 3];
        push_bounded(&mut ring, 4, 3);
        assert_eq!(ring, [2, 3, 4]);
        push_bounded(&mut ring, 5, 1);
        assert_eq!(ring, [5]);
    }

    #[test]
    fn cpu_rates_are_cpu_time_over_wall_time_and_convert_to_mhz_per_core() {
        assert_eq!(cpu_percent(1.0, 1.5, 1.0), 50.0);
        assert_eq!(cpu_percent(2.0, 1.0, 1.0), 0.0, "a restarted counter");
        assert_eq!(cpu_percent(0.0, 1.0, 0.0), 0.0);
        assert_eq!(percent_to_mhz(50.0, 8000, 4), 1000);
        assert_eq!(percent_to_mhz(200.0, 2000, 0), 4000);
    }

    #[test]
    fn a_node_report_reads_back_as_written() {
        let mut u = NodeUsage {
            node: "n1".into(),
            interval_secs: 10,
            t: 5,
            ..NodeUsage::default()
        };
        u.history.push(NodePoint {
            t: 5,
            cpu_mhz: 3,
            ..NodePoint::default()
        });
        let json = serde_json::to_string(&u).unwrap();
        assert_eq!(serde_json::from_str::<NodeUsage>(&json).unwrap(), u);
    }
}
