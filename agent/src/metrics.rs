//! The agent's Prometheus metrics (prometheus-client), served on `/metrics` by [`crate::http`].

use std::sync::Mutex;

use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DriverLabel {
    pub driver: String,
}

/// Every metric the agent exports.
pub struct Metrics {
    registry: Mutex<Registry>,
    pub tasks_running: Gauge,
    pub task_starts: Counter,
    pub task_restarts: Counter,
    pub driver_errors: Family<DriverLabel, Counter>,
    pub heartbeat_latency: Histogram,
    pub store_errors: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("nomos_agent");
        let tasks_running = Gauge::default();
        let task_starts = Counter::default();
        let task_restarts = Counter::default();
        let driver_errors = Family::<DriverLabel, Counter>::default();
        let heartbeat_latency = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        let store_errors = Counter::default();
        registry.register(
            "tasks_running",
            "Tasks currently running on this node",
            tasks_running.clone(),
        );
        registry.register(
            "task_starts",
            "Task starts, first starts and restarts",
            task_starts.clone(),
        );
        registry.register(
            "task_restarts",
            "Task restarts decided by the restart policy",
            task_restarts.clone(),
        );
        registry.register(
            "driver_errors",
            "Driver operations that failed",
            driver_errors.clone(),
        );
        registry.register(
            "heartbeat_latency_seconds",
            "Time a heartbeat lease keep-alive took",
            heartbeat_latency.clone(),
        );
        registry.register(
            "store_errors",
            "Store operations that failed and were retried",
            store_errors.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            tasks_running,
            task_starts,
            task_restarts,
            driver_errors,
            heartbeat_latency,
            store_errors,
        }
    }
}

impl Metrics {
    pub fn driver_error(&self, driver: &str) {
        self.driver_errors
            .get_or_create(&DriverLabel {
                driver: driver.to_string(),
            })
            .inc();
    }

    /// The metrics in Prometheus text format (0.0.4), which `promtool check metrics` and every
    /// scraper accept.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let reg = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        let _ = encode(&mut out, &reg);
        openmetrics_to_prometheus(&out)
    }
}

/// Rewrites prometheus-client's OpenMetrics output as Prometheus text: counter families are
/// named with their `_total` suffix in `# HELP`/`# TYPE`, `# UNIT` and `# EOF` are dropped.
pub fn openmetrics_to_prometheus(text: &str) -> String {
    let counters: std::collections::HashSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let rewritten = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{p}{name}_total {tail}"))
        });
        out.push_str(rewritten.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_encode_with_the_agent_prefix() {
        let m = Metrics::default();
        m.tasks_running.set(3);
        m.driver_error("docker");
        let text = m.encode();
        assert!(text.contains("nomos_agent_tasks_running 3"), "{text}");
        assert!(
            text.contains("nomos_agent_driver_errors_total{driver=\"docker\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE nomos_agent_driver_errors_total counter"),
            "{text}"
        );
        assert!(!text.contains("# EOF"));
    }
}
