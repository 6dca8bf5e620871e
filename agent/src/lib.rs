//! nomos-agent: the node agent. It registers and fingerprints its node, keeps a liveness lease,
//! watches the allocations placed on it, runs their tasks through drivers, and reports what it
//! observes. Tasks outlive the agent: handles are persisted and re-attached after a restart.
//!
//! Layout (how the parts connect):
//! - [`agent`]: the entry point [`run`]; the heartbeat loop and the allocation sync (list +
//!   watch `/nomos/allocs/<node>/`, converge).
//! - [`purge`](mod@purge): [`purge()`], which stops this agent's tasks and deletes its data dir.
//! - [`cluster_guard`]: lists only from the cluster the agent belongs to (`/nomos/cluster`), so
//!   a lost or replaced store never stops its tasks.
//! - [`plan`]: pure decisions: start / stop / forget / update allocations, client status,
//!   health, lifecycle phases.
//! - [`usage`]: samples every running task's CPU and memory (cgroup accounting, `/proc` for
//!   `raw_exec`) every interval and writes the node's report with its history.
//! - [`report`]: writes allocation statuses and keeps them written (rewrites what someone else
//!   put over them while the node's heartbeat exists); runners send it [`report::Report`]s.
//! - [`runner`]: one supervisor per allocation and one loop per task (start or re-attach,
//!   wait, restart per [`restart`], stop), persisting through [`state`].
//! - [`driver`]: the [`driver::Driver`] trait and the `raw_exec`, `exec` and `docker` drivers;
//!   [`volume_mounts`]: a task's `volume_mount`s resolved to the node's host volumes.
//! - [`env`](mod@env) and [`interp`]: the `NOMAD_*`/`NOMOS_*` task environment and `${...}` expansion.
//! - [`artifact`], [`unpack`], [`checks`]: artifact fetching and unpacking, service checks.
//! - [`confine`]: keeps every path a job names (templates, artifacts, archive entries, task
//!   names, allocation ids) inside its directory, never following links the task planted.
//! - [`fingerprint`], [`procfs`]: what the machine is; process identity and usage from `/proc`.
//! - [`nvidia`]: NVIDIA GPUs found through `nvidia-smi`, registered as the node's devices.
//! - [`templates`], [`netaddrs`]: what a task's `template` blocks can read (the task's
//!   environment, the catalogue, the key-value space, Variables, the node's addresses).
//! - [`logs`], [`allocfs`], [`stats`], [`http`], [`metrics`]: task log files (rotation,
//!   reading), confined reads of allocation directories, resource usage in Nomad's shapes, the
//!   agent's HTTP endpoint (files, logs, usage, `/metrics`) and its Prometheus metrics;
//!   [`exec_ws`]: its websocket for commands run inside tasks (`nctl alloc exec`).
//! - [`config`], [`error`], [`backoff`]: the configuration, the crate's one error enum, and the
//!   retry backoff the sync, heartbeat and reporter loops share.

pub mod agent;
pub mod allocfs;
pub mod artifact;
pub mod backoff;
pub mod checks;
pub mod cluster_guard;
pub mod config;
pub mod confine;
pub mod driver;
pub mod env;
pub mod error;
pub mod exec_ws;
pub mod fingerprint;
pub mod http;
pub mod interp;
pub mod logs;
pub mod metrics;
pub mod netaddrs;
pub mod nvidia;
pub mod plan;
pub mod procfs;
pub mod purge;
pub mod report;
pub mod restart;
pub mod runner;
pub mod state;
pub mod stats;
pub mod templates;
pub mod unpack;
pub mod usage;
pub mod volume_mounts;
pub mod workload;

pub use agent::run;
pub use config::AgentConfig;
pub use error::AgentError;
pub use purge::{purge, PurgeReport};
