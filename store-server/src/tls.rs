//! TLS termination with rustls, done here rather than inside tonic so that the HTTP/2 repair
//! filter ([`crate::h2fix`]) sees plaintext frames. The config and the concurrent handshakes
//! are [`nomos_tls`]'s; a failed or slow handshake only drops that client.

use std::sync::Arc;

use futures::{Stream, StreamExt};
use nomos_tls::listener::Handshakes;
use nomos_tls::rustls::ServerConfig;
use nomos_tls::TlsError;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tonic::transport::server::TcpIncoming;

use crate::{StoreServerError, StoreServerTls};

/// The server config from PEM files: the server's certificate chain and key, and optionally
/// the CA that client certificates must chain to. Speaks HTTP/2 only (gRPC).
pub fn server_config(tls: &StoreServerTls) -> Result<Arc<ServerConfig>, StoreServerError> {
    let files = nomos_tls::ServerTls {
        cert_file: tls.cert.clone(),
        key_file: tls.key.clone(),
        client_ca: tls.client_ca.clone(),
    };
    nomos_tls::server_config(&files, &[b"h2"]).map_err(|e| match e {
        TlsError::ReadFile { path, source } => StoreServerError::TlsFile { path, source },
        TlsError::Config(msg) => StoreServerError::TlsConfig(msg),
        other => StoreServerError::TlsConfig(other.to_string()),
    })
}

/// Accepted TCP connections, TLS-terminated; failed handshakes are logged and skipped.
pub fn incoming(
    tcp: TcpIncoming,
    config: Arc<ServerConfig>,
) -> impl Stream<Item = Result<TlsStream<TcpStream>, std::io::Error>> + Send {
    let state = (tcp, Handshakes::<TcpStream>::new(config));
    futures::stream::unfold(state, |(mut tcp, mut handshakes)| async move {
        loop {
            tokio::select! {
                conn = tcp.next() => match conn {
                    Some(Ok(stream)) => handshakes.push(stream, ()),
                    Some(Err(e)) => tracing::debug!(error = %e, "accepting a connection failed"),
                    None => return None,
                },
                done = handshakes.next_done() => if let Some((tls, ())) = done {
                    return Some((Ok(tls), (tcp, handshakes)));
                },
            }
        }
    })
}
