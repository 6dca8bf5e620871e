//! Query names: which part of the catalogue a name under `nomos.` asks for ([`parse`]), and the
//! names this server makes up for SRV targets ([`node_name`], [`addr_name`]).
//!
//! Forms, matched case-insensitively on the labels before `nomos.`, first match wins:
//!
//! | labels                         | meaning                                          |
//! |--------------------------------|--------------------------------------------------|
//! | (none)                         | the zone's apex                                  |
//! | `<svc>.service`                | service `<svc>` in namespace `default`           |
//! | `<svc>.service.<ns>`           | service `<svc>` in namespace `<ns>`              |
//! | `<tag>.<svc>.service`          | its instances tagged `<tag>`, namespace `default` |
//! | `<tag>.<svc>.service.<ns>`     | its instances tagged `<tag>` in namespace `<ns>` |
//! | `_<svc>._<tag>.service[.<ns>]` | RFC 2782's form (HAProxy, nginx); `_tcp` is no tag |
//! | `<node>.node[.<dc>]`           | the addresses of the instances on a node         |
//! | `<hex>.addr[.<dc>]`            | one address, hex-encoded (an SRV target)         |
//!
//! `a.service.service.nomos.` is service `a` in namespace `service`, not tag `a` of a service
//! named `service`: the namespace form comes first.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::Name;

/// The zone this server answers for.
pub const ZONE: &str = "nomos";
/// The namespace of names without one.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Longest DNS label.
const MAX_LABEL: usize = 63;

/// What a query name asks for. Every string is lower-case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// `nomos.` itself.
    Apex,
    /// The healthy instances of a service, optionally only those with a tag.
    Service {
        namespace: String,
        service: String,
        tag: Option<String>,
    },
    /// The addresses of the healthy instances on a node, in one datacenter or in any.
    Node {
        node: String,
        datacenter: Option<String>,
    },
    /// An address spelled in hex (`7f000001.addr.dc1.nomos.`), as SRV targets are when a node
    /// name cannot stand for one address.
    Addr(IpAddr),
    /// Under `nomos.`, in none of the forms: NXDOMAIN.
    Unknown,
    /// Not under `nomos.`: REFUSED.
    Outside,
}

/// Which part of the catalogue `name` asks for.
pub fn parse(name: &Name) -> Lookup {
    let labels: Vec<String> = name
        .iter()
        .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
        .collect();
    let Some((zone, rest)) = labels.split_last() else {
        return Lookup::Outside;
    };
    if zone != ZONE {
        return Lookup::Outside;
    }
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let service = |ns: &str, svc: &str, tag: Option<&str>| Lookup::Service {
        namespace: ns.to_string(),
        service: svc.to_string(),
        tag: tag.map(str::to_string),
    };
    let node = |node: &str, dc: Option<&str>| Lookup::Node {
        node: node.to_string(),
        datacenter: dc.map(str::to_string),
    };
    match rest.as_slice() {
        [] => Lookup::Apex,
        [svc, proto, "service", ns @ ..] if ns.len() <= 1 && is_rfc2782(svc, proto) => {
            let tag = Some(&proto[1..]).filter(|t| *t != "tcp");
            service(ns.first().unwrap_or(&DEFAULT_NAMESPACE), &svc[1..], tag)
        }
        [svc, "service"] => service(DEFAULT_NAMESPACE, svc, None),
        [svc, "service", ns] => service(ns, svc, None),
        [tag, svc, "service"] => service(DEFAULT_NAMESPACE, svc, Some(tag)),
        [tag, svc, "service", ns] => service(ns, svc, Some(tag)),
        [n, "node"] => node(n, None),
        [n, "node", dc] => node(n, Some(dc)),
        [hex, "addr"] | [hex, "addr", _] => decode_addr(hex).map_or(Lookup::Unknown, Lookup::Addr),
        _ => Lookup::Unknown,
    }
}

/// Whether two labels are RFC 2782's `_<service>._<protocol>` (Consul reads the protocol as a
/// tag, except `_tcp`). Service names never start with `_`, so this shadows no other form.
fn is_rfc2782(service: &str, proto: &str) -> bool {
    service.len() > 1 && proto.len() > 1 && service.starts_with('_') && proto.starts_with('_')
}

/// Whether `s` can be one label of a name this server makes: letters, digits, `-` and `_`, at
/// most 63 bytes (so no dots, which would shift the labels).
pub fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_LABEL
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `<node>.node.<dc>.nomos.`, when both are labels.
pub fn node_name(node: &str, datacenter: &str) -> Option<Name> {
    if !is_label(node) || !is_label(datacenter) {
        return None;
    }
    let text = format!("{node}.node.{datacenter}.{ZONE}.").to_ascii_lowercase();
    Name::from_ascii(text).ok()
}

/// `<hex>.addr.<dc>.nomos.` (`<hex>.addr.nomos.` when the datacenter is no label): a name that
/// stands for exactly `ip`.
pub fn addr_name(ip: IpAddr, datacenter: &str) -> Name {
    let hex = encode_addr(ip);
    let text = if is_label(datacenter) {
        format!("{hex}.addr.{datacenter}.{ZONE}.").to_ascii_lowercase()
    } else {
        format!("{hex}.addr.{ZONE}.")
    };
    // Hex digits and labels checked above: always a valid name.
    Name::from_ascii(text).unwrap_or_else(|_| Name::root())
}

/// The zone's apex, `nomos.`.
pub fn zone() -> Name {
    Name::from_labels([ZONE]).unwrap_or_else(|_| Name::root())
}

/// An address as hex digits: 8 for IPv4, 32 for IPv6 (Consul's `.addr.` form).
fn encode_addr(ip: IpAddr) -> String {
    let octets: Vec<u8> = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    octets.iter().map(|b| format!("{b:02x}")).collect()
}

/// The inverse of [`encode_addr`]; `None` for anything else.
fn decode_addr(hex: &str) -> Option<IpAddr> {
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
        .collect::<Result<_, _>>()
        .ok()?;
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        32 => {
            let octets: [u8; 16] = bytes.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(octets)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).expect("test name")
    }

    fn svc(ns: &str, service: &str, tag: Option<&str>) -> Lookup {
        Lookup::Service {
            namespace: ns.into(),
            service: service.into(),
            tag: tag.map(Into::into),
        }
    }

    #[test]
    fn names_parse_into_lookups() {
        let node = |n: &str, dc: Option<&str>| Lookup::Node {
            node: n.into(),
            datacenter: dc.map(Into::into),
        };
        let table = [
            ("nomos.", Lookup::Apex),
            ("web.service.nomos.", svc("default", "web", None)),
            ("web.service.prod.nomos.", svc("prod", "web", None)),
            ("v1.web.service.nomos.", svc("default", "web", Some("v1"))),
            ("v1.web.service.prod.nomos.", svc("prod", "web", Some("v1"))),
            ("WeB.SeRvIcE.NoMoS.", svc("default", "web", None)),
            ("V1.Web.Service.Prod.NOMOS.", svc("prod", "web", Some("v1"))),
            // The namespace form wins over the tag form.
            ("a.service.service.nomos.", svc("service", "a", None)),
            // RFC 2782: `_tcp` is no tag, another protocol is one.
            ("_web._tcp.service.nomos.", svc("default", "web", None)),
            ("_web._TCP.service.prod.nomos.", svc("prod", "web", None)),
            ("_web._v1.service.nomos.", svc("default", "web", Some("v1"))),
            (
                "_web._v1.service.prod.nomos.",
                svc("prod", "web", Some("v1")),
            ),
            ("_._tcp.service.nomos.", svc("default", "_tcp", Some("_"))),
            ("n1.node.nomos.", node("n1", None)),
            ("n1.node.dc1.nomos.", node("n1", Some("dc1"))),
            (
                "7f000001.addr.dc1.nomos.",
                Lookup::Addr("127.0.0.1".parse().unwrap()),
            ),
            (
                "00000000000000000000000000000001.addr.nomos.",
                Lookup::Addr("::1".parse().unwrap()),
            ),
            ("7f0001.addr.nomos.", Lookup::Unknown),
            ("zz000001.addr.nomos.", Lookup::Unknown),
            ("web.nomos.", Lookup::Unknown),
            ("a.b.c.d.e.nomos.", Lookup::Unknown),
            ("web.service.nomos.example.", Lookup::Outside),
            ("example.com.", Lookup::Outside),
            (".", Lookup::Outside),
            ("nomos.com.", Lookup::Outside),
        ];
        for (text, want) in table {
            assert_eq!(parse(&name(text)), want, "{text}");
        }
    }

    #[test]
    fn labels_with_odd_bytes_parse_without_matching_anything_real() {
        let odd = Name::from_labels([&b"w\xffb"[..], b"service", b"nomos"]).unwrap();
        match parse(&odd) {
            Lookup::Service { service, .. } => assert!(!is_label(&service)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn made_up_names_round_trip_through_parse() {
        for ip in ["10.1.2.3", "2001:db8::7", "::ffff:1.2.3.4"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(parse(&addr_name(ip, "dc1")), Lookup::Addr(ip), "{ip}");
            assert_eq!(parse(&addr_name(ip, "bad.dc")), Lookup::Addr(ip), "{ip}");
        }
        let n = node_name("Node-1", "DC1").expect("labels");
        assert_eq!(n.to_ascii(), "node-1.node.dc1.nomos.");
        assert_eq!(
            parse(&n),
            Lookup::Node {
                node: "node-1".into(),
                datacenter: Some("dc1".into())
            }
        );
    }

    #[test]
    fn only_labels_make_node_names() {
        assert!(node_name("host.example.com", "dc1").is_none());
        assert!(node_name("n1", "").is_none());
        assert!(node_name(&"x".repeat(64), "dc1").is_none());
        assert!(node_name(&"x".repeat(63), "dc1").is_some());
        assert!(node_name("n_1", "dc-1").is_some());
    }
}
