//! nomos-tls: TLS for every Nomos listener and client, with rustls (ring).
//!
//! Layout:
//! - [`pem`]: reading PEM files (certificate chains, private keys, CA bundles) with errors
//!   that name the file and what was wrong with it.
//! - [`config`]: rustls server configs (with or without required client certificates) and
//!   client configs (trusting a CA, presenting a certificate, checking the peer's name or
//!   a fixed role name such as `client.global.nomad`).
//! - [`listener`]: concurrent TLS handshakes ([`listener::Handshakes`]) and an axum listener
//!   over them ([`listener::TlsListener`]); a failed or slow handshake drops only that client.
//! - [`limits`]: Nomad's `limits` for a listener (handshake timeout, connections per client
//!   address) in [`limits::LimitedListener`], used by the HTTP API and the store endpoint.
//! - [`reload`]: listeners' certificates read again on SIGHUP ([`reload::reload_all`]).
//! - [`generate`]: a CA and server, client and CLI certificates, as `nomad tls` makes them
//!   (`nctl tls ca create`, `nctl tls cert create`).

pub mod config;
pub mod generate;
pub mod limits;
pub mod listener;
pub mod pem;
pub mod reload;

use std::path::PathBuf;

pub use config::{client_config, server_config, ClientTls, PeerName, ServerTls};
pub use listener::TlsListener;
pub use tokio_rustls::rustls;

/// What can go wrong setting up TLS. None of these is retryable: they are configuration errors.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A PEM file was read but does not hold what was expected.
    #[error("{}: expected {expected}, found {found}", path.display())]
    BadPem {
        path: PathBuf,
        expected: &'static str,
        found: String,
    },
    /// rustls refused the configuration (a key that does not match the certificate, ...).
    #[error("TLS configuration: {0}")]
    Config(String),
    /// Making a key or certificate failed.
    #[error("generating {what}: {reason}")]
    Generate { what: String, reason: String },
    /// A file `nctl tls` would write exists already.
    #[error("{} already exists; refusing to overwrite it (move it away or pick another -region)", .0.display())]
    Exists(PathBuf),
    /// Writing a generated file failed.
    #[error("cannot write {}: {source}", path.display())]
    WriteFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
