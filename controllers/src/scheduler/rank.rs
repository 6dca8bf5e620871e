//! Ranking: scores in `[-1, 1]` for a feasible node. The placement loop averages the scores
//! that apply (fit always; anti-affinity, affinity, spread and reschedule penalty when relevant).

use std::collections::HashMap;

use nomos_api::{Node, Spread};

use super::feasible::{resolve, CompiledConstraint};
use super::{Algorithm, ClusterSnapshot, NodeState};

/// Resource fit after placing `cpu`/`memory_mb` on the node, after Nomad's bin-packing score:
/// `20 - (10^free_cpu + 10^free_mem)` normalised to `[0, 1]`; the spread algorithm inverts it.
pub fn fit(st: &NodeState, cpu: u32, memory_mb: u32, algorithm: Algorithm) -> f64 {
    let free = |used: u32, ask: u32, cap: u32| -> f64 {
        if cap == 0 {
            return 0.0;
        }
        (1.0 - (used.saturating_add(ask)) as f64 / cap as f64).clamp(0.0, 1.0)
    };
    let fc = free(st.used_cpu, cpu, st.cpu_capacity());
    let fm = free(st.used_memory_mb, memory_mb, st.memory_capacity());
    let total = 10f64.powf(fc) + 10f64.powf(fm);
    let score = match algorithm {
        Algorithm::Binpack => (20.0 - total) / 18.0,
        Algorithm::Spread => (total - 2.0) / 18.0,
    };
    score.clamp(0.0, 1.0)
}

/// Sum of the weights of matching affinities over the sum of their absolute weights.
pub fn affinity(affinities: &[(CompiledConstraint, i32)], node: &Node) -> f64 {
    let total: i32 = affinities.iter().map(|(_, w)| w.abs()).sum();
    if total == 0 {
        return 0.0;
    }
    let matched: i32 = affinities
        .iter()
        .filter(|(c, _)| c.matches(node))
        .map(|(_, w)| *w)
        .sum();
    matched as f64 / total as f64
}

/// One spread block with the group's current allocation counts per attribute value.
#[derive(Debug, Clone)]
pub struct SpreadState {
    attribute: String,
    weight: f64,
    /// Target percent per value; empty for an even spread.
    targets: HashMap<String, f64>,
    /// Percent left for values not named in `targets`.
    other_percent: f64,
    counts: HashMap<String, u32>,
    desired_count: f64,
}

impl SpreadState {
    pub fn new(
        spread: &Spread,
        snap: &ClusterSnapshot,
        job_key: &str,
        group: &str,
        count: u32,
    ) -> Self {
        let mut counts = HashMap::new();
        if let Some(per_node) = snap.job_index.get(job_key) {
            for (&i, groups) in per_node {
                let k = groups.get(group).copied().unwrap_or(0);
                if k > 0 {
                    if let Some(v) = resolve(&spread.attribute, &snap.nodes[i].node) {
                        *counts.entry(v).or_default() += k;
                    }
                }
            }
        }
        let targets: HashMap<String, f64> = spread
            .targets
            .iter()
            .map(|t| (t.value.clone(), t.percent as f64))
            .collect();
        let named: f64 = targets.values().sum();
        SpreadState {
            attribute: spread.attribute.clone(),
            weight: if spread.weight == 0 {
                50.0
            } else {
                spread.weight as f64
            },
            other_percent: (100.0 - named).max(0.0),
            targets,
            counts,
            desired_count: count.max(1) as f64,
        }
    }

    pub fn record(&mut self, node: &Node) {
        if let Some(v) = resolve(&self.attribute, node) {
            *self.counts.entry(v).or_default() += 1;
        }
    }

    /// `[-1, 1]`: positive when the node's value is below its share.
    fn boost(&self, node: &Node) -> f64 {
        let Some(v) = resolve(&self.attribute, node) else {
            return -1.0;
        };
        let used = self.counts.get(&v).copied().unwrap_or(0) as f64;
        if self.targets.is_empty() {
            let max = self.counts.values().copied().max().unwrap_or(0) as f64;
            if max == 0.0 {
                return 0.0;
            }
            return ((max - used) / max * 2.0 - 1.0).clamp(-1.0, 1.0);
        }
        let percent = self.targets.get(&v).copied().unwrap_or(self.other_percent);
        let desired = percent / 100.0 * self.desired_count;
        if desired <= 0.0 {
            return -1.0;
        }
        ((desired - used) / desired).clamp(-1.0, 1.0)
    }
}

/// Weighted mean of the spread boosts.
pub fn spread(spreads: &[SpreadState], node: &Node) -> f64 {
    let total: f64 = spreads.iter().map(|s| s.weight).sum();
    if total == 0.0 {
        return 0.0;
    }
    spreads
        .iter()
        .map(|s| s.weight * s.boost(node))
        .sum::<f64>()
        / total
}
