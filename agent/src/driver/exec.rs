//! The `exec` driver: a process like `raw_exec`, isolated in its own cgroup v2 with the task's
//! memory (`memory_max` hard, `memory` as the `memory.low` reservation) and cpu limits.
//!
//! Isolation needs a writable cgroup v2 hierarchy at `/sys/fs/cgroup`. On hosts without one
//! (cgroup v1, or a read-only mount) the fingerprint says why, and starting a task fails with a
//! clear driver error instead of running it unisolated. An OOM kill is read from the cgroup's
//! `memory.events`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use nomos_api::DriverInfo;

use super::raw_exec::{
    process_alive, process_stats, read_exit, signal_group, spawn_process, stop_process,
    SpawnOptions,
};
use super::{parse_signal, Driver, ExitResult, TaskHandle, TaskSpec, TaskStats};
use crate::error::AgentError;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// What isolation this host offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Isolation {
    /// cgroup v2 is mounted and Nomos can create its own subtree.
    CgroupV2,
    /// No usable cgroup v2; the reason says what was found.
    Unavailable(String),
}

/// Detects the cgroup version at `/sys/fs/cgroup` and whether we can write to it.
pub fn detect_isolation() -> Isolation {
    let root = Path::new(CGROUP_ROOT);
    if !root.join("cgroup.controllers").exists() {
        let v1 = root.join("memory").exists() || root.join("cpu").exists();
        return Isolation::Unavailable(if v1 {
            "host uses cgroup v1; the exec driver needs cgroup v2".into()
        } else {
            "no cgroup filesystem at /sys/fs/cgroup".into()
        });
    }
    let test = root.join("nomos.probe");
    match std::fs::create_dir(&test).or_else(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Ok(())
        } else {
            Err(e)
        }
    }) {
        Ok(()) => {
            let _ = std::fs::remove_dir(&test);
            Isolation::CgroupV2
        }
        Err(e) => {
            Isolation::Unavailable(format!("cgroup v2 at {CGROUP_ROOT} is not writable: {e}"))
        }
    }
}

/// The cgroup v2 limit files for a task's resources (pure): `(file, value)` pairs.
pub fn cgroup_limits(
    memory_mb: u32,
    memory_max_mb: u32,
    cpu_mhz: u32,
    total_mhz: u32,
    cores: u32,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let hard = if memory_max_mb > 0 {
        memory_max_mb
    } else {
        memory_mb
    };
    if hard > 0 {
        out.push(("memory.max", (hard as u64 * 1024 * 1024).to_string()));
        out.push(("memory.swap.max", "0".to_string()));
    }
    if memory_max_mb > memory_mb && memory_mb > 0 {
        out.push(("memory.low", (memory_mb as u64 * 1024 * 1024).to_string()));
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

/// Runs tasks as processes in their own cgroup.
#[derive(Debug, Clone)]
pub struct ExecDriver {
    isolation: Isolation,
    total_mhz: u32,
}

impl ExecDriver {
    pub fn new(total_mhz: u32) -> Self {
        ExecDriver {
            isolation: detect_isolation(),
            total_mhz,
        }
    }

    fn cgroup_dir(spec: &TaskSpec) -> PathBuf {
        Path::new(CGROUP_ROOT)
            .join("nomos")
            .join(format!("{}.{}", spec.alloc_id, spec.task))
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
        match &self.isolation {
            Isolation::CgroupV2 => {
                info.detected = true;
                info.healthy = true;
                info.attributes
                    .insert("driver.exec.isolation".into(), "cgroup-v2".into());
            }
            Isolation::Unavailable(why) => {
                info.detected = false;
                info.healthy = false;
                info.attributes
                    .insert("driver.exec.isolation".into(), "none".into());
                info.attributes
                    .insert("driver.exec.unavailable".into(), why.clone());
            }
        }
        info
    }

    async fn start(&self, spec: &TaskSpec) -> Result<TaskHandle, AgentError> {
        if let Isolation::Unavailable(why) = &self.isolation {
            return Err(AgentError::driver(
                "exec",
                format!("this node cannot isolate tasks: {why}"),
            ));
        }
        let dir = Self::cgroup_dir(spec);
        let parent = dir.parent().unwrap_or(Path::new(CGROUP_ROOT));
        std::fs::create_dir_all(parent).map_err(|e| AgentError::io(parent, e))?;
        // Enable the controllers for children of the nomos subtree.
        let _ = std::fs::write(
            Path::new(CGROUP_ROOT).join("cgroup.subtree_control"),
            "+memory +cpu +pids",
        );
        let _ = std::fs::write(parent.join("cgroup.subtree_control"), "+memory +cpu +pids");
        std::fs::create_dir_all(&dir).map_err(|e| AgentError::io(&dir, e))?;
        let r = &spec.resources;
        for (file, value) in
            cgroup_limits(r.memory_mb, r.memory_max_mb, r.cpu, self.total_mhz, r.cores)
        {
            std::fs::write(dir.join(file), &value)
                .map_err(|e| AgentError::driver("exec", format!("writing {file}={value}: {e}")))?;
        }
        spawn_process(
            spec,
            SpawnOptions {
                driver: "exec",
                inherit_env: false,
                cgroup: Some(dir),
            },
        )
        .await
    }

    async fn recover(&self, handle: &TaskHandle) -> Result<bool, AgentError> {
        Ok(process_alive(handle))
    }

    async fn wait(&self, handle: &TaskHandle) -> Result<ExitResult, AgentError> {
        while process_alive(handle) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut exit = read_exit(handle);
        if let Some(cg) = &handle.cgroup {
            exit.oom_killed = oom_kills(cg) > 0;
        }
        Ok(exit)
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
            let _ = std::fs::write(cg.join("cgroup.kill"), "1");
            let _ = std::fs::remove_dir(cg);
        }
        Ok(())
    }

    async fn stats(&self, handle: &TaskHandle) -> Result<TaskStats, AgentError> {
        Ok(process_stats(handle))
    }
}

/// The `oom_kill` count in a cgroup's `memory.events`.
fn oom_kills(cg: &Path) -> u64 {
    std::fs::read_to_string(cg.join("memory.events"))
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("oom_kill ")
                    .and_then(|v| v.trim().parse().ok())
            })
        })
        .unwrap_or(0)
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
            Isolation::CgroupV2 => {}
            Isolation::Unavailable(why) => assert!(why.contains("cgroup"), "{why}"),
        }
    }
}
