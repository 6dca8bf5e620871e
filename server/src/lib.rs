//! nomos-server: the HTTP API in front of the store.
//!
//! Layout:
//! - [`router`] builds the axum [`Router`] over an [`AppState`] (the store and a metrics
//!   registry); [`run`] / [`serve`] put it on a socket with graceful shutdown.
//! - [`guard`]: the middleware in front of every route that refuses what a web page could send
//!   or read through the user's browser (other sites' requests, non-JSON writes, rebound Host
//!   names), configured by [`ServerConfig::guard`].
//! - [`acl`]: ACL tokens and policies (`/v1/acl/...`) and the middleware that checks every
//!   route's rule ([`acl::rules`]) when [`ServerConfig::acl`] turns ACLs on.
//! - [`keyring`]: the servers' keyring (root keys in the store, wrapped by the configured key
//!   file): seals Variables, signs workload identities, `/v1/operator/keyring/...` and
//!   `/.well-known/jwks.json`; [`identity`]: the loop that signs each allocation's task
//!   identities into `/nomos/identities/<node>/<alloc>`.
//! - [`views`]: the JSON request and response bodies (shared with `nctl`, which deserialises them).
//! - [`diff`]: the pure field-by-field diff of two jobs that `apply` and `plan` report;
//!   [`dryrun`]: the plan's placement dry run through the controllers' pure scheduler.
//! - [`jobfile`]: turns an apply body (a job file's source or a canonical job) into jobs or
//!   positioned diagnostics.
//! - handlers, one module per resource: [`jobs`], [`allocs`], [`nodes`], [`events`] (who may
//!   see a store change on the event stream), [`metrics`] (`/metrics`); the endpoints in
//!   Nomad's shapes (jobs, evaluations, deployments and the rest) are in [`nomad`].
//! - [`services`]: the service catalogue's Nomad-shaped reads (`/v1/services`,
//!   `/v1/service/{name}`, with filters and blocking queries) and registration deletes.
//! - [`vars`]: Variables (`/v1/var/{path}`, `/v1/vars`, locks), their items sealed by the
//!   keyring; workload identities reach them through [`acl::workload`].
//! - [`join`]: node join tokens, and the join that gives a node its own etcd user and role.
//! - [`namespaces`], [`quotas`]: namespaces and quota specifications as objects
//!   (`/v1/namespace...`, `/v1/quota...`); jobs are accepted only in namespaces that exist.
//! - [`specs`]: reading jobs back: the spec key (whatever it holds) and the accepted versions,
//!   so a job whose spec key holds an invalid value still shows (and stops) what runs.
//! - [`kv`]: small typed helpers over the [`Store`] trait (JSON get/list, compare-and-put).
//! - [`error`]: the crate's error enum and its JSON rendering.
//! - [`ui`]: the web UI under `/ui` (server-rendered HTML, htmx fragments, uPlot resource charts
//!   computed from the agents' usage reports: [`measured`]).
//! - [`usage_metrics`]: the cluster's figures on `/metrics` (measured usage per task,
//!   allocation and job; allocations by status; allocated and capacity), read at each scrape.
//!
//! Specs are written here (`/nomos/jobs/...`, `/nomos/nodespec/...`); status keys are only read,
//! except for the few user requests that target them (stop an allocation; promote, fail,
//! pause or resume a deployment), which are written with a compare on the key's `mod_revision`.

pub mod acl;
pub mod advertise;
pub mod allocs;
pub mod body;
pub mod diff;
pub mod error;
pub mod events;
pub mod guard;
pub mod identity;
pub mod jobfile;
pub mod jobs;
pub mod join;
pub mod keyring;
pub mod kv;
pub mod measured;
pub mod metrics;
pub mod namespaces;
pub mod nomad;
pub mod quotas;
pub mod reads;
pub mod services;
pub mod specs;
pub mod ui;
pub mod usage;
pub mod usage_metrics;
pub mod vars;
pub mod views;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use nomos_store::Store;
use prometheus_client::registry::Registry;

pub use error::ServerError;

/// Largest request body accepted, by default (job files are small; 413 above this).
pub const DEFAULT_BODY_LIMIT: usize = 4 * 1024 * 1024;

/// How the HTTP API is served.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen (`127.0.0.1:4747` by default).
    pub http_addr: SocketAddr,
    /// Largest accepted request body in bytes.
    pub body_limit: usize,
    /// Which browser requests are let through ([`guard`]).
    pub guard: guard::GuardConfig,
    /// Whether ACL tokens are required ([`acl`]; Nomad's `acl { enabled = true }`).
    pub acl: acl::AclConfig,
    /// Serve HTTPS with this certificate (Nomad's `tls { http = true }`), requiring a client
    /// certificate signed by its `client_ca` when set (`verify_https_client`).
    pub tls: Option<nomos_tls::ServerTls>,
    /// Nomad's `https_handshake_timeout` (5s) and `http_max_conns_per_client` (100): a client
    /// must finish its TLS handshake and send a complete request head in time, and one address
    /// may hold at most this many connections (0: no limit).
    pub limits: nomos_tls::limits::ConnLimits,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 4747)),
            body_limit: DEFAULT_BODY_LIMIT,
            guard: guard::GuardConfig::default(),
            acl: acl::AclConfig::default(),
            tls: None,
            limits: nomos_tls::limits::ConnLimits::default(),
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// The process's metrics registry (controllers register into it too); `/metrics` encodes it.
    pub registry: Arc<Mutex<Registry>>,
    pub http_metrics: metrics::HttpMetrics,
    pub http: reqwest::Client,
    /// How this server connects to agents serving HTTPS for the websockets `http` cannot
    /// open (exec, [`nomad::exec`]); `None` while agents serve plain HTTP.
    pub agent_tls: Option<Arc<nomos_tls::rustls::ClientConfig>>,
    /// Reads files and logs of agents running in this process (`nctl dev`); others are asked
    /// over HTTP ([`nomad::fs_source`]).
    pub files: Option<nomad::fs_source::SharedAllocFiles>,
    /// Flips to `true` when the server shuts down, so endless streams (events, followed logs)
    /// end and graceful shutdown can finish.
    pub closing: Arc<tokio::sync::watch::Sender<bool>>,
    /// The web UI's resource series and how often it is sampled.
    pub ui: ui::UiState,
    /// The collector's settings (`POST /v1/system/gc` keeps as many job versions as the gc loop).
    pub gc: nomos_controllers::gc::GcConfig,
    /// The placement settings the controllers run with (the plan decides as they do).
    pub scheduler: nomos_controllers::scheduler::SchedulerConfig,
    /// Resolved ACL tokens, kept fresh by a watch of `/nomos/acl/` ([`acl::cache`]).
    pub acl_cache: acl::cache::AclCache,
    /// The servers' keyring: seals Variables, signs workload identities ([`keyring`]).
    /// [`AppState::new`] wraps its keys with a random in-memory key; servers set the
    /// configured one with [`AppState::with_keyring_key`].
    pub keyring: Arc<keyring::Keyring>,
    /// Makes nodes' etcd users when they join with a join token ([`join`]); `None` on the
    /// embedded store, where the join answers 400.
    pub node_access: Option<Arc<dyn join::NodeAccess>>,
    /// Who this server is, as Nomad's agent endpoints report it ([`nomad::agent`]).
    pub agent: nomad::AgentInfo,
    /// How many blocking queries may wait at once ([`nomad::blocking`]).
    pub blocking: nomad::BlockingBudget,
    /// How many event streams may be open at once, and their heartbeat ([`nomad::event_stream`]).
    pub streams: nomad::StreamConfig,
}

impl AppState {
    /// State over a store, registering the server's HTTP metrics into `registry`.
    pub fn new(store: Arc<dyn Store>, registry: Arc<Mutex<Registry>>) -> Self {
        let http_metrics = metrics::HttpMetrics::default();
        {
            let mut reg = registry.lock().unwrap_or_else(|e| e.into_inner());
            http_metrics.register(&mut reg);
        }
        // The OS random source does not fail on a working system; if it did, nothing could
        // be sealed or signed anyway.
        let kek = keyring::Kek::random().expect("the OS random source works");
        let keyring = Arc::new(keyring::Keyring::new(store.clone(), kek));
        AppState {
            store,
            registry,
            http_metrics,
            http: reqwest::Client::new(),
            agent_tls: None,
            files: None,
            closing: Arc::new(tokio::sync::watch::channel(false).0),
            ui: ui::UiState::default(),
            gc: Default::default(),
            scheduler: Default::default(),
            acl_cache: Default::default(),
            keyring,
            node_access: None,
            agent: nomad::AgentInfo::default(),
            blocking: nomad::BlockingBudget::default(),
            streams: nomad::StreamConfig::default(),
        }
    }

    /// The same state with a keyring whose root keys are wrapped by `kek` (the server's
    /// configured keyring key file). Call [`keyring::Keyring::start`] before serving, so a
    /// key that cannot unwrap the stored keys stops the server.
    pub fn with_keyring_key(mut self, kek: keyring::Kek) -> Self {
        self.keyring = Arc::new(keyring::Keyring::new(self.store.clone(), kek));
        self
    }

    /// Resolves once the server has begun shutting down.
    pub fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.closing.subscribe();
        async move {
            let _ = rx.wait_for(|closing| *closing).await;
        }
    }

    /// State with a registry of its own (tests, or a server without controllers).
    pub fn with_store(store: Arc<dyn Store>) -> Self {
        Self::new(store, Arc::new(Mutex::new(Registry::default())))
    }
}

/// The whole API: JSON under `/v1`, Prometheus text on `/metrics`, the web UI under `/ui`
/// (`/` redirects there), for a server listening on the default loopback address.
pub fn router(state: AppState) -> Router {
    router_with(state, &ServerConfig::default())
}

/// [`router`] with `config`'s body limit and browser guard, whose Host check `auto` looks at
/// `config.http_addr`.
pub fn router_with(state: AppState, config: &ServerConfig) -> Router {
    let guard = Arc::new(guard::Guard::new(config.guard.clone(), config.http_addr));
    let v1 = Router::new()
        .route("/status", get(jobs::status))
        .route(
            "/jobs",
            get(nomad::job_reads::list_jobs)
                .post(nomad::job_writes::register_jobs)
                .put(nomad::job_writes::register_jobs),
        )
        .route(
            "/job/{id}",
            get(nomad::job_reads::get_job)
                .post(nomad::job_writes::register_job)
                .put(nomad::job_writes::register_job)
                .delete(nomad::job_writes::deregister),
        )
        .route("/job/{id}/submission", get(nomad::job_writes::submission))
        .route(
            "/job/{id}/plan",
            post(nomad::job_plan::plan).put(nomad::job_plan::plan),
        )
        .route("/job/{id}/versions", get(nomad::job_versions::versions))
        .route(
            "/job/{id}/revert",
            post(nomad::job_versions::revert).put(nomad::job_versions::revert),
        )
        .route(
            "/job/{id}/stable",
            post(nomad::job_versions::set_stable).put(nomad::job_versions::set_stable),
        )
        .route(
            "/job/{id}/periodic/force",
            post(nomad::job_versions::periodic_force).put(nomad::job_versions::periodic_force),
        )
        .route(
            "/job/{id}/scale",
            get(nomad::job_versions::scale_status)
                .post(nomad::job_versions::scale)
                .put(nomad::job_versions::scale),
        )
        .route("/job/{id}/allocations", get(jobs::allocations))
        .route("/services", get(services::list))
        .route("/service/{name}", get(services::get))
        .route(
            "/service/{name}/{id}",
            axum::routing::delete(services::delete),
        )
        .route("/system/gc", post(jobs::gc).put(jobs::gc))
        .route("/namespaces", get(namespaces::list))
        .route("/namespace", post(namespaces::put).put(namespaces::put))
        .route(
            "/namespace/{name}",
            get(namespaces::get)
                .post(namespaces::put_named)
                .put(namespaces::put_named)
                .delete(namespaces::delete),
        )
        .route("/quotas", get(quotas::list))
        .route("/quota", post(quotas::put).put(quotas::put))
        .route(
            "/quota/{name}",
            get(quotas::get)
                .post(quotas::put_named)
                .put(quotas::put_named)
                .delete(quotas::delete),
        )
        .route("/quota/usage/{name}", get(quotas::usage))
        .route("/vars", get(vars::list))
        .route(
            "/var/{*path}",
            get(vars::read).put(vars::write).delete(vars::purge),
        )
        .merge(acl::endpoints::routes())
        .merge(keyring::endpoints::routes())
        .merge(join::routes())
        .merge(nomad::routes());
    Router::new()
        .nest("/v1", v1)
        .route("/metrics", get(metrics::render))
        .merge(keyring::endpoints::well_known_routes())
        .merge(ui::routes())
        .fallback(error::not_found)
        // Inside the guard: a cross-site request is refused before its token is looked at.
        .layer(axum::middleware::from_fn_with_state(
            acl::AclLayer {
                state: state.clone(),
                config: config.acl,
            },
            acl::enforce,
        ))
        // Inside the metrics layer, so refused requests are counted too.
        .layer(axum::middleware::from_fn_with_state(guard, guard::check))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(DefaultBodyLimit::max(config.body_limit))
        .layer(compression())
        .with_state(state)
}

/// Marks a streamed response (the event stream, framed files and logs) so the compression
/// layer leaves it alone: a gzip encoder would hold its lines back.
#[derive(Debug, Clone, Copy)]
pub struct Unbuffered;

/// Gzip for clients that accept it, as Nomad's API does; streams (newline-delimited events,
/// frames, followed logs in plain text, anything marked [`Unbuffered`]) go out as written, so
/// each line arrives when it happens.
fn compression(
) -> tower_http::compression::CompressionLayer<impl tower_http::compression::Predicate> {
    use tower_http::compression::predicate::{NotForContentType, Predicate};
    let not_streamed =
        |_: axum::http::StatusCode,
         _: axum::http::Version,
         _: &axum::http::HeaderMap,
         extensions: &axum::http::Extensions| { extensions.get::<Unbuffered>().is_none() };
    tower_http::compression::CompressionLayer::new().compress_when(
        tower_http::compression::DefaultPredicate::new()
            .and(NotForContentType::const_new("application/x-ndjson"))
            .and(NotForContentType::const_new("text/plain"))
            .and(not_streamed),
    )
}

/// Binds `config.http_addr` and serves until `shutdown` resolves.
pub async fn run(
    config: ServerConfig,
    store: Arc<dyn Store>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.http_addr.to_string(),
            source,
        })?;
    serve(listener, AppState::with_store(store), config, shutdown).await
}

/// Serves `app` on `listener` (plain or TLS) until `shutdown`, then drains open requests;
/// under the connection `limits` (a handshake timeout, a cap on connections per address).
async fn serve_until(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<nomos_tls::rustls::ServerConfig>>,
    limits: nomos_tls::limits::ConnLimits,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use nomos_tls::limits::{LimitedListener, ListenerKind};
    let listener = LimitedListener::new(listener, tls, limits, ListenerKind::HttpApi);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serves the API on an already bound listener (so callers can bind port 0 and learn the port)
/// until shutdown. The listener's own address replaces
/// `config.http_addr`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let config = ServerConfig {
        http_addr: listener.local_addr().map_err(ServerError::Serve)?,
        ..config
    };
    let tls = config
        .tls
        .as_ref()
        .map(|tls| nomos_tls::server_config(tls, &[b"h2", b"http/1.1"]))
        .transpose()?;
    let mut state = state;
    state.agent.http_addr.get_or_insert(config.http_addr);
    state.agent.acl_enabled = config.acl.enabled;
    let closing = state.closing.clone();
    let acl_background = config
        .acl
        .enabled
        .then(|| tokio::spawn(acl::run_background(state.clone())));
    let app = router_with(state, &config);
    let shutdown = {
        let closing = closing.clone();
        async move {
            shutdown.await;
            closing.send_replace(true);
        }
    };
    let served = serve_until(listener, tls, config.limits, app, shutdown)
        .await
        .map_err(ServerError::Serve);
    // Serving may also end on an error; either way the background tasks stop with it.
    closing.send_replace(true);
    if let Some(task) = acl_background {
        if let Err(e) = task.await {
            tracing::warn!(error = %e, "the ACL cache watch or token sweeper panicked");
        }
    }
    served
}
