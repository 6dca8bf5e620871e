//! Task drivers: one trait to start, stop, signal, wait for, recover, measure and read the logs
//! of a task, and its implementations (`raw_exec`, `exec`, `java` (exec's isolation around a
//! JVM), `docker`, `qemu`).
//!
//! A driver returns a [`TaskHandle`] that the agent persists; after an agent restart the handle
//! is all a driver needs to find the task again ([`Driver::recover`]). [`Driver::exec`] runs a
//! command inside a running task, with the isolation the driver gives the task itself (script
//! checks and template change scripts use it; `inside` holds the process drivers' part), and
//! [`Driver::exec_session`] starts one that streams (`nctl alloc exec`; `session` holds the
//! process drivers' part).

pub mod docker;
mod docker_session;
pub mod exec;
mod inside;
pub mod java;
pub mod qemu;
pub mod raw_exec;
mod session;
pub mod volumes;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use indexmap::IndexMap;
use nomos_api::exec::{ExecEvent, ExecInput};
use nomos_api::{AllocatedDevice, AllocatedPort, DriverInfo, LogConfig, Resources, Value};
use serde::{Deserialize, Serialize};

use crate::error::AgentError;
use crate::logs::LogStream;

/// Everything a driver needs to start one task; `config`, `env` are already interpolated.
#[derive(Debug, Clone, Default)]
pub struct TaskSpec {
    pub alloc_id: String,
    /// The node's id; containers are labelled with it so an agent only cleans up its own.
    pub node_id: String,
    /// The starting agent's id ([`crate::state::StateDir::agent_id`], from its data dir): process
    /// tasks carry it as [`AGENT_ID_ENV`] and containers as a label, so an agent only ever
    /// adopts what it started itself. Empty: tasks carry no agent id.
    pub agent_id: String,
    pub alloc_name: String,
    pub namespace: String,
    pub job_id: String,
    pub group: String,
    pub task: String,
    pub config: IndexMap<String, Value>,
    pub env: BTreeMap<String, String>,
    pub user: String,
    /// The task's working directory: `<data_dir>/allocs/<alloc>/<task>`.
    pub task_dir: PathBuf,
    /// The shared allocation directory: `<data_dir>/allocs/<alloc>/alloc`.
    pub alloc_dir: PathBuf,
    pub log_dir: PathBuf,
    pub resources: Resources,
    pub ports: Vec<AllocatedPort>,
    /// The device instances the allocation holds for this task (containers get a device
    /// request for its NVIDIA GPUs).
    pub devices: Vec<AllocatedDevice>,
    pub logs: LogConfig,
    /// The task's `kill_signal` (empty: SIGTERM); containers get it as their stop signal.
    pub kill_signal: String,
    /// Host volumes to bind into the task ([`crate::volume_mounts`]).
    pub volume_mounts: Vec<crate::volume_mounts::VolumeBind>,
}

/// The environment variable naming the agent that started a process task.
pub const AGENT_ID_ENV: &str = "NOMOS_AGENT_ID";

/// What the agent persists to find a task again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct TaskHandle {
    pub driver: String,
    pub task: String,
    /// The agent that started the task (see [`TaskSpec::agent_id`]); empty in handles written
    /// before agents had ids, which are trusted by pid and start time alone.
    pub agent_id: String,
    /// Process id of the task's process-group leader (raw_exec, exec).
    pub pid: Option<i32>,
    /// Start time of `pid` in clock ticks after boot, so a reused pid is not mistaken.
    pub start_time: Option<u64>,
    /// Where the wrapper writes the exit status of a process task.
    pub exit_file: Option<PathBuf>,
    /// Cgroup directory of an `exec` task.
    pub cgroup: Option<PathBuf>,
    pub container_id: Option<String>,
    pub log_dir: PathBuf,
    pub started_at_ms: i64,
}

/// Refuses a handle that another agent wrote ([`AgentError::NotOurs`]): a data dir copied from
/// another agent names that agent's tasks, which this one must neither re-attach to nor stop.
pub fn check_owner(handle: &TaskHandle, agent_id: &str) -> Result<(), AgentError> {
    if handle.agent_id.is_empty() || handle.agent_id == agent_id {
        return Ok(());
    }
    Err(AgentError::NotOurs {
        task: handle.task.clone(),
        why: format!(
            "its handle was written by agent {}, this agent is {agent_id}",
            handle.agent_id
        ),
    })
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ExitResult {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// The task's main process was OOM-killed (it is what the task's result follows).
    pub oom_killed: bool,
    /// How many processes of the task the kernel's OOM killer killed (exec: its cgroup's
    /// `oom_kill` count), the main process or not.
    pub oom_kills: u64,
    /// Set when the driver could not tell how the task ended.
    pub error: Option<String>,
}

impl ExitResult {
    pub fn successful(&self) -> bool {
        self.exit_code == Some(0)
            && self.signal.is_none()
            && !self.oom_killed
            && self.error.is_none()
    }
    /// A human description for task events.
    pub fn describe(&self) -> String {
        let mut s = match (self.exit_code, self.signal) {
            (Some(c), None) => format!("Exit Code: {c}"),
            (Some(c), Some(sig)) => format!("Exit Code: {c}, Signal: {sig}"),
            (None, Some(sig)) => format!("Signal: {sig}"),
            (None, None) => "Exit status unknown".to_string(),
        };
        if self.oom_killed {
            s.push_str(", OOM Killed");
        } else if self.oom_kills > 0 {
            s.push_str(&format!(
                "; a process in the task was OOM-killed ({} OOM kill(s) in the task)",
                self.oom_kills
            ));
        }
        if let Some(e) = &self.error {
            s.push_str(&format!(" ({e})"));
        }
        s
    }
}

/// How a task ended, given the OOM kills recorded for it (its cgroup's count; Docker's
/// `OOMKilled`): the result follows the task's main process. It counts as OOM-killed only when
/// the main process died of SIGKILL (exit status 137, or none because the process-task wrapper
/// itself was killed) and an OOM kill was recorded; a child killed while the main process exits
/// 0 leaves a success. Either way `oom_kills` keeps the count, told in the `Terminated` event.
pub fn attribute_oom_kills(mut exit: ExitResult, oom_kills: u64) -> ExitResult {
    exit.oom_kills = oom_kills;
    exit.oom_killed = oom_kills > 0 && exit.signal == Some(libc::SIGKILL);
    exit
}

/// A command to run inside a running task ([`Driver::exec`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    pub command: String,
    pub args: Vec<String>,
    /// How long it may run; past it the command is killed ([`AgentError::ExecTimedOut`]).
    pub timeout: Duration,
    /// How many bytes of its output are kept; the rest is read and dropped.
    pub output_limit: usize,
}

/// The most output a command run inside a task keeps by default (Consul keeps as much of a
/// script check's output).
pub const EXEC_OUTPUT_LIMIT: usize = 4 * 1024;

/// How a command run inside a task ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecOutput {
    /// Its exit code; `None` when a signal ended it.
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// Its stdout and stderr as they came, at most [`ExecRequest::output_limit`] bytes.
    pub output: Vec<u8>,
    /// More output came than was kept.
    pub truncated: bool,
}

impl ExecOutput {
    /// The output as text, lossily decoded and trimmed, with a mark where it was cut.
    pub fn text(&self) -> String {
        let text = String::from_utf8_lossy(&self.output).trim().to_string();
        if self.truncated {
            format!("{text} [output truncated]")
        } else {
            text
        }
    }
}

/// Keeps the first `limit` bytes of a stream of chunks and counts what it drops.
#[derive(Debug, Default)]
pub struct OutputCap {
    limit: usize,
    kept: Vec<u8>,
    dropped: u64,
}

impl OutputCap {
    pub fn new(limit: usize) -> Self {
        OutputCap {
            limit,
            kept: Vec::with_capacity(limit.min(64 * 1024)),
            dropped: 0,
        }
    }

    pub fn push(&mut self, chunk: &[u8]) {
        let room = self.limit.saturating_sub(self.kept.len());
        let take = room.min(chunk.len());
        self.kept.extend_from_slice(&chunk[..take]);
        self.dropped += (chunk.len() - take) as u64;
    }

    /// The kept bytes and whether any were dropped.
    pub fn finish(self) -> (Vec<u8>, bool) {
        (self.kept, self.dropped > 0)
    }
}

/// An interactive command to start inside a running task ([`Driver::exec_session`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRequest {
    /// The program and its arguments.
    pub command: Vec<String>,
    /// Whether the command gets a pseudo-terminal (resized by [`ExecInput::TtySize`]) instead
    /// of pipes; with one, its stdout and stderr are one stream, sent as stdout.
    pub tty: bool,
}

/// A command running inside a task: its input (stdin, terminal size) goes into `input`, its
/// output comes out of `events`, which ends with one [`ExecEvent::Exited`]. Dropping `input`
/// (the client went away) kills the command and everything it started.
#[derive(Debug)]
pub struct ExecSession {
    pub input: tokio::sync::mpsc::Sender<ExecInput>,
    pub events: tokio::sync::mpsc::Receiver<ExecEvent>,
}

/// How many frames wait in an [`ExecSession`]'s channels before the side writing them waits.
pub const SESSION_QUEUE: usize = 32;

/// Resource usage of a running task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TaskStats {
    pub memory_rss_bytes: u64,
    /// CPU time used so far, user plus system.
    pub cpu_total_ns: u64,
    pub pids: u32,
    /// Where the figures come from.
    #[serde(default)]
    pub source: StatsSource,
}

/// How a task's usage was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatsSource {
    /// The task's processes in `/proc` (utime + stime, RSS).
    #[default]
    Procfs,
    /// The task's cgroup v2 accounting (`cpu.stat` `usage_usec`, `memory.current`).
    Cgroup,
    /// cgroup v1's memory controller for memory, `/proc` for CPU.
    CgroupMemoryProcfsCpu,
    /// Docker's stats API.
    Docker,
}

impl StatsSource {
    pub fn as_str(self) -> &'static str {
        match self {
            StatsSource::Procfs => "procfs",
            StatsSource::Cgroup => "cgroup",
            StatsSource::CgroupMemoryProcfsCpu => "cgroup_memory_procfs_cpu",
            StatsSource::Docker => "docker",
        }
    }
}

/// One way of running tasks.
#[async_trait]
pub trait Driver: Send + Sync + 'static {
    /// The name in job files (`driver = "raw_exec"`).
    fn name(&self) -> &'static str;

    /// Whether the driver works on this host, its version and attributes.
    async fn fingerprint(&self) -> DriverInfo;

    /// Starts a task; returns once it is running.
    async fn start(&self, spec: &TaskSpec) -> Result<TaskHandle, AgentError>;

    /// Finds a task again from its persisted handle: `true` if it is still running.
    async fn recover(&self, handle: &TaskHandle) -> Result<bool, AgentError>;

    /// Waits until the task exits.
    async fn wait(&self, handle: &TaskHandle) -> Result<ExitResult, AgentError>;

    /// Sends a signal (`SIGHUP`, `HUP`, ...) to the task.
    async fn signal(&self, handle: &TaskHandle, signal: &str) -> Result<(), AgentError>;

    /// Sends `signal`, waits up to `timeout` for the task to exit, then kills it.
    async fn stop(
        &self,
        handle: &TaskHandle,
        signal: &str,
        timeout: Duration,
    ) -> Result<(), AgentError>;

    /// Releases what the task held (a container, a cgroup) once it has exited.
    async fn destroy(&self, handle: &TaskHandle) -> Result<(), AgentError>;

    /// Current resource usage.
    async fn stats(&self, handle: &TaskHandle) -> Result<TaskStats, AgentError>;

    /// Runs a command inside the running task, as the task runs (its user, environment,
    /// working directory, and for isolated drivers its namespaces, root and cgroup), and waits
    /// for it up to `req.timeout`. [`AgentError::TaskNotRunning`] when the task is gone,
    /// [`AgentError::ExecTimedOut`] when the command was killed for running too long.
    async fn exec(&self, handle: &TaskHandle, req: &ExecRequest) -> Result<ExecOutput, AgentError>;

    /// Starts an interactive command inside the running task, isolated as [`Driver::exec`]
    /// isolates it, and returns once it runs. [`AgentError::ExecUnsupported`] for drivers
    /// without a way in.
    async fn exec_session(
        &self,
        _handle: &TaskHandle,
        _req: &SessionRequest,
    ) -> Result<ExecSession, AgentError> {
        Err(AgentError::ExecUnsupported {
            driver: self.name().to_string(),
        })
    }

    /// Copies the task's output into its log files for as long as it runs, for drivers whose
    /// tasks do not write the files themselves (docker). Returns when the output ends.
    async fn ship_logs(&self, _handle: &TaskHandle) -> Result<(), AgentError> {
        Ok(())
    }

    /// Up to `limit` bytes of the task's output from `offset`.
    async fn logs(
        &self,
        handle: &TaskHandle,
        stream: LogStream,
        offset: u64,
        limit: usize,
    ) -> Result<Vec<u8>, AgentError> {
        crate::logs::read_logs(&handle.log_dir, &handle.task, stream, offset, limit)
            .map(|c| c.data)
            .map_err(|e| AgentError::io(&handle.log_dir, e))
    }
}

/// Parses `SIGTERM`, `TERM`, `sigterm` or a number into a signal.
pub fn parse_signal(name: &str) -> Result<nix::sys::signal::Signal, AgentError> {
    use std::str::FromStr;
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Ok(nix::sys::signal::Signal::SIGTERM);
    }
    if let Ok(n) = trimmed.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(n)
            .map_err(|_| AgentError::Config(format!("unknown signal number {n}")));
    }
    let upper = trimmed.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    nix::sys::signal::Signal::from_str(&full)
        .map_err(|_| AgentError::Config(format!("unknown signal {name:?}")))
}

pub use nomos_api::now_ms;

/// A string from a driver config value.
pub fn config_str(config: &IndexMap<String, Value>, key: &str) -> Option<String> {
    match config.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A list of strings from a driver config value (a single string counts as a list of one).
pub fn config_list(config: &IndexMap<String, Value>, key: &str) -> Vec<String> {
    match config.get(key) {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;

    #[test]
    fn signals_parse_in_every_spelling() {
        let cases = [
            ("SIGTERM", Signal::SIGTERM),
            ("TERM", Signal::SIGTERM),
            ("sigint", Signal::SIGINT),
            ("9", Signal::SIGKILL),
            ("", Signal::SIGTERM),
            ("HUP", Signal::SIGHUP),
        ];
        for (s, want) in cases {
            assert_eq!(parse_signal(s).unwrap(), want, "{s}");
        }
        assert!(parse_signal("SIGNOPE").is_err());
    }

    #[test]
    fn an_oom_kill_is_the_tasks_only_when_its_main_process_was_killed() {
        let exit = |code: Option<i32>, signal: Option<i32>| ExitResult {
            exit_code: code,
            signal,
            ..Default::default()
        };
        // (main process exit, OOM kills in the cgroup, task OOM-killed, task successful)
        let cases = [
            (exit(Some(0), None), 0, false, true),
            (exit(Some(0), None), 1, false, true),
            (exit(Some(1), None), 2, false, false),
            (exit(Some(137), Some(9)), 1, true, false),
            (exit(None, Some(9)), 1, true, false),
            (exit(Some(137), Some(9)), 0, false, false),
            (exit(Some(143), Some(15)), 1, false, false),
        ];
        for (main, kills, oom, ok) in cases {
            let got = attribute_oom_kills(main.clone(), kills);
            assert_eq!(got.oom_killed, oom, "{main:?} with {kills} kills");
            assert_eq!(got.successful(), ok, "{main:?} with {kills} kills");
            assert_eq!(got.oom_kills, kills);
        }
    }

    #[test]
    fn output_past_its_limit_is_dropped_and_told() {
        // (limit, chunk sizes, bytes kept, truncated)
        let cases: &[(usize, &[usize], usize, bool)] = &[
            (4, &[], 0, false),
            (4, &[4], 4, false),
            (4, &[2, 2], 4, false),
            (4, &[3, 3], 4, true),
            (4, &[5], 4, true),
            (0, &[1], 0, true),
            (4096, &[1 << 20, 1 << 20], 4096, true),
        ];
        for (limit, chunks, kept, truncated) in cases {
            let mut cap = OutputCap::new(*limit);
            for n in *chunks {
                cap.push(&vec![b'x'; *n]);
            }
            let (out, cut) = cap.finish();
            assert_eq!((out.len(), cut), (*kept, *truncated), "{limit} {chunks:?}");
        }
        let out = ExecOutput {
            output: b" ok\n".to_vec(),
            truncated: true,
            ..Default::default()
        };
        assert_eq!(out.text(), "ok [output truncated]");
    }

    #[test]
    fn exit_results_describe_themselves() {
        let ok = ExitResult {
            exit_code: Some(0),
            ..Default::default()
        };
        assert!(ok.successful());
        assert_eq!(ok.describe(), "Exit Code: 0");
        let oom = ExitResult {
            exit_code: Some(137),
            signal: Some(9),
            oom_killed: true,
            oom_kills: 1,
            error: None,
        };
        assert!(!oom.successful());
        assert_eq!(oom.describe(), "Exit Code: 137, Signal: 9, OOM Killed");
        let child_oom = ExitResult {
            exit_code: Some(0),
            oom_kills: 1,
            ..Default::default()
        };
        assert!(child_oom.successful());
        assert_eq!(
            child_oom.describe(),
            "Exit Code: 0; a process in the task was OOM-killed (1 OOM kill(s) in the task)"
        );
    }
}
