//! What every runner shares: the agent's [`Ctx`], the [`LiveAllocs`] the HTTP endpoint restarts
//! tasks through, and each allocation's [`AllocShared`] record with the one way to change it
//! ([`AllocShared::update`]: recompute the status, persist, report).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use nomos_api::{Node, TaskEvent, TaskState};
use tokio::sync::{mpsc, watch, Notify};

use super::status::refresh_status;
use crate::config::AgentConfig;
use crate::driver::{now_ms, Driver, ExitResult, TaskHandle};
use crate::metrics::Metrics;
use crate::plan;
use crate::report::Report;
use crate::state::{AllocRecord, StateDir, TaskRecord};

/// Events kept per task, newest last (as Nomad keeps 10).
const MAX_EVENTS: usize = 10;

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
    /// The store, for the workload identities the servers issue to this node's tasks.
    pub store: std::sync::Arc<dyn nomos_store::Store>,
    /// The servers' API, which templates read Variables from.
    pub servers: crate::workload::ServerLink,
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
    /// The driver could not deliver a signal.
    SignalFailed(String),
}

impl std::fmt::Display for RestartRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestartRefusal::UnknownAlloc => write!(f, "no such allocation on this node"),
            RestartRefusal::UnknownTask(t) => write!(f, "the allocation has no task {t:?}"),
            RestartRefusal::NotRunning => write!(f, "no task asked for is running"),
            RestartRefusal::SignalFailed(why) => write!(f, "sending the signal failed: {why}"),
        }
    }
}

impl LiveAllocs {
    pub(super) fn insert(&self, id: String, shared: Arc<AllocShared>) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, shared);
    }

    pub(super) fn remove(&self, id: &str, shared: &Arc<AllocShared>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.get(id).map(|s| Arc::ptr_eq(s, shared)).unwrap_or(false) {
            map.remove(id);
        }
    }

    fn get(&self, alloc: &str) -> Result<Arc<AllocShared>, RestartRefusal> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(alloc)
            .cloned()
            .ok_or(RestartRefusal::UnknownAlloc)
    }

    /// Restarts `task` (or every running task) of `alloc` in place; returns the tasks signalled.
    pub fn restart(&self, alloc: &str, task: Option<&str>) -> Result<Vec<String>, RestartRefusal> {
        let shared = self.get(alloc)?;
        shared.request_restart(task, USER_RESTART)
    }

    /// Sends `signal` to `task` (or every running task) of `alloc`, with a `Signaling` event on
    /// each; returns the tasks signalled.
    pub async fn signal(
        &self,
        alloc: &str,
        task: Option<&str>,
        signal: &str,
    ) -> Result<Vec<String>, RestartRefusal> {
        let shared = self.get(alloc)?;
        let targets = shared.signal_targets(task)?;
        let mut sent = Vec::new();
        for (name, driver, handle) in targets {
            let why = format!("Task being sent signal {signal}");
            shared.event(&name, "Signaling", why, None, |_, _| {});
            driver
                .signal(&handle, signal)
                .await
                .map_err(|e| RestartRefusal::SignalFailed(e.to_string()))?;
            sent.push(name);
        }
        Ok(sent)
    }
}

impl LiveAllocs {
    /// Starts an interactive command inside `task` of `alloc` (`nctl alloc exec`), through
    /// the task's driver.
    pub async fn exec_session(
        &self,
        alloc: &str,
        task: &str,
        req: &crate::driver::SessionRequest,
    ) -> Result<crate::driver::ExecSession, ExecRefusal> {
        let shared = self.get(alloc).map_err(ExecRefusal::Refused)?;
        let (_, driver, handle) = shared
            .signal_targets(Some(task))
            .map_err(ExecRefusal::Refused)?
            .remove(0);
        driver
            .exec_session(&handle, req)
            .await
            .map_err(ExecRefusal::Driver)
    }
}

/// Why a command could not start inside a task.
#[derive(Debug)]
pub enum ExecRefusal {
    /// No such allocation or task, or the task is not running.
    Refused(RestartRefusal),
    /// The driver could not start it (or has no way in).
    Driver(crate::error::AgentError),
}

impl LiveAllocs {
    /// The resource usage of `alloc`'s running tasks, with when each started (Unix ns); a
    /// task whose driver cannot tell is left out.
    pub async fn usage(
        &self,
        alloc: &str,
    ) -> Result<Vec<(String, crate::driver::TaskStats, i64)>, RestartRefusal> {
        let shared = self.get(alloc)?;
        let started = shared.read(|rec| {
            rec.status
                .task_states
                .iter()
                .map(|(name, s)| (name.clone(), s.started_at_ms.saturating_mul(1_000_000)))
                .collect::<HashMap<_, _>>()
        });
        let mut out = Vec::new();
        for (name, driver, handle) in shared.signal_targets(None)? {
            match driver.stats(&handle).await {
                Ok(stats) => {
                    let since = started.get(&name).copied().unwrap_or(0);
                    out.push((name, stats, since));
                }
                Err(e) => tracing::debug!(alloc, task = %name, error = %e, "no usage"),
            }
        }
        Ok(out)
    }
}

impl LiveAllocs {
    /// Every supervised allocation with a running task, sampled through its drivers, for the
    /// usage report; `node` converts reserved cores to MHz.
    pub async fn sample_all(&self, node: &nomos_api::Node) -> Vec<crate::usage::AllocSample> {
        let all: Vec<Arc<AllocShared>> = {
            let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            map.values().cloned().collect()
        };
        let per_core = node.resources.cpu_mhz as u64 / node.resources.cores.max(1) as u64;
        let mut out = Vec::new();
        for shared in all {
            let mut sample = shared.read(|rec| {
                let group = rec
                    .job
                    .groups
                    .iter()
                    .find(|g| g.name == rec.alloc.task_group);
                let tasks = group.map(|g| g.tasks.as_slice()).unwrap_or_default();
                crate::usage::AllocSample {
                    id: rec.alloc.id.clone(),
                    namespace: rec.alloc.namespace.clone(),
                    job: rec.alloc.job_id.clone(),
                    group: rec.alloc.task_group.clone(),
                    cpu_mhz_allocated: tasks
                        .iter()
                        .map(|t| t.resources.cpu as u64 + t.resources.cores as u64 * per_core)
                        .sum(),
                    memory_mb_allocated: tasks.iter().map(|t| t.resources.memory_mb as u64).sum(),
                    tasks: Vec::new(),
                }
            });
            let Ok(targets) = shared.signal_targets(None) else {
                continue;
            };
            for (name, driver, handle) in targets {
                match driver.stats(&handle).await {
                    Ok(stats) => sample.tasks.push((name, stats)),
                    Err(e) => {
                        tracing::debug!(alloc = %sample.id, task = %name, error = %e, "no usage")
                    }
                }
            }
            if !sample.tasks.is_empty() {
                out.push(sample);
            }
        }
        out
    }
}

/// A running task a signal goes to: its name, driver and handle.
type SignalTarget = (String, Arc<dyn Driver>, TaskHandle);

/// The restart requests a task has seen, and why the last one was made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestartAsk {
    pub count: u64,
    pub reason: String,
}

/// The reason a user's `nctl alloc restart` gives its tasks.
pub const USER_RESTART: &str = "User requested running tasks to restart";

/// An allocation's record plus the means to change it.
pub struct AllocShared {
    pub rec: Mutex<AllocRecord>,
    pub changed: Notify,
    pub stop: watch::Sender<bool>,
    /// Lifecycle phase reached (see [`plan::lifecycle_phase`]); tasks wait for theirs.
    pub phase: watch::Sender<plan::Phase>,
    /// Restart requests per task: a counter each task loop watches, with the last request's
    /// reason (its task event).
    pub restarts: watch::Sender<HashMap<String, RestartAsk>>,
    pub(super) ctx: Ctx,
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

    /// Asks `task` (or every running task) to restart in place, for `reason`; returns the tasks
    /// signalled.
    pub fn request_restart(
        &self,
        task: Option<&str>,
        reason: &str,
    ) -> Result<Vec<String>, RestartRefusal> {
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
                let ask = m.entry(n.clone()).or_default();
                ask.count += 1;
                ask.reason = reason.to_string();
            }
        });
        Ok(names)
    }

    /// The running tasks a signal goes to (`task`, or every running one), with their drivers
    /// and handles.
    fn signal_targets(&self, task: Option<&str>) -> Result<Vec<SignalTarget>, RestartRefusal> {
        let rec = self.snapshot();
        if let Some(t) = task {
            if !rec.tasks.contains_key(t) && !rec.status.task_states.contains_key(t) {
                return Err(RestartRefusal::UnknownTask(t.to_string()));
            }
        }
        let targets: Vec<_> = rec
            .tasks
            .iter()
            .filter(|(name, t)| task.is_none_or(|w| w == *name) && !t.done)
            .filter_map(|(name, t)| {
                let handle = t.handle.clone()?;
                let driver = self.ctx.drivers.get(&handle.driver)?;
                Some((name.clone(), driver, handle))
            })
            .collect();
        if targets.is_empty() || rec.stopping {
            return Err(RestartRefusal::NotRunning);
        }
        Ok(targets)
    }

    /// Reads the record in place (no copy); `f` must not call back into this allocation.
    pub(super) fn read<R>(&self, f: impl FnOnce(&AllocRecord) -> R) -> R {
        f(&self.rec.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub(super) fn snapshot(&self) -> AllocRecord {
        self.rec.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(super) fn event(
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
