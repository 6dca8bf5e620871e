//! `grpc` checks: one call of the standard gRPC health checking protocol,
//! `grpc.health.v1.Health/Check`, naming the check's `grpc_service` (empty: the server as a
//! whole). `SERVING` passes; any other answer, or an error status (`NOT_FOUND` for a service the
//! server does not know), is critical.
//!
//! The protocol's two messages are declared here with prost's derive instead of generated
//! from `health.proto`: they hold one field each. With `grpc_use_tls` the connection is TLS
//! (HTTP/2 by ALPN), set up by [`super::tls`]: verified for `tls_server_name` (else the
//! address's host) unless `tls_skip_verify`.

use std::path::Path;

use tonic::codegen::http::uri::PathAndQuery;
use tonic_prost::prost;

use super::tls::{CheckTls, Roots};
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

/// One health check of `service` at `addr`; over TLS per `tls` when set, verified against
/// `roots`.
pub(super) async fn probe(
    addr: &str,
    service: &str,
    tls: Option<&CheckTls>,
    roots: Roots<'_>,
) -> Result<Probe, String> {
    let channel = connect(addr, tls, roots)
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

/// A channel to `addr`, over TLS (HTTP/2 by ALPN) when `tls` is set.
async fn connect(
    addr: &str,
    tls: Option<&CheckTls>,
    roots: Roots<'_>,
) -> Result<tonic::transport::Channel, String> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?;
    let Some(tls) = tls else {
        return endpoint.connect().await.map_err(|e| e.to_string());
    };
    let (tls, addr) = (tls.clone(), addr.to_string());
    let roots = roots.map(Path::to_path_buf);
    let connector = tower::service_fn(move |_: tonic::codegen::http::Uri| {
        let (tls, addr, roots) = (tls.clone(), addr.clone(), roots.clone());
        async move {
            let stream = super::tls::connect(&addr, &tls, &[b"h2"], roots.as_deref())
                .await
                .map_err(std::io::Error::other)?;
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
            let (verdict, out) = match probe(&addr, service, None, None).await {
                Ok(p) => p,
                Err(e) => (CRITICAL, e),
            };
            assert_eq!(verdict, want, "{service:?}: {out}");
            assert!(out.contains(words), "{service:?}: {out}");
        }
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let gone = closed.local_addr().unwrap().to_string();
        drop(closed);
        let err = probe(&gone, "", None, None).await.unwrap_err();
        assert!(err.contains("gRPC connect"), "{err}");
    }

    fn tls(skip_verify: bool, server_name: &str) -> CheckTls {
        CheckTls {
            skip_verify,
            server_name: server_name.into(),
        }
    }

    #[tokio::test]
    async fn tls_trusts_an_unknown_certificate_only_with_tls_skip_verify() {
        let addr = health_server(true).await;
        let skip = tls(true, "");
        let (verdict, out) = probe(&addr, "up", Some(&skip), None).await.unwrap();
        assert_eq!((verdict, out.contains("SERVING")), (PASSING, true), "{out}");
        let err = probe(&addr, "up", Some(&tls(false, "")), None)
            .await
            .unwrap_err();
        assert!(err.contains("gRPC connect"), "{err}");
        let plain = probe(&addr, "up", None, None).await;
        assert!(plain.is_err(), "plain text to a TLS server: {plain:?}");
    }

    #[tokio::test]
    async fn tls_verifies_the_certificate_for_tls_server_name() {
        // The certificate names 127.0.0.1, not 127.0.0.2, where the server listens.
        let app = axum::Router::new().route(CHECK_PATH, axum::routing::post(health));
        let (addr, ca) = super::super::tests::serve_tls_at(app, &[b"h2"], "127.0.0.2").await;
        let ca = Some(ca.as_path());
        let named = tls(false, "server.global.nomad");
        let (verdict, out) = probe(&addr, "up", Some(&named), ca).await.unwrap();
        assert_eq!((verdict, out.contains("SERVING")), (PASSING, true), "{out}");
        for wrong in ["", "other.global.nomad"] {
            let err = probe(&addr, "up", Some(&tls(false, wrong)), ca)
                .await
                .unwrap_err();
            assert!(err.contains("certificate"), "{wrong:?}: {err}");
        }
    }
}
