//! The `restart` block as a pure decision: given the policy, the job type, how a task ended and
//! its restart history, restart (after how long), or stop (complete or failed).
//!
//! Nomad's semantics: at most `attempts` restarts within `interval`; each restart waits `delay`.
//! When attempts run out, `mode = "fail"` gives up and `mode = "delay"` waits until the interval
//! ends and starts counting again. A batch task that exits 0 is complete and never restarted;
//! a service task is restarted whatever its exit code.

use std::time::Duration;

use nomos_api::{JobType, RestartPolicy};
use serde::{Deserialize, Serialize};

use crate::driver::ExitResult;

/// Restarts counted in the current interval window; persisted with the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RestartTracker {
    pub count: u32,
    pub window_start_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestartDecision {
    /// Start again after the delay; the message is for the `Restarting` event.
    Restart { delay: Duration, reason: String },
    /// The task is done successfully.
    Complete,
    /// Give up; the message is for the `Not Restarting` event.
    Fail { reason: String },
}

/// Nomad's defaults when a job sets no `restart` block.
pub fn default_policy(job_type: JobType) -> RestartPolicy {
    let minute = 60_000_000_000u64;
    match job_type {
        JobType::Batch | JobType::Sysbatch => RestartPolicy {
            attempts: 3,
            interval_ns: 24 * 60 * minute,
            delay_ns: 15_000_000_000,
            mode: "fail".into(),
            render_templates: false,
        },
        JobType::Service | JobType::System => RestartPolicy {
            attempts: 2,
            interval_ns: 30 * minute,
            delay_ns: 15_000_000_000,
            mode: "fail".into(),
            render_templates: false,
        },
    }
}

/// Decides what happens after a task ended at `now_ms`, and the tracker to keep.
pub fn decide(
    policy: &RestartPolicy,
    job_type: JobType,
    exit: &ExitResult,
    tracker: RestartTracker,
    now_ms: i64,
) -> (RestartDecision, RestartTracker) {
    let batch = matches!(job_type, JobType::Batch | JobType::Sysbatch);
    if batch && exit.successful() {
        return (RestartDecision::Complete, tracker);
    }
    let interval_ms = (policy.interval_ns / 1_000_000) as i64;
    let delay = Duration::from_nanos(policy.delay_ns);
    let mut t = tracker;
    if t.window_start_ms == 0 || now_ms - t.window_start_ms >= interval_ms {
        t = RestartTracker {
            count: 0,
            window_start_ms: now_ms,
        };
    }
    if t.count < policy.attempts {
        t.count += 1;
        let reason = if exit.successful() {
            "Restart within policy".to_string()
        } else {
            format!("Restart within policy ({})", exit.describe())
        };
        return (RestartDecision::Restart { delay, reason }, t);
    }
    if policy.mode == "delay" {
        let wait_ms = (t.window_start_ms + interval_ms - now_ms).max(0) as u64;
        let wait = Duration::from_millis(wait_ms).max(delay);
        let next = RestartTracker {
            count: 0,
            window_start_ms: 0,
        };
        return (
            RestartDecision::Restart {
                delay: wait,
                reason: format!(
                    "Exceeded allowed attempts {} in interval {:?}; waiting for the interval to end",
                    policy.attempts,
                    Duration::from_nanos(policy.interval_ns)
                ),
            },
            next,
        );
    }
    let reason = format!(
        "Exceeded allowed attempts {} in interval {:?} and mode is \"fail\"",
        policy.attempts,
        Duration::from_nanos(policy.interval_ns)
    );
    (RestartDecision::Fail { reason }, t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(attempts: u32, mode: &str) -> RestartPolicy {
        RestartPolicy {
            attempts,
            interval_ns: 60_000_000_000,
            delay_ns: 1_000_000_000,
            mode: mode.into(),
            render_templates: false,
        }
    }
    fn code(c: i32) -> ExitResult {
        ExitResult {
            exit_code: Some(c),
            ..Default::default()
        }
    }

    #[test]
    fn restart_decision_table() {
        struct Case {
            name: &'static str,
            policy: RestartPolicy,
            job: JobType,
            exit: ExitResult,
            tracker: RestartTracker,
            now: i64,
            want: &'static str,
            want_count: u32,
        }
        let cases = [
            Case {
                name: "batch success completes",
                policy: policy(2, "fail"),
                job: JobType::Batch,
                exit: code(0),
                tracker: Default::default(),
                now: 1000,
                want: "complete",
                want_count: 0,
            },
            Case {
                name: "batch failure restarts",
                policy: policy(2, "fail"),
                job: JobType::Batch,
                exit: code(1),
                tracker: Default::default(),
                now: 1000,
                want: "restart",
                want_count: 1,
            },
            Case {
                name: "service success still restarts",
                policy: policy(2, "fail"),
                job: JobType::Service,
                exit: code(0),
                tracker: Default::default(),
                now: 1000,
                want: "restart",
                want_count: 1,
            },
            Case {
                name: "attempts exhausted with fail mode fails",
                policy: policy(2, "fail"),
                job: JobType::Service,
                exit: code(1),
                tracker: RestartTracker {
                    count: 2,
                    window_start_ms: 1000,
                },
                now: 2000,
                want: "fail",
                want_count: 2,
            },
            Case {
                name: "attempts exhausted with delay mode waits",
                policy: policy(2, "delay"),
                job: JobType::Service,
                exit: code(1),
                tracker: RestartTracker {
                    count: 2,
                    window_start_ms: 1000,
                },
                now: 2000,
                want: "restart",
                want_count: 0,
            },
            Case {
                name: "a new interval resets the count",
                policy: policy(2, "fail"),
                job: JobType::Service,
                exit: code(1),
                tracker: RestartTracker {
                    count: 2,
                    window_start_ms: 1000,
                },
                now: 1000 + 60_000,
                want: "restart",
                want_count: 1,
            },
            Case {
                name: "zero attempts fails at once",
                policy: policy(0, "fail"),
                job: JobType::Service,
                exit: code(3),
                tracker: Default::default(),
                now: 5,
                want: "fail",
                want_count: 0,
            },
            Case {
                name: "sysbatch success completes",
                policy: policy(0, "fail"),
                job: JobType::Sysbatch,
                exit: code(0),
                tracker: Default::default(),
                now: 5,
                want: "complete",
                want_count: 0,
            },
        ];
        for c in cases {
            let (d, t) = decide(&c.policy, c.job, &c.exit, c.tracker, c.now);
            let got = match d {
                RestartDecision::Restart { .. } => "restart",
                RestartDecision::Complete => "complete",
                RestartDecision::Fail { .. } => "fail",
            };
            assert_eq!(got, c.want, "{}", c.name);
            assert_eq!(t.count, c.want_count, "{}", c.name);
        }
    }

    #[test]
    fn delay_mode_waits_for_the_rest_of_the_interval() {
        let (d, _) = decide(
            &policy(1, "delay"),
            JobType::Service,
            &code(1),
            RestartTracker {
                count: 1,
                window_start_ms: 10,
            },
            20_010,
        );
        assert_eq!(
            d,
            RestartDecision::Restart {
                delay: Duration::from_millis(40_000),
                reason: d.clone().reason_text()
            }
        );
    }

    impl RestartDecision {
        fn reason_text(self) -> String {
            match self {
                RestartDecision::Restart { reason, .. } | RestartDecision::Fail { reason } => {
                    reason
                }
                RestartDecision::Complete => String::new(),
            }
        }
    }

    #[test]
    fn defaults_follow_nomad() {
        assert_eq!(default_policy(JobType::Service).attempts, 2);
        assert_eq!(default_policy(JobType::Batch).attempts, 3);
        assert_eq!(default_policy(JobType::Batch).mode, "fail");
    }
}
