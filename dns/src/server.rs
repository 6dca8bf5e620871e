//! The sockets: one UDP socket and one TCP listener on the same address, answering through
//! [`crate::message::respond`] from the catalogue that [`crate::loader`] keeps.
//!
//! - UDP: one task receives, answers and sends (answering is quick, in memory and bounded);
//!   a datagram longer than `max_request_bytes` is FORMERR.
//! - TCP: at most `max_tcp_connections` at once (one more is closed as soon as it is
//!   accepted); each connection reads length-prefixed queries one after another, each within
//!   `tcp_timeout`, and closes on a timeout, on a message longer than `max_request_bytes`, or
//!   on a request that gets no reply.
//! - A panic while answering (a decoder bug) drops that one request, with an error logged; it
//!   does not stop the server.
//! - Shutdown: receiving, accepting and loading stop at once; a TCP connection finishes the
//!   answer it is writing and closes; after [`GRACE`] what is left is aborted.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nomos_store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::catalogue::Catalogue;
use crate::message::{self, Transport};
use crate::{loader, DnsConfig, DnsError};

/// How long open TCP connections get to finish after shutdown.
pub const GRACE: Duration = Duration::from_secs(1);
/// Ports tried, with port 0, for one whose UDP and TCP are both free.
const BIND_TRIES: usize = 16;

/// A DNS server with its sockets bound, not yet answering.
#[derive(Debug)]
pub struct DnsServer {
    config: DnsConfig,
    udp: UdpSocket,
    tcp: TcpListener,
    addr: SocketAddr,
}

impl DnsServer {
    /// Checks `config` and binds its address for UDP and TCP. With port 0, both get the same
    /// free port. A taken address is [`DnsError::Bind`], naming it.
    pub async fn bind(config: DnsConfig) -> Result<DnsServer, DnsError> {
        config.validate()?;
        let (udp, tcp) = if config.addr.port() == 0 {
            bind_free_port(config.addr).await?
        } else {
            bind_both(config.addr).await?
        };
        let addr = tcp
            .local_addr()
            .map_err(|e| bind_error(config.addr, "tcp", e))?;
        Ok(DnsServer {
            config,
            udp,
            tcp,
            addr,
        })
    }

    /// The address the server answers on (the real port when port 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers queries from the catalogue in `store` until `shutdown` resolves.
    pub async fn serve(
        self,
        store: Arc<dyn Store>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), DnsError> {
        let (publish, catalogue) = watch::channel(None);
        let (stopping, stop) = watch::channel(false);
        let shared = Arc::new(Shared {
            config: self.config,
            catalogue,
            turns: AtomicUsize::new(0),
        });
        let mut connections = JoinSet::new();
        tracing::info!(addr = %self.addr, "DNS: answering for nomos. over UDP and TCP");
        tokio::select! {
            _ = shutdown => {}
            _ = loader::run(store, publish) => {}
            _ = udp_loop(&self.udp, &shared) => {}
            _ = accept_loop(&self.tcp, &shared, &mut connections, &stop) => {}
        }
        stopping.send_replace(true);
        let drain = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(GRACE, drain).await.is_err() {
            connections.abort_all();
        }
        Ok(())
    }
}

fn bind_error(addr: SocketAddr, transport: &'static str, source: io::Error) -> DnsError {
    DnsError::Bind {
        addr,
        transport,
        source,
    }
}

async fn bind_both(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), DnsError> {
    let udp = UdpSocket::bind(addr)
        .await
        .map_err(|e| bind_error(addr, "udp", e))?;
    let tcp = TcpListener::bind(addr)
        .await
        .map_err(|e| bind_error(addr, "tcp", e))?;
    Ok((udp, tcp))
}

/// A free UDP port whose TCP twin is free too, trying a few.
async fn bind_free_port(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), DnsError> {
    let mut last = io::Error::from(io::ErrorKind::AddrInUse);
    for _ in 0..BIND_TRIES {
        let udp = UdpSocket::bind(addr)
            .await
            .map_err(|e| bind_error(addr, "udp", e))?;
        let at = udp.local_addr().map_err(|e| bind_error(addr, "udp", e))?;
        match TcpListener::bind(at).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = e,
            Err(e) => return Err(bind_error(at, "tcp", e)),
        }
    }
    Err(bind_error(addr, "tcp", last))
}

/// What every socket task reads.
struct Shared {
    config: DnsConfig,
    catalogue: watch::Receiver<Option<Arc<Catalogue>>>,
    /// Counts answers, to turn instance lists.
    turns: AtomicUsize,
}

impl Shared {
    fn respond(&self, request: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let catalogue = self.catalogue.borrow().clone();
        let turn = self.turns.fetch_add(1, Ordering::Relaxed);
        let answer = std::panic::catch_unwind(AssertUnwindSafe(|| {
            message::respond(request, catalogue.as_deref(), &self.config, transport, turn)
        }));
        answer.unwrap_or_else(|_| {
            tracing::error!(
                len = request.len(),
                "DNS: answering a request panicked; dropped it"
            );
            None
        })
    }
}

async fn udp_loop(socket: &UdpSocket, shared: &Shared) {
    // One byte over the limit, so an oversized datagram is seen as such.
    let mut buf = vec![0u8; shared.config.max_request_bytes + 1];
    loop {
        let (len, peer) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(e) => {
                tracing::debug!(error = %e, "DNS: UDP receive failed");
                tokio::task::yield_now().await;
                continue;
            }
        };
        if let Some(reply) = shared.respond(&buf[..len], Transport::Udp) {
            if let Err(e) = socket.send_to(&reply, peer).await {
                tracing::debug!(%peer, error = %e, "DNS: UDP send failed");
            }
        }
    }
}

async fn accept_loop(
    listener: &TcpListener,
    shared: &Arc<Shared>,
    connections: &mut JoinSet<()>,
    stop: &watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(shared.config.max_tcp_connections));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match slots.clone().try_acquire_owned() {
                    Ok(slot) => {
                        connections.spawn(connection(stream, shared.clone(), stop.clone(), slot));
                    }
                    Err(_) => tracing::debug!(%peer, "DNS: too many TCP connections; closed one"),
                },
                Err(e) => {
                    // Out of file descriptors, most likely: wait for some to close.
                    tracing::warn!(error = %e, "DNS: TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Answers one TCP client's queries, one after another, until it is done, too slow or too
/// big, or the server stops.
async fn connection(
    mut stream: TcpStream,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let (timeout, max) = (shared.config.tcp_timeout, shared.config.max_request_bytes);
    loop {
        let request = tokio::select! {
            _ = stop.wait_for(|stopping| *stopping) => return,
            read = tokio::time::timeout(timeout, read_message(&mut stream, max)) => match read {
                Ok(Ok(Some(request))) => request,
                _ => return,
            },
        };
        let Some(reply) = shared.respond(&request, Transport::Tcp) else {
            return;
        };
        let written = tokio::time::timeout(timeout, write_message(&mut stream, &reply)).await;
        if !matches!(written, Ok(Ok(()))) {
            return;
        }
    }
}

/// One length-prefixed message; `None` at the end of the stream or for one over `max` bytes.
async fn read_message(stream: &mut TcpStream, max: usize) -> io::Result<Option<Vec<u8>>> {
    let len = match stream.read_u16().await {
        Ok(len) => usize::from(len),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    };
    if len > max {
        return Ok(None);
    }
    let mut buf = vec![0u8; len];
    stream.read_exact(&mut buf).await?;
    Ok(Some(buf))
}

async fn write_message(stream: &mut TcpStream, message: &[u8]) -> io::Result<()> {
    let len =
        u16::try_from(message.len()).map_err(|_| io::Error::other("answer over 65535 bytes"))?;
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(message);
    stream.write_all(&framed).await?;
    stream.flush().await
}
