//! The `qemu` driver: a virtual machine run by `qemu-system-x86_64`, as Nomad's qemu driver runs
//! it: an unisolated host process, started, re-attached, waited for, stopped and logged exactly
//! as [`super::raw_exec`] runs its processes (this driver only builds the command line).
//!
//! - Config (Nomad's names): `image_path` (relative to the task dir), `drive_interface` (`ide`),
//!   `accelerator` (`kvm` where the node has a usable KVM, else `tcg`), `graceful_shutdown`,
//!   `guest_agent`, `port_map` (port label → guest port, forwarded from the allocated host port
//!   by user-mode networking's `hostfwd`) and `args`. Memory is the task's `memory`.
//! - The guest's serial console is the process's stdio (`-nographic`), so it is the task's log.
//! - `graceful_shutdown` starts an HMP monitor on `qemu-monitor.sock` in the task dir; a stop
//!   sends `system_powerdown` there and waits the kill timeout before killing the process.
//! - Fingerprint: `qemu-system-x86_64 --version` (`driver.qemu.version`); `driver.qemu.kvm` is
//!   set where `/dev/kvm` answers and the CPU has hardware virtualisation.
//! - Like Nomad's, the driver neither signals a VM nor runs commands inside it.
//! - What a job may hand QEMU ([`QemuPolicy`], the agent's `plugin "qemu" { config { ... } }`):
//!   the image must lie inside the allocation's directory or under one of `image_paths`
//!   (checked on the resolved path, so neither `..` nor a symlink leaves it), and where
//!   `args_allowlist` is set every flag in `args` must be on it. QEMU runs as root: without
//!   these, any job could boot, and write, any disk or file of the host.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use indexmap::IndexMap;
use nomos_api::{AllocatedPort, DriverInfo, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::raw_exec::{
    process_stats, recover_process, spawn_process, stop_process, wait_process, SpawnOptions,
};
use super::{Driver, ExecOutput, ExecRequest, ExitResult, TaskHandle, TaskSpec, TaskStats};
use crate::error::AgentError;

const NAME: &str = "qemu";

/// The emulator Nomad's qemu driver runs.
pub const QEMU_BINARY: &str = "qemu-system-x86_64";

/// The HMP monitor socket of a task with `graceful_shutdown`, in its task dir.
pub const MONITOR_SOCKET: &str = "qemu-monitor.sock";

/// The guest agent's socket of a task with `guest_agent`, in its task dir.
pub const GUEST_AGENT_SOCKET: &str = "qa.sock";

/// The interfaces `drive_interface` may name (QEMU's `-drive if=`).
const DRIVE_INTERFACES: &[&str] = &[
    "ide", "scsi", "sd", "mtd", "floppy", "pflash", "virtio", "none",
];

const CONFIG_KEYS: &[&str] = &[
    "image_path",
    "drive_interface",
    "accelerator",
    "graceful_shutdown",
    "guest_agent",
    "port_map",
    "args",
];

/// How long the monitor may take to greet and to answer `system_powerdown`.
const MONITOR_TIMEOUT: Duration = Duration::from_secs(5);

/// A task's `config` block, checked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QemuConfig {
    pub image_path: String,
    pub drive_interface: String,
    /// `None`: the node's best (`kvm` where usable, else `tcg`).
    pub accelerator: Option<Accelerator>,
    pub graceful_shutdown: bool,
    pub guest_agent: bool,
    /// Port label → guest port.
    pub port_map: BTreeMap<String, u16>,
    pub args: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accelerator {
    Kvm,
    Tcg,
}

impl Accelerator {
    fn as_str(self) -> &'static str {
        match self {
            Accelerator::Kvm => "kvm",
            Accelerator::Tcg => "tcg",
        }
    }
}

impl QemuConfig {
    /// Reads and checks a task's `config` block: unknown keys, wrong types and values outside
    /// what QEMU takes are errors naming the key.
    pub fn parse(config: &IndexMap<String, Value>) -> Result<Self, String> {
        if let Some(key) = config.keys().find(|k| !CONFIG_KEYS.contains(&k.as_str())) {
            return Err(format!(
                "unknown config key {key:?}; the qemu driver takes {}",
                CONFIG_KEYS.join(", ")
            ));
        }
        let image_path = match config.get("image_path") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::String(_)) | None => return Err("config.image_path is required".into()),
            Some(other) => {
                return Err(format!("config.image_path must be a string, found {other}"))
            }
        };
        let drive_interface = string_setting(config, "drive_interface")?.unwrap_or("ide".into());
        if !DRIVE_INTERFACES.contains(&drive_interface.as_str()) {
            return Err(format!(
                "config.drive_interface {drive_interface:?} is not one of {}",
                DRIVE_INTERFACES.join(", ")
            ));
        }
        let accelerator = match string_setting(config, "accelerator")?.as_deref() {
            None => None,
            Some("kvm") => Some(Accelerator::Kvm),
            Some("tcg") => Some(Accelerator::Tcg),
            Some(other) => {
                return Err(format!(
                    "config.accelerator {other:?} is not one of kvm, tcg"
                ))
            }
        };
        Ok(QemuConfig {
            image_path,
            drive_interface,
            accelerator,
            graceful_shutdown: bool_setting(config, "graceful_shutdown")?,
            guest_agent: bool_setting(config, "guest_agent")?,
            port_map: port_map(config.get("port_map"))?,
            args: string_list(config.get("args"))?,
        })
    }
}

fn string_setting(config: &IndexMap<String, Value>, key: &str) -> Result<Option<String>, String> {
    match config.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("config.{key} must be a string, found {other}")),
    }
}

fn bool_setting(config: &IndexMap<String, Value>, key: &str) -> Result<bool, String> {
    match config.get(key) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
        Some(other) => Err(format!("config.{key} must be true or false, found {other}")),
    }
}

fn string_list(value: Option<&Value>) -> Result<Vec<String>, String> {
    match value {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                other => Err(format!("config.args must be strings, found {other}")),
            })
            .collect(),
        Some(other) => Err(format!(
            "config.args must be a list of strings, found {other}"
        )),
    }
}

/// `port_map { label = 8080 }`: a map, or in HCL1 files a list of maps.
fn port_map(value: Option<&Value>) -> Result<BTreeMap<String, u16>, String> {
    let maps: Vec<&serde_json::Map<String, Value>> = match value {
        None => Vec::new(),
        Some(Value::Object(m)) => vec![m],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_object()
                    .ok_or("config.port_map must be a map of label = port")
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(format!("config.port_map must be a map, found {other}")),
    };
    let mut out = BTreeMap::new();
    for (label, port) in maps.into_iter().flatten() {
        let number = port
            .as_u64()
            .or_else(|| port.as_str().and_then(|s| s.parse().ok()))
            .filter(|p| (1..=65535).contains(p))
            .ok_or_else(|| {
                format!("config.port_map.{label} must be a port number (1-65535), found {port}")
            })?;
        out.insert(label.clone(), number as u16);
    }
    Ok(out)
}

/// What of the node and the allocation goes into a VM's command line besides its config.
#[derive(Debug, Clone, Default)]
pub struct Launch<'a> {
    /// The VM's name (`-name`): the allocation's name.
    pub name: &'a str,
    pub memory_mb: u32,
    /// The allocation's ports, by label.
    pub ports: &'a [AllocatedPort],
    /// Why KVM cannot be used on this node; `None` when it can.
    pub kvm_unusable: Option<&'a str>,
}

/// The arguments to `qemu-system-x86_64` for a VM (pure): an error when the config asks what
/// the node or the allocation lacks (kvm, a port label).
pub fn qemu_args(cfg: &QemuConfig, launch: &Launch<'_>) -> Result<Vec<String>, String> {
    let accelerator = match (cfg.accelerator, launch.kvm_unusable) {
        (Some(Accelerator::Kvm), Some(why)) => {
            return Err(format!(
                "config.accelerator is \"kvm\" but this node cannot run KVM guests: {why}"
            ))
        }
        (Some(a), _) => a,
        (None, None) => Accelerator::Kvm,
        (None, Some(_)) => Accelerator::Tcg,
    };
    let mut args: Vec<String> = vec![
        "-machine".into(),
        format!("type=pc,accel={}", accelerator.as_str()),
        "-name".into(),
        launch.name.into(),
        "-m".into(),
        format!("{}M", launch.memory_mb),
        "-drive".into(),
        // QEMU's option syntax escapes a comma by doubling it.
        format!(
            "file={},if={}",
            cfg.image_path.replace(',', ",,"),
            cfg.drive_interface
        ),
        "-nographic".into(),
    ];
    if cfg.graceful_shutdown {
        args.push("-monitor".into());
        args.push(format!("unix:{MONITOR_SOCKET},server,nowait"));
    }
    if cfg.guest_agent {
        args.extend(
            [
                "-chardev",
                &format!("socket,path={GUEST_AGENT_SOCKET},server=on,wait=off,id=qga0"),
                "-device",
                "virtio-serial",
                "-device",
                "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
            ]
            .map(String::from),
        );
    }
    if !cfg.port_map.is_empty() {
        args.push("-netdev".into());
        args.push(user_netdev(&cfg.port_map, launch.ports)?);
        args.push("-device".into());
        args.push("virtio-net,netdev=user.0".into());
    }
    if accelerator == Accelerator::Kvm {
        args.extend(["-enable-kvm", "-cpu", "host"].map(String::from));
    }
    args.extend(cfg.args.iter().cloned());
    Ok(args)
}

/// `-netdev user` with a TCP and a UDP `hostfwd` from each mapped label's allocated host port
/// (on its address, when it has one) to the guest port.
fn user_netdev(
    port_map: &BTreeMap<String, u16>,
    ports: &[AllocatedPort],
) -> Result<String, String> {
    let mut netdev = String::from("user,id=user.0");
    for (label, guest) in port_map {
        let Some(host) = ports.iter().find(|p| &p.label == label) else {
            let mut labels: Vec<&str> = ports.iter().map(|p| p.label.as_str()).collect();
            labels.sort_unstable();
            return Err(format!(
                "config.port_map names port {label:?}, but the group's network has no such port \
                 (its ports: {})",
                if labels.is_empty() {
                    "none".to_string()
                } else {
                    labels.join(", ")
                }
            ));
        };
        for proto in ["tcp", "udp"] {
            netdev.push_str(&format!(
                ",hostfwd={proto}:{}:{}-:{guest}",
                host.host_ip, host.value
            ));
        }
    }
    Ok(netdev)
}

/// The version in `qemu-system-x86_64 --version`'s first line ("QEMU emulator version 7.2.22
/// (Debian ...)").
pub fn parse_version(output: &str) -> Option<String> {
    let first = output.lines().next()?;
    let rest = first.split("version").nth(1)?;
    let version = rest.split_whitespace().next()?;
    version
        .chars()
        .next()
        .filter(char::is_ascii_digit)
        .map(|_| version.to_string())
}

/// Whether a node can run KVM guests (pure): `/dev/kvm` answered with the stable API version
/// (12) and the CPU flags show hardware virtualisation (`vmx` or `svm`). `Err` says why not.
pub fn kvm_verdict(api_version: Result<i32, String>, cpu_flags: &str) -> Result<(), String> {
    match api_version {
        Ok(12) => {}
        Ok(v) => return Err(format!("/dev/kvm speaks KVM API version {v}, not 12")),
        Err(e) => return Err(e),
    }
    let virt = cpu_flags
        .split_whitespace()
        .any(|f| f == "vmx" || f == "svm");
    if virt {
        Ok(())
    } else {
        Err("the CPU shows no hardware virtualisation (no vmx or svm flag in /proc/cpuinfo)".into())
    }
}

/// Asks `/dev/kvm` for its API version (the `KVM_GET_API_VERSION` ioctl).
fn kvm_api_version() -> Result<i32, String> {
    use std::os::fd::AsRawFd;
    const KVM_GET_API_VERSION: libc::c_ulong = 0xAE00;
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map_err(|e| format!("/dev/kvm cannot be opened: {e}"))?;
    // SAFETY: KVM_GET_API_VERSION takes no argument and only returns a number.
    let version = unsafe { libc::ioctl(dev.as_raw_fd(), KVM_GET_API_VERSION as _, 0) };
    if version < 0 {
        return Err(format!(
            "/dev/kvm refused KVM_GET_API_VERSION: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(version)
}

/// The flags line of `/proc/cpuinfo` (empty when unreadable).
fn cpu_flags() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("flags"))
        .unwrap_or_default()
        .to_string()
}

/// What the node lets jobs hand QEMU: Nomad's qemu plugin settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QemuPolicy {
    /// Host directories images may also come from (`image_paths`), besides the allocation's
    /// own directory.
    pub image_paths: Vec<PathBuf>,
    /// The flags `args` may pass (`args_allowlist`); `None`: any flag, as in Nomad.
    pub args_allowlist: Option<Vec<String>>,
}

impl QemuPolicy {
    /// The image `image_path` names for a task in `task_dir`, resolved, if the node allows it.
    pub fn allowed_image(&self, task_dir: &Path, image_path: &str) -> Result<PathBuf, String> {
        let wanted = task_dir.join(image_path);
        let resolved = wanted.canonicalize().map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => "no such file".to_string(),
                _ => e.to_string(),
            };
            format!(
                "image_path {image_path:?}: {why} (looked at {}); fetch the image with an \
                 artifact block or fix the path",
                wanted.display()
            )
        })?;
        if !resolved.is_file() {
            return Err(format!(
                "image_path {image_path:?}: {} is not a file",
                resolved.display()
            ));
        }
        let alloc_dir = task_dir.parent().unwrap_or(task_dir);
        let roots = std::iter::once(alloc_dir.to_path_buf()).chain(self.image_paths.clone());
        for root in roots {
            if root
                .canonicalize()
                .is_ok_and(|root| resolved.starts_with(root))
            {
                return Ok(resolved);
            }
        }
        Err(format!(
            "image_path {image_path:?} resolves to {}, outside the allocation's directory and \
             the node's image_paths ({})",
            resolved.display(),
            if self.image_paths.is_empty() {
                "none set".to_string()
            } else {
                self.image_paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ))
    }

    /// Refuses a flag of `args` the node's `args_allowlist` lacks (`-drive=...` counts as
    /// `-drive`); values after a flag are not flags.
    pub fn check_args(&self, args: &[String]) -> Result<(), String> {
        let Some(allowed) = &self.args_allowlist else {
            return Ok(());
        };
        for arg in args.iter().filter(|a| a.starts_with('-')) {
            let flag = arg.split('=').next().unwrap_or(arg);
            if !allowed.iter().any(|a| a == flag) {
                return Err(format!(
                    "args: {flag:?} is not in this node's args_allowlist ({})",
                    allowed.join(", ")
                ));
            }
        }
        Ok(())
    }
}

/// Runs virtual machines with `qemu-system-x86_64`.
#[derive(Debug, Clone)]
pub struct QemuDriver {
    /// Why KVM is unusable here (probed once); `None` when it is usable.
    kvm_unusable: Option<String>,
    policy: QemuPolicy,
}

impl QemuDriver {
    /// Probes `/dev/kvm` and the CPU once.
    pub fn new() -> Self {
        QemuDriver {
            kvm_unusable: kvm_verdict(kvm_api_version(), &cpu_flags()).err(),
            policy: QemuPolicy::default(),
        }
    }

    /// A driver that takes KVM as unusable for `why` (tests, and nodes told not to use it).
    pub fn without_kvm(why: &str) -> Self {
        QemuDriver {
            kvm_unusable: Some(why.to_string()),
            policy: QemuPolicy::default(),
        }
    }

    /// The same driver under the node's `policy`.
    pub fn with_policy(self, policy: QemuPolicy) -> Self {
        QemuDriver { policy, ..self }
    }

    /// The spec raw_exec's process machinery runs: `qemu-system-x86_64` with the VM's
    /// arguments, once the config is checked and the image found.
    fn process_spec(&self, spec: &TaskSpec) -> Result<TaskSpec, AgentError> {
        let cfg = QemuConfig::parse(&spec.config).map_err(|e| AgentError::driver(NAME, e))?;
        let launch = Launch {
            name: &spec.alloc_name,
            memory_mb: spec.resources.memory_mb,
            ports: &spec.ports,
            kvm_unusable: self.kvm_unusable.as_deref(),
        };
        let refused = |e: String| AgentError::driver(NAME, e);
        // The config's own mistakes first, then what the node refuses, then the image.
        qemu_args(&cfg, &launch).map_err(refused)?;
        self.policy.check_args(&cfg.args).map_err(refused)?;
        let image = self
            .policy
            .allowed_image(&spec.task_dir, &cfg.image_path)
            .map_err(refused)?;
        let cfg = QemuConfig {
            image_path: image.display().to_string(),
            ..cfg
        };
        let args = qemu_args(&cfg, &launch).map_err(refused)?;
        let mut config = IndexMap::new();
        config.insert("command".to_string(), Value::String(QEMU_BINARY.into()));
        config.insert(
            "args".to_string(),
            Value::Array(args.into_iter().map(Value::String).collect()),
        );
        Ok(TaskSpec {
            config,
            ..spec.clone()
        })
    }
}

impl Default for QemuDriver {
    fn default() -> Self {
        Self::new()
    }
}

/// The version of the installed emulator, or why there is none.
async fn emulator_version() -> Result<String, String> {
    let run = tokio::process::Command::new(QEMU_BINARY)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .map_err(|_| format!("{QEMU_BINARY} --version did not answer in 10s"))?
        .map_err(|e| format!("{QEMU_BINARY} cannot be run: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_version(&text)
        .ok_or_else(|| format!("{QEMU_BINARY} --version printed no version: {text:?}"))
}

/// Asks the VM to power down through its HMP monitor socket.
async fn system_powerdown(socket: &Path) -> std::io::Result<()> {
    let mut stream = connect_unix(socket).await?;
    tokio::time::timeout(MONITOR_TIMEOUT, async {
        read_to_prompt(&mut stream).await?;
        stream.write_all(b"system_powerdown\n").await?;
        read_to_prompt(&mut stream).await
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "the monitor did not answer"))?
}

/// Connects to a Unix socket; a path longer than `sun_path` holds goes through the directory's
/// descriptor (`/proc/self/fd/N/name`), so deep task dirs work too.
async fn connect_unix(socket: &Path) -> std::io::Result<tokio::net::UnixStream> {
    const SUN_PATH_MAX: usize = 107;
    if socket.as_os_str().len() <= SUN_PATH_MAX {
        return tokio::net::UnixStream::connect(socket).await;
    }
    use std::os::fd::AsRawFd;
    let dir = std::fs::File::open(socket.parent().unwrap_or(Path::new("/")))?;
    let name = socket.file_name().unwrap_or_default();
    let short = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name);
    tokio::net::UnixStream::connect(short).await
}

/// Reads the monitor's output up to its `(qemu) ` prompt.
async fn read_to_prompt(stream: &mut tokio::net::UnixStream) -> std::io::Result<()> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !seen.ends_with(b"(qemu) ") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        seen.extend_from_slice(&buf[..n]);
    }
    Ok(())
}

/// The monitor socket of a task started with `graceful_shutdown`, from its exit file's place
/// (`<task_dir>/.nomos/exit-status`); `None` when the task has none.
fn monitor_socket(handle: &TaskHandle) -> Option<PathBuf> {
    let task_dir = handle.exit_file.as_ref()?.parent()?.parent()?;
    let socket = task_dir.join(MONITOR_SOCKET);
    socket.exists().then_some(socket)
}

#[async_trait]
impl Driver for QemuDriver {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn fingerprint(&self) -> DriverInfo {
        match emulator_version().await {
            Ok(version) => {
                let mut info = DriverInfo {
                    detected: true,
                    healthy: true,
                    version,
                    ..Default::default()
                };
                if self.kvm_unusable.is_none() {
                    info.attributes.insert("driver.qemu.kvm".into(), "1".into());
                }
                info
            }
            Err(why) => {
                tracing::debug!(%why, "qemu driver not detected");
                DriverInfo::default()
            }
        }
    }

    async fn start(&self, spec: &TaskSpec) -> Result<TaskHandle, AgentError> {
        let process = self.process_spec(spec)?;
        spawn_process(
            &process,
            SpawnOptions {
                driver: NAME,
                inherit_env: true,
                cgroup: None,
                isolate: None,
            },
        )
        .await
    }

    async fn recover(&self, handle: &TaskHandle) -> Result<bool, AgentError> {
        recover_process(handle)
    }

    async fn wait(&self, handle: &TaskHandle) -> Result<ExitResult, AgentError> {
        Ok(wait_process(handle).await)
    }

    async fn signal(&self, _handle: &TaskHandle, signal: &str) -> Result<(), AgentError> {
        Err(AgentError::driver(
            NAME,
            format!("a qemu task cannot be sent {signal} (Nomad's qemu driver cannot signal VMs either)"),
        ))
    }

    /// With `graceful_shutdown`: `system_powerdown` through the monitor, up to `timeout` for
    /// the guest to power off, then the signal and SIGKILL at once. Without (or with a monitor
    /// that does not answer): the signal, `timeout`, SIGKILL, as raw_exec stops a process.
    async fn stop(
        &self,
        handle: &TaskHandle,
        signal: &str,
        timeout: Duration,
    ) -> Result<(), AgentError> {
        let Some(socket) = monitor_socket(handle) else {
            return stop_process(handle, signal, timeout).await;
        };
        if let Err(e) = system_powerdown(&socket).await {
            tracing::warn!(task = %handle.task, socket = %socket.display(), error = %e,
                "qemu monitor did not take system_powerdown; stopping the VM with a signal");
            return stop_process(handle, signal, timeout).await;
        }
        let _ = tokio::time::timeout(timeout, wait_process(handle)).await;
        stop_process(handle, signal, Duration::ZERO).await
    }

    async fn destroy(&self, _handle: &TaskHandle) -> Result<(), AgentError> {
        Ok(())
    }

    async fn stats(&self, handle: &TaskHandle) -> Result<TaskStats, AgentError> {
        Ok(process_stats(handle))
    }

    async fn exec(
        &self,
        _handle: &TaskHandle,
        _req: &ExecRequest,
    ) -> Result<ExecOutput, AgentError> {
        Err(AgentError::driver(
            NAME,
            "commands cannot be run inside a qemu task (Nomad's qemu driver has no exec either)",
        ))
    }
}

#[cfg(test)]
mod tests;
