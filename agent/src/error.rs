//! The agent's error enum: one variant per step that can fail.
//!
//! Retryable: [`AgentError::Store`] when the store is unavailable (the agent keeps its tasks and
//! retries with backoff). Driver errors become task events rather than agent failures.
//! [`AgentError::Sandbox`] is never retryable: the task fails before it starts.

use std::path::PathBuf;

use thiserror::Error;

/// Everything the agent and its drivers can fail with.
#[derive(Debug, Error)]
pub enum AgentError {
    #[error("store operation {op} failed: {source}")]
    Store {
        op: &'static str,
        #[source]
        source: nomos_store::StoreError,
    },
    #[error("i/o on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid JSON in {what}: {source}")]
    Decode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("driver {driver}: {message}")]
    Driver { driver: String, message: String },
    #[error("unknown driver {0:?} (known: raw_exec, exec, java, docker, qemu)")]
    UnknownDriver(String),
    #[error("interpolation of {what}: {message}")]
    Interpolation { what: String, message: String },
    #[error(
        "job version {key} holds spec {found}, but allocation {alloc} names spec {wanted}; \
         not running another spec (the version is read again on the next sync)"
    )]
    SpecMismatch {
        key: String,
        alloc: String,
        wanted: String,
        found: String,
    },
    #[error("task {task} belongs to another agent ({why}); leaving it alone")]
    NotOurs { task: String, why: String },
    /// A path from a job spec would be read or written outside the task directory (absolute,
    /// `..`, through a symbolic link, a host path not allowed), or a name would not be a single
    /// path component. `what` names the block (`Template`, `Artifact`, `Task`, `Allocation`).
    #[error("{what}: {message}")]
    Sandbox { what: String, message: String },
    /// A command was to run inside a task that is not running (it exited, or never started).
    #[error("task {task} is not running")]
    TaskNotRunning { task: String },
    /// A command run inside a task ([`crate::driver::Driver::exec`]) ran past its timeout and
    /// was killed.
    #[error(
        "command {command:?} in task {task} ran past its timeout of {timeout:?} and was killed"
    )]
    ExecTimedOut {
        task: String,
        command: String,
        timeout: std::time::Duration,
    },
    /// A device fingerprinter's tool failed or said something it could not read (the node
    /// then registers no such devices).
    #[error("device fingerprint: {0}")]
    DeviceFingerprint(String),
    /// The task's driver has no way to run a command inside it (`nctl alloc exec`).
    #[error("driver {driver} does not support exec")]
    ExecUnsupported { driver: String },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("http endpoint: {0}")]
    Http(String),
    /// The task's workload identity could not be had (not issued in time, none for the task).
    #[error("workload identity: {0}")]
    Identity(String),
    /// A template did not parse or render (its position and the reason).
    #[error("{0}")]
    Template(String),
    /// A template reads keys (`key`) or Variables (`nomadVar`) that do not exist yet: the
    /// task waits for them to appear. Not a failure.
    #[error("{}", crate::templates::missing_message(&.0.deps))]
    TemplateMissing(crate::templates::Missing),
    /// A call to the servers' API (for a template's Variables) failed or was refused.
    #[error("servers: {0}")]
    Servers(String),
    /// The store is not the cluster this agent ran its tasks for (its `/nomos/cluster` ID is
    /// another, or missing): nothing is started or stopped until it is again, or an operator
    /// accepts the new cluster. Retried, never final.
    #[error(
        "the store's cluster ID is {found}, but this agent belongs to cluster {remembered}: \
         leaving every task running and retrying. If the store was lost, restore it from a \
         snapshot; to join the new cluster on purpose, stop the agent and run `nctl agent purge` \
         (which stops this node's tasks)"
    )]
    ClusterChanged { remembered: String, found: String },
}

impl AgentError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AgentError::Io {
            path: path.into(),
            source,
        }
    }
    pub(crate) fn driver(driver: &str, message: impl Into<String>) -> Self {
        AgentError::Driver {
            driver: driver.to_string(),
            message: message.into(),
        }
    }
    pub(crate) fn sandbox(what: &str, message: impl Into<String>) -> Self {
        AgentError::Sandbox {
            what: what.to_string(),
            message: message.into(),
        }
    }
    /// Names the block and field a sandbox refusal is about (`Template`, `destination "x"`);
    /// other errors pass through unchanged.
    pub(crate) fn about(self, what: &str, subject: &str) -> Self {
        match self {
            AgentError::Sandbox { message, .. } => AgentError::Sandbox {
                what: what.to_string(),
                message: format!("{subject}: {message}"),
            },
            e => e,
        }
    }
    /// Whether repeating the failed step later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, AgentError::Store { source, .. } if source.is_retryable())
    }
}
