//! `nctl agent`: a node agent against the store's etcd protocol (a real etcd cluster, or a
//! Nomos server's embedded store served over it), serving its logs, metrics and restarts on
//! `--http-addr` (default `0.0.0.0:4749`), and the DNS interface over the service catalogue on
//! `--dns-addr` (`docs/dns.md`). With `-config FILE` whose `server` is enabled it runs
//! what `nctl server -config FILE` runs (API, controllers and, with `client` enabled, a local
//! agent), as `nomad agent -config` does. `nctl agent purge` cleans a node.

use std::path::PathBuf;

use super::config::FileConfig;
use super::node_flags::{default_http_addr, NodeArgs};
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
    #[command(flatten)]
    pub join: super::join::JoinArgs,
    #[command(flatten)]
    pub dns: runtime::DnsArgs,
    /// A Nomad-style agent config file (HCL, YAML or JSON): data_dir, name, datacenter,
    /// bind_addr, client { servers, node_class, meta }. With `server { enabled = true }` this
    /// runs what `nctl server -config` runs. Flags override it.
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

pub async fn run(args: AgentArgs, g: &super::Global) -> anyhow::Result<i32> {
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
    let mut config = args.node.agent_config(
        &file,
        args.config.is_some(),
        data_dir,
        default_http_addr(&file),
    )?;
    config.servers.extend(args.join.server_addr.clone());
    let mut etcd = args.etcd.with_tls_block(&file.tls, &endpoints)?;
    // A node that joined with a join token connects as its own etcd user.
    let saved = match &args.etcd.etcd_user {
        Some(_) => None,
        None => super::join::credentials(g, &args.join, &config.data_dir, &config.name).await?,
    };
    if let Some(saved) = saved {
        etcd.etcd_user = Some(saved.etcd_user);
        etcd.etcd_password = Some(saved.etcd_password);
    }
    let store = etcd.connect(&endpoints).await?;
    let shutdown = Shutdown::new();
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(dns) = runtime::spawn_dns(&mut tasks, &args.dns, store.clone(), &shutdown).await? {
        println!("==> DNS on {dns} (<service>.service.nomos)");
    }
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
        acl_enabled: false,
        insecure: args.node.insecure,
        keyring_key_file: None,
        dns: args.dns,
        browsers: runtime::BrowserArgs::default(),
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
    fn without_tls_the_agent_serves_http_on_loopback_by_default() {
        let c = config(&[], &FileConfig::default());
        assert_eq!(c.http_addr, Some("127.0.0.1:4749".parse().unwrap()));
        // --insecure keeps every address, for a private lab network.
        let c = config(&["--insecure"], &FileConfig::default());
        assert_eq!(c.http_addr, Some("0.0.0.0:4749".parse().unwrap()));
    }

    #[test]
    fn a_reachable_endpoint_without_tls_is_refused_unless_insecure() {
        let e = node_args(&["--http-addr", "10.1.2.3:4749"])
            .agent_config(
                &FileConfig::default(),
                false,
                "/tmp/x".into(),
                default_http_addr(&FileConfig::default()),
            )
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("10.1.2.3:4749") && e.contains("--insecure"),
            "{e}"
        );
        let file = FileConfig {
            bind_addr: Some([10, 1, 2, 3].into()),
            ..Default::default()
        };
        let e = node_args(&[])
            .agent_config(&file, true, "/tmp/x".into(), default_http_addr(&file))
            .unwrap_err();
        assert!(e.to_string().contains("mutual TLS"), "{e}");
        let c = config(
            &["--http-addr", "10.1.2.3:4749", "--insecure"],
            &FileConfig::default(),
        );
        assert_eq!(c.http_addr, Some("10.1.2.3:4749".parse().unwrap()));
    }

    #[test]
    fn the_config_files_template_wait_bounds_reach_the_agent() {
        let text = "client {\n  template {\n    wait_bounds {\n      min = \"2s\"\n    }\n  }\n}\n";
        let (file, _) = crate::cmd::config::parse("cfg.hcl", text).expect("valid");
        let b = config(&[], &file).template_wait_bounds;
        assert_eq!(
            (b.min, b.max),
            (Some(std::time::Duration::from_secs(2)), None)
        );
        let none = config(&[], &FileConfig::default()).template_wait_bounds;
        assert_eq!(none, nomos_agent::config::WaitBounds::default());
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

    #[test]
    fn raw_exec_and_host_paths_are_off_unless_a_flag_or_the_file_turns_them_on() {
        let plain = config(&[], &FileConfig::default());
        assert!(!plain.enable_raw_exec && !plain.allow_host_paths);
        assert!(config(&["--enable-raw-exec"], &FileConfig::default()).enable_raw_exec);
        let mut file = FileConfig {
            raw_exec_enabled: true,
            ..Default::default()
        };
        file.client.disable_file_sandbox = true;
        let from_file = config(&[], &file);
        assert!(from_file.enable_raw_exec && from_file.allow_host_paths);
    }
}
