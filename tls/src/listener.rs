//! Accepting TLS connections: handshakes run concurrently (no spawned tasks), and one that
//! fails or stalls only drops that client. [`TlsListener`] puts this under `axum::serve`;
//! [`Handshakes`] is the piece other servers (the store's gRPC endpoint) reuse.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How long a client may take to finish its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

type Handshake<S, T> = Pin<Box<dyn Future<Output = Option<(TlsStream<S>, T)>> + Send>>;

/// Handshakes under way, each carrying a tag (the peer's address, or nothing).
pub struct Handshakes<S, T = ()> {
    acceptor: TlsAcceptor,
    pending: FuturesUnordered<Handshake<S, T>>,
}

impl<S, T> Handshakes<S, T>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: Send + 'static,
{
    pub fn new(config: Arc<ServerConfig>) -> Self {
        Handshakes {
            acceptor: TlsAcceptor::from(config),
            pending: FuturesUnordered::new(),
        }
    }

    /// Starts the handshake of an accepted connection.
    pub fn push(&mut self, stream: S, tag: T) {
        let acceptor = self.acceptor.clone();
        self.pending.push(Box::pin(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => Some((tls, tag)),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    None
                }
                Err(_) => {
                    tracing::debug!("TLS handshake timed out");
                    None
                }
            }
        }));
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The next finished handshake, successful or not (`None`); pending forever when none is
    /// under way, so it fits in a `select!` beside the accept loop.
    pub async fn next_done(&mut self) -> Option<(TlsStream<S>, T)> {
        match self.pending.next().await {
            Some(done) => done,
            None => futures::future::pending().await,
        }
    }
}

/// A TCP listener whose connections are TLS-terminated, for `axum::serve`.
pub struct TlsListener {
    tcp: TcpListener,
    handshakes: Handshakes<TcpStream, SocketAddr>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> Self {
        TlsListener {
            tcp,
            handshakes: Handshakes::new(config),
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                accepted = self.tcp.accept() => match accepted {
                    Ok((stream, peer)) => self.handshakes.push(stream, peer),
                    Err(e) => {
                        // Out of file descriptors and the like: wait instead of spinning.
                        tracing::debug!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                // Not `Some(done) = ...`: a pattern that fails to match disables the branch,
                // and the other handshakes would wait for the next connection.
                done = self.handshakes.next_done() => if let Some(done) = done {
                    return done;
                },
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
