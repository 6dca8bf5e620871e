//! The allocation supervisor: starts one task loop per task (see [`super::task`]) and the
//! group's service checks, moves the lifecycle phase forward, rotates logs and re-evaluates
//! health on a tick, and stops the other tasks when one fails for good.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nomos_api::{Task, TaskRunState, TaskState};
use tokio::sync::{watch, Notify};
use tokio::task::{JoinHandle, JoinSet};

use super::shared::{AllocShared, Ctx};
use super::task::run_task;
use crate::confine::is_single_component;
use crate::driver::now_ms;
use crate::logs::{self, LogStream};
use crate::plan;
use crate::state::AllocRecord;

/// A running allocation supervisor.
pub struct AllocRunner {
    pub shared: Arc<AllocShared>,
    join: JoinHandle<()>,
}

impl AllocRunner {
    /// Starts (or resumes, from a persisted record) an allocation.
    pub fn spawn(ctx: Ctx, rec: AllocRecord) -> Self {
        let (stop, _) = watch::channel(rec.stopping);
        let (phase, _) = watch::channel(plan::Phase::Prestart);
        let (restarts, _) = watch::channel(HashMap::new());
        let id = rec.alloc.id.clone();
        let shared = Arc::new(AllocShared {
            rec: Mutex::new(rec),
            changed: Notify::new(),
            stop,
            phase,
            restarts,
            ctx: ctx.clone(),
        });
        ctx.live.insert(id.clone(), shared.clone());
        let live = ctx.live.clone();
        let sh = shared.clone();
        let join = tokio::spawn(async move {
            supervise(ctx, sh.clone()).await;
            live.remove(&id, &sh);
        });
        AllocRunner { shared, join }
    }

    /// Asks every task to stop (kill_signal, kill_timeout, then SIGKILL).
    pub fn stop(&self) {
        self.shared
            .rec
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stopping = true;
        // `send_replace`, not `send`: the value must stick even before any task subscribed.
        self.shared.stop.send_replace(true);
    }

    pub fn is_finished(&self) -> bool {
        self.join.is_finished()
    }

    /// Waits until every task has ended and the supervisor returned.
    pub async fn join(self) {
        let _ = self.join.await;
    }

    /// Leaves the tasks running and stops supervising them (agent shutdown).
    pub fn detach(self) {
        self.join.abort();
    }

    pub fn job_version(&self) -> u64 {
        self.shared
            .rec
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .alloc
            .job_version
    }

    pub fn job_spec_hash(&self) -> String {
        self.shared
            .rec
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .alloc
            .job_spec_hash
            .clone()
    }

    pub fn stopping(&self) -> bool {
        self.shared
            .rec
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stopping
    }
}

/// The tasks of the allocation's group, as its job held them when the allocation started (a
/// job shared with the other allocations of its version, not a copy).
struct GroupTasks {
    job: Arc<nomos_api::Job>,
    index: usize,
}

impl GroupTasks {
    fn tasks(&self) -> &[Task] {
        &self.job.groups[self.index].tasks
    }
}

async fn supervise(ctx: Ctx, shared: Arc<AllocShared>) {
    let Some((group, mut tasks, mut checks)) = start_tasks(&ctx, &shared) else {
        return;
    };
    // The allocation's id never changes: its log dir is made once, not on every tick.
    let log_dir = shared.read(|r| logs::log_dir(ctx.state.root(), &r.alloc.id));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut siblings_stopped = false;
    loop {
        tokio::select! {
            done = tasks.join_next() => {
                if done.is_none() {
                    break;
                }
            }
            _ = tick.tick() => {
                rotate_logs(&log_dir, group.tasks());
                enforce_max_run_duration(&shared, &group);
                shared.update(|_| {});
            }
            _ = shared.changed.notified() => {}
        }
        advance_phase(&shared, group.tasks());
        if !siblings_stopped {
            let failed = shared.read(|r| {
                r.status
                    .task_states
                    .values()
                    .any(|t| t.state == TaskRunState::Dead && t.failed)
            });
            if failed {
                siblings_stopped = true;
                shared.stop.send_replace(true);
            }
        }
    }
    checks.abort_all();
    shared.update(|_| {});
}

/// Stops the allocation's tasks once its group's `max_run_duration` has passed (once: the
/// record remembers it, so a restarted agent does not run them again).
fn enforce_max_run_duration(shared: &AllocShared, group: &GroupTasks) {
    let g = &group.job.groups[group.index];
    let due = shared.read(|r| {
        !r.stopping
            && !r.status.client_status.is_terminal()
            && plan::max_run_exceeded(g, r.alloc.created_at_ms, now_ms())
    });
    if !due {
        return;
    }
    tracing::info!(alloc = %shared.read(|r| r.alloc.id.clone()), "{}", plan::MAX_RUN_EXCEEDED);
    shared.update(|r| {
        r.stopping = true;
        r.max_run_exceeded = true;
    });
    shared.stop.send_replace(true);
}

/// Starts one loop per task of the allocation's group and its service checks; `None` (with
/// the allocation failed) when the job has no such group. The record read here is not kept:
/// a running allocation holds only its shared record and the job.
fn start_tasks(
    ctx: &Ctx,
    shared: &Arc<AllocShared>,
) -> Option<(GroupTasks, JoinSet<()>, JoinSet<()>)> {
    let rec = shared.snapshot();
    let Some(index) = rec
        .job
        .groups
        .iter()
        .position(|g| g.name == rec.alloc.task_group)
    else {
        shared.update(|r| {
            r.status.client_status = nomos_api::ClientStatus::Failed;
            r.status.client_description = format!(
                "task group {:?} not in job {} version {}",
                r.alloc.task_group, r.job.id, r.alloc.job_version
            );
        });
        return None;
    };
    let group = GroupTasks {
        job: rec.job.clone(),
        index,
    };
    // Task states exist from the start so status shows every task as pending.
    shared.update(|r| {
        for t in group.tasks() {
            r.status.task_states.entry(t.name.clone()).or_default();
            r.tasks.entry(t.name.clone()).or_default();
        }
    });
    advance_phase(shared, group.tasks());
    let mut tasks = JoinSet::new();
    for task in group.tasks() {
        if first_time(&rec, &task.name) && !rec.stopping {
            shared.event(
                &task.name,
                "Received",
                "Task received by client",
                None,
                |_, _| {},
            );
        }
        tasks.spawn(run_task(ctx.clone(), shared.clone(), task.clone()));
    }
    let mut checks = JoinSet::new();
    if !rec.stopping {
        let defs =
            crate::checks::check_defs(&group.job.groups[index], &rec.alloc, &ctx.node.address);
        for def in defs {
            // A script check runs inside its task, through the task's driver.
            let driver = match &def.target {
                crate::checks::CheckTarget::Script { task, .. } => group
                    .tasks()
                    .iter()
                    .find(|t| &t.name == task)
                    .and_then(|t| ctx.drivers.get(&t.driver)),
                _ => None,
            };
            checks.spawn(check_loop(shared.clone(), def, driver));
        }
    }
    Some((group, tasks, checks))
}

/// Whether `task` never started nor got an event (a new allocation, not a resumed one).
fn first_time(rec: &AllocRecord, task: &str) -> bool {
    let started = rec
        .tasks
        .get(task)
        .map(|t| t.handle.is_some() || t.done)
        .unwrap_or(false);
    let has_events = rec
        .status
        .task_states
        .get(task)
        .map(|s| !s.events.is_empty())
        .unwrap_or(false);
    !started && !has_events
}

/// Moves the allocation's lifecycle phase forward from its tasks' states.
fn advance_phase(shared: &AllocShared, tasks: &[Task]) {
    let not_seen = TaskState::default();
    let p = shared.read(|r| {
        let infos: Vec<(plan::Phase, bool, &TaskState)> = tasks
            .iter()
            .map(|t| {
                let sidecar = t.lifecycle.as_ref().map(|l| l.sidecar).unwrap_or(false);
                let st = r.status.task_states.get(&t.name).unwrap_or(&not_seen);
                (plan::task_phase(t.lifecycle.as_ref()), sidecar, st)
            })
            .collect();
        plan::lifecycle_phase(&infos)
    });
    shared.phase.send_if_modified(|cur| {
        if p > *cur {
            *cur = p;
            true
        } else {
            false
        }
    });
}

/// Runs one service check every interval while a task of the allocation runs, recording
/// status changes (after `success_before_passing` / `failures_before_warning` /
/// `failures_before_critical` results in a row) and asking for the task's restart when its
/// `check_restart` says so. `driver` is the driver of a script check's task.
async fn check_loop(
    shared: Arc<AllocShared>,
    def: crate::checks::CheckDef,
    driver: Option<Arc<dyn crate::driver::Driver>>,
) {
    let mut tick = tokio::time::interval(def.interval);
    let mut counter = crate::checks::CheckCounter::default();
    let mut restarts = crate::checks::RestartCounter::default();
    loop {
        tick.tick().await;
        let running = shared.read(|r| {
            r.status
                .task_states
                .values()
                .any(|t| t.state == TaskRunState::Running)
        });
        if !running {
            continue;
        }
        let handle = script_handle(&shared, &def);
        let script = driver.as_deref().zip(handle.as_ref());
        let (result, output) = crate::checks::run_check(&def, script).await;
        let Some(status) = counter.observe(result, &def) else {
            continue;
        };
        shared.update(|r| {
            let e = r.status.checks.entry(def.name.clone()).or_default();
            if e.status != status {
                e.status = status.to_string();
                e.output = output;
                e.checked_at_ms = now_ms();
            }
        });
        if let Some((policy, task)) = &def.restart {
            let started = shared.read(|r| r.status.task_states.get(task).map(|t| t.started_at_ms));
            let since = Duration::from_millis((now_ms() - started.unwrap_or(0)).max(0) as u64);
            if restarts.observe(status, since, policy) {
                let why = format!("healthcheck: check {:?} unhealthy", def.name);
                if let Err(e) = shared.request_restart(Some(task), &why) {
                    tracing::debug!(task = %task, error = ?e, "check_restart not taken");
                }
            }
        }
    }
}

/// The handle of a script check's task while it runs.
fn script_handle(
    shared: &AllocShared,
    def: &crate::checks::CheckDef,
) -> Option<crate::driver::TaskHandle> {
    let crate::checks::CheckTarget::Script { task, .. } = &def.target else {
        return None;
    };
    shared.read(|r| {
        let running = r
            .status
            .task_states
            .get(task)
            .is_some_and(|t| t.state == TaskRunState::Running);
        r.tasks
            .get(task)
            .filter(|t| running && !t.done)
            .and_then(|t| t.handle.clone())
    })
}

fn rotate_logs(log_dir: &Path, tasks: &[Task]) {
    for t in tasks.iter().filter(|t| is_single_component(&t.name)) {
        let max_files = if t.logs.max_files == 0 {
            10
        } else {
            t.logs.max_files
        };
        let max_mb = if t.logs.max_file_size_mb == 0 {
            10
        } else {
            t.logs.max_file_size_mb
        };
        for s in [LogStream::Stdout, LogStream::Stderr] {
            if let Err(e) =
                logs::rotate_if_needed(log_dir, &t.name, s, max_files, max_mb as u64 * 1024 * 1024)
            {
                tracing::warn!(task = %t.name, error = %e, "log rotation failed");
            }
        }
    }
}
