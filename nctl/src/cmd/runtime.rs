//! What the long-running verbs (`dev`, `server`, `agent`) share: logging set-up, a shutdown
//! signal passed down to every part, running until Ctrl-C / SIGTERM (a second one forces the
//! exit), the controllers' task, the DNS interface's flag and task, the log reader for an
//! in-process agent, and the HTTP API's browser rules.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use nomos_api::allocfs::AllocFileInfo;
use nomos_server::ServerError;
use nomos_store::Store;
use prometheus_client::registry::Registry;
use tokio::task::JoinSet;

/// Logs to stderr, filtered by `RUST_LOG` (default `info`), in colour only on a terminal and
/// without `NO_COLOR` (log files and journald get plain text).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(crate::console::colours_for(&std::io::stderr()))
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

/// `--dns-addr`: where the DNS interface answers (`docs/dns.md`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DnsArgs {
    /// Where the DNS interface answers `<service>.service.nomos.` from the service catalogue,
    /// over UDP and TCP (default 127.0.0.1:8600, as Consul's; port 0 picks a free port; `off`
    /// disables it). An address given here that cannot be bound stops the start; the default
    /// one, when another process holds it, is skipped with a warning.
    #[arg(long, value_name = "ADDR|off", value_parser = parse_dns_listen)]
    pub dns_addr: Option<DnsListen>,
}

/// `--dns-addr` as given: an address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsListen {
    Off,
    At(SocketAddr),
}

/// `off`, or a socket address such as `127.0.0.1:8600` or `127.0.0.1:0`.
pub fn parse_dns_listen(s: &str) -> Result<DnsListen, String> {
    if s == "off" {
        return Ok(DnsListen::Off);
    }
    s.parse()
        .map(DnsListen::At)
        .map_err(|e| format!("expected an address such as 127.0.0.1:8600, or off: {e}"))
}

/// Starts the DNS interface as `args` say, answering from `store` until shutdown; returns
/// where it answers, or `None` when it is off. A `--dns-addr` that cannot be bound is an
/// error, as Consul's; the default address, when taken (a server and an agent on one host
/// both default to it), leaves DNS off with a warning, so the second process still starts.
pub async fn spawn_dns(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    args: &DnsArgs,
    store: Arc<dyn Store>,
    shutdown: &Shutdown,
) -> anyhow::Result<Option<SocketAddr>> {
    let (addr, explicit) = match args.dns_addr {
        Some(DnsListen::Off) => return Ok(None),
        Some(DnsListen::At(addr)) => (addr, true),
        None => (nomos_dns::DnsConfig::default().addr, false),
    };
    let server = match nomos_dns::DnsServer::bind(nomos_dns::DnsConfig::new(addr)).await {
        Ok(server) => server,
        Err(e @ nomos_dns::DnsError::Bind { .. }) if !explicit => {
            eprintln!("==> warning: {e}; DNS is off. Another process (another nctl on this host?) holds the default DNS port: pass --dns-addr ADDR to answer elsewhere, or --dns-addr off");
            return Ok(None);
        }
        Err(e) => anyhow::bail!(
            "{e} (--dns-addr ADDR picks another address, --dns-addr off disables DNS)"
        ),
    };
    let bound = server.local_addr();
    if !bound.ip().is_loopback() {
        eprintln!("==> note: DNS on {bound} answers anyone who reaches it, without ACL tokens: it tells the catalogue's service names, addresses and ports (docs/dns.md)");
    }
    let stop = shutdown.wait();
    tasks.spawn(async move {
        server
            .serve(store, stop)
            .await
            .map_err(|e| anyhow::anyhow!("DNS: {e}"))
    });
    Ok(Some(bound))
}

/// Reads the files and logs of the agent running in this process.
pub struct LocalFiles {
    pub node: String,
    pub data_dir: PathBuf,
}

impl LocalFiles {
    fn alloc_root(&self, alloc: &str) -> PathBuf {
        self.data_dir.join("allocs").join(alloc)
    }
}

/// A refused or failed read as the HTTP answer it becomes.
fn fs_error(e: nomos_agent::allocfs::FsError) -> ServerError {
    use nomos_agent::allocfs::FsError;
    match e {
        FsError::Refused(_) | FsError::WrongKind(_) => ServerError::BadRequest(e.to_string()),
        FsError::NotFound(_) => ServerError::NotFound(e.to_string()),
        FsError::Io { .. } => ServerError::Internal(e.to_string()),
    }
}

impl nomos_server::nomad::fs_source::AllocFiles for LocalFiles {
    fn holds(&self, node: &str) -> bool {
        node == self.node
    }

    fn read_log(
        &self,
        alloc: &str,
        task: &str,
        stderr: bool,
        offset: u64,
        limit: usize,
    ) -> Result<(Vec<u8>, u64), ServerError> {
        let stream = if stderr {
            nomos_agent::logs::LogStream::Stderr
        } else {
            nomos_agent::logs::LogStream::Stdout
        };
        nomos_agent::logs::read_task_logs(&self.data_dir, alloc, task, stream, offset, limit)
            .map(|c| (c.data, c.next_offset))
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::InvalidInput => ServerError::BadRequest(e.to_string()),
                _ => ServerError::Internal(format!("reading logs: {e}")),
            })
    }

    fn list(&self, alloc: &str, path: &str) -> Result<Vec<AllocFileInfo>, ServerError> {
        nomos_agent::allocfs::list(&self.alloc_root(alloc), alloc, path).map_err(fs_error)
    }

    fn stat(&self, alloc: &str, path: &str) -> Result<AllocFileInfo, ServerError> {
        nomos_agent::allocfs::stat(&self.alloc_root(alloc), alloc, path).map_err(fs_error)
    }

    fn read_at(
        &self,
        alloc: &str,
        path: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<u8>, ServerError> {
        nomos_agent::allocfs::read_at(&self.alloc_root(alloc), alloc, path, offset, limit)
            .map_err(fs_error)
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn dns_flag(verb: &str, argv: &[&str]) -> Option<DnsListen> {
        let mut full = vec!["nctl", verb];
        full.extend_from_slice(argv);
        match crate::cmd::Cli::try_parse_from(full)
            .expect("parses")
            .command
        {
            crate::cmd::Command::Dev(a) => a.dns.dns_addr,
            crate::cmd::Command::Server(a) => a.dns.dns_addr,
            crate::cmd::Command::Agent(a) => a.dns.dns_addr,
            other => panic!("not a long-running verb: {other:?}"),
        }
    }

    #[test]
    fn dns_addr_takes_an_address_a_free_port_or_off_on_every_long_running_verb() {
        for verb in ["dev", "server", "agent"] {
            assert_eq!(dns_flag(verb, &[]), None, "{verb}: the default");
            assert_eq!(
                dns_flag(verb, &["--dns-addr", "off"]),
                Some(DnsListen::Off),
                "{verb}"
            );
            assert_eq!(
                dns_flag(verb, &["--dns-addr", "127.0.0.1:0"]),
                Some(DnsListen::At("127.0.0.1:0".parse().unwrap())),
                "{verb}"
            );
        }
        let bad = crate::cmd::Cli::try_parse_from(["nctl", "dev", "--dns-addr", "8600"])
            .expect_err("a port alone is not an address");
        assert!(bad.to_string().contains("or off"), "{bad}");
    }

    #[tokio::test]
    async fn an_explicit_dns_address_that_is_taken_stops_the_start_and_off_serves_nothing() {
        let store: Arc<dyn Store> = Arc::new(nomos_store::EmbeddedStore::in_memory());
        let shutdown = Shutdown::new();
        let mut tasks = JoinSet::new();
        let taken = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap();
        let args = DnsArgs {
            dns_addr: Some(DnsListen::At(addr)),
        };
        let err = spawn_dns(&mut tasks, &args, store.clone(), &shutdown)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&addr.to_string()) && err.contains("--dns-addr off"),
            "{err}"
        );
        let off = DnsArgs {
            dns_addr: Some(DnsListen::Off),
        };
        let none = spawn_dns(&mut tasks, &off, store.clone(), &shutdown).await;
        assert!(matches!(none, Ok(None)) && tasks.is_empty());
        let free = DnsArgs {
            dns_addr: Some(DnsListen::At("127.0.0.1:0".parse().unwrap())),
        };
        let bound = spawn_dns(&mut tasks, &free, store, &shutdown)
            .await
            .unwrap();
        assert!(bound.is_some_and(|a| a.port() != 0) && tasks.len() == 1);
        shutdown.trigger();
        let stopped =
            tokio::time::timeout(std::time::Duration::from_secs(5), tasks.join_next()).await;
        assert!(matches!(stopped, Ok(Some(Ok(Ok(()))))), "{stopped:?}");
    }
}
