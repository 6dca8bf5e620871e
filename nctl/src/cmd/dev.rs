//! `nctl dev`: a whole single-node cluster in one process: the embedded store on disk, the HTTP
//! API, every controller, a local agent and the DNS interface (`--dns-addr`, `docs/dns.md`).
//! On a fresh data dir it applies the example job from `manifests/example.hcl` (compiled in)
//! unless `--no-example`.
//!
//! Ctrl-C (or SIGTERM) stops the store, API, controllers and agent cleanly but leaves the tasks
//! running: the agent persisted their handles, so `nctl dev` on the same data dir re-attaches to
//! them without restarting anything (unlike Nomad's `-dev`, which forgets everything). To stop
//! the tasks too, `nctl stop JOB` before Ctrl-C, or `nctl agent purge --data-dir DIR/agent`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nomos_server::AppState;
use prometheus_client::registry::Registry;

use super::runtime::{self, Shutdown};

/// The example jobs, compiled in so `nctl dev` works from any directory.
pub const EXAMPLE_SERVICE: &str = include_str!("../../../manifests/example.hcl");

#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// Where the store and the agent keep their state
    /// (default: $XDG_DATA_HOME/nomos/dev or ~/.local/share/nomos/dev).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Where the HTTP API listens (port 0 picks a free port; the banner says which).
    #[arg(long, default_value = "127.0.0.1:4747")]
    pub http_addr: SocketAddr,
    /// Where the store is served over etcd's v3 protocol, for `nctl agent --store-endpoints`
    /// and etcdctl (port 0 picks a free port; `off` disables it).
    #[arg(long, default_value = "127.0.0.1:4748")]
    pub store_addr: String,
    /// Revisions of history the store keeps before compacting older ones (0 keeps all).
    #[arg(long, default_value_t = runtime::DEFAULT_STORE_HISTORY)]
    pub store_history: i64,
    /// Where the local agent serves its logs, metrics and restarts (port 0, the default, picks
    /// a free loopback port; the node registers the real one).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub agent_http_addr: SocketAddr,
    /// The local node's name (default: the host name).
    #[arg(long)]
    pub name: Option<String>,
    /// Start empty: do not apply the example job on a fresh data dir.
    #[arg(long)]
    pub no_example: bool,
    /// Datacenter of the local node.
    #[arg(long, default_value = "dc1")]
    pub datacenter: String,
    /// Do not use Docker even if a daemon answers.
    #[arg(long)]
    pub no_docker: bool,
    /// Lowest host port handed out as a dynamic port.
    #[arg(long, default_value_t = 20000)]
    pub min_dynamic_port: u16,
    /// Highest host port handed out as a dynamic port.
    #[arg(long, default_value_t = 32000)]
    pub max_dynamic_port: u16,
    /// Seconds between two samples of the tasks' CPU and memory (the usage the UI charts and
    /// `/metrics` exports).
    #[arg(long, value_name = "SECS", default_value_t = nomos_api::usage::DEFAULT_INTERVAL_SECS, value_parser = clap::value_parser!(u64).range(1..))]
    pub usage_interval: u64,
    /// Require ACL tokens on the API (off by default in dev); bootstrap with
    /// `nctl acl bootstrap`.
    #[arg(long)]
    pub acl_enabled: bool,
    #[command(flatten)]
    pub dns: runtime::DnsArgs,
    #[command(flatten)]
    pub browsers: runtime::BrowserArgs,
}

/// `$XDG_DATA_HOME/nomos/dev`, or `~/.local/share/nomos/dev`.
pub fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("nomos/dev");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/nomos/dev")
}

/// The host name, for the default node name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "local".to_string())
}

pub async fn run(args: DevArgs) -> anyhow::Result<i32> {
    runtime::init_tracing();
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    std::fs::create_dir_all(&data_dir)?;
    let data_dir = data_dir.canonicalize()?;
    let store_dir = data_dir.join("store");
    let agent_dir = data_dir.join("agent");
    let fresh = !store_dir.exists();
    let embedded = runtime::open_embedded_store(&store_dir, args.store_history)?;
    let store: Arc<dyn nomos_store::Store> = embedded.clone();
    // The cluster's identity, which agents (this one and any joined with --store-endpoints)
    // check before trusting the store's allocations.
    nomos_store::cluster::ensure_cluster_id(&*store)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read or create the cluster identity: {e}"))?;
    let node_name = args.name.clone().unwrap_or_else(hostname);

    let registry = Arc::new(Mutex::new(Registry::default()));
    let mut state = super::keyring::configure(
        AppState::new(store.clone(), registry.clone()),
        &data_dir.join("keyring.key"),
    )
    .await?;
    state.files = Some(Arc::new(runtime::LocalFiles {
        node: node_name.clone(),
        data_dir: agent_dir.clone(),
    }));
    // The name the controllers' elections carry (below), so `/v1/status/leader` finds it.
    state.agent.name = format!("dev-{node_name}");
    state.agent.client = true;
    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.http_addr))?;
    let api_addr = listener.local_addr()?;

    let shutdown = Shutdown::new();
    let mut tasks = tokio::task::JoinSet::new();
    let store_url = runtime::spawn_store_server(
        &mut tasks,
        &args.store_addr,
        &node_name,
        store.clone(),
        Some(embedded),
        (None, Default::default()),
        &shutdown,
    )
    .await?;
    let dns = runtime::spawn_dns(&mut tasks, &args.dns, store.clone(), &shutdown).await?;
    super::keyring::spawn_identities(&mut tasks, state.clone(), &shutdown);
    {
        let state = state.clone();
        let stop = shutdown.wait();
        let mut config = args.browsers.server_config(api_addr);
        config.acl.enabled = args.acl_enabled;
        tasks.spawn(async move {
            nomos_server::serve(listener, state, config, stop)
                .await
                .map_err(|e| anyhow::anyhow!("HTTP API: {e}"))
        });
    }
    let controllers = nomos_controllers::ControllersConfig {
        identity: state.agent.name.clone(),
        ..Default::default()
    };
    runtime::spawn_controllers(&mut tasks, controllers, store.clone(), &registry, &shutdown);
    {
        let mut config = nomos_agent::AgentConfig::new(node_name.clone(), agent_dir.clone());
        config.datacenter = args.datacenter.clone();
        config.http_addr = Some(args.agent_http_addr);
        config.enable_docker = !args.no_docker;
        // As `nomad agent -dev`: a development node on the user's own machine, its ports and
        // services on loopback.
        config.enable_raw_exec = true;
        config.node_address = Some("127.0.0.1".into());
        config.min_dynamic_port = args.min_dynamic_port;
        config.max_dynamic_port = args.max_dynamic_port;
        config.usage_interval = std::time::Duration::from_secs(args.usage_interval);
        // Templates read Variables from this process's own API.
        let mut api = api_addr;
        if api.ip().is_unspecified() {
            api.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        config.servers = vec![format!("http://{api}")];
        let store = store.clone();
        let stop = shutdown.wait();
        tasks.spawn(async move {
            nomos_agent::run(config, store, stop)
                .await
                .map_err(|e| anyhow::anyhow!("agent: {e}"))
        });
    }

    let example_marker = data_dir.join(".example-applied");
    let with_example = !args.no_example && fresh && !example_marker.exists();
    print_banner(
        api_addr,
        (store_url.as_deref(), dns),
        &data_dir,
        &node_name,
        !with_example,
    );
    if with_example {
        apply_example(&state).await?;
        std::fs::write(&example_marker, b"")?;
    }

    let code = runtime::run_until_signal(&mut tasks, &shutdown).await;
    println!("==> nomos dev stopped; tasks keep running and are re-attached by the next `nctl dev --data-dir {}`", data_dir.display());
    Ok(code)
}

async fn apply_example(state: &AppState) -> anyhow::Result<()> {
    let parsed = nomos_api::parse_source(
        "manifests/example.hcl",
        EXAMPLE_SERVICE,
        &Default::default(),
    )
    .map_err(|d| {
        anyhow::anyhow!(
            "the built-in example does not parse: {}",
            d.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    for job in &parsed.jobs {
        let r = nomos_server::jobs::apply_job(state, job, None)
            .await
            .map_err(|e| anyhow::anyhow!("applying the example job: {e}"))?;
        let what = serde_json::to_value(r.outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        println!("==> example job \"{}\" {what}", r.id);
    }
    Ok(())
}

fn print_banner(
    api: SocketAddr,
    (store, dns): (Option<&str>, Option<SocketAddr>),
    data_dir: &Path,
    node: &str,
    quiet_example: bool,
) {
    println!("==> Nomos dev cluster is running");
    println!("    API:        http://{api}");
    println!("    UI:         http://{api}/ui");
    println!("    Metrics:    http://{api}/metrics");
    if let Some(url) = store {
        println!("    Store:      {url} (etcd v3 protocol: etcdctl --endpoints {url}, nctl agent --store-endpoints {url})");
    }
    match dns {
        Some(dns) => println!(
            "    DNS:        {dns} (dig @{} -p {} <service>.service.nomos SRV)",
            dns.ip(),
            dns.port()
        ),
        None => println!("    DNS:        off"),
    }
    println!("    Data dir:   {}", data_dir.display());
    println!("    Node:       {node}");
    println!();
    println!("  Point nctl at it:");
    println!("    export NOMOS_ADDR=http://{api}");
    if !quiet_example {
        println!("  Then look at the example job:");
        println!("    nctl status example && nctl get allocs");
    }
    println!("==> Ctrl-C stops Nomos; tasks keep running and are re-attached on the next start");
}
