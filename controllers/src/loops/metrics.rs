//! Prometheus metrics of the loops, under the `nomos_loops_` prefix: passes, errors, conflicts
//! and leadership per loop; per periodic job its next launch, last launch, last success, last
//! failure (Unix seconds) and skipped overlaps, so it can be alerted on; nodes per status.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LoopLabel {
    pub r#loop: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabel {
    pub namespace: String,
    pub job: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

/// All loop metrics; cheap to clone.
#[derive(Clone, Default)]
pub struct LoopMetrics {
    pub passes: Family<LoopLabel, Counter>,
    pub errors: Family<LoopLabel, Counter>,
    pub conflicts: Family<LoopLabel, Counter>,
    pub leader: Family<LoopLabel, Gauge>,
    pub periodic_next_launch: Family<JobLabel, Gauge>,
    pub periodic_last_launch: Family<JobLabel, Gauge>,
    pub periodic_last_success: Family<JobLabel, Gauge>,
    pub periodic_last_failure: Family<JobLabel, Gauge>,
    pub periodic_skipped_overlaps: Family<JobLabel, Gauge>,
    pub nodes: Family<StatusLabel, Gauge>,
    /// The periodic jobs that have series, so those of deleted jobs can be removed.
    periodic_jobs: Arc<Mutex<HashSet<JobLabel>>>,
}

fn label(name: &str) -> LoopLabel {
    LoopLabel {
        r#loop: name.to_string(),
    }
}

impl LoopMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = LoopMetrics::default();
        let r = registry.sub_registry_with_prefix("nomos_loops");
        r.register("passes", "Passes run by a loop", m.passes.clone());
        r.register("errors", "Passes that failed", m.errors.clone());
        r.register(
            "conflicts",
            "Writes that lost a compare and were recomputed",
            m.conflicts.clone(),
        );
        r.register(
            "leader",
            "1 while this process leads the loop",
            m.leader.clone(),
        );
        r.register(
            "periodic_next_launch_timestamp_seconds",
            "Next launch of a periodic job",
            m.periodic_next_launch.clone(),
        );
        r.register(
            "periodic_last_launch_timestamp_seconds",
            "Last launch of a periodic job",
            m.periodic_last_launch.clone(),
        );
        r.register(
            "periodic_last_success_timestamp_seconds",
            "Last successful child of a periodic job",
            m.periodic_last_success.clone(),
        );
        r.register(
            "periodic_last_failure_timestamp_seconds",
            "Last failed child of a periodic job",
            m.periodic_last_failure.clone(),
        );
        r.register(
            "periodic_skipped_overlaps",
            "Ticks skipped because a child still ran",
            m.periodic_skipped_overlaps.clone(),
        );
        r.register("nodes", "Nodes per lifecycle status", m.nodes.clone());
        m
    }

    pub fn pass(&self, name: &str, ok: bool) {
        self.passes.get_or_create(&label(name)).inc();
        if !ok {
            self.errors.get_or_create(&label(name)).inc();
        }
    }

    pub fn conflict(&self, name: &str) {
        self.conflicts.get_or_create(&label(name)).inc();
    }

    pub fn set_leader(&self, name: &str, leading: bool) {
        self.leader
            .get_or_create(&label(name))
            .set(i64::from(leading));
    }

    pub fn periodic(&self, namespace: &str, job: &str, s: &nomos_api::PeriodicStatus) {
        let l = JobLabel {
            namespace: namespace.to_string(),
            job: job.to_string(),
        };
        let secs = |v: Option<i64>| v.map(|ms| ms / 1000).unwrap_or(0);
        self.periodic_next_launch
            .get_or_create(&l)
            .set(secs(s.next_launch_ms));
        self.periodic_last_launch
            .get_or_create(&l)
            .set(secs(s.last_launch_ms));
        self.periodic_last_success
            .get_or_create(&l)
            .set(secs(s.last_success_ms));
        self.periodic_last_failure
            .get_or_create(&l)
            .set(secs(s.last_failure_ms));
        self.periodic_skipped_overlaps
            .get_or_create(&l)
            .set(s.skipped_overlaps as i64);
        self.periodic_jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(l);
    }

    /// Removes the series of periodic jobs not in `live` (`(namespace, job)`): a purged or no
    /// longer periodic job stops being reported.
    pub fn retain_periodic(&self, live: &HashSet<(String, String)>) {
        let mut known = self.periodic_jobs.lock().unwrap_or_else(|e| e.into_inner());
        known.retain(|l| {
            let keep = live.contains(&(l.namespace.clone(), l.job.clone()));
            if !keep {
                for family in [
                    &self.periodic_next_launch,
                    &self.periodic_last_launch,
                    &self.periodic_last_success,
                    &self.periodic_last_failure,
                    &self.periodic_skipped_overlaps,
                ] {
                    family.remove(l);
                }
            }
            keep
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loop_metrics_render_in_prometheus_text_format() {
        let mut reg = Registry::default();
        let m = LoopMetrics::register(&mut reg);
        m.pass("periodic", false);
        m.periodic(
            "default",
            "report",
            &nomos_api::PeriodicStatus {
                next_launch_ms: Some(1_700_000_000_000),
                ..Default::default()
            },
        );
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).unwrap();
        assert!(
            out.contains("nomos_loops_passes_total{loop=\"periodic\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("nomos_loops_errors_total{loop=\"periodic\"} 1"),
            "{out}"
        );
        assert!(out.contains("nomos_loops_periodic_next_launch_timestamp_seconds{namespace=\"default\",job=\"report\"} 1700000000"), "{out}");

        m.periodic("default", "other", &nomos_api::PeriodicStatus::default());
        m.retain_periodic(&HashSet::from([(
            "default".to_string(),
            "other".to_string(),
        )]));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).unwrap();
        assert!(
            !out.contains("job=\"report\""),
            "a deleted job's series go: {out}"
        );
        assert!(out.contains("job=\"other\""), "{out}");
    }
}
