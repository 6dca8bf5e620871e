//! `purge`: cleans a node completely (what `nctl agent purge` runs, with the agent stopped):
//! stops every task this data dir's agent started, removes their containers and cgroups, and
//! deletes the data dir. Tasks of other agents are never touched, even when this data dir's
//! state files name them (a copy of another agent's data dir).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::driver::docker::DockerDriver;
use crate::driver::exec::ExecDriver;
use crate::driver::qemu::QemuDriver;
use crate::driver::raw_exec::RawExecDriver;
use crate::driver::{check_owner, Driver, TaskHandle};
use crate::error::AgentError;
use crate::state::StateDir;

/// What [`purge`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeReport {
    pub allocations: usize,
    pub tasks_stopped: usize,
}

/// Cleans a node completely: stops every task this agent's data dir knows about and that this
/// agent started (SIGTERM, then SIGKILL after each task's kill timeout), removes their
/// containers, and deletes the data dir. Run it with the agent stopped. A task whose state
/// cannot be read now stops the purge with that error (the data dir is kept, so nothing that may
/// still run is forgotten).
pub async fn purge(data_dir: impl AsRef<Path>) -> Result<PurgeReport, AgentError> {
    let data_dir = data_dir.as_ref();
    let state = StateDir::new(data_dir);
    let agent_id = state.agent_id();
    let mut report = PurgeReport::default();
    let mut docker: Option<DockerDriver> = None;
    for rec in state.load_all() {
        report.allocations += 1;
        let group = rec
            .job
            .groups
            .iter()
            .find(|g| g.name == rec.alloc.task_group);
        for (name, tr) in &rec.tasks {
            let Some(h) = &tr.handle else { continue };
            let task = group
                .and_then(|g| g.tasks.iter().find(|t| &t.name == name))
                .cloned()
                .unwrap_or_default();
            let driver: Arc<dyn Driver> = match h.driver.as_str() {
                "docker" => {
                    if docker.is_none() {
                        docker = Some(DockerDriver::new().await);
                    }
                    Arc::new(docker.clone().unwrap_or_default())
                }
                // A java task is an exec task with a JVM for its command.
                "exec" | "java" => Arc::new(ExecDriver::new(0)),
                "qemu" => Arc::new(QemuDriver::new()),
                _ => Arc::new(RawExecDriver),
            };
            if purge_task(driver.as_ref(), h, &task, &agent_id).await? {
                report.tasks_stopped += 1;
            }
        }
    }
    if data_dir.exists() {
        std::fs::remove_dir_all(data_dir).map_err(|e| AgentError::io(data_dir, e))?;
    }
    Ok(report)
}

/// Stops one task (its kill signal, its kill timeout, SIGKILL) and releases what it held;
/// `true` if it was running. A task another agent started is left alone.
async fn purge_task(
    driver: &dyn Driver,
    h: &TaskHandle,
    task: &nomos_api::Task,
    agent_id: &str,
) -> Result<bool, AgentError> {
    let running = match check_owner(h, agent_id) {
        Ok(()) => driver.recover(h).await,
        Err(e) => Err(e),
    };
    let running = match running {
        Ok(running) => running,
        Err(e @ AgentError::NotOurs { .. }) => {
            tracing::warn!(task = %h.task, error = %e, "purge leaves a task of another agent alone");
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    if running {
        let sig = if task.kill_signal.is_empty() {
            "SIGTERM"
        } else {
            task.kill_signal.as_str()
        };
        let timeout = match task.kill_timeout_ns {
            0 => Duration::from_secs(5),
            ns => Duration::from_nanos(ns),
        };
        driver.stop(h, sig, timeout).await?;
    }
    let _ = driver.destroy(h).await;
    Ok(running)
}
