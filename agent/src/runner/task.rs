//! One loop per task: wait for its lifecycle phase, start it (or re-attach to what a previous
//! agent started), follow it until it exits, a user or a changed template asks for a restart or
//! the allocation stops, and let the restart policy decide what follows each exit. A task whose
//! templates read keys or Variables not there yet stays pending, outside the restart policy,
//! until they appear or the allocation stops.

use std::sync::Arc;
use std::time::Duration;

use futures::future::{FusedFuture, FutureExt};
use nomos_api::{Task, TaskRunState};
use tokio::sync::watch;

use super::prepare::{fetch_artifacts, prepare_task};
use super::rerender::TemplateEnd;
use super::shared::{AllocShared, Ctx};
use crate::driver::{now_ms, Driver, ExitResult, TaskHandle};
use crate::error::AgentError;
use crate::plan;
use crate::restart::{self, RestartDecision};
use crate::state::TaskRecord;

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

/// Why a running task restarts outside its restart policy.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RestartCause {
    /// A request through [`AllocShared::request_restart`] (a user's `nctl alloc restart`, or
    /// a failing check's `check_restart`), with its reason; its event is written here.
    Asked(String),
    /// A template with `change_mode = "restart"` changed (its event was written already).
    Template,
}

/// A restart asked for by a user or a template: kills the task (kill_signal, kill_timeout) and
/// leaves it ready to start again at once, outside the restart policy's attempts; counted in
/// `restarts`.
async fn restart_in_place(
    ctx: &Ctx,
    shared: &AllocShared,
    driver: &dyn Driver,
    task: &Task,
    h: &TaskHandle,
    cause: RestartCause,
) {
    let name = task.name.clone();
    let sig = kill_signal(task);
    if let RestartCause::Asked(why) = cause {
        shared.event(&name, "Restart Signaled", why, None, |_, _| {});
    }
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
pub(super) async fn run_task(ctx: Ctx, shared: Arc<AllocShared>, task: Task) {
    let name = task.name.clone();
    // Poststop tasks run after the others were stopped: they do not listen to stop requests.
    let (_never_stop, never_rx) = watch::channel(false);
    let mut stop_rx = if plan::task_phase(task.lifecycle.as_ref()) == plan::Phase::Poststop {
        never_rx
    } else {
        shared.stop.subscribe()
    };
    if let Err(e) = crate::confine::check_name("Task", "name", &name) {
        refuse(&shared, &name, e);
        return;
    }
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
    // The "Missing: ..." event last written while the task waits for its templates' keys.
    let mut waiting: Option<String> = None;
    loop {
        let tr = shared.read(|r| r.tasks.get(&name).cloned().unwrap_or_default());
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
        // Boxed: starting a task (its directory, templates, artifacts) needs far more state
        // than following it, and a task spends its life being followed.
        let announce = waiting.is_none();
        let started = Box::pin(start_or_reattach(
            &ctx, &shared, driver, &task, tr, announce,
        ))
        .await;
        let end = match started {
            Ok(h) => {
                waiting = None;
                follow_task(&ctx, &shared, driver, &task, &h, reattaching, &mut stop_rx).await
            }
            Err(e @ AgentError::TemplateMissing(_)) => {
                let why = e.to_string();
                if waiting.as_deref() != Some(why.as_str()) {
                    shared.event(&name, "Template", why.clone(), None, |_, _| {});
                    waiting = Some(why);
                }
                if let AgentError::TemplateMissing(missing) = e {
                    wait_for_missing(&ctx, &missing, &mut stop_rx).await;
                }
                continue;
            }
            Err(e @ AgentError::Sandbox { .. }) => {
                refuse(&shared, &name, e);
                return;
            }
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

/// Waits until what a template missed may be there: the key-value space changed after the
/// revision its keys were missing at, [`VARIABLES_RECHECK`] passed for a missing Variable (the
/// servers are asked again), or [`KEYS_RECHECK`] passed; or until the allocation stops. The
/// caller renders again.
async fn wait_for_missing(
    ctx: &Ctx,
    missing: &crate::templates::Missing,
    stop_rx: &mut watch::Receiver<bool>,
) {
    let keys = async {
        if missing.revision == 0 {
            return std::future::pending().await;
        }
        kv_changed(ctx, missing.revision).await
    };
    let variables = async {
        if !missing.variables {
            return std::future::pending().await;
        }
        tokio::time::sleep(VARIABLES_RECHECK).await
    };
    tokio::select! {
        _ = keys => {}
        _ = variables => {}
        _ = stopped(stop_rx) => {}
        _ = tokio::time::sleep(KEYS_RECHECK) => {}
    }
}

/// Resolves once the key-value space changed after `revision`, or a second after a watch
/// could not be had (the store is away, the revision compacted).
async fn kv_changed(ctx: &Ctx, revision: i64) {
    use futures::StreamExt;
    let sel = nomos_store::KeySelector::prefix(nomos_store::keys::KV_PREFIX.as_bytes().to_vec());
    let opts = nomos_store::WatchOptions {
        start_revision: revision + 1,
        ..Default::default()
    };
    let first = match ctx.store.watch(sel, opts).await {
        Ok(mut w) => w.next().await,
        Err(_) => None,
    };
    if !matches!(first, Some(Ok(_))) {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// How long a task waiting for its templates' keys waits before rendering again even though no
/// change was seen (level-triggered: a missed watch event costs at most this).
const KEYS_RECHECK: Duration = Duration::from_secs(60);

/// How often a task waiting for a Variable asks the servers again: Variables are read through
/// their API, which the agent cannot watch (on etcd a node may not read `/nomos/vars/`).
const VARIABLES_RECHECK: Duration = Duration::from_secs(1);

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
/// building its directory (announced with a "Task Setup" event when `announce`), rendering its
/// templates and fetching its artifacts. A template waiting for a key fails it with
/// [`AgentError::TemplateMissing`]: nothing starts before every template rendered.
async fn start_or_reattach(
    ctx: &Ctx,
    shared: &AllocShared,
    driver: &dyn Driver,
    task: &Task,
    tr: TaskRecord,
    announce: bool,
) -> Result<TaskHandle, AgentError> {
    if let Some(h) = tr.handle {
        return Ok(h);
    }
    let name = &task.name;
    if announce {
        let why = "Building task directory";
        shared.event(name, "Task Setup", why, None, |_, _| {});
    }
    let rec = shared.snapshot();
    let spec = prepare_task(ctx, &rec, task).await?;
    drop(rec);
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

/// Fails a task for good, before it starts, because a path or name in its spec would leave its
/// directory ([`AgentError::Sandbox`]): retrying cannot help, so the restart policy is not
/// asked (Nomad fails such a task in its prestart).
fn refuse(shared: &AllocShared, name: &str, e: AgentError) {
    let kind = match &e {
        AgentError::Sandbox { what, .. } if what == "Artifact" => "Failed Artifact Download",
        AgentError::Sandbox { what, .. } if what == "Task" => "Failed Validation",
        _ => "Setup Failure",
    };
    tracing::warn!(task = %name, error = %e, "task refused before it started");
    shared.event(name, kind, e.to_string(), None, |ts, tr| {
        ts.state = TaskRunState::Dead;
        ts.failed = true;
        ts.finished_at_ms = now_ms();
        tr.done = true;
    });
}

/// Why a task could not start, as its event and as the exit its restart policy judges.
fn start_failed(
    ctx: &Ctx,
    shared: &AllocShared,
    driver: &dyn Driver,
    name: &str,
    e: AgentError,
) -> ExitResult {
    // Before the driver is asked: a template that did not render, an identity not issued.
    let hook = matches!(
        e,
        AgentError::Template(_) | AgentError::Identity(_) | AgentError::Servers(_)
    );
    if !hook {
        ctx.metrics.driver_error(driver.name());
    }
    let kind = match &e {
        AgentError::Driver { driver, .. } if driver == "artifact" => "Failed Artifact Download",
        _ if hook => "Task hook failed",
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
    // Fused so that, once the task exits, what it wrote last can still be copied (below).
    let mut shipping = Box::pin(driver.ship_logs(h).fuse());
    let ship = async {
        if let Err(e) = (&mut shipping).await {
            tracing::debug!(task = %name, error = %e, "log shipping ended");
        }
        std::future::pending::<()>().await
    };
    let mut restart_rx = shared.restarts.subscribe();
    let count = |m: &std::collections::HashMap<String, super::shared::RestartAsk>| {
        m.get(name).map_or(0, |a| a.count)
    };
    let seen = count(&restart_rx.borrow());
    let restart_asked = async {
        let asked = restart_rx
            .wait_for(|m| count(m) != seen)
            .await
            .map(|m| m.get(name).map(|a| a.reason.clone()).unwrap_or_default());
        match asked {
            Ok(why) => why,
            Err(_) => std::future::pending().await,
        }
    };
    let templates_changed = super::rerender::watch_templates(ctx, shared, driver, task, h);
    let mut failed = None;
    let outcome = tokio::select! {
        r = driver.wait(h) => Some(Ok(r)),
        _ = stopped(stop_rx) => None,
        _ = ship => None,
        why = restart_asked => Some(Err(RestartCause::Asked(why))),
        end = templates_changed => match end {
            TemplateEnd::Restart => Some(Err(RestartCause::Template)),
            TemplateEnd::Kill(why) => {
                failed = Some(why);
                None
            }
        },
    };
    ctx.metrics.tasks_running.dec();
    if matches!(outcome, Some(Ok(_))) && !shipping.is_terminated() {
        // The task exited: the last of its output may still be on its way (docker's log
        // stream ends a moment after the container). Wait for it, for a bounded time.
        if let Ok(Err(e)) = tokio::time::timeout(LOG_DRAIN, &mut shipping).await {
            tracing::debug!(task = %name, error = %e, "log shipping ended");
        }
    }
    if let Some(why) = failed {
        kill(ctx, shared, driver, task, h, Some(why)).await;
        return RunEnd::Killed;
    }
    match outcome {
        Some(Err(cause)) => {
            restart_in_place(ctx, shared, driver, task, h, cause).await;
            RunEnd::Restarted
        }
        Some(Ok(Ok(x))) => {
            let _ = driver.destroy(h).await;
            RunEnd::Exited(x)
        }
        Some(Ok(Err(e))) => {
            ctx.metrics.driver_error(driver.name());
            RunEnd::Exited(ExitResult {
                error: Some(e.to_string()),
                ..Default::default()
            })
        }
        None => {
            kill(ctx, shared, driver, task, h, None).await;
            RunEnd::Killed
        }
    }
}

/// How long an exited task's last output may take to reach its log files.
const LOG_DRAIN: Duration = Duration::from_secs(5);

/// Stops a task for good: its `kill_signal`, `kill_timeout` later a force kill. With a reason
/// (`failure`, its `Killing` event) the task ends failed and is not restarted.
async fn kill(
    ctx: &Ctx,
    shared: &AllocShared,
    driver: &dyn Driver,
    task: &Task,
    h: &TaskHandle,
    failure: Option<String>,
) {
    let name = &task.name;
    let sig = kill_signal(task);
    let waiting = format!(
        "Sent interrupt {sig}; waiting {:?} before force kill",
        kill_timeout(task)
    );
    let failed = failure.is_some();
    let waiting = match failure {
        Some(why) => format!("{why}; {waiting}"),
        None => waiting,
    };
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
        ts.failed = failed;
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
