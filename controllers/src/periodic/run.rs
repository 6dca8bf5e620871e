//! The periodic loop's executor: for every periodic parent (newest accepted version, spec key
//! present), find its children among the job specs, decide, then create the child spec with a
//! create-if-absent transaction, delete collected children's specs (the jobs controller purges the
//! rest), and record the parent's [`nomos_api::PeriodicStatus`] in its job status (compare on the
//! status key's revision; the jobs controller keeps that field when it writes the status).

use async_trait::async_trait;
use nomos_api::{Job, JobStatus};
use nomos_store::{keys, Store};

use super::{child_job, child_state, child_tick, decide, force_launch, Child, Launch, Schedule};
use crate::loops::ctx::{Ctx, Loop, LoopName, PassOutcome};
use crate::loops::view::{JobKey, Part, View};
use crate::write::{absent, delete, encode, put, unchanged, Fence};
use crate::ControllerError;

/// The children of `parent` among the view's specs.
fn children(view: &View, ns: &str, parent: &str) -> Vec<Child> {
    view.specs
        .keys()
        .filter(|(n, _)| n == ns)
        .filter_map(|(n, id)| {
            let tick = child_tick(parent, id)?;
            let (state, finished_ms) = child_state(
                view.job_status
                    .get(&(n.clone(), id.clone()))
                    .map(|s| &s.value),
            );
            Some(Child {
                id: id.clone(),
                launch_ms: tick,
                state,
                finished_ms,
            })
        })
        .collect()
}

fn min_wake(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

/// The child spec as stored: canonical JSON of the child job.
fn child_spec(parent: &Job, launch: &Launch) -> Result<(String, Vec<u8>), ControllerError> {
    let child = child_job(parent, launch.tick_ms);
    let key = keys::job(&parent.namespace, &child.id);
    let value = encode(&key, &child, "job")?;
    Ok((key, value))
}

/// The periodic loop: launches and collects the children of periodic jobs.
pub struct PeriodicLoop;

#[async_trait]
impl Loop for PeriodicLoop {
    fn name(&self) -> LoopName {
        LoopName::Periodic
    }

    fn reads(&self) -> &'static [Part] {
        &[Part::Specs, Part::Versions, Part::JobStatus]
    }

    fn wakes_on(&self) -> &'static [Part] {
        &[Part::Specs, Part::Versions, Part::JobStatus]
    }

    async fn pass(&self, ctx: &Ctx, view: &View, now: i64) -> Result<PassOutcome, ControllerError> {
        pass(ctx, view, now).await
    }
}

pub async fn pass(ctx: &Ctx, view: &View, now: i64) -> Result<PassOutcome, ControllerError> {
    let mut outcome = PassOutcome::default();
    let parents: Vec<(JobKey, u64, Job)> = view
        .specs
        .keys()
        .filter_map(|k| view.current(k).map(|(v, j)| (k.clone(), v, j.clone())))
        .filter(|(_, _, j)| j.periodic.is_some())
        .collect();
    ctx.metrics.retain_periodic(
        &parents
            .iter()
            .map(|(k, _, _)| (k.0.clone(), k.1.clone()))
            .collect(),
    );
    for (key, version, job) in parents {
        let schedule = match Schedule::of(job.periodic.as_ref().expect("filtered on periodic")) {
            Ok(s) => s,
            Err(e) => {
                // Validation normally refuses this; report it and keep going with the others.
                tracing::warn!(job = %key.1, error = %e, "periodic schedule cannot be evaluated");
                continue;
            }
        };
        let kids = children(view, &key.0, &key.1);
        let old = view.job_status.get(&key);
        let plan = decide(
            &job,
            &schedule,
            &kids,
            old.and_then(|s| s.value.periodic.as_ref()),
            now,
            &ctx.config.periodic,
        );
        if let Some(launch) = &plan.launch {
            let (child_key, value) = child_spec(&job, launch)?;
            // Create-if-absent: a second leader or a re-run after a crash finds it and does nothing.
            ctx.commit(vec![unchanged(&child_key, 0)], vec![put(&child_key, value)])
                .await?;
            tracing::info!(job = %key.1, child = %launch.child_id, "periodic launch");
        }
        if let Some(t) = plan.skipped_tick_ms {
            tracing::info!(job = %key.1, tick_ms = t, "periodic tick skipped: a child is still running (prohibit_overlap)");
        }
        if let Some(t) = plan.missed_tick_ms {
            tracing::info!(job = %key.1, tick_ms = t, "periodic tick missed while no leader ran; not launched");
        }
        for id in &plan.collect {
            let k = keys::job(&key.0, id);
            let rev = view
                .specs
                .get(&(key.0.clone(), id.clone()))
                .map(|s| s.mod_revision)
                .unwrap_or(0);
            ctx.commit(vec![unchanged(&k, rev)], vec![delete(&k)])
                .await?;
        }
        let mut status = old.map(|s| s.value.clone()).unwrap_or_else(|| JobStatus {
            status: "running".into(),
            version,
            ..Default::default()
        });
        // The jobs controller leaves periodic parents to this loop (they have no allocations).
        let word = if job.stop { "dead" } else { "running" };
        let status_changed = status.status != word || status.version != version;
        status.status = word.into();
        status.version = version;
        if status_changed || status.periodic.as_ref() != Some(&plan.status) {
            status.periodic = Some(plan.status.clone());
            status.modified_at_ms = now;
            let k = keys::job_status(&key.0, &key.1);
            let value = encode(&k, &status, "job status")?;
            if !ctx
                .commit(
                    vec![unchanged(&k, old.map(|s| s.mod_revision).unwrap_or(0))],
                    vec![put(&k, value)],
                )
                .await?
            {
                outcome.wake_at_ms = min_wake(outcome.wake_at_ms, Some(now + 200));
            }
        }
        ctx.metrics.periodic(&key.0, &key.1, &plan.status);
        outcome.wake_at_ms = min_wake(outcome.wake_at_ms, plan.wake_at_ms);
        if plan.launch.is_some() || plan.skipped_tick_ms.is_some() || plan.missed_tick_ms.is_some()
        {
            // The next tick may already be due (a fast schedule): look again at once.
            outcome.wake_at_ms = min_wake(outcome.wake_at_ms, Some(now));
        }
    }
    Ok(outcome)
}

/// `nctl job periodic force JOB`: launches a child of `namespace/job` now (create-if-absent).
/// Returns the child's id.
pub async fn force(
    store: &dyn Store,
    namespace: &str,
    job: &str,
    now_ms: i64,
) -> Result<Result<String, String>, ControllerError> {
    let view = View::read(store, PeriodicLoop.reads()).await?;
    let key = (namespace.to_string(), job.to_string());
    let Some((_, parent)) = view.current(&key) else {
        return Ok(Err(format!(
            "job `{namespace}/{job}` has no accepted version"
        )));
    };
    let kids = children(&view, namespace, job);
    let launch = match force_launch(parent, &kids, now_ms) {
        Ok(l) => l,
        Err(e) => return Ok(Err(e)),
    };
    let (child_key, value) = child_spec(parent, &launch)?;
    // Not leader-fenced: a user's request; the create-if-absent compare keeps it single.
    let unfenced = Fence {
        store,
        leadership: None,
        controller: LoopName::Periodic.as_str(),
    };
    let created = unfenced
        .commit(vec![absent(&child_key)], vec![put(&child_key, value)])
        .await?;
    if !created {
        return Ok(Err(format!("child `{}` already exists", launch.child_id)));
    }
    Ok(Ok(launch.child_id))
}
