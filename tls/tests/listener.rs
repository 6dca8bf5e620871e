//! The TLS listener: a failed handshake drops only that client and holds up no other.

use std::sync::Arc;
use std::time::Duration;

use axum::serve::Listener;
use nomos_tls::generate::{self, CertRequest, Role};
use nomos_tls::{ClientTls, ServerTls, TlsListener};
use rustls_pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[tokio::test]
async fn a_failed_handshake_does_not_hold_up_one_under_way() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let ca = generate::ca(1).unwrap();
    std::fs::write(path("ca.pem"), &ca.cert_pem).unwrap();
    let server = generate::cert(&ca, &CertRequest::new(Role::Server)).unwrap();
    generate::write_new(&server, &path("server.pem"), &path("server-key.pem")).unwrap();
    let config = nomos_tls::server_config(
        &ServerTls {
            cert_file: path("server.pem"),
            key_file: path("server-key.pem"),
            client_ca: None,
        },
        &[],
    )
    .unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let mut listener = TlsListener::new(tcp, config);
    let (tx, mut accepted) = tokio::sync::mpsc::unbounded_channel();
    let accepting = tokio::spawn(async move {
        loop {
            let (_io, peer) = listener.accept().await;
            let _ = tx.send(peer);
        }
    });

    // A client connects and is slow to start its handshake; meanwhile another one fails its
    // own (plain HTTP on the TLS port), and no further connection comes in.
    let slow = TcpStream::connect(addr).await.unwrap();
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let client = nomos_tls::client_config(&ClientTls {
        ca_file: Some(path("ca.pem")),
        ..ClientTls::default()
    })
    .unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let local = slow.local_addr().unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        connector.connect(ServerName::try_from("localhost").unwrap(), slow),
    )
    .await
    .expect("the slow client's handshake finishes")
    .expect("the handshake succeeds");
    let peer = tokio::time::timeout(Duration::from_secs(5), accepted.recv())
        .await
        .expect("the listener hands over the connection")
        .unwrap();
    assert_eq!(peer, local);
    accepting.abort();
}
