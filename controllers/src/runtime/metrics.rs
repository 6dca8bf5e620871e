//! Prometheus metrics of the controllers, registered in a `prometheus_client` registry the
//! server renders on `/metrics`. Every family is labelled by `controller` (and `cache`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabel {
    pub controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabel {
    pub controller: String,
    pub cache: String,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// All controller metrics; cheap to clone (the families are shared).
#[derive(Clone)]
pub struct Metrics {
    pub reconciles: Family<ControllerLabel, Counter>,
    pub errors: Family<ControllerLabel, Counter>,
    pub duration: Family<ControllerLabel, Histogram, fn() -> Histogram>,
    pub queue_depth: Family<ControllerLabel, Gauge>,
    pub queue_delayed: Family<ControllerLabel, Gauge>,
    pub cache_objects: Family<CacheLabel, Gauge>,
    pub watch_lag: Family<CacheLabel, Gauge>,
    pub leader: Family<ControllerLabel, Gauge>,
    pub placements: Family<ControllerLabel, Counter>,
    pub placement_failures: Family<ControllerLabel, Counter>,
    pub commit_conflicts: Family<ControllerLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            reconciles: Family::default(),
            errors: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            queue_depth: Family::default(),
            queue_delayed: Family::default(),
            cache_objects: Family::default(),
            watch_lag: Family::default(),
            leader: Family::default(),
            placements: Family::default(),
            placement_failures: Family::default(),
            commit_conflicts: Family::default(),
        }
    }
}

impl Metrics {
    /// Creates the families and registers them under the `nomos_controller_` prefix.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Metrics::default();
        let r = registry.sub_registry_with_prefix("nomos_controller");
        r.register("reconciles", "Reconciles run", m.reconciles.clone());
        r.register(
            "reconcile_errors",
            "Reconciles that returned an error",
            m.errors.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile",
            m.duration.clone(),
        );
        r.register(
            "queue_depth",
            "Keys ready to reconcile now in the work queue (0 on an idle cluster)",
            m.queue_depth.clone(),
        );
        r.register(
            "queue_delayed",
            "Keys in the work queue waiting for a requeue or backoff time to pass",
            m.queue_delayed.clone(),
        );
        r.register(
            "cache_objects",
            "Objects held in a reflector cache",
            m.cache_objects.clone(),
        );
        r.register(
            "watch_lag_revisions",
            "Store revision minus the revision a cache reflects",
            m.watch_lag.clone(),
        );
        r.register(
            "leader",
            "1 while this process leads the controller",
            m.leader.clone(),
        );
        r.register("placements", "Allocations placed", m.placements.clone());
        r.register(
            "placement_failures",
            "Allocations that could not be placed",
            m.placement_failures.clone(),
        );
        r.register(
            "commit_conflicts",
            "Placement commits that conflicted and were retried",
            m.commit_conflicts.clone(),
        );
        m
    }

    /// Sets the queue gauges of `label` from what the queue holds now.
    pub fn set_queue<K: Clone + Eq + std::hash::Hash + Ord>(
        &self,
        label: &ControllerLabel,
        queue: &super::queue::WorkQueue<K>,
    ) {
        self.queue_depth
            .get_or_create(label)
            .set(queue.len() as i64);
        self.queue_delayed
            .get_or_create(label)
            .set(queue.delayed_len() as i64);
    }

    pub fn label(controller: &str) -> ControllerLabel {
        ControllerLabel {
            controller: controller.to_string(),
        }
    }

    pub fn cache(controller: &str, cache: &str) -> CacheLabel {
        CacheLabel {
            controller: controller.to_string(),
            cache: cache.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_in_prometheus_text_format() {
        let mut reg = Registry::default();
        let m = Metrics::register(&mut reg);
        m.reconciles.get_or_create(&Metrics::label("jobs")).inc();
        m.leader.get_or_create(&Metrics::label("jobs")).set(1);
        m.duration
            .get_or_create(&Metrics::label("jobs"))
            .observe(0.01);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).unwrap();
        assert!(
            out.contains("nomos_controller_reconciles_total{controller=\"jobs\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("nomos_controller_leader{controller=\"jobs\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("nomos_controller_reconcile_duration_seconds_bucket"),
            "{out}"
        );
    }
}
