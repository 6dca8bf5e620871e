//! What comes before a driver starts a task: its directories, environment, interpolated
//! config and rendered templates ([`prepare_task`]), and its artifacts, all kept inside the
//! task directory ([`crate::confine`]).

use std::path::Path;

use nomos_api::{Task, Template};
use std::collections::BTreeMap;

use super::shared::{AllocShared, Ctx};
use crate::confine::{check_name, read_source, rel_path, Beneath};
use crate::driver::TaskSpec;
use crate::env::{task_env, vars_for, EnvInputs};
use crate::error::AgentError;
use crate::interp::{interpolate, interpolate_value, Vars};
use crate::state::AllocRecord;
use crate::{templates, volume_mounts, workload};

/// Makes the directories `names` beneath `root`, refusing a link in the way.
fn make_dirs(root: &Path, names: &[&str]) -> Result<Beneath, AgentError> {
    let root = Beneath::open(root)?;
    for d in names {
        root.dir(Path::new(d))
            .map_err(|e| e.about("Task directory", &format!("{d:?}")))?;
    }
    Ok(root)
}

/// One template block read and parsed: where it goes, its body, and its parsed form when the
/// body holds actions.
struct LoadedTemplate {
    dest: std::path::PathBuf,
    body: String,
    parsed: Option<nomos_template::Template>,
    mode: u32,
    owner: templates::Owner,
}

/// Reads a template's body (its `data`, or its `source` confined to the task directory, a host
/// source only with `allow_host_paths`), interpolates `${...}` and parses it.
fn load_template(
    task: &Beneath,
    t: &Template,
    index: usize,
    vars: &Vars,
    allow_host_paths: bool,
) -> Result<Option<LoadedTemplate>, AgentError> {
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
        return Ok(None);
    };
    let dest = interpolate(&t.destination, vars);
    let rel = rel_path(&dest).ok_or_else(|| {
        AgentError::sandbox(
            "Template",
            format!("destination {dest:?} is outside the task directory"),
        )
    })?;
    let body = interpolate(&body, vars);
    let parsed = templates::parse(&format!("template[{index}]"), &body, t)
        .map_err(|e| AgentError::Template(e.to_string()))?;
    let (euid, egid) = (nix::unistd::geteuid(), nix::unistd::getegid());
    let owner = templates::file_owner(t.uid, t.gid, euid.as_raw(), egid.as_raw())
        .map_err(|e| AgentError::Template(format!("template[{index}]: {e}")))?;
    Ok(Some(LoadedTemplate {
        dest: rel,
        body,
        parsed,
        mode: file_mode(&t.perms)?,
        owner,
    }))
}

/// Writes a rendered template to its destination, with its mode and owner.
fn write_template(root: &Beneath, loaded: &LoadedTemplate, text: &str) -> Result<(), AgentError> {
    use std::io::Write;
    let about = |e: AgentError| {
        e.about(
            "Template",
            &format!("destination {:?}", loaded.dest.display()),
        )
    };
    let path = root.path().join(&loaded.dest);
    let mut file = root.create(&loaded.dest, loaded.mode).map_err(about)?;
    file.write_all(text.as_bytes())
        .map_err(|e| AgentError::io(&path, e))?;
    if let (None, None) = loaded.owner {
        return Ok(());
    }
    let (uid, gid) = loaded.owner;
    std::os::unix::fs::fchown(&file, uid, gid).map_err(|e| {
        AgentError::Template(format!(
            "changing the owner of {} to uid {uid:?} gid {gid:?}: {e}",
            path.display()
        ))
    })
}

/// A template's `perms` (octal, `0644` when empty).
fn file_mode(perms: &str) -> Result<u32, AgentError> {
    if perms.is_empty() {
        return Ok(0o644);
    }
    u32::from_str_radix(perms, 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| {
            AgentError::Template(format!("perms {perms:?} is not an octal mode such as 0644"))
        })
}

/// Renders one loaded template and returns its text. A template with actions renders on a
/// blocking thread, as its functions call the servers or read the store.
async fn render_template(
    ctx: &Ctx,
    loaded: &LoadedTemplate,
    env: &BTreeMap<String, String>,
    namespace: &str,
    token: Option<&str>,
    task_dir: &Path,
) -> Result<String, AgentError> {
    let Some(parsed) = loaded.parsed.clone() else {
        return Ok(loaded.body.clone());
    };
    let env = env.clone();
    let namespace = namespace.to_string();
    let token = token.map(str::to_string);
    let link = ctx.servers.clone();
    let store = ctx.store.clone();
    let runtime = tokio::runtime::Handle::current();
    let task_dir = task_dir.to_path_buf();
    let allow_host_paths = ctx.config.allow_host_paths;
    tokio::task::spawn_blocking(move || {
        let sources = templates::TaskSources {
            env: &env,
            namespace: &namespace,
            variables: token.as_deref().map(|t| (&link, t)),
            runtime,
            catalogue: &*store,
            files: Some((&task_dir, allow_host_paths)),
            missing: Default::default(),
        };
        let rendered = parsed.render(&nomos_template::Value::Null, &sources);
        // A key or Variable not there yet blocks the template (an error after it may be its
        // consequence).
        let missing = sources.missing();
        if !missing.deps.is_empty() {
            return Err(AgentError::TemplateMissing(missing));
        }
        rendered.map_err(|e| AgentError::Template(e.to_string()))
    })
    .await
    .map_err(|e| AgentError::Template(format!("render stopped: {e}")))?
}

/// The JWT the servers issued for this task (waited for: they sign it on seeing the
/// allocation).
pub(super) async fn task_token(
    ctx: &Ctx,
    rec: &AllocRecord,
    task: &Task,
) -> Result<String, AgentError> {
    workload::task_token(
        ctx.store.as_ref(),
        &ctx.config.name,
        &rec.alloc.id,
        &task.name,
        workload::IDENTITY_WAIT,
    )
    .await
}

/// Hands the task its identity as its `identity` block asks: `secrets/nomad_token`
/// (`file = true`, mode 0600) and `NOMAD_TOKEN` (`env = true`). Returns the token when it was
/// fetched.
async fn expose_identity(
    ctx: &Ctx,
    rec: &AllocRecord,
    task: &Task,
    root: &Beneath,
    env: &mut BTreeMap<String, String>,
) -> Result<Option<String>, AgentError> {
    let Some(id) = task
        .identities
        .iter()
        .find(|i| i.is_default() && (i.env || i.file))
    else {
        return Ok(None);
    };
    let token = task_token(ctx, rec, task).await?;
    if id.file {
        root.write(Path::new("secrets/nomad_token"), token.as_bytes(), 0o600)
            .map_err(|e| e.about("Identity", "secrets/nomad_token"))?;
    }
    if id.env {
        env.insert("NOMAD_TOKEN".into(), token.clone());
    }
    Ok(Some(token))
}

/// A task's directories and what its templates and config are interpolated with.
struct TaskSetup {
    root: Beneath,
    group: nomos_api::TaskGroup,
    task_dir: std::path::PathBuf,
    alloc_dir: std::path::PathBuf,
    env: BTreeMap<String, String>,
    vars: Vars,
}

/// Makes (or opens) the task's directories and works out its environment. A task name or
/// allocation id that is not one path component is refused.
fn task_setup(ctx: &Ctx, rec: &AllocRecord, task: &Task) -> Result<TaskSetup, AgentError> {
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
    Ok(TaskSetup {
        root,
        group,
        task_dir,
        alloc_dir,
        env,
        vars,
    })
}

/// How [`render_templates`] writes what it renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writes<'a> {
    /// Every template (before a start).
    All,
    /// Only the templates listed as due whose output differs from their file (a re-render).
    /// A template not due is not rendered, but an `env = true` one, whose variables the
    /// templates after it may read.
    Changed { due: &'a [usize] },
}

/// Renders the task's templates in order (a template may render the source of the next) and
/// writes them; `env = true` outputs extend `env`. Returns the indexes of the templates whose
/// file was written.
async fn render_templates(
    ctx: &Ctx,
    rec: &AllocRecord,
    task: &Task,
    setup: &mut TaskSetup,
    token: &mut Option<String>,
    writes: Writes<'_>,
) -> Result<Vec<usize>, AgentError> {
    let mut written = Vec::new();
    for (i, t) in task.templates.iter().enumerate() {
        let due = match writes {
            Writes::All => true,
            Writes::Changed { due } => due.contains(&i),
        };
        if !due && !t.env {
            continue;
        }
        let loaded = load_template(&setup.root, t, i, &setup.vars, ctx.config.allow_host_paths)?;
        let Some(loaded) = loaded else {
            continue;
        };
        let reads_variables = loaded
            .parsed
            .as_ref()
            .is_some_and(|p| templates::needs_identity(&p.functions_used()));
        if reads_variables && token.is_none() {
            *token = Some(task_token(ctx, rec, task).await?);
        }
        let ns = &rec.alloc.namespace;
        let dir = setup.task_dir.clone();
        let text = render_template(ctx, &loaded, &setup.env, ns, token.as_deref(), &dir).await?;
        let same = writes != Writes::All
            && setup
                .root
                .read(&loaded.dest)
                .is_ok_and(|old| old == text.as_bytes());
        if due && !same {
            write_template(&setup.root, &loaded, &text)?;
            written.push(i);
        }
        if t.env {
            // `env = true`: the rendered file is KEY=VALUE lines for the task's environment.
            let vars = templates::parse_env_file(&text)
                .map_err(|e| AgentError::Template(format!("template[{i}] (env = true): {e}")))?;
            setup.env.extend(vars);
        }
    }
    Ok(written)
}

/// Renders a running task's templates at `due` again and rewrites those whose output changed;
/// returns their indexes (the caller applies their `change_mode`).
pub(super) async fn rerender_templates(
    ctx: &Ctx,
    rec: &AllocRecord,
    task: &Task,
    due: &[usize],
) -> Result<Vec<usize>, AgentError> {
    let mut setup = task_setup(ctx, rec, task)?;
    let mut token = None;
    if task.identities.iter().any(|i| i.is_default() && i.env) {
        // The task's environment held its token when it started.
        let t = task_token(ctx, rec, task).await?;
        setup.env.insert("NOMAD_TOKEN".into(), t.clone());
        token = Some(t);
    }
    let writes = Writes::Changed { due };
    render_templates(ctx, rec, task, &mut setup, &mut token, writes).await
}

/// Every function the task's templates call (their bodies read and interpolated as at start).
pub(super) fn template_functions(
    ctx: &Ctx,
    rec: &AllocRecord,
    task: &Task,
) -> Result<std::collections::BTreeSet<String>, AgentError> {
    let setup = task_setup(ctx, rec, task)?;
    let mut used = std::collections::BTreeSet::new();
    for (i, t) in task.templates.iter().enumerate() {
        let loaded = load_template(&setup.root, t, i, &setup.vars, ctx.config.allow_host_paths)?;
        if let Some(parsed) = loaded.and_then(|l| l.parsed) {
            used.extend(parsed.functions_used());
        }
    }
    Ok(used)
}

/// Writes a dispatched job's payload where the task's `dispatch_payload { file }` says, under
/// its `local/` directory (before every start, as templates are). A path that leaves the
/// directory is refused by [`Beneath`].
fn write_dispatch_payload(
    rec: &AllocRecord,
    task: &Task,
    root: &Beneath,
) -> Result<(), AgentError> {
    let Some(target) = &task.dispatch_payload else {
        return Ok(());
    };
    let sandbox = |message: String| AgentError::Sandbox {
        what: "DispatchPayload".into(),
        message,
    };
    let payload = nomos_api::dispatch::payload_of(&rec.job).map_err(sandbox)?;
    let rel = Path::new("local").join(&target.file);
    root.write(&rel, &payload, 0o644)
        .map_err(|e| e.about("DispatchPayload", &format!("file {:?}", target.file)))
}

/// Builds the driver's view of a task: directories, environment, interpolated config, rendered
/// templates. A task name or allocation id that is not one path component, and a template
/// path outside the task directory, are refused ([`AgentError::Sandbox`]) before anything is
/// made.
pub async fn prepare_task(
    ctx: &Ctx,
    rec: &AllocRecord,
    task: &Task,
) -> Result<TaskSpec, AgentError> {
    let mut setup = task_setup(ctx, rec, task)?;
    let volume_mounts = volume_mounts::resolve(&setup.group, task, &ctx.node.host_volumes)?;
    volume_mounts::check_sources(&volume_mounts)?;
    let config = task
        .config
        .iter()
        .map(|(k, v)| (k.clone(), interpolate_value(v, &setup.vars)))
        .collect();
    let mut token = expose_identity(ctx, rec, task, &setup.root, &mut setup.env).await?;
    write_dispatch_payload(rec, task, &setup.root)?;
    render_templates(ctx, rec, task, &mut setup, &mut token, Writes::All).await?;
    Ok(TaskSpec {
        alloc_id: rec.alloc.id.clone(),
        node_id: ctx.node.id.clone(),
        agent_id: ctx.agent_id.clone(),
        alloc_name: rec.alloc.name.clone(),
        namespace: rec.alloc.namespace.clone(),
        job_id: rec.alloc.job_id.clone(),
        group: setup.group.name.clone(),
        task: task.name.clone(),
        config,
        env: setup.env,
        user: task.user.clone(),
        task_dir: setup.task_dir,
        alloc_dir: setup.alloc_dir.clone(),
        log_dir: setup.alloc_dir.join("logs"),
        resources: task.resources.clone(),
        ports: rec.alloc.ports.clone(),
        devices: rec
            .alloc
            .devices
            .iter()
            .filter(|d| d.task == task.name)
            .cloned()
            .collect(),
        logs: task.logs.clone(),
        kill_signal: task.kill_signal.clone(),
        volume_mounts,
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
