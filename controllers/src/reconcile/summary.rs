//! What `nctl status` shows of a job: its groups' counts and its status word.

use indexmap::IndexMap;
use nomos_api::{ClientStatus, DesiredStatus, GroupSummary, Job, JobType};

use super::model::ObservedAlloc;

/// Per-group summary as `nctl status` shows it; `queued` is the number of placements that
/// could not be made.
pub fn summarize(
    job: &Job,
    allocs: &[ObservedAlloc],
    queued: &IndexMap<String, u32>,
) -> IndexMap<String, GroupSummary> {
    let mut out: IndexMap<String, GroupSummary> = job
        .groups
        .iter()
        .map(|g| {
            (
                g.name.clone(),
                GroupSummary {
                    queued: queued.get(&g.name).copied().unwrap_or(0),
                    ..Default::default()
                },
            )
        })
        .collect();
    for a in allocs {
        let Some(s) = out.get_mut(&a.alloc.task_group) else {
            continue;
        };
        match a.client_status() {
            ClientStatus::Pending if a.alloc.desired_status == DesiredStatus::Run => {
                s.starting += 1
            }
            ClientStatus::Pending => {}
            ClientStatus::Running => s.running += 1,
            ClientStatus::Failed => s.failed += 1,
            ClientStatus::Complete => s.complete += 1,
            ClientStatus::Lost => s.lost += 1,
            ClientStatus::Unknown => s.unknown += 1,
        }
    }
    out
}

/// `pending`, `running` or `dead`, as Nomad shows a job.
pub fn job_status_word(job: &Job, allocs: &[ObservedAlloc]) -> &'static str {
    let active = allocs
        .iter()
        .any(|a| !a.client_status().is_terminal() && a.alloc.desired_status == DesiredStatus::Run);
    let running = allocs
        .iter()
        .any(|a| a.client_status() == ClientStatus::Running);
    if job.stop {
        return if allocs
            .iter()
            .any(|a| a.client_status() == ClientStatus::Running)
        {
            "running"
        } else {
            "dead"
        };
    }
    if running
        || active
            && allocs
                .iter()
                .any(|a| a.client_status() == ClientStatus::Pending && a.status.is_some())
    {
        return "running";
    }
    if matches!(job.job_type, JobType::Batch | JobType::Sysbatch)
        && !allocs.is_empty()
        && job.groups.iter().all(|g| {
            allocs
                .iter()
                .filter(|a| {
                    a.alloc.task_group == g.name && a.client_status() == ClientStatus::Complete
                })
                .count() as u32
                >= g.count
        })
    {
        return "dead";
    }
    "pending"
}
