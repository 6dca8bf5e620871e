//! Allocation and task runners: one supervisor per allocation, one loop per task.
//!
//! A task loop starts its task (or re-attaches to it from the persisted handle), waits for it
//! to exit or to be told to stop, and applies the restart policy. Every change goes through
//! [`AllocShared::update`], which recomputes the allocation's status, persists the record and
//! queues a report for the store. The supervisor rotates logs, re-evaluates health on a tick
//! and stops the other tasks when one fails for good.
//!
//! Dropping (aborting) a runner leaves its tasks running: that is how the agent shuts down.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nomos_api::{AllocStatus, Node, Task, TaskEvent, TaskRunState, TaskState};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::{JoinHandle, JoinSet};

use crate::config::AgentConfig;
use crate::driver::{now_ms, Driver, ExitResult, TaskHandle, TaskSpec};
use crate::env::{task_env, vars_for, EnvInputs};
use crate::error::AgentError;
use crate::interp::{interpolate, interpolate_value};
use crate::logs::{self, LogStream};
use crate::metrics::Metrics;
use crate::plan;
use crate::restart::{self, RestartDecision};
use crate::state::{AllocRecord, StateDir, TaskRecord};

/// Events kept per task, newest last (as Nomad keeps 10).
const MAX_EVENTS: usize = 10;

/// What goes to the store reporter ([`crate::report`]).
#[derive(Debug, Clone)]
pub enum Report {
    /// An allocation's latest status, to write.
    Status(String, Box<AllocStatus>),
    /// The allocation is gone: delete its status key.
    Remove(String),
    /// Compare every status key with what was written (the node registered again).
    Resync,
}

/// The drivers this agent has, by name.
#[derive(Clone, Default)]
pub struct Drivers(pub Arc<HashMap<&'static str, Arc<dyn Driver>>>);

impl Drivers {
    pub fn get(&self, name: &str) -> Option<Arc<dyn Driver>> {
        self.0.get(name).cloned()
    }
}

/// What every runner shares.
#[derive(Clone)]
pub struct Ctx {
    pub config: Arc<AgentConfig>,
    pub node: Arc<Node>,
    pub drivers: Drivers,
    pub state: StateDir,
    /// This agent's id ([`StateDir::agent_id`]): what its tasks carry.
    pub agent_id: String,
    pub reports: mpsc::UnboundedSender<Report>,
    pub metrics: Arc<Metrics>,
    /// The allocations being supervised, for requests from the HTTP endpoint.
    pub live: LiveAllocs,
}

/// The supervised allocations by id (shared with the HTTP endpoint, which restarts tasks).
#[derive(Clone, Default)]
pub struct LiveAllocs(Arc<Mutex<HashMap<String, Arc<AllocShared>>>>);

/// Why a restart request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestartRefusal {
    /// This agent supervises no allocation with that id.
    UnknownAlloc,
    /// The allocation has no task with that name.
    UnknownTask(String),
    /// Nothing that was asked for is running.
    NotRunning,
}

impl std::fmt::Display for RestartRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestartRefusal::UnknownAlloc => write!(f, "no such allocation on this node"),
            RestartRefusal::UnknownTask(t) => write!(f, "the allocation has no task {t:?}"),
            RestartRefusal::NotRunning => write!(f, "no task to restart is running"),
        }
    }
}

impl LiveAllocs {
    fn insert(&self, id: String, shared: Arc<AllocShared>) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, shared);
    }

    fn remove(&self, id: &str, shared: &Arc<AllocShared>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.get(id).map(|s| Arc::ptr_eq(s, shared)).unwrap_or(false) {
            map.remove(id);
        }
    }

    /// Restarts `task` (or every running task) of `alloc` in place; returns the tasks signalled.
    pub fn restart(&self, alloc: &str, task: Option<&str>) -> Result<Vec<String>, RestartRefusal> {
        let shared = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(alloc)
            .cloned()
            .ok_or(RestartRefusal::UnknownAlloc)?;
        shared.request_restart(task)
    }
}

/// An allocation's record plus the means to change it.
pub struct AllocShared {
    pub rec: Mutex<AllocRecord>,
    pub changed: Notify,
    pub stop: watch::Sender<bool>,
    /// Lifecycle phase reached (see [`plan::lifecycle_phase`]); tasks wait for theirs.
    pub phase: watch::Sender<plan::Phase>,
    /// Restart requests per task: a counter each task loop watches.
    pub restarts: watch::Sender<HashMap<String, u64>>,
    ctx: Ctx,
}

impl AllocShared {
    /// Applies a change, recomputes status and health, persists and reports.
    pub fn update(&self, f: impl FnOnce(&mut AllocRecord)) {
        let snapshot = {
            let mut rec = self.rec.lock().unwrap_or_else(|e| e.into_inner());
            let before = rec.clone();
            f(&mut rec);
            refresh_status(&mut rec, self.ctx.config.default_min_healthy_time_ms);
            if *rec == before {
                return;
            }
            rec.status.modified_at_ms = now_ms();
            if let Err(e) = self.ctx.state.save(&rec) {
                tracing::error!(alloc = %rec.alloc.id, error = %e, "persisting allocation state failed");
            }
            (rec.alloc.id.clone(), rec.status.clone())
        };
        let _ = self
            .ctx
            .reports
            .send(Report::Status(snapshot.0, Box::new(snapshot.1)));
        self.changed.notify_waiters();
    }

    /// Asks `task` (or every running task) to restart in place; returns the tasks signalled.
    pub fn request_restart(&self, task: Option<&str>) -> Result<Vec<String>, RestartRefusal> {
        let rec = self.snapshot();
        if rec.stopping {
            return Err(RestartRefusal::NotRunning);
        }
        let running = |name: &str| {
            rec.tasks
                .get(name)
                .map(|t| t.handle.is_some() && !t.done)
                .unwrap_or(false)
        };
        let names: Vec<String> = match task {
            Some(t) => {
                if !rec.tasks.contains_key(t) && !rec.status.task_states.contains_key(t) {
                    return Err(RestartRefusal::UnknownTask(t.to_string()));
                }
                if !running(t) {
                    return Err(RestartRefusal::NotRunning);
                }
                vec![t.to_string()]
            }
            None => rec.tasks.keys().filter(|t| running(t)).cloned().collect(),
        };
        if names.is_empty() {
            return Err(RestartRefusal::NotRunning);
        }
        self.restarts.send_modify(|m| {
            for n in &names {
                *m.entry(n.clone()).or_default() += 1;
            }
        });
        Ok(names)
    }

    fn snapshot(&self) -> AllocRecord {
        self.rec.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn event(
        &self,
        task: &str,
        event_type: &str,
        message: impl Into<String>,
        exit: Option<&ExitResult>,
        f: impl FnOnce(&mut TaskState, &mut TaskRecord),
    ) {
        let message = message.into();
        let task = task.to_string();
        let et = event_type.to_string();
        self.update(move |rec| {
            let ts = rec.status.task_states.entry(task.clone()).or_default();
            let mut ev = TaskEvent {
                time_ms: now_ms(),
                event_type: et,
                message,
                ..Default::default()
            };
            if let Some(x) = exit {
                ev.exit_code = x.exit_code;
                ev.signal = x.signal;
                ev.oom_killed = x.oom_killed;
            }
            ts.events.push(ev);
            if ts.events.len() > MAX_EVENTS {
                let drop = ts.events.len() - MAX_EVENTS;
                ts.events.drain(..drop);
            }
            let tr = rec.tasks.entry(task).or_default();
            f(ts, tr);
        });
    }
}

/// Minimum healthy time of the allocation's group (its `update` block, else the job's).
fn min_healthy_ms(rec: &AllocRecord, default_ms: u64) -> u64 {
    let group = rec
        .job
        .groups
        .iter()
        .find(|g| g.name == rec.alloc.task_group);
    group
        .and_then(|g| g.update.as_ref())
        .or(rec.job.update.as_ref())
        .map(|u| u.min_healthy_time_ns / 1_000_000)
        .filter(|ms| *ms > 0)
        .unwrap_or(default_ms)
}

/// Recomputes `client_status` and `healthy` from the task states.
pub fn refresh_status(rec: &mut AllocRecord, default_min_healthy_ms: u64) {
    let now = now_ms();
    let status = plan::client_status(&rec.status.task_states);
    let mut health = plan::health(
        &rec.status.task_states,
        min_healthy_ms(rec, default_min_healthy_ms),
        now,
    );
    if let Some(group) = rec
        .job
        .groups
        .iter()
        .find(|g| g.name == rec.alloc.task_group)
    {
        let mode = group
            .update
            .as_ref()
            .or(rec.job.update.as_ref())
            .map(|u| u.health_check.as_str())
            .unwrap_or("checks");
        if mode != "task_states" && mode != "manual" {
            let names: Vec<String> = crate::checks::check_defs(group, &rec.alloc, "")
                .into_iter()
                .map(|d| d.name)
                .collect();
            health = crate::checks::combine_health(health, &names, &rec.status.checks);
        }
    }
    rec.status.alloc_id = rec.alloc.id.clone();
    rec.status.client_status = status;
    rec.status.client_description = match status {
        nomos_api::ClientStatus::Pending => "No tasks have started".into(),
        nomos_api::ClientStatus::Running => "Tasks are running".into(),
        nomos_api::ClientStatus::Complete => "All tasks have completed".into(),
        nomos_api::ClientStatus::Failed => "Failed tasks".into(),
        other => format!("{other:?}"),
    };
    // Once healthy, an allocation stays healthy until a task fails.
    rec.status.healthy = match (health, rec.status.healthy) {
        (Some(h), _) => Some(h),
        (None, Some(true)) if status == nomos_api::ClientStatus::Running => Some(true),
        (None, _) => None,
    };
}

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

async fn supervise(ctx: Ctx, shared: Arc<AllocShared>) {
    let rec = shared.snapshot();
    let group = rec
        .job
        .groups
        .iter()
        .find(|g| g.name == rec.alloc.task_group)
        .cloned();
    let Some(group) = group else {
        shared.update(|r| {
            r.status.client_status = nomos_api::ClientStatus::Failed;
            r.status.client_description = format!(
                "task group {:?} not in job {} version {}",
                r.alloc.task_group, r.job.id, r.alloc.job_version
            );
        });
        return;
    };
    // Task states exist from the start so status shows every task as pending.
    shared.update(|r| {
        for t in &group.tasks {
            r.status.task_states.entry(t.name.clone()).or_default();
            r.tasks.entry(t.name.clone()).or_default();
        }
    });
    advance_phase(&shared, &group.tasks);
    let mut tasks = JoinSet::new();
    for task in group.tasks.clone() {
        let first_time = !rec
            .tasks
            .get(&task.name)
            .map(|t| t.handle.is_some() || t.done)
            .unwrap_or(false)
            && rec
                .status
                .task_states
                .get(&task.name)
                .map(|s| s.events.is_empty())
                .unwrap_or(true);
        if first_time && !rec.stopping {
            shared.event(
                &task.name,
                "Received",
                "Task received by client",
                None,
                |_, _| {},
            );
        }
        tasks.spawn(run_task(ctx.clone(), shared.clone(), task));
    }
    let mut checks = JoinSet::new();
    if !rec.stopping {
        let alloc_root = ctx.state.alloc_root(&rec.alloc.id);
        for def in crate::checks::check_defs(&group, &rec.alloc, &ctx.node.address) {
            let task = match &def.target {
                crate::checks::CheckTarget::Script { task, .. } => task.clone(),
                _ => String::new(),
            };
            checks.spawn(check_loop(shared.clone(), def, alloc_root.join(task)));
        }
    }
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
                rotate_logs(&shared, &group.tasks);
                shared.update(|_| {});
            }
            _ = shared.changed.notified() => {}
        }
        advance_phase(&shared, &group.tasks);
        if !siblings_stopped {
            let failed = shared
                .snapshot()
                .status
                .task_states
                .values()
                .any(|t| t.state == TaskRunState::Dead && t.failed);
            if failed {
                siblings_stopped = true;
                shared.stop.send_replace(true);
            }
        }
    }
    checks.abort_all();
    shared.update(|_| {});
}

/// Moves the allocation's lifecycle phase forward from its tasks' states.
fn advance_phase(shared: &AllocShared, tasks: &[Task]) {
    let snap = shared.snapshot();
    let infos: Vec<(plan::Phase, bool, TaskState)> = tasks
        .iter()
        .map(|t| {
            let sidecar = t.lifecycle.as_ref().map(|l| l.sidecar).unwrap_or(false);
            let st = snap
                .status
                .task_states
                .get(&t.name)
                .cloned()
                .unwrap_or_default();
            (plan::task_phase(t.lifecycle.as_ref()), sidecar, st)
        })
        .collect();
    let p = plan::lifecycle_phase(&infos);
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
/// status changes.
async fn check_loop(
    shared: Arc<AllocShared>,
    def: crate::checks::CheckDef,
    task_dir: std::path::PathBuf,
) {
    let mut tick = tokio::time::interval(def.interval);
    loop {
        tick.tick().await;
        let running = shared
            .snapshot()
            .status
            .task_states
            .values()
            .any(|t| t.state == TaskRunState::Running);
        if !running {
            continue;
        }
        let (status, output) = crate::checks::run_check(&def, task_dir.clone()).await;
        shared.update(|r| {
            let e = r.status.checks.entry(def.name.clone()).or_default();
            if e.status != status {
                e.status = status;
                e.output = output;
                e.checked_at_ms = now_ms();
            }
        });
    }
}

fn rotate_logs(shared: &AllocShared, tasks: &[Task]) {
    let log_dir = logs::log_dir(shared.ctx.state.root(), &shared.snapshot().alloc.id);
    for t in tasks {
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
                logs::rotate_if_needed(&log_dir, &t.name, s, max_files, max_mb as u64 * 1024 * 1024)
            {
                tracing::warn!(task = %t.name, error = %e, "log rotation failed");
            }
        }
    }
}

/// Builds the driver's view of a task: directories, environment, interpolated config, rendered
/// templates.
pub fn prepare_task(ctx: &Ctx, rec: &AllocRecord, task: &Task) -> Result<TaskSpec, AgentError> {
    let alloc_root = ctx.state.alloc_root(&rec.alloc.id);
    let alloc_dir = alloc_root.join("alloc");
    let task_dir = alloc_root.join(&task.name);
    for d in [
        alloc_dir.join("logs"),
        alloc_dir.join("data"),
        alloc_dir.join("tmp"),
        task_dir.join("local"),
        task_dir.join("secrets"),
        task_dir.join("tmp"),
    ] {
        std::fs::create_dir_all(&d).map_err(|e| AgentError::io(&d, e))?;
    }
    let group = rec
        .job
        .groups
        .iter()
        .find(|g| g.name == rec.alloc.task_group)
        .cloned()
        .unwrap_or_default();
    let in_container = task.driver == "docker";
    let (ad, td, sd) = if in_container {
        (
            Path::new("/alloc").to_path_buf(),
            Path::new("/local").to_path_buf(),
            Path::new("/secrets").to_path_buf(),
        )
    } else {
        (
            alloc_dir.clone(),
            task_dir.join("local"),
            task_dir.join("secrets"),
        )
    };
    let inputs = EnvInputs {
        alloc: &rec.alloc,
        job: &rec.job,
        group: &group,
        task,
        node: &ctx.node,
        alloc_dir: &ad,
        task_dir: &td,
        secrets_dir: &sd,
        mapped_ports: in_container,
    };
    let env = task_env(&inputs);
    let vars = vars_for(&inputs, env.clone());
    let config = task
        .config
        .iter()
        .map(|(k, v)| (k.clone(), interpolate_value(v, &vars)))
        .collect();
    for t in &task.templates {
        let body = if !t.data.is_empty() {
            t.data.clone()
        } else if !t.source.is_empty() {
            let src = task_dir.join(interpolate(&t.source, &vars));
            std::fs::read_to_string(&src).map_err(|e| AgentError::io(&src, e))?
        } else {
            continue;
        };
        let dest = task_dir.join(interpolate(&t.destination, &vars));
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| AgentError::io(parent, e))?;
        }
        std::fs::write(&dest, interpolate(&body, &vars)).map_err(|e| AgentError::io(&dest, e))?;
    }
    Ok(TaskSpec {
        alloc_id: rec.alloc.id.clone(),
        node_id: ctx.node.id.clone(),
        agent_id: ctx.agent_id.clone(),
        alloc_name: rec.alloc.name.clone(),
        namespace: rec.alloc.namespace.clone(),
        job_id: rec.alloc.job_id.clone(),
        group: group.name.clone(),
        task: task.name.clone(),
        config,
        env,
        user: task.user.clone(),
        task_dir,
        alloc_dir: alloc_dir.clone(),
        log_dir: alloc_dir.join("logs"),
        resources: task.resources.clone(),
        ports: rec.alloc.ports.clone(),
        logs: task.logs.clone(),
        kill_signal: task.kill_signal.clone(),
    })
}

/// Fetches the task's artifacts into its directory (before every start, as Nomad does).
async fn fetch_artifacts(
    ctx: &Ctx,
    shared: &AllocShared,
    task: &Task,
    spec: &TaskSpec,
) -> Result<(), AgentError> {
    if task.artifacts.is_empty() {
        return Ok(());
    }
    shared.event(
        &task.name,
        "Downloading Artifacts",
        "Client is downloading artifacts",
        None,
        |_, _| {},
    );
    let vars = crate::interp::Vars {
        env: spec.env.clone(),
        attrs: ctx.node.attributes.clone(),
        node_meta: ctx.node.meta.clone(),
        ..Default::default()
    };
    for a in &task.artifacts {
        crate::artifact::fetch(a, &spec.task_dir, &vars).await?;
    }
    Ok(())
}

/// The signal that asks a task to stop (`kill_signal`, SIGTERM by default).
fn kill_signal(task: &Task) -> String {
    if task.kill_signal.is_empty() {
        "SIGTERM".to_string()
    } else {
        task.kill_signal.clone()
    }
}

fn kill_timeout(task: &Task) -> Duration {
    if task.kill_timeout_ns == 0 {
        Duration::from_secs(5)
    } else {
        Duration::from_nanos(task.kill_timeout_ns)
    }
}

/// A user-requested restart: kills the task (kill_signal, kill_timeout) and leaves it ready to
/// start again at once, outside the restart policy's attempts; counted in `restarts`.
async fn restart_in_place(
    ctx: &Ctx,
    shared: &AllocShared,
    driver: &dyn Driver,
    task: &Task,
    h: &TaskHandle,
) {
    let name = task.name.clone();
    let sig = kill_signal(task);
    shared.event(
        &name,
        "Restart Signaled",
        "User requested running tasks to restart",
        None,
        |_, _| {},
    );
    if let Err(e) = driver.stop(h, &sig, kill_timeout(task)).await {
        ctx.metrics.driver_error(driver.name());
        tracing::warn!(task = %name, error = %e, "stop for restart failed");
    }
    let x = driver.wait(h).await.unwrap_or_default();
    let _ = driver.destroy(h).await;
    ctx.metrics.task_restarts.inc();
    shared.event(
        &name,
        "Terminated",
        x.describe(),
        Some(&x),
        move |ts, tr| {
            ts.exit_code = x.exit_code;
            ts.finished_at_ms = now_ms();
            ts.state = TaskRunState::Pending;
            ts.restarts += 1;
            tr.handle = None;
        },
    );
}

/// Re-attaches to a task from its persisted handle (a task that exited meanwhile is found by
/// the wait that follows). Returns `false` when the handle names another agent's process (a data
/// dir copied from another agent): the handle is dropped, that process is left alone, and this
/// agent starts its own.
async fn reattach(
    ctx: &Ctx,
    shared: &AllocShared,
    driver: &dyn Driver,
    name: &str,
    h: &TaskHandle,
) -> bool {
    let recovered = match crate::driver::check_owner(h, &ctx.agent_id) {
        Ok(()) => driver.recover(h).await,
        Err(e) => Err(e),
    };
    match recovered {
        Ok(true) => {
            let started = h.started_at_ms;
            shared.update(|r| {
                let ts = r.status.task_states.entry(name.to_string()).or_default();
                ts.state = TaskRunState::Running;
                if ts.started_at_ms == 0 {
                    ts.started_at_ms = started;
                }
            });
            tracing::info!(task = %name, "re-attached to running task");
        }
        Ok(false) => {}
        Err(e @ AgentError::NotOurs { .. }) => {
            tracing::warn!(task = %name, error = %e, "not re-attaching");
            shared.event(name, "Not Re-attached", e.to_string(), None, |ts, tr| {
                ts.state = TaskRunState::Pending;
                tr.handle = None;
            });
            return false;
        }
        Err(e) => {
            tracing::warn!(task = %name, error = %e, "cannot tell whether the task still runs; waiting for it")
        }
    }
    true
}

/// Waits for the stop flag, or forever if the sender is gone.
async fn stopped(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Runs one task until it is done: waits for its lifecycle phase, starts it (or re-attaches to
/// what a previous agent started), supervises it, and lets the restart policy decide what
/// follows each exit.
async fn run_task(ctx: Ctx, shared: Arc<AllocShared>, task: Task) {
    let name = task.name.clone();
    // Poststop tasks run after the others were stopped: they do not listen to stop requests.
    let (_never_stop, never_rx) = watch::channel(false);
    let mut stop_rx = if plan::task_phase(task.lifecycle.as_ref()) == plan::Phase::Poststop {
        never_rx
    } else {
        shared.stop.subscribe()
    };
    let Some(driver) = ctx.drivers.get(&task.driver) else {
        let why = format!("unknown driver {:?} on this node", task.driver);
        shared.event(&name, "Driver Failure", why, None, |ts, tr| {
            ts.state = TaskRunState::Dead;
            ts.failed = true;
            ts.finished_at_ms = now_ms();
            tr.done = true;
        });
        return;
    };
    let driver = driver.as_ref();
    loop {
        let rec = shared.snapshot();
        let tr = rec.tasks.get(&name).cloned().unwrap_or_default();
        if tr.done {
            return;
        }
        if *stop_rx.borrow() && tr.handle.is_none() {
            let why = "Task was stopped before it started";
            shared.event(&name, "Killed", why, None, |ts, tr| {
                ts.state = TaskRunState::Dead;
                ts.finished_at_ms = now_ms();
                tr.done = true;
            });
            return;
        }
        // A task that has not started waits for its lifecycle phase.
        if tr.handle.is_none() && !phase_reached(&shared, &task, &mut stop_rx).await {
            continue;
        }
        let reattaching = tr.handle.is_some();
        let end = match start_or_reattach(&ctx, &shared, driver, &task, &rec, tr).await {
            Ok(h) => follow_task(&ctx, &shared, driver, &task, &h, reattaching, &mut stop_rx).await,
            Err(e) => RunEnd::Exited(start_failed(&ctx, &shared, driver, &name, e)),
        };
        let exit = match end {
            RunEnd::Exited(x) => x,
            RunEnd::Restarted | RunEnd::NotReattached => continue,
            RunEnd::Killed => return,
        };
        let Some(delay) = after_exit(&ctx, &shared, &task, exit) else {
            return;
        };
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stopped(&mut stop_rx) => {}
        }
    }
}

/// How one run of a task ended.
enum RunEnd {
    /// It exited, or could not start: its restart policy decides what follows.
    Exited(ExitResult),
    /// A user asked for a restart: it was killed and starts again at once.
    Restarted,
    /// The allocation is stopping: it was killed.
    Killed,
    /// The persisted handle named another agent's process: this agent starts its own.
    NotReattached,
}

/// Whether the allocation reached the task's lifecycle phase; if not, waits until it does or
/// the allocation stops (the caller looks again).
async fn phase_reached(
    shared: &AllocShared,
    task: &Task,
    stop_rx: &mut watch::Receiver<bool>,
) -> bool {
    let need = plan::task_phase(task.lifecycle.as_ref());
    let mut phase_rx = shared.phase.subscribe();
    if *phase_rx.borrow() >= need {
        return true;
    }
    tokio::select! {
        _ = phase_rx.wait_for(|p| *p >= need) => {}
        _ = stopped(stop_rx) => {}
    }
    false
}

/// The task's handle: the persisted one (a previous agent started it), or a fresh start after
/// building its directory and fetching its artifacts.
async fn start_or_reattach(
    ctx: &Ctx,
    shared: &AllocShared,
    driver: &dyn Driver,
    task: &Task,
    rec: &AllocRecord,
    tr: TaskRecord,
) -> Result<TaskHandle, AgentError> {
    if let Some(h) = tr.handle {
        return Ok(h);
    }
    let name = &task.name;
    shared.event(
        name,
        "Task Setup",
        "Building task directory",
        None,
        |_, _| {},
    );
    let spec = prepare_task(ctx, rec, task)?;
    fetch_artifacts(ctx, shared, task, &spec).await?;
    let h = driver.start(&spec).await?;
    ctx.metrics.task_starts.inc();
    let started = h.clone();
    shared.event(
        name,
        "Started",
        "Task started by client",
        None,
        move |ts, tr| {
            ts.state = TaskRunState::Running;
            ts.started_at_ms = started.started_at_ms;
            ts.failed = false;
            ts.exit_code = None;
            tr.handle = Some(started);
        },
    );
    Ok(h)
}

/// Why a task could not start, as its event and as the exit its restart policy judges.
fn start_failed(
    ctx: &Ctx,
    shared: &AllocShared,
    driver: &dyn Driver,
    name: &str,
    e: AgentError,
) -> ExitResult {
    ctx.metrics.driver_error(driver.name());
    let kind = match &e {
        AgentError::Driver { driver, .. } if driver == "artifact" => "Failed Artifact Download",
        _ => "Driver Failure",
    };
    shared.event(name, kind, e.to_string(), None, |_, _| {});
    ExitResult {
        error: Some(e.to_string()),
        ..Default::default()
    }
}

/// Follows a running task (shipping its logs) until it exits, a user asks for a restart, or the
/// allocation stops.
async fn follow_task(
    ctx: &Ctx,
    shared: &AllocShared,
    driver: &dyn Driver,
    task: &Task,
    h: &TaskHandle,
    reattaching: bool,
    stop_rx: &mut watch::Receiver<bool>,
) -> RunEnd {
    let name = &task.name;
    if reattaching && !reattach(ctx, shared, driver, name, h).await {
        return RunEnd::NotReattached;
    }
    ctx.metrics.tasks_running.inc();
    let ship = async {
        if let Err(e) = driver.ship_logs(h).await {
            tracing::debug!(task = %name, error = %e, "log shipping ended");
        }
        std::future::pending::<()>().await
    };
    let mut restart_rx = shared.restarts.subscribe();
    let seen = restart_rx.borrow().get(name).copied().unwrap_or(0);
    let restart_asked = async {
        if restart_rx
            .wait_for(|m| m.get(name).copied().unwrap_or(0) != seen)
            .await
            .is_err()
        {
            std::future::pending::<()>().await;
        }
    };
    let outcome = tokio::select! {
        r = driver.wait(h) => Some(Some(r)),
        _ = stopped(stop_rx) => None,
        _ = ship => None,
        _ = restart_asked => Some(None),
    };
    ctx.metrics.tasks_running.dec();
    match outcome {
        Some(None) => {
            restart_in_place(ctx, shared, driver, task, h).await;
            RunEnd::Restarted
        }
        Some(Some(Ok(x))) => {
            let _ = driver.destroy(h).await;
            RunEnd::Exited(x)
        }
        Some(Some(Err(e))) => {
            ctx.metrics.driver_error(driver.name());
            RunEnd::Exited(ExitResult {
                error: Some(e.to_string()),
                ..Default::default()
            })
        }
        None => {
            kill(ctx, shared, driver, task, h).await;
            RunEnd::Killed
        }
    }
}

/// Stops a task for good: its `kill_signal`, `kill_timeout` later a force kill.
async fn kill(ctx: &Ctx, shared: &AllocShared, driver: &dyn Driver, task: &Task, h: &TaskHandle) {
    let name = &task.name;
    let sig = kill_signal(task);
    let waiting = format!(
        "Sent interrupt {sig}; waiting {:?} before force kill",
        kill_timeout(task)
    );
    shared.event(name, "Killing", waiting, None, |_, _| {});
    if let Err(e) = driver.stop(h, &sig, kill_timeout(task)).await {
        ctx.metrics.driver_error(driver.name());
        tracing::warn!(task = %name, error = %e, "stop failed");
    }
    let x = driver.wait(h).await.unwrap_or_default();
    let _ = driver.destroy(h).await;
    let killed = "Task successfully killed";
    shared.event(name, "Killed", killed, Some(&x), move |ts, tr| {
        ts.state = TaskRunState::Dead;
        ts.exit_code = x.exit_code;
        ts.finished_at_ms = now_ms();
        tr.done = true;
        tr.handle = None;
    });
}

/// Records an exit and asks the restart policy (the task's, else its group's, else the job
/// type's default) what follows: `Some(delay)` to start again after it, `None` when the task is
/// done (completed, or failed for good).
fn after_exit(ctx: &Ctx, shared: &AllocShared, task: &Task, exit: ExitResult) -> Option<Duration> {
    let name = task.name.clone();
    let rec = shared.snapshot();
    let policy = task
        .restart
        .clone()
        .or_else(|| {
            rec.job
                .groups
                .iter()
                .find(|g| g.name == rec.alloc.task_group)
                .and_then(|g| g.restart.clone())
        })
        .unwrap_or_else(|| restart::default_policy(rec.job.job_type));
    let tracker = rec.tasks.get(&name).map(|t| t.tracker).unwrap_or_default();
    // Hooks that are not sidecars run once: exit 0 completes them, as a batch task.
    let job_type = if plan::is_ephemeral(task.lifecycle.as_ref()) {
        nomos_api::JobType::Batch
    } else {
        rec.job.job_type
    };
    let (decision, tracker) = restart::decide(&policy, job_type, &exit, tracker, now_ms());
    if exit.error.is_none() {
        let x = exit.clone();
        shared.event(
            &name,
            "Terminated",
            exit.describe(),
            Some(&exit),
            move |ts, tr| {
                ts.exit_code = x.exit_code;
                ts.finished_at_ms = now_ms();
                tr.handle = None;
            },
        );
    } else {
        shared.update(|r| {
            r.tasks.entry(name.clone()).or_default().handle = None;
        });
    }
    match decision {
        RestartDecision::Complete => {
            shared.update(|r| {
                let ts = r.status.task_states.entry(name.clone()).or_default();
                ts.state = TaskRunState::Dead;
                ts.failed = false;
                r.tasks.entry(name.clone()).or_default().done = true;
            });
            None
        }
        RestartDecision::Fail { reason } => {
            shared.event(&name, "Not Restarting", reason, None, move |ts, tr| {
                ts.state = TaskRunState::Dead;
                ts.failed = true;
                ts.finished_at_ms = now_ms();
                tr.tracker = tracker;
                tr.done = true;
            });
            None
        }
        RestartDecision::Restart { delay, reason } => {
            ctx.metrics.task_restarts.inc();
            let why = format!("{reason}; restarting in {delay:?}");
            shared.event(&name, "Restarting", why, None, move |ts, tr| {
                ts.state = TaskRunState::Pending;
                ts.restarts += 1;
                tr.tracker = tracker;
            });
            Some(delay)
        }
    }
}
