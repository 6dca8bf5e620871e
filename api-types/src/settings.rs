//! Settings users write through the API and the controllers honour, in Nomad's shapes:
//! - [`SchedulerConfiguration`]: the cluster's scheduler configuration, at
//!   `/nomos/config/scheduler` (`PUT /v1/operator/scheduler/configuration`);
//! - [`NodePool`]: a node pool written as an object, at `/nomos/nodepools/<name>`
//!   (`PUT /v1/node/pools`);
//! - [`StabilityMarks`]: a job's versions marked stable or not by hand, at
//!   `/nomos/jobstability/<ns>/<job>` (`PUT /v1/job/{id}/stable`).
//!
//! Each checks what Nomos can honour: a setting it cannot is refused with the reason, never
//! stored and ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `Ok` when there is no problem, else every one in a message opened by `what`.
pub fn refuse_any(what: &str, problems: Vec<String>) -> Result<(), String> {
    if problems.is_empty() {
        return Ok(());
    }
    Err(format!("{what}: {}", problems.join("; ")))
}

/// The algorithms the scheduler ranks nodes with.
pub const SCHEDULER_ALGORITHMS: [&str; 2] = ["binpack", "spread"];

/// Checks a `SchedulerAlgorithm` (`field` names it in the message).
pub fn check_algorithm(field: &str, algorithm: &str) -> Result<(), String> {
    if SCHEDULER_ALGORITHMS.contains(&algorithm) {
        return Ok(());
    }
    Err(format!(
        "{field}: expected \"binpack\" or \"spread\", found {algorithm:?}"
    ))
}

/// Nomad's `PreemptionConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PreemptionConfig {
    pub system_scheduler_enabled: bool,
    pub sys_batch_scheduler_enabled: bool,
    pub batch_scheduler_enabled: bool,
    pub service_scheduler_enabled: bool,
}

/// Nomad's `SchedulerConfiguration`, as stored (the key's revisions are its indexes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SchedulerConfiguration {
    /// `binpack` or `spread`.
    pub scheduler_algorithm: String,
    pub preemption_config: PreemptionConfig,
    pub memory_oversubscription_enabled: bool,
    pub reject_job_registration: bool,
    pub pause_eval_broker: bool,
}

impl Default for SchedulerConfiguration {
    fn default() -> Self {
        SchedulerConfiguration {
            scheduler_algorithm: "binpack".into(),
            preemption_config: PreemptionConfig::default(),
            memory_oversubscription_enabled: false,
            reject_job_registration: false,
            pause_eval_broker: false,
        }
    }
}

impl SchedulerConfiguration {
    /// The configuration with `algorithm` and everything else off.
    pub fn with_algorithm(algorithm: &str) -> Self {
        SchedulerConfiguration {
            scheduler_algorithm: algorithm.into(),
            ..Default::default()
        }
    }

    /// Every reason Nomos cannot run with this configuration, one sentence each (none: it
    /// can). Nomos has no preemption, no memory oversubscription, no evaluation broker to
    /// pause, and no switch that refuses registrations. `SystemSchedulerEnabled` is the one
    /// exception: it is Nomad's default (on), which tools send back unchanged, so it is taken
    /// and recorded with a note ([`SchedulerConfiguration::notes`]) rather than refused.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Err(e) = check_algorithm("SchedulerAlgorithm", &self.scheduler_algorithm) {
            out.push(e);
        }
        let p = &self.preemption_config;
        for (on, name) in [
            (p.sys_batch_scheduler_enabled, "SysBatchSchedulerEnabled"),
            (p.batch_scheduler_enabled, "BatchSchedulerEnabled"),
            (p.service_scheduler_enabled, "ServiceSchedulerEnabled"),
        ] {
            if on {
                out.push(format!(
                    "PreemptionConfig.{name}: Nomos has no preemption; it must be false"
                ));
            }
        }
        for (on, name, why) in [
            (
                self.memory_oversubscription_enabled,
                "MemoryOversubscriptionEnabled",
                "Nomos places by `memory` and kills at `memory_max` whatever this says",
            ),
            (
                self.reject_job_registration,
                "RejectJobRegistration",
                "Nomos has no switch that refuses registrations",
            ),
            (
                self.pause_eval_broker,
                "PauseEvalBroker",
                "Nomos has no evaluation broker to pause",
            ),
        ] {
            if on {
                out.push(format!("{name}: {why}; it must be false"));
            }
        }
        out
    }

    /// What the configuration says that Nomos records but does not act on, one sentence each.
    pub fn notes(&self) -> Vec<String> {
        if !self.preemption_config.system_scheduler_enabled {
            return Vec::new();
        }
        vec![
            "PreemptionConfig.SystemSchedulerEnabled: recorded, has no effect: Nomos does not \
             preempt; a system job that cannot fit on a node reports it as a placement failure"
                .to_string(),
        ]
    }
}

/// Longest node pool name, and its description (Nomad's limits).
pub const MAX_POOL_NAME: usize = 128;
pub const MAX_POOL_DESCRIPTION: usize = 256;
/// The pools Nomad has built in: neither written nor deleted.
pub const BUILTIN_POOLS: [&str; 2] = ["all", "default"];

/// A node pool's own scheduler settings (Nomad's `NodePoolSchedulerConfiguration`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PoolSchedulerConfiguration {
    /// `binpack` or `spread`; empty: the cluster's.
    pub scheduler_algorithm: String,
    /// Nomad Enterprise's; only `null` or `false` (Nomos has no memory oversubscription).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_oversubscription_enabled: Option<bool>,
}

/// A node pool written as an object (Nomad's `NodePool`). Its indexes are the key's
/// revisions: taken from a body (a client sends back what it read) and never stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodePool {
    pub name: String,
    pub description: String,
    pub meta: Option<BTreeMap<String, String>>,
    pub scheduler_configuration: Option<PoolSchedulerConfiguration>,
    #[serde(skip_serializing)]
    pub create_index: i64,
    #[serde(skip_serializing)]
    pub modify_index: i64,
}

/// Checks a pool name: 1 to 128 of `[a-zA-Z0-9-_]` (Nomad's rule).
pub fn check_pool_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if name.is_empty() || name.len() > MAX_POOL_NAME || !ok_chars {
        return Err(format!(
            "node pool name {name:?}: expected 1 to {MAX_POOL_NAME} letters, digits, `-` or `_`"
        ));
    }
    Ok(())
}

impl NodePool {
    /// Every reason this pool cannot be written, one sentence each.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Err(e) = check_pool_name(&self.name) {
            out.push(e);
        } else if BUILTIN_POOLS.contains(&self.name.as_str()) {
            out.push(format!(
                "node pool {:?} is built in and cannot be written",
                self.name
            ));
        }
        if self.description.len() > MAX_POOL_DESCRIPTION {
            out.push(format!(
                "Description: {} bytes, at most {MAX_POOL_DESCRIPTION}",
                self.description.len()
            ));
        }
        if let Some(sc) = &self.scheduler_configuration {
            if !sc.scheduler_algorithm.is_empty() {
                if let Err(e) = check_algorithm(
                    "SchedulerConfiguration.SchedulerAlgorithm",
                    &sc.scheduler_algorithm,
                ) {
                    out.push(e);
                }
            }
            if sc.memory_oversubscription_enabled == Some(true) {
                out.push(
                    "SchedulerConfiguration.MemoryOversubscriptionEnabled: Nomos has no memory \
                     oversubscription; it must be false"
                        .into(),
                );
            }
        }
        out
    }

    /// The pool's own algorithm, if it sets one.
    pub fn algorithm(&self) -> Option<&str> {
        self.scheduler_configuration
            .as_ref()
            .map(|s| s.scheduler_algorithm.as_str())
            .filter(|a| !a.is_empty())
    }
}

/// A job's versions marked stable (`true`) or not (`false`) by hand. A mark overrides what
/// the controllers concluded for that version (the job status's `stable_version`, the
/// version whose deployment succeeded last), so the API and the auto-revert read one flag:
/// [`StabilityMarks::is_stable`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StabilityMarks {
    pub versions: BTreeMap<u64, bool>,
}

impl StabilityMarks {
    /// Whether `version` is stable, given the version the controllers marked stable.
    pub fn is_stable(&self, version: u64, deployed_stable: Option<u64>) -> bool {
        self.versions
            .get(&version)
            .copied()
            .unwrap_or(deployed_stable == Some(version))
    }

    /// The newest stable version among `versions` (what `auto_revert` goes back to).
    pub fn latest_stable(
        &self,
        deployed_stable: Option<u64>,
        versions: impl DoubleEndedIterator<Item = u64>,
    ) -> Option<u64> {
        versions.rev().find(|v| self.is_stable(*v, deployed_stable))
    }
}

/// [`StabilityMarks::latest_stable`] when a job may have no marks.
pub fn latest_stable(
    marks: Option<&StabilityMarks>,
    deployed_stable: Option<u64>,
    versions: impl DoubleEndedIterator<Item = u64>,
) -> Option<u64> {
    match marks {
        Some(m) => m.latest_stable(deployed_stable, versions),
        None => deployed_stable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_binpack_or_spread_with_everything_else_off_can_be_honoured() {
        assert!(SchedulerConfiguration::with_algorithm("spread")
            .problems()
            .is_empty());
        let mut c = SchedulerConfiguration::with_algorithm("random");
        c.preemption_config.service_scheduler_enabled = true;
        c.pause_eval_broker = true;
        let problems = c.problems();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("\"random\""));
        assert!(problems[1].contains("ServiceSchedulerEnabled"));
        assert!(problems[2].contains("PauseEvalBroker"));
    }

    #[test]
    fn nomads_default_system_preemption_is_taken_with_a_note_not_refused() {
        let mut c = SchedulerConfiguration::with_algorithm("binpack");
        assert!(c.notes().is_empty());
        c.preemption_config.system_scheduler_enabled = true;
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        assert_eq!(c.notes().len(), 1);
        assert!(c.notes()[0].contains("has no effect"));
        c.preemption_config.sys_batch_scheduler_enabled = true;
        assert!(c.problems()[0].contains("SysBatchSchedulerEnabled"));
    }

    #[test]
    fn pool_names_follow_nomads_rule_and_built_ins_are_not_written() {
        assert!(check_pool_name("prod-eng_2").is_ok());
        for bad in ["", "a b", "a/b", "é", &"x".repeat(129)] {
            assert!(check_pool_name(bad).is_err(), "{bad:?}");
        }
        let pool = |name: &str| NodePool {
            name: name.into(),
            ..Default::default()
        };
        assert!(pool("prod").problems().is_empty());
        assert!(pool("all").problems()[0].contains("built in"));
        assert!(pool("default").problems()[0].contains("built in"));
        let mut p = pool("prod");
        p.scheduler_configuration = Some(PoolSchedulerConfiguration {
            scheduler_algorithm: "fast".into(),
            memory_oversubscription_enabled: Some(true),
        });
        assert_eq!(p.problems().len(), 2);
    }

    #[test]
    fn a_mark_overrides_the_deployments_verdict_for_its_version_only() {
        let marks = StabilityMarks {
            versions: BTreeMap::from([(3, false), (1, true)]),
        };
        assert!(!marks.is_stable(3, Some(3)));
        assert!(marks.is_stable(1, Some(3)));
        assert!(marks.is_stable(2, Some(2)));
        assert!(!marks.is_stable(2, Some(3)));
        assert_eq!(marks.latest_stable(Some(3), 0..=3), Some(1));
        assert_eq!(marks.latest_stable(Some(2), 0..=3), Some(2));
        assert_eq!(latest_stable(None, Some(2), 0..=3), Some(2));
    }
}
