//! What comes before a driver starts a task: its directories, environment, interpolated
//! config and rendered templates ([`prepare_task`]), and its artifacts, all kept inside the
//! task directory ([`crate::confine`]).

use std::path::Path;

use nomos_api::{Task, Template};

use super::shared::{AllocShared, Ctx};
use crate::confine::{check_name, read_source, rel_path, Beneath};
use crate::driver::TaskSpec;
use crate::env::{task_env, vars_for, EnvInputs};
use crate::error::AgentError;
use crate::interp::{interpolate, interpolate_value, Vars};
use crate::state::AllocRecord;

/// Makes the directories `names` beneath `root`, refusing a link in the way.
fn make_dirs(root: &Path, names: &[&str]) -> Result<Beneath, AgentError> {
    let root = Beneath::open(root)?;
    for d in names {
        root.dir(Path::new(d))
            .map_err(|e| e.about("Task directory", &format!("{d:?}")))?;
    }
    Ok(root)
}

/// Renders one template into the task directory; its source and destination are confined to
/// it (see [`crate::confine`]), a host source only with `allow_host_paths`.
fn render_template(
    task: &Beneath,
    t: &Template,
    vars: &Vars,
    allow_host_paths: bool,
) -> Result<(), AgentError> {
    let body = if !t.data.is_empty() {
        t.data.clone()
    } else if !t.source.is_empty() {
        let src = interpolate(&t.source, vars);
        let bytes = read_source(task, "Template", &src, allow_host_paths)?;
        String::from_utf8(bytes).map_err(|e| {
            let invalid = std::io::Error::new(std::io::ErrorKind::InvalidData, e);
            AgentError::io(task.path().join(&src), invalid)
        })?
    } else {
        return Ok(());
    };
    let dest = interpolate(&t.destination, vars);
    let rel = rel_path(&dest).ok_or_else(|| {
        AgentError::sandbox(
            "Template",
            format!("destination {dest:?} is outside the task directory"),
        )
    })?;
    task.write(&rel, interpolate(&body, vars).as_bytes(), 0o644)
        .map_err(|e| e.about("Template", &format!("destination {dest:?}")))
}

/// Builds the driver's view of a task: directories, environment, interpolated config, rendered
/// templates. A task name or allocation id that is not one path component, and a template
/// path outside the task directory, are refused ([`AgentError::Sandbox`]) before anything is
/// made.
pub fn prepare_task(ctx: &Ctx, rec: &AllocRecord, task: &Task) -> Result<TaskSpec, AgentError> {
    check_name("Allocation", "id", &rec.alloc.id)?;
    check_name("Task", "name", &task.name)?;
    let alloc_root = ctx.state.alloc_root(&rec.alloc.id);
    let alloc_dir = alloc_root.join("alloc");
    let task_dir = alloc_root.join(&task.name);
    make_dirs(&alloc_dir, &["logs", "data", "tmp"])?;
    let root = make_dirs(&task_dir, &["local", "secrets", "tmp", ".nomos"])?;
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
        render_template(&root, t, &vars, ctx.config.allow_host_paths)?;
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
    let root = Beneath::open(&spec.task_dir)?;
    for a in &task.artifacts {
        crate::artifact::fetch(a, &root, &vars, ctx.config.allow_host_paths).await?;
    }
    Ok(())
}
