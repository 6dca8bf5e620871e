//! The common name (CN) of a TLS client certificate, which etcd with `--client-cert-auth`
//! takes as the user name of a request that carries no token. Only the few DER structures on
//! the way to the subject are read (X.509: Certificate → TBSCertificate → subject Name). The
//! name is read once per connection, after its handshake, and rides on the connection's info.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use nomos_tls::limits::{Conn, LimitedConn};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

use crate::h2fix::AuthorityFix;

/// A served connection with the CN of its client certificate, which tonic then attaches to
/// every request on it (as [`ConnInfo`]).
pub struct NamedConn<IO> {
    io: IO,
    client_name: Option<String>,
}

/// What [`NamedConn`] attaches: the wrapped connection's own info and the certificate's CN.
#[derive(Debug, Clone)]
pub struct ConnInfo<C> {
    /// The wrapped connection's info (the peer's address), for whoever needs it next.
    #[allow(dead_code)]
    pub inner: C,
    pub client_name: Option<String>,
}

/// The connection info of the store endpoint's connections.
type ServedInfo = ConnInfo<<AuthorityFix<LimitedConn> as Connected>::ConnectInfo>;

impl<IO> NamedConn<IO> {
    pub fn new(io: IO, client_name: Option<String>) -> Self {
        NamedConn { io, client_name }
    }
}

/// The CN of the certificate a TLS client presented on `conn`.
pub fn conn_client_name(conn: &LimitedConn) -> Option<String> {
    match conn.conn() {
        Conn::Plain(_) => None,
        Conn::Tls(tls) => common_name(tls.get_ref().1.peer_certificates()?.first()?.as_ref()),
    }
}

/// The CN of the client certificate of the connection a request came on.
pub fn client_cert_name(extensions: &axum::http::Extensions) -> Option<String> {
    extensions.get::<ServedInfo>()?.client_name.clone()
}

impl<IO: Connected> Connected for NamedConn<IO> {
    type ConnectInfo = ConnInfo<IO::ConnectInfo>;

    fn connect_info(&self) -> Self::ConnectInfo {
        ConnInfo {
            inner: self.io.connect_info(),
            client_name: self.client_name.clone(),
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for NamedConn<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for NamedConn<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// One DER element: its tag, its contents and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[count..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
/// The OID 2.5.4.3 (commonName), DER-encoded.
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// The subject's CN of a DER certificate; `None` if it has none or cannot be read.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (SEQUENCE, cert, _) = element(der)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = element(cert)? else {
        return None;
    };
    let mut rest = tbs;
    // An explicit version ([0]) comes first when present.
    if rest.first() == Some(&0xa0) {
        rest = element(rest)?.2;
    }
    // serialNumber, signature, issuer, validity, then the subject.
    for _ in 0..4 {
        rest = element(rest)?.2;
    }
    let (SEQUENCE, mut subject, _) = element(rest)? else {
        return None;
    };
    while !subject.is_empty() {
        let (tag, set, next) = element(subject)?;
        subject = next;
        if tag != SET {
            continue;
        }
        let (SEQUENCE, pair, _) = element(set)? else {
            continue;
        };
        let (OID, oid, value) = element(pair)? else {
            continue;
        };
        if oid == COMMON_NAME {
            let (_, text, _) = element(value)?;
            return String::from_utf8(text.to_vec()).ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_common_name_is_read_from_a_generated_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "nomos");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "nomos-node-n1");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(common_name(cert.der()).as_deref(), Some("nomos-node-n1"));
    }

    #[test]
    fn garbage_and_nameless_certificates_have_no_name() {
        assert_eq!(common_name(b""), None);
        assert_eq!(common_name(&[0x30, 0x85, 1, 2, 3, 4, 5]), None);
        let params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        let mut params = params;
        params.distinguished_name = rcgen::DistinguishedName::new();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(common_name(cert.der()), None);
    }
}
