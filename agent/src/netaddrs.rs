//! The node's addresses for templates' `sockaddr`: every interface address (getifaddrs), each
//! marked with whether its interface carries the default route (read from
//! `/proc/net/route` and `/proc/net/ipv6_route`). The route tables are parsed by pure
//! functions; the choice among the addresses is `nomos_template::sockaddr`'s.

use std::collections::BTreeSet;
use std::net::IpAddr;

use nix::net::if_::InterfaceFlags;
use nomos_template::sockaddr::IfAddr;

/// The interfaces that `/proc/net/route` (IPv4) names for the default route (destination and
/// mask 0).
pub fn default_v4_interfaces(route: &str) -> BTreeSet<String> {
    route
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // Iface Destination Gateway Flags RefCnt Use Metric Mask ...
            (f.len() > 7 && f[1] == "00000000" && f[7] == "00000000").then(|| f[0].to_string())
        })
        .collect()
}

/// The interfaces that `/proc/net/ipv6_route` names for the default route (`::/0`), leaving
/// out the loopback's unreachable entry.
pub fn default_v6_interfaces(route: &str) -> BTreeSet<String> {
    let zero = "0".repeat(32);
    route
        .lines()
        .filter_map(|line| {
            // dest dest_len src src_len next_hop metric refcnt use flags iface
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.len() == 10 && f[0] == zero && f[1] == "00" && f[9] != "lo")
                .then(|| f[9].to_string())
        })
        .collect()
}

/// The node's addresses, in the system's order.
pub fn addresses() -> Result<Vec<IfAddr>, String> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let mut defaults = default_v4_interfaces(&read("/proc/net/route"));
    defaults.extend(default_v6_interfaces(&read("/proc/net/ipv6_route")));
    let all = nix::ifaddrs::getifaddrs().map_err(|e| format!("reading interfaces: {e}"))?;
    Ok(all
        .filter_map(|a| {
            let (ip, prefix_len) = ip_and_prefix(&a)?;
            Some(IfAddr {
                up: a.flags.contains(InterfaceFlags::IFF_UP),
                default_route: defaults.contains(&a.interface_name),
                interface: a.interface_name,
                ip,
                prefix_len,
            })
        })
        .collect())
}

fn ip_and_prefix(a: &nix::ifaddrs::InterfaceAddress) -> Option<(IpAddr, u8)> {
    let addr = a.address.as_ref()?;
    let mask = a.netmask.as_ref();
    if let Some(v4) = addr.as_sockaddr_in() {
        let bits = mask
            .and_then(|m| m.as_sockaddr_in())
            .map_or(32, |m| u32::from(m.ip()).count_ones());
        return Some((IpAddr::V4(v4.ip()), bits as u8));
    }
    let v6 = addr.as_sockaddr_in6()?;
    let bits = mask
        .and_then(|m| m.as_sockaddr_in6())
        .map_or(128, |m| u128::from(m.ip()).count_ones());
    Some((IpAddr::V6(v6.ip()), bits as u8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_route_is_read_from_the_route_tables() {
        let v4 =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                  eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
                  eth0\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n\
                  wg0\t00000000\t00000000\t0001\t0\t0\t50\t00000080\t0\t0\t0\n";
        assert_eq!(
            default_v4_interfaces(v4),
            BTreeSet::from(["eth0".to_string()]),
            "a /1 split route is not the default"
        );
        assert!(default_v4_interfaces("").is_empty());
        let zero = "0".repeat(32);
        let v6 = format!(
            "{zero} 00 {zero} 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003 eth1\n\
             {zero} 00 {zero} 00 {zero} ffffffff 00000001 00000000 00200200 lo\n\
             fe800000000000000000000000000000 40 {zero} 00 {zero} 00000100 00000001 00000000 00000001 eth0\n"
        );
        assert_eq!(
            default_v6_interfaces(&v6),
            BTreeSet::from(["eth1".to_string()])
        );
    }

    #[test]
    fn this_machine_has_a_loopback_address() {
        let addrs = addresses().unwrap();
        assert!(
            addrs
                .iter()
                .any(|a| a.ip.is_loopback() && a.up && a.prefix_len == 8),
            "{addrs:?}"
        );
    }
}
