//! `grpc` checks: one call of the standard gRPC health checking protocol,
//! `grpc.health.v1.Health/Check`, naming the check's `grpc_service` (empty: the server as a
//! whole). `SERVING` passes; any other answer, or an error status (`NOT_FOUND` for a service the
//! server does not know), is critical.
//!
//! The protocol's two messages are declared here with prost's derive instead of generated
//! from `health.proto`: they hold one field each. With `grpc_use_tls` the connection is TLS
//! (HTTP/2 by ALPN), verifying the server against the public web's roots unless
//! `tls_skip_verify`, which accepts any certificate.

use std::sync::Arc;

use tokio_rustls::rustls;
use tonic::codegen::http::uri::PathAndQuery;
use tonic_prost::prost;

use super::{Probe, CRITICAL, PASSING};

/// `grpc.health.v1.HealthCheckRequest`.
#[derive(Clone, PartialEq, prost::Message)]
#[prost(prost_path = "::tonic_prost::prost")]
pub struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    pub service: String,
}

/// `grpc.health.v1.HealthCheckResponse`; `status` is its `ServingStatus` enum.
#[derive(Clone, PartialEq, prost::Message)]
#[prost(prost_path = "::tonic_prost::prost")]
pub struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    pub status: i32,
}

/// The method's path.
pub const CHECK_PATH: &str = "/grpc.health.v1.Health/Check";

/// `ServingStatus`'s names, by number.
pub fn serving_status_name(status: i32) -> &'static str {
    match status {
        0 => "UNKNOWN",
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "an unknown status",
    }
}

/// One health check of `service` at `addr`; `tls` is `Some(skip_verify)` for TLS.
pub(super) async fn probe(addr: &str, service: &str, tls: Option<bool>) -> Result<Probe, String> {
    let channel = connect(addr, tls)
        .await
        .map_err(|e| format!("gRPC connect {addr}: {e}"))?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| format!("gRPC connect {addr}: {e}"))?;
    let req = tonic::Request::new(HealthCheckRequest {
        service: service.to_string(),
    });
    let codec = tonic_prost::ProstCodec::<HealthCheckRequest, HealthCheckResponse>::default();
    let asked = if service.is_empty() {
        format!("gRPC health of {addr}")
    } else {
        format!("gRPC health of {service:?} at {addr}")
    };
    match grpc
        .unary(req, PathAndQuery::from_static(CHECK_PATH), codec)
        .await
    {
        Ok(resp) => {
            let status = resp.into_inner().status;
            let verdict = if status == 1 { PASSING } else { CRITICAL };
            Ok((verdict, format!("{asked}: {}", serving_status_name(status))))
        }
        Err(e) => Err(format!("{asked}: {:?}: {}", e.code(), e.message())),
    }
}

/// A channel to `addr`, over TLS when `tls` is set.
async fn connect(addr: &str, tls: Option<bool>) -> Result<tonic::transport::Channel, String> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?;
    let Some(skip_verify) = tls else {
        return endpoint.connect().await.map_err(|e| e.to_string());
    };
    let config = Arc::new(client_config(skip_verify)?);
    let addr = addr.to_string();
    let connector = tower::service_fn(move |_: tonic::codegen::http::Uri| {
        let (config, addr) = (config.clone(), addr.clone());
        async move {
            let tcp = tokio::net::TcpStream::connect(&addr).await?;
            let host = addr
                .rsplit_once(':')
                .map_or(addr.as_str(), |(h, _)| h)
                .trim_matches(['[', ']']);
            let name = rustls::pki_types::ServerName::try_from(host.to_string())
                .map_err(std::io::Error::other)?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
        }
    });
    endpoint
        .connect_with_connector(connector)
        .await
        .map_err(|e| format!("{e}: {}", source_chain(&e)))
}

/// The causes under an error, joined (tonic's transport error says little on its own).
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push(s.to_string());
        cur = s.source();
    }
    out.join(": ")
}

/// A TLS client config offering HTTP/2: the public web's roots, or any certificate at all.
fn client_config(skip_verify: bool) -> Result<rustls::ClientConfig, String> {
    let mut config = if skip_verify {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        nomos_tls::config::client_config(&Default::default()).map_err(|e| e.to_string())?
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
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

    /// A health service that knows `""` and `up` (serving) and `down` (not serving).
    async fn health(req: axum::extract::Request) -> axum::response::Response {
        let svc = tower::service_fn(|r: tonic::Request<HealthCheckRequest>| async move {
            let status = match r.into_inner().service.as_str() {
                "" | "up" => 1,
                "down" => 2,
                other => return Err(tonic::Status::not_found(format!("no service {other}"))),
            };
            Ok(tonic::Response::new(HealthCheckResponse { status }))
        });
        let codec = tonic_prost::ProstCodec::<HealthCheckResponse, HealthCheckRequest>::default();
        tonic::server::Grpc::new(codec)
            .unary(svc, req)
            .await
            .map(axum::body::Body::new)
    }

    /// A gRPC health server on loopback, over TLS with a certificate of a fresh CA nobody
    /// trusts when `tls`; its address.
    async fn health_server(tls: bool) -> String {
        let app = axum::Router::new().route(CHECK_PATH, axum::routing::post(health));
        if tls {
            return super::super::tests::serve_untrusted_tls(app, &[b"h2"]).await;
        }
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(tcp, app).await });
        addr
    }

    #[tokio::test]
    async fn serving_passes_and_anything_else_is_critical() {
        let addr = health_server(false).await;
        // (service, verdict, words in the output)
        let cases = [
            ("", PASSING, "SERVING"),
            ("up", PASSING, "SERVING"),
            ("down", CRITICAL, "NOT_SERVING"),
            ("nope", CRITICAL, "NotFound"),
        ];
        for (service, want, words) in cases {
            let (verdict, out) = match probe(&addr, service, None).await {
                Ok(p) => p,
                Err(e) => (CRITICAL, e),
            };
            assert_eq!(verdict, want, "{service:?}: {out}");
            assert!(out.contains(words), "{service:?}: {out}");
        }
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let gone = closed.local_addr().unwrap().to_string();
        drop(closed);
        let err = probe(&gone, "", None).await.unwrap_err();
        assert!(err.contains("gRPC connect"), "{err}");
    }

    #[tokio::test]
    async fn tls_trusts_an_unknown_certificate_only_with_tls_skip_verify() {
        let addr = health_server(true).await;
        let (verdict, out) = probe(&addr, "up", Some(true)).await.unwrap();
        assert_eq!((verdict, out.contains("SERVING")), (PASSING, true), "{out}");
        let err = probe(&addr, "up", Some(false)).await.unwrap_err();
        assert!(err.contains("gRPC connect"), "{err}");
        let plain = probe(&addr, "up", None).await;
        assert!(plain.is_err(), "plain text to a TLS server: {plain:?}");
    }
}
