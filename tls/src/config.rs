//! rustls configurations built from PEM files: what a listener serves with ([`server_config`])
//! and what a client connects with ([`client_config`]).

use std::path::PathBuf;
use std::sync::Arc;

use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::crypto::{ring, CryptoProvider};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{
    self, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme,
};

use crate::reload::ReloadingCert;
use crate::{pem, TlsError};

/// A listener's certificate, and the CA its clients must present a certificate of (mutual
/// TLS) when `client_ca` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// Which name a client checks in the certificate of the server it connects to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PeerName {
    /// The host of the URL (what browsers and curl do).
    #[default]
    Url,
    /// This name whatever the URL says, e.g. `client.global.nomad` for agents reached at an IP
    /// address (Nomad's `verify_server_hostname`).
    Fixed(String),
    /// Only that the certificate chains to the CA, whatever names it holds.
    ChainOnly,
}

/// How a client connects: the CA it trusts (the public web's roots when `None`), the
/// certificate it presents (both files or neither) and the name it checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub peer_name: PeerName,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

fn config_err(what: &str, e: impl std::fmt::Display) -> TlsError {
    TlsError::Config(format!("{what}: {e}"))
}

/// A server config serving `tls.cert_file` with `tls.key_file` (read again by
/// [`crate::reload::reload_all`]), requiring a client certificate signed by `tls.client_ca`
/// when set, offering `alpn` protocols.
pub fn server_config(tls: &ServerTls, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| config_err("protocol versions", e))?;
    let builder = match &tls.client_ca {
        Some(ca) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(pem::roots(ca)?), provider())
                    .build()
                    .map_err(|e| config_err("client certificate verifier", e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    // The pair is served through a resolver that SIGHUP reloads (crate::reload).
    let resolver = ReloadingCert::open(tls.cert_file.clone(), tls.key_file.clone())?;
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A client config per `tls` (see [`ClientTls`]).
pub fn client_config(tls: &ClientTls) -> Result<ClientConfig, TlsError> {
    let roots = match &tls.ca_file {
        Some(ca) => pem::roots(ca)?,
        None => RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        },
    };
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| config_err("server certificate verifier", e))?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| config_err("protocol versions", e))?;
    let builder = match &tls.peer_name {
        PeerName::Url => builder.with_webpki_verifier(webpki),
        name => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NameOverride {
                inner: webpki,
                name: match name {
                    PeerName::Fixed(n) => Some(
                        ServerName::try_from(n.clone())
                            .map_err(|e| config_err(&format!("server name {n:?}"), e))?,
                    ),
                    _ => None,
                },
            })),
    };
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(pem::certs(cert)?, pem::private_key(key)?)
            .map_err(|e| {
                config_err(
                    &format!(
                        "client certificate {} with key {}",
                        cert.display(),
                        key.display()
                    ),
                    e,
                )
            }),
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(_), None) => Err(TlsError::Config(
            "a client certificate was given without its key".into(),
        )),
        (None, Some(_)) => Err(TlsError::Config(
            "a client key was given without its certificate".into(),
        )),
    }
}

/// The CA check of webpki with another name than the URL's: a fixed one, or none at all.
#[derive(Debug)]
struct NameOverride {
    inner: Arc<WebPkiServerVerifier>,
    /// `None`: any name (the chain is still verified).
    name: Option<ServerName<'static>>,
}

impl ServerCertVerifier for NameOverride {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let name = self.name.as_ref().unwrap_or(server_name);
        let verified =
            self.inner
                .verify_server_cert(end_entity, intermediates, name, ocsp_response, now);
        match verified {
            // webpki checks the name only after the chain, so this error means a good chain.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if self.name.is_none() => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
