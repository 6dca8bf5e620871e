//! No single client can exhaust the store endpoint: an endless header block is cut off, a
//! connection that never sends the HTTP/2 preface is closed after the handshake timeout, and
//! one address's connections past its limit are closed at once, while other clients (another
//! address, or an etcd client already connected) keep being served.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::Client;
use nomos_store::EmbeddedStore;
use nomos_store_server::{ConnLimits, StoreServerConfig};
use support::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Only a guard against a hang: every step finishes far sooner, even on a loaded machine.
const HANG_GUARD: Duration = Duration::from_secs(60);
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

async fn server(limits: ConnLimits) -> (TestServer, SocketAddr) {
    let mut config = StoreServerConfig::new("127.0.0.1:0".parse().unwrap());
    config.limits = limits;
    let store = Arc::new(EmbeddedStore::in_memory());
    let server = TestServer::start_with(config, store).await;
    let addr = server
        .endpoint
        .trim_start_matches("http://")
        .parse()
        .expect("endpoint address");
    (server, addr)
}

/// A client that works: writes and reads a key.
async fn round_trip(client: &mut Client, key: &str) {
    client.put(key, "v", None).await.expect("put");
    let got = client.get(key, None).await.expect("get");
    assert_eq!(got.kvs()[0].value(), b"v");
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

/// Whether the server sent a frame of `kind` among `bytes` (which follow no preface).
fn has_frame(mut bytes: &[u8], kind: u8) -> bool {
    while bytes.len() >= 9 {
        let len =
            (usize::from(bytes[0]) << 16) | (usize::from(bytes[1]) << 8) | usize::from(bytes[2]);
        if bytes[3] == kind {
            return true;
        }
        bytes = &bytes[(9 + len).min(bytes.len())..];
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_header_block_is_cut_off_while_an_etcd_client_keeps_working() {
    let (server, addr) = server(ConnLimits::default()).await;
    let mut client = Client::connect([server.endpoint.as_str()], None)
        .await
        .unwrap();
    round_trip(&mut client, "before").await;

    let mut attacker = TcpStream::connect(addr).await.unwrap();
    let mut start = PREFACE.to_vec();
    start.extend(frame(0x4, 0, 0, &[]));
    start.extend(frame(0x1, 0, 1, &[0x82; 64])); // HEADERS without END_HEADERS
    attacker.write_all(&start).await.unwrap();
    let (mut reader, mut writer) = attacker.into_split();
    let answers = tokio::spawn(async move {
        let mut got = Vec::new();
        let _ = tokio::time::timeout(HANG_GUARD, reader.read_to_end(&mut got)).await;
        got
    });
    let continuation = frame(0x9, 0, 1, &[0x82; 16_384]);
    let mut sent = start.len();
    // 256 MiB if nobody stops it; the cap is 1 MiB, plus what the sockets buffer.
    while sent < 256 * 1024 * 1024 {
        let write = tokio::time::timeout(HANG_GUARD, writer.write_all(&continuation)).await;
        match write.expect("the server stops reading or closes") {
            Ok(()) => sent += continuation.len(),
            Err(_) => break,
        }
    }
    assert!(sent < 64 * 1024 * 1024, "cut off after {sent} bytes");
    let got = answers.await.unwrap();
    // When the reset does not overtake it, the GOAWAY is there to read.
    if got.len() > 9 {
        assert!(has_frame(&got, 0x7), "the server said GOAWAY: {got:?}");
    }

    round_trip(&mut client, "after").await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_sends_the_preface_is_closed_after_the_handshake_timeout() {
    let (server, addr) = server(ConnLimits {
        handshake_timeout: Duration::from_millis(300),
        max_conns_per_client: 100,
    })
    .await;
    let mut idle = TcpStream::connect(addr).await.unwrap();
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(&PREFACE[..10]).await.unwrap();
    let mut client = Client::connect([server.endpoint.as_str()], None)
        .await
        .unwrap();
    round_trip(&mut client, "while-idle").await;

    read_until_closed(&mut idle).await;
    read_until_closed(&mut half).await;
    // The client that sent its preface in time is not affected, however long it then idles.
    tokio::time::sleep(Duration::from_millis(600)).await;
    round_trip(&mut client, "after-timeout").await;
    server.shutdown().await.unwrap();
}

/// A raw HTTP/2 start from `source`: the server answers with its SETTINGS unless refused.
async fn h2_start_from(source: &str, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let mut start = PREFACE.to_vec();
    start.extend(frame(0x4, 0, 0, &[]));
    // A refused connection may be closed before or while this is written.
    let _ = stream.write_all(&start).await;
    stream
}

/// Reads the first frame header the server sends; `None` when it closes first.
async fn first_frame_kind(stream: &mut TcpStream) -> Option<u8> {
    let mut head = [0u8; 9];
    let read = tokio::time::timeout(HANG_GUARD, stream.read_exact(&mut head))
        .await
        .expect("the server answers or closes");
    read.ok().map(|_| head[3])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_past_its_connection_limit_is_refused_while_others_are_served() {
    let limit = 4;
    let (server, addr) = server(ConnLimits {
        handshake_timeout: Duration::ZERO,
        max_conns_per_client: limit,
    })
    .await;
    let mut client = Client::connect([server.endpoint.as_str()], None)
        .await
        .unwrap();
    round_trip(&mut client, "first").await;
    // The etcd client holds one connection; fill the rest of 127.0.0.1's allowance.
    let mut held = Vec::new();
    for _ in 1..limit {
        let mut conn = h2_start_from("127.0.0.1", addr).await;
        assert_eq!(first_frame_kind(&mut conn).await, Some(0x4), "served");
        held.push(conn);
    }
    let mut refused = h2_start_from("127.0.0.1", addr).await;
    assert_eq!(first_frame_kind(&mut refused).await, None, "closed at once");

    let mut other = h2_start_from("127.0.0.2", addr).await;
    assert_eq!(
        first_frame_kind(&mut other).await,
        Some(0x4),
        "another address is served"
    );
    round_trip(&mut client, "still").await;

    // A slot frees up when one of the connections closes.
    drop(held.pop());
    let mut again = None;
    for _ in 0..100 {
        let mut conn = h2_start_from("127.0.0.1", addr).await;
        if first_frame_kind(&mut conn).await == Some(0x4) {
            again = Some(conn);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "a closed connection gives its slot back");
    // Raw connections never acknowledge the server's goodbye PING: close them first, so the
    // graceful shutdown does not wait for them.
    drop((held, refused, other, again));
    server.shutdown().await.unwrap();
}
