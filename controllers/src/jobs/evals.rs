//! Which evaluation records one reconcile of a job makes, as a pure function of what the
//! reconcile did ([`Activity`]), the job's unfinished evaluations and the clock
//! ([`records`]); the controller writes the records with the reconcile's last commit.
//!
//! The rules, after Nomad's scheduler:
//! - every `pending` evaluation of the job (written by the API) is completed; the newest
//!   carries what the pass did (its allocations, its deployment, `FailedTGAllocs`);
//! - a pass that acted without a pending evaluation (a node lost, an allocation failed and
//!   rescheduled, a deployment step, a spec written straight into the store) records a
//!   `complete` one, triggered by what it acted on ([`trigger_of`]);
//! - while placements fail the job has one `blocked` evaluation, linked from the evaluation
//!   that failed (`BlockedEval`, and its `PreviousEval` back); once the job's placements
//!   succeed, it is completed (carrying what that pass placed, when no pending one does);
//! - a pass that changed nothing, with nothing pending, records nothing: an idle cluster
//!   writes no evaluation.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use nomos_api::eval::{
    eval_status, non_empty, triggers, AllocMetric, Evaluation, MAX_PLACED_ALLOCS,
};
use nomos_api::Deployment;

use crate::reconcile::Plan;
use crate::scheduler::PlacementFailure;

/// What one reconcile of a job did, as the evaluation records it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Activity {
    /// What triggered the work, when the pass changed something ([`trigger_of`]).
    pub trigger: Option<&'static str>,
    /// Allocations placed or changed.
    pub allocs: Vec<String>,
    /// The deployment the pass moved or belongs to.
    pub deployment_id: String,
    /// Per group: the last placement failure and how many failed.
    pub failures: BTreeMap<String, AllocMetric>,
    /// Per group: placements still to make.
    pub queued: BTreeMap<String, u32>,
}

/// The job's facts every record carries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobFacts {
    pub namespace: String,
    pub job_id: String,
    /// `service`, `batch`, ...
    pub kind: String,
    pub priority: i32,
    /// The spec key's mod revision.
    pub job_modify_index: i64,
}

/// What the pass changed, as Nomad would name its trigger; `None` for a pass that changed
/// nothing. `new_version`: the pass accepted a new version of the spec; `deployment_moved`:
/// its deployment changed as [`deployment_moved`] says.
pub fn trigger_of(
    plan: &Plan,
    new_version: bool,
    changed_allocs: bool,
    deployment_moved: bool,
) -> Option<&'static str> {
    let deployment_moved =
        deployment_moved || !plan.cancel_deployments.is_empty() || plan.revert_to.is_some();
    if new_version {
        Some(triggers::JOB_REGISTER)
    } else if !plan.reschedule.is_empty() {
        Some(triggers::ALLOC_FAILURE)
    } else if !plan.migrate.is_empty() {
        Some(triggers::NODE_DRAIN)
    } else if deployment_moved || !plan.destructive_update.is_empty() {
        Some(triggers::DEPLOYMENT_WATCHER)
    } else if !changed_allocs {
        None
    } else if plan.place.iter().any(|p| p.previous_alloc.is_some()) {
        Some(triggers::NODE_UPDATE)
    } else if plan.place.is_empty() && !plan.stop.is_empty() {
        Some(triggers::ALLOC_STOP)
    } else {
        Some(triggers::QUEUED_ALLOCS)
    }
}

/// Whether a deployment's new value is news that Nomad's deployment watcher evaluates: a new
/// deployment, a new status, a promotion, or allocations that turned healthy. The counters a
/// pass keeps up to date (placed, unhealthy, the progress deadline) are not: a pass that
/// only counts the allocations the register's pass placed records no evaluation.
pub fn deployment_moved(before: Option<&Deployment>, after: &Deployment) -> bool {
    let Some(before) = before else {
        return true;
    };
    before.status != after.status
        || after.groups.iter().any(|(name, g)| {
            before
                .groups
                .get(name)
                .is_none_or(|b| b.promoted != g.promoted || b.healthy < g.healthy)
        })
}

/// Nomad's `AllocMetric` for a group whose `failed` placements failed, the last as `f` says.
pub fn alloc_metric(f: &PlacementFailure, failed: u32) -> AllocMetric {
    let filtered: BTreeMap<String, u32> = f.filtered.clone().into_iter().collect();
    let exhausted: BTreeMap<String, u32> = f.exhausted.clone().into_iter().collect();
    AllocMetric {
        nodes_evaluated: f.nodes_evaluated,
        nodes_in_pool: f.nodes_evaluated,
        nodes_filtered: filtered.values().sum(),
        nodes_exhausted: exhausted.values().sum(),
        constraint_filtered: non_empty(filtered),
        dimension_exhausted: non_empty(exhausted),
        quota_exhausted: f.quota.clone().map(|q| vec![q]),
        coalesced_failures: failed.saturating_sub(1),
        ..Default::default()
    }
}

/// The per-group failures of a decision as `AllocMetric`s and queued counts.
pub fn failures_of(
    counts: &IndexMap<String, (u32, String)>,
    metrics: &IndexMap<String, PlacementFailure>,
) -> (BTreeMap<String, AllocMetric>, BTreeMap<String, u32>) {
    let mut failed = BTreeMap::new();
    let mut queued = BTreeMap::new();
    for (group, (n, _)) in counts {
        let metric = metrics
            .get(group)
            .map(|f| alloc_metric(f, *n))
            .unwrap_or_default();
        failed.insert(group.clone(), metric);
        queued.insert(group.clone(), *n);
    }
    (failed, queued)
}

/// The evaluation records one pass writes (see the module doc): `pending` and `blocked` are
/// the job's unfinished evaluations, `now_ns` the clock, `new_id` names new records.
pub fn records(
    job: &JobFacts,
    pending: &[Evaluation],
    blocked: Option<&Evaluation>,
    activity: &Activity,
    now_ns: i64,
    new_id: &dyn Fn() -> String,
) -> Vec<Evaluation> {
    let failing = !activity.failures.is_empty();
    let mut out: Vec<Evaluation> = pending.to_vec();
    out.sort_by(|a, b| a.create_time.cmp(&b.create_time).then(a.id.cmp(&b.id)));
    if out.is_empty() {
        let unblocking = blocked.is_some() && !failing;
        if let Some(trigger) = activity.trigger.filter(|_| !unblocking) {
            out.push(new_record(
                job,
                trigger,
                eval_status::PENDING,
                now_ns,
                new_id,
            ));
        }
    }
    let mut blocked_now = None;
    if failing {
        blocked_now = Some(match blocked {
            Some(b) => b.id.clone(),
            None => {
                let trigger = out.last().map_or(triggers::QUEUED_ALLOCS.to_string(), |e| {
                    e.triggered_by.clone()
                });
                let mut b = new_record(job, &trigger, eval_status::BLOCKED, now_ns, new_id);
                b.status_description = "created to place remaining allocations".into();
                b.previous_eval = out.last().map(|e| e.id.clone()).unwrap_or_default();
                b.queued_allocations = non_empty(activity.queued.clone());
                let id = b.id.clone();
                out.push(b);
                id
            }
        });
    }
    let worker = out.iter().rposition(|e| !e.is_blocked());
    for (i, e) in out.iter_mut().enumerate() {
        if e.is_blocked() {
            continue;
        }
        complete(e, job, now_ns);
        if Some(i) == worker {
            carry(e, activity);
            if let Some(b) = &blocked_now {
                e.blocked_eval = b.clone();
            }
        }
    }
    if let Some(b) = blocked.filter(|_| !failing) {
        let mut done = b.clone();
        complete(&mut done, job, now_ns);
        done.status_description.clear();
        if worker.is_none() {
            carry(&mut done, activity);
        }
        out.push(done);
    }
    out
}

/// The ID of the record in `records` (made by [`records`] with the job's `blocked` one) that
/// carries what the pass did: the allocations the pass writes name it as their `EvalID`.
pub fn carrier<'a>(records: &'a [Evaluation], blocked: Option<&Evaluation>) -> Option<&'a str> {
    let old_blocked = blocked.map(|b| b.id.as_str());
    let worker = records
        .iter()
        .rev()
        .find(|e| !e.is_blocked() && Some(e.id.as_str()) != old_blocked);
    worker
        .or_else(|| records.iter().find(|e| Some(e.id.as_str()) == old_blocked))
        .filter(|e| !e.is_blocked())
        .map(|e| e.id.as_str())
}

/// The records a purge writes: pending evaluations complete, the blocked one is canceled.
pub fn on_purge(
    job: &JobFacts,
    pending: &[Evaluation],
    blocked: Option<&Evaluation>,
    now_ns: i64,
) -> Vec<Evaluation> {
    let mut out: Vec<Evaluation> = pending.to_vec();
    for e in &mut out {
        complete(e, job, now_ns);
    }
    if let Some(b) = blocked {
        let mut b = b.clone();
        b.status = eval_status::CANCELED.into();
        b.status_description = "canceled because the job is purged".into();
        b.modify_time = now_ns;
        out.push(b);
    }
    out
}

/// The records of a pass that cannot run the job (its spec never parsed): pending
/// evaluations fail with the reason.
pub fn failed(pending: &[Evaluation], why: &str, now_ns: i64) -> Vec<Evaluation> {
    pending
        .iter()
        .map(|e| Evaluation {
            status: eval_status::FAILED.into(),
            status_description: why.chars().take(512).collect(),
            modify_time: now_ns,
            ..e.clone()
        })
        .collect()
}

/// A new evaluation `status` of the job, triggered by `trigger`, at `now_ns`.
pub(crate) fn new_record(
    job: &JobFacts,
    trigger: &str,
    status: &str,
    now_ns: i64,
    new_id: &dyn Fn() -> String,
) -> Evaluation {
    Evaluation {
        id: new_id(),
        namespace: job.namespace.clone(),
        priority: job.priority,
        kind: job.kind.clone(),
        triggered_by: trigger.to_string(),
        job_id: job.job_id.clone(),
        job_modify_index: job.job_modify_index,
        status: status.to_string(),
        create_time: now_ns,
        modify_time: now_ns,
        ..Default::default()
    }
}

fn complete(e: &mut Evaluation, job: &JobFacts, now_ns: i64) {
    e.status = eval_status::COMPLETE.into();
    e.modify_time = now_ns;
    if e.job_modify_index == 0 {
        e.job_modify_index = job.job_modify_index;
    }
}

/// What the pass did goes on the evaluation that did it.
fn carry(e: &mut Evaluation, activity: &Activity) {
    let mut allocs = activity.allocs.clone();
    allocs.truncate(MAX_PLACED_ALLOCS);
    e.placed_allocs = (!allocs.is_empty()).then_some(allocs);
    if !activity.deployment_id.is_empty() {
        e.deployment_id = activity.deployment_id.clone();
    }
    e.failed_tg_allocs = non_empty(activity.failures.clone());
    e.queued_allocations = non_empty(activity.queued.clone());
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::reconcile::{Place, Replace, Stop};

    fn stop() -> Stop {
        Stop {
            alloc_id: "old".into(),
            node: "n1".into(),
            reason: String::new(),
        }
    }

    fn job() -> JobFacts {
        JobFacts {
            namespace: "default".into(),
            job_id: "web".into(),
            kind: "service".into(),
            priority: 50,
            job_modify_index: 7,
        }
    }

    fn ids() -> impl Fn() -> String {
        let n = Cell::new(0);
        move || {
            n.set(n.get() + 1);
            format!("new{}", n.get())
        }
    }

    fn eval(id: &str, status: &str) -> Evaluation {
        Evaluation {
            id: id.into(),
            namespace: "default".into(),
            job_id: "web".into(),
            triggered_by: triggers::JOB_REGISTER.into(),
            status: status.into(),
            ..Default::default()
        }
    }

    fn placed(ids: &[&str]) -> Activity {
        Activity {
            trigger: Some(triggers::JOB_REGISTER),
            allocs: ids.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn failing() -> Activity {
        Activity {
            trigger: None,
            failures: BTreeMap::from([("api".into(), AllocMetric::default())]),
            queued: BTreeMap::from([("api".into(), 2)]),
            ..Default::default()
        }
    }

    /// `(id, status, blocked_eval, previous_eval, placed allocs)` of each record.
    fn shape(records: &[Evaluation]) -> Vec<(String, String, String, String, usize)> {
        records
            .iter()
            .map(|e| {
                (
                    e.id.clone(),
                    e.status.clone(),
                    e.blocked_eval.clone(),
                    e.previous_eval.clone(),
                    e.placed_allocs.as_ref().map_or(0, Vec::len),
                )
            })
            .collect()
    }

    fn row(
        id: &str,
        status: &str,
        blocked: &str,
        prev: &str,
        n: usize,
    ) -> (String, String, String, String, usize) {
        (id.into(), status.into(), blocked.into(), prev.into(), n)
    }

    #[test]
    fn each_reconcile_makes_the_records_nomad_would() {
        let pending = eval("p1", eval_status::PENDING);
        let blocked = eval("b0", eval_status::BLOCKED);
        type Case<'a> = (
            &'a str,
            Vec<Evaluation>,
            Option<&'a Evaluation>,
            Activity,
            Vec<(String, String, String, String, usize)>,
        );
        let cases: Vec<Case> = vec![
            (
                "an idle job with nothing pending writes nothing",
                vec![],
                None,
                Activity::default(),
                vec![],
            ),
            (
                "a pending evaluation completes with what the pass placed",
                vec![pending.clone()],
                None,
                placed(&["a1", "a2"]),
                vec![row("p1", "complete", "", "", 2)],
            ),
            (
                "a pending evaluation completes even when nothing changed",
                vec![pending.clone()],
                None,
                Activity::default(),
                vec![row("p1", "complete", "", "", 0)],
            ),
            (
                "work without a pending evaluation records a complete one",
                vec![],
                None,
                placed(&["a1"]),
                vec![row("new1", "complete", "", "", 1)],
            ),
            (
                "failed placements complete the evaluation and block a new one",
                vec![pending.clone()],
                None,
                failing(),
                vec![
                    row("p1", "complete", "new1", "", 0),
                    row("new1", "blocked", "", "p1", 0),
                ],
            ),
            (
                "failing again keeps the one blocked evaluation",
                vec![],
                Some(&blocked),
                failing(),
                vec![],
            ),
            (
                "a pending evaluation that fails again links the blocked one",
                vec![pending.clone()],
                Some(&blocked),
                failing(),
                vec![row("p1", "complete", "b0", "", 0)],
            ),
            (
                "placements that succeed complete the blocked evaluation",
                vec![],
                Some(&blocked),
                placed(&["a1"]),
                vec![row("b0", "complete", "", "", 1)],
            ),
            (
                "with a pending one too, the pending one carries the work",
                vec![pending.clone()],
                Some(&blocked),
                placed(&["a1"]),
                vec![
                    row("p1", "complete", "", "", 1),
                    row("b0", "complete", "", "", 0),
                ],
            ),
        ];
        for (case, pending, blocked, activity, want) in cases {
            let got = records(&job(), &pending, blocked, &activity, 100, &ids());
            assert_eq!(shape(&got), want, "{case}");
            // The carrier is the record that holds the pass's allocations.
            let holder = got
                .iter()
                .find(|e| e.placed_allocs.is_some())
                .map(|e| e.id.as_str());
            if holder.is_some() {
                assert_eq!(carrier(&got, blocked), holder, "{case}");
            }
            for e in &got {
                assert_eq!(e.modify_time, 100, "{case}");
                assert_eq!(e.job_id, "web", "{case}");
            }
        }
    }

    #[test]
    fn a_failed_evaluation_carries_the_schedulers_reasons() {
        let got = records(
            &job(),
            &[eval("p1", eval_status::PENDING)],
            None,
            &failing(),
            1,
            &ids(),
        );
        assert!(got[0]
            .failed_tg_allocs
            .as_ref()
            .unwrap()
            .contains_key("api"));
        assert_eq!(got[1].queued_allocations.as_ref().unwrap()["api"], 2);
        assert_eq!(got[1].triggered_by, triggers::JOB_REGISTER);
        assert_eq!(
            got[1].status_description,
            "created to place remaining allocations"
        );
    }

    #[test]
    fn scheduler_failures_become_alloc_metrics() {
        let f = PlacementFailure {
            nodes_evaluated: 5,
            filtered: [("constraint ${attr.os} = windows".to_string(), 3)].into(),
            exhausted: [("memory".to_string(), 2)].into(),
            ..Default::default()
        };
        let m = alloc_metric(&f, 4);
        assert_eq!(
            (m.nodes_evaluated, m.nodes_filtered, m.nodes_exhausted),
            (5, 3, 2)
        );
        assert_eq!(m.dimension_exhausted.unwrap()["memory"], 2);
        assert_eq!(m.constraint_filtered.unwrap().len(), 1);
        assert_eq!(m.coalesced_failures, 3);
        assert!(m.quota_exhausted.is_none());
    }

    #[test]
    fn triggers_name_what_the_pass_acted_on() {
        let replace = |previous: bool| Replace {
            stop: stop(),
            place: Place {
                previous_alloc: previous.then(|| "old".to_string()),
                ..Default::default()
            },
        };
        let mut plan = Plan::default();
        assert_eq!(trigger_of(&plan, false, false, false), None);
        assert_eq!(
            trigger_of(&plan, true, false, false),
            Some(triggers::JOB_REGISTER)
        );
        plan.reschedule.push(replace(true));
        assert_eq!(
            trigger_of(&plan, false, true, false),
            Some(triggers::ALLOC_FAILURE)
        );
        plan.reschedule.clear();
        plan.migrate.push(replace(true));
        assert_eq!(
            trigger_of(&plan, false, true, false),
            Some(triggers::NODE_DRAIN)
        );
        plan.migrate.clear();
        assert_eq!(
            trigger_of(&plan, false, false, true),
            Some(triggers::DEPLOYMENT_WATCHER)
        );
        plan.place.push(replace(true).place);
        assert_eq!(
            trigger_of(&plan, false, true, false),
            Some(triggers::NODE_UPDATE)
        );
        plan.place.clear();
        plan.stop.push(stop());
        assert_eq!(
            trigger_of(&plan, false, true, false),
            Some(triggers::ALLOC_STOP)
        );
    }

    #[test]
    fn only_a_deployments_news_is_evaluated_not_its_counters() {
        use nomos_api::{deployment_status as ds, DeploymentGroup};
        let group = |placed, healthy, promoted| DeploymentGroup {
            desired_total: 2,
            placed,
            healthy,
            promoted,
            ..Default::default()
        };
        let d = |status, g: DeploymentGroup| Deployment {
            status,
            groups: [("api".to_string(), g)].into_iter().collect(),
            ..Default::default()
        };
        let before = d(ds::RUNNING, group(0, 0, false));
        assert!(deployment_moved(None, &before), "a new deployment");
        assert!(!deployment_moved(
            Some(&before),
            &d(ds::RUNNING, group(2, 0, false))
        ));
        assert!(deployment_moved(
            Some(&before),
            &d(ds::RUNNING, group(2, 1, false))
        ));
        assert!(deployment_moved(
            Some(&before),
            &d(ds::RUNNING, group(0, 0, true))
        ));
        assert!(deployment_moved(
            Some(&before),
            &d(ds::FAILED, group(0, 0, false))
        ));
    }

    #[test]
    fn a_purge_completes_pending_and_cancels_blocked_evaluations() {
        let got = on_purge(
            &job(),
            &[eval("p1", eval_status::PENDING)],
            Some(&eval("b0", eval_status::BLOCKED)),
            9,
        );
        assert_eq!(
            shape(&got),
            vec![
                row("p1", "complete", "", "", 0),
                row("b0", "canceled", "", "", 0)
            ]
        );
        let f = failed(&[eval("p1", eval_status::PENDING)], "bad spec", 9);
        assert_eq!(
            (f[0].status.as_str(), f[0].status_description.as_str()),
            ("failed", "bad spec")
        );
    }
}
