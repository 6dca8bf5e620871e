//! What comes before a driver starts a task: its directories, environment, interpolated
//! config and rendered templates ([`prepare_task`]), and its artifacts.

use std::path::Path;

use nomos_api::Task;

use super::shared::{AllocShared, Ctx};
use crate::driver::TaskSpec;
use crate::env::{task_env, vars_for, EnvInputs};
use crate::error::AgentError;
use crate::interp::{interpolate, interpolate_value};
use crate::state::AllocRecord;

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
pub(super) async fn fetch_artifacts(
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
