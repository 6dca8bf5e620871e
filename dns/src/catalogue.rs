//! The catalogue as DNS reads it: the healthy registrations of one store revision, indexed by
//! namespace and service, and the distinct addresses of the healthy instances on each node.
//! Built whole from a list ([`Catalogue::new`]) and swapped in whole by the loader; never
//! changed in place, so a query never sees half of a reload.

use std::collections::HashMap;
use std::net::IpAddr;

use nomos_api::service::ServiceRegistration;

/// The healthy part of the catalogue at one revision.
#[derive(Debug, Default, Clone)]
pub struct Catalogue {
    revision: i64,
    /// `(namespace, service)`, lower-case, to its healthy instances sorted by id.
    services: HashMap<(String, String), Vec<ServiceRegistration>>,
    /// Node name, lower-case, to `(datacenter, address)` pairs of its healthy instances,
    /// lower-case, sorted, without duplicates.
    nodes: HashMap<String, Vec<(String, IpAddr)>>,
}

impl Catalogue {
    /// The catalogue of `registrations` as listed at store revision `revision`; unhealthy
    /// ones are left out.
    pub fn new(
        revision: i64,
        registrations: impl IntoIterator<Item = ServiceRegistration>,
    ) -> Catalogue {
        let mut services: HashMap<(String, String), Vec<ServiceRegistration>> = HashMap::new();
        let mut nodes: HashMap<String, Vec<(String, IpAddr)>> = HashMap::new();
        for r in registrations.into_iter().filter(|r| r.healthy) {
            if let Ok(ip) = r.address.parse::<IpAddr>() {
                let at = (r.datacenter.to_ascii_lowercase(), ip);
                nodes
                    .entry(r.node.to_ascii_lowercase())
                    .or_default()
                    .push(at);
            }
            let key = (
                r.namespace.to_ascii_lowercase(),
                r.service_name.to_ascii_lowercase(),
            );
            services.entry(key).or_default().push(r);
        }
        for instances in services.values_mut() {
            instances.sort_by(|a, b| a.id.cmp(&b.id));
        }
        for addrs in nodes.values_mut() {
            addrs.sort();
            addrs.dedup();
        }
        Catalogue {
            revision,
            services,
            nodes,
        }
    }

    /// The store revision this catalogue was listed at.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// Number of healthy instances.
    pub fn len(&self) -> usize {
        self.services.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// The healthy instances of a service (names lower-case), sorted by id.
    pub fn instances(&self, namespace: &str, service: &str) -> &[ServiceRegistration] {
        self.services
            .get(&(namespace.to_string(), service.to_string()))
            .map_or(&[], Vec::as_slice)
    }

    /// The distinct addresses of the healthy instances on `node` (lower-case), in datacenter
    /// `datacenter` or, for `None`, in any.
    pub fn node_addresses(&self, node: &str, datacenter: Option<&str>) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = self
            .nodes
            .get(node)
            .into_iter()
            .flatten()
            .filter(|(dc, _)| datacenter.is_none_or(|want| want == dc))
            .map(|(_, ip)| *ip)
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(
        id: &str,
        ns: &str,
        svc: &str,
        node: &str,
        addr: &str,
        healthy: bool,
    ) -> ServiceRegistration {
        ServiceRegistration {
            id: id.into(),
            service_name: svc.into(),
            namespace: ns.into(),
            node: node.into(),
            datacenter: "DC1".into(),
            address: addr.into(),
            port: 80,
            healthy,
            ..Default::default()
        }
    }

    #[test]
    fn only_healthy_instances_are_indexed_case_insensitively() {
        let c = Catalogue::new(
            7,
            [
                reg("b", "Default", "Web", "n1", "10.0.0.1", true),
                reg("a", "default", "web", "n1", "10.0.0.1", true),
                reg("c", "default", "web", "n2", "10.0.0.2", false),
                reg("d", "prod", "web", "n2", "10.0.0.3", true),
            ],
        );
        assert_eq!(c.revision(), 7);
        assert_eq!(c.len(), 3);
        let ids: Vec<&str> = c
            .instances("default", "web")
            .iter()
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(c.instances("prod", "web").len(), 1);
        assert!(c.instances("default", "db").is_empty());
    }

    #[test]
    fn a_nodes_addresses_are_its_healthy_instances_distinct_ones() {
        let c = Catalogue::new(
            1,
            [
                reg("a", "default", "web", "N1", "10.0.0.1", true),
                reg("b", "default", "db", "n1", "10.0.0.1", true),
                reg("c", "default", "db", "n1", "10.0.0.9", false),
                reg("d", "default", "db", "n1", "not-an-ip", true),
            ],
        );
        let one: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(c.node_addresses("n1", None), vec![one]);
        assert_eq!(c.node_addresses("n1", Some("dc1")), vec![one]);
        assert!(c.node_addresses("n1", Some("dc2")).is_empty());
        assert!(c.node_addresses("n2", None).is_empty());
    }
}
