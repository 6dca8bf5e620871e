//! Nomad's `ws_handshake=true` on the exec websocket, for browsers: the token comes in the
//! first frame and is checked before the server asks the node's agent to run anything. A
//! wrong token or one without `alloc-exec` is refused with close code 1008 and the reason,
//! and the agent is never called; a socket that sends no handshake is closed after the
//! timeout; the right token goes on to the agent.

mod acl_support;
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use acl_support::*;
use common::{seed_alloc_on_n1, TestServer};
use futures::{SinkExt, StreamExt};
use nomos_server::nomad::exec_handshake::HANDSHAKE_TIMEOUT;
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

const ALLOC: &str = "bbbb2222-0000";

/// A stand-in for the node's agent that only counts who connects to it.
async fn counting_agent() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    (addr, calls)
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the exec websocket with `ws_handshake=true` and no token header.
async fn open(srv: &TestServer) -> Socket {
    let url = format!(
        "{}/v1/client/allocation/{ALLOC}/exec?task=t&command=%5B%22%2Fbin%2Fsh%22%5D&tty=true&ws_handshake=true",
        srv.base.replace("http://", "ws://")
    );
    let (socket, resp) = tokio_tungstenite::connect_async(url)
        .await
        .expect("the upgrade is answered before the token is known");
    assert_eq!(resp.status().as_u16(), 101);
    socket
}

/// The close frame the server ends with (no data frame may come before it).
async fn close_of(socket: &mut Socket, within: Duration) -> (CloseCode, String) {
    let msg = tokio::time::timeout(within, socket.next())
        .await
        .expect("the server closes in time")
        .expect("a frame")
        .expect("a clean frame");
    match msg {
        Message::Close(Some(frame)) => (frame.code, frame.reason.to_string()),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

async fn handshake(socket: &mut Socket, token: &str) {
    let frame = json!({"version": 1, "auth_token": token}).to_string();
    socket.send(Message::Text(frame.into())).await.unwrap();
}

#[tokio::test]
async fn a_wrong_token_is_refused_before_the_agent_is_asked_to_run_anything() {
    let srv = acl_server().await;
    let root = bootstrap(&srv).await;
    let (agent, calls) = counting_agent().await;
    seed_alloc_on_n1(&srv, &agent, ALLOC, "t", "running").await;
    ns_policy(&srv, &root, "reader", "default", "read").await;
    let reader = token_with(&srv, &root, json!({"Policies": ["reader"]})).await;
    let reader = reader["SecretID"].as_str().unwrap().to_string();

    let cases = [
        (
            "00000000-0000-0000-0000-000000000000",
            "ACL token not found",
        ),
        (reader.as_str(), "Permission denied"),
        ("", "Permission denied"),
    ];
    for (token, want) in cases {
        let mut socket = open(&srv).await;
        handshake(&mut socket, token).await;
        let (code, reason) = close_of(&mut socket, Duration::from_secs(5)).await;
        assert_eq!(code, CloseCode::Policy, "{token:?}: {reason}");
        assert!(reason.contains(want), "{token:?}: {reason}");
    }
    // Something that is not a handshake is refused the same way.
    let mut socket = open(&srv).await;
    let stdin = json!({"stdin": {"data": "aGkK"}}).to_string();
    socket.send(Message::Text(stdin.into())).await.unwrap();
    let (code, reason) = close_of(&mut socket, Duration::from_secs(5)).await;
    assert_eq!(code, CloseCode::Policy);
    assert!(reason.contains("expected the handshake"), "{reason}");
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the agent was called");

    // The right token passes the checks and the server goes on to the agent (a stand-in
    // here, which hangs up: a server-side failure, 1011).
    let mut socket = open(&srv).await;
    handshake(&mut socket, &root).await;
    let (code, reason) = close_of(&mut socket, Duration::from_secs(10)).await;
    assert_eq!(code, CloseCode::Error, "{reason}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    srv.stop().await;
}

#[tokio::test]
async fn a_socket_that_sends_no_handshake_is_closed_after_the_timeout() {
    let srv = acl_server().await;
    bootstrap(&srv).await;
    let (agent, calls) = counting_agent().await;
    seed_alloc_on_n1(&srv, &agent, ALLOC, "t", "running").await;
    let mut socket = open(&srv).await;
    let (code, reason) = close_of(&mut socket, HANDSHAKE_TIMEOUT + Duration::from_secs(5)).await;
    assert_eq!(code, CloseCode::Policy);
    assert!(reason.contains("no handshake frame"), "{reason}");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    srv.stop().await;
}

#[tokio::test]
async fn without_ws_handshake_the_token_still_comes_in_a_header() {
    let srv = acl_server().await;
    bootstrap(&srv).await;
    let (agent, calls) = counting_agent().await;
    seed_alloc_on_n1(&srv, &agent, ALLOC, "t", "running").await;
    let url = format!(
        "{}/v1/client/allocation/{ALLOC}/exec?task=t&command=%5B%22sh%22%5D",
        srv.base.replace("http://", "ws://")
    );
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 403)
        }
        other => panic!("expected 403 before the upgrade, got {other:?}"),
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    srv.stop().await;
}
