//! consul-template's `sockaddr` function: go-sockaddr's common expressions (`GetPrivateIP`,
//! `GetPrivateIPs`, `GetPublicIP`, `GetPublicIPs`, `GetInterfaceIP "name"`,
//! `GetInterfaceIPs "name"`) evaluated over the node's addresses.
//!
//! Pure: [`Expr::parse`] reads an expression (the parser calls it on literal arguments, so an
//! unsupported one is an error at validate time), [`scope`] decides whether an address is
//! private or public, and [`Expr::eval`] picks from a list of [`IfAddr`] that the caller read
//! from the system (getifaddrs and the default route).

use std::net::IpAddr;

/// One address of one interface, as go-sockaddr's `IfAddr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfAddr {
    /// The interface's name (`eth0`).
    pub interface: String,
    pub ip: IpAddr,
    /// The network's prefix length (24 for a /24).
    pub prefix_len: u8,
    /// The interface is up.
    pub up: bool,
    /// The interface carries the default route.
    pub default_route: bool,
}

/// What kind of address an IP is, for choosing a private or a public one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 169.254.0.0/16, fe80::/10: valid on one link only.
    LinkLocal,
    /// RFC 1918 (10/8, 172.16/12, 192.168/16), RFC 6598 shared space (100.64/10), IPv6
    /// unique local addresses (fc00::/7).
    Private,
    /// Globally routable.
    Public,
    /// Neither: unspecified, multicast, broadcast, documentation, benchmarking, reserved.
    Special,
}

/// The scope of `ip` (an IPv4-mapped IPv6 address is judged as its IPv4 address).
pub fn scope(ip: IpAddr) -> Scope {
    match ip {
        IpAddr::V4(v4) => scope_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => scope_v4(v4),
            None => scope_v6(v6),
        },
    }
}

fn scope_v4(ip: std::net::Ipv4Addr) -> Scope {
    let [a, b, c, _] = ip.octets();
    match (a, b, c) {
        (127, ..) => Scope::Loopback,
        (169, 254, _) => Scope::LinkLocal,
        (10, ..) | (192, 168, _) => Scope::Private,
        (172, b, _) if (16..32).contains(&b) => Scope::Private,
        (100, b, _) if (64..128).contains(&b) => Scope::Private,
        (0, ..) | (224..=255, ..) => Scope::Special,
        (192, 0, 0) | (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Scope::Special,
        (198, 18 | 19, _) => Scope::Special,
        _ => Scope::Public,
    }
}

fn scope_v6(ip: std::net::Ipv6Addr) -> Scope {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Scope::Loopback
    } else if first & 0xffc0 == 0xfe80 {
        Scope::LinkLocal
    } else if first & 0xfe00 == 0xfc00 {
        Scope::Private
    } else if ip.is_unspecified()
        || ip.is_multicast()
        || first == 0x2001 && ip.segments()[1] == 0xdb8
    {
        Scope::Special
    } else if first & 0xe000 == 0x2000 {
        Scope::Public
    } else {
        Scope::Special
    }
}

/// The largest interface-name pattern accepted, in bytes.
const MAX_PATTERN_BYTES: usize = 256;

/// A parsed `sockaddr` expression.
#[derive(Debug, Clone)]
pub enum Expr {
    /// The first private address on the default route's interface (empty if none).
    PrivateIp,
    /// Every private address, space separated.
    PrivateIps,
    /// The first public address on the default route's interface (empty if none).
    PublicIp,
    /// Every public address, space separated.
    PublicIps,
    /// The first address of the interfaces whose name the pattern matches.
    InterfaceIp(regex::Regex),
    /// Every address of the interfaces whose name the pattern matches, space separated.
    InterfaceIps(regex::Regex),
}

const SUPPORTED: &str = "GetPrivateIP, GetPrivateIPs, GetPublicIP, GetPublicIPs, \
                         GetInterfaceIP \"name\" and GetInterfaceIPs \"name\"";

impl Expr {
    /// Reads an expression such as `GetPrivateIP` or `GetInterfaceIP "eth0"` (the name is a
    /// regular expression, as in go-sockaddr).
    pub fn parse(text: &str) -> Result<Expr, String> {
        let unsupported =
            || format!("sockaddr {text:?} is not supported; Nomos offers {SUPPORTED}");
        let text = text.trim();
        let (name, rest) = text
            .split_once(|c: char| c.is_whitespace())
            .map_or((text, ""), |(n, r)| (n, r.trim()));
        let needs_arg = matches!(name, "GetInterfaceIP" | "GetInterfaceIPs");
        let arg = if needs_arg {
            Some(go_string(rest).ok_or_else(unsupported)?)
        } else if rest.is_empty() {
            None
        } else {
            return Err(unsupported());
        };
        let pattern = |p: Option<String>| -> Result<regex::Regex, String> {
            let p = p.unwrap_or_default();
            if p.len() > MAX_PATTERN_BYTES {
                return Err(format!(
                    "sockaddr: interface name pattern longer than {MAX_PATTERN_BYTES} bytes"
                ));
            }
            regex::RegexBuilder::new(&p)
                .size_limit(1 << 16)
                .build()
                .map_err(|e| format!("sockaddr: interface name {p:?}: {e}"))
        };
        match name {
            "GetPrivateIP" => Ok(Expr::PrivateIp),
            "GetPrivateIPs" => Ok(Expr::PrivateIps),
            "GetPublicIP" => Ok(Expr::PublicIp),
            "GetPublicIPs" => Ok(Expr::PublicIps),
            "GetInterfaceIP" => Ok(Expr::InterfaceIp(pattern(arg)?)),
            "GetInterfaceIPs" => Ok(Expr::InterfaceIps(pattern(arg)?)),
            _ => Err(unsupported()),
        }
    }

    /// The expression's value over `addrs` (the node's addresses, in the system's order).
    pub fn eval(&self, addrs: &[IfAddr]) -> Result<String, String> {
        let up = addrs.iter().filter(|a| a.up);
        let of_scope = |s: Scope| up.clone().filter(move |a| scope(a.ip) == s);
        let picked: Vec<&IfAddr> = match self {
            Expr::PrivateIp => first(of_scope(Scope::Private).filter(|a| a.default_route)),
            Expr::PrivateIps => sorted(of_scope(Scope::Private)),
            Expr::PublicIp => first(of_scope(Scope::Public).filter(|a| a.default_route)),
            Expr::PublicIps => sorted(of_scope(Scope::Public)),
            Expr::InterfaceIp(re) | Expr::InterfaceIps(re) => {
                let found = sorted(up.clone().filter(|a| re.is_match(&a.interface)));
                if found.is_empty() {
                    return Err(format!(
                        "sockaddr: no address on an up interface matching {:?}",
                        re.as_str()
                    ));
                }
                match self {
                    Expr::InterfaceIp(_) => found.into_iter().take(1).collect(),
                    _ => found,
                }
            }
        };
        let ips: Vec<String> = picked.iter().map(|a| a.ip.to_string()).collect();
        Ok(ips.join(" "))
    }
}

/// The addresses in go-sockaddr's preferred order: IPv4 first, then the larger network first,
/// then the system's order.
fn sorted<'a>(addrs: impl Iterator<Item = &'a IfAddr>) -> Vec<&'a IfAddr> {
    let mut v: Vec<&IfAddr> = addrs.collect();
    v.sort_by_key(|a| (a.ip.is_ipv6(), a.prefix_len));
    v
}

fn first<'a>(addrs: impl Iterator<Item = &'a IfAddr>) -> Vec<&'a IfAddr> {
    sorted(addrs).into_iter().take(1).collect()
}

/// A Go string literal making up all of `s`: `"..."` with escapes, or a raw `` `...` ``.
fn go_string(s: &str) -> Option<String> {
    if let Some(raw) = s.strip_prefix('`') {
        return raw
            .strip_suffix('`')
            .filter(|r| !r.contains('`'))
            .map(str::to_string);
    }
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return None,
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                c @ ('\\' | '"') => out.push(c),
                _ => return None,
            },
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_follow_the_rfcs() {
        let cases = [
            ("10.1.2.3", Scope::Private),
            ("172.16.0.1", Scope::Private),
            ("172.31.255.255", Scope::Private),
            ("172.32.0.1", Scope::Public),
            ("172.15.0.1", Scope::Public),
            ("192.168.1.1", Scope::Private),
            ("100.64.0.1", Scope::Private),
            ("100.127.255.254", Scope::Private),
            ("100.128.0.1", Scope::Public),
            ("127.0.0.1", Scope::Loopback),
            ("169.254.10.1", Scope::LinkLocal),
            ("8.8.8.8", Scope::Public),
            ("0.0.0.0", Scope::Special),
            ("224.0.0.1", Scope::Special),
            ("255.255.255.255", Scope::Special),
            ("192.0.2.5", Scope::Special),
            ("198.18.0.1", Scope::Special),
            ("::1", Scope::Loopback),
            ("fe80::1", Scope::LinkLocal),
            ("fd12:3456::1", Scope::Private),
            ("fc00::1", Scope::Private),
            ("2001:db8::1", Scope::Special),
            ("2a00:1450::1", Scope::Public),
            ("ff02::1", Scope::Special),
            ("::", Scope::Special),
            ("::ffff:10.0.0.1", Scope::Private),
            ("::ffff:1.1.1.1", Scope::Public),
        ];
        for (ip, want) in cases {
            assert_eq!(scope(ip.parse().unwrap()), want, "{ip}");
        }
    }

    fn addr(interface: &str, ip: &str, prefix_len: u8, up: bool, default_route: bool) -> IfAddr {
        IfAddr {
            interface: interface.into(),
            ip: ip.parse().unwrap(),
            prefix_len,
            up,
            default_route,
        }
    }

    /// A node: loopback, eth0 with the default route (private v4, public v4, ULA and
    /// link-local v6), eth1 (another private network), a down interface.
    fn node() -> Vec<IfAddr> {
        vec![
            addr("lo", "127.0.0.1", 8, true, false),
            addr("lo", "::1", 128, true, false),
            addr("eth0", "fd00::5", 64, true, true),
            addr("eth0", "192.168.1.5", 24, true, true),
            addr("eth0", "203.0.114.9", 28, true, true),
            addr("eth0", "10.0.0.5", 8, true, true),
            addr("eth0", "fe80::5", 64, true, true),
            addr("eth1", "172.20.0.2", 16, true, false),
            addr("eth1", "8.8.4.4", 24, true, false),
            addr("eth2", "10.9.9.9", 8, false, false),
        ]
    }

    #[test]
    fn expressions_pick_what_go_sockaddr_picks() {
        let cases = [
            ("GetPrivateIP", "10.0.0.5"),
            ("GetPrivateIPs", "10.0.0.5 172.20.0.2 192.168.1.5 fd00::5"),
            ("GetPublicIP", "203.0.114.9"),
            ("GetPublicIPs", "8.8.4.4 203.0.114.9"),
            ("GetInterfaceIP \"eth1\"", "172.20.0.2"),
            (
                "GetInterfaceIPs \"^eth0$\"",
                "10.0.0.5 192.168.1.5 203.0.114.9 fd00::5 fe80::5",
            ),
            ("  GetInterfaceIP `lo`  ", "127.0.0.1"),
            ("GetInterfaceIPs \"lo\"", "127.0.0.1 ::1"),
        ];
        for (text, want) in cases {
            let got = Expr::parse(text).and_then(|e| e.eval(&node()));
            assert_eq!(got.as_deref(), Ok(want), "{text}");
        }
    }

    #[test]
    fn without_a_default_route_the_single_helpers_are_empty() {
        let mut addrs = node();
        addrs.iter_mut().for_each(|a| a.default_route = false);
        for text in ["GetPrivateIP", "GetPublicIP"] {
            assert_eq!(Expr::parse(text).unwrap().eval(&addrs), Ok(String::new()));
        }
        let none = Expr::parse("GetInterfaceIP \"eth2\"").unwrap().eval(&addrs);
        assert!(
            none.unwrap_err().contains("no address"),
            "a down interface has none"
        );
    }

    #[test]
    fn anything_else_is_refused_naming_what_is_offered() {
        for text in [
            "",
            "GetAllInterfaces | attr \"address\"",
            "GetPrivateIP | attr \"address\"",
            "GetPrivateIP extra",
            "GetInterfaceIP",
            "GetInterfaceIP eth0",
            "GetInterfaceIP \"eth0\" \"x\"",
            "GetInterfaceIP \"unterminated",
            "getprivateip",
        ] {
            let e = Expr::parse(text).unwrap_err();
            assert!(e.contains("GetPrivateIP, GetPrivateIPs"), "{text}: {e}");
        }
        let e = Expr::parse("GetInterfaceIP \"(\"").unwrap_err();
        assert!(e.contains("interface name"), "{e}");
        let long = format!("GetInterfaceIP \"{}\"", "a".repeat(MAX_PATTERN_BYTES + 1));
        assert!(Expr::parse(&long).unwrap_err().contains("longer than"));
    }
}
