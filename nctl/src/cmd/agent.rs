//! `nctl agent`: a node agent against the store's etcd protocol (a real etcd cluster, or a
//! Nomos server's embedded store served over it), serving its logs, metrics and restarts on
//! `--http-addr` (default `0.0.0.0:4749`). With `-config FILE` whose `server` is enabled it runs
//! what `nctl server -config FILE` runs (API, controllers and, with `client` enabled, a local
//! agent), as `nomad agent -config` does. `nctl agent purge` cleans a node.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use indexmap::IndexMap;
use nomos_agent::config::DEFAULT_HTTP_PORT;

use super::config::FileConfig;
use super::runtime::{self, Shutdown};
use super::server::{EtcdArgs, ServerArgs};

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AgentArgs {
    #[command(subcommand)]
    pub command: Option<AgentCommand>,
    /// Where the agent keeps task handles, allocation dirs and logs.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Store endpoints (comma-separated etcd URLs).
    #[arg(long, value_delimiter = ',')]
    pub store_endpoints: Vec<String>,
    #[command(flatten)]
    pub etcd: EtcdArgs,
    #[command(flatten)]
    pub node: NodeArgs,
    /// A Nomad-style agent config file (HCL, YAML or JSON): data_dir, name, datacenter,
    /// bind_addr, client { servers, node_class, meta }. With `server { enabled = true }` this
    /// runs what `nctl server -config` runs. Flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

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
    /// Lowest host port handed out as a dynamic port.
    #[arg(long)]
    pub min_dynamic_port: Option<u16>,
    /// Highest host port handed out as a dynamic port.
    #[arg(long)]
    pub max_dynamic_port: Option<u16>,
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

#[derive(Debug, clap::Subcommand)]
pub enum AgentCommand {
    /// Stop every task the agent started and delete its data dir (run with the agent stopped).
    Purge {
        #[arg(long)]
        data_dir: PathBuf,
    },
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
        if let Some(p) = self.min_dynamic_port {
            config.min_dynamic_port = p;
        }
        if let Some(p) = self.max_dynamic_port {
            config.max_dynamic_port = p;
        }
        Ok(config)
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
        None => FileConfig::default(),
    };
    if file.server.enabled {
        return run_server_config(args, file).await;
    }
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
    let config = args.node.agent_config(
        &file,
        args.config.is_some(),
        data_dir,
        default_http_addr(&file),
    )?;
    let store = args.etcd.connect(&endpoints).await?;
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

/// `nctl agent -config FILE` where the file enables the server: `nctl server -config FILE`,
/// with this command's node flags (and `--data-dir`) for the local agent, and its
/// `--store-endpoints` / etcd flags as the server's etcd.
async fn run_server_config(args: AgentArgs, file: FileConfig) -> anyhow::Result<i32> {
    let server = ServerArgs {
        etcd_endpoints: args.store_endpoints,
        etcd: args.etcd,
        data_dir: None,
        http_addr: None,
        config: args.config,
        store_addr: None,
        store_history: runtime::DEFAULT_STORE_HISTORY,
        identity: None,
        agent_http_addr: None,
    };
    super::server::run_with_local_agent(
        server,
        file,
        super::server::LocalAgent {
            node: args.node,
            data_dir: args.data_dir,
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn node_args(argv: &[&str]) -> NodeArgs {
        let mut full = vec!["nctl", "agent"];
        full.extend_from_slice(argv);
        match crate::cmd::Cli::try_parse_from(full)
            .expect("parses")
            .command
        {
            crate::cmd::Command::Agent(a) => a.node,
            other => panic!("not the agent: {other:?}"),
        }
    }

    fn config(argv: &[&str], file: &FileConfig) -> nomos_agent::AgentConfig {
        node_args(argv)
            .agent_config(file, false, "/tmp/x".into(), default_http_addr(file))
            .expect("valid")
    }

    #[test]
    fn the_agent_serves_http_on_4749_of_every_address_by_default() {
        let c = config(&[], &FileConfig::default());
        assert_eq!(c.http_addr, Some("0.0.0.0:4749".parse().unwrap()));
    }

    #[test]
    fn the_config_files_bind_addr_moves_the_default_listener() {
        let file = FileConfig {
            bind_addr: Some([127, 0, 0, 1].into()),
            ..Default::default()
        };
        assert_eq!(
            config(&[], &file).http_addr,
            Some("127.0.0.1:4749".parse().unwrap())
        );
    }

    #[test]
    fn http_addr_takes_an_address_a_free_port_or_off() {
        assert_eq!(
            config(&["--http-addr", "127.0.0.1:0"], &FileConfig::default()).http_addr,
            Some("127.0.0.1:0".parse().unwrap())
        );
        assert_eq!(
            config(&["--http-addr", "off"], &FileConfig::default()).http_addr,
            None
        );
        let bad = crate::cmd::Cli::try_parse_from(["nctl", "agent", "--http-addr", "4749"])
            .expect_err("a port alone is not an address");
        assert!(bad.to_string().contains("or off"), "{bad}");
    }

    #[test]
    fn flags_override_the_config_file() {
        let mut file = FileConfig {
            name: Some("from-file".into()),
            datacenter: Some("home".into()),
            ..Default::default()
        };
        file.client.meta.insert("rack".into(), "r1".into());
        let c = config(
            &["--name", "n1", "--meta", "rack=r2", "--meta", "zone=z"],
            &file,
        );
        assert_eq!(c.name, "n1");
        assert_eq!(c.datacenter, "home");
        assert_eq!(c.meta.get("rack").map(String::as_str), Some("r2"));
        assert_eq!(c.meta.get("zone").map(String::as_str), Some("z"));
        let err = node_args(&["--meta", "novalue"])
            .agent_config(
                &file,
                false,
                "/tmp/x".into(),
                default_http_addr(&FileConfig::default()),
            )
            .expect_err("meta needs KEY=VALUE");
        assert!(err.to_string().contains("KEY=VALUE"), "{err}");
    }
}
