//! DNS for the service catalogue, as Consul's DNS interface: `web.service.nomos.`,
//! `v1.web.service.prod.nomos.`, SRV with the nodes' addresses, over UDP and TCP (the names,
//! records and flags are described in `docs/dns.md`).
//!
//! Layout, from pure to I/O:
//! - [`name`]: a query name to a [`name::Lookup`] (service, tag, namespace, node), and the
//!   names made up for SRV targets.
//! - [`catalogue`]: the healthy registrations of one store revision, indexed; built whole.
//! - [`answer`]: one question and a catalogue to a response code and records.
//! - [`message`]: request bytes to response bytes: budgets, EDNS, truncation.
//! - [`loader`]: lists `/nomos/services/`, watches `/nomos/servicesindex`, lists again on every
//!   change, and publishes each catalogue whole; backs off on store errors.
//! - [`server`]: the UDP socket and the TCP listener, their limits, and shutdown.
//! - [`error`]: the crate's one error enum.
//!
//! Only `hickory-proto` is used, to decode and encode messages; the server loop is this
//! crate's own rather than `hickory-server`'s. Ours is small, and it puts each budget where
//! this crate can see and test it: the header checked before a message is decoded (a
//! 12-byte request must not make the decoder reserve room for 65535 questions), a bound on
//! concurrent TCP connections and a deadline per TCP read and write, the EDNS-aware fitting
//! of UDP answers; and it keeps `hickory-server`'s authority and zone machinery, which this
//! in-memory zone has no use for, out of the build.

pub mod answer;
pub mod catalogue;
pub mod error;
pub mod loader;
pub mod message;
pub mod name;
pub mod server;

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

pub use error::DnsError;
pub use server::DnsServer;

use nomos_store::Store;

/// Consul's DNS port, and this server's default.
pub const DEFAULT_PORT: u16 = 8600;

/// Where the DNS server listens and the budgets it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// UDP and TCP, on the same port (port 0 picks a port free for both).
    pub addr: SocketAddr,
    /// TTL of every record, and the negative-caching TTL (the SOA's minimum). Default 5 s;
    /// 0 asks resolvers not to cache at all. Whole seconds.
    pub ttl: Duration,
    /// Most records in one answer section. Default 64.
    pub max_records: usize,
    /// Largest UDP response, whatever a request's EDNS offers (without EDNS: 512 bytes).
    /// Default 1232, the size DNS Flag Day 2020 settled on to avoid fragments.
    pub max_udp_payload: u16,
    /// Largest request, as a UDP datagram or a TCP message; a longer one is FORMERR over UDP
    /// and closes the connection over TCP. Default 1024.
    pub max_request_bytes: usize,
    /// Most TCP connections at once; one more is closed as soon as it is accepted.
    /// Default 128.
    pub max_tcp_connections: usize,
    /// How long a TCP client may take to send a whole query (or sit idle between two), and
    /// to read an answer. Default 5 s.
    pub tcp_timeout: Duration,
}

impl DnsConfig {
    /// The defaults, listening on `addr`.
    pub fn new(addr: SocketAddr) -> DnsConfig {
        DnsConfig {
            addr,
            ttl: Duration::from_secs(5),
            max_records: 64,
            max_udp_payload: 1232,
            max_request_bytes: 1024,
            max_tcp_connections: 128,
            tcp_timeout: Duration::from_secs(5),
        }
    }

    /// Why this configuration cannot serve, if it cannot.
    pub fn validate(&self) -> Result<(), DnsError> {
        let bad = |what: String| Err(DnsError::InvalidConfig(what));
        if self.max_records == 0 {
            return bad("max_records must be at least 1".into());
        }
        if usize::from(self.max_udp_payload) < message::UDP_MIN {
            return bad(format!(
                "max_udp_payload must be at least 512 bytes, got {}",
                self.max_udp_payload
            ));
        }
        if !(512..=message::TCP_MAX).contains(&self.max_request_bytes) {
            return bad(format!(
                "max_request_bytes must be between 512 and 65535, got {}",
                self.max_request_bytes
            ));
        }
        if self.max_tcp_connections == 0 {
            return bad("max_tcp_connections must be at least 1".into());
        }
        if self.tcp_timeout.is_zero() {
            return bad("tcp_timeout must be more than 0".into());
        }
        Ok(())
    }

    /// The part of the configuration that shapes answers.
    pub fn answer_options(&self) -> answer::AnswerOptions {
        answer::AnswerOptions {
            ttl: u32::try_from(self.ttl.as_secs()).unwrap_or(u32::MAX),
            max_records: self.max_records,
        }
    }
}

impl Default for DnsConfig {
    /// `127.0.0.1:8600`, as Consul's default.
    fn default() -> Self {
        DnsConfig::new(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), DEFAULT_PORT))
    }
}

/// Binds `config.addr` (UDP and TCP) and answers from the catalogue in `store` until
/// `shutdown` resolves. [`DnsServer::bind`] and [`DnsServer::serve`] are the two steps, for a
/// caller that needs the bound address first.
pub async fn serve(
    config: DnsConfig,
    store: Arc<dyn Store>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DnsError> {
    DnsServer::bind(config).await?.serve(store, shutdown).await
}
