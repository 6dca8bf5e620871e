//! The rustls server config of the store endpoint. TLS is terminated by
//! [`nomos_tls::limits::LimitedListener`] rather than inside tonic, so that the HTTP/2 repair
//! filter ([`crate::h2fix`]) sees plaintext frames; a failed or slow handshake (past the
//! handshake timeout) only drops that client.

use std::sync::Arc;

use nomos_tls::rustls::ServerConfig;
use nomos_tls::TlsError;

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
