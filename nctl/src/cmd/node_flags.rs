//! How a node describes itself and where its agent serves HTTP: the node flags of
//! `nctl agent`, also given to the local agent that `nctl server -config` / `nctl agent -config`
//! run beside a server, and how they combine with the config file into an agent configuration.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use indexmap::IndexMap;
use nomos_agent::config::DEFAULT_HTTP_PORT;

use super::config::FileConfig;

/// How the node describes itself and where it serves HTTP: `nctl agent`'s flags, also applied
/// to the local agent that `nctl agent -config` / `nctl server -config` run with a server.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NodeArgs {
    /// Node name (default: the config's `name`, else the host name).
    #[arg(long)]
    pub name: Option<String>,
    /// Datacenter (default dc1).
    #[arg(long)]
    pub datacenter: Option<String>,
    #[arg(long)]
    pub node_class: Option<String>,
    /// Node metadata `key=value` (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub meta: Vec<String>,
    /// Where to serve task logs, `/metrics` and restarts, for the servers and Prometheus
    /// (default 0.0.0.0:4749, or the config's `bind_addr` on port 4749; port 0 picks a free
    /// port; `off` serves nothing, and then `nctl logs` and `nctl alloc restart` cannot reach
    /// this node). The node registers the bound address; on 0.0.0.0, its own IP address.
    #[arg(long, value_name = "ADDR|off", value_parser = parse_http_listen)]
    pub http_addr: Option<HttpListen>,
    /// Lease time to live of the node's heartbeat, in seconds. Without it the lease follows the
    /// servers' `heartbeat_grace` / `min_heartbeat_ttl` / `max_heartbeats_per_second` for the
    /// cluster's size (10s until a server published them).
    #[arg(long)]
    pub heartbeat_ttl: Option<i64>,
    /// Do not use Docker even if a daemon answers.
    #[arg(long)]
    pub no_docker: bool,
    /// Offer the raw_exec driver: tasks run unisolated as the agent's user (root), so anyone
    /// who may submit jobs owns the node. Off unless this flag or the config's
    /// `plugin "raw_exec" { config { enabled = true } }` says so, as in Nomad.
    #[arg(long)]
    pub enable_raw_exec: bool,
    /// The address other hosts reach this node's ports and services on (default: the address
    /// of the interface that routes outward).
    #[arg(long, value_name = "IP", value_parser = parse_node_address)]
    pub node_address: Option<String>,
    /// Lowest host port handed out as a dynamic port.
    #[arg(long)]
    pub min_dynamic_port: Option<u16>,
    /// Highest host port handed out as a dynamic port.
    #[arg(long)]
    pub max_dynamic_port: Option<u16>,
    /// Seconds between two samples of the tasks' CPU and memory, each written to the store as
    /// the node's usage report (default 10).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub usage_interval: Option<u64>,
    /// Serve the agent's endpoint (logs, restarts, metrics) on a non-loopback address without
    /// mutual TLS. Without it and without TLS the endpoint listens on 127.0.0.1 by default, and
    /// a non-loopback --http-addr is refused (docs/security.md).
    #[arg(long)]
    pub insecure: bool,
}

/// An IP address, as `--node-address` takes it.
pub fn parse_node_address(s: &str) -> Result<String, String> {
    s.parse::<IpAddr>()
        .map(|ip| ip.to_string())
        .map_err(|e| format!("expected an IP address such as 10.0.0.5: {e}"))
}

/// An agent's HTTP listener as given on the command line: an address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpListen {
    Off,
    At(SocketAddr),
}

/// `off`, or a socket address such as `0.0.0.0:4749` or `127.0.0.1:0`.
pub fn parse_http_listen(s: &str) -> Result<HttpListen, String> {
    if s == "off" {
        return Ok(HttpListen::Off);
    }
    s.parse()
        .map(HttpListen::At)
        .map_err(|e| format!("expected an address such as 0.0.0.0:4749, or off: {e}"))
}

impl NodeArgs {
    /// The agent configuration for a node keeping its state in `data_dir`: these flags over
    /// the config file `file` (`from_file`: whether one was given), over the defaults. Without
    /// `--http-addr` the agent listens on `default_http`.
    pub fn agent_config(
        &self,
        file: &FileConfig,
        from_file: bool,
        data_dir: PathBuf,
        default_http: SocketAddr,
    ) -> anyhow::Result<nomos_agent::AgentConfig> {
        let mut meta: IndexMap<String, String> = file.client.meta.clone().into_iter().collect();
        for m in &self.meta {
            let (k, v) = m
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--meta {m:?}: expected KEY=VALUE"))?;
            meta.insert(k.to_string(), v.to_string());
        }
        let name = self
            .name
            .clone()
            .or(file.name.clone())
            .unwrap_or_else(super::dev::hostname);
        let mut config = nomos_agent::AgentConfig::new(name, data_dir);
        config.datacenter = self
            .datacenter
            .clone()
            .or(file.datacenter.clone())
            .unwrap_or_else(|| "dc1".into());
        config.node_class = self
            .node_class
            .clone()
            .or(file.client.node_class.clone())
            .unwrap_or_default();
        config.meta = meta;
        config.http_addr = match self.http_addr {
            Some(HttpListen::Off) => None,
            Some(HttpListen::At(addr)) => Some(addr),
            None => Some(default_http),
        };
        // Without --heartbeat-ttl the lease follows the servers' published settings (Nomad's
        // TTL rule for the cluster's size); the TTL below is the fallback until a server
        // published them.
        config.heartbeat_from_cluster = self.heartbeat_ttl.is_none();
        config.heartbeat_ttl_secs = self.heartbeat_ttl.unwrap_or_else(|| {
            if from_file {
                file.heartbeat_ttl_secs()
            } else {
                10
            }
        });
        config.enable_docker = !self.no_docker;
        config.node_address = self.node_address.clone();
        config.enable_raw_exec = self.enable_raw_exec || file.raw_exec_enabled;
        config.allow_host_paths = file.client.disable_file_sandbox;
        config.template_wait_bounds = file.client.template_wait_bounds;
        config.docker_host_volumes = file.docker_volumes_enabled;
        config.qemu = nomos_agent::driver::qemu::QemuPolicy {
            image_paths: file.qemu_image_paths.iter().map(PathBuf::from).collect(),
            args_allowlist: file.qemu_args_allowlist.clone(),
        };
        config.host_volumes = file.client.host_volumes.clone();
        // `tls { rpc | http = true }`: the endpoint serves only callers with a CA-signed cert.
        config.http_tls = file.tls.agent()?;
        let explicit = self.http_addr.is_some() || file.bind_addr.is_some();
        self.confine_endpoint(&mut config, explicit)?;
        config.servers_tls = file.tls.to_servers(&config.region)?;
        if let Some(p) = self.min_dynamic_port {
            config.min_dynamic_port = p;
        }
        if let Some(p) = self.max_dynamic_port {
            config.max_dynamic_port = p;
        }
        if let Some(secs) = self.usage_interval {
            config.usage_interval = std::time::Duration::from_secs(secs);
        }
        Ok(config)
    }
}

impl NodeArgs {
    /// Without mutual TLS, the endpoint stays on loopback: a default wildcard address becomes
    /// 127.0.0.1 (servers on other hosts then cannot fetch logs or restart tasks, which the
    /// log says), and a reachable one chosen on purpose (`--http-addr`, the config's
    /// `bind_addr`: `explicit`) is refused, unless `--insecure`.
    fn confine_endpoint(
        &self,
        config: &mut nomos_agent::AgentConfig,
        explicit: bool,
    ) -> anyhow::Result<()> {
        let Some(addr) = config.http_addr else {
            return Ok(());
        };
        if config.http_tls.is_some() || self.insecure || addr.ip().is_loopback() {
            return Ok(());
        }
        if explicit {
            return super::exposure::check(
                "the agent's endpoint",
                addr,
                false,
                "mutual TLS (tls { rpc = true })",
                false,
            );
        }
        let loopback = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port());
        eprintln!(
            "==> the agent's endpoint listens on {loopback}, not {addr}: without mutual TLS (tls {{ rpc = true }}) it would let anyone read logs and restart tasks; servers on other hosts cannot reach it (pass --insecure to serve it anyway)"
        );
        config.http_addr = Some(loopback);
        Ok(())
    }
}

/// Where an agent listens without `--http-addr`: the config's `bind_addr` (else every address)
/// on port 4749.
pub fn default_http_addr(file: &FileConfig) -> SocketAddr {
    SocketAddr::new(
        file.bind_addr.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        DEFAULT_HTTP_PORT,
    )
}
