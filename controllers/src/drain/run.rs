//! The drain loop's executor: for every node whose spec asks for a drain, decide and apply: stop
//! what the plan stops (compare on the allocation's revision) and keep
//! `/nomos/drainstatus/<node>` up to date (draining, blocked with what has nowhere to go,
//! complete, cancelled).
//!
//! Who migrates: the jobs controller's reconcile places the replacements of service allocations
//! on draining nodes (`migrate.max_parallel` not yet healthy at a time) and stops each original
//! once its replacement is healthy; this loop applies the same health rule (whichever writes
//! first wins the compare), handles the deadline and the system allocations, and reports
//! replacements the jobs controller could not place as having nowhere to go.

use async_trait::async_trait;
use nomos_api::{DesiredStatus, JobType};

use super::{decide, drain_status_key, migrate_for, DrainAlloc, DrainState, DrainStatus};
use crate::health::HealthRule;
use crate::loops::ctx::{Ctx, Loop, LoopName, PassOutcome};
use crate::loops::view::{Part, View};
use crate::write::{alloc_update, encode, put, set_desired, unchanged};
use crate::ControllerError;

/// The drain loop: follows each draining node until it is empty.
pub struct DrainLoop;

#[async_trait]
impl Loop for DrainLoop {
    fn name(&self) -> LoopName {
        LoopName::Drain
    }

    fn reads(&self) -> &'static [Part] {
        &[
            Part::Versions,
            Part::JobStatus,
            Part::Allocs,
            Part::AllocStatus,
            Part::Nodes,
            Part::NodeSpecs,
            Part::Heartbeats,
            Part::DrainStatus,
        ]
    }

    fn wakes_on(&self) -> &'static [Part] {
        &[
            Part::Allocs,
            Part::AllocStatus,
            Part::NodeSpecs,
            Part::JobStatus,
        ]
    }

    async fn pass(&self, ctx: &Ctx, view: &View, now: i64) -> Result<PassOutcome, ControllerError> {
        pass(ctx, view, now).await
    }
}

pub async fn pass(ctx: &Ctx, view: &View, now: i64) -> Result<PassOutcome, ControllerError> {
    let mut outcome = PassOutcome::default();
    let mut wake =
        |t: i64| outcome.wake_at_ms = Some(outcome.wake_at_ms.map_or(t, |w: i64| w.min(t)));
    let by_prev = view.replacements_by_previous();
    for name in view.nodes.keys() {
        let old = view.drain_status.get(name);
        let Some(drain) = view.node_specs.get(name).and_then(|s| s.drain.clone()) else {
            // Cancelled: stop following; what moved stays moved.
            if let Some((o, s)) = old.and_then(|o| cancelled(&o.value, now).map(|s| (o, s))) {
                write_status(ctx, name, &s, o.mod_revision).await?;
            }
            continue;
        };
        let allocs: Vec<DrainAlloc> = view
            .allocs_on(name)
            .map(|a| {
                let job = view.job_of(&a.value);
                let migrate = job
                    .map(|j| migrate_for(j, &a.value.task_group))
                    .unwrap_or_else(super::default_migrate);
                let health = job
                    .and_then(|j| j.groups.iter().find(|g| g.name == a.value.task_group))
                    .map(|g| HealthRule::migration(g, &migrate))
                    .unwrap_or_default();
                DrainAlloc {
                    observed: view.observe(&a.value),
                    job_type: job.map(|j| j.job_type).unwrap_or(JobType::Service),
                    migrate,
                    health,
                    replacements: by_prev
                        .get(a.value.id.as_str())
                        .cloned()
                        .unwrap_or_default(),
                    replacements_away: by_prev
                        .get(a.value.id.as_str())
                        .into_iter()
                        .flatten()
                        .filter(|r| !view.heartbeats.contains(&r.alloc.node))
                        .map(|r| r.alloc.id.clone())
                        .collect(),
                }
            })
            .collect();
        let plan = decide(&drain, &allocs, now);
        let mut nowhere: Vec<String> = Vec::new();
        // The jobs controller migrates: what it cannot place shows in the job's status. Only
        // allocations this plan leaves on the node are reported.
        let stopping: Vec<&str> = plan.stop.iter().map(|s| s.alloc_id.as_str()).collect();
        for a in allocs.iter().filter(|a| {
            a.alloc.desired_status == DesiredStatus::Run
                && a.job_type == JobType::Service
                && !stopping.contains(&a.alloc.id.as_str())
        }) {
            let st = view
                .job_status
                .get(&(a.alloc.namespace.clone(), a.alloc.job_id.clone()));
            if let Some(why) = st.and_then(|s| s.value.placement_failures.get(&a.alloc.task_group))
            {
                nowhere.push(format!("{}: {why}", a.alloc.id));
            }
        }
        for s in &plan.stop {
            let Some(cur) = view.allocs.get(&s.alloc_id) else {
                continue;
            };
            let stopped = set_desired(&cur.value, DesiredStatus::Stop, &s.reason, now);
            let (compare, op) = alloc_update(&stopped, cur.mod_revision)?;
            ctx.commit(vec![compare], vec![op]).await?;
        }
        let state = if plan.complete {
            DrainState::Complete
        } else if !nowhere.is_empty() {
            DrainState::Blocked
        } else {
            DrainState::Draining
        };
        let status = DrainStatus {
            state,
            started_at_ms: drain.started_at_ms,
            deadline_ms: drain.deadline_ms,
            remaining: plan.remaining,
            migrating: plan.migrating,
            nowhere_to_go: nowhere,
            updated_at_ms: now,
        };
        let changed = old.is_none_or(|o| {
            DrainStatus {
                updated_at_ms: now,
                ..o.value.clone()
            } != status
        });
        if changed {
            if Some(status.state) != old.map(|o| o.value.state) {
                tracing::info!(node = %name, state = %status.state, remaining = status.remaining, "drain");
            }
            write_status(ctx, name, &status, old.map(|o| o.mod_revision).unwrap_or(0)).await?;
        }
        if let Some(t) = plan.wake_at_ms {
            wake(t);
        }
        if !plan.complete {
            // Follow the replacements' health.
            wake(now + 2_000);
        }
    }
    Ok(outcome)
}

/// The report of a drain whose request was removed (`node drain --disable`): `cancelled`, with
/// no deadline left and nothing migrating or waiting; `None` when it already says so. A drain
/// that had completed is cancelled too: the request it completed is gone, as Nomad's
/// `LastDrain` then records.
pub fn cancelled(old: &DrainStatus, now: i64) -> Option<DrainStatus> {
    (old.state != DrainState::Cancelled).then(|| DrainStatus {
        state: DrainState::Cancelled,
        deadline_ms: 0,
        migrating: 0,
        nowhere_to_go: Vec::new(),
        updated_at_ms: now,
        ..old.clone()
    })
}

async fn write_status(
    ctx: &Ctx,
    node: &str,
    status: &DrainStatus,
    mod_revision: i64,
) -> Result<(), ControllerError> {
    let k = drain_status_key(node);
    let value = encode(&k, status, "drain status")?;
    ctx.commit(vec![unchanged(&k, mod_revision)], vec![put(&k, value)])
        .await?;
    Ok(())
}
