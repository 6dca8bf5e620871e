//! Connection limits for every listener (the HTTP API and the store endpoint), after Nomad's
//! agent `limits` block:
//! - a client that has not finished its TLS handshake and sent the start of its first request
//!   (a complete HTTP/1 request head, or the HTTP/2 preface) within the handshake timeout is
//!   disconnected (Nomad's `https_handshake_timeout` / `rpc_handshake_timeout`, 5s);
//! - a client IP address that already holds the most connections allowed has its new ones
//!   closed at once (`http_max_conns_per_client` / `rpc_max_conns_per_client`, 100), while
//!   other addresses are served. Refusals are logged, at most one line per [`LOG_EVERY`].
//!
//! [`LimitedListener`] accepts, counts, terminates TLS (handshakes run concurrently, no task is
//! spawned) and yields [`LimitedConn`]s; it is an [`axum::serve::Listener`], and the store
//! endpoint drives [`LimitedListener::accept`] itself.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Nomad's default `https_handshake_timeout` and `rpc_handshake_timeout`.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Nomad's default `http_max_conns_per_client` and `rpc_max_conns_per_client`.
pub const DEFAULT_MAX_CONNS_PER_CLIENT: usize = 100;
/// At most one log line about refused or timed-out connections per this long.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Which listener a [`LimitedListener`] is: names it, and its settings, in log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// The HTTP API (Nomad's `https_handshake_timeout`, `http_max_conns_per_client`).
    HttpApi,
    /// The store endpoint, Nomos's RPC listener (`rpc_handshake_timeout`,
    /// `rpc_max_conns_per_client`).
    StoreEndpoint,
}

impl ListenerKind {
    fn label(self) -> &'static str {
        match self {
            ListenerKind::HttpApi => "HTTP API",
            ListenerKind::StoreEndpoint => "store endpoint",
        }
    }

    fn timeout_setting(self) -> &'static str {
        match self {
            ListenerKind::HttpApi => "limits.https_handshake_timeout",
            ListenerKind::StoreEndpoint => "limits.rpc_handshake_timeout",
        }
    }

    fn conns_setting(self) -> &'static str {
        match self {
            ListenerKind::HttpApi => "limits.http_max_conns_per_client",
            ListenerKind::StoreEndpoint => "limits.rpc_max_conns_per_client",
        }
    }
}

/// The limits one listener applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// How long a new connection may take to finish its TLS handshake and send the start of
    /// its first request; zero disables the timeout.
    pub handshake_timeout: Duration,
    /// Most connections open at once from one IP address; 0 disables the limit.
    pub max_conns_per_client: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_conns_per_client: DEFAULT_MAX_CONNS_PER_CLIENT,
        }
    }
}

/// Open connections per client address.
#[derive(Default)]
struct ClientCounts {
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl ClientCounts {
    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for one more connection from `ip`, unless it holds `max` already (0: no limit).
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<ClientSlot> {
        let mut open = self.lock();
        let count = open.entry(ip).or_default();
        if max > 0 && *count >= max {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            counts: self.clone(),
            ip,
        })
    }
}

/// One counted connection; the count drops with it.
struct ClientSlot {
    counts: Arc<ClientCounts>,
    ip: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.counts.lock();
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// A log line at most every [`LOG_EVERY`], counting the ones left out.
#[derive(Default)]
struct RateLimitedLog {
    state: Mutex<(Option<Instant>, u64)>,
}

impl RateLimitedLog {
    fn warn(&self, what: std::fmt::Arguments<'_>) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (last, left_out) = &mut *state;
        if last.is_some_and(|at| at.elapsed() < LOG_EVERY) {
            *left_out += 1;
            return;
        }
        *last = Some(Instant::now());
        let skipped = std::mem::take(left_out);
        tracing::warn!(similar_not_logged = skipped, "{what}");
    }
}

/// A socket, plain or TLS-terminated.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

type Handshake = Pin<Box<dyn Future<Output = Option<(LimitedConn, SocketAddr)>> + Send>>;

/// A TCP listener that applies [`ConnLimits`] and, when given a config, terminates TLS.
pub struct LimitedListener {
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
    limits: ConnLimits,
    counts: Arc<ClientCounts>,
    log: Arc<RateLimitedLog>,
    handshakes: FuturesUnordered<Handshake>,
    kind: ListenerKind,
}

impl LimitedListener {
    pub fn new(
        tcp: TcpListener,
        tls: Option<Arc<ServerConfig>>,
        limits: ConnLimits,
        kind: ListenerKind,
    ) -> Self {
        LimitedListener {
            tcp,
            tls: tls.map(TlsAcceptor::from),
            limits,
            counts: Arc::default(),
            log: Arc::default(),
            handshakes: FuturesUnordered::new(),
            kind,
        }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// The next connection within the limits (TLS-terminated when configured).
    pub async fn accept(&mut self) -> (LimitedConn, SocketAddr) {
        loop {
            tokio::select! {
                accepted = self.tcp.accept() => match accepted {
                    Ok((stream, peer)) => {
                        if let Some(ready) = self.admit(stream, peer) {
                            return ready;
                        }
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: wait instead of spinning.
                        tracing::debug!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                // Not `Some(done) = ...`: a failed match would disable the branch.
                done = next_handshake(&mut self.handshakes) => if let Some(done) = done {
                    return done;
                },
            }
        }
    }

    /// Counts a new connection, or closes it when its address is at its limit; a TLS one
    /// starts its handshake.
    fn admit(&mut self, stream: TcpStream, peer: SocketAddr) -> Option<(LimitedConn, SocketAddr)> {
        let ip = peer.ip().to_canonical();
        let max = self.limits.max_conns_per_client;
        let Some(slot) = self.counts.take(ip, max) else {
            self.log.warn(format_args!(
                "{}: closing a connection from {ip}: it already has {max} open, the limit \
                 ({})",
                self.kind.label(),
                self.kind.conns_setting()
            ));
            return None;
        };
        let _ = stream.set_nodelay(true);
        let timeout = self.limits.handshake_timeout;
        let deadline = (!timeout.is_zero()).then(|| Instant::now() + timeout);
        let watch = deadline.map(|at| StartWatch::new(at, timeout, self.log.clone(), self.kind));
        let Some(acceptor) = self.tls.clone() else {
            let conn = LimitedConn::new(Conn::Plain(stream), slot, watch, peer);
            return Some((conn, peer));
        };
        self.handshakes.push(Box::pin(async move {
            let accepting = acceptor.accept(stream);
            let result = match deadline {
                Some(at) => tokio::time::timeout_at(at, accepting).await,
                None => Ok(accepting.await),
            };
            match result {
                Ok(Ok(tls)) => {
                    let conn = LimitedConn::new(Conn::Tls(Box::new(tls)), slot, watch, peer);
                    Some((conn, peer))
                }
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    None
                }
                Err(_) => {
                    tracing::debug!(%peer, ?timeout, "TLS handshake timed out");
                    None
                }
            }
        }));
        None
    }
}

/// The next finished handshake; pending forever when none is under way.
async fn next_handshake(
    handshakes: &mut FuturesUnordered<Handshake>,
) -> Option<(LimitedConn, SocketAddr)> {
    match handshakes.next().await {
        Some(done) => done,
        None => futures::future::pending().await,
    }
}

impl axum::serve::Listener for LimitedListener {
    type Io = LimitedConn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        LimitedListener::accept(self).await
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// Watches a new connection until the end of its first request head (a blank line: the
/// HTTP/2 preface has one too) or its deadline.
struct StartWatch {
    sleep: Pin<Box<Sleep>>,
    timeout: Duration,
    /// 1 after a `\n`, 2 after `\n\r`: one more `\n` ends the head.
    seen: u8,
    log: Arc<RateLimitedLog>,
    kind: ListenerKind,
}

impl StartWatch {
    fn new(at: Instant, timeout: Duration, log: Arc<RateLimitedLog>, kind: ListenerKind) -> Self {
        StartWatch {
            sleep: Box::pin(tokio::time::sleep_until(at)),
            timeout,
            seen: 0,
            log,
            kind,
        }
    }

    /// Whether `bytes` complete the first request head.
    fn scan(&mut self, bytes: &[u8]) -> bool {
        for &b in bytes {
            self.seen = match (self.seen, b) {
                (1 | 2, b'\n') => return true,
                (1, b'\r') => 2,
                (_, b'\n') => 1,
                _ => 0,
            };
        }
        false
    }

    fn expired(&self, peer: SocketAddr) -> io::Error {
        self.log.warn(format_args!(
            "{}: closing the connection from {peer}: no complete request within the handshake \
             timeout of {:?} ({})",
            self.kind.label(),
            self.timeout,
            self.kind.timeout_setting()
        ));
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "no complete request within the handshake timeout of {:?}",
                self.timeout
            ),
        )
    }
}

/// An accepted connection within the limits: it holds its address's slot until dropped, and
/// fails its reads once the handshake timeout passes before a first request head arrived.
pub struct LimitedConn {
    io: Conn,
    _slot: ClientSlot,
    start: Option<StartWatch>,
    peer: SocketAddr,
}

impl LimitedConn {
    fn new(io: Conn, slot: ClientSlot, start: Option<StartWatch>, peer: SocketAddr) -> Self {
        LimitedConn {
            io,
            _slot: slot,
            start,
            peer,
        }
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The socket, plain or TLS (for the peer's certificates).
    pub fn conn(&self) -> &Conn {
        &self.io
    }
}

impl AsyncRead for LimitedConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(watch) = &this.start {
            if watch.sleep.is_elapsed() {
                return Poll::Ready(Err(watch.expired(this.peer)));
            }
        }
        let before = buf.filled().len();
        let read = match &mut this.io {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        };
        let Some(watch) = &mut this.start else {
            return read;
        };
        match read {
            Poll::Ready(Ok(())) if watch.scan(&buf.filled()[before..]) => this.start = None,
            Poll::Pending if watch.sleep.as_mut().poll(cx).is_ready() => {
                return Poll::Ready(Err(watch.expired(this.peer)));
            }
            _ => {}
        }
        read
    }
}

macro_rules! both {
    ($self:ident, $s:ident => $e:expr) => {
        match &mut $self.get_mut().io {
            Conn::Plain($s) => {
                let $s = Pin::new($s);
                $e
            }
            Conn::Tls($s) => {
                let $s = Pin::new($s.as_mut());
                $e
            }
        }
    };
}

impl AsyncWrite for LimitedConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        both!(self, s => s.poll_write(cx, buf))
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        both!(self, s => s.poll_write_vectored(cx, bufs))
    }
    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        both!(self, s => s.poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        both!(self, s => s.poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch() -> StartWatch {
        let at = Instant::now() + Duration::from_secs(60);
        StartWatch::new(
            at,
            Duration::from_secs(60),
            Arc::default(),
            ListenerKind::HttpApi,
        )
    }

    #[tokio::test]
    async fn a_request_head_or_the_http2_preface_ends_the_handshake() {
        for (input, done) in [
            (&b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..], true),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", true),
            (b"GET / HTTP/1.1\nHost: a\n\n", true),
            (b"GET / HTTP/1.1\r\nHost: a\r\n", false),
            (b"\x16\x03\x01\x02\x00", false),
        ] {
            let mut whole = watch();
            assert_eq!(whole.scan(input), done, "{input:?}");
            let mut bytewise = watch();
            let split = input.iter().any(|b| bytewise.scan(&[*b]));
            assert_eq!(split, done, "{input:?} byte by byte");
        }
    }

    #[test]
    fn an_address_at_its_limit_gets_no_slot_until_one_closes() {
        let counts = Arc::new(ClientCounts::default());
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let first = counts.take(a, 2).expect("first");
        let _second = counts.take(a, 2).expect("second");
        assert!(counts.take(a, 2).is_none());
        assert!(
            counts.take(b, 2).is_some(),
            "another address is not affected"
        );
        drop(first);
        assert!(counts.take(a, 2).is_some());
        assert!(counts.take(a, 0).is_some(), "0 means no limit");
    }
}
