//! An allocation's status from its record (pure but for the clock): client status and
//! description from the task states, and health from the task states and, unless the group's
//! `update` block says `task_states` or `manual`, its service checks.

use crate::driver::now_ms;
use crate::plan;
use crate::state::AllocRecord;

/// Minimum healthy time of the allocation's group (its `update` block, else the job's).
fn min_healthy_ms(rec: &AllocRecord, default_ms: u64) -> u64 {
    let group = rec
        .job
        .groups
        .iter()
        .find(|g| g.name == rec.alloc.task_group);
    group
        .and_then(|g| g.update.as_ref())
        .or(rec.job.update.as_ref())
        .map(|u| u.min_healthy_time_ns / 1_000_000)
        .filter(|ms| *ms > 0)
        .unwrap_or(default_ms)
}

/// Recomputes `client_status` and `healthy` from the task states.
pub fn refresh_status(rec: &mut AllocRecord, default_min_healthy_ms: u64) {
    let now = now_ms();
    let status = plan::client_status(&rec.status.task_states);
    let mut health = plan::health(
        &rec.status.task_states,
        min_healthy_ms(rec, default_min_healthy_ms),
        now,
    );
    if let Some(group) = rec
        .job
        .groups
        .iter()
        .find(|g| g.name == rec.alloc.task_group)
    {
        let mode = group
            .update
            .as_ref()
            .or(rec.job.update.as_ref())
            .map(|u| u.health_check.as_str())
            .unwrap_or("checks");
        if mode != "task_states" && mode != "manual" {
            // A check with `on_update = "ignore"` does not count towards deployment health;
            // with `ignore_warnings` its warnings count as passing.
            let names: Vec<(String, bool)> = crate::checks::check_defs(group, &rec.alloc, "")
                .into_iter()
                .filter(|d| d.counts_for_health)
                .map(|d| (d.name, d.warning_is_healthy))
                .collect();
            health = crate::checks::combine_health(health, &names, &rec.status.checks);
        }
    }
    rec.status.alloc_id = rec.alloc.id.clone();
    rec.status.client_status = status;
    rec.status.client_description = match status {
        nomos_api::ClientStatus::Pending => "No tasks have started".into(),
        nomos_api::ClientStatus::Running => "Tasks are running".into(),
        nomos_api::ClientStatus::Complete => "All tasks have completed".into(),
        nomos_api::ClientStatus::Failed => "Failed tasks".into(),
        other => format!("{other:?}"),
    };
    if rec.max_run_exceeded && status.is_terminal() {
        // As Nomad reports it: stopped by the deadline, the allocation is complete.
        rec.status.client_status = nomos_api::ClientStatus::Complete;
        rec.status.client_description = plan::MAX_RUN_EXCEEDED.into();
    }
    // Once healthy, an allocation stays healthy until a task fails.
    rec.status.healthy = match (health, rec.status.healthy) {
        (Some(h), _) => Some(h),
        (None, Some(true)) if status == nomos_api::ClientStatus::Running => Some(true),
        (None, _) => None,
    };
}
