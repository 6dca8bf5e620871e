//! The server on a loopback port over an in-memory catalogue, asked as a resolver would:
//! A, SRV, tags, namespaces, unknown names, names outside the zone, TCP, and a change to the
//! catalogue.

mod common;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

#[tokio::test]
async fn a_answers_the_healthy_instances_of_the_default_namespace() {
    let s = start(|_| {}).await;
    for name in ["backend.service.nomos.", "backend.service.default.nomos."] {
        let m = udp(s.addr, name, RecordType::A).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name}");
        assert!(m.metadata.authoritative, "{name}");
        // b3 is unhealthy: never answered.
        assert_eq!(
            texts(&m.answers),
            [format!("{name} 10.0.0.1"), format!("{name} 10.0.0.2")],
            "{name}"
        );
        assert!(
            m.answers.iter().all(|r| r.ttl == 5),
            "the default TTL is 5 s"
        );
    }
}

#[tokio::test]
async fn srv_answers_ports_and_node_targets_with_their_addresses() {
    let s = start(|_| {}).await;
    let m = udp(s.addr, "backend.service.default.nomos.", RecordType::SRV).await;
    assert_eq!(
        texts(&m.answers),
        [
            "backend.service.default.nomos. 1 1 8080 n1.node.dc1.nomos.",
            "backend.service.default.nomos. 1 1 8081 n2.node.dc1.nomos.",
        ]
    );
    assert_eq!(
        texts(&m.additionals),
        ["n1.node.dc1.nomos. 10.0.0.1", "n2.node.dc1.nomos. 10.0.0.2"]
    );
    // The target answers A queries itself.
    let m = udp(s.addr, "n2.node.dc1.nomos.", RecordType::A).await;
    assert_eq!(texts(&m.answers), ["n2.node.dc1.nomos. 10.0.0.2"]);
}

#[tokio::test]
async fn tags_and_namespaces_narrow_the_answer() {
    let s = start(|_| {}).await;
    let table = [
        (
            "v1.backend.service.nomos.",
            vec!["v1.backend.service.nomos. 10.0.0.1"],
        ),
        (
            "PRIMARY.backend.service.default.nomos.",
            vec!["PRIMARY.backend.service.default.nomos. 10.0.0.1"],
        ),
        (
            "v2.backend.service.nomos.",
            vec!["v2.backend.service.nomos. 10.0.0.2"],
        ),
        (
            "backend.service.prod.nomos.",
            vec!["backend.service.prod.nomos. 10.1.0.1"],
        ),
    ];
    for (name, want) in table {
        let m = udp(s.addr, name, RecordType::A).await;
        assert_eq!(texts(&m.answers), want, "{name}");
    }
}

#[tokio::test]
async fn unknown_or_unhealthy_names_are_nxdomain_and_other_zones_refused() {
    let s = start(|_| {}).await;
    let table = [
        ("nope.service.nomos.", ResponseCode::NXDomain),
        ("web.service.nomos.", ResponseCode::NXDomain),
        ("v3.backend.service.nomos.", ResponseCode::NXDomain),
        ("backend.service.staging.nomos.", ResponseCode::NXDomain),
        ("example.com.", ResponseCode::Refused),
        ("backend.service.consul.", ResponseCode::Refused),
    ];
    for (name, code) in table {
        let m = udp(s.addr, name, RecordType::A).await;
        assert_eq!(m.metadata.response_code, code, "{name}");
        assert!(m.answers.is_empty(), "{name}");
        if code == ResponseCode::NXDomain {
            assert_eq!(
                m.authorities.len(),
                1,
                "{name}: the SOA for negative caching"
            );
        }
    }
}

#[tokio::test]
async fn tcp_answers_as_udp_does_and_keeps_the_connection_for_more() {
    let s = start(|_| {}).await;
    let m = tcp(s.addr, "backend.service.nomos.", RecordType::SRV).await;
    assert_eq!(m.answers.len(), 2);
    let mut stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    for name in ["backend.service.nomos.", "backend.service.prod.nomos."] {
        let m = tcp_exchange(&mut stream, &query(name, RecordType::A, None))
            .await
            .unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name}");
        assert!(!m.answers.is_empty(), "{name}");
    }
}

#[tokio::test]
async fn a_change_to_the_catalogue_is_answered_after_the_store_changes() {
    let s = start(|_| {}).await;
    let mut b3 = fixtures().remove(2);
    b3.healthy = true;
    let b4 = registration(
        "default",
        "backend",
        "b4",
        ("n5", "10.0.0.5", 8084),
        &[],
        true,
    );
    register(&*s.store, &[b3, b4]).await;
    let seen = eventually(|| async {
        let m = udp(s.addr, "backend.service.nomos.", RecordType::A).await;
        m.answers.len() == 4
    })
    .await;
    assert!(seen, "b3 (now healthy) and b4 never answered");
    // A namespace that did not exist appears too.
    register(
        &*s.store,
        &[registration(
            "staging",
            "api",
            "s1",
            ("n6", "10.2.0.1", 1),
            &[],
            true,
        )],
    )
    .await;
    let seen = eventually(|| async {
        let m = udp(s.addr, "api.service.staging.nomos.", RecordType::A).await;
        m.metadata.response_code == ResponseCode::NoError
    })
    .await;
    assert!(seen, "the new namespace never answered");
}

#[tokio::test]
async fn serve_returns_when_shutdown_resolves() {
    let s = start(|_| {}).await;
    let addr = s.addr;
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(5), s.stop()).await;
    assert!(matches!(stopped, Ok(Ok(()))), "{stopped:?}");
    // The port is free again.
    let again = nomos_dns::DnsServer::bind(nomos_dns::DnsConfig::new(addr)).await;
    assert!(again.is_ok(), "{again:?}");
}
