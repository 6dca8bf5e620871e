//! How Nomad's heartbeat settings map onto store leases. The servers publish their settings at
//! `/nomos/config/heartbeat`; each agent reads them when it registers and sizes its lease with
//! [`lease_timing`] for the cluster's node count.
//!
//! Nomad's servers give each client a heartbeat TTL of `max(min_heartbeat_ttl, nodes /
//! max_heartbeats_per_second)` and mark it missed `heartbeat_grace` after the TTL ran out. In
//! Nomos the agent keeps its heartbeat key on a lease: it renews the lease every
//! [`LeaseTiming::keepalive_interval_ms`] (the Nomad TTL, so the cluster never renews more than
//! `max_heartbeats_per_second` leases per second), and the lease's TTL is that interval plus the
//! grace, so a node is `disconnected` once it has been silent for one interval plus the grace.

use serde::{Deserialize, Serialize};

/// Nomad's `server { heartbeat_grace, min_heartbeat_ttl, max_heartbeats_per_second }`; the value
/// at `/nomos/config/heartbeat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HeartbeatConfig {
    pub heartbeat_grace_ms: i64,
    pub min_heartbeat_ttl_ms: i64,
    pub max_heartbeats_per_second: f64,
}

impl Default for HeartbeatConfig {
    /// Nomad's defaults: 10s grace, 10s minimum TTL, 50 heartbeats per second.
    fn default() -> Self {
        HeartbeatConfig {
            heartbeat_grace_ms: 10_000,
            min_heartbeat_ttl_ms: 10_000,
            max_heartbeats_per_second: 50.0,
        }
    }
}

/// The lease an agent keeps for its heartbeat key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// TTL to grant the lease with (whole seconds, as leases count them).
    pub ttl_seconds: i64,
    /// How often the agent renews it.
    pub keepalive_interval_ms: i64,
}

/// The heartbeat lease for a cluster of `node_count` nodes.
pub fn lease_timing(config: &HeartbeatConfig, node_count: usize) -> LeaseTiming {
    let rate = if config.max_heartbeats_per_second > 0.0 {
        config.max_heartbeats_per_second
    } else {
        50.0
    };
    let spread_ms = ((node_count as f64 / rate) * 1000.0).ceil() as i64;
    let interval = config.min_heartbeat_ttl_ms.max(spread_ms).max(1000);
    let ttl_ms = interval + config.heartbeat_grace_ms.max(0);
    LeaseTiming {
        ttl_seconds: (ttl_ms + 999) / 1000,
        keepalive_interval_ms: interval,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_follows_nomads_ttl_rule() {
        let nomad = HeartbeatConfig::default();
        // (config, nodes, ttl seconds, renewal interval ms)
        let cases = [
            (nomad.clone(), 1, 20, 10_000),
            (nomad.clone(), 500, 20, 10_000),
            // 10,000 nodes at 50/s: one renewal every 200s, plus the 10s grace.
            (nomad.clone(), 10_000, 210, 200_000),
            (
                HeartbeatConfig {
                    heartbeat_grace_ms: 2_500,
                    min_heartbeat_ttl_ms: 1_000,
                    max_heartbeats_per_second: 10.0,
                },
                30,
                6,
                3_000,
            ),
            (
                HeartbeatConfig {
                    max_heartbeats_per_second: 0.0,
                    ..nomad
                },
                1_000,
                30,
                20_000,
            ),
        ];
        for (config, nodes, ttl, interval) in cases {
            let t = lease_timing(&config, nodes);
            assert_eq!(
                (t.ttl_seconds, t.keepalive_interval_ms),
                (ttl, interval),
                "{config:?} with {nodes} nodes"
            );
        }
    }
}
