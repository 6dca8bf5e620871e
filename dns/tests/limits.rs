//! Budgets and hostile input against the running server: garbage datagrams, oversized
//! requests, silent and surplus TCP clients, UDP truncation, and a taken address.

mod common;

use std::time::Duration;

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn garbage_datagrams_do_not_stop_the_server() {
    let s = start(|_| {}).await;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut seed: u64 = 0x5eed;
    for len in [0usize, 1, 11, 12, 13, 100, 512, 1500, 9000] {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (seed >> 56) as u8
            })
            .collect();
        socket.send_to(&bytes, s.addr).await.unwrap();
    }
    // A header claiming 65535 questions, and a name of one huge label-length byte.
    socket
        .send_to(&[0, 1, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0], s.addr)
        .await
        .unwrap();
    socket
        .send_to(
            &[0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xff, b'a', b'b'],
            s.addr,
        )
        .await
        .unwrap();
    let m = udp(s.addr, "backend.service.nomos.", RecordType::A).await;
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NoError,
        "still answering"
    );
}

#[tokio::test]
async fn an_oversized_request_is_formerr() {
    let s = start(|c| c.max_request_bytes = 512).await;
    let mut big = query("backend.service.nomos.", RecordType::A, None);
    big.resize(600, 0);
    let reply = udp_raw(s.addr, &big).await.expect("a reply");
    let m = Message::from_vec(&reply).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    // Over TCP the connection is closed without reading it.
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    assert!(tcp_exchange(&mut stream, &big).await.is_err());
}

#[tokio::test]
async fn udp_answers_over_512_bytes_set_tc_and_tcp_carries_them_whole() {
    let s = start(|_| {}).await;
    let many: Vec<_> = (0..60)
        .map(|i| {
            registration(
                "default",
                "big",
                &format!("i{i}"),
                (&format!("n{i}"), &format!("10.3.0.{}", i + 1), 1000),
                &[],
                true,
            )
        })
        .collect();
    register(&*s.store, &many).await;
    let loaded = eventually(|| async {
        !udp(s.addr, "big.service.nomos.", RecordType::A)
            .await
            .answers
            .is_empty()
    })
    .await;
    assert!(loaded);
    let plain = udp_raw(s.addr, &query("big.service.nomos.", RecordType::A, None))
        .await
        .unwrap();
    let m = Message::from_vec(&plain).unwrap();
    assert!(
        plain.len() <= 512 && m.metadata.truncation,
        "{} bytes",
        plain.len()
    );
    let edns = udp_raw(
        s.addr,
        &query("big.service.nomos.", RecordType::A, Some(4096)),
    )
    .await
    .unwrap();
    let m = Message::from_vec(&edns).unwrap();
    assert!(
        !m.metadata.truncation && m.answers.len() == 60,
        "{} bytes",
        edns.len()
    );
    let m = tcp(s.addr, "big.service.nomos.", RecordType::A).await;
    assert!(!m.metadata.truncation && m.answers.len() == 60);
}

#[tokio::test]
async fn max_records_bounds_every_answer() {
    let s = start(|c| c.max_records = 1).await;
    for qtype in [RecordType::A, RecordType::SRV] {
        let m = udp(s.addr, "backend.service.nomos.", qtype).await;
        assert_eq!(m.answers.len(), 1, "{qtype}");
    }
}

#[tokio::test]
async fn a_silent_tcp_client_is_closed_after_the_timeout() {
    let s = start(|c| c.tcp_timeout = Duration::from_millis(200)).await;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    // Half a length prefix, then nothing.
    stream.write_all(&[0]).await.unwrap();
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "closed by the server: {read:?}"
    );
}

#[tokio::test]
async fn tcp_connections_over_the_limit_are_closed_and_the_rest_served() {
    let s = start(|c| c.max_tcp_connections = 2).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(s.addr).await.unwrap();
        // Answered, so the server has taken the connection into a slot.
        tcp_exchange(
            &mut stream,
            &query("backend.service.nomos.", RecordType::A, None),
        )
        .await
        .unwrap();
        held.push(stream);
    }
    let mut third = TcpStream::connect(s.addr).await.unwrap();
    let refused = tcp_exchange(
        &mut third,
        &query("backend.service.nomos.", RecordType::A, None),
    )
    .await;
    assert!(refused.is_err(), "a third connection is closed");
    // UDP is not affected, and a slot comes back when a connection closes.
    assert_eq!(
        udp(s.addr, "backend.service.nomos.", RecordType::A)
            .await
            .answers
            .len(),
        2
    );
    drop(held.pop());
    let served = eventually(|| async {
        let Ok(mut stream) = TcpStream::connect(s.addr).await else {
            return false;
        };
        tcp_exchange(
            &mut stream,
            &query("backend.service.nomos.", RecordType::A, None),
        )
        .await
        .is_ok()
    })
    .await;
    assert!(served, "a freed slot is used again");
}

#[tokio::test]
async fn a_taken_address_is_an_error_naming_it() {
    let s = start(|_| {}).await;
    let err = nomos_dns::DnsServer::bind(nomos_dns::DnsConfig::new(s.addr))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&s.addr.to_string()) && text.contains("cannot serve DNS"),
        "{text}"
    );
    assert!(matches!(err, nomos_dns::DnsError::Bind { .. }), "{err:?}");
}

#[tokio::test]
async fn a_bad_configuration_is_refused_before_binding() {
    let mut config = nomos_dns::DnsConfig::new("127.0.0.1:0".parse().unwrap());
    config.max_records = 0;
    let err = nomos_dns::DnsServer::bind(config).await.unwrap_err();
    assert!(err.to_string().contains("max_records"), "{err}");
}
