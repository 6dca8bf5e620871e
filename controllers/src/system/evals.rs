//! The evaluation one system-loop pass records for a job it acted on, as a pure function of
//! the pass's plan ([`record`]): Nomos has no evaluation broker, so, as the jobs controller
//! does for its jobs, each pass that places or stops allocations of a system or sysbatch job
//! records a `complete` evaluation, and the allocations it places name it as their `EvalID`.
//! A pass that changes nothing records nothing (a group that cannot fit anywhere does not
//! write an evaluation each pass); the groups that could not be placed ride along as
//! `FailedTGAllocs` on the next one. The system loop makes no `blocked` evaluations: it looks
//! at every node again on every pass.

use std::collections::BTreeMap;

use nomos_api::eval::{
    eval_status, non_empty, triggers, AllocMetric, Evaluation, MAX_PLACED_ALLOCS,
};
use nomos_api::Job;

use super::{ObservedAlloc, SystemPlan};
use crate::jobs::evals::{new_record, JobFacts};

/// What the pass acted on, as Nomad names an evaluation's trigger: a stopped job is
/// `job-deregister`; the first placements of a version (no allocation of it yet) are
/// `job-register`; other placements and stops follow a node that joined or changed
/// (`node-update`). `None` when the pass changes nothing.
pub fn trigger(
    job: &Job,
    version: u64,
    plan: &SystemPlan,
    allocs: &[ObservedAlloc],
) -> Option<&'static str> {
    if plan.is_empty() {
        None
    } else if job.stop {
        Some(triggers::JOB_DEREGISTER)
    } else if !plan.place.is_empty() && allocs.iter().all(|a| a.alloc.job_version != version) {
        Some(triggers::JOB_REGISTER)
    } else {
        Some(triggers::NODE_UPDATE)
    }
}

/// The id of the evaluation of a pass over `job`: hashed from the job, the trigger, the pass's time (ms) and the allocations it places and stops, so a
/// replayed run (the simulation) records the same ids while two passes never share one.
pub fn eval_id(job: &Job, trigger: &str, plan: &SystemPlan, now_ms: i64) -> String {
    let (namespace, id) = (&job.namespace, &job.id);
    let mut key = format!("eval\u{0}{namespace}\u{0}{id}\u{0}{trigger}\u{0}{now_ms}");
    let acted = plan.place.iter().map(|n| &n.alloc.id);
    for id in acted.chain(plan.stop.iter().map(|s| &s.alloc_id)) {
        key.push('\u{0}');
        key.push_str(id);
    }
    super::uuid_shaped(&key)
}

/// The `complete` evaluation `id` of a pass triggered by `trigger`, carrying the allocations
/// it placed (`placed`, at most [`MAX_PLACED_ALLOCS`]) and its groups' placement failures.
pub fn record(
    job: &JobFacts,
    trigger: &str,
    plan: &SystemPlan,
    mut placed: Vec<String>,
    id: String,
    now_ns: i64,
) -> Evaluation {
    placed.truncate(MAX_PLACED_ALLOCS);
    let failures: BTreeMap<String, AllocMetric> = plan
        .unplaced
        .iter()
        .map(|(group, n)| {
            let metric = AllocMetric {
                nodes_exhausted: *n,
                coalesced_failures: n.saturating_sub(1),
                ..Default::default()
            };
            (group.clone(), metric)
        })
        .collect();
    let mut e = new_record(job, trigger, eval_status::COMPLETE, now_ns, &|| id.clone());
    e.failed_tg_allocs = non_empty(failures);
    e.placed_allocs = (!placed.is_empty()).then_some(placed);
    e
}
