//! The garbage collector's decisions: which finished allocations, stopped jobs and old job versions
//! to delete. (Periodic children beyond their history limit are collected by the periodic loop.)
//!
//! [`plan`] is pure. Its one safety rule: nothing that is running or desired is ever collected.
//! - an allocation is collected once its agent reported it finished (complete, failed, lost) and
//!   it is no longer wanted: stopped by a controller, replaced by another allocation, or its job
//!   is stopped or gone; and it has been so for `alloc_gc_threshold_ms`. A finished batch
//!   allocation of a live job is kept: it is the record that the work is done;
//! - a job is purged (spec, status, versions, deployments, allocations) once it is stopped (or
//!   is a finished dispatched job, or a finished periodic child whose parent is gone), has no
//!   live allocation, and its status has not changed for `job_gc_threshold_ms`;
//! - job versions beyond the newest `job_versions_kept` are deleted, except the stable version
//!   and any version a kept allocation still names.
//!
//! - evaluations ([`plan_evals`]) once finished for `eval_gc_threshold_ms`, beyond the newest
//!   `evals_kept_per_job` finished ones of a job, and all of a job that is gone.
//!
//! `nctl system gc` forces a pass with every threshold at zero ([`GcConfig::forced`]).

pub mod run;

#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap, HashSet};

use nomos_api::eval::Evaluation;
use nomos_api::{ClientStatus, DesiredStatus, Job, JobStatus};

/// Thresholds of the collector (Nomad's defaults where Nomad has one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcConfig {
    /// Finished allocations older than this are collected (Nomad: 1 hour).
    pub alloc_gc_threshold_ms: i64,
    /// Stopped jobs older than this are purged (Nomad: 4 hours).
    pub job_gc_threshold_ms: i64,
    /// Versions kept per job (Nomad tracks 6).
    pub job_versions_kept: usize,
    /// How often the loop runs.
    pub interval_ms: i64,
    /// Finished evaluations older than this are collected (Nomad's `eval_gc_threshold`: 1
    /// hour).
    pub eval_gc_threshold_ms: i64,
    /// Evaluations kept per job: the oldest finished ones beyond this are collected.
    pub evals_kept_per_job: usize,
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            alloc_gc_threshold_ms: 3_600_000,
            job_gc_threshold_ms: 4 * 3_600_000,
            job_versions_kept: 6,
            interval_ms: 300_000,
            eval_gc_threshold_ms: 3_600_000,
            evals_kept_per_job: nomos_api::eval::EVALS_KEPT_PER_JOB,
        }
    }
}

impl GcConfig {
    /// The thresholds `nctl system gc` uses: collect everything collectible now.
    pub fn forced(&self) -> Self {
        GcConfig {
            alloc_gc_threshold_ms: 0,
            job_gc_threshold_ms: 0,
            eval_gc_threshold_ms: 0,
            ..self.clone()
        }
    }
}

pub use crate::observed::ObservedAlloc;

/// What the collector asks of an allocation.
impl ObservedAlloc {
    /// Done for good. A `lost` allocation still desired to run is not: its node is away, the
    /// task may still run there, and when the node returns it may be the one that is kept
    /// (`disconnect.reconcile`).
    fn finished(&self) -> bool {
        self.status.as_ref().is_some_and(|s| {
            s.client_status.is_terminal()
                && !(s.client_status == ClientStatus::Lost
                    && self.alloc.desired_status == DesiredStatus::Run)
        })
    }
    fn last_change_ms(&self) -> i64 {
        self.alloc
            .modified_at_ms
            .max(self.status.as_ref().map(|s| s.modified_at_ms).unwrap_or(0))
    }
    fn job_key(&self) -> (String, String) {
        (self.alloc.namespace.clone(), self.alloc.job_id.clone())
    }
}

/// A job as the collector sees it: its spec (if the key still exists), status and versions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GcJob {
    pub namespace: String,
    pub id: String,
    pub spec: Option<Job>,
    pub status: Option<JobStatus>,
    pub versions: Vec<u64>,
}

/// What to delete.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GcPlan {
    /// `(node, alloc id)`: delete the allocation and its status.
    pub allocs: Vec<(String, String)>,
    /// `(namespace, job)`: delete spec, status, versions and deployments.
    pub jobs: Vec<(String, String)>,
    /// `(namespace, job, version)`.
    pub versions: Vec<(String, String, u64)>,
    /// `(namespace, evaluation id)`.
    pub evals: Vec<(String, String)>,
}

impl GcPlan {
    pub fn is_empty(&self) -> bool {
        self.allocs.is_empty()
            && self.jobs.is_empty()
            && self.versions.is_empty()
            && self.evals.is_empty()
    }
}

/// The evaluations to collect: those of jobs that are gone or purged in this pass (`live`
/// holds the jobs that stay), finished ones older than `eval_gc_threshold_ms`, and the
/// oldest finished ones beyond `evals_kept_per_job` per job. Unfinished evaluations of live
/// jobs are kept. Returns `(namespace, id)`, sorted.
pub fn plan_evals(
    evals: &[Evaluation],
    live: &HashSet<(String, String)>,
    now_ms: i64,
    config: &GcConfig,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut finished_by_job: HashMap<(String, String), Vec<&Evaluation>> = HashMap::new();
    for e in evals {
        let job = (e.namespace.clone(), e.job_id.clone());
        let age_ms = now_ms - e.modify_time / 1_000_000;
        if !live.contains(&job) || (e.is_terminal() && age_ms >= config.eval_gc_threshold_ms) {
            out.push((e.namespace.clone(), e.id.clone()));
        } else if e.is_terminal() {
            finished_by_job.entry(job).or_default().push(e);
        }
    }
    for mut finished in finished_by_job.into_values() {
        finished.sort_by(|a, b| b.modify_time.cmp(&a.modify_time).then(b.id.cmp(&a.id)));
        for e in finished.into_iter().skip(config.evals_kept_per_job) {
            out.push((e.namespace.clone(), e.id.clone()));
        }
    }
    out.sort();
    out
}

/// One collection pass at `now_ms`.
pub fn plan(jobs: &[GcJob], allocs: &[ObservedAlloc], now_ms: i64, config: &GcConfig) -> GcPlan {
    let mut out = GcPlan::default();
    let by_key: HashMap<(String, String), &GcJob> = jobs
        .iter()
        .map(|j| ((j.namespace.clone(), j.id.clone()), j))
        .collect();
    let replaced: HashSet<&str> = allocs
        .iter()
        .map(|a| a.alloc.previous_alloc.as_str())
        .filter(|p| !p.is_empty())
        .collect();
    let job_wanted = |key: &(String, String)| {
        by_key
            .get(key)
            .and_then(|j| j.spec.as_ref())
            .is_some_and(|s| !s.stop)
    };

    let mut live_jobs: HashSet<(String, String)> = HashSet::new();
    let mut kept_versions: HashSet<(String, String, u64)> = HashSet::new();
    for a in allocs {
        let key = a.job_key();
        let live = a.alloc.desired_status == DesiredStatus::Run && !a.finished();
        if live {
            live_jobs.insert(key.clone());
        }
        let unwanted = a.alloc.desired_status != DesiredStatus::Run
            || replaced.contains(a.alloc.id.as_str())
            || !job_wanted(&key);
        let collectible =
            a.finished() && unwanted && now_ms - a.last_change_ms() >= config.alloc_gc_threshold_ms;
        if collectible {
            out.allocs.push((a.alloc.node.clone(), a.alloc.id.clone()));
        } else {
            kept_versions.insert((key.0, key.1, a.alloc.job_version));
            // A stopped allocation the agent has not confirmed is still on its node.
            if !a.finished() {
                live_jobs.insert(a.job_key());
            }
        }
    }

    for j in jobs {
        let key = (j.namespace.clone(), j.id.clone());
        let stopped = j.spec.as_ref().is_none_or(|s| s.stop)
            || is_finished_orphan(j, &job_wanted)
            || is_finished_dispatch(j);
        let quiet_since = j.status.as_ref().map(|s| s.modified_at_ms).unwrap_or(0);
        if stopped
            && !live_jobs.contains(&key)
            && now_ms - quiet_since >= config.job_gc_threshold_ms
        {
            out.jobs.push(key);
            continue;
        }
        let mut versions: Vec<u64> = j
            .versions
            .iter()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        versions.reverse();
        let stable = j.status.as_ref().and_then(|s| s.stable_version);
        let current = j.status.as_ref().map(|s| s.version);
        for v in versions.into_iter().skip(config.job_versions_kept) {
            if Some(v) == stable
                || Some(v) == current
                || kept_versions.contains(&(key.0.clone(), key.1.clone(), v))
            {
                continue;
            }
            out.versions.push((key.0.clone(), key.1.clone(), v));
        }
    }
    // A purged job takes its allocations with it; they are all finished by the rule above.
    let purged: HashSet<&(String, String)> = out.jobs.iter().collect();
    for a in allocs {
        if purged.contains(&a.job_key())
            && a.finished()
            && !out.allocs.iter().any(|(_, id)| id == &a.alloc.id)
        {
            out.allocs.push((a.alloc.node.clone(), a.alloc.id.clone()));
        }
    }
    out.allocs.sort();
    out.jobs.sort();
    out.versions.sort();
    out
}

/// A dispatched job that has finished (`dead`): it never runs again (Nomad collects finished
/// batch jobs), so it is collected like a stopped job.
fn is_finished_dispatch(j: &GcJob) -> bool {
    let dispatched = j.spec.as_ref().is_some_and(|s| s.dispatched.is_some());
    dispatched && j.status.as_ref().is_some_and(|s| s.status == "dead")
}

/// A periodic child that has finished (`dead`) and whose parent is stopped or gone: nothing will
/// ever look at it again, so it is collected like a stopped job.
fn is_finished_orphan(j: &GcJob, job_wanted: &dyn Fn(&(String, String)) -> bool) -> bool {
    let Some(parent) = j
        .spec
        .as_ref()
        .and_then(|s| s.labels.get(crate::periodic::PARENT_LABEL))
    else {
        return false;
    };
    let dead = j.status.as_ref().is_some_and(|s| s.status == "dead");
    dead && !job_wanted(&(j.namespace.clone(), parent.clone()))
}

/// Whether an allocation counts as running or desired (never collected).
pub fn is_protected(a: &ObservedAlloc) -> bool {
    a.alloc.desired_status == DesiredStatus::Run
        && !matches!(
            a.status.as_ref().map(|s| s.client_status),
            Some(ClientStatus::Complete | ClientStatus::Failed)
        )
}
