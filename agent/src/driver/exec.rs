//! The `exec` driver: a process like `raw_exec`, isolated in its own cgroup, pid namespace and,
//! where the host allows, a chroot.
//!
//! - cgroup: v2 at `/sys/fs/cgroup` (memory `memory_max` hard, `memory` as `memory.low`, cpu
//!   weight and max), or, on cgroup v1 hosts, the v1 memory controller at
//!   `/sys/fs/cgroup/memory` (`memory.limit_in_bytes` hard, `memory.soft_limit_in_bytes` soft;
//!   cpu is not limited there). An OOM kill is read from `memory.events` (v2) or
//!   `memory.oom_control` (v1).
//! - pid namespace: the task runs under util-linux `unshare --pid --fork --mount`, so it sees
//!   only its own processes (a fresh `/proc`).
//! - chroot: inside that mount namespace the task dir gets read-only binds of `/bin`, `/lib*`,
//!   `/usr`, `/etc`, plus `/dev`, `/proc`, `/tmp` and the allocation dir at its own path, and
//!   the task is chrooted there (see [`super::raw_exec::ISOLATE`]); the mounts vanish with it.
//!
//! What works is probed once at start and published as `driver.exec.cgroup_v2`,
//! `driver.exec.cgroup_v1_memory`, `driver.exec.pid_namespace` and `driver.exec.chroot`. A host
//! with no usable cgroup or no pid namespaces cannot isolate: exec is not advertised and a task
//! asking for it fails with a clear driver event instead of running unisolated.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use nomos_api::DriverInfo;

use super::inside::{exec_in_process, Entry};
use super::raw_exec::{
    process_stats, recover_process, signal_group, spawn_process, stop_process, wait_process,
    Isolate, SpawnOptions, ISOLATE,
};
use super::{
    attribute_oom_kills, parse_signal, Driver, ExecOutput, ExecRequest, ExecSession, ExitResult,
    SessionRequest, TaskHandle, TaskSpec, TaskStats,
};
use crate::error::AgentError;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const CGROUP_V1_MEMORY: &str = "/sys/fs/cgroup/memory";

/// Which cgroup hierarchy this host offers for resource limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Isolation {
    /// cgroup v2 is mounted and Nomos can create its own subtree.
    CgroupV2,
    /// cgroup v1 with a writable memory controller (memory limits only).
    CgroupV1Memory,
    /// No usable cgroup; the reason says what was found.
    Unavailable(String),
}

/// Creates and removes a probe directory under `root`.
fn can_create_under(root: &Path) -> Result<(), std::io::Error> {
    let test = root.join("nomos.probe");
    match std::fs::create_dir(&test) {
        Ok(()) => {
            let _ = std::fs::remove_dir(&test);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Detects the cgroup version at `/sys/fs/cgroup` and whether we can write to it.
pub fn detect_isolation() -> Isolation {
    let root = Path::new(CGROUP_ROOT);
    if !root.join("cgroup.controllers").exists() {
        let memory = Path::new(CGROUP_V1_MEMORY);
        if memory.join("memory.limit_in_bytes").exists() {
            return match can_create_under(memory) {
                Ok(()) => Isolation::CgroupV1Memory,
                Err(e) => Isolation::Unavailable(format!(
                    "host uses cgroup v1 and its memory controller at {CGROUP_V1_MEMORY} is not \
                     writable: {e}"
                )),
            };
        }
        let v1 = root.join("cpu").exists() || root.join("pids").exists();
        return Isolation::Unavailable(if v1 {
            "host uses cgroup v1 without a memory controller; the exec driver needs cgroup v2 \
             or the v1 memory controller"
                .into()
        } else {
            "no cgroup filesystem at /sys/fs/cgroup".into()
        });
    }
    match can_create_under(root) {
        Ok(()) => Isolation::CgroupV2,
        Err(e) => {
            Isolation::Unavailable(format!("cgroup v2 at {CGROUP_ROOT} is not writable: {e}"))
        }
    }
}

/// Everything the exec driver found out about this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Support {
    pub cgroup: Isolation,
    /// `unshare --pid --fork --mount` works (util-linux present, privileges suffice).
    pub pid_namespace: bool,
    /// A chroot with read-only system binds can be built and entered.
    pub chroot: bool,
}

impl Support {
    /// Why this host cannot run exec tasks isolated, if it cannot.
    pub fn refusal(&self) -> Option<String> {
        match (&self.cgroup, self.pid_namespace) {
            (Isolation::Unavailable(why), _) => Some(why.clone()),
            (_, false) => Some(
                "no pid namespaces here (util-linux `unshare --pid --fork --mount` failed)".into(),
            ),
            _ => None,
        }
    }
}

/// Runs `sh -c ISOLATE` in new namespaces with `/bin/true`, rooted at `root`: the real path a
/// task takes.
fn probe_namespaces(root: Option<&Path>) -> bool {
    // Unique per probe: several agents (tests) may probe at once in one process.
    static PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let scratch = std::env::temp_dir().join(format!("nomos-exec-probe-{}-{n}", std::process::id()));
    if std::fs::create_dir_all(scratch.join(".nomos")).is_err() {
        return false;
    }
    let chroot = root.map(|_| scratch.join(".nomos/root"));
    let ok = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount", "--propagation", "private"])
        .arg("/bin/sh")
        .arg("-c")
        .arg(ISOLATE)
        .arg("nomos-isolate")
        .arg(chroot.clone().unwrap_or_else(|| PathBuf::from("/")))
        .arg(&scratch)
        .arg(&scratch)
        .arg("")
        .arg("exec \"$@\"")
        .arg("0")
        .arg("probe")
        .arg("/bin/true")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    remove_empty_tree(&scratch);
    ok
}

/// Removes a tree of empty directories and symlinks, never a file or anything a symlink points
/// to (the chroot's mount points are empty once its mount namespace is gone).
pub fn remove_empty_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_symlink() {
                let _ = std::fs::remove_file(e.path());
            } else if ft.is_dir() {
                remove_empty_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Probes cgroups, pid namespaces and chroot.
pub fn detect_support() -> Support {
    let cgroup = detect_isolation();
    let pid_namespace = probe_namespaces(None);
    let chroot = pid_namespace && probe_namespaces(Some(Path::new("/")));
    Support {
        cgroup,
        pid_namespace,
        chroot,
    }
}

/// The cgroup v2 limit files for a task's resources (pure): `(file, value)` pairs.
pub fn cgroup_limits(
    memory_mb: u32,
    memory_max_mb: i64,
    cpu_mhz: u32,
    total_mhz: u32,
    cores: u32,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let (hard, soft) = nomos_api::memory_bounds(memory_mb, memory_max_mb);
    if let Some(hard) = hard {
        out.push(("memory.max", (hard * MIB).to_string()));
        out.push(("memory.swap.max", "0".to_string()));
    }
    if let Some(soft) = soft {
        out.push(("memory.low", (soft * MIB).to_string()));
    }
    if cpu_mhz > 0 && total_mhz > 0 {
        // cpu.weight ranges 1..=10000; scale the share of the node's MHz.
        let weight = ((cpu_mhz as u64 * 10000) / total_mhz as u64).clamp(1, 10000);
        out.push(("cpu.weight", weight.to_string()));
    }
    if cores > 0 {
        out.push(("cpu.max", format!("{} 100000", cores as u64 * 100000)));
    }
    out
}

/// The cgroup v1 memory-controller files for a task (pure): hard limit (also on memory+swap)
/// and the soft limit when `memory` is a reservation under `memory_max`.
pub fn cgroup_v1_limits(memory_mb: u32, memory_max_mb: i64) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let (hard, soft) = nomos_api::memory_bounds(memory_mb, memory_max_mb);
    if let Some(hard) = hard {
        let bytes = (hard * MIB).to_string();
        out.push(("memory.limit_in_bytes", bytes.clone()));
        out.push(("memory.memsw.limit_in_bytes", bytes));
    }
    if let Some(soft) = soft {
        out.push(("memory.soft_limit_in_bytes", (soft * MIB).to_string()));
    }
    out
}

const MIB: u64 = 1024 * 1024;

/// Runs tasks as processes in their own cgroup, pid namespace and chroot.
#[derive(Debug, Clone)]
pub struct ExecDriver {
    support: Support,
    total_mhz: u32,
}

impl ExecDriver {
    pub fn new(total_mhz: u32) -> Self {
        ExecDriver {
            support: detect_support(),
            total_mhz,
        }
    }

    /// What this driver found it can do here.
    pub fn support(&self) -> &Support {
        &self.support
    }

    /// Starts `spec` (its `config.command` and `args`) isolated, as the driver named `driver`:
    /// its handle and errors carry that name, so drivers that wrap this one (`java`) get their
    /// tasks back through themselves after an agent restart.
    pub(crate) async fn start_as(
        &self,
        spec: &TaskSpec,
        driver: &'static str,
    ) -> Result<TaskHandle, AgentError> {
        if let Some(why) = self.support.refusal() {
            return Err(AgentError::driver(
                driver,
                format!("this node cannot isolate tasks: {why}"),
            ));
        }
        let absolute_mount = spec
            .volume_mounts
            .iter()
            .find(|m| m.destination.starts_with('/'));
        if let (false, Some(m)) = (self.support.chroot, absolute_mount) {
            return Err(AgentError::driver(
                driver,
                format!(
                    "this node builds no chroot for {driver} tasks, so volume {:?} cannot be mounted at the absolute destination {:?}: use a path relative to the task directory",
                    m.volume, m.destination
                ),
            ));
        }
        let dir = self.make_cgroup(spec)?;
        let alloc_root = spec
            .alloc_dir
            .parent()
            .unwrap_or(&spec.alloc_dir)
            .to_path_buf();
        let isolate = Isolate {
            chroot: self
                .support
                .chroot
                .then(|| spec.task_dir.join(".nomos").join("root")),
            alloc_root,
        };
        let spec = &as_default_user(spec);
        spawn_process(
            spec,
            SpawnOptions {
                driver,
                inherit_env: false,
                cgroup: Some(dir),
                isolate: Some(isolate),
            },
        )
        .await
    }

    fn cgroup_dir(&self, spec: &TaskSpec) -> PathBuf {
        let base = match self.support.cgroup {
            Isolation::CgroupV1Memory => CGROUP_V1_MEMORY,
            _ => CGROUP_ROOT,
        };
        // Named after the agent too: two agents on one host never share (or kill) a cgroup.
        let name = if spec.agent_id.is_empty() {
            format!("{}.{}", spec.alloc_id, spec.task)
        } else {
            format!("{}.{}.{}", spec.agent_id, spec.alloc_id, spec.task)
        };
        Path::new(base).join("nomos").join(name)
    }

    fn make_cgroup(&self, spec: &TaskSpec) -> Result<PathBuf, AgentError> {
        let dir = self.cgroup_dir(spec);
        let parent = dir.parent().unwrap_or(Path::new(CGROUP_ROOT));
        std::fs::create_dir_all(parent).map_err(|e| AgentError::io(parent, e))?;
        let r = &spec.resources;
        let limits = if self.support.cgroup == Isolation::CgroupV2 {
            // Enable the controllers for children of the nomos subtree.
            let _ = std::fs::write(
                Path::new(CGROUP_ROOT).join("cgroup.subtree_control"),
                "+memory +cpu +pids",
            );
            let _ = std::fs::write(parent.join("cgroup.subtree_control"), "+memory +cpu +pids");
            cgroup_limits(r.memory_mb, r.memory_max_mb, r.cpu, self.total_mhz, r.cores)
        } else {
            cgroup_v1_limits(r.memory_mb, r.memory_max_mb)
        };
        std::fs::create_dir_all(&dir).map_err(|e| AgentError::io(&dir, e))?;
        for (file, value) in limits {
            match std::fs::write(dir.join(file), &value) {
                Ok(()) => {}
                // Swap accounting may be off; the memory limit alone still holds.
                Err(_) if file == "memory.memsw.limit_in_bytes" => {}
                Err(e) => {
                    return Err(AgentError::driver(
                        "exec",
                        format!("writing {file}={value}: {e}"),
                    ))
                }
            }
        }
        Ok(dir)
    }
}

#[async_trait]
impl Driver for ExecDriver {
    fn name(&self) -> &'static str {
        "exec"
    }

    async fn fingerprint(&self) -> DriverInfo {
        let mut info = DriverInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        };
        let sup = &self.support;
        let flag = |b: bool| if b { "1" } else { "0" }.to_string();
        let attrs = [
            (
                "driver.exec.cgroup_v2",
                flag(sup.cgroup == Isolation::CgroupV2),
            ),
            (
                "driver.exec.cgroup_v1_memory",
                flag(sup.cgroup == Isolation::CgroupV1Memory),
            ),
            ("driver.exec.pid_namespace", flag(sup.pid_namespace)),
            ("driver.exec.chroot", flag(sup.chroot)),
        ];
        for (k, v) in attrs {
            info.attributes.insert(k.into(), v);
        }
        match sup.refusal() {
            None => {
                info.detected = true;
                info.healthy = true;
                let kind = match sup.cgroup {
                    Isolation::CgroupV2 => "cgroup-v2",
                    _ => "cgroup-v1-memory",
                };
                info.attributes
                    .insert("driver.exec.isolation".into(), kind.into());
            }
            Some(why) => {
                info.detected = false;
                info.healthy = false;
                info.attributes
                    .insert("driver.exec.isolation".into(), "none".into());
                info.attributes
                    .insert("driver.exec.unavailable".into(), why);
            }
        }
        info
    }

    async fn start(&self, spec: &TaskSpec) -> Result<TaskHandle, AgentError> {
        self.start_as(spec, "exec").await
    }

    async fn recover(&self, handle: &TaskHandle) -> Result<bool, AgentError> {
        recover_process(handle)
    }

    async fn wait(&self, handle: &TaskHandle) -> Result<ExitResult, AgentError> {
        let exit = wait_process(handle).await;
        let kills = handle.cgroup.as_deref().map(oom_kills).unwrap_or(0);
        Ok(attribute_oom_kills(exit, kills))
    }

    async fn signal(&self, handle: &TaskHandle, signal: &str) -> Result<(), AgentError> {
        signal_group(handle, parse_signal(signal)?)
    }

    async fn stop(
        &self,
        handle: &TaskHandle,
        signal: &str,
        timeout: Duration,
    ) -> Result<(), AgentError> {
        stop_process(handle, signal, timeout).await
    }

    async fn destroy(&self, handle: &TaskHandle) -> Result<(), AgentError> {
        if let Some(cg) = &handle.cgroup {
            for _ in 0..50 {
                if cg.join("cgroup.kill").exists() {
                    let _ = std::fs::write(cg.join("cgroup.kill"), "1");
                } else {
                    // cgroup v1: kill what is left, one by one.
                    let procs =
                        std::fs::read_to_string(cg.join("cgroup.procs")).unwrap_or_default();
                    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
                if std::fs::remove_dir(cg).is_ok() || !cg.exists() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        // The task owns its directory: never enter `.nomos` or `root` through a link it left.
        let real_dir = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir());
        if let Some(state) = handle.exit_file.as_ref().and_then(|f| f.parent()) {
            let root = state.join("root");
            if real_dir(state) && real_dir(&root) {
                remove_empty_tree(&root);
            }
        }
        Ok(())
    }

    /// The task's cgroup accounting where its cgroup has it (v2), else `/proc` (with a v1
    /// memory cgroup's figure for memory).
    async fn stats(&self, handle: &TaskHandle) -> Result<TaskStats, AgentError> {
        let procs = process_stats(handle);
        Ok(match &handle.cgroup {
            Some(dir) => crate::usage::cgroup_stats(dir, procs),
            None => procs,
        })
    }

    /// Runs the command in the task's namespaces, chroot, cgroup and user ([`super::inside`]).
    async fn exec(&self, handle: &TaskHandle, req: &ExecRequest) -> Result<ExecOutput, AgentError> {
        exec_in_process(handle, req, Entry::Isolated).await
    }

    async fn exec_session(
        &self,
        handle: &TaskHandle,
        req: &SessionRequest,
    ) -> Result<ExecSession, AgentError> {
        super::session::start_session(handle, req, Entry::Isolated).await
    }
}

/// The `oom_kill` count in a cgroup's `memory.events` (v2) or `memory.oom_control` (v1).
fn oom_kills(cg: &Path) -> u64 {
    std::fs::read_to_string(cg.join("memory.events"))
        .or_else(|_| std::fs::read_to_string(cg.join("memory.oom_control")))
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("oom_kill ")
                    .and_then(|v| v.trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

/// The user an exec task runs as when its `user` is empty, as in Nomad: isolation is no
/// boundary for a task that is root inside its chroot.
pub const DEFAULT_EXEC_USER: &str = "nobody";

/// `spec`, its `user` defaulted to [`DEFAULT_EXEC_USER`].
fn as_default_user(spec: &TaskSpec) -> TaskSpec {
    let mut spec = spec.clone();
    if spec.user.is_empty() {
        spec.user = DEFAULT_EXEC_USER.into();
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_follow_memory_max_as_hard_and_memory_as_low() {
        let l = cgroup_limits(256, 512, 500, 2000, 0);
        assert!(l.contains(&("memory.max", (512u64 << 20).to_string())));
        assert!(l.contains(&("memory.low", (256u64 << 20).to_string())));
        assert!(l.contains(&("cpu.weight", "2500".to_string())));
        let only_memory = cgroup_limits(128, 0, 0, 0, 2);
        assert!(only_memory.contains(&("memory.max", (128u64 << 20).to_string())));
        assert!(!only_memory.iter().any(|(f, _)| *f == "memory.low"));
        assert!(only_memory.contains(&("cpu.max", "200000 100000".to_string())));
    }

    #[test]
    fn isolation_detection_explains_itself() {
        match detect_isolation() {
            Isolation::CgroupV2 | Isolation::CgroupV1Memory => {}
            Isolation::Unavailable(why) => assert!(why.contains("cgroup"), "{why}"),
        }
    }

    #[test]
    fn v1_limits_use_the_memory_controller() {
        let l = cgroup_v1_limits(256, 512);
        assert!(l.contains(&("memory.limit_in_bytes", (512u64 << 20).to_string())));
        assert!(l.contains(&("memory.memsw.limit_in_bytes", (512u64 << 20).to_string())));
        assert!(l.contains(&("memory.soft_limit_in_bytes", (256u64 << 20).to_string())));
        let only = cgroup_v1_limits(64, 0);
        assert_eq!(only.len(), 2);
        assert!(cgroup_v1_limits(0, 0).is_empty());
    }
}
