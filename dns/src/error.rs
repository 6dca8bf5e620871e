//! The crate's one error enum.

use std::net::SocketAddr;

use nomos_store::StoreError;
use thiserror::Error;

/// Why the DNS server could not start, or why the catalogue could not be read.
///
/// [`DnsError::Bind`] and [`DnsError::InvalidConfig`] stop [`crate::serve`]: calling again with
/// the same configuration fails the same way (unless the address was only briefly in use).
/// [`DnsError::ListFailed`] and [`DnsError::WatchFailed`] never reach the caller: the catalogue
/// loader logs them, backs off and lists again (they are retryable).
#[derive(Debug, Error)]
pub enum DnsError {
    /// The UDP or TCP socket could not be bound: the address is taken or not this host's.
    #[error("cannot serve DNS on {addr} ({transport}): {source}")]
    Bind {
        addr: SocketAddr,
        transport: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A limit in [`crate::DnsConfig`] is out of range.
    #[error("invalid DNS configuration: {0}")]
    InvalidConfig(String),
    /// Reading the catalogue's prefix failed (retryable).
    #[error("cannot list the service catalogue under {prefix}: {source}")]
    ListFailed {
        prefix: &'static str,
        #[source]
        source: StoreError,
    },
    /// Watching the catalogue's index key failed or the watch ended (retryable).
    #[error("cannot watch {key}: {source}")]
    WatchFailed {
        key: &'static str,
        #[source]
        source: StoreError,
    },
}
