//! When an allocation counts as healthy: one rule for deployments, migrations off draining nodes
//! and system-job updates.
//!
//! The agent reports a verdict (`healthy`) from its task states, its checks and the group's
//! `update` block. The controllers also judge by time from the task states the agent reports,
//! for the cases the agent's verdict does not cover (a migration's own `min_healthy_time`, or a
//! status without a verdict yet); that time rule never counts an allocation whose checks are not
//! all passing as healthy when health comes from checks (`health_check = "checks"`, Nomad's
//! default).

use nomos_api::{AllocStatus, ClientStatus, MigrateStrategy, TaskGroup, TaskRunState};

/// The check result status that counts as passing.
const PASSING: &str = "passing";

/// What "healthy" requires of one group's allocations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HealthRule {
    /// How long every task must have been running.
    pub min_healthy_ms: i64,
    /// How many checks must all be passing (0 when health comes from task states only).
    pub required_checks: usize,
}

impl HealthRule {
    /// The rule for `group` under a `health_check` mode (`checks`, `task_states` or `manual`)
    /// and a `min_healthy_time` in nanoseconds.
    pub fn new(group: &TaskGroup, health_check: &str, min_healthy_time_ns: u64) -> Self {
        Self {
            min_healthy_ms: (min_healthy_time_ns / 1_000_000) as i64,
            required_checks: if health_check == "task_states" {
                0
            } else {
                group.check_count()
            },
        }
    }

    /// The rule of migrations off a draining node: the `migrate` block's `health_check` and
    /// `min_healthy_time`.
    pub fn migration(group: &TaskGroup, migrate: &MigrateStrategy) -> Self {
        Self::new(group, &migrate.health_check, migrate.min_healthy_time_ns)
    }

    /// Whether every check health waits on has reported `passing`.
    pub fn checks_pass(&self, s: &AllocStatus) -> bool {
        self.required_checks == 0
            || (s.checks.len() >= self.required_checks
                && s.checks.values().all(|c| c.status == PASSING))
    }

    /// When a running allocation becomes healthy by time if it keeps running: `None` while a
    /// task is not running or a required check is not passing.
    pub fn healthy_at(&self, s: &AllocStatus) -> Option<i64> {
        let all_running = s.client_status == ClientStatus::Running
            && !s.task_states.is_empty()
            && s.task_states
                .values()
                .all(|t| t.state == TaskRunState::Running);
        if !all_running || !self.checks_pass(s) {
            return None;
        }
        let started = s
            .task_states
            .values()
            .map(|t| t.started_at_ms)
            .max()
            .unwrap_or(s.modified_at_ms);
        Some(started.saturating_add(self.min_healthy_ms))
    }
}

/// A migration replacement's health, judged by the `migrate` block's rule rather than the
/// agent's verdict (which follows the `update` block): healthy once it finished successfully,
/// or once it has run every task for `min_healthy_time` with its checks passing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationHealth {
    Healthy,
    /// Running and passing its checks; healthy at this instant if it keeps on.
    At(i64),
    Pending,
}

/// See [`MigrationHealth`].
pub fn migration_health(
    s: Option<&AllocStatus>,
    rule: &HealthRule,
    now_ms: i64,
) -> MigrationHealth {
    let Some(s) = s else {
        return MigrationHealth::Pending;
    };
    if s.client_status == ClientStatus::Complete {
        return MigrationHealth::Healthy;
    }
    if s.healthy == Some(false) {
        return MigrationHealth::Pending;
    }
    match rule.healthy_at(s) {
        Some(t) if t <= now_ms => MigrationHealth::Healthy,
        Some(t) => MigrationHealth::At(t),
        None => MigrationHealth::Pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nomos_api::{Check, CheckResult, Service, TaskState};

    fn group_with_checks(n: usize) -> TaskGroup {
        TaskGroup {
            services: vec![Service {
                checks: (0..n)
                    .map(|i| Check {
                        name: format!("c{i}"),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn running_since(started_at_ms: i64, checks: &[(&str, &str)]) -> AllocStatus {
        let mut s = AllocStatus {
            client_status: ClientStatus::Running,
            ..Default::default()
        };
        s.task_states.insert(
            "t".into(),
            TaskState {
                state: TaskRunState::Running,
                started_at_ms,
                ..Default::default()
            },
        );
        for (name, status) in checks {
            s.checks.insert(
                (*name).into(),
                CheckResult {
                    status: (*status).into(),
                    ..Default::default()
                },
            );
        }
        s
    }

    #[test]
    fn migration_health_table() {
        let ten_s = 10_000_000_000;
        let checked = HealthRule::new(&group_with_checks(1), "checks", ten_s);
        let states_only = HealthRule::new(&group_with_checks(1), "task_states", ten_s);
        let no_checks = HealthRule::new(&group_with_checks(0), "checks", ten_s);
        let cases: Vec<(&str, HealthRule, AllocStatus, i64, MigrationHealth)> = vec![
            (
                "no checks, ran long enough",
                no_checks,
                running_since(0, &[]),
                10_000,
                MigrationHealth::Healthy,
            ),
            (
                "no checks, not yet",
                no_checks,
                running_since(0, &[]),
                9_000,
                MigrationHealth::At(10_000),
            ),
            (
                "check not reported yet",
                checked,
                running_since(0, &[]),
                60_000,
                MigrationHealth::Pending,
            ),
            (
                "check critical",
                checked,
                running_since(0, &[("c0", "critical")]),
                60_000,
                MigrationHealth::Pending,
            ),
            (
                "check passing, long enough",
                checked,
                running_since(0, &[("c0", "passing")]),
                10_000,
                MigrationHealth::Healthy,
            ),
            (
                "check passing, not yet",
                checked,
                running_since(5_000, &[("c0", "passing")]),
                10_000,
                MigrationHealth::At(15_000),
            ),
            (
                "task_states ignores checks",
                states_only,
                running_since(0, &[("c0", "critical")]),
                10_000,
                MigrationHealth::Healthy,
            ),
        ];
        for (name, rule, status, now, want) in cases {
            assert_eq!(migration_health(Some(&status), &rule, now), want, "{name}");
        }
        let mut done = running_since(0, &[]);
        done.client_status = ClientStatus::Complete;
        assert_eq!(
            migration_health(Some(&done), &checked, 0),
            MigrationHealth::Healthy
        );
        let mut failed = running_since(0, &[("c0", "passing")]);
        failed.healthy = Some(false);
        assert_eq!(
            migration_health(Some(&failed), &checked, 60_000),
            MigrationHealth::Pending
        );
        assert_eq!(
            migration_health(None, &no_checks, 60_000),
            MigrationHealth::Pending
        );
    }

    #[test]
    fn check_count_covers_group_and_task_services() {
        let mut g = group_with_checks(2);
        g.tasks.push(nomos_api::Task {
            services: vec![Service {
                checks: vec![Check::default()],
                ..Default::default()
            }],
            ..Default::default()
        });
        assert_eq!(g.check_count(), 3);
        assert_eq!(HealthRule::new(&g, "task_states", 0).required_checks, 0);
    }
}
