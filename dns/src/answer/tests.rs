//! Table tests of the answers: each row a question and what must come back.

use super::*;

fn reg(id: &str, ns: &str, svc: &str, node: &str, addr: &str, port: u16) -> ServiceRegistration {
    ServiceRegistration {
        id: id.into(),
        service_name: svc.into(),
        namespace: ns.into(),
        node: node.into(),
        datacenter: "dc1".into(),
        address: addr.into(),
        port,
        healthy: true,
        ..Default::default()
    }
}

fn tagged(mut r: ServiceRegistration, tags: &[&str]) -> ServiceRegistration {
    r.tags = tags.iter().map(|t| t.to_string()).collect();
    r
}

fn sick(mut r: ServiceRegistration) -> ServiceRegistration {
    r.healthy = false;
    r
}

/// Two namespaces; `web` with tags, an unhealthy instance and an IPv6 one; `db` with two
/// instances on one node; `down` with only unhealthy instances; `multi` on a node whose
/// instances have different addresses; `ext` on a host name.
fn catalogue() -> Catalogue {
    Catalogue::new(
        42,
        [
            tagged(
                reg("w1", "default", "web", "n1", "10.0.0.1", 8080),
                &["v1", "Primary"],
            ),
            tagged(reg("w2", "default", "web", "n2", "10.0.0.2", 8081), &["v2"]),
            sick(reg("w3", "default", "web", "n3", "10.0.0.3", 8082)),
            reg("w6", "default", "web", "n6", "2001:db8::6", 8086),
            reg("p1", "prod", "web", "n9", "10.9.0.1", 9090),
            reg("d1", "default", "db", "n1", "10.0.0.1", 5432),
            reg("d2", "default", "db", "n1", "10.0.0.1", 5433),
            sick(reg("x1", "default", "down", "n1", "10.0.0.1", 1)),
            reg("m1", "default", "multi", "n7", "10.7.0.1", 7001),
            reg("m2", "default", "multi", "n7", "10.7.0.2", 7002),
            reg("e1", "default", "ext", "n8", "db.example.com", 6000),
            reg(
                "h1",
                "default",
                "dotted",
                "host.example.com",
                "10.5.0.1",
                5000,
            ),
        ],
    )
}

const OPTS: AnswerOptions = AnswerOptions {
    ttl: 5,
    max_records: 64,
};

fn ask(catalogue: &Catalogue, name: &str, qtype: RecordType, opts: &AnswerOptions) -> Answer {
    let q = Query::query(Name::from_ascii(name).expect("test name"), qtype);
    answer(&q, catalogue, opts, 0)
}

/// One row: the name, the type, the code, the answers and the additional records.
type Row = (
    &'static str,
    RecordType,
    ResponseCode,
    Vec<&'static str>,
    Vec<&'static str>,
);

fn texts(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| format!("{} {}", r.name, r.data))
        .collect()
}

#[test]
fn questions_get_these_answers() {
    use RecordType::*;
    let nx = ResponseCode::NXDomain;
    let ok = ResponseCode::NoError;
    #[rustfmt::skip]
    let table: Vec<Row> = vec![
        // Healthy instances only; the unhealthy w3 never shows.
        ("web.service.nomos.", A, ok, vec!["web.service.nomos. 10.0.0.1", "web.service.nomos. 10.0.0.2"], vec![]),
        ("web.service.default.nomos.", A, ok, vec!["web.service.default.nomos. 10.0.0.1", "web.service.default.nomos. 10.0.0.2"], vec![]),
        // The family decides: AAAA only the IPv6 instance, ANY both.
        ("web.service.nomos.", AAAA, ok, vec!["web.service.nomos. 2001:db8::6"], vec![]),
        ("web.service.nomos.", ANY, ok, vec!["web.service.nomos. 10.0.0.1", "web.service.nomos. 10.0.0.2", "web.service.nomos. 2001:db8::6"], vec![]),
        // Tags, case-insensitively.
        ("v1.web.service.nomos.", A, ok, vec!["v1.web.service.nomos. 10.0.0.1"], vec![]),
        ("primary.web.service.default.nomos.", A, ok, vec!["primary.web.service.default.nomos. 10.0.0.1"], vec![]),
        ("v9.web.service.nomos.", A, nx, vec![], vec![]),
        // Another namespace.
        ("web.service.prod.nomos.", A, ok, vec!["web.service.prod.nomos. 10.9.0.1"], vec![]),
        ("db.service.prod.nomos.", A, nx, vec![], vec![]),
        // The question's spelling is kept in the answer.
        ("WEB.Service.Prod.nomos.", A, ok, vec!["WEB.Service.Prod.nomos. 10.9.0.1"], vec![]),
        // SRV: the node's name when it has one address, its A record beside.
        ("web.service.prod.nomos.", SRV, ok, vec!["web.service.prod.nomos. 1 1 9090 n9.node.dc1.nomos."], vec!["n9.node.dc1.nomos. 10.9.0.1"]),
        ("db.service.nomos.", SRV, ok,
            vec!["db.service.nomos. 1 1 5432 n1.node.dc1.nomos.", "db.service.nomos. 1 1 5433 n1.node.dc1.nomos."],
            vec!["n1.node.dc1.nomos. 10.0.0.1"]),
        ("v2.web.service.nomos.", SRV, ok, vec!["v2.web.service.nomos. 1 1 8081 n2.node.dc1.nomos."], vec!["n2.node.dc1.nomos. 10.0.0.2"]),
        // RFC 2782's form, as HAProxy and nginx ask.
        ("_web._tcp.service.prod.nomos.", SRV, ok, vec!["_web._tcp.service.prod.nomos. 1 1 9090 n9.node.dc1.nomos."], vec!["n9.node.dc1.nomos. 10.9.0.1"]),
        ("_web._v2.service.nomos.", SRV, ok, vec!["_web._v2.service.nomos. 1 1 8081 n2.node.dc1.nomos."], vec!["n2.node.dc1.nomos. 10.0.0.2"]),
        // A node with several addresses: one .addr. name per address.
        ("multi.service.nomos.", SRV, ok,
            vec!["multi.service.nomos. 1 1 7001 0a070001.addr.dc1.nomos.", "multi.service.nomos. 1 1 7002 0a070002.addr.dc1.nomos."],
            vec!["0a070001.addr.dc1.nomos. 10.7.0.1", "0a070002.addr.dc1.nomos. 10.7.0.2"]),
        // A node name that is no label, a host-name address.
        ("dotted.service.nomos.", SRV, ok, vec!["dotted.service.nomos. 1 1 5000 0a050001.addr.dc1.nomos."], vec!["0a050001.addr.dc1.nomos. 10.5.0.1"]),
        ("ext.service.nomos.", SRV, ok, vec!["ext.service.nomos. 1 1 6000 db.example.com."], vec![]),
        ("ext.service.nomos.", A, ok, vec![], vec![]),
        // Nodes and .addr. names answer A from the catalogue.
        ("n1.node.dc1.nomos.", A, ok, vec!["n1.node.dc1.nomos. 10.0.0.1"], vec![]),
        ("N1.node.nomos.", A, ok, vec!["N1.node.nomos. 10.0.0.1"], vec![]),
        ("n1.node.dc2.nomos.", A, nx, vec![], vec![]),
        ("n3.node.dc1.nomos.", A, nx, vec![], vec![]),
        ("n1.node.dc1.nomos.", AAAA, ok, vec![], vec![]),
        ("0a070002.addr.dc1.nomos.", A, ok, vec!["0a070002.addr.dc1.nomos. 10.7.0.2"], vec![]),
        // Unknown, all unhealthy, other types, the apex.
        ("nope.service.nomos.", A, nx, vec![], vec![]),
        ("down.service.nomos.", A, nx, vec![], vec![]),
        ("down.service.nomos.", SRV, nx, vec![], vec![]),
        ("web.service.nomos.", TXT, ok, vec![], vec![]),
        ("something.nomos.", A, nx, vec![], vec![]),
        ("nomos.", SOA, ok, vec!["nomos. ns.nomos. hostmaster.nomos. 42 3600 600 86400 5"], vec![]),
        ("nomos.", A, ok, vec![], vec![]),
    ];
    let c = catalogue();
    for (name, qtype, code, answers, additionals) in table {
        let got = ask(&c, name, qtype, &OPTS);
        let what = format!("{name} {qtype}");
        assert_eq!(got.code, code, "{what}");
        assert!(got.authoritative, "{what}");
        assert_eq!(texts(&got.answers), answers, "{what}");
        assert_eq!(texts(&got.additionals), additionals, "{what}");
        assert!(got.answers.iter().all(|r| r.ttl == 5), "{what}");
        // Every empty answer carries the SOA for negative caching.
        assert_eq!(got.answers.is_empty(), got.authorities.len() == 1, "{what}");
    }
}

#[test]
fn names_outside_the_zone_are_refused() {
    let c = catalogue();
    for name in ["example.com.", "web.service.consul.", "."] {
        let got = ask(&c, name, RecordType::A, &OPTS);
        assert_eq!(got.code, ResponseCode::Refused, "{name}");
        assert!(
            got.answers.is_empty() && got.authorities.is_empty(),
            "{name}"
        );
    }
}

#[test]
fn answers_hold_at_most_max_records() {
    let many: Vec<ServiceRegistration> = (0..200)
        .map(|i| {
            reg(
                &format!("i{i:03}"),
                "default",
                "big",
                &format!("n{i}"),
                &format!("10.1.{}.{}", i / 250, i % 250),
                1000 + i,
            )
        })
        .collect();
    let c = Catalogue::new(1, many);
    let opts = AnswerOptions {
        ttl: 0,
        max_records: 10,
    };
    for qtype in [RecordType::A, RecordType::SRV, RecordType::ANY] {
        let got = ask(&c, "big.service.nomos.", qtype, &opts);
        assert_eq!(got.answers.len(), 10, "{qtype}");
        assert!(got.additionals.len() <= 10, "{qtype}");
        assert!(got.answers.iter().all(|r| r.ttl == 0), "{qtype}");
    }
}

#[test]
fn rotating_spreads_the_first_answer_over_the_instances() {
    let c = catalogue();
    let q = Query::query(
        Name::from_ascii("web.service.nomos.").unwrap(),
        RecordType::A,
    );
    let firsts: Vec<String> = (0..3)
        .map(|i| answer(&q, &c, &OPTS, i).answers[0].data.to_string())
        .collect();
    // Three instances (two IPv4, one IPv6): each turn starts with another one.
    assert_eq!(firsts, ["10.0.0.1", "10.0.0.2", "10.0.0.1"]);
    let q = Query::query(
        Name::from_ascii("db.service.nomos.").unwrap(),
        RecordType::SRV,
    );
    let first = |i| answer(&q, &c, &OPTS, i).answers[0].data.to_string();
    assert_ne!(first(0), first(1));
}

#[test]
fn the_soa_serial_is_the_catalogue_revision() {
    let got = ask(
        &Catalogue::new(9, []),
        "x.service.nomos.",
        RecordType::A,
        &OPTS,
    );
    assert_eq!(got.code, ResponseCode::NXDomain);
    assert_eq!(
        got.authorities[0].data.to_string(),
        "ns.nomos. hostmaster.nomos. 9 3600 600 86400 5"
    );
}
