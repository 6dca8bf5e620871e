//! The `docker` driver, through `bollard`: containers named `<task>-<alloc>` and labelled with
//! the job, group, allocation and task, so a container left by a crashed agent is adopted (if
//! it runs) or removed (if it does not) instead of duplicated.
//!
//! [`container_body`] turns a task into the container definition (pure, table-tested): image,
//! command/args/entrypoint, env, port bindings from the allocation's ports (`ports = ["http"]`
//! and the old `port_map`), volumes plus the `/alloc`, `/local`, `/secrets` mounts, labels,
//! memory (`memory_max` hard, `memory` as the soft reservation) and cpu shares, and json-file
//! log rotation from the `logs` block. A missing image is pulled when a registry answers; when
//! it cannot be, start fails with an error naming the image.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use bollard::models::{
    ContainerCreateBody, DeviceRequest, HostConfig, HostConfigLogConfig, Mount, MountBindOptions,
    MountBindOptionsPropagationEnum, MountType, PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, KillContainerOptions, ListContainersOptions,
    LogsOptions, RemoveContainerOptions, StatsOptions, StopContainerOptions,
};
use bollard::Docker;
use futures::StreamExt;
use nomos_api::{DriverInfo, LogConfig, Resources, Value};

use super::volumes::task_volumes;
use super::{
    attribute_oom_kills, config_list, config_str, now_ms, Driver, ExecOutput, ExecRequest,
    ExecSession, ExitResult, OutputCap, SessionRequest, TaskHandle, TaskSpec, TaskStats,
};
use crate::error::AgentError;
use crate::logs::LogStream;

/// Label keys put on every container this agent creates.
pub const LABEL_ALLOC: &str = "nomos.alloc_id";
pub const LABEL_JOB: &str = "nomos.job_id";
pub const LABEL_GROUP: &str = "nomos.task_group";
pub const LABEL_TASK: &str = "nomos.task_name";
pub const LABEL_NAMESPACE: &str = "nomos.namespace";
pub const LABEL_NODE: &str = "nomos.node_id";
/// The agent that created the container ([`TaskSpec::agent_id`]).
pub const LABEL_AGENT: &str = "nomos.agent_id";

/// Whether a container with these labels was created by the agent `agent_id` (on node
/// `node_id`): by its agent label, or, for containers created before agents had ids, by its
/// node label.
pub fn created_by(labels: &HashMap<String, String>, agent_id: &str, node_id: &str) -> bool {
    match labels.get(LABEL_AGENT) {
        Some(owner) => owner == agent_id,
        None => labels.get(LABEL_NODE).map(String::as_str) == Some(node_id),
    }
}

/// How long a pull of a missing image may take before start gives up.
const PULL_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs tasks as Docker containers.
#[derive(Clone, Default)]
pub struct DockerDriver {
    docker: Option<Docker>,
    version: String,
    error: String,
    /// Whether tasks may bind host paths (`volumes { enabled = true }` in Nomad's docker
    /// plugin configuration); paths inside the task directory are always allowed.
    host_volumes: bool,
}

impl std::fmt::Debug for DockerDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerDriver")
            .field("connected", &self.docker.is_some())
            .field("version", &self.version)
            .finish()
    }
}

/// The container name of a task.
pub fn container_name(alloc_id: &str, task: &str) -> String {
    format!("{task}-{alloc_id}")
}

/// `port_map` as a label → container port table; HCL1 files give it as a list of maps.
fn port_map(config: &indexmap::IndexMap<String, Value>) -> HashMap<String, u16> {
    let mut out = HashMap::new();
    let mut add = |m: &serde_json::Map<String, Value>| {
        for (k, v) in m {
            let port = v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()));
            if let Some(p) = port {
                out.insert(k.clone(), p as u16);
            }
        }
    };
    match config.get("port_map") {
        Some(Value::Object(m)) => add(m),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_object).for_each(&mut add),
        _ => {}
    }
    out
}

/// The container definition for a task (pure).
pub fn container_body(spec: &TaskSpec, image: &str, volumes: &[String]) -> ContainerCreateBody {
    let (exposed, bindings) = port_bindings(spec);
    let (memory, reservation) = memory_limits(&spec.resources);
    ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: container_cmd(&spec.config),
        entrypoint: Some(config_list(&spec.config, "entrypoint")).filter(|e| !e.is_empty()),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(labels(spec)),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        working_dir: config_str(&spec.config, "work_dir"),
        user: (!spec.user.is_empty()).then(|| spec.user.clone()),
        hostname: config_str(&spec.config, "hostname"),
        stop_signal: (!spec.kill_signal.is_empty()).then(|| spec.kill_signal.clone()),
        host_config: Some(HostConfig {
            binds: Some(binds(spec, volumes)),
            mounts: Some(host_volume_mounts(spec)).filter(|m| !m.is_empty()),
            port_bindings: (!bindings.is_empty()).then_some(bindings),
            memory,
            memory_reservation: reservation,
            memory_swap: memory,
            cpu_shares: (spec.resources.cpu > 0).then_some(spec.resources.cpu as i64),
            log_config: Some(json_file_logs(&spec.logs)),
            network_mode: config_str(&spec.config, "network_mode"),
            init: config_str(&spec.config, "init").map(|s| s == "true"),
            device_requests: gpu_request(spec).map(|r| vec![r]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The request that gives the container the task's NVIDIA GPUs through the NVIDIA container
/// runtime (`docker run --gpus device=<uuid>,...`); `None` when it holds none.
fn gpu_request(spec: &TaskSpec) -> Option<DeviceRequest> {
    let ids: Vec<String> = spec
        .devices
        .iter()
        .filter(|d| d.vendor == "nvidia")
        .flat_map(|d| d.device_ids.iter().cloned())
        .collect();
    (!ids.is_empty()).then(|| DeviceRequest {
        driver: Some("nvidia".into()),
        device_ids: Some(ids),
        capabilities: Some(vec![vec!["gpu".into()]]),
        ..Default::default()
    })
}

/// The container's labels: the task's identity, the user's `labels` (a map, or in HCL1 files a
/// list of maps), and last the agent that owns it.
fn labels(spec: &TaskSpec) -> HashMap<String, String> {
    let mut labels = HashMap::new();
    labels.insert(LABEL_ALLOC.to_string(), spec.alloc_id.clone());
    labels.insert(LABEL_JOB.to_string(), spec.job_id.clone());
    labels.insert(LABEL_GROUP.to_string(), spec.group.clone());
    labels.insert(LABEL_TASK.to_string(), spec.task.clone());
    labels.insert(LABEL_NAMESPACE.to_string(), spec.namespace.clone());
    if !spec.node_id.is_empty() {
        labels.insert(LABEL_NODE.to_string(), spec.node_id.clone());
    }
    let user_labels: Vec<&serde_json::Map<String, Value>> = match spec.config.get("labels") {
        Some(Value::Object(m)) => vec![m],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_object).collect(),
        _ => Vec::new(),
    };
    for (k, v) in user_labels.into_iter().flatten() {
        labels.insert(
            k.clone(),
            v.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string()),
        );
    }

    // Last, so that no user label can claim another agent's container.
    if !spec.agent_id.is_empty() {
        labels.insert(LABEL_AGENT.to_string(), spec.agent_id.clone());
    }
    labels
}

/// The exposed container ports and their host bindings: every label named in `ports`, plus
/// every `port_map` entry, on tcp and udp.
fn port_bindings(spec: &TaskSpec) -> (Vec<String>, HashMap<String, Option<Vec<PortBinding>>>) {
    let mapped = port_map(&spec.config);
    let mut wanted: Vec<String> = config_list(&spec.config, "ports");
    for k in mapped.keys() {
        if !wanted.contains(k) {
            wanted.push(k.clone());
        }
    }
    let mut exposed = Vec::new();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for label in &wanted {
        let Some(p) = spec.ports.iter().find(|p| &p.label == label) else {
            continue;
        };
        let inner = mapped
            .get(label)
            .copied()
            .filter(|p| *p > 0)
            .unwrap_or(if p.to > 0 { p.to } else { p.value });
        for proto in ["tcp", "udp"] {
            let key = format!("{inner}/{proto}");
            exposed.push(key.clone());
            let host_ip = if p.host_ip.is_empty() {
                "0.0.0.0".to_string()
            } else {
                p.host_ip.clone()
            };
            bindings.insert(
                key,
                Some(vec![PortBinding {
                    host_ip: Some(host_ip),
                    host_port: Some(p.value.to_string()),
                }]),
            );
        }
    }
    (exposed, bindings)
}

/// The bind mounts: `/alloc`, `/local` and `/secrets`, then the task's `volumes` as
/// [`task_volumes`] resolved them.
fn binds(spec: &TaskSpec, volumes: &[String]) -> Vec<String> {
    let mut binds = vec![
        format!("{}:/alloc", spec.alloc_dir.display()),
        format!("{}:/local", spec.task_dir.join("local").display()),
        format!("{}:/secrets", spec.task_dir.join("secrets").display()),
    ];
    binds.extend(volumes.iter().cloned());
    binds
}

/// The task's host volumes as bind mounts, read-only where the mount or the volume says so.
fn host_volume_mounts(spec: &TaskSpec) -> Vec<Mount> {
    spec.volume_mounts
        .iter()
        .map(|v| Mount {
            target: Some(crate::volume_mounts::container_target(&v.destination)),
            source: Some(v.source.display().to_string()),
            typ: Some(MountType::BIND),
            read_only: Some(v.read_only),
            bind_options: Some(MountBindOptions {
                propagation: Some(match v.propagation.as_str() {
                    "host-to-task" => MountBindOptionsPropagationEnum::RSLAVE,
                    "bidirectional" => MountBindOptionsPropagationEnum::RSHARED,
                    _ => MountBindOptionsPropagationEnum::RPRIVATE,
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect()
}

/// The memory limit in bytes (`memory_max`, else `memory`; none for `memory_max = -1`) and the
/// soft reservation (`memory`, when `memory_max` is above it or unlimited).
fn memory_limits(r: &Resources) -> (Option<i64>, Option<i64>) {
    let (hard, soft) = nomos_api::memory_bounds(r.memory_mb, r.memory_max_mb);
    let bytes = |mb: u64| mb as i64 * 1024 * 1024;
    (hard.map(bytes), soft.map(bytes))
}

/// json-file logging rotated as the `logs` block says (10 files of 10 MB by default).
fn json_file_logs(logs: &LogConfig) -> HostConfigLogConfig {
    let max_files = if logs.max_files == 0 {
        10
    } else {
        logs.max_files
    };
    let max_mb = if logs.max_file_size_mb == 0 {
        10
    } else {
        logs.max_file_size_mb
    };
    let mut log_opts = HashMap::new();
    log_opts.insert("max-file".to_string(), max_files.to_string());
    log_opts.insert("max-size".to_string(), format!("{max_mb}m"));
    HostConfigLogConfig {
        typ: Some("json-file".into()),
        config: Some(log_opts),
    }
}

/// The container's command: `command` followed by `args`, or `args` alone (the image's
/// entrypoint gets them), or none (the image's own).
fn container_cmd(config: &indexmap::IndexMap<String, Value>) -> Option<Vec<String>> {
    let command = config_str(config, "command");
    let args = config_list(config, "args");
    match command {
        Some(c) => Some(std::iter::once(c).chain(args).collect()),
        None if !args.is_empty() => Some(args),
        None => None,
    }
}

impl DockerDriver {
    /// Connects to the local daemon (`DOCKER_HOST` or the default socket) and negotiates the
    /// API version; a driver without a daemon reports itself undetected.
    /// This driver, letting tasks bind host paths or not (see [`task_volumes`]).
    pub fn with_host_volumes(mut self, allowed: bool) -> Self {
        self.host_volumes = allowed;
        self
    }

    pub async fn new() -> Self {
        let connected = async {
            let d = Docker::connect_with_local_defaults().map_err(|e| e.to_string())?;
            let d = d.negotiate_version().await.map_err(|e| e.to_string())?;
            let v = d.version().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((d, v.version.unwrap_or_default()))
        };
        match tokio::time::timeout(Duration::from_secs(5), connected).await {
            Ok(Ok((d, version))) => DockerDriver {
                docker: Some(d),
                version,
                error: String::new(),
                host_volumes: false,
            },
            Ok(Err(e)) => DockerDriver {
                docker: None,
                version: String::new(),
                error: e,
                host_volumes: false,
            },
            Err(_) => DockerDriver {
                docker: None,
                version: String::new(),
                error: "docker daemon did not answer within 5s".into(),
                host_volumes: false,
            },
        }
    }

    /// The client, or why there is none.
    pub fn client(&self) -> Result<&Docker, AgentError> {
        self.docker.as_ref().ok_or_else(|| {
            AgentError::driver(
                "docker",
                format!("docker daemon unavailable: {}", self.error),
            )
        })
    }

    async fn ensure_image(&self, docker: &Docker, image: &str) -> Result<(), AgentError> {
        if docker.inspect_image(image).await.is_ok() {
            return Ok(());
        }
        let (name, tag) = match image.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => (n.to_string(), t.to_string()),
            _ => (image.to_string(), "latest".to_string()),
        };
        let pull = async {
            let opts = CreateImageOptions {
                from_image: Some(name),
                tag: Some(tag),
                ..Default::default()
            };
            let mut stream = docker.create_image(Some(opts), None, None);
            while let Some(item) = stream.next().await {
                item.map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(())
        };
        match tokio::time::timeout(PULL_TIMEOUT, pull).await {
            Ok(Ok(())) if docker.inspect_image(image).await.is_ok() => Ok(()),
            Ok(Ok(())) => Err(AgentError::driver(
                "docker",
                format!("image {image:?} is not present after pulling it"),
            )),
            Ok(Err(e)) => Err(AgentError::driver(
                "docker",
                format!("image {image:?} is not present locally and could not be pulled: {e}"),
            )),
            Err(_) => Err(AgentError::driver(
                "docker",
                format!("image {image:?} is not present locally and pulling it timed out after {PULL_TIMEOUT:?}"),
            )),
        }
    }

    /// Containers this driver created for an allocation (any state).
    pub async fn containers_of_alloc(&self, alloc_id: &str) -> Result<Vec<String>, AgentError> {
        let docker = self.client()?;
        let mut filters = HashMap::new();
        filters.insert(
            "label".to_string(),
            vec![format!("{LABEL_ALLOC}={alloc_id}")],
        );
        let list = docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|e| AgentError::driver("docker", format!("listing containers: {e}")))?;
        Ok(list.into_iter().filter_map(|c| c.id).collect())
    }

    /// Containers the agent `agent_id` created for node `node_id` ([`created_by`]), as
    /// `(container id, allocation id)`.
    pub async fn containers_of_agent(
        &self,
        node_id: &str,
        agent_id: &str,
    ) -> Result<Vec<(String, String)>, AgentError> {
        let docker = self.client()?;
        let mut filters = HashMap::new();
        filters.insert("label".to_string(), vec![format!("{LABEL_NODE}={node_id}")]);
        let list = docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|e| AgentError::driver("docker", format!("listing containers: {e}")))?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let labels = c.labels.unwrap_or_default();
                if !created_by(&labels, agent_id, node_id) {
                    return None;
                }
                let alloc = labels.get(LABEL_ALLOC).cloned().unwrap_or_default();
                c.id.map(|id| (id, alloc))
            })
            .collect())
    }

    /// Removes a container whatever its state.
    pub async fn remove(&self, id: &str) -> Result<(), AgentError> {
        match self
            .client()?
            .remove_container(
                id,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await
        {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(AgentError::driver(
                "docker",
                format!("removing container {id}: {e}"),
            )),
        }
    }

    /// A container by name or id: `(its id if it runs, its labels)`, `None` if there is none.
    async fn existing(
        &self,
        name: &str,
    ) -> Result<Option<(Option<String>, HashMap<String, String>)>, AgentError> {
        let docker = self.client()?;
        match docker.inspect_container(name, None).await {
            Ok(c) => {
                let running = c.state.and_then(|s| s.running).unwrap_or(false);
                let labels = c.config.and_then(|c| c.labels).unwrap_or_default();
                let id = c.id.unwrap_or_else(|| name.to_string());
                Ok(Some((running.then_some(id), labels)))
            }
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(AgentError::driver(
                "docker",
                format!("inspecting container {name}: {e}"),
            )),
        }
    }

    async fn running(&self, id: &str) -> Result<Option<bool>, AgentError> {
        let docker = self.client()?;
        match docker.inspect_container(id, None).await {
            Ok(c) => Ok(Some(c.state.and_then(|s| s.running).unwrap_or(false))),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(AgentError::driver(
                "docker",
                format!("inspecting container {id}: {e}"),
            )),
        }
    }
}

impl DockerDriver {
    /// Reads an exec's output (at most `limit` bytes kept) until it ends.
    async fn exec_output(&self, exec_id: &str, limit: usize) -> Result<OutputCap, String> {
        let started = self
            .client()
            .map_err(|e| e.to_string())?
            .start_exec(exec_id, None)
            .await
            .map_err(|e| e.to_string())?;
        let mut cap = OutputCap::new(limit);
        if let bollard::exec::StartExecResults::Attached { mut output, .. } = started {
            while let Some(item) = output.next().await {
                cap.push(&item.map_err(|e| e.to_string())?.into_bytes());
            }
        }
        Ok(cap)
    }

    /// The exit code of a finished exec, once Docker has it.
    async fn exec_exit(&self, exec_id: &str) -> Result<Option<i64>, String> {
        exec_exit_code(self.client().map_err(|e| e.to_string())?, exec_id).await
    }

    /// Kills an exec's process that outlived its timeout.
    async fn kill_exec(&self, exec_id: &str) {
        if let Ok(docker) = self.client() {
            kill_exec_process(docker, exec_id).await;
        }
    }
}

/// The exit code of a finished exec, once Docker has it.
pub(super) async fn exec_exit_code(docker: &Docker, exec_id: &str) -> Result<Option<i64>, String> {
    loop {
        let st = docker
            .inspect_exec(exec_id)
            .await
            .map_err(|e| e.to_string())?;
        if st.running != Some(true) {
            return Ok(st.exit_code);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kills an exec's process with what it started (Docker has no call for it: its pid, as the
/// host sees it, and its descendants get SIGKILL).
pub(super) async fn kill_exec_process(docker: &Docker, exec_id: &str) {
    let Ok(st) = docker.inspect_exec(exec_id).await else {
        return;
    };
    if let (Some(true), Some(pid)) = (st.running, st.pid.filter(|p| *p > 0)) {
        for p in crate::procfs::with_descendants(pid as i32) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn container_id(handle: &TaskHandle) -> Result<&str, AgentError> {
    handle
        .container_id
        .as_deref()
        .ok_or_else(|| AgentError::driver("docker", "task handle has no container id"))
}

#[async_trait]
impl Driver for DockerDriver {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn fingerprint(&self) -> DriverInfo {
        let mut info = DriverInfo {
            detected: self.docker.is_some(),
            healthy: self.docker.is_some(),
            version: self.version.clone(),
            ..Default::default()
        };
        if self.docker.is_none() {
            info.attributes
                .insert("driver.docker.unavailable".into(), self.error.clone());
        }
        info
    }

    async fn start(&self, spec: &TaskSpec) -> Result<TaskHandle, AgentError> {
        let docker = self.client()?;
        let image = config_str(&spec.config, "image")
            .ok_or_else(|| AgentError::driver("docker", "config.image is required"))?;
        let name = container_name(&spec.alloc_id, &spec.task);
        let handle = |id: String| TaskHandle {
            driver: "docker".into(),
            task: spec.task.clone(),
            agent_id: spec.agent_id.clone(),
            container_id: Some(id),
            log_dir: spec.log_dir.clone(),
            started_at_ms: now_ms(),
            ..Default::default()
        };
        // A container left by a crashed agent: adopt it if it runs, remove it otherwise; one of
        // another agent (two agents on one Docker daemon) is never touched.
        match self.existing(&name).await? {
            Some((_, labels)) if !created_by(&labels, &spec.agent_id, &spec.node_id) => {
                return Err(AgentError::driver(
                    "docker",
                    format!(
                        "container {name} exists and was created by another agent ({LABEL_AGENT}={}); \
                         not adopting or removing it",
                        labels.get(LABEL_AGENT).map(String::as_str).unwrap_or("none")
                    ),
                ));
            }
            Some((Some(id), _)) => {
                tracing::info!(container = %name, "adopting running container left by a previous agent");
                return Ok(handle(id));
            }
            Some((None, _)) => {
                let _ = docker
                    .remove_container(
                        &name,
                        Some(RemoveContainerOptions {
                            force: true,
                            ..Default::default()
                        }),
                    )
                    .await;
            }
            None => {}
        }
        self.ensure_image(docker, &image).await?;
        for d in [
            spec.task_dir.join("local"),
            spec.task_dir.join("secrets"),
            spec.alloc_dir.clone(),
        ] {
            std::fs::create_dir_all(&d).map_err(|e| AgentError::io(&d, e))?;
        }
        let volumes = task_volumes(spec, self.host_volumes)?;
        let body = container_body(spec, &image, &volumes);
        let created = docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await
            .map_err(|e| {
                AgentError::driver(
                    "docker",
                    format!("creating container {name} from image {image:?}: {e}"),
                )
            })?;
        if let Err(e) = docker.start_container(&created.id, None).await {
            let _ = docker
                .remove_container(
                    &created.id,
                    Some(RemoveContainerOptions {
                        force: true,
                        ..Default::default()
                    }),
                )
                .await;
            return Err(AgentError::driver(
                "docker",
                format!("starting container {name}: {e}"),
            ));
        }
        Ok(handle(created.id))
    }

    async fn recover(&self, handle: &TaskHandle) -> Result<bool, AgentError> {
        Ok(self.running(container_id(handle)?).await?.unwrap_or(false))
    }

    async fn wait(&self, handle: &TaskHandle) -> Result<ExitResult, AgentError> {
        let docker = self.client()?;
        let id = container_id(handle)?;
        // Poll rather than hold a wait stream, so a daemon restart does not lose the exit.
        loop {
            match docker.inspect_container(id, None).await {
                Ok(c) => {
                    let st = c.state.unwrap_or_default();
                    if !st.running.unwrap_or(false) && !st.restarting.unwrap_or(false) {
                        let code = st.exit_code.unwrap_or(0) as i32;
                        let oom = st.oom_killed.unwrap_or(false);
                        let signal = (code > 128 && code < 128 + 65).then_some(code - 128);
                        let error = st.error.filter(|e| !e.is_empty());
                        let exit = ExitResult {
                            exit_code: Some(code),
                            signal,
                            error,
                            ..Default::default()
                        };
                        return Ok(attribute_oom_kills(exit, u64::from(oom)));
                    }
                }
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => {
                    return Ok(ExitResult {
                        error: Some(format!("container {id} disappeared")),
                        ..Default::default()
                    });
                }
                Err(e) => {
                    return Err(AgentError::driver(
                        "docker",
                        format!("inspecting container {id}: {e}"),
                    ))
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn signal(&self, handle: &TaskHandle, signal: &str) -> Result<(), AgentError> {
        let sig = super::parse_signal(signal)?;
        self.client()?
            .kill_container(
                container_id(handle)?,
                Some(KillContainerOptions {
                    signal: sig.as_str().to_string(),
                }),
            )
            .await
            .map_err(|e| AgentError::driver("docker", format!("signal {sig}: {e}")))
    }

    async fn stop(
        &self,
        handle: &TaskHandle,
        signal: &str,
        timeout: Duration,
    ) -> Result<(), AgentError> {
        let sig = super::parse_signal(signal)?;
        let opts = StopContainerOptions {
            signal: Some(sig.as_str().to_string()),
            t: Some(timeout.as_secs().max(1) as i32),
        };
        match self
            .client()?
            .stop_container(container_id(handle)?, Some(opts))
            .await
        {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304 | 404,
                ..
            }) => Ok(()),
            Err(e) => Err(AgentError::driver(
                "docker",
                format!("stopping container: {e}"),
            )),
        }
    }

    async fn destroy(&self, handle: &TaskHandle) -> Result<(), AgentError> {
        let docker = self.client()?;
        match docker
            .remove_container(
                container_id(handle)?,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await
        {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(AgentError::driver(
                "docker",
                format!("removing container: {e}"),
            )),
        }
    }

    async fn stats(&self, handle: &TaskHandle) -> Result<TaskStats, AgentError> {
        let docker = self.client()?;
        let mut s = docker.stats(
            container_id(handle)?,
            Some(StatsOptions {
                stream: false,
                one_shot: true,
            }),
        );
        match s.next().await {
            Some(Ok(st)) => Ok(TaskStats {
                memory_rss_bytes: st.memory_stats.and_then(|m| m.usage).unwrap_or(0),
                cpu_total_ns: st
                    .cpu_stats
                    .and_then(|c| c.cpu_usage)
                    .and_then(|u| u.total_usage)
                    .unwrap_or(0),
                pids: st.pids_stats.and_then(|p| p.current).unwrap_or(0) as u32,
                source: super::StatsSource::Docker,
            }),
            Some(Err(e)) => Err(AgentError::driver("docker", format!("stats: {e}"))),
            None => Ok(TaskStats::default()),
        }
    }

    /// `docker exec` in the task's container: its user, environment and working directory.
    async fn exec(&self, handle: &TaskHandle, req: &ExecRequest) -> Result<ExecOutput, AgentError> {
        let id = container_id(handle)?;
        if self.running(id).await? != Some(true) {
            return Err(AgentError::TaskNotRunning {
                task: handle.task.clone(),
            });
        }
        let failed = |e: String| {
            AgentError::driver("docker", format!("exec {:?} in {id}: {e}", req.command))
        };
        let config = bollard::models::ExecConfig {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(
                std::iter::once(req.command.clone())
                    .chain(req.args.clone())
                    .collect(),
            ),
            ..Default::default()
        };
        let exec_id = self
            .client()?
            .create_exec(id, config)
            .await
            .map_err(|e| failed(e.to_string()))?
            .id;
        let run = async {
            let cap = self.exec_output(&exec_id, req.output_limit).await?;
            Ok::<_, String>((cap, self.exec_exit(&exec_id).await?))
        };
        match tokio::time::timeout(req.timeout, run).await {
            Ok(Ok((cap, code))) => {
                let (output, truncated) = cap.finish();
                let code = code.map(|c| c as i32);
                Ok(ExecOutput {
                    exit_code: code,
                    signal: code.filter(|c| *c > 128 && *c < 128 + 65).map(|c| c - 128),
                    output,
                    truncated,
                })
            }
            Ok(Err(e)) => Err(failed(e)),
            Err(_) => {
                self.kill_exec(&exec_id).await;
                Err(AgentError::ExecTimedOut {
                    task: handle.task.clone(),
                    command: req.command.clone(),
                    timeout: req.timeout,
                })
            }
        }
    }

    /// An interactive `docker exec` in the task's container.
    async fn exec_session(
        &self,
        handle: &TaskHandle,
        req: &SessionRequest,
    ) -> Result<ExecSession, AgentError> {
        let id = container_id(handle)?;
        if self.running(id).await? != Some(true) {
            return Err(AgentError::TaskNotRunning {
                task: handle.task.clone(),
            });
        }
        super::docker_session::start_session(self.client()?, id, req).await
    }

    async fn ship_logs(&self, handle: &TaskHandle) -> Result<(), AgentError> {
        use std::io::Write;
        let docker = self.client()?;
        let id = container_id(handle)?;
        // Resume where a previous agent stopped (second granularity, as Docker's `since`).
        let mark = handle
            .log_dir
            .join(format!(".{}.docker-since", handle.task));
        let since = std::fs::read_to_string(&mark)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .unwrap_or(0);
        let open = |s| {
            crate::logs::open_for_task(&handle.log_dir, &handle.task, s)
                .map_err(|e| AgentError::io(&handle.log_dir, e))
        };
        let mut out = open(LogStream::Stdout)?;
        let mut err = open(LogStream::Stderr)?;
        let opts = LogsOptions {
            follow: true,
            stdout: true,
            stderr: true,
            since,
            tail: "all".into(),
            ..Default::default()
        };
        let mut s = docker.logs(id, Some(opts));
        while let Some(item) = s.next().await {
            let item =
                item.map_err(|e| AgentError::driver("docker", format!("following logs: {e}")))?;
            let result = match item {
                bollard::container::LogOutput::StdErr { message } => err.write_all(&message),
                other => out.write_all(&other.into_bytes()),
            };
            result.map_err(|e| AgentError::io(&handle.log_dir, e))?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let _ = std::fs::write(&mark, (now + 1).to_string());
        }
        Ok(())
    }

    async fn logs(
        &self,
        handle: &TaskHandle,
        stream: LogStream,
        offset: u64,
        limit: usize,
    ) -> Result<Vec<u8>, AgentError> {
        let docker = self.client()?;
        let opts = LogsOptions {
            stdout: stream == LogStream::Stdout,
            stderr: stream == LogStream::Stderr,
            tail: "all".into(),
            ..Default::default()
        };
        let mut out = Vec::new();
        let mut s = docker.logs(container_id(handle)?, Some(opts));
        while let Some(item) = s.next().await {
            let item = item.map_err(|e| AgentError::driver("docker", format!("logs: {e}")))?;
            out.extend_from_slice(&item.into_bytes());
        }
        let start = (offset as usize).min(out.len());
        let end = start.saturating_add(limit).min(out.len());
        Ok(out[start..end].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nomos_api::{AllocatedPort, Resources};

    fn spec(config: serde_json::Value) -> TaskSpec {
        TaskSpec {
            alloc_id: "a1".into(),
            job_id: "web".into(),
            group: "g".into(),
            task: "t".into(),
            namespace: "default".into(),
            config: serde_json::from_value(config).unwrap(),
            task_dir: "/d/allocs/a1/t".into(),
            alloc_dir: "/d/allocs/a1/alloc".into(),
            ports: vec![
                AllocatedPort {
                    label: "http".into(),
                    value: 25000,
                    to: 8080,
                    host_ip: String::new(),
                },
                AllocatedPort {
                    label: "db".into(),
                    value: 25001,
                    to: 0,
                    host_ip: "127.0.0.1".into(),
                },
            ],
            resources: Resources {
                cpu: 300,
                memory_mb: 128,
                memory_max_mb: 256,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn binding(b: &ContainerCreateBody, key: &str) -> Option<(String, String)> {
        let pb = b
            .host_config
            .as_ref()?
            .port_bindings
            .as_ref()?
            .get(key)?
            .as_ref()?
            .first()?
            .clone();
        Some((pb.host_ip?, pb.host_port?))
    }

    #[test]
    fn host_volumes_become_bind_mounts_read_only_as_resolved() {
        use crate::volume_mounts::VolumeBind;
        let mut spec = spec(serde_json::json!({"image": "busybox"}));
        let body = container_body(&spec, "busybox", &[]);
        assert_eq!(body.host_config.unwrap().mounts, None);
        let bind = |dest: &str, read_only: bool, propagation: &str| VolumeBind {
            volume: "data".into(),
            source: "/srv/pg".into(),
            destination: dest.into(),
            read_only,
            propagation: propagation.into(),
        };
        spec.volume_mounts = vec![
            bind("/var/lib/pg", false, "private"),
            bind("certs", true, "host-to-task"),
        ];
        let mounts = container_body(&spec, "busybox", &[])
            .host_config
            .unwrap()
            .mounts
            .unwrap();
        let got: Vec<(String, String, bool, String)> = mounts
            .iter()
            .map(|m| {
                let propagation = m.bind_options.as_ref().unwrap().propagation.unwrap();
                (
                    m.source.clone().unwrap(),
                    m.target.clone().unwrap(),
                    m.read_only.unwrap(),
                    propagation.to_string(),
                )
            })
            .collect();
        let want =
            |s: &str, t: &str, ro: bool, p: &str| (s.to_string(), t.to_string(), ro, p.to_string());
        assert_eq!(
            got,
            [
                want("/srv/pg", "/var/lib/pg", false, "rprivate"),
                want("/srv/pg", "/certs", true, "rslave"),
            ]
        );
        assert!(mounts.iter().all(|m| m.typ == Some(MountType::BIND)));
    }

    #[test]
    fn a_container_gets_a_device_request_for_its_gpus_and_none_without() {
        let plain = container_body(&spec(serde_json::json!({"image": "x"})), "x", &[]);
        assert_eq!(plain.host_config.unwrap().device_requests, None);

        let mut with_gpus = spec(serde_json::json!({"image": "x"}));
        with_gpus.devices = vec![nomos_api::AllocatedDevice {
            task: "t".into(),
            vendor: "nvidia".into(),
            device_type: "gpu".into(),
            name: "Tesla T4".into(),
            device_ids: vec!["GPU-1".into(), "GPU-2".into()],
        }];
        let body = container_body(&with_gpus, "x", &[]);
        let requests = body.host_config.unwrap().device_requests.unwrap();
        assert_eq!(
            requests,
            vec![DeviceRequest {
                driver: Some("nvidia".into()),
                count: None,
                device_ids: Some(vec!["GPU-1".into(), "GPU-2".into()]),
                capabilities: Some(vec![vec!["gpu".into()]]),
                options: None,
            }]
        );
    }

    #[test]
    fn a_container_belongs_to_the_agent_named_on_it_or_for_old_ones_to_the_node() {
        let labels = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let mine = labels(&[(LABEL_AGENT, "a1"), (LABEL_NODE, "n1")]);
        assert!(created_by(&mine, "a1", "n1"));
        assert!(
            !created_by(&mine, "a2", "n1"),
            "another agent on the same node"
        );
        let old = labels(&[(LABEL_NODE, "n1")]);
        assert!(created_by(&old, "a1", "n1"));
        assert!(!created_by(&old, "a1", "n2"));
        assert!(!created_by(&labels(&[]), "a1", "n1"));
        let mut spec =
            spec(serde_json::json!({"image": "x", "labels": {"nomos.agent_id": "forged"}}));
        spec.agent_id = "a1".into();
        let body = container_body(&spec, "x", &[]);
        assert_eq!(
            body.labels.unwrap()[LABEL_AGENT],
            "a1",
            "no user label overrides it"
        );
    }

    #[test]
    fn container_body_table() {
        let b = container_body(
            &spec(
                serde_json::json!({"image": "x:1", "ports": ["http"], "command": "/bin/busybox", "args": ["httpd", "-f"]}),
            ),
            "x:1",
            &[],
        );
        assert_eq!(
            binding(&b, "8080/tcp"),
            Some(("0.0.0.0".into(), "25000".into()))
        );
        assert_eq!(binding(&b, "25001/tcp"), None, "db is not listed in ports");
        assert_eq!(
            b.cmd,
            Some(vec![
                "/bin/busybox".to_string(),
                "httpd".into(),
                "-f".into()
            ])
        );
        let hc = b.host_config.as_ref().unwrap();
        assert_eq!(hc.memory, Some(256 << 20));
        assert_eq!(hc.memory_reservation, Some(128 << 20));
        assert_eq!(hc.cpu_shares, Some(300));
        assert!(hc
            .binds
            .as_ref()
            .unwrap()
            .contains(&"/d/allocs/a1/alloc:/alloc".to_string()));
        assert_eq!(b.labels.as_ref().unwrap()[LABEL_ALLOC], "a1");
        assert_eq!(b.labels.as_ref().unwrap()[LABEL_TASK], "t");

        let old = container_body(
            &spec(serde_json::json!({"image": "x:1", "port_map": [{"db": 5432}]})),
            "x:1",
            &["/d/allocs/a1/t/data:/var/data".to_string()],
        );
        assert_eq!(
            binding(&old, "5432/tcp"),
            Some(("127.0.0.1".into(), "25001".into()))
        );
        let binds = old.host_config.as_ref().unwrap().binds.clone().unwrap();
        assert!(
            binds.contains(&"/d/allocs/a1/t/data:/var/data".to_string()),
            "{binds:?}"
        );
        assert_eq!(old.cmd, None);

        let args_only = container_body(
            &spec(serde_json::json!({"image": "x:1", "args": ["a"], "entrypoint": ["/e"]})),
            "x:1",
            &[],
        );
        assert_eq!(args_only.cmd, Some(vec!["a".to_string()]));
        assert_eq!(args_only.entrypoint, Some(vec!["/e".to_string()]));
    }
}
