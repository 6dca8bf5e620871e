//! What the long-running verbs (`dev`, `server`, `agent`) share: logging set-up, a shutdown
//! signal passed down to every part, running until Ctrl-C / SIGTERM (a second one forces the
//! exit), the controllers' task, the log reader for an in-process agent, and the HTTP API's
//! browser rules.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use nomos_store::Store;
use prometheus_client::registry::Registry;
use tokio::task::JoinSet;

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// A shutdown signal every part waits on.
#[derive(Clone)]
pub struct Shutdown(Arc<tokio::sync::watch::Sender<bool>>);

impl Shutdown {
    pub fn new() -> Self {
        Shutdown(Arc::new(tokio::sync::watch::channel(false).0))
    }
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }
    /// Resolves once [`Shutdown::trigger`] was called.
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.subscribe();
        async move {
            let _ = rx.wait_for(|v| *v).await;
        }
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

async fn signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
}

/// On SIGHUP, as Nomad's agents do, reads every TLS listener's certificate and key again (the
/// API, the agent endpoint, the store endpoint): new connections get the renewed pair. A pair
/// that does not read keeps the previous one serving, with an error in the log.
fn reload_certificates_on_sighup() {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        return;
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let results = nomos_tls::reload::reload_all();
            if results.is_empty() {
                eprintln!("==> SIGHUP: no TLS certificates to reload");
            }
            for (file, result) in results {
                match result {
                    Ok(()) => eprintln!("==> SIGHUP: reloaded {}", file.display()),
                    Err(e) => eprintln!(
                        "==> SIGHUP: {} not reloaded, the previous certificate keeps serving: {e}",
                        file.display()
                    ),
                }
            }
        }
    });
}

/// Waits for Ctrl-C / SIGTERM (or for a part to fail), then shuts everything down, waiting up to
/// 30s for the parts to finish; a second signal exits at once. Returns the exit code.
pub async fn run_until_signal(tasks: &mut JoinSet<anyhow::Result<()>>, shutdown: &Shutdown) -> i32 {
    reload_certificates_on_sighup();
    let mut code = 0;
    tokio::select! {
        _ = signal() => eprintln!("==> shutting down (Ctrl-C again to force)"),
        Some(done) = tasks.join_next() => {
            match done {
                Ok(Ok(())) => eprintln!("==> a component stopped; shutting down"),
                Ok(Err(e)) => { eprintln!("==> {e:#}; shutting down"); code = 1; }
                Err(e) => { eprintln!("==> a component panicked: {e}; shutting down"); code = 1; }
            }
        }
    }
    shutdown.trigger();
    let drain = async {
        while let Some(done) = tasks.join_next().await {
            if let Ok(Err(e)) = done {
                eprintln!("==> {e:#}");
            }
        }
    };
    tokio::select! {
        _ = drain => {}
        _ = signal() => { eprintln!("==> forced exit"); code = 130; }
        _ = tokio::time::sleep(std::time::Duration::from_secs(30)) => {
            eprintln!("==> parts did not stop within 30s; exiting");
            tasks.abort_all();
        }
    }
    code
}

/// Runs every controller against the store until shutdown (their metrics go into `registry`).
pub fn spawn_controllers(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    config: nomos_controllers::ControllersConfig,
    store: Arc<dyn Store>,
    registry: &Mutex<Registry>,
    shutdown: &Shutdown,
) {
    let fut = {
        let mut reg = registry.lock().unwrap_or_else(|e| e.into_inner());
        nomos_controllers::run(config, store, &mut reg, shutdown.wait())
    };
    tasks.spawn(async move { fut.await.map_err(|e| anyhow::anyhow!("controllers: {e}")) });
}

/// Serves the store over etcd's v3 protocol on `addr` (`off` disables it); returns the URL
/// clients use.
pub async fn spawn_store_server(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    addr: &str,
    name: &str,
    store: Arc<dyn Store>,
    embedded: Option<Arc<nomos_store::EmbeddedStore>>,
    (tls, limits): (
        Option<nomos_store_server::StoreServerTls>,
        nomos_store_server::ConnLimits,
    ),
    shutdown: &Shutdown,
) -> anyhow::Result<Option<String>> {
    if addr == "off" || addr.is_empty() {
        return Ok(None);
    }
    let addr: std::net::SocketAddr = addr
        .parse()
        .map_err(|e| anyhow::anyhow!("--store-addr {addr:?}: {e}"))?;
    let mut config = nomos_store_server::StoreServerConfig::new(addr);
    config.name = name.to_string();
    config.tls = tls;
    config.limits = limits;
    let mut server = nomos_store_server::StoreServer::bind(config)
        .await
        .map_err(|e| anyhow::anyhow!("cannot serve the store on {addr}: {e}"))?;
    if let Some(embedded) = embedded {
        server = server.with_embedded(embedded);
    }
    let url = server.client_url();
    let stop = shutdown.wait();
    tasks.spawn(async move {
        server
            .serve(store, stop)
            .await
            .map_err(|e| anyhow::anyhow!("store endpoint: {e}"))
    });
    Ok(Some(url))
}

/// Reads the logs of the agent running in this process.
pub struct LocalLogs {
    pub node: String,
    pub data_dir: PathBuf,
}

impl nomos_server::allocs::LogReader for LocalLogs {
    fn read(
        &self,
        node: &str,
        alloc: &str,
        task: &str,
        stderr: bool,
        offset: u64,
        limit: usize,
    ) -> Option<std::io::Result<(Vec<u8>, u64)>> {
        if node != self.node {
            return None;
        }
        let stream = if stderr {
            nomos_agent::logs::LogStream::Stderr
        } else {
            nomos_agent::logs::LogStream::Stdout
        };
        Some(
            nomos_agent::logs::read_task_logs(&self.data_dir, alloc, task, stream, offset, limit)
                .map(|c| (c.data, c.next_offset)),
        )
    }
}

/// Revisions of history the embedded store keeps by default ([`nomos_store::DEFAULT_HISTORY`]).
pub const DEFAULT_STORE_HISTORY: i64 = nomos_store::DEFAULT_HISTORY;

/// Opens the embedded store in `dir`, keeping about `history` revisions (0: keep everything).
/// The concrete type, not `dyn Store`: the store endpoint's maintenance methods need it.
pub fn open_embedded_store(
    dir: &std::path::Path,
    history: i64,
) -> anyhow::Result<Arc<nomos_store::EmbeddedStore>> {
    std::fs::create_dir_all(dir)?;
    let options = nomos_store::EmbeddedOptions {
        auto_compaction_retention: history.max(0),
        ..Default::default()
    };
    let store = nomos_store::EmbeddedStore::open_with(dir, options)
        .map_err(|e| anyhow::anyhow!("cannot open the store in {}: {e}", dir.display()))?;
    Ok(Arc::new(store))
}

/// Which browser requests the HTTP API lets through besides its own UI's (`docs/security.md`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BrowserArgs {
    /// A web origin (`https://dash.example.com`) whose pages may call the API from a browser,
    /// besides the server's own; repeatable.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    pub allowed_origins: Vec<nomos_server::guard::Origin>,
    /// A name (optionally with `:PORT`) accepted in the Host header besides localhost,
    /// 127.0.0.1 and [::1] while the Host check is on; repeatable.
    #[arg(long = "allowed-host", value_name = "HOST[:PORT]")]
    pub allowed_hosts: Vec<nomos_server::guard::HostPort>,
    /// Check the Host header against DNS rebinding: `auto` does when the API listens on a
    /// loopback address.
    #[arg(long, value_name = "auto|on|off", default_value = "auto")]
    pub host_check: nomos_server::guard::HostCheck,
}

impl BrowserArgs {
    /// The API's settings: listening on `http_addr`, with these browser rules.
    pub fn server_config(&self, http_addr: SocketAddr) -> nomos_server::ServerConfig {
        nomos_server::ServerConfig {
            http_addr,
            guard: nomos_server::guard::GuardConfig {
                allowed_origins: self.allowed_origins.clone(),
                allowed_hosts: self.allowed_hosts.clone(),
                host_check: self.host_check,
            },
            ..Default::default()
        }
    }
}
