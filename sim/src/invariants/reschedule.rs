//! Rescheduling: a failed allocation is replaced no sooner than its group's reschedule policy
//! allows (attempts, interval, delay and its function).

use nomos_api::{Allocation, ClientStatus, DesiredStatus, Job, ReschedulePolicy};

use super::{is_service, job_key, violation, Actor, Checker, Violation};
use crate::observe::Snapshot;

/// The group's reschedule policy, with Nomad's defaults.
pub fn reschedule_policy(job: &Job, group: &str) -> ReschedulePolicy {
    job.groups
        .iter()
        .find(|g| g.name == group)
        .and_then(|g| g.reschedule.clone())
        .or_else(|| job.reschedule.clone())
        .unwrap_or_else(|| nomos_controllers::reconcile::default_reschedule(job.job_type))
}

/// When the agent says the allocation's last task finished (its failure), if it did.
/// Both allocations run the same version of the same job (a job purged and created again
/// reuses version numbers with another spec).
fn same_spec(a: &Allocation, b: &Allocation) -> bool {
    a.job_version == b.job_version
        && (a.job_spec_hash.is_empty()
            || b.job_spec_hash.is_empty()
            || a.job_spec_hash == b.job_spec_hash)
}

pub(super) fn failed_at(s: &Snapshot, id: &str) -> Option<i64> {
    let st = s.alloc_status.get(id)?;
    st.task_states
        .values()
        .map(|t| t.finished_at_ms)
        .max()
        .filter(|t| *t > 0)
}

/// Reschedules of the allocation's lineage that count against `attempts` at its failure.
pub(super) fn attempts_used(policy: &ReschedulePolicy, a: &Allocation, failed: i64) -> u32 {
    let window = (policy.interval_ns / 1_000_000) as i64;
    a.reschedule_times_ms
        .iter()
        .filter(|t| window <= 0 || **t > failed - window)
        .count() as u32
}

/// Nomad's reschedule delay before attempt `n` (0-based), written out independently.
fn delay_ms(policy: &ReschedulePolicy, n: u32) -> i64 {
    let base = (policy.delay_ns / 1_000_000) as i64;
    let mut d = base;
    match policy.delay_function.as_str() {
        "exponential" => {
            for _ in 0..n {
                d = d.saturating_mul(2);
            }
        }
        "fibonacci" => {
            let (mut a, mut b) = (base, base);
            for _ in 0..n {
                (a, b) = (b, a.saturating_add(b));
            }
            d = a;
        }
        _ => {}
    }
    let max = (policy.max_delay_ns / 1_000_000) as i64;
    if max > 0 {
        d.min(max)
    } else {
        d
    }
}

pub(super) fn no_failed_allocation_is_replaced_sooner_than_its_reschedule_policy_allows(
    c: &Checker,
    cur: &Snapshot,
    _: &Actor,
    out: &mut Vec<Violation>,
) {
    const NAME: &str = "no_failed_allocation_is_replaced_sooner_than_its_reschedule_policy_allows";
    let prev = &c.prev;
    for n in cur
        .allocs
        .values()
        .filter(|n| !prev.allocs.contains_key(&n.id))
    {
        let job = job_key(n);
        let Some((_, j)) = cur.newest(&job) else {
            continue;
        };
        if !is_service(cur, &job) {
            continue;
        }
        // The failed allocation this one takes over: its named predecessor, or else a failed
        // allocation of the same version at the same index that nothing replaced yet (one that
        // failed while wanted and was stopped since counts too: stopping a failure and filling
        // its index is a reschedule; one stopped first, by a drain's deadline say, does not).
        let failed: Option<&Allocation> = match prev.allocs.get(&n.previous_alloc) {
            Some(p) => Some(p),
            None => prev.allocs_of(&job).find(|f| {
                f.task_group == n.task_group
                    && f.index == n.index
                    && same_spec(f, n)
                    && (f.desired_status == DesiredStatus::Run
                        || c.failed_while_wanted.contains(&f.id))
                    && prev.client_status(&f.id) == Some(ClientStatus::Failed)
                    && !prev.allocs.values().any(|x| x.previous_alloc == f.id)
            }),
        };
        // (A newer version replaces a failure at once, with a fresh reschedule budget; so does
        // a job purged and created again.)
        let Some(f) = failed
            .filter(|f| prev.client_status(&f.id) == Some(ClientStatus::Failed) && same_spec(f, n))
        else {
            continue;
        };
        let Some(failed_ms) = failed_at(prev, &f.id) else {
            continue;
        };
        let policy = reschedule_policy(j, &f.task_group);
        let used = attempts_used(&policy, f, failed_ms);
        if !policy.unlimited && used >= policy.attempts {
            violation(
                out,
                NAME,
                format!(
                    "{} replaced {} although its {} reschedule attempts were used",
                    n.id, f.name, policy.attempts
                ),
            );
            continue;
        }
        let earliest = failed_ms + delay_ms(&policy, used);
        if n.created_at_ms < earliest {
            violation(out, NAME, format!(
                "{} replaced failed {} ({}) at +{} ms after its failure; the policy allows it after +{} ms (attempt {})",
                n.id, f.id, f.name, n.created_at_ms - failed_ms, earliest - failed_ms, used + 1
            ));
        }
        // (A failure the servers stopped earlier is not replaced by name: its index is refilled
        // as a free one, no sooner than the policy allows, which the check above holds.)
        if n.previous_alloc != f.id && f.desired_status == DesiredStatus::Run {
            violation(
                out,
                NAME,
                format!(
                    "{} took over failed {} without naming it as its predecessor",
                    n.id, f.id
                ),
            );
        }
    }
}
