//! `nctl agent`: a node agent against the store's etcd protocol (a real etcd cluster, or a
//! Nomos server's embedded store served over it). `nctl agent purge` cleans a node.

use std::net::SocketAddr;
use std::path::PathBuf;

use indexmap::IndexMap;

use super::runtime::{self, Shutdown};
use super::server::EtcdArgs;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AgentArgs {
    #[command(subcommand)]
    pub command: Option<AgentCommand>,
    /// Where the agent keeps task handles, allocation dirs and logs.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Node name (default: the host name).
    #[arg(long)]
    pub name: Option<String>,
    /// Store endpoints (comma-separated etcd URLs).
    #[arg(long, value_delimiter = ',')]
    pub store_endpoints: Vec<String>,
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// Datacenter (default dc1).
    #[arg(long)]
    pub datacenter: Option<String>,
    #[arg(long)]
    pub node_class: Option<String>,
    /// Node metadata `key=value` (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub meta: Vec<String>,
    /// Where to serve logs and metrics.
    #[arg(long)]
    pub http_addr: Option<SocketAddr>,
    /// Lease time to live of the node's heartbeat, in seconds. Without it the lease follows the
    /// servers' `heartbeat_grace` / `min_heartbeat_ttl` / `max_heartbeats_per_second` for the
    /// cluster's size (10s until a server published them).
    #[arg(long)]
    pub heartbeat_ttl: Option<i64>,
    /// Do not use Docker even if a daemon answers.
    #[arg(long)]
    pub no_docker: bool,
    /// Lowest host port handed out as a dynamic port.
    #[arg(long)]
    pub min_dynamic_port: Option<u16>,
    /// Highest host port handed out as a dynamic port.
    #[arg(long)]
    pub max_dynamic_port: Option<u16>,
    /// A Nomad-style agent config file (HCL, YAML or JSON): data_dir, name, datacenter,
    /// client { servers, node_class, meta }. Flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub enum AgentCommand {
    /// Stop every task the agent started and delete its data dir (run with the agent stopped).
    Purge {
        #[arg(long)]
        data_dir: PathBuf,
    },
}

pub async fn run(args: AgentArgs) -> anyhow::Result<i32> {
    if let Some(AgentCommand::Purge { data_dir }) = args.command {
        let report = nomos_agent::purge(&data_dir).await?;
        println!(
            "purged {}: {} allocation(s), {} task(s) stopped",
            data_dir.display(),
            report.allocations,
            report.tasks_stopped
        );
        return Ok(0);
    }
    runtime::init_tracing();
    let file = match &args.config {
        Some(path) => super::config::load(path)?,
        None => super::config::FileConfig::default(),
    };
    let Some(data_dir) = args
        .data_dir
        .clone()
        .or_else(|| file.data_dir.as_ref().map(|d| d.join("client")))
    else {
        anyhow::bail!("--data-dir is required");
    };
    let endpoints = if args.store_endpoints.is_empty() {
        file.client.servers.clone()
    } else {
        args.store_endpoints.clone()
    };
    if endpoints.is_empty() {
        anyhow::bail!(
            "--store-endpoints is required (an etcd URL, or a Nomos server's --store-addr)"
        );
    }
    let mut meta: IndexMap<String, String> = file.client.meta.clone().into_iter().collect();
    for m in &args.meta {
        let (k, v) = m
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--meta {m:?}: expected KEY=VALUE"))?;
        meta.insert(k.to_string(), v.to_string());
    }
    let store = args.etcd.connect(&endpoints).await?;
    let name = args
        .name
        .or(file.name.clone())
        .unwrap_or_else(super::dev::hostname);
    let mut config = nomos_agent::AgentConfig::new(name, data_dir);
    config.datacenter = args
        .datacenter
        .or(file.datacenter.clone())
        .unwrap_or_else(|| "dc1".into());
    config.node_class = args
        .node_class
        .or(file.client.node_class.clone())
        .unwrap_or_default();
    config.meta = meta;
    config.http_addr = args.http_addr;
    // Without --heartbeat-ttl the lease follows the servers' published settings (Nomad's TTL
    // rule for the cluster's size); the TTL below is the fallback until a server published them.
    config.heartbeat_from_cluster = args.heartbeat_ttl.is_none();
    config.heartbeat_ttl_secs = args.heartbeat_ttl.unwrap_or_else(|| {
        if args.config.is_some() {
            file.heartbeat_ttl_secs()
        } else {
            10
        }
    });
    config.enable_docker = !args.no_docker;
    if let Some(p) = args.min_dynamic_port {
        config.min_dynamic_port = p;
    }
    if let Some(p) = args.max_dynamic_port {
        config.max_dynamic_port = p;
    }
    let shutdown = Shutdown::new();
    let mut tasks = tokio::task::JoinSet::new();
    let stop = shutdown.wait();
    tasks.spawn(async move {
        nomos_agent::run(config, store, stop)
            .await
            .map_err(|e| anyhow::anyhow!("agent: {e}"))
    });
    Ok(runtime::run_until_signal(&mut tasks, &shutdown).await)
}
