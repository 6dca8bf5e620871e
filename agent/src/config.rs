//! The agent's configuration, with the defaults `nctl agent` and `nctl dev` start from.

use std::net::SocketAddr;
use std::path::PathBuf;

use indexmap::IndexMap;

/// How an agent runs: where it keeps its state, how it names and describes its node, how often
/// it proves it is alive.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub data_dir: PathBuf,
    /// Node name, unique in the cluster; allocations are placed under it.
    pub name: String,
    pub datacenter: String,
    pub region: String,
    pub node_class: String,
    pub node_pool: String,
    pub meta: IndexMap<String, String>,
    /// Time to live of the heartbeat lease; keep-alives go out every third of it.
    pub heartbeat_ttl_secs: i64,
    /// Size the lease from the servers' settings at `/nomos/config/heartbeat` and the node
    /// count instead ([`nomos_api::heartbeat::lease_timing`]), whenever the agent registers;
    /// `heartbeat_ttl_secs` stays the fallback while no server published settings.
    pub heartbeat_from_cluster: bool,
    /// Where to serve logs and `/metrics`; `None` for no HTTP endpoint.
    pub http_addr: Option<SocketAddr>,
    /// Inclusive range of host ports the scheduler may hand out as dynamic ports.
    pub min_dynamic_port: u16,
    pub max_dynamic_port: u16,
    pub reserved_cpu_mhz: u32,
    pub reserved_memory_mb: u32,
    /// Try the Docker daemon at start (the fingerprint says whether it answered).
    pub enable_docker: bool,
    /// Health time for groups without an `update` block (Nomad's `min_healthy_time`, 10s).
    pub default_min_healthy_time_ms: u64,
    /// Longest wait between retries when the store is unreachable.
    pub max_retry_backoff_ms: u64,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            data_dir: PathBuf::from("/var/lib/nomos/agent"),
            name: String::new(),
            datacenter: "dc1".into(),
            region: "global".into(),
            node_class: String::new(),
            node_pool: "default".into(),
            meta: IndexMap::new(),
            heartbeat_ttl_secs: 10,
            heartbeat_from_cluster: false,
            http_addr: None,
            min_dynamic_port: 20000,
            max_dynamic_port: 32000,
            reserved_cpu_mhz: 0,
            reserved_memory_mb: 0,
            enable_docker: true,
            default_min_healthy_time_ms: 10_000,
            max_retry_backoff_ms: 5_000,
        }
    }
}

impl AgentConfig {
    /// A config with defaults for a node `name` keeping its state in `data_dir`.
    pub fn new(name: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        AgentConfig {
            name: name.into(),
            data_dir: data_dir.into(),
            ..Default::default()
        }
    }
}
