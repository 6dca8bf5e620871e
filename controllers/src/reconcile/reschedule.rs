//! When a failed allocation may be replaced: Nomad's `reschedule` policy (attempts within an
//! interval, delay functions capped at `max_delay`, unlimited) over an allocation's lineage.

use nomos_api::{JobType, ReschedulePolicy};

use super::model::ObservedAlloc;

/// `Nomad`'s defaults when a group has no `reschedule` block.
pub fn default_reschedule(job_type: JobType) -> ReschedulePolicy {
    match job_type {
        JobType::Batch | JobType::Sysbatch => ReschedulePolicy {
            attempts: 1,
            interval_ns: 24 * 3600 * 1_000_000_000,
            delay_ns: 5_000_000_000,
            delay_function: "constant".into(),
            max_delay_ns: 0,
            unlimited: false,
        },
        _ => ReschedulePolicy {
            attempts: 0,
            interval_ns: 0,
            delay_ns: 30_000_000_000,
            delay_function: "exponential".into(),
            max_delay_ns: 3600 * 1_000_000_000,
            unlimited: true,
        },
    }
}

/// Delay before reschedule attempt number `attempt` (0 for the first), in ms.
pub fn reschedule_delay_ms(policy: &ReschedulePolicy, attempt: u32) -> i64 {
    let base = (policy.delay_ns / 1_000_000) as i64;
    let d = match policy.delay_function.as_str() {
        "exponential" => base.saturating_mul(1i64.checked_shl(attempt.min(40)).unwrap_or(i64::MAX)),
        "fibonacci" => {
            let (mut a, mut b) = (base, base);
            for _ in 0..attempt.min(90) {
                (a, b) = (b, a.saturating_add(b));
            }
            a
        }
        _ => base,
    };
    let max = (policy.max_delay_ns / 1_000_000) as i64;
    if max > 0 {
        d.min(max)
    } else {
        d
    }
}

/// Most reschedule times an allocation carries when the policy has no interval (they then only
/// grow the delay, which `max_delay` caps long before this).
pub const MAX_RESCHEDULE_TIMES: usize = 64;

/// The decision for a failed allocation that may still be rescheduled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RescheduleAt {
    /// When the replacement may be placed.
    pub at_ms: i64,
    /// Reschedules in the interval window, this one included.
    pub attempts: u32,
    /// The lineage's reschedule times that are still inside the interval window; the caller
    /// appends the time of this reschedule.
    pub times_ms: Vec<i64>,
}

/// When the agent reports an allocation failed (its last task's finish, else the status'
/// modification), or `now_ms` when it reported no time.
pub(super) fn failed_at(alloc: &ObservedAlloc, now_ms: i64) -> i64 {
    alloc
        .status
        .as_ref()
        .map(|s| {
            let t = s
                .task_states
                .values()
                .map(|t| t.finished_at_ms)
                .max()
                .unwrap_or(0);
            t.max(s.modified_at_ms)
        })
        .filter(|t| *t > 0)
        .unwrap_or(now_ms)
}

/// When (and whether) a failed allocation may be rescheduled, or `None` when its attempts are
/// used up. The attempts are the reschedules of its lineage (`reschedule_times_ms`) that happened
/// within `interval` before the failure (every one when the interval is 0). An allocation written
/// before the times were recorded falls back to its `reschedule_attempts`, which count when it
/// was created within the interval.
pub fn reschedule_at(
    policy: &ReschedulePolicy,
    alloc: &ObservedAlloc,
    now_ms: i64,
) -> Option<RescheduleAt> {
    let a = &alloc.alloc;
    let failed = failed_at(alloc, now_ms);
    let interval_ms = (policy.interval_ns / 1_000_000) as i64;
    let in_window = |t: i64| interval_ms <= 0 || t > failed - interval_ms;
    let mut times: Vec<i64> = a
        .reschedule_times_ms
        .iter()
        .copied()
        .filter(|t| in_window(*t))
        .collect();
    if times.len() > MAX_RESCHEDULE_TIMES {
        times.drain(..times.len() - MAX_RESCHEDULE_TIMES);
    }
    let prior = if a.reschedule_times_ms.is_empty() && a.reschedule_attempts > 0 {
        if in_window(a.created_at_ms) {
            a.reschedule_attempts
        } else {
            0
        }
    } else {
        times.len() as u32
    };
    if !policy.unlimited && prior >= policy.attempts {
        return None;
    }
    Some(RescheduleAt {
        at_ms: failed + reschedule_delay_ms(policy, prior),
        attempts: prior + 1,
        times_ms: times,
    })
}
