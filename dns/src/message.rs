//! The wire, purely: one request's bytes to one response's bytes ([`respond`]); the server's
//! sockets call it, tests and the fuzz property call it directly.
//!
//! Budgets are checked on the raw header before anything is decoded: a request longer than
//! `max_request_bytes`, with other than one question, with answer or authority records, or
//! with more than two additional records (an OPT and one more) is FORMERR, an opcode other
//! than QUERY is NOTIMP, and a message with the response bit set (or shorter than a header)
//! gets no reply at all, so the server cannot be made to answer answers. An EDNS version
//! other than 0 is BADVERS, a class other than IN (or ANY) REFUSED, and a question asked
//! before the catalogue's first load SERVFAIL.
//!
//! A response is fitted to its transport: over UDP 512 bytes, or what the request's EDNS
//! offers up to `max_udp_payload`; over TCP 65535. When it does not fit, the additional
//! section goes first (without the TC bit: RFC 2181 §9), then as many answers as it takes,
//! and the TC bit tells the client to ask again over TCP.

use hickory_proto::op::{Edns, Message, OpCode, ResponseCode};
use hickory_proto::rr::DNSClass;

use crate::answer::answer;
use crate::catalogue::Catalogue;
use crate::DnsConfig;

/// How a request arrived, which decides how big its response may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// Most bytes of one DNS message over TCP (its length prefix has 16 bits).
pub const TCP_MAX: usize = 65535;
/// The UDP payload every client takes (RFC 1035).
pub const UDP_MIN: usize = 512;
/// Bytes of a DNS header.
const HEADER_LEN: usize = 12;
/// Most additional records a query may carry: an OPT, and one more (TSIG, SIG(0)).
const MAX_REQUEST_ADDITIONALS: u16 = 2;

/// The reply to `request`, or `None` when it deserves none (not a query, or too short to
/// answer). `catalogue` is `None` until the first load; `rotate` turns the instance lists.
pub fn respond(
    request: &[u8],
    catalogue: Option<&Catalogue>,
    config: &DnsConfig,
    transport: Transport,
    rotate: usize,
) -> Option<Vec<u8>> {
    let raw = RawHeader::read(request)?;
    if let Some(code) = raw.reject(request.len(), config.max_request_bytes) {
        return raw.error(code).to_vec().ok();
    }
    let Ok(request) = Message::from_vec(request) else {
        return raw.error(ResponseCode::FormErr).to_vec().ok();
    };
    let response = build(&request, catalogue, config, rotate);
    let limit = match transport {
        Transport::Udp => udp_limit(&request, config),
        Transport::Tcp => TCP_MAX,
    };
    fit(response, limit).or_else(|| raw.error(ResponseCode::ServFail).to_vec().ok())
}

/// The fixed header, read without decoding the rest.
#[derive(Debug, Clone, Copy)]
struct RawHeader {
    id: u16,
    op_code: u8,
    recursion_desired: bool,
    /// Questions, answers, authorities, additionals.
    counts: [u16; 4],
}

impl RawHeader {
    /// `None` for a message too short to hold a header, or one that is a response.
    fn read(bytes: &[u8]) -> Option<RawHeader> {
        if bytes.len() < HEADER_LEN || bytes[2] & 0x80 != 0 {
            return None;
        }
        let word = |i: usize| u16::from_be_bytes([bytes[i], bytes[i + 1]]);
        Some(RawHeader {
            id: word(0),
            op_code: (bytes[2] >> 3) & 0x0f,
            recursion_desired: bytes[2] & 0x01 != 0,
            counts: [word(4), word(6), word(8), word(10)],
        })
    }

    /// Why a request of `len` bytes with this header is not answered, if it is not.
    fn reject(&self, len: usize, max_len: usize) -> Option<ResponseCode> {
        let [questions, answers, authorities, additionals] = self.counts;
        if self.op_code != 0 {
            Some(ResponseCode::NotImp)
        } else if len > max_len
            || questions != 1
            || answers != 0
            || authorities != 0
            || additionals > MAX_REQUEST_ADDITIONALS
        {
            Some(ResponseCode::FormErr)
        } else {
            None
        }
    }

    /// A response with only a header, carrying `code`.
    fn error(&self, code: ResponseCode) -> Message {
        let mut m = Message::error_msg(self.id, OpCode::from_u8(self.op_code), code);
        m.metadata.recursion_desired = self.recursion_desired;
        m
    }
}

/// The whole response to a decoded request, before fitting.
fn build(
    request: &Message,
    catalogue: Option<&Catalogue>,
    config: &DnsConfig,
    rotate: usize,
) -> Message {
    let mut resp = Message::response(request.metadata.id, request.metadata.op_code);
    resp.metadata.recursion_desired = request.metadata.recursion_desired;
    resp.queries = request.queries.clone();
    if let Some(asked) = &request.edns {
        let mut edns = Edns::new();
        edns.set_max_payload(config.max_udp_payload.max(UDP_MIN as u16));
        resp.edns = Some(edns);
        if asked.version() != 0 {
            resp.metadata.response_code = ResponseCode::BADVERS;
            return resp;
        }
    }
    let Some(query) = request.queries.first() else {
        resp.metadata.response_code = ResponseCode::FormErr;
        return resp;
    };
    if !matches!(query.query_class(), DNSClass::IN | DNSClass::ANY) {
        resp.metadata.response_code = ResponseCode::Refused;
        return resp;
    }
    let Some(catalogue) = catalogue else {
        resp.metadata.response_code = ResponseCode::ServFail;
        return resp;
    };
    let a = answer(query, catalogue, &config.answer_options(), rotate);
    resp.metadata.response_code = a.code;
    resp.metadata.authoritative = a.authoritative;
    resp.answers = a.answers;
    resp.authorities = a.authorities;
    resp.additionals = a.additionals;
    resp
}

/// The largest UDP response for `request`: 512 bytes, or what its EDNS offers up to the
/// configured ceiling.
fn udp_limit(request: &Message, config: &DnsConfig) -> usize {
    let ceiling = usize::from(config.max_udp_payload).max(UDP_MIN);
    let offered = request
        .edns
        .as_ref()
        .map_or(UDP_MIN, |e| usize::from(e.max_payload()));
    offered.clamp(UDP_MIN, ceiling)
}

/// `msg` encoded in at most `limit` bytes: whole if it fits, else without its additional
/// section, else with as many answers as fit and the TC bit. `None` if it does not encode.
fn fit(mut msg: Message, limit: usize) -> Option<Vec<u8>> {
    let bytes = msg.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    msg.additionals.clear();
    let bytes = msg.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    msg.metadata.truncation = true;
    let all = std::mem::take(&mut msg.answers);
    // The most answers that fit, by bisection: `fits` answers fit, `too_many` do not.
    let (mut fits, mut too_many) = (0, all.len());
    while too_many - fits > 1 {
        let mid = fits + (too_many - fits) / 2;
        msg.answers = all[..mid].to_vec();
        if msg.to_vec().ok()?.len() <= limit {
            fits = mid;
        } else {
            too_many = mid;
        }
    }
    msg.answers = all[..fits].to_vec();
    msg.to_vec().ok()
}

#[cfg(test)]
mod tests;
