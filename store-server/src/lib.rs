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
//! - `tls`: TLS termination (rustls) in front of the HTTP/2 server.
//! - [`error`]: the crate's error enum and the mapping of store errors onto etcd's gRPC codes
//!   and messages.
//!
//! Methods that are not offered (auth, defragment, snapshot, member changes, elections, locks,
//! any unknown service) answer gRPC `Unimplemented` with a message naming what was asked.
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<dyn nomos_store::Store>) -> Result<(), nomos_store_server::StoreServerError> {
//! use nomos_store_server::{StoreServer, StoreServerConfig};
//! let server = StoreServer::bind(StoreServerConfig::new("127.0.0.1:0".parse().unwrap())).await?;
//! println!("serving etcd's protocol on {}", server.client_url());
//! server.serve(store, std::future::pending()).await
//! # }
//! ```

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
use futures::StreamExt;
use nomos_store::Store;
use nomos_tls::rustls::ServerConfig as TlsServerConfig;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;

use crate::h2fix::AuthorityFix;

pub use error::StoreServerError;
pub use identity::Identity;

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
}

impl StoreServerConfig {
    pub fn new(addr: SocketAddr) -> Self {
        StoreServerConfig {
            addr,
            tls: None,
            name: "default".to_string(),
            version: "3.5.0".to_string(),
            repair_authority: true,
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
    incoming: TcpIncoming,
    local_addr: SocketAddr,
    tls: Option<Arc<TlsServerConfig>>,
    identity: Arc<Identity>,
    repair_authority: bool,
}

impl StoreServer {
    /// Reads the TLS files and binds the listening socket.
    pub async fn bind(config: StoreServerConfig) -> Result<Self, StoreServerError> {
        let tls = config.tls.as_ref().map(tls::server_config).transpose()?;
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
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        Ok(StoreServer {
            incoming,
            local_addr,
            tls,
            identity: Arc::new(identity),
            repair_authority: config.repair_authority,
        })
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
            }))
            .add_service(PbClusterServer::new(cluster::ClusterService {
                store,
                identity: id,
            }));
        let mut routes = services.routes();
        let router = std::mem::take(routes.axum_router_mut());
        *routes.axum_router_mut() = router
            .fallback(unknown_method)
            .layer(axum::middleware::from_fn(name_unimplemented));
        let router = builder.add_routes(routes);
        let repair = self.repair_authority;
        let served = match self.tls {
            None => {
                let incoming = self
                    .incoming
                    .map(|conn| conn.map(|c| AuthorityFix::new(c, repair)));
                router
                    .serve_with_incoming_shutdown(incoming, shutdown)
                    .await
            }
            Some(config) => {
                let incoming = tls::incoming(self.incoming, config)
                    .map(|conn| conn.map(|c| AuthorityFix::new(c, repair)));
                router
                    .serve_with_incoming_shutdown(incoming, shutdown)
                    .await
            }
        };
        served.map_err(StoreServerError::Serve)
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
