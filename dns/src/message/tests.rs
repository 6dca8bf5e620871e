//! Requests as bytes, responses decoded: budgets, EDNS, truncation, and a property that no
//! input makes `respond` panic or answer with something that does not decode.

use std::net::SocketAddr;

use hickory_proto::op::{MessageType, Query};
use hickory_proto::rr::{Name, RecordType};
use nomos_api::service::ServiceRegistration;
use proptest::prelude::*;

use super::*;

fn config() -> DnsConfig {
    DnsConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)))
}

fn reg(i: usize, svc: &str) -> ServiceRegistration {
    ServiceRegistration {
        id: format!("{svc}-{i:03}"),
        service_name: svc.into(),
        namespace: "default".into(),
        node: format!("node{i}"),
        datacenter: "dc1".into(),
        address: format!("10.0.{}.{}", i / 200, i % 200 + 1),
        port: 8000 + i as u16,
        healthy: true,
        ..Default::default()
    }
}

fn catalogue() -> Catalogue {
    let big = (0..40).map(|i| reg(i, "big"));
    let srv = (0..10).map(|i| reg(i, "srv"));
    Catalogue::new(3, big.chain(srv).chain([reg(0, "web")]))
}

fn query_with(name: &str, qtype: RecordType, edns: Option<Edns>) -> Vec<u8> {
    let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m.edns = edns;
    m.to_vec().unwrap()
}

fn query(name: &str, qtype: RecordType) -> Vec<u8> {
    query_with(name, qtype, None)
}

fn edns(max_payload: u16) -> Option<Edns> {
    let mut e = Edns::new();
    e.set_max_payload(max_payload);
    Some(e)
}

fn ask(request: &[u8], transport: Transport) -> (Message, usize) {
    let c = catalogue();
    let bytes = respond(request, Some(&c), &config(), transport, 0).expect("a reply");
    (
        Message::from_vec(&bytes).expect("the reply decodes"),
        bytes.len(),
    )
}

#[test]
fn a_query_gets_its_id_flags_question_and_answer_back() {
    let (m, _) = ask(&query("web.service.nomos.", RecordType::A), Transport::Udp);
    assert_eq!(m.metadata.id, 0x1234);
    assert_eq!(m.metadata.message_type, MessageType::Response);
    assert!(m.metadata.authoritative && m.metadata.recursion_desired);
    assert!(!m.metadata.truncation);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.queries[0].name().to_ascii(), "web.service.nomos.");
    assert_eq!(m.answers.len(), 1);
    assert!(m.edns.is_none(), "no EDNS in, none out");
}

#[test]
fn malformed_or_unsupported_requests_get_these_codes() {
    let good = query("web.service.nomos.", RecordType::A);
    let mut two_questions = good.clone();
    two_questions[5] = 2;
    let mut update = good.clone();
    update[2] |= 5 << 3;
    let mut with_answer = good.clone();
    with_answer[7] = 1;
    let mut cut = good.clone();
    cut.truncate(20);
    let mut chaos = good.clone();
    let n = chaos.len();
    chaos[n - 1] = 3; // class CH
    let mut oversized = good.clone();
    oversized.resize(config().max_request_bytes + 1, 0);
    let mut v1 = Edns::new();
    v1.set_version(1);
    let table: Vec<(&str, Vec<u8>, ResponseCode)> = vec![
        ("two questions", two_questions, ResponseCode::FormErr),
        ("an UPDATE", update, ResponseCode::NotImp),
        ("an answer record", with_answer, ResponseCode::FormErr),
        ("cut short", cut, ResponseCode::FormErr),
        ("over max_request_bytes", oversized, ResponseCode::FormErr),
        ("class CH", chaos, ResponseCode::Refused),
        (
            "EDNS version 1",
            query_with("web.service.nomos.", RecordType::A, Some(v1)),
            ResponseCode::BADVERS,
        ),
        (
            "outside the zone",
            query("example.com.", RecordType::A),
            ResponseCode::Refused,
        ),
        (
            "unknown service",
            query("nope.service.nomos.", RecordType::A),
            ResponseCode::NXDomain,
        ),
    ];
    for (what, request, code) in table {
        let (m, _) = ask(&request, Transport::Udp);
        // BADVERS shares its number, 16, with BADSIG, which the decoder picks.
        assert_eq!(
            u16::from(m.metadata.response_code),
            u16::from(code),
            "{what}"
        );
        assert_eq!(m.metadata.id, 0x1234, "{what}");
        assert!(m.answers.is_empty(), "{what}");
    }
}

#[test]
fn responses_short_packets_and_garbage_headers_get_no_reply() {
    let c = catalogue();
    let mut response = query("web.service.nomos.", RecordType::A);
    response[2] |= 0x80;
    for request in [response, vec![], vec![0; 11]] {
        assert!(respond(&request, Some(&c), &config(), Transport::Udp, 0).is_none());
    }
}

#[test]
fn a_question_before_the_first_load_is_servfail() {
    let bytes = respond(
        &query("web.service.nomos.", RecordType::A),
        None,
        &config(),
        Transport::Udp,
        0,
    )
    .unwrap();
    let m = Message::from_vec(&bytes).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
}

#[test]
fn udp_answers_over_512_bytes_are_truncated_unless_edns_offers_more() {
    let plain = query("big.service.nomos.", RecordType::A);
    let (tcp, tcp_len) = ask(&plain, Transport::Tcp);
    assert!(tcp_len > 512 && tcp.answers.len() == 40 && !tcp.metadata.truncation);
    let (udp, udp_len) = ask(&plain, Transport::Udp);
    assert!(udp.metadata.truncation, "TC set");
    assert!(udp_len <= 512, "{udp_len}");
    assert!(
        !udp.answers.is_empty() && udp.answers.len() < 40,
        "{}",
        udp.answers.len()
    );
    // One more answer would not have fitted.
    let (edns_m, edns_len) = ask(
        &query_with("big.service.nomos.", RecordType::A, edns(4096)),
        Transport::Udp,
    );
    assert!(
        !edns_m.metadata.truncation && edns_m.answers.len() == 40,
        "{edns_len}"
    );
    assert_eq!(
        edns_m.edns.map(|e| e.max_payload()),
        Some(1232),
        "our ceiling is advertised"
    );
    // EDNS asking for less than 512 still gets 512.
    let (small, small_len) = ask(
        &query_with("big.service.nomos.", RecordType::A, edns(100)),
        Transport::Udp,
    );
    assert!(
        small.metadata.truncation && small_len <= 512 && small_len > 400,
        "{small_len}"
    );
}

#[test]
fn the_additional_section_goes_before_any_answer_and_without_tc() {
    let plain = query("srv.service.nomos.", RecordType::SRV);
    let (tcp, tcp_len) = ask(&plain, Transport::Tcp);
    assert_eq!((tcp.answers.len(), tcp.additionals.len()), (10, 10));
    assert!(
        tcp_len > 512,
        "the test needs an answer over 512 bytes: {tcp_len}"
    );
    let (udp, udp_len) = ask(&plain, Transport::Udp);
    assert!(udp_len <= 512);
    assert_eq!((udp.answers.len(), udp.additionals.len()), (10, 0));
    assert!(!udp.metadata.truncation);
}

#[test]
fn the_longest_name_and_a_name_at_label_limits_are_answered() {
    let label = "a".repeat(63);
    let long = format!("{label}.{label}.{label}.{}.nomos.", "b".repeat(55));
    assert!(Name::from_ascii(&long).unwrap().len() <= 255);
    let (m, _) = ask(&query(&long, RecordType::A), Transport::Udp);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let (m, _) = ask(
        &query(&format!("{label}.service.nomos."), RecordType::SRV),
        Transport::Udp,
    );
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Any bytes at all: no panic, and a reply, if any, decodes as a response to that id.
    #[test]
    fn random_bytes_never_panic_and_any_reply_decodes(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
        let c = catalogue();
        for transport in [Transport::Udp, Transport::Tcp] {
            if let Some(reply) = respond(&bytes, Some(&c), &config(), transport, 7) {
                let m = Message::from_vec(&reply).expect("reply decodes");
                prop_assert_eq!(m.metadata.message_type, MessageType::Response);
                prop_assert_eq!(m.metadata.id, u16::from_be_bytes([bytes[0], bytes[1]]));
                if transport == Transport::Udp {
                    prop_assert!(reply.len() <= 1232);
                }
            }
        }
    }

    /// A valid query header followed by random bytes: the decoder sees the hostile part.
    #[test]
    fn a_good_header_with_a_random_body_never_panics(body in proptest::collection::vec(any::<u8>(), 0..600), qtype in any::<u16>()) {
        let c = catalogue();
        let mut request = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
        request.extend_from_slice(&body);
        request.extend_from_slice(&qtype.to_be_bytes());
        let reply = respond(&request, Some(&c), &config(), Transport::Udp, 0).expect("a query gets a reply");
        prop_assert!(Message::from_vec(&reply).is_ok());
    }

    /// Random labels (any bytes) under the zone, any type: a reply that fits 512 bytes over
    /// UDP, and never REFUSED.
    #[test]
    fn random_names_in_the_zone_get_replies_that_fit(
        labels in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..64), 0..4),
        qtype in any::<u16>(),
    ) {
        let c = catalogue();
        let name = Name::from_labels(labels.iter().map(Vec::as_slice).chain([&b"nomos"[..]]));
        prop_assume!(name.is_ok());
        let mut m = Message::new(7, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(name.unwrap(), RecordType::from(qtype)));
        let reply = respond(&m.to_vec().unwrap(), Some(&c), &config(), Transport::Udp, 0).expect("a reply");
        prop_assert!(reply.len() <= 512);
        let m = Message::from_vec(&reply).expect("decodes");
        prop_assert!(m.metadata.response_code != ResponseCode::Refused);
    }
}
