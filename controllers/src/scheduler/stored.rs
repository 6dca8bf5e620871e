//! The scheduler settings users store through the API, as the placement engine takes them: the
//! cluster's algorithm (`/nomos/config/scheduler`) and each node pool's own
//! (`/nomos/nodepools/<name>`). A pool's algorithm wins for jobs in that pool, then the
//! cluster's stored one, then the server's configured default (Nomad's order).

use std::collections::BTreeMap;

use nomos_api::settings::{NodePool, SchedulerConfiguration};
use nomos_store::keys;

use super::{Algorithm, SchedulerConfig};

/// The stored algorithms, kept in step with their keys ([`StoredScheduling::apply`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredScheduling {
    /// The cluster's, when one is stored.
    pub cluster: Option<Algorithm>,
    /// Pools that set their own, by name.
    pub pools: BTreeMap<String, Algorithm>,
}

fn parse(algorithm: &str, key: &str) -> Option<Algorithm> {
    match algorithm.parse() {
        Ok(a) => Some(a),
        Err(e) => {
            tracing::warn!(key, error = %e, "stored scheduler algorithm ignored");
            None
        }
    }
}

impl StoredScheduling {
    /// Takes in a write (`Some`) or delete (`None`) of `key`; other keys change nothing.
    /// Returns whether `key` was one of the settings' keys.
    pub fn apply(&mut self, key: &str, value: Option<&[u8]>) -> bool {
        if key == keys::SCHEDULER_CONFIG {
            self.cluster = value.and_then(|v| match serde_json::from_slice(v) {
                Ok(SchedulerConfiguration {
                    scheduler_algorithm,
                    ..
                }) => parse(&scheduler_algorithm, key),
                Err(e) => {
                    tracing::warn!(key, error = %e, "undecodable scheduler configuration ignored");
                    None
                }
            });
            return true;
        }
        let Some(name) = key.strip_prefix(keys::NODE_POOLS_PREFIX) else {
            return false;
        };
        let pool = value.and_then(|v| serde_json::from_slice::<NodePool>(v).ok());
        match pool
            .as_ref()
            .and_then(|p| p.algorithm())
            .and_then(|a| parse(a, key))
        {
            Some(a) => self.pools.insert(name.to_string(), a),
            None => self.pools.remove(name),
        };
        true
    }

    /// The keys held ([`StoredScheduling::apply`] took a value for), for a re-list.
    pub fn keys(&self) -> Vec<String> {
        let mut out: Vec<String> = self.pools.keys().map(|p| keys::node_pool(p)).collect();
        if self.cluster.is_some() {
            out.push(keys::SCHEDULER_CONFIG.to_string());
        }
        out
    }

    /// The configuration to place a job of `pool` with, `default` holding the server's.
    pub fn config_for(&self, pool: &str, default: &SchedulerConfig) -> SchedulerConfig {
        let algorithm = self
            .pools
            .get(pool)
            .or(self.cluster.as_ref())
            .copied()
            .unwrap_or(default.algorithm);
        SchedulerConfig { algorithm }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pools_algorithm_wins_then_the_clusters_then_the_servers_default() {
        let mut s = StoredScheduling::default();
        let default = SchedulerConfig::default();
        assert_eq!(
            s.config_for("default", &default).algorithm,
            Algorithm::Binpack
        );
        assert!(s.apply(
            keys::SCHEDULER_CONFIG,
            Some(br#"{"SchedulerAlgorithm":"spread"}"#)
        ));
        assert_eq!(
            s.config_for("default", &default).algorithm,
            Algorithm::Spread
        );
        let pool = br#"{"Name":"batch","SchedulerConfiguration":{"SchedulerAlgorithm":"binpack"}}"#;
        assert!(s.apply(&keys::node_pool("batch"), Some(pool)));
        assert_eq!(
            s.config_for("batch", &default).algorithm,
            Algorithm::Binpack
        );
        assert_eq!(s.keys().len(), 2);
        s.apply(&keys::node_pool("batch"), None);
        s.apply(keys::SCHEDULER_CONFIG, None);
        assert_eq!(s, StoredScheduling::default());
        assert!(!s.apply(keys::HEARTBEAT_CONFIG, Some(b"{}")));
    }
}
