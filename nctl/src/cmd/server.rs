//! `nctl server`: the HTTP API and every controller, against etcd (`--etcd-endpoints`, with
//! TLS and user/password options) or against an embedded store in `--data-dir`. Several servers
//! may run against one etcd: each controller is leader-elected, the API is stateless. A config
//! file with `client { enabled = true }` adds a local agent, which serves its logs, metrics and
//! restarts over HTTP like any `nctl agent` (on the API's IP, port 4749, by default). The DNS
//! interface answers from the service catalogue on `--dns-addr` (`docs/dns.md`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use nomos_server::AppState;
use nomos_store::{keys, EtcdConfig, EtcdStore, KeySelector, PutOptions, RangeOptions, Store};
use prometheus_client::registry::Registry;

use super::node_flags::{HttpListen, NodeArgs};
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
    /// These flags, with the config's `tls` files (`rpc = true`) as the client certificate
    /// where no `--etcd-ca`/`--etcd-cert`/`--etcd-key` is given and the endpoints are
    /// `https://`: a Nomos server's store endpoint asks agents for the same certificate as
    /// its other mutual-TLS endpoints.
    pub fn with_tls_block(
        &self,
        tls: &super::config::TlsSection,
        endpoints: &[String],
    ) -> anyhow::Result<EtcdArgs> {
        let mut out = self.clone();
        let https = !endpoints.is_empty() && endpoints.iter().all(|e| e.starts_with("https://"));
        if let Some((ca, cert, key)) = tls.files()?.filter(|_| tls.rpc && https) {
            out.etcd_ca.get_or_insert(ca);
            out.etcd_cert.get_or_insert(cert);
            out.etcd_key.get_or_insert(key);
        }
        Ok(out)
    }

    pub async fn connect(&self, endpoints: &[String]) -> anyhow::Result<Arc<dyn Store>> {
        Ok(Arc::new(self.connect_etcd(endpoints).await?))
    }

    /// [`EtcdArgs::connect`], as the etcd store itself (for its user management).
    pub async fn connect_etcd(&self, endpoints: &[String]) -> anyhow::Result<EtcdStore> {
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
        Ok(store)
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
    /// With `client { enabled = true }`: where the local agent serves its logs, metrics and
    /// restarts (default: the API's IP on port 4749; port 0 picks a free port; `off` serves
    /// nothing, and then its tasks cannot be restarted through the API).
    #[arg(long, value_name = "ADDR|off", value_parser = super::node_flags::parse_http_listen)]
    pub agent_http_addr: Option<HttpListen>,
    /// Require ACL tokens on the API (as the config's `acl { enabled = true }`); bootstrap the
    /// first management token with `nctl acl bootstrap`.
    #[arg(long)]
    pub acl_enabled: bool,
    /// The file with the key that wraps the keyring's root keys (base64, 32 bytes; created
    /// with mode 0600 if missing). Every server on one store needs the same file. Default: the
    /// config's `server { keyring_key_file }`, else `keyring.key` in the server's data dir.
    #[arg(long)]
    pub keyring_key_file: Option<PathBuf>,
    /// Serve the API, the store endpoint and the local agent's endpoint on non-loopback
    /// addresses even without TLS and ACLs (refused otherwise: see docs/security.md).
    #[arg(long)]
    pub insecure: bool,
    #[command(flatten)]
    pub dns: runtime::DnsArgs,
    #[command(flatten)]
    pub browsers: runtime::BrowserArgs,
}

/// The local agent of a config with `client { enabled = true }`: `nctl agent`'s node flags
/// (from `nctl agent -config`; from `nctl server`, only `--agent-http-addr`) and data dir
/// (default `<data_dir>/client`).
#[derive(Debug, Clone, Default)]
pub struct LocalAgent {
    pub node: NodeArgs,
    pub data_dir: Option<PathBuf>,
}

pub async fn run(args: ServerArgs) -> anyhow::Result<i32> {
    runtime::init_tracing();
    let file = match &args.config {
        Some(path) => super::config::load(path)?,
        None => super::config::FileConfig::default(),
    };
    let local = LocalAgent {
        node: NodeArgs {
            http_addr: args.agent_http_addr,
            insecure: args.insecure,
            ..Default::default()
        },
        data_dir: None,
    };
    run_with_local_agent(args, file, local).await
}

/// `nctl server`, and `nctl agent -config` with a config that enables the server: `file` is
/// what `args.config` says (already loaded), `local` shapes the local agent when the config
/// enables the client.
pub async fn run_with_local_agent(
    args: ServerArgs,
    file: super::config::FileConfig,
    local: LocalAgent,
) -> anyhow::Result<i32> {
    if args.config.is_some() && !file.server.enabled {
        anyhow::bail!("the config file does not enable the server (`server {{ enabled = true }}`, or `server: {{enabled: true}}` in YAML); use `nctl agent -config` for a client-only config");
    }
    if local.node.http_addr.is_some() && !file.client.enabled {
        anyhow::bail!("an HTTP address for the local agent was given, but there is no local agent: that takes a config file that enables the client (`client {{ enabled = true }}`)");
    }
    let (base_dir, store_dir, http_addr) = places(&args, &file);
    // On etcd, the server also makes joining nodes' etcd users (`nomos_server::join`).
    let embedded = if args.etcd_endpoints.is_empty() {
        Some(runtime::open_embedded_store(
            &store_dir,
            args.store_history,
        )?)
    } else {
        None
    };
    let (store, etcd): (Arc<dyn Store>, Option<EtcdStore>) = if let Some(embedded) = &embedded {
        (embedded.clone(), None)
    } else {
        let etcd = args.etcd.connect_etcd(&args.etcd_endpoints).await?;
        (Arc::new(etcd.clone()), Some(etcd))
    };
    publish_heartbeat_settings(&*store, &file.heartbeat_config()).await?;
    // The cluster's identity, which agents check before trusting the store's allocations.
    let cluster = nomos_store::cluster::ensure_cluster_id(&*store)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read or create {}: {e}", keys::CLUSTER))?;
    tracing::info!(cluster = %cluster, "cluster identity");
    let registry = Arc::new(Mutex::new(Registry::default()));
    let mut controllers = file.controllers(nomos_controllers::ControllersConfig::default());
    if let Some(id) = args.identity.clone() {
        controllers.identity = id;
    }
    let key_file = args
        .keyring_key_file
        .clone()
        .or_else(|| file.server.keyring_key_file.clone())
        .unwrap_or_else(|| store_dir.join("keyring.key"));
    let mut state =
        super::keyring::configure(AppState::new(store.clone(), registry.clone()), &key_file)
            .await?;
    state.gc = controllers.gc.clone();
    state.node_access = etcd.map(nomos_server::join::etcd_access).or_else(|| {
        let users = embedded.as_ref().map(|e| e.auth().clone());
        users.map(nomos_server::join::embedded_access)
    });
    state.scheduler.algorithm = controllers.scheduler_algorithm;
    if let Some(tls) = file.tls.to_agents("global")? {
        state.http = super::client_tls::http_client(&tls)?;
        state.agent_tls = Some(Arc::new(nomos_tls::client_config(&tls)?));
    }
    let agent = if file.client.enabled {
        let data_dir = local.data_dir.clone().unwrap_or(base_dir.join("client"));
        let default_http = SocketAddr::new(http_addr.ip(), nomos_agent::config::DEFAULT_HTTP_PORT);
        let config =
            local
                .node
                .agent_config(&file, args.config.is_some(), data_dir, default_http)?;
        state.files = Some(Arc::new(runtime::LocalFiles {
            node: config.name.clone(),
            data_dir: config.data_dir.clone(),
        }));
        Some(config)
    } else {
        None
    };
    state.agent.name = controllers.identity.clone();
    state.agent.client = agent.is_some();
    if let Some(config) = &agent {
        state.agent.datacenter = config.datacenter.clone();
    }
    let advertise_store = store.clone();
    let server_id = controllers.identity.clone();
    let listener = tokio::net::TcpListener::bind(http_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {http_addr}: {e}"))?;
    let addr = listener.local_addr()?;
    let shutdown = Shutdown::new();
    let mut tasks = tokio::task::JoinSet::new();
    let stop = shutdown.wait();
    let mut config = args.browsers.server_config(addr);
    config.acl.enabled = args.acl_enabled || file.acl_enabled;
    config.tls = file.tls.api()?;
    config.limits = file.limits.http();
    super::exposure::check(
        "the HTTP API",
        addr,
        config.tls.is_some() && config.acl.enabled,
        "TLS (tls { http = true }) and ACLs (acl { enabled = true })",
        args.insecure,
    )?;
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    super::keyring::spawn_identities(&mut tasks, state.clone(), &shutdown);
    tasks.spawn(async move {
        nomos_server::serve(listener, state, config, stop)
            .await
            .map_err(|e| anyhow::anyhow!("HTTP API: {e}"))
    });
    spawn_store_endpoint(
        &args,
        &file,
        (store.clone(), embedded),
        &mut tasks,
        &shutdown,
    )
    .await?;
    let dns = runtime::spawn_dns(&mut tasks, &args.dns, store.clone(), &shutdown).await?;
    runtime::spawn_controllers(&mut tasks, controllers, store.clone(), &registry, &shutdown);
    if let Some(config) = agent {
        let node_name = config.name.clone();
        let http = config.http_addr;
        let stop = shutdown.wait();
        tasks.spawn(async move {
            nomos_agent::run(config, store, stop)
                .await
                .map_err(|e| anyhow::anyhow!("agent: {e}"))
        });
        match http {
            Some(http) => println!("==> local agent: node {node_name}, HTTP on {http}"),
            None => println!("==> local agent: node {node_name}, no HTTP endpoint"),
        }
    }
    spawn_advertisement(
        &mut tasks,
        advertise_store,
        server_id,
        scheme,
        addr,
        &shutdown,
    );
    println!("==> Nomos server: API on {scheme}://{addr}");
    println!("    UI:   {scheme}://{addr}/ui");
    if let Some(dns) = dns {
        println!("    DNS:  {dns} (<service>.service.nomos)");
    }
    println!("    export NOMOS_ADDR={scheme}://{addr}");
    Ok(runtime::run_until_signal(&mut tasks, &shutdown).await)
}

/// Where the server keeps its data (`base`, and the embedded store's `store` dir) and where
/// its API listens: flags over the config file over the defaults.
fn places(args: &ServerArgs, file: &super::config::FileConfig) -> (PathBuf, PathBuf, SocketAddr) {
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
    (base_dir, store_dir, http_addr)
}

/// Serves the embedded store on `--store-addr`, if asked: with `tls { rpc = true }` over mutual
/// TLS (agents present a certificate of the CA, their `tls` block's files), and on a reachable
/// address only so or with `--insecure`.
async fn spawn_store_endpoint(
    args: &ServerArgs,
    file: &super::config::FileConfig,
    (store, embedded): (Arc<dyn Store>, Option<Arc<nomos_store::EmbeddedStore>>),
    tasks: &mut tokio::task::JoinSet<anyhow::Result<()>>,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let Some(addr) = &args.store_addr else {
        return Ok(());
    };
    let store_tls =
        file.tls
            .agent()?
            .filter(|_| file.tls.rpc)
            .map(|t| nomos_store_server::StoreServerTls {
                cert: t.cert_file,
                key: t.key_file,
                client_ca: t.client_ca,
            });
    if let Ok(bind) = addr.parse::<SocketAddr>() {
        super::exposure::check(
            "the store endpoint",
            bind,
            store_tls.is_some(),
            "mutual TLS (tls { rpc = true })",
            args.insecure,
        )?;
    }
    if !args.etcd_endpoints.is_empty() {
        anyhow::bail!("--store-addr serves the embedded store; with --etcd-endpoints, agents talk to etcd directly");
    }
    if let Some(url) = runtime::spawn_store_server(
        tasks,
        addr,
        "nomos",
        store,
        embedded,
        (store_tls, file.limits.rpc()),
        shutdown,
    )
    .await?
    {
        println!("==> store served over etcd's protocol at {url}");
    }
    Ok(())
}

/// Advertises this server's API at `/nomos/servers/<id>`, where agents find it to read their
/// tasks' Variables (a wildcard address becomes the host's own).
fn spawn_advertisement(
    tasks: &mut tokio::task::JoinSet<anyhow::Result<()>>,
    store: Arc<dyn Store>,
    id: String,
    scheme: &str,
    addr: SocketAddr,
    shutdown: &Shutdown,
) {
    let advertised =
        nomos_agent::config::advertised_http_addr(addr, &nomos_agent::fingerprint::primary_ip());
    let url = format!("{scheme}://{advertised}");
    let stop = shutdown.wait();
    tasks.spawn(async move {
        nomos_server::advertise::advertise(store, id, url, stop).await;
        Ok(())
    });
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
