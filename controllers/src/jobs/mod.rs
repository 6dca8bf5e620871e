//! The jobs controller (the "deployment" loop) for service and batch jobs.
//!
//! Per job key `(namespace, job)`:
//! 1. read the spec at `/nomos/jobs/<ns>/<job>` and parse it; a spec that changed since the last
//!    accepted one (its key's mod revision is newer than `observed_revision` in the status, and
//!    its content differs from the newest version) becomes the immutable version
//!    `/nomos/jobversions/<ns>/<job>/<ver>`; an invalid spec is reported in the status and the
//!    last good version keeps running;
//! 2. run the pure [`crate::reconcile::reconcile`] against the indexed [`world::World`], place
//!    its placements with [`crate::scheduler::place`] on the shared cluster snapshot;
//! 3. commit allocations in batched transactions, each guarded per node by a compare over the
//!    node's allocation prefix (`mod_revision < guard + 1`) and fenced by the leader's lease, so
//!    a concurrent writer can never over-commit a node; on conflict, catch up and recompute,
//!    with a retry bound that resets when a batch committed; one commit per node is in flight
//!    in a process, commits to disjoint nodes overlap;
//! 4. write the deployment and `/nomos/jobstatus/<ns>/<job>` (status, version, per-group
//!    summary, placement failures, errors). A new version rides on the first allocation
//!    transaction and the deployment and status on the last, so a job that fits one
//!    transaction costs one round trip.
//!
//! 5. record the pass as evaluations ([`evals`]): the job's pending evaluations complete, a
//!    pass that acted without one records a complete one, failed placements keep a blocked
//!    one; these ride on the last transaction too.
//!
//! Deleting the spec key purges the job: its allocations are stopped, deleted once their agent
//! reports them terminal (or their node is gone), then its versions, deployments and status go.
//! System, sysbatch, periodic and parameterized jobs get versions here but their allocations
//! belong to other loops.

pub(crate) mod compact;
pub mod decide;
pub mod evals;
pub mod world;

#[cfg(test)]
mod eval_tests;
#[cfg(test)]
mod quota_tests;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indexmap::IndexMap;
use nomos_api::{Allocation, Deployment, DesiredStatus, Job, JobStatus, JobType};
use nomos_store::{keys, Compare, KeySelector, RangeOptions, Store, Txn, TxnOp, TxnOpResponse};

use crate::reconcile::{self, ObservedAlloc, Plan};
use crate::runtime::election::Leadership;
use crate::runtime::metrics::{ControllerLabel, Metrics};
use crate::runtime::queue::{Backoff, WorkQueue};
use crate::runtime::reflector::{Reflector, ReflectorHandle};
use crate::runtime::runner::{self, Action};
use crate::scheduler::SchedulerConfig;
use crate::write::{absent, encode, node_guard, put, set_desired, unchanged, Fence};
use crate::ControllerError;
use decide::DecisionInput;
use evals::{Activity, JobFacts};
use nomos_api::eval::Evaluation;
use world::{JobKey, Part, World, WorldSink};

/// The status error of a job whose namespace does not exist (Nomad refuses such a job at
/// submission; a spec written straight into the store is reported here instead).
pub fn missing_namespace_error(namespace: &str) -> String {
    format!(
        "namespace {namespace:?} does not exist: the job is not run until it is created \
         (`nctl namespace apply {namespace}`)"
    )
}

/// Settings of the jobs controller.
#[derive(Clone)]
pub struct JobsConfig {
    pub scheduler: SchedulerConfig,
    /// Concurrent reconciles (of different jobs); their commits overlap when they write
    /// different nodes.
    pub workers: usize,
    /// Every job is looked at again after this long even without events.
    pub resync: Duration,
    /// Puts per transaction (the store allows 128 operations).
    pub batch_ops: usize,
    /// Clock in Unix milliseconds (tests pass their own).
    pub clock: Arc<dyn Fn() -> i64 + Send + Sync>,
    /// New allocation ids (random UUIDs; the simulation passes a seeded source).
    pub ids: Arc<dyn Fn() -> String + Send + Sync>,
    /// How long agents' reports that change no decision wait to be reconciled together
    /// ([`world::STATUS_COALESCE`]; zero reconciles each at once, as the simulation does: it
    /// runs reconciles on its own clock).
    pub status_coalesce: Duration,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            scheduler: SchedulerConfig::default(),
            workers: 4,
            resync: Duration::from_secs(300),
            batch_ops: 100,
            clock: Arc::new(now_ms),
            ids: Arc::new(|| uuid::Uuid::new_v4().to_string()),
            status_coalesce: world::STATUS_COALESCE,
        }
    }
}

pub use nomos_api::now_ms;

pub const NAME: &str = "jobs";

/// Minimum time between two status writes that only change the allocation counters.
pub const STATUS_MIN_INTERVAL_MS: i64 = 1000;

/// State shared by the workers of one running jobs controller.
pub struct Ctx {
    store: Arc<dyn Store>,
    /// Nodes a placement commit of this process is writing: one commit in flight per node, so
    /// every commit sees the per-node guard revisions of the previous one on its nodes and this
    /// process never conflicts with itself, while commits to disjoint nodes overlap.
    in_flight: Mutex<HashSet<String>>,
    /// Signalled when a commit releases its nodes.
    released: tokio::sync::Notify,
    pub world: Arc<Mutex<World>>,
    config: JobsConfig,
    metrics: Option<(Metrics, ControllerLabel)>,
    leadership: Option<Leadership>,
}

/// What one reconcile wrote (for tests and metrics).
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub placed: usize,
    pub failed: usize,
    pub action: Option<Action>,
}

/// Nodes claimed by one commit; released (and waiters woken) when dropped.
struct NodeClaim<'a> {
    ctx: &'a Ctx,
    nodes: Vec<String>,
}

impl Drop for NodeClaim<'_> {
    fn drop(&mut self) {
        let mut f = self.ctx.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        for n in &self.nodes {
            f.remove(n);
        }
        drop(f);
        self.ctx.released.notify_waiters();
    }
}

/// A write a placement commit carries along (job version, deployment, job status).
struct Write {
    key: String,
    value: Vec<u8>,
    kind: Part,
    /// A compare the write needs (the version's create-only guard).
    compare: Option<Compare>,
}

/// Writes for the first and the last transaction of a commit, and the evaluation records
/// that ride on the last one when it has room (else they follow in their own).
#[derive(Default)]
struct Extra {
    first: Vec<Write>,
    last: Vec<Write>,
    evals: Vec<Write>,
}

impl Extra {
    fn is_empty(&self) -> bool {
        self.first.is_empty() && self.last.is_empty() && self.evals.is_empty()
    }
}

/// Most operations one commit transaction carries, below the store's limit
/// ([`nomos_store::validate::MAX_TXN_OPS`]) with room for the fence.
const TXN_OPS_BUDGET: usize = 120;

fn conflict(nodes: Vec<String>) -> ControllerError {
    ControllerError::CommitConflict { nodes, attempts: 0 }
}

impl Ctx {
    fn lock(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The controller's writes, fenced by its leadership.
    fn fence(&self) -> Fence<'_> {
        Fence {
            store: &*self.store,
            leadership: self.leadership.as_ref(),
            controller: NAME,
        }
    }

    /// After a commit conflict: reads what the concurrent write may have changed (the
    /// conflicting nodes' allocations, the job's versions and deployments) straight from the
    /// store into the world, so the next attempt decides on it without waiting for the
    /// watches (whose caches move only with events under their own prefix).
    async fn refresh(&self, jk: &JobKey, nodes: &[String]) -> Result<(), ControllerError> {
        for n in nodes {
            let r = self
                .store
                .range(
                    KeySelector::prefix(keys::allocs_prefix(Some(n))),
                    RangeOptions::default(),
                )
                .await
                .map_err(ControllerError::store("range"))?;
            let mut w = self.lock();
            let mut present = HashSet::new();
            for kv in &r.kvs {
                if let Ok(a) = serde_json::from_slice::<Allocation>(&kv.value) {
                    present.insert(a.id.clone());
                    w.upsert_alloc(a, kv.mod_revision);
                }
            }
            let gone: Vec<Arc<str>> = w
                .allocs_by_node
                .get(n.as_str())
                .into_iter()
                .flatten()
                .filter(|id| !present.contains(&***id))
                .cloned()
                .collect();
            for id in gone {
                w.remove_alloc(&id, r.revision);
            }
            w.node_guard.insert(n.clone(), r.revision);
        }
        for (kind, prefix) in [
            (Part::Versions, keys::job_versions_prefix(&jk.0, &jk.1)),
            (
                Part::Deployments,
                format!("{}{}/{}/", keys::DEPLOYMENTS_PREFIX, jk.0, jk.1),
            ),
        ] {
            let r = self
                .store
                .range(KeySelector::prefix(prefix), RangeOptions::default())
                .await
                .map_err(ControllerError::store("range"))?;
            let mut w = self.lock();
            for kv in &r.kvs {
                let Some(key) = kv.key_utf8_or_skip() else {
                    continue;
                };
                w.apply(kind, key, Some(&kv.value), kv.mod_revision);
            }
        }
        Ok(())
    }

    /// Makes the view of the job's spec and evaluations one instant's
    /// ([`World::consistent_for`]): when one of the two watches leads the other, both are
    /// read straight from the store in one transaction. Without it, a register (spec and
    /// pending evaluation in one transaction) could be reconciled from the spec alone, the
    /// pass recording an evaluation of its own, and the pending one completed by a later
    /// pass: two evaluations for one register.
    async fn catch_up(&self, jk: &JobKey) -> Result<(), ControllerError> {
        if self.lock().consistent_for(jk) {
            return Ok(());
        }
        let txn = Txn::new().and_then([
            TxnOp::Range(
                KeySelector::key(keys::job(&jk.0, &jk.1)),
                RangeOptions::default(),
            ),
            TxnOp::Range(
                KeySelector::prefix(keys::evals_prefix(Some(&jk.0))),
                RangeOptions::default(),
            ),
        ]);
        let resp = self
            .store
            .txn(txn)
            .await
            .map_err(ControllerError::store("range"))?;
        let mut ranges = resp.responses.into_iter().filter_map(|r| match r {
            TxnOpResponse::Range(r) => Some(r),
            _ => None,
        });
        let (Some(spec), Some(evals)) = (ranges.next(), ranges.next()) else {
            return Ok(());
        };
        self.lock()
            .absorb_read(jk, spec.kvs.first(), &evals.kvs, resp.revision);
        Ok(())
    }

    /// Reconciles one job with retries on commit conflicts (the bound resets on progress).
    pub async fn reconcile(self: &Arc<Self>, jk: JobKey) -> Result<Action, ControllerError> {
        let mut attempts = 0u32;
        let mut total = 0u32;
        loop {
            match self.reconcile_once(&jk).await {
                Ok(o) => return Ok(o.action.unwrap_or(Action::AwaitChange)),
                Err((ControllerError::CommitConflict { nodes, .. }, progressed)) => {
                    if let Some((m, l)) = &self.metrics {
                        m.commit_conflicts.get_or_create(l).inc();
                    }
                    attempts = if progressed { 0 } else { attempts + 1 };
                    total += 1;
                    if attempts >= 5 || total >= 50 {
                        return Err(ControllerError::CommitConflict {
                            nodes,
                            attempts: total,
                        });
                    }
                    self.refresh(&jk, &nodes).await?;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// One pass: accept the spec, plan, place, commit, report. The error carries whether some
    /// batch committed before it failed.
    pub async fn reconcile_once(
        self: &Arc<Self>,
        jk: &JobKey,
    ) -> Result<Outcome, (ControllerError, bool)> {
        let now = (self.config.clock)();
        self.catch_up(jk).await.map_err(|e| (e, false))?;
        let spec = self.lock().specs.get(jk).cloned();
        let Some(spec) = spec else {
            return self.purge(jk, now).await.map_err(|e| (e, false));
        };
        let Accepted {
            versions,
            mut status,
            new_version,
        } = self.accept(jk, &spec).await.map_err(|e| (e, false))?;
        let Some((&version, job)) = versions.last_key_value() else {
            status.status = "pending".into();
            let (pending, _) = self.lock().unfinished_evals(jk);
            let why = format!("the job's spec cannot run: {}", status.errors.join("; "));
            self.write_evals(evals::failed(&pending, &why, now_ns(now)))
                .await
                .map_err(|e| (e, false))?;
            self.write_status(jk, status, now)
                .await
                .map_err(|e| (e, false))?;
            return Ok(Outcome::default());
        };
        let job = job.clone();
        if let Some(v) = new_version {
            let at = self.submit_time(jk, now);
            status.submit_times_ns.insert(v, at);
            status
                .submit_times_ns
                .retain(|v, _| versions.contains_key(v));
        }
        if !matches!(job.job_type, JobType::Service | JobType::Batch)
            || job.periodic.is_some()
            || job.parameterized.is_some()
        {
            // The loops run it; this controller only records its versions (and completes the
            // evaluations asked of it).
            if new_version == Some(version) {
                self.write_version(jk, version, &job)
                    .await
                    .map_err(|e| (e, false))?;
                // Only the submit time: the job's own loop writes the rest of its status.
                let mut own = self.lock().job_status.get(jk).cloned().unwrap_or_default();
                own.submit_times_ns = status.submit_times_ns.clone();
                self.write_status(jk, own, now)
                    .await
                    .map_err(|e| (e, false))?;
            }
            let facts = job_facts(jk, &job, spec.mod_revision);
            let (pending, _) = self.lock().unfinished_evals(jk);
            let records = evals::records(
                &facts,
                &pending,
                None,
                &evals::Activity::default(),
                now_ns(now),
                &*self.config.ids,
            );
            self.write_evals(records).await.map_err(|e| (e, false))?;
            return Ok(Outcome::default());
        }
        let version_write = match new_version {
            Some(v) => Some(self.version_op(jk, v, &job).map_err(|e| (e, false))?),
            None => None,
        };

        // Decide and place, under the world lock (pure, no awaits).
        let Decided {
            plan,
            mut new_allocs,
            mut changed,
            failures,
            failure_metrics,
            guards,
            existing,
        } = self.decide(jk, &job, version, &versions, status.stable_version, now);
        let after = Committed {
            plan: &plan,
            existing,
            changed: &changed,
            new_allocs: &new_allocs,
            failures: &failures,
        };
        let mut status = self.status_after(jk, &job, version, status, after);
        if plan.revert_to.is_some() {
            // The revert is written with this plan as the next version.
            let next = versions.keys().last().map_or(0, |v| v + 1);
            status.submit_times_ns.insert(next, now_ns(now));
        }
        let (status_write, deferred) = self.status_op(jk, status, now).map_err(|e| (e, false))?;
        let mut last = self
            .deployment_writes(jk, &plan, &versions)
            .map_err(|e| (e, false))?;
        last.extend(status_write);
        let deployment_moved = plan.deployment.as_ref().is_some_and(|d| {
            let w = self.lock();
            let before = w.deployments.get(jk).and_then(|m| m.get(&d.id));
            evals::deployment_moved(before, d)
        });
        let mut activity = activity_of(
            &plan,
            (new_version.is_some(), deployment_moved),
            &new_allocs,
            &changed,
            &failures,
            &failure_metrics,
        );
        if job.labels.contains_key(crate::periodic::PARENT_LABEL)
            && activity.trigger == Some(nomos_api::eval::triggers::JOB_REGISTER)
        {
            // A periodic job's launch, as Nomad names it.
            activity.trigger = Some(nomos_api::eval::triggers::PERIODIC_JOB);
        }
        let (pending, blocked) = self.lock().unfinished_evals(jk);
        let records = evals::records(
            &job_facts(jk, &job, spec.mod_revision),
            &pending,
            blocked.as_ref(),
            &activity,
            now_ns(now),
            &*self.config.ids,
        );
        // Nomad's `EvalID`: what the pass places or updates names the evaluation that records
        // it (a stop leaves it as it was, as in Nomad).
        if let Some(id) = evals::carrier(&records, blocked.as_ref()) {
            let updated = changed
                .iter_mut()
                .filter(|a| a.desired_status == DesiredStatus::Run);
            for a in new_allocs.iter_mut().chain(updated) {
                a.eval_id = id.to_string();
            }
        }
        let extra = Extra {
            first: version_write.into_iter().collect(),
            last,
            evals: eval_writes(&records).map_err(|e| (e, false))?,
        };
        let placed = new_allocs.len();
        self.commit(new_allocs, changed, guards, extra, now).await?;
        let failed = failures.values().map(|(n, _)| *n as usize).sum();
        {
            let mut w = self.lock();
            if failures.is_empty() {
                w.blocked.remove(jk);
            } else {
                w.blocked.insert(jk.clone());
            }
        }
        if let Some((m, l)) = &self.metrics {
            m.placements.get_or_create(l).inc_by(placed as u64);
            m.placement_failures.get_or_create(l).inc_by(failed as u64);
        }
        let mut wait = match plan.next_follow_up() {
            Some(t) => Duration::from_millis((t - now).max(10) as u64).min(self.config.resync),
            None => self.config.resync,
        };
        if deferred {
            wait = wait.min(Duration::from_millis(STATUS_MIN_INTERVAL_MS as u64));
        }
        Ok(Outcome {
            placed,
            failed,
            action: Some(Action::RequeueAfter(wait)),
        })
    }

    /// When the job's newest version was submitted (Nomad's `SubmitTime`): the time of the
    /// newest pending register evaluation (written by the API with the spec), else now.
    fn submit_time(&self, jk: &JobKey, now: i64) -> i64 {
        let (pending, _) = self.lock().unfinished_evals(jk);
        pending
            .iter()
            .filter(|e| e.triggered_by == nomos_api::eval::triggers::JOB_REGISTER)
            .map(|e| e.create_time)
            .max()
            .filter(|t| *t > 0)
            .unwrap_or_else(|| now_ns(now))
    }

    /// Reads the stored spec against the job's accepted versions: a spec that parses and
    /// differs from the newest version (and changed since it was last looked at) becomes the
    /// next version; one that does not parse leaves the versions as they are and says why in
    /// the status. A job created again before its purge ended is forgotten first (its
    /// allocations were stopped when the purge began), so nothing of it runs again.
    async fn accept(
        &self,
        jk: &JobKey,
        spec: &world::SpecEntry,
    ) -> Result<Accepted, ControllerError> {
        let spec_key = keys::job(&jk.0, &jk.1);
        let (mut versions, status) = {
            let w = self.lock();
            (
                w.versions.get(jk).cloned().unwrap_or_default(),
                w.job_status.get(jk).cloned(),
            )
        };
        let mut status = status.unwrap_or_default();
        if status.purging {
            self.forget(jk).await?;
            versions.clear();
            status = JobStatus::default();
        }
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let spec_changed = spec.mod_revision > status.observed_revision;
        // A new version is written with the job's first commit (one round trip less).
        let mut new_version: Option<u64> = None;
        match nomos_api::parse_stored_spec(&spec_key, &spec.raw) {
            Ok(parsed) => {
                warnings = parsed.warnings.iter().map(|d| d.to_string()).collect();
                let missing_namespace = !self.lock().namespace_exists(&jk.0);
                match parsed.jobs.into_iter().next() {
                    Some(_) if missing_namespace => {
                        // Not accepted, and not marked observed: once the namespace is
                        // created, the same spec is accepted.
                        errors.push(missing_namespace_error(&jk.0));
                        status.errors = errors;
                        status.warnings = warnings;
                        return Ok(Accepted {
                            versions,
                            status,
                            new_version: None,
                        });
                    }
                    Some(job) => {
                        let differs = versions.last_key_value().is_none_or(|(_, j)| *j != job);
                        if differs && (spec_changed || versions.is_empty()) {
                            let v = versions.last_key_value().map(|(v, _)| v + 1).unwrap_or(0);
                            new_version = Some(v);
                            versions.insert(v, job);
                            status.spec_version = Some(v);
                        } else if !differs && (spec_changed || status.spec_version.is_none()) {
                            // The same spec again: it is the newest version.
                            status.spec_version = versions.last_key_value().map(|(v, _)| *v);
                        }
                    }
                    None => errors.push(format!("{spec_key}: the value holds no job")),
                }
            }
            Err(diags) => errors = diags.iter().map(|d| d.to_string()).collect(),
        }
        status.observed_revision = spec.mod_revision;
        status.errors = errors;
        status.warnings = warnings;
        Ok(Accepted {
            versions,
            status,
            new_version,
        })
    }

    /// The job's status as it will be once the decision's commit lands: the changed
    /// allocations replace their old values, the new ones are added (not yet reported).
    fn status_after(
        &self,
        jk: &JobKey,
        job: &Job,
        version: u64,
        mut status: JobStatus,
        decided: Committed<'_>,
    ) -> JobStatus {
        let mut queued = IndexMap::new();
        let mut failure_text = IndexMap::new();
        for (g, (n, s)) in decided.failures {
            queued.insert(g.clone(), *n);
            failure_text.insert(g.clone(), s.clone());
        }
        let mut all = decided.existing;
        {
            let by_id: HashMap<&str, &Allocation> =
                decided.changed.iter().map(|a| (a.id.as_str(), a)).collect();
            for e in &mut all {
                if let Some(c) = by_id.get(e.alloc.id.as_str()) {
                    e.alloc = (*c).clone();
                }
            }
            let mut known: HashSet<String> = all.iter().map(|a| a.alloc.id.clone()).collect();
            let w = self.lock();
            for id in w.allocs_by_job.get(jk).into_iter().flatten() {
                if known.insert(id.to_string()) {
                    if let Some(alloc) = w.alloc(id) {
                        all.push(ObservedAlloc {
                            alloc,
                            status: w
                                .alloc_status
                                .get(id)
                                .map(|s| nomos_api::AllocStatus::clone(s)),
                        });
                    }
                }
            }
            for a in decided.new_allocs {
                if known.insert(a.id.clone()) {
                    all.push(ObservedAlloc {
                        alloc: a.clone(),
                        status: None,
                    });
                }
            }
        }
        status.version = version;
        status.summary = reconcile::summarize(job, &all, &queued);
        status.placement_failures = failure_text;
        status.status = reconcile::job_status_word(job, &all).to_string();
        let dep = decided
            .plan
            .deployment
            .clone()
            .or_else(|| self.current_deployment(jk, version, &nomos_api::spec_hash(job)));
        if let Some(d) = &dep {
            status.latest_deployment = d.id.clone();
            if d.status == nomos_api::deployment_status::SUCCESSFUL {
                status.stable_version = Some(version);
            }
        } else {
            let running = status.summary.values().map(|s| s.running).sum::<u32>();
            let want = job.groups.iter().map(|g| g.count).sum::<u32>();
            if running >= want && !job.stop {
                status.stable_version = Some(version);
            }
        }
        status
    }

    /// The plan's deployment writes, and the auto-revert: the latest stable version becomes
    /// the newest version, in the same transaction as the failure, so a crash between them
    /// cannot lose or repeat it.
    fn deployment_writes(
        &self,
        jk: &JobKey,
        plan: &Plan,
        versions: &BTreeMap<u64, Job>,
    ) -> Result<Vec<Write>, ControllerError> {
        let mut writes = Vec::new();
        for d in plan.deployment.iter().chain(&plan.cancel_deployments) {
            writes.push(self.deployment_op(d)?);
        }
        if let Some(old) = plan.revert_to.and_then(|to| versions.get(&to)) {
            let next = versions.keys().last().map_or(0, |v| v + 1);
            let mut reverted = old.clone();
            reverted.stop = false;
            writes.push(self.version_op(jk, next, &reverted)?);
        }
        Ok(writes)
    }

    fn current_deployment(&self, jk: &JobKey, version: u64, hash: &str) -> Option<Deployment> {
        let w = self.lock();
        w.deployments
            .get(jk)
            .and_then(|m| m.values().find(|d| d.rolls_out(version, hash)).cloned())
    }

    /// The pure decision ([`decide::decide`]) over the world, placing on its snapshot; and
    /// the per-node guards the commit compares on.
    fn decide(
        &self,
        jk: &JobKey,
        job: &Job,
        version: u64,
        versions: &BTreeMap<u64, Job>,
        stable_version: Option<u64>,
        now: i64,
    ) -> Decided {
        let mut guard = self.lock();
        let w = &mut *guard;
        // The one stability flag: the deployments' verdict, overridden by hand-set marks.
        let stable_version = nomos_api::settings::latest_stable(
            w.stability.get(jk),
            stable_version,
            versions.keys().copied(),
        );
        let scheduler = w
            .scheduling
            .config_for(&job.node_pool, &self.config.scheduler);
        let allocs = w.existing_allocs(jk);
        let deployments = w
            .deployments
            .get(jk)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        let (nodes, node_specs, heartbeats) = (&w.nodes, &w.node_specs, &w.heartbeats);
        let health = |n: &str| {
            decide::node_health(
                nodes.contains_key(n),
                node_specs.get(n).is_some_and(|s| s.drain.is_some()),
                heartbeats.contains(n),
            )
        };
        let input = DecisionInput {
            job_key: jk,
            job,
            version,
            versions,
            stable_version,
            allocs,
            deployments,
            node_health: &health,
            now_ms: now,
        };
        let d = decide::decide(input, &mut w.snapshot, &scheduler, &*self.config.ids);
        let mut guards = HashMap::new();
        for n in d
            .new_allocs
            .iter()
            .map(|a| &a.node)
            .chain(d.changed.iter().map(|a| &a.node))
        {
            guards
                .entry(n.clone())
                .or_insert_with(|| w.guard_revision(n));
        }
        Decided {
            plan: d.plan,
            new_allocs: d.new_allocs,
            changed: d.changed,
            failures: d.failures,
            failure_metrics: d.failure_metrics,
            guards,
            existing: d.existing,
        }
    }

    /// Writes allocations in batches guarded per node. Returns whether anything was written;
    /// on conflict, releases the reservations not committed and reports whether a batch landed.
    async fn commit(
        &self,
        new_allocs: Vec<Allocation>,
        changed: Vec<Allocation>,
        guards: HashMap<String, i64>,
        extra: Extra,
        _now: i64,
    ) -> Result<bool, (ControllerError, bool)> {
        let mut per_node: BTreeMap<String, Vec<(Allocation, bool)>> = BTreeMap::new();
        for a in new_allocs {
            per_node.entry(a.node.clone()).or_default().push((a, true));
        }
        for a in changed {
            per_node.entry(a.node.clone()).or_default().push((a, false));
        }
        // Batches: whole nodes while they fit, a node's own ops split when it alone is too big.
        let max = self.config.batch_ops.clamp(1, 120);
        let mut batches: Vec<Vec<(Allocation, bool)>> = Vec::new();
        let mut cur: Vec<(Allocation, bool)> = Vec::new();
        let mut cur_nodes = 0usize;
        for (_, ops) in per_node {
            if !cur.is_empty() && (cur.len() + ops.len() > max || cur_nodes + 1 > max) {
                batches.push(std::mem::take(&mut cur));
                cur_nodes = 0;
            }
            for op in ops {
                if cur.len() >= max {
                    batches.push(std::mem::take(&mut cur));
                    cur_nodes = 0;
                }
                if cur.last().is_none_or(|(a, _)| a.node != op.0.node) {
                    cur_nodes += 1;
                }
                cur.push(op);
            }
        }
        if !cur.is_empty() || batches.is_empty() && !extra.is_empty() {
            batches.push(cur);
        }
        let n_batches = batches.len();
        let mut progressed = false;
        let mut evals_written = extra.evals.is_empty();
        for (i, batch) in batches.iter().enumerate() {
            let mut nodes: Vec<&str> = batch.iter().map(|(a, _)| a.node.as_str()).collect();
            nodes.dedup();
            let _claim = self.claim(&nodes).await;
            let mut compares = Vec::new();
            {
                let w = self.lock();
                for n in &nodes {
                    let guard = guards
                        .get(*n)
                        .copied()
                        .unwrap_or(0)
                        .max(w.node_guard.get(*n).copied().unwrap_or(0));
                    compares.push(node_guard(n, guard));
                }
            }
            let mut ops = Vec::with_capacity(batch.len());
            for (a, _) in batch {
                let k = keys::alloc(&a.node, &a.id);
                let value = encode(&k, a, "allocation").map_err(|e| (e, progressed))?;
                ops.push(put(&k, value));
            }
            // The version rides on the first batch (allocations name it), the deployment and
            // status on the last (they describe the committed allocations).
            let mut writes: Vec<&Write> = Vec::new();
            if i == 0 {
                writes.extend(&extra.first);
            }
            if i + 1 == n_batches {
                writes.extend(&extra.last);
                if ops.len() + writes.len() + extra.evals.len() <= TXN_OPS_BUDGET {
                    writes.extend(&extra.evals);
                    evals_written = true;
                }
            }
            for wr in &writes {
                compares.extend(wr.compare.iter().cloned());
                ops.push(put(&wr.key, wr.value.clone()));
            }
            let revision = match self.fence().commit_at(compares, ops).await {
                Ok(Some(revision)) => revision,
                Ok(None) => {
                    self.release(&batches[i..]);
                    return Err((
                        conflict(nodes.iter().map(|n| n.to_string()).collect()),
                        progressed,
                    ));
                }
                Err(e) => {
                    self.release(&batches[i..]);
                    return Err((e, progressed));
                }
            };
            progressed = true;
            let mut w = self.lock();
            for n in &nodes {
                w.node_guard.insert(n.to_string(), revision);
            }
            for (a, _) in batch {
                w.upsert_alloc(a.clone(), revision);
            }
            for wr in writes {
                w.apply(wr.kind, &wr.key, Some(&wr.value), revision);
                if wr.kind == Part::Evals {
                    w.eval_done.insert(wr.key.clone(), revision);
                }
            }
        }
        if !evals_written {
            self.put_evals(&extra.evals)
                .await
                .map_err(|e| (e, progressed))?;
        }
        Ok(progressed)
    }

    /// Waits until no other commit of this process is writing any of `nodes`, then claims them
    /// until the returned guard is dropped.
    async fn claim(&self, nodes: &[&str]) -> NodeClaim<'_> {
        loop {
            let notified = self.released.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut f = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
                if nodes.iter().all(|n| !f.contains(*n)) {
                    f.extend(nodes.iter().map(|n| n.to_string()));
                    return NodeClaim {
                        ctx: self,
                        nodes: nodes.iter().map(|n| n.to_string()).collect(),
                    };
                }
            }
            notified.await;
        }
    }

    /// Drops the snapshot reservations of placements that were not committed.
    fn release(&self, batches: &[Vec<(Allocation, bool)>]) {
        let mut w = self.lock();
        for (a, new) in batches.iter().flatten() {
            if *new {
                w.snapshot.remove_alloc(&a.id);
            }
        }
    }

    /// The create-only write of a job version, for a commit to carry.
    fn version_op(&self, jk: &JobKey, version: u64, job: &Job) -> Result<Write, ControllerError> {
        let key = keys::job_version(&jk.0, &jk.1, version);
        let value = encode(&key, job, "job")?;
        Ok(Write {
            compare: Some(absent(&key)),
            key,
            value,
            kind: Part::Versions,
        })
    }

    /// The write of a deployment, for a commit to carry. It compares the key's revision with
    /// the one the decision read, so a user's promotion, pause or failure written meanwhile is
    /// never overwritten (the commit conflicts and the job is decided again).
    fn deployment_op(&self, d: &Deployment) -> Result<Write, ControllerError> {
        let key = keys::deployment(&d.namespace, &d.job_id, &d.id);
        let value = encode(&key, d, "deployment")?;
        let read_at = self.lock().deployment_revs.get(&key).copied();
        let compare = unchanged(&key, read_at.unwrap_or(0));
        Ok(Write {
            key,
            value,
            kind: Part::Deployments,
            compare: Some(compare),
        })
    }

    /// The job status write, when the status changed (see [`Ctx::write_status`]); the flag
    /// says a counters-only change was deferred.
    fn status_op(
        &self,
        jk: &JobKey,
        mut status: JobStatus,
        now: i64,
    ) -> Result<(Option<Write>, bool), ControllerError> {
        let old = self.lock().job_status.get(jk).cloned();
        if let Some(old) = &old {
            let mut cmp = status.clone();
            cmp.modified_at_ms = old.modified_at_ms;
            cmp.periodic = old.periodic.clone();
            if &cmp == old {
                return Ok((None, false));
            }
            cmp.summary = old.summary.clone();
            cmp.status = old.status.clone();
            if &cmp == old && now - old.modified_at_ms < STATUS_MIN_INTERVAL_MS {
                return Ok((None, true));
            }
            status.periodic = old.periodic.clone();
        }
        status.modified_at_ms = now;
        Ok((Some(status_write(jk, &status)?), false))
    }

    async fn write_version(
        &self,
        jk: &JobKey,
        version: u64,
        job: &Job,
    ) -> Result<(), ControllerError> {
        let w = self.version_op(jk, version, job)?;
        let Some(revision) = self
            .fence()
            .commit_at(
                w.compare.into_iter().collect(),
                vec![put(&w.key, w.value.clone())],
            )
            .await?
        else {
            return Err(conflict(vec![]));
        };
        self.lock()
            .apply(Part::Versions, &w.key, Some(&w.value), revision);
        Ok(())
    }

    /// Writes evaluation records on their own (passes that commit nothing else).
    async fn write_evals(&self, records: Vec<Evaluation>) -> Result<(), ControllerError> {
        self.put_evals(&eval_writes(&records)?).await
    }

    /// Writes evaluation records in transactions of their own.
    async fn put_evals(&self, writes: &[Write]) -> Result<(), ControllerError> {
        for chunk in writes.chunks(TXN_OPS_BUDGET) {
            let ops = chunk.iter().map(|w| put(&w.key, w.value.clone())).collect();
            let Some(revision) = self.fence().commit_at(Vec::new(), ops).await? else {
                return Err(conflict(vec![]));
            };
            let mut w = self.lock();
            for wr in chunk {
                w.apply(Part::Evals, &wr.key, Some(&wr.value), revision);
                w.eval_done.insert(wr.key.clone(), revision);
            }
        }
        Ok(())
    }

    async fn fenced_put(
        &self,
        key: &str,
        value: Vec<u8>,
        kind: Part,
    ) -> Result<(), ControllerError> {
        let revision = self.fence().put(key, value.clone()).await?;
        self.lock().apply(kind, key, Some(&value), revision);
        Ok(())
    }

    /// Writes the job status when it changed. Changes of the counters alone are written at
    /// most once per [`STATUS_MIN_INTERVAL_MS`]; returns `true` when such a write was deferred
    /// (the caller requeues the job).
    async fn write_status(
        &self,
        jk: &JobKey,
        status: JobStatus,
        now: i64,
    ) -> Result<bool, ControllerError> {
        let (write, deferred) = self.status_op(jk, status, now)?;
        if let Some(w) = write {
            self.fenced_put(&w.key, w.value, w.kind).await?;
        }
        Ok(deferred)
    }

    /// The spec is gone: stop, then delete, every allocation; then versions, deployments, status.
    /// The first write marks the status `purging` with the stops.
    async fn purge(self: &Arc<Self>, jk: &JobKey, now: i64) -> Result<Outcome, ControllerError> {
        let (stops, deletes, remaining, guards, mark) = {
            let w = self.lock();
            let mark = w
                .job_status
                .get(jk)
                .filter(|s| !s.purging)
                .map(|s| JobStatus {
                    purging: true,
                    modified_at_ms: now,
                    ..s.clone()
                });
            let mut stops = Vec::new();
            let mut deletes = Vec::new();
            let mut remaining = 0usize;
            let mut guards = HashMap::new();
            for id in w.allocs_by_job.get(jk).into_iter().flatten() {
                let Some(a) = w.alloc(id) else { continue };
                remaining += 1;
                if a.desired_status == DesiredStatus::Run {
                    let s = set_desired(&a, DesiredStatus::Stop, "job purged", now);
                    guards
                        .entry(a.node.clone())
                        .or_insert_with(|| w.guard_revision(&a.node));
                    stops.push(s);
                } else {
                    let terminal = w
                        .alloc_status
                        .get(id)
                        .is_none_or(|s| s.client_status.is_terminal());
                    if terminal || !w.nodes.contains_key(&a.node) {
                        deletes.push((a.node.clone(), a.id.clone()));
                    }
                }
            }
            (stops, deletes, remaining, guards, mark)
        };
        let mut extra = Extra::default();
        if let Some(status) = mark {
            extra.last.push(status_write(jk, &status)?);
        }
        let (pending, blocked) = self.lock().unfinished_evals(jk);
        let facts = JobFacts {
            namespace: jk.0.clone(),
            job_id: jk.1.clone(),
            ..Default::default()
        };
        let records = evals::on_purge(&facts, &pending, blocked.as_ref(), now_ns(now));
        extra.evals = eval_writes(&records)?;
        if !stops.is_empty() || !extra.is_empty() {
            self.commit(Vec::new(), stops, guards, extra, now)
                .await
                .map_err(|(e, _)| e)?;
        }
        for chunk in deletes.chunks(50) {
            let keys: Vec<String> = chunk
                .iter()
                .flat_map(|(node, id)| [keys::alloc(node, id), keys::alloc_status(node, id)])
                .collect();
            let revision = self.fence().delete_keys(&keys).await?;
            let mut w = self.lock();
            for (_, id) in chunk {
                w.remove_alloc(id, revision);
            }
        }
        if remaining > deletes.len() {
            return Ok(Outcome {
                action: Some(Action::RequeueAfter(Duration::from_secs(2))),
                ..Default::default()
            });
        }
        // Nothing left running: forget the job.
        self.forget(jk).await?;
        Ok(Outcome {
            action: Some(Action::AwaitChange),
            ..Default::default()
        })
    }

    /// Deletes a job's versions, deployments, status and stability marks (not its spec, nor
    /// its allocations).
    async fn forget(&self, jk: &JobKey) -> Result<(), ControllerError> {
        // Each known key is deleted by name: a prefix would also catch the keys of jobs whose
        // id extends this one (`<job>/periodic-<time>`).
        let rest: Vec<String> = {
            let w = self.lock();
            let mut rest: Vec<String> = w
                .versions
                .get(jk)
                .into_iter()
                .flat_map(|m| m.keys().map(|v| keys::job_version(&jk.0, &jk.1, *v)))
                .collect();
            rest.extend(
                w.deployments
                    .get(jk)
                    .into_iter()
                    .flat_map(|m| m.keys().map(|id| keys::deployment(&jk.0, &jk.1, id))),
            );
            if w.job_status.contains_key(jk) {
                rest.push(keys::job_status(&jk.0, &jk.1));
            }
            if w.stability.contains_key(jk) {
                rest.push(keys::job_stability(&jk.0, &jk.1));
            }
            rest
        };
        self.fence().delete_keys(&rest).await?;
        if !rest.is_empty() {
            let mut w = self.lock();
            w.versions.remove(jk);
            w.job_status.remove(jk);
            w.deployments.remove(jk);
            w.stability.remove(jk);
            w.blocked.remove(jk);
        }
        Ok(())
    }
}

/// Unix milliseconds as the Unix nanoseconds evaluations keep.
pub(crate) fn now_ns(now_ms: i64) -> i64 {
    now_ms.saturating_mul(1_000_000)
}

/// The job's facts its evaluation records carry.
pub(crate) fn job_facts(jk: &JobKey, job: &Job, spec_revision: i64) -> JobFacts {
    JobFacts {
        namespace: jk.0.clone(),
        job_id: jk.1.clone(),
        kind: job.job_type.as_str().to_string(),
        priority: if job.priority > 0 {
            job.priority
        } else {
            nomos_api::eval::DEFAULT_PRIORITY
        },
        job_modify_index: spec_revision,
    }
}

/// What a decision does, as its evaluation records it.
fn activity_of(
    plan: &Plan,
    (new_version, deployment_moved): (bool, bool),
    new_allocs: &[Allocation],
    changed: &[Allocation],
    failures: &IndexMap<String, (u32, String)>,
    failure_metrics: &IndexMap<String, crate::scheduler::PlacementFailure>,
) -> Activity {
    let changed_allocs = !new_allocs.is_empty() || !changed.is_empty();
    let (failures, queued) = evals::failures_of(failures, failure_metrics);
    let deployment_id = plan
        .deployment
        .as_ref()
        .map(|d| d.id.clone())
        .or_else(|| {
            new_allocs
                .iter()
                .map(|a| a.deployment_id.clone())
                .find(|d| !d.is_empty())
        })
        .unwrap_or_default();
    Activity {
        trigger: evals::trigger_of(plan, new_version, changed_allocs, deployment_moved),
        allocs: new_allocs
            .iter()
            .chain(changed)
            .map(|a| a.id.clone())
            .collect(),
        deployment_id,
        failures,
        queued,
    }
}

/// The writes of evaluation records, for a commit to carry.
fn eval_writes(records: &[Evaluation]) -> Result<Vec<Write>, ControllerError> {
    records
        .iter()
        .map(|e| {
            let key = keys::eval(&e.namespace, &e.id);
            // The indexes are the key's revisions, filled in as the API reads it.
            let stored = Evaluation {
                create_index: 0,
                modify_index: 0,
                ..e.clone()
            };
            let value = encode(&key, &stored, "evaluation")?;
            Ok(Write {
                key,
                value,
                kind: Part::Evals,
                compare: None,
            })
        })
        .collect()
}

/// The write of a job's status.
fn status_write(jk: &JobKey, status: &JobStatus) -> Result<Write, ControllerError> {
    let key = keys::job_status(&jk.0, &jk.1);
    let value = encode(&key, status, "job status")?;
    Ok(Write {
        key,
        value,
        kind: Part::JobStatus,
        compare: None,
    })
}

/// A stored spec read against the job's versions ([`Ctx::accept`]).
struct Accepted {
    versions: BTreeMap<u64, Job>,
    status: JobStatus,
    /// The version the spec becomes, to be written with the first commit.
    new_version: Option<u64>,
}

/// What the job's allocations will be once a decision is committed.
struct Committed<'a> {
    plan: &'a Plan,
    existing: Vec<ObservedAlloc>,
    changed: &'a [Allocation],
    new_allocs: &'a [Allocation],
    failures: &'a IndexMap<String, (u32, String)>,
}

struct Decided {
    plan: Plan,
    new_allocs: Vec<Allocation>,
    changed: Vec<Allocation>,
    failures: IndexMap<String, (u32, String)>,
    failure_metrics: IndexMap<String, crate::scheduler::PlacementFailure>,
    guards: HashMap<String, i64>,
    existing: Vec<ObservedAlloc>,
}

/// A running jobs controller's handles (for tests and metrics).
pub struct Running {
    pub ctx: Arc<Ctx>,
    pub reflectors: Vec<(Part, ReflectorHandle)>,
    pub queue: Arc<WorkQueue<JobKey>>,
}

/// Runs the jobs controller until `shutdown` resolves: reflectors, then workers once every
/// cache is ready.
pub async fn run(
    store: Arc<dyn Store>,
    config: JobsConfig,
    metrics: Option<Metrics>,
    leadership: Option<Leadership>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ControllerError> {
    let (running, tasks, stop) = start(store.clone(), config, metrics, leadership);
    let mut tasks = TaskGuard(tasks);
    let ctx = running.ctx.clone();
    let queue = running.queue.clone();
    for (_, h) in &running.reflectors {
        h.ready().await;
    }
    {
        let w = ctx.lock();
        for k in w.all_jobs() {
            queue.add(k);
        }
    }
    let m = ctx.metrics.clone();
    let ticker: tokio::task::JoinHandle<()> = {
        let running_handles = running.reflectors.clone();
        let ctx = ctx.clone();
        let queue = queue.clone();
        let mut stop = stop.subscribe();
        tokio::spawn(async move {
            loop {
                if let Some((m, l)) = &ctx.metrics {
                    let sizes = ctx.lock().sizes();
                    for (k, n) in sizes {
                        m.cache_objects
                            .get_or_create(&Metrics::cache(NAME, k.name()))
                            .set(n as i64);
                    }
                    if let Ok(st) = ctx.store.status().await {
                        for (k, h) in &running_handles {
                            m.watch_lag
                                .get_or_create(&Metrics::cache(NAME, k.name()))
                                .set((st.revision - h.revision()).max(0));
                        }
                    }
                    m.set_queue(l, &queue);
                }
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
            }
        })
    };
    tasks.0.push(ticker);
    let workers = ctx.config.workers;
    let rctx = ctx.clone();
    runner::run(
        queue,
        workers,
        move |k: JobKey| {
            let ctx = rctx.clone();
            async move { ctx.reconcile(k).await }
        },
        m,
        shutdown,
    )
    .await;
    let _ = stop.send(true);
    for t in tasks.0.drain(..) {
        let _ = t.await;
    }
    Ok(())
}

/// Owns background tasks: dropping it (e.g. when leadership is lost and the controller's future
/// is dropped) aborts them.
struct TaskGuard(Vec<tokio::task::JoinHandle<()>>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Starts the reflectors; returns their handles, their tasks, and the switch that stops them.
pub fn start(
    store: Arc<dyn Store>,
    config: JobsConfig,
    metrics: Option<Metrics>,
    leadership: Option<Leadership>,
) -> (
    Running,
    Vec<tokio::task::JoinHandle<()>>,
    tokio::sync::watch::Sender<bool>,
) {
    let world = Arc::new(Mutex::new(World::default()));
    let queue = Arc::new(WorkQueue::new(Backoff::default()));
    let (stop, _) = tokio::sync::watch::channel(false);
    let mut reflectors = Vec::new();
    let mut tasks = Vec::new();
    for kind in Part::JOBS {
        let sink = WorldSink {
            world: world.clone(),
            kind,
            queue: queue.clone(),
            coalesce: config.status_coalesce,
        };
        let (r, h) = Reflector::new(store.clone(), kind.prefix(), sink);
        let mut rx = stop.subscribe();
        tasks.push(tokio::spawn(r.run(async move {
            let _ = rx.wait_for(|s| *s).await;
        })));
        reflectors.push((kind, h));
    }
    let ctx = Arc::new(Ctx {
        store,
        in_flight: Mutex::new(HashSet::new()),
        released: tokio::sync::Notify::new(),
        world,
        config,
        metrics: metrics.map(|m| (m, Metrics::label(NAME))),
        leadership,
    });
    (
        Running {
            ctx,
            reflectors,
            queue,
        },
        tasks,
        stop,
    )
}
