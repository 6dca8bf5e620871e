//! Simulated agents: one per node, in place of `nctl agent` and real processes. Each round an
//! agent lists its node's allocations, fetches the job version an allocation names (checking
//! the spec hash, as the real agent does), plays the version's [`Behavior`] forward to the
//! simulated `now` (start, run, exit, restart per the group's restart policy, OOM kill), and
//! reports the allocation's status with the real agent's own status and health rules
//! (`nomos_agent::plan`, `nomos_agent::checks`). A disconnected agent keeps its tasks running
//! but cannot write; when it is back, it writes what is true again.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use nomos_api::{
    AllocStatus, Allocation, CheckResult, ClientStatus, DesiredStatus, Job, TaskEvent,
    TaskRunState, TaskState,
};
use nomos_store::{keys, KeySelector, PutOptions, RangeOptions, Store, StoreError};

use crate::spec::{behavior_of, Behavior};

/// One task (each simulated group has one) of one allocation, as its agent plays it.
#[derive(Debug, Clone)]
struct TaskRun {
    behavior: Behavior,
    /// Hash of the spec this task was started from.
    spec_hash: String,
    min_healthy_ms: u64,
    /// Names of the checks health waits on, each with whether a warning counts as passing
    /// (empty: task states only).
    checks: Vec<(String, bool)>,
    restart_attempts: u32,
    restart_delay_ms: i64,
    state: TaskRunState,
    started_at_ms: i64,
    finished_at_ms: i64,
    /// When a restarting task runs again.
    restart_at_ms: i64,
    restarts: u32,
    failed: bool,
    exit_code: Option<i32>,
    events: Vec<TaskEvent>,
    healthy: Option<bool>,
    last_written: Option<AllocStatus>,
}

/// What one agent round saw that the invariants check.
#[derive(Debug, Default)]
pub struct RoundReport {
    /// `(alloc id, hash the allocation names, hash of the spec the agent runs)` where they
    /// differ: the agent would run another spec than its allocation names.
    pub wrong_spec: Vec<(String, String, String)>,
    pub writes: usize,
}

/// A simulated agent.
#[derive(Debug, Default)]
pub struct SimAgent {
    pub node: String,
    runs: BTreeMap<String, TaskRun>,
    /// Specs by `(namespace, job, version)`, with their hashes.
    cache: BTreeMap<(String, String, u64), (Job, String)>,
}

fn event(time_ms: i64, kind: &str, message: &str) -> TaskEvent {
    TaskEvent {
        time_ms,
        event_type: kind.into(),
        message: message.into(),
        ..Default::default()
    }
}

impl TaskRun {
    fn new(job: &Job, alloc: &Allocation, hash: String, now: i64) -> Self {
        let group = job.groups.iter().find(|g| g.name == alloc.task_group);
        let update = match group {
            Some(g) => job.update_for(g),
            None => job.update.as_ref(),
        };
        let min_healthy_ms = update
            .map(|u| u.min_healthy_time_ns / 1_000_000)
            .filter(|ms| *ms > 0)
            .unwrap_or(10_000);
        let by_checks = update.is_none_or(|u| u.health_check == "checks");
        let checks = match (group, by_checks) {
            (Some(g), true) => nomos_agent::checks::check_defs(g, alloc, "")
                .into_iter()
                .map(|d| (d.name, d.warning_is_healthy))
                .collect(),
            _ => Vec::new(),
        };
        let restart = group.and_then(|g| g.restart.clone()).unwrap_or_default();
        TaskRun {
            behavior: behavior_of(job),
            spec_hash: hash,
            min_healthy_ms,
            checks,
            restart_attempts: restart.attempts,
            restart_delay_ms: (restart.delay_ns / 1_000_000) as i64,
            state: TaskRunState::Running,
            started_at_ms: now,
            finished_at_ms: 0,
            restart_at_ms: 0,
            restarts: 0,
            failed: false,
            exit_code: None,
            events: vec![event(now, "Started", "Task started by client")],
            healthy: None,
            last_written: None,
        }
    }

    /// Plays the behaviour forward to `now`: exits, restarts within the restart policy, and
    /// the final failure once the attempts are used.
    fn advance(&mut self, now: i64) {
        loop {
            match self.state {
                TaskRunState::Running => {
                    let (code, after, oom) = match self.behavior {
                        Behavior::Exits { code, after_ms } => (code, after_ms, false),
                        Behavior::OomKilled { after_ms } => (137, after_ms, true),
                        _ => return,
                    };
                    let at = self.started_at_ms + after.max(1);
                    if at > now {
                        return;
                    }
                    self.exit_code = Some(code);
                    let mut ev = event(at, "Terminated", &format!("Exit Code: {code}"));
                    ev.exit_code = Some(code);
                    ev.oom_killed = oom;
                    self.events.push(ev);
                    if code == 0 {
                        self.state = TaskRunState::Dead;
                        self.finished_at_ms = at;
                        return;
                    }
                    if self.restarts < self.restart_attempts {
                        self.restarts += 1;
                        self.state = TaskRunState::Pending;
                        self.restart_at_ms = at + self.restart_delay_ms.max(1);
                        self.events.push(event(
                            at,
                            "Restarting",
                            "Task restarting in the restart policy's delay",
                        ));
                    } else {
                        self.state = TaskRunState::Dead;
                        self.failed = true;
                        self.finished_at_ms = at;
                        self.events.push(event(
                            at,
                            "Not Restarting",
                            "Exceeded allowed attempts, applying the restart policy's mode",
                        ));
                        return;
                    }
                }
                TaskRunState::Pending => {
                    if self.restart_at_ms > now {
                        return;
                    }
                    self.state = TaskRunState::Running;
                    self.started_at_ms = self.restart_at_ms;
                    self.events
                        .push(event(self.restart_at_ms, "Started", "Task restarted"));
                }
                TaskRunState::Dead => return,
            }
        }
    }

    fn kill(&mut self, now: i64) {
        if self.state != TaskRunState::Dead {
            self.state = TaskRunState::Dead;
            self.finished_at_ms = now;
            self.events
                .push(event(now, "Killed", "Task successfully killed"));
        }
    }

    fn check_results(&self, now: i64) -> IndexMap<String, CheckResult> {
        let passing = self.state == TaskRunState::Running
            && match self.behavior {
                Behavior::NeverHealthy => false,
                Behavior::Flaps { period_ms } => {
                    ((now - self.started_at_ms) / period_ms.max(1)) % 2 == 0
                }
                _ => true,
            };
        self.checks
            .iter()
            .map(|(name, _)| {
                (
                    name.clone(),
                    CheckResult {
                        status: if passing { "passing" } else { "critical" }.into(),
                        output: String::new(),
                        checked_at_ms: now,
                    },
                )
            })
            .collect()
    }

    /// The allocation status the real agent would report, by its own rules.
    fn status(&mut self, alloc_id: &str, now: i64) -> AllocStatus {
        let mut tasks = IndexMap::new();
        let mut events = self.events.clone();
        if events.len() > 10 {
            events.drain(..events.len() - 10);
        }
        tasks.insert(
            "main".to_string(),
            TaskState {
                state: self.state,
                failed: self.failed,
                restarts: self.restarts,
                exit_code: self.exit_code,
                started_at_ms: self.started_at_ms,
                finished_at_ms: self.finished_at_ms,
                events,
            },
        );
        let client_status = nomos_agent::plan::client_status(&tasks);
        let checks = self.check_results(now);
        let task_health = nomos_agent::plan::health(&tasks, self.min_healthy_ms, now);
        let health = if self.checks.is_empty() {
            task_health
        } else {
            nomos_agent::checks::combine_health(task_health, &self.checks, &checks)
        };
        // Once healthy, an allocation stays healthy until a task fails (the real agent's rule).
        self.healthy = match (health, self.healthy) {
            (Some(h), _) => Some(h),
            (None, Some(true)) if client_status == ClientStatus::Running => Some(true),
            (None, _) => None,
        };
        AllocStatus {
            alloc_id: alloc_id.to_string(),
            client_status,
            client_description: format!("{client_status:?}"),
            task_states: tasks,
            healthy: self.healthy,
            modified_at_ms: now,
            checks,
        }
    }
}

/// Whether two reports say the same (ignoring when they were made).
fn same_report(a: &AllocStatus, b: &AllocStatus) -> bool {
    let strip = |s: &AllocStatus| {
        let mut s = s.clone();
        s.modified_at_ms = 0;
        for c in s.checks.values_mut() {
            c.checked_at_ms = 0;
        }
        s
    };
    strip(a) == strip(b)
}

impl SimAgent {
    pub fn new(node: &str) -> Self {
        SimAgent {
            node: node.to_string(),
            ..Default::default()
        }
    }

    /// The spec an allocation names: from the cache when its hash matches, else read again
    /// (a purged job created anew reuses version numbers).
    async fn spec_for(
        &mut self,
        store: &dyn Store,
        a: &Allocation,
    ) -> Result<Option<(Job, String)>, StoreError> {
        let key = (a.namespace.clone(), a.job_id.clone(), a.job_version);
        if let Some((job, hash)) = self.cache.get(&key) {
            if a.job_spec_hash.is_empty() || *hash == a.job_spec_hash {
                return Ok(Some((job.clone(), hash.clone())));
            }
        }
        let r = store
            .range(
                KeySelector::key(keys::job_version(&a.namespace, &a.job_id, a.job_version)),
                RangeOptions::default(),
            )
            .await?;
        let Some(job) = r
            .kvs
            .first()
            .and_then(|kv| serde_json::from_slice::<Job>(&kv.value).ok())
        else {
            return Ok(None);
        };
        let hash = nomos_api::spec_hash(&job);
        self.cache.insert(key, (job.clone(), hash.clone()));
        Ok(Some((job, hash)))
    }

    /// One round: read, play forward, report.
    pub async fn round(&mut self, store: &dyn Store, now: i64) -> Result<RoundReport, StoreError> {
        let mut report = RoundReport::default();
        let allocs: Vec<Allocation> = store
            .range(
                KeySelector::prefix(keys::allocs_prefix(Some(&self.node))),
                RangeOptions::default(),
            )
            .await?
            .kvs
            .iter()
            .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
            .collect();
        let stored: BTreeMap<String, Option<AllocStatus>> = store
            .range(
                KeySelector::prefix(keys::alloc_status_prefix(Some(&self.node))),
                RangeOptions::default(),
            )
            .await?
            .kvs
            .iter()
            .map(|kv| {
                let id = kv
                    .key_str()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                (id, serde_json::from_slice(&kv.value).ok())
            })
            .collect();
        self.runs.retain(|id, _| allocs.iter().any(|a| &a.id == id));
        for a in &allocs {
            if !self.runs.contains_key(&a.id) {
                if a.desired_status != DesiredStatus::Run {
                    continue;
                }
                let Some((job, hash)) = self.spec_for(store, a).await? else {
                    continue;
                };
                if !a.job_spec_hash.is_empty() && hash != a.job_spec_hash {
                    report
                        .wrong_spec
                        .push((a.id.clone(), a.job_spec_hash.clone(), hash));
                    continue;
                }
                self.runs
                    .insert(a.id.clone(), TaskRun::new(&job, a, hash, now));
            }
            let moved = self
                .runs
                .get(&a.id)
                .is_some_and(|r| !a.job_spec_hash.is_empty() && r.spec_hash != a.job_spec_hash);
            if moved {
                // An in-place update: the allocation moved to a version whose tasks are the
                // same; the agent takes the new spec without a restart.
                if let Some((job, hash)) = self.spec_for(store, a).await? {
                    let run = self.runs.get_mut(&a.id).expect("present above");
                    if hash == a.job_spec_hash && behavior_of(&job) == run.behavior {
                        run.spec_hash = hash;
                    } else {
                        report
                            .wrong_spec
                            .push((a.id.clone(), a.job_spec_hash.clone(), hash));
                    }
                }
            }
            let run = self.runs.get_mut(&a.id).expect("inserted above");
            run.advance(now);
            if a.desired_status != DesiredStatus::Run {
                run.kill(now);
            }
            let status = run.status(&a.id, now);
            let in_store = stored.get(&a.id).cloned().flatten();
            let changed = run
                .last_written
                .as_ref()
                .is_none_or(|w| !same_report(w, &status));
            let overwritten = in_store.as_ref().is_none_or(|s| !same_report(s, &status));
            if changed || overwritten {
                store
                    .put(
                        keys::alloc_status(&self.node, &a.id).into_bytes(),
                        serde_json::to_vec(&status).unwrap_or_default(),
                        PutOptions::default(),
                    )
                    .await?;
                run.last_written = Some(status);
                report.writes += 1;
            }
        }
        Ok(report)
    }
}
