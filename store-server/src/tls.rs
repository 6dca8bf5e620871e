//! TLS termination with rustls, done here rather than inside tonic so that the HTTP/2 repair
//! filter ([`crate::h2fix`]) sees plaintext frames. Handshakes run concurrently inside the
//! incoming-connection stream (no spawned tasks) and a failed or slow one only drops that client.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::{Stream, StreamExt};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::{rustls, TlsAcceptor};
use tonic::transport::server::TcpIncoming;

use crate::{StoreServerError, StoreServerTls};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn read(path: &std::path::Path) -> Result<Vec<u8>, StoreServerError> {
    std::fs::read(path).map_err(|source| StoreServerError::TlsFile {
        path: path.to_path_buf(),
        source,
    })
}

fn config_err(what: &str, e: impl std::fmt::Display) -> StoreServerError {
    StoreServerError::TlsConfig(format!("{what}: {e}"))
}

/// Builds the acceptor from PEM files: the server's certificate chain and key, and optionally
/// the CA that client certificates must chain to.
pub fn acceptor(tls: &StoreServerTls) -> Result<TlsAcceptor, StoreServerError> {
    let certs = CertificateDer::pem_slice_iter(&read(&tls.cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| config_err(&format!("certificate {}", tls.cert.display()), e))?;
    if certs.is_empty() {
        return Err(config_err(
            &format!("certificate {}", tls.cert.display()),
            "no PEM certificate found",
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&read(&tls.key)?)
        .map_err(|e| config_err(&format!("private key {}", tls.key.display()), e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| config_err("protocol versions", e))?;
    let builder = match &tls.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&read(ca)?) {
                let cert =
                    cert.map_err(|e| config_err(&format!("client CA {}", ca.display()), e))?;
                roots
                    .add(cert)
                    .map_err(|e| config_err(&format!("client CA {}", ca.display()), e))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| config_err("client verifier", e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| config_err("certificate and key", e))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

type Handshake =
    std::pin::Pin<Box<dyn std::future::Future<Output = Option<TlsStream<TcpStream>>> + Send>>;

/// Accepted TCP connections, TLS-terminated; failed handshakes are logged and skipped.
pub fn incoming(
    tcp: TcpIncoming,
    acceptor: TlsAcceptor,
) -> impl Stream<Item = Result<TlsStream<TcpStream>, std::io::Error>> + Send {
    let state = (tcp, acceptor, FuturesUnordered::<Handshake>::new());
    futures::stream::unfold(state, |(mut tcp, acceptor, mut handshakes)| async move {
        loop {
            tokio::select! {
                conn = tcp.next() => match conn {
                    Some(Ok(stream)) => {
                        let acceptor = acceptor.clone();
                        handshakes.push(Box::pin(async move {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                Ok(Ok(tls)) => Some(tls),
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
                    Some(Err(e)) => tracing::debug!(error = %e, "accepting a connection failed"),
                    None => return None,
                },
                Some(done) = handshakes.next(), if !handshakes.is_empty() => {
                    if let Some(tls) = done {
                        return Some((Ok(tls), (tcp, acceptor, handshakes)));
                    }
                }
            }
        }
    })
}
