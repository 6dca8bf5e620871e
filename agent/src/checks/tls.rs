//! TLS for `https` and `grpc` checks: one handshake to the check's address, verifying the
//! server's certificate for `tls_server_name` (else the address's host), which is also the
//! name offered by SNI, or accepting any certificate with `tls_skip_verify`.
//!
//! Certificates are verified against the public web's roots; [`connect`] takes another CA so
//! tests can run a server of their own.

use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;

/// How an `https` or `grpc` check speaks TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckTls {
    /// Accept any certificate (`tls_skip_verify`).
    pub skip_verify: bool,
    /// The name to verify the certificate for and to send by SNI (`tls_server_name`); empty:
    /// the host of the check's address.
    pub server_name: String,
}

/// The CA certificates to verify against: `None` for the public web's roots.
pub(super) type Roots<'a> = Option<&'a Path>;

/// The name a handshake with `addr` (`host:port`, `[v6]:port`) verifies and sends.
pub(super) fn server_name(
    addr: &str,
    tls: &CheckTls,
) -> Result<rustls::pki_types::ServerName<'static>, String> {
    let name = if tls.server_name.is_empty() {
        addr.rsplit_once(':')
            .map_or(addr, |(h, _)| h)
            .trim_matches(['[', ']'])
    } else {
        tls.server_name.as_str()
    };
    rustls::pki_types::ServerName::try_from(name.to_string())
        .map_err(|e| format!("TLS server name {name:?}: {e}"))
}

/// A TLS connection to `addr` offering `alpn`, per `tls`, verified against `roots`.
pub(super) async fn connect(
    addr: &str,
    tls: &CheckTls,
    alpn: &[&[u8]],
    roots: Roots<'_>,
) -> Result<TlsStream<TcpStream>, String> {
    let name = server_name(addr, tls)?;
    let config = Arc::new(client_config(tls.skip_verify, alpn, roots)?);
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake with {addr}: {e}"))
}

/// A TLS client config offering `alpn`: `roots` (the public web's when `None`), or any
/// certificate at all.
fn client_config(
    skip_verify: bool,
    alpn: &[&[u8]],
    roots: Roots<'_>,
) -> Result<rustls::ClientConfig, String> {
    let mut config = if skip_verify {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let trust = nomos_tls::ClientTls {
            ca_file: roots.map(Path::to_path_buf),
            ..Default::default()
        };
        nomos_tls::config::client_config(&trust).map_err(|e| e.to_string())?
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Accepts any server certificate (`tls_skip_verify`); handshake signatures are still checked,
/// so the peer holds the key of the certificate it showed.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_name_is_tls_server_name_else_the_addresss_host() {
        let tls = |name: &str| CheckTls {
            skip_verify: false,
            server_name: name.into(),
        };
        let shown =
            |addr: &str, name: &str| server_name(addr, &tls(name)).map(|n| n.to_str().into_owned());
        // (address, tls_server_name, name verified)
        let cases = [
            ("10.0.0.1:443", "", Ok("10.0.0.1".to_string())),
            ("[::1]:443", "", Ok("::1".to_string())),
            (
                "10.0.0.1:443",
                "api.internal",
                Ok("api.internal".to_string()),
            ),
            (
                "[::1]:443",
                "server.global.nomad",
                Ok("server.global.nomad".to_string()),
            ),
        ];
        for (addr, name, want) in cases {
            assert_eq!(shown(addr, name), want, "{addr} {name:?}");
        }
        let bad = shown("10.0.0.1:443", "not a name!").unwrap_err();
        assert!(bad.contains("TLS server name \"not a name!\""), "{bad}");
    }
}
