//! Answers, purely: the response code and records for one question, from a [`Catalogue`]. No
//! bytes and no sockets here ([`crate::message`] does the wire format).
//!
//! - A / AAAA: the distinct addresses of the matching healthy instances of the record's
//!   family (an address that is no IP of that family is left out); ANY gives both.
//! - SRV: `1 1 <port> <target>` per instance; the target is `<node>.node.<dc>.nomos.` when
//!   every healthy instance on that node has the same address, else `<hex>.addr.<dc>.nomos.`
//!   (an address that is a host name is the target itself). Each target's A/AAAA record goes
//!   in the additional section.
//! - A name with no healthy instance behind it (an unknown service, tag or node, or one whose
//!   instances are all unhealthy) is NXDOMAIN, as in Consul; a name that exists but has no
//!   record of the asked type is NOERROR with no answers (NODATA). Both carry the zone's SOA,
//!   whose minimum (the negative-caching TTL) is the configured TTL.
//! - Names outside `nomos.` are REFUSED.
//!
//! At most `max_records` answers; `rotate` turns the instance list so repeated queries spread
//! over the instances (the server passes a counter, tests a fixed number).

use std::net::IpAddr;

use hickory_proto::op::{Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use nomos_api::service::ServiceRegistration;

use crate::catalogue::Catalogue;
use crate::name::{self, Lookup};

/// How answers are shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerOptions {
    /// TTL of every record, and the SOA's minimum, in seconds.
    pub ttl: u32,
    /// Most records in the answer section (SRV targets' addresses are one per answer at most).
    pub max_records: usize,
}

/// The response to one question, before encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub code: ResponseCode,
    /// Whether this server is the authority for the name (every name under `nomos.`).
    pub authoritative: bool,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
}

impl Answer {
    fn records(answers: Vec<Record>, catalogue: &Catalogue, opts: &AnswerOptions) -> Answer {
        if answers.is_empty() {
            return negative(ResponseCode::NoError, catalogue, opts);
        }
        Answer {
            code: ResponseCode::NoError,
            authoritative: true,
            answers,
            authorities: vec![],
            additionals: vec![],
        }
    }

    /// REFUSED: the name is not ours.
    pub fn refused() -> Answer {
        Answer {
            code: ResponseCode::Refused,
            authoritative: false,
            answers: vec![],
            authorities: vec![],
            additionals: vec![],
        }
    }
}

/// The answer to `query` from `catalogue`.
pub fn answer(query: &Query, catalogue: &Catalogue, opts: &AnswerOptions, rotate: usize) -> Answer {
    let (qname, qtype) = (query.name(), query.query_type());
    match name::parse(qname) {
        Lookup::Outside => Answer::refused(),
        Lookup::Unknown => negative(ResponseCode::NXDomain, catalogue, opts),
        Lookup::Apex => match qtype {
            RecordType::SOA | RecordType::ANY => {
                Answer::records(vec![soa(catalogue, opts)], catalogue, opts)
            }
            _ => negative(ResponseCode::NoError, catalogue, opts),
        },
        Lookup::Service {
            namespace,
            service,
            tag,
        } => {
            let instances = select(catalogue, &namespace, &service, tag.as_deref(), rotate);
            service_answer(qname, qtype, &instances, catalogue, opts)
        }
        Lookup::Node { node, datacenter } => {
            let ips = catalogue.node_addresses(&node, datacenter.as_deref());
            addresses_answer(qname, qtype, &ips, catalogue, opts)
        }
        Lookup::Addr(ip) => addresses_answer(qname, qtype, &[ip], catalogue, opts),
    }
}

/// The healthy instances of a service, with `tag` if given, turned by `rotate`.
fn select<'a>(
    catalogue: &'a Catalogue,
    namespace: &str,
    service: &str,
    tag: Option<&str>,
    rotate: usize,
) -> Vec<&'a ServiceRegistration> {
    let mut out: Vec<&ServiceRegistration> = catalogue
        .instances(namespace, service)
        .iter()
        .filter(|r| tag.is_none_or(|t| r.tags.iter().any(|x| x.eq_ignore_ascii_case(t))))
        .collect();
    if !out.is_empty() {
        let by = rotate % out.len();
        out.rotate_left(by);
    }
    out
}

fn service_answer(
    qname: &Name,
    qtype: RecordType,
    instances: &[&ServiceRegistration],
    catalogue: &Catalogue,
    opts: &AnswerOptions,
) -> Answer {
    if instances.is_empty() {
        return negative(ResponseCode::NXDomain, catalogue, opts);
    }
    match qtype {
        RecordType::A | RecordType::AAAA | RecordType::ANY => {
            let ips: Vec<IpAddr> = instances
                .iter()
                .filter_map(|r| r.address.parse().ok())
                .collect();
            let records = address_records(qname, qtype, &ips, opts);
            Answer::records(records, catalogue, opts)
        }
        RecordType::SRV => srv_answer(qname, instances, catalogue, opts),
        _ => negative(ResponseCode::NoError, catalogue, opts),
    }
}

/// The answer for a name that stands for addresses (a node, an `.addr.` name).
fn addresses_answer(
    qname: &Name,
    qtype: RecordType,
    ips: &[IpAddr],
    catalogue: &Catalogue,
    opts: &AnswerOptions,
) -> Answer {
    if ips.is_empty() {
        return negative(ResponseCode::NXDomain, catalogue, opts);
    }
    let records = address_records(qname, qtype, ips, opts);
    Answer::records(records, catalogue, opts)
}

/// `1 1 <port> <target>` per instance, distinct, at most `max_records`; each target's address
/// once in the additional section.
fn srv_answer(
    qname: &Name,
    instances: &[&ServiceRegistration],
    catalogue: &Catalogue,
    opts: &AnswerOptions,
) -> Answer {
    let mut answers: Vec<Record> = Vec::new();
    let mut seen: Vec<(Name, u16)> = Vec::new();
    let mut additionals: Vec<Record> = Vec::new();
    for r in instances {
        if answers.len() >= opts.max_records {
            break;
        }
        let Some((target, ip)) = srv_target(r, catalogue) else {
            continue;
        };
        if seen.iter().any(|(n, p)| *p == r.port && *n == target) {
            continue;
        }
        if let Some(ip) = ip.filter(|_| seen.iter().all(|(n, _)| *n != target)) {
            additionals.push(address_record(target.clone(), ip, opts.ttl));
        }
        let srv = SRV::new(1, 1, r.port, target.clone());
        answers.push(Record::from_rdata(qname.clone(), opts.ttl, RData::SRV(srv)));
        seen.push((target, r.port));
    }
    let mut out = Answer::records(answers, catalogue, opts);
    out.additionals = additionals;
    out
}

/// An instance's SRV target and the address it stands for; `None` for an instance without a
/// usable address.
fn srv_target(r: &ServiceRegistration, catalogue: &Catalogue) -> Option<(Name, Option<IpAddr>)> {
    let Ok(ip) = r.address.parse::<IpAddr>() else {
        // A host name: the target itself, resolved elsewhere.
        let mut host = Name::from_ascii(&r.address).ok().filter(|n| !n.is_root())?;
        host.set_fqdn(true);
        return Some((host, None));
    };
    let node = r.node.to_ascii_lowercase();
    let dc = r.datacenter.to_ascii_lowercase();
    let one_address = catalogue.node_addresses(&node, Some(&dc)) == [ip];
    let target = one_address
        .then(|| name::node_name(&r.node, &r.datacenter))
        .flatten()
        .unwrap_or_else(|| name::addr_name(ip, &r.datacenter));
    Some((target, Some(ip)))
}

/// A and/or AAAA records (as `qtype` asks) for the distinct `ips`, at most `max_records`.
fn address_records(
    owner: &Name,
    qtype: RecordType,
    ips: &[IpAddr],
    opts: &AnswerOptions,
) -> Vec<Record> {
    let mut chosen: Vec<IpAddr> = Vec::new();
    for ip in ips {
        let wanted = match ip {
            IpAddr::V4(_) => matches!(qtype, RecordType::A | RecordType::ANY),
            IpAddr::V6(_) => matches!(qtype, RecordType::AAAA | RecordType::ANY),
        };
        if wanted && !chosen.contains(ip) && chosen.len() < opts.max_records {
            chosen.push(*ip);
        }
    }
    chosen
        .into_iter()
        .map(|ip| address_record(owner.clone(), ip, opts.ttl))
        .collect()
}

fn address_record(owner: Name, ip: IpAddr, ttl: u32) -> Record {
    let data = match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    Record::from_rdata(owner, ttl, data)
}

/// No answers, with the zone's SOA in the authority section (for negative caching).
fn negative(code: ResponseCode, catalogue: &Catalogue, opts: &AnswerOptions) -> Answer {
    Answer {
        code,
        authoritative: true,
        answers: vec![],
        authorities: vec![soa(catalogue, opts)],
        additionals: vec![],
    }
}

/// `nomos. SOA ns.nomos. hostmaster.nomos. <revision> 3600 600 86400 <ttl>`.
fn soa(catalogue: &Catalogue, opts: &AnswerOptions) -> Record {
    let in_zone =
        |label: &str| Name::from_labels([label, name::ZONE]).unwrap_or_else(|_| Name::root());
    let data = SOA::new(
        in_zone("ns"),
        in_zone("hostmaster"),
        // The serial moves with the catalogue; wrapping is what serial arithmetic expects.
        catalogue.revision() as u32,
        3600,
        600,
        86400,
        opts.ttl,
    );
    Record::from_rdata(name::zone(), opts.ttl, RData::SOA(data))
}

#[cfg(test)]
mod tests;
