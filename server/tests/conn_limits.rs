//! No single client can exhaust the HTTP API: a connection that sends no complete request head
//! within the handshake timeout is closed, and one address's connections past its limit are
//! closed at once while other addresses are served (Nomad's `limits` block).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::TestServer;
use nomos_server::ServerConfig;
use nomos_tls::limits::ConnLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Only a guard against a hang: every step finishes far sooner, even on a loaded machine.
const HANG_GUARD: Duration = Duration::from_secs(60);

async fn server(limits: ConnLimits) -> (TestServer, SocketAddr) {
    let config = ServerConfig {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        limits,
        ..ServerConfig::default()
    };
    let server = TestServer::start_with_config(|s| s, config).await;
    let addr = server.base.trim_start_matches("http://").parse().unwrap();
    (server, addr)
}

/// A request made the usual way works.
async fn works(server: &TestServer) {
    let (status, _) = server.get("/v1/jobs").await;
    assert_eq!(status, 200);
}

/// Reads until the server closes the connection (end of stream or reset); returns the bytes.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(HANG_GUARD, stream.read(&mut buf))
            .await
            .expect("the server closes the connection");
        match read {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_without_a_complete_request_head_is_closed_after_the_handshake_timeout() {
    let (server, addr) = server(ConnLimits {
        handshake_timeout: Duration::from_millis(300),
        max_conns_per_client: 100,
    })
    .await;
    let mut idle = TcpStream::connect(addr).await.unwrap();
    let mut partial = TcpStream::connect(addr).await.unwrap();
    partial
        .write_all(b"GET /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    works(&server).await;
    assert!(read_until_closed(&mut idle).await.is_empty());
    assert!(
        read_until_closed(&mut partial).await.is_empty(),
        "no answer to half a head"
    );
    works(&server).await;
}

/// Sends a request from `source` and returns the first bytes of the answer (empty when the
/// connection is closed without one), keeping the connection open in `keep`.
async fn request_from(source: &str, addr: SocketAddr, keep: &mut Vec<TcpStream>) -> Vec<u8> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let request = format!("GET /v1/jobs HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    // A refused connection may be closed before or while this is written.
    let _ = stream.write_all(request.as_bytes()).await;
    let mut buf = [0u8; 12];
    let read = tokio::time::timeout(HANG_GUARD, stream.read(&mut buf))
        .await
        .expect("the server answers or closes");
    let got = match read {
        Ok(n) => buf[..n].to_vec(),
        Err(_) => Vec::new(),
    };
    keep.push(stream);
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_past_its_connection_limit_is_refused_while_others_are_served() {
    let limit = 3;
    let (server, addr) = server(ConnLimits {
        handshake_timeout: Duration::ZERO,
        max_conns_per_client: limit,
    })
    .await;
    // The test's HTTP client keeps one connection open; the raw ones fill the rest.
    works(&server).await;
    let mut held = Vec::new();
    for _ in 1..limit {
        let answer = request_from("127.0.0.1", addr, &mut held).await;
        assert!(answer.starts_with(b"HTTP/1.1 "), "served: {answer:?}");
    }
    let mut refused = Vec::new();
    let answer = request_from("127.0.0.1", addr, &mut refused).await;
    assert!(answer.is_empty(), "closed at once: {answer:?}");
    let answer = request_from("127.0.0.2", addr, &mut held).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 "),
        "another address: {answer:?}"
    );
    works(&server).await;

    // Closing one of them gives its slot back.
    held.remove(0);
    let mut freed = false;
    for _ in 0..100 {
        let mut scratch = Vec::new();
        if request_from("127.0.0.1", addr, &mut scratch)
            .await
            .starts_with(b"HTTP/1.1 ")
        {
            freed = true;
            held.extend(scratch);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(freed, "a closed connection gives its slot back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_starts_its_tls_handshake_is_closed_while_https_works() {
    use nomos_tls::generate::{self, CertRequest, Role};
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let ca = generate::ca(30).unwrap();
    generate::write_new(&ca, &path("ca.pem"), &path("ca-key.pem")).unwrap();
    let pair = generate::cert(&ca, &CertRequest::new(Role::Server)).unwrap();
    generate::write_new(&pair, &path("server.pem"), &path("server-key.pem")).unwrap();
    let config = ServerConfig {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        tls: Some(nomos_tls::ServerTls {
            cert_file: path("server.pem"),
            key_file: path("server-key.pem"),
            client_ca: None,
        }),
        limits: ConnLimits {
            handshake_timeout: Duration::from_millis(300),
            max_conns_per_client: 100,
        },
        ..ServerConfig::default()
    };
    let server = TestServer::start_with_config(|s| s, config).await;
    let addr: SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01]).await.unwrap(); // the start of a ClientHello

    let tls = nomos_tls::ClientTls {
        ca_file: Some(path("ca.pem")),
        cert_file: None,
        key_file: None,
        peer_name: nomos_tls::PeerName::Url,
    };
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(nomos_tls::client_config(&tls).unwrap())
        .build()
        .unwrap();
    let url = format!("https://{addr}/v1/jobs");
    let status = client.get(&url).send().await.expect("https works").status();
    assert_eq!(status, 200);
    assert!(read_until_closed(&mut silent).await.is_empty());
    assert!(read_until_closed(&mut stalled).await.is_empty());
    let status = client.get(&url).send().await.expect("still works").status();
    assert_eq!(status, 200);
}
