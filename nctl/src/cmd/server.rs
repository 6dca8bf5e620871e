//! `nctl server`: the HTTP API and every controller, against etcd (`--etcd-endpoints`, with
//! TLS and user/password options) or against an embedded store in `--data-dir`. Several servers
//! may run against one etcd: each controller is leader-elected, the API is stateless.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use nomos_server::AppState;
use nomos_store::{keys, EtcdConfig, EtcdStore, KeySelector, PutOptions, RangeOptions, Store};
use prometheus_client::registry::Registry;

use super::runtime::{self, Shutdown};

/// How to reach etcd (shared by `server` and `agent`).
#[derive(Debug, Clone, clap::Args)]
pub struct EtcdArgs {
    /// PEM file of the CA that signed etcd's certificates (enables TLS).
    #[arg(long)]
    pub etcd_ca: Option<PathBuf>,
    /// Client certificate for mutual TLS.
    #[arg(long)]
    pub etcd_cert: Option<PathBuf>,
    /// Client key for mutual TLS.
    #[arg(long)]
    pub etcd_key: Option<PathBuf>,
    /// etcd user name (with --etcd-password or ETCD_PASSWORD).
    #[arg(long)]
    pub etcd_user: Option<String>,
    #[arg(long, env = "ETCD_PASSWORD", hide_env_values = true)]
    pub etcd_password: Option<String>,
}

impl EtcdArgs {
    pub async fn connect(&self, endpoints: &[String]) -> anyhow::Result<Arc<dyn Store>> {
        let mut config = EtcdConfig::new(endpoints.iter().cloned());
        config.ca_file = self.etcd_ca.clone();
        config.cert_file = self.etcd_cert.clone();
        config.key_file = self.etcd_key.clone();
        if let Some(user) = &self.etcd_user {
            config.user = Some((user.clone(), self.etcd_password.clone().unwrap_or_default()));
        }
        let store = EtcdStore::connect(config).await.map_err(|e| {
            anyhow::anyhow!("cannot connect to etcd at {}: {e}", endpoints.join(","))
        })?;
        Ok(Arc::new(store))
    }
}

#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// etcd endpoints (comma-separated URLs); without them the embedded store in --data-dir is used.
    #[arg(long, value_delimiter = ',')]
    pub etcd_endpoints: Vec<String>,
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// Where the embedded store keeps its data (default /var/lib/nomos/server, or the config
    /// file's `data_dir`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Where the HTTP API listens (default 127.0.0.1:4747, or the config's `bind_addr` and
    /// `ports.http`).
    #[arg(long)]
    pub http_addr: Option<SocketAddr>,
    /// A Nomad-style agent config file (HCL, YAML or JSON); with `client { enabled = true }` a local agent
    /// runs in this process too. Flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// With the embedded store: also serve it over etcd's v3 protocol here (for `nctl agent
    /// --store-endpoints` and etcdctl), e.g. 127.0.0.1:4748.
    #[arg(long)]
    pub store_addr: Option<String>,
    /// With the embedded store: revisions of history kept before older ones are compacted
    /// (0 keeps all). With etcd, use etcd's `--auto-compaction-*` flags.
    #[arg(long, default_value_t = runtime::DEFAULT_STORE_HISTORY)]
    pub store_history: i64,
    /// Who this server is in leader elections (default: host name and pid).
    #[arg(long)]
    pub identity: Option<String>,
}

pub async fn run(args: ServerArgs) -> anyhow::Result<i32> {
    runtime::init_tracing();
    let file = match &args.config {
        Some(path) => super::config::load(path)?,
        None => super::config::FileConfig::default(),
    };
    if args.config.is_some() && !file.server.enabled {
        anyhow::bail!("the config file does not enable the server (`server {{ enabled = true }}`, or `server: {{enabled: true}}` in YAML); use `nctl agent -config` for a client-only config");
    }
    let base_dir = args
        .data_dir
        .clone()
        .or_else(|| file.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from("/var/lib/nomos"));
    let store_dir = if args.data_dir.is_some() {
        base_dir.clone()
    } else {
        base_dir.join("server")
    };
    let http_addr = args.http_addr.unwrap_or_else(|| {
        SocketAddr::new(
            file.bind_addr.unwrap_or_else(|| [127, 0, 0, 1].into()),
            file.http_port.unwrap_or(4747),
        )
    });
    let store: Arc<dyn Store> = if args.etcd_endpoints.is_empty() {
        runtime::open_embedded(&store_dir, args.store_history)?
    } else {
        args.etcd.connect(&args.etcd_endpoints).await?
    };
    publish_heartbeat_settings(&*store, &file.heartbeat_config()).await?;
    let registry = Arc::new(Mutex::new(Registry::default()));
    let mut state = AppState::new(store.clone(), registry.clone());
    let node_name = file.name.clone().unwrap_or_else(super::dev::hostname);
    let agent_dir = base_dir.join("client");
    if file.client.enabled {
        state.logs = Some(Arc::new(runtime::LocalLogs {
            node: node_name.clone(),
            data_dir: agent_dir.clone(),
        }));
    }
    let listener = tokio::net::TcpListener::bind(http_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {http_addr}: {e}"))?;
    let addr = listener.local_addr()?;
    let shutdown = Shutdown::new();
    let mut tasks = tokio::task::JoinSet::new();
    let stop = shutdown.wait();
    tasks.spawn(async move {
        nomos_server::serve(listener, state, nomos_server::DEFAULT_BODY_LIMIT, stop)
            .await
            .map_err(|e| anyhow::anyhow!("HTTP API: {e}"))
    });
    if let Some(addr) = &args.store_addr {
        if !args.etcd_endpoints.is_empty() {
            anyhow::bail!("--store-addr serves the embedded store; with --etcd-endpoints, agents talk to etcd directly");
        }
        if let Some(url) =
            runtime::spawn_store_server(&mut tasks, addr, "nomos", store.clone(), &shutdown).await?
        {
            println!("==> store served over etcd's protocol at {url}");
        }
    }
    let mut controllers = file.controllers(nomos_controllers::ControllersConfig::default());
    if let Some(id) = args.identity {
        controllers.identity = id;
    }
    runtime::spawn_controllers(&mut tasks, controllers, store.clone(), &registry, &shutdown);
    if file.client.enabled {
        let mut config = nomos_agent::AgentConfig::new(node_name.clone(), agent_dir);
        if let Some(dc) = &file.datacenter {
            config.datacenter = dc.clone();
        }
        config.node_class = file.client.node_class.clone().unwrap_or_default();
        config.meta = file.client.meta.clone().into_iter().collect();
        config.heartbeat_ttl_secs = file.heartbeat_ttl_secs();
        config.heartbeat_from_cluster = true;
        let stop = shutdown.wait();
        tasks.spawn(async move {
            nomos_agent::run(config, store, stop)
                .await
                .map_err(|e| anyhow::anyhow!("agent: {e}"))
        });
        println!("==> local agent: node {node_name}");
    }
    println!("==> Nomos server: API on http://{addr}");
    println!("    UI:   http://{addr}/ui");
    println!("    export NOMOS_ADDR=http://{addr}");
    Ok(runtime::run_until_signal(&mut tasks, &shutdown).await)
}

/// Publishes the heartbeat settings agents size their leases with (`/nomos/config/heartbeat`,
/// see `docs/loops.md`), unless the same settings are already there. With several servers the
/// last one started wins; give them the same `server { ... }` settings.
async fn publish_heartbeat_settings(
    store: &dyn Store,
    settings: &nomos_api::heartbeat::HeartbeatConfig,
) -> anyhow::Result<()> {
    let value = serde_json::to_vec(settings)?;
    let current = store
        .range(
            KeySelector::key(keys::HEARTBEAT_CONFIG),
            RangeOptions::default(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", keys::HEARTBEAT_CONFIG))?;
    if current.kvs.first().is_some_and(|kv| kv.value == value) {
        return Ok(());
    }
    store
        .put(
            keys::HEARTBEAT_CONFIG.as_bytes().to_vec(),
            value,
            PutOptions::default(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", keys::HEARTBEAT_CONFIG))?;
    Ok(())
}
