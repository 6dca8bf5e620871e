//! Serves any [`nomos_store::Store`] over etcd's v3 gRPC protocol, so `etcdctl`, etcd client
//! libraries and Nomos' own etcd backend use a Nomos server's embedded store as if it were etcd
//! (what k3s does with kine).
//!
//! Layout:
//! - [`convert`]: pure translation of etcd's protobuf requests into `Store` calls and of the
//!   answers back, with etcd's request checks (empty key, txn limits, duplicate writes).
//! - `kv`, `watch`, `lease`, `cluster`: one module per gRPC service. Watch sessions and lease
//!   keep-alive streams are driven by the client reading them; nothing is spawned per stream.
//! - [`identity`]: cluster and member ids, raft term, version and URL for response headers,
//!   `Status` and `MemberList`.
//! - [`h2fix`]: repairs the URL-shaped `:authority` that etcdctl's `endpoint status` sends,
//!   which Rust's HTTP/2 server would otherwise reset.
//! - `tls`: the rustls server config. Connections are accepted, counted per client address,
//!   held to the handshake timeout (Nomad's `rpc_handshake_timeout` and
//!   `rpc_max_conns_per_client`, [`StoreServerConfig::limits`]) and TLS-terminated by
//!   [`nomos_tls::limits::LimitedListener`], in front of [`h2fix`] and the HTTP/2 server.
//! - `auth`: etcd's Auth service (users, roles, tokens; `etcdctl user/role/auth`) and the layer
//!   that names each request's caller, so KV, Watch and Lease check keys against its roles.
//! - [`error`]: the crate's error enum and the mapping of store errors onto etcd's gRPC codes
//!   and messages.
//!
//! Snapshot, Hash, HashKV and Defragment work on the embedded store when it is named with
//! [`StoreServer::with_embedded`]. Methods that are not offered (member changes,
//! elections, locks, any unknown service) answer gRPC `Unimplemented` with a message naming
//! what was asked.
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<dyn nomos_store::Store>) -> Result<(), nomos_store_server::StoreServerError> {
//! use nomos_store_server::{StoreServer, StoreServerConfig};
//! let server = StoreServer::bind(StoreServerConfig::new("127.0.0.1:0".parse().unwrap())).await?;
//! println!("serving etcd's protocol on {}", server.client_url());
//! server.serve(store, std::future::pending()).await
//! # }
//! ```

mod auth;
mod cluster;
pub mod convert;
pub mod error;
pub mod h2fix;
pub mod identity;
mod kv;
mod lease;
mod tls;
mod watch;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use etcd_client::proto::{
    PbClusterServer, PbKvServer, PbLeaseServer, PbMaintenanceServer, PbWatchServer,
};
use nomos_store::embedded::auth::EmbeddedAuth;
use nomos_store::{EmbeddedStore, Store};
use nomos_tls::limits::{LimitedListener, ListenerKind};
use nomos_tls::rustls::ServerConfig as TlsServerConfig;
use tonic::transport::Server;

use crate::h2fix::AuthorityFix;

pub use error::StoreServerError;
pub use identity::Identity;
pub use nomos_tls::limits::ConnLimits;

/// Default address of `nctl dev`'s store endpoint.
pub const DEFAULT_ADDR: &str = "127.0.0.1:4748";

/// Where and how to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreServerConfig {
    /// Address to listen on; port 0 picks a free port (see [`StoreServer::local_addr`]).
    pub addr: SocketAddr,
    /// Serve TLS instead of plain HTTP/2.
    pub tls: Option<StoreServerTls>,
    /// Member name shown by `etcdctl member list`; the cluster and member ids derive from it.
    pub name: String,
    /// The etcd version reported by `Status` (`etcdctl endpoint status`).
    pub version: String,
    /// Repair the URL-shaped `:authority` that etcd 3.4's `etcdctl endpoint status/health`
    /// send (see [`h2fix`]); on by default, costs an HPACK decode and encode per request.
    pub repair_authority: bool,
    /// Nomad's `rpc_handshake_timeout` (5s) and `rpc_max_conns_per_client` (100): a client
    /// must finish its TLS handshake and send the HTTP/2 preface in time, and one address may
    /// hold at most this many connections (0: no limit).
    pub limits: ConnLimits,
}

impl StoreServerConfig {
    pub fn new(addr: SocketAddr) -> Self {
        StoreServerConfig {
            addr,
            tls: None,
            name: "default".to_string(),
            version: "3.5.0".to_string(),
            repair_authority: true,
            limits: ConnLimits::default(),
        }
    }
}

impl Default for StoreServerConfig {
    fn default() -> Self {
        Self::new(DEFAULT_ADDR.parse().expect("default address parses"))
    }
}

/// PEM files for TLS. With `client_ca`, clients must present a certificate signed by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreServerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// A bound, not yet serving, server: bind first to learn the address (port 0 in tests).
pub struct StoreServer {
    listener: LimitedListener,
    local_addr: SocketAddr,
    identity: Arc<Identity>,
    repair_authority: bool,
    embedded: Option<Arc<EmbeddedStore>>,
    auth: Option<Arc<EmbeddedAuth>>,
}

impl StoreServer {
    /// Reads the TLS files and binds the listening socket.
    pub async fn bind(config: StoreServerConfig) -> Result<Self, StoreServerError> {
        let tls: Option<Arc<TlsServerConfig>> =
            config.tls.as_ref().map(tls::server_config).transpose()?;
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|source| StoreServerError::Bind {
                addr: config.addr,
                source,
            })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| StoreServerError::Bind {
                addr: config.addr,
                source,
            })?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let identity = Identity::new(
            &config.name,
            &config.version,
            format!("{scheme}://{local_addr}"),
        );
        let listener =
            LimitedListener::new(listener, tls, config.limits, ListenerKind::StoreEndpoint);
        Ok(StoreServer {
            listener,
            local_addr,
            identity: Arc::new(identity),
            repair_authority: config.repair_authority,
            embedded: None,
            auth: None,
        })
    }

    /// Names the embedded store behind the `Store` given to [`StoreServer::serve`], so that
    /// `Maintenance` can snapshot, hash, defragment it and report its alarms (without it those
    /// methods answer `Unimplemented`).
    pub fn with_embedded(mut self, store: Arc<EmbeddedStore>) -> Self {
        self.embedded = Some(store);
        self
    }

    /// The users and roles to enforce. Without it, those of the store named by
    /// [`StoreServer::with_embedded`] ([`EmbeddedStore::auth`], durable in its data directory),
    /// else ones that live in memory, with auth disabled until enabled.
    pub fn with_auth(mut self, auth: Arc<EmbeddedAuth>) -> Self {
        self.auth = Some(auth);
        self
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The endpoint URL clients use (`http://127.0.0.1:PORT`, or `https://` with TLS).
    pub fn client_url(&self) -> String {
        self.identity.client_url.clone()
    }

    /// The ids and version this server reports.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Serves until `shutdown` completes, then stops accepting and lets open calls finish.
    pub async fn serve(
        self,
        store: Arc<dyn Store>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), StoreServerError> {
        let id = self.identity;
        let users = self.auth.clone().unwrap_or_else(|| match &self.embedded {
            Some(embedded) => embedded.auth().clone(),
            None => Arc::new(EmbeddedAuth::in_memory()),
        });
        let gate = Arc::new(auth::Gate::new(users));
        let auth_routes = auth::auth_route(auth::AuthState {
            gate: gate.clone(),
            identity: id.clone(),
            store: store.clone(),
        });
        // Open watch and keep-alive streams never end on their own; they end when this flips,
        // so the graceful shutdown below does not wait for them forever.
        let (closing_tx, closing) = tokio::sync::watch::channel(false);
        let shutdown = async move {
            shutdown.await;
            let _ = closing_tx.send(true);
        };
        let mut builder = Server::builder();
        let mut services = tonic::service::Routes::builder();
        services
            .add_service(PbKvServer::new(kv::KvService {
                store: store.clone(),
                identity: id.clone(),
            }))
            .add_service(PbWatchServer::new(watch::WatchService {
                store: store.clone(),
                identity: id.clone(),
                closing: closing.clone(),
            }))
            .add_service(PbLeaseServer::new(lease::LeaseService {
                store: store.clone(),
                identity: id.clone(),
                closing,
            }))
            .add_service(PbMaintenanceServer::new(cluster::MaintenanceService {
                store: store.clone(),
                identity: id.clone(),
                embedded: self.embedded,
            }))
            .add_service(PbClusterServer::new(cluster::ClusterService {
                store,
                identity: id,
            }));
        let mut routes = services.routes();
        let router = std::mem::take(routes.axum_router_mut());
        *routes.axum_router_mut() = router
            .merge(auth_routes)
            .fallback(unknown_method)
            .layer(axum::middleware::from_fn_with_state(gate, auth::authorize))
            .layer(axum::middleware::from_fn(name_unimplemented));
        let router = builder.add_routes(routes);
        let repair = self.repair_authority;
        let incoming = futures::stream::unfold(self.listener, move |mut listener| async move {
            let (conn, peer) = listener.accept().await;
            let client_name = auth::conn_client_name(&conn);
            let conn = AuthorityFix::new(conn, repair).with_peer(peer);
            let conn = auth::NamedConn::new(conn, client_name);
            Some((Ok::<_, std::io::Error>(conn), listener))
        });
        router
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
            .map_err(StoreServerError::Serve)
    }
}

/// Resolves once the server is shutting down (or gone).
pub(crate) async fn closed(closing: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = closing.wait_for(|c| *c).await;
}

/// Binds `config.addr` and serves `store` until `shutdown` completes.
pub async fn serve(
    config: StoreServerConfig,
    store: Arc<dyn Store>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), StoreServerError> {
    StoreServer::bind(config)
        .await?
        .serve(store, shutdown)
        .await
}

/// Unknown methods of a known service get tonic's bare `Unimplemented`; give them a message.
async fn name_unimplemented(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let path = req.uri().path().trim_start_matches('/').to_string();
    let mut resp = next.run(req).await;
    let unimplemented = resp
        .headers()
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes() == b"12");
    if unimplemented && !resp.headers().contains_key("grpc-message") {
        let message = cluster::unsupported(&path).message().to_string();
        if let Ok(value) = axum::http::HeaderValue::from_str(&message) {
            resp.headers_mut().insert("grpc-message", value);
        }
    }
    resp
}

/// Any service or method not registered: `Unimplemented`, naming it.
async fn unknown_method(uri: axum::http::Uri) -> axum::response::Response {
    let status = cluster::unsupported(uri.path().trim_start_matches('/'));
    let (parts, ()) = status.into_http::<()>().into_parts();
    axum::response::Response::from_parts(parts, axum::body::Body::empty())
}
