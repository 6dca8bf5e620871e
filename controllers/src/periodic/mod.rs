//! The periodic loop's decisions: when a periodic job launches its next child, whether a tick is
//! skipped because a child still runs, which children are collected, and the status shown to
//! users (next launch, last launch, last success, last failure, skipped overlaps).
//!
//! Everything here is pure: the clock is passed in. [`decide`] looks at the parent job, its
//! children and the status recorded by the previous evaluation and returns a [`PeriodicPlan`];
//! the loop in [`run`] applies it.
//!
//! Rules (Nomad's behaviour where Nomad has one):
//! - a child is a batch job with id `<job>-periodic-<unix seconds of the tick>` (job ids cannot
//!   hold `/` because they are key segments; its display `name` is Nomad's
//!   `<job>/periodic-<unix seconds>`); the id is deterministic, and the child is created with a create-if-absent transaction, so a leader
//!   change or a restart in the middle of a launch never launches a tick twice;
//! - ticks missed while no leader ran (more than `missed_tick_grace_ms` in the past) are not
//!   launched; the schedule resumes at the next tick after now;
//! - `prohibit_overlap`: a tick while a child is still pending or running is skipped and counted;
//! - only the newest `history_limit` finished children are kept; older finished ones are
//!   collected, running ones never.

pub mod run;
pub mod schedule;

#[cfg(test)]
mod tests;

use nomos_api::{Job, JobStatus, PeriodicStatus};

pub use schedule::{Schedule, ScheduleError};

/// Label set on a child job naming its parent.
pub const PARENT_LABEL: &str = nomos_api::PERIODIC_PARENT_LABEL;
/// Label set on a child job with the Unix seconds of its tick.
pub const LAUNCH_LABEL: &str = "nomos/periodic-launch";

/// Cluster-wide settings of the periodic loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodicConfig {
    /// Finished children kept per periodic job (Nomad keeps a similar history).
    pub history_limit: usize,
    /// A tick found due later than this after its time counts as missed while down and is not
    /// launched.
    pub missed_tick_grace_ms: i64,
}

impl Default for PeriodicConfig {
    fn default() -> Self {
        PeriodicConfig {
            history_limit: 5,
            missed_tick_grace_ms: 60_000,
        }
    }
}

/// How a child job is doing, as far as the parent's status cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildState {
    /// Pending or running: blocks a tick under `prohibit_overlap`, never collected.
    Active,
    Succeeded,
    Failed,
}

/// One child of a periodic job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    pub id: String,
    /// The tick it was launched for (Unix ms).
    pub launch_ms: i64,
    pub state: ChildState,
    /// When it finished, if known (Unix ms).
    pub finished_ms: Option<i64>,
}

/// A child to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub tick_ms: i64,
    pub child_id: String,
}

/// What one evaluation of a periodic job decided.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeriodicPlan {
    /// Create this child (if absent).
    pub launch: Option<Launch>,
    /// A due tick skipped because a child was still active.
    pub skipped_tick_ms: Option<i64>,
    /// A due tick not launched because it was missed while no leader ran.
    pub missed_tick_ms: Option<i64>,
    /// Children to delete (beyond the history limit, all finished).
    pub collect: Vec<String>,
    /// The status to record on the parent.
    pub status: PeriodicStatus,
    /// When to evaluate again (the next tick), `None` when disabled.
    pub wake_at_ms: Option<i64>,
}

/// The child id for a tick: `<job>-periodic-<unix seconds>`.
pub fn child_id(parent: &str, tick_ms: i64) -> String {
    format!("{parent}-periodic-{}", tick_ms.div_euclid(1000))
}

/// The child's display name, as Nomad names children: `<job>/periodic-<unix seconds>`.
pub fn child_name(parent: &str, tick_ms: i64) -> String {
    format!("{parent}/periodic-{}", tick_ms.div_euclid(1000))
}

/// The tick (Unix ms) a child id names, if it is a child of `parent`.
pub fn child_tick(parent: &str, child: &str) -> Option<i64> {
    let rest = child.strip_prefix(parent)?.strip_prefix("-periodic-")?;
    rest.parse::<i64>().ok().map(|s| s * 1000)
}

/// Whether a job is a periodic parent whose schedule is active.
pub fn is_active_parent(job: &Job) -> bool {
    job.periodic.as_ref().is_some_and(|p| p.enabled) && !job.stop
}

/// The child job launched for `tick_ms`: the parent's spec without its `periodic` block, under
/// the child id, labelled with its parent and tick.
///
/// The periodic loop finds a parent's children by id ([`child_tick`]); the [`PARENT_LABEL`]
/// label names the parent for users and lets the collector find children whose parent is gone.
pub fn child_job(parent: &Job, tick_ms: i64) -> Job {
    let mut child = parent.clone();
    child.id = child_id(&parent.id, tick_ms);
    child.name = child_name(&parent.id, tick_ms);
    child.periodic = None;
    child.stop = false;
    child
        .labels
        .insert(PARENT_LABEL.to_string(), parent.id.clone());
    child.labels.insert(
        LAUNCH_LABEL.to_string(),
        tick_ms.div_euclid(1000).to_string(),
    );
    child
}

/// How a child is doing, from its job status (`None` before any controller wrote one).
pub fn child_state(status: Option<&JobStatus>) -> (ChildState, Option<i64>) {
    let Some(s) = status else {
        return (ChildState::Active, None);
    };
    if s.status != "dead" {
        return (ChildState::Active, None);
    }
    let failed = s.summary.values().any(|g| g.failed > 0 || g.lost > 0);
    let finished = (s.modified_at_ms > 0).then_some(s.modified_at_ms);
    (
        if failed {
            ChildState::Failed
        } else {
            ChildState::Succeeded
        },
        finished,
    )
}

/// Finished children beyond the newest `limit` (by tick), oldest first. Active children are never
/// returned and do not count against the limit.
pub fn children_to_collect(children: &[Child], limit: usize) -> Vec<String> {
    let mut done: Vec<&Child> = children
        .iter()
        .filter(|c| c.state != ChildState::Active)
        .collect();
    done.sort_by(|a, b| b.launch_ms.cmp(&a.launch_ms).then(b.id.cmp(&a.id)));
    let mut out: Vec<&Child> = done.into_iter().skip(limit).collect();
    out.sort_by(|a, b| a.launch_ms.cmp(&b.launch_ms).then(a.id.cmp(&b.id)));
    out.into_iter().map(|c| c.id.clone()).collect()
}

/// One evaluation of a periodic parent at `now_ms`.
///
/// `previous` is the status recorded by the last evaluation (its `next_launch_ms` is the tick the
/// loop is waiting for); `None` on first sight, which never launches a past tick.
pub fn decide(
    job: &Job,
    schedule: &Schedule,
    children: &[Child],
    previous: Option<&PeriodicStatus>,
    now_ms: i64,
    config: &PeriodicConfig,
) -> PeriodicPlan {
    let prev = previous.cloned().unwrap_or_default();
    let mut plan = PeriodicPlan {
        collect: children_to_collect(children, config.history_limit),
        status: prev.clone(),
        ..Default::default()
    };
    // Success and failure times survive the collection of the children that set them.
    for c in children {
        let at = c.finished_ms.unwrap_or(c.launch_ms);
        match c.state {
            ChildState::Succeeded => {
                plan.status.last_success_ms = plan.status.last_success_ms.max(Some(at))
            }
            ChildState::Failed => {
                plan.status.last_failure_ms = plan.status.last_failure_ms.max(Some(at))
            }
            ChildState::Active => {}
        }
        plan.status.last_launch_ms = plan.status.last_launch_ms.max(Some(c.launch_ms));
    }
    if !is_active_parent(job) {
        plan.status.next_launch_ms = None;
        return plan;
    }
    let prohibit_overlap = job.periodic.as_ref().is_some_and(|p| p.prohibit_overlap);

    // The tick being waited for, unless the schedule changed under it.
    let due = prev.next_launch_ms.filter(|t| schedule.is_tick(*t));
    let next = match due {
        None => schedule.next_after(now_ms),
        Some(t) if t > now_ms => Some(t),
        Some(t) => {
            let id = child_id(&job.id, t);
            if now_ms - t > config.missed_tick_grace_ms {
                // Missed while no leader ran: not launched, and neither is anything else that
                // fell due meanwhile (Nomad's behaviour).
                plan.missed_tick_ms = Some(t);
                return finish(plan, schedule.next_after(now_ms));
            } else if children.iter().any(|c| c.id == id) {
                // Launched before a restart cut the status write short: nothing to do again.
                plan.status.last_launch_ms = plan.status.last_launch_ms.max(Some(t));
            } else if prohibit_overlap && children.iter().any(|c| c.state == ChildState::Active) {
                plan.skipped_tick_ms = Some(t);
                plan.status.skipped_overlaps += 1;
            } else {
                plan.launch = Some(Launch {
                    tick_ms: t,
                    child_id: id,
                });
                plan.status.last_launch_ms = plan.status.last_launch_ms.max(Some(t));
            }
            schedule.next_after(t)
        }
    };
    finish(plan, next)
}

fn finish(mut plan: PeriodicPlan, next: Option<i64>) -> PeriodicPlan {
    plan.status.next_launch_ms = next;
    plan.wake_at_ms = next;
    plan
}

/// The launch `nctl job periodic force JOB` asks for: a child for `now_ms` (whole seconds),
/// unless one for that second exists or `prohibit_overlap` forbids it while a child is active.
pub fn force_launch(job: &Job, children: &[Child], now_ms: i64) -> Result<Launch, String> {
    if job.periodic.is_none() {
        return Err(format!("job `{}` is not periodic", job.id));
    }
    let tick = now_ms.div_euclid(1000) * 1000;
    let id = child_id(&job.id, tick);
    if children.iter().any(|c| c.id == id) {
        return Err(format!("child `{id}` already exists"));
    }
    if job.periodic.as_ref().is_some_and(|p| p.prohibit_overlap)
        && children.iter().any(|c| c.state == ChildState::Active)
    {
        return Err(format!(
            "job `{}` prohibits overlap and a child is still running",
            job.id
        ));
    }
    Ok(Launch {
        tick_ms: tick,
        child_id: id,
    })
}
