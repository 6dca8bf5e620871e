//! The agent configuration's `tls` block, as in Nomad: `http` (HTTPS on the API), `rpc` (mutual
//! TLS between servers and agents: here the agents' HTTP endpoint and the servers' calls to
//! it), the PEM files, `verify_https_client` and `verify_server_hostname`.

use std::path::PathBuf;

use super::{Entry, Reader, Section};

/// `tls { ... }`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TlsSection {
    /// Serve the HTTP API over HTTPS.
    pub http: bool,
    /// Mutual TLS between servers and agents (the agent's endpoint requires a client
    /// certificate signed by the CA; servers present theirs).
    pub rpc: bool,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// The API requires a client certificate signed by the CA too.
    pub verify_https_client: bool,
    /// Servers check that an agent's certificate is issued to `client.<region>.nomad`, not
    /// only signed by the CA.
    pub verify_server_hostname: bool,
}

const TLS: Section = Section {
    name: "tls",
    known: &[
        "http",
        "rpc",
        "ca_file",
        "cert_file",
        "key_file",
        "verify_https_client",
        "verify_server_hostname",
    ],
    ignored: &[
        "rpc_upgrade_mode",
        "tls_min_version",
        "tls_cipher_suites",
        "tls_prefer_server_cipher_suites",
    ],
};

/// Reads the entries of a `tls` block.
pub(super) fn read(r: &mut Reader<'_>, settings: &[Entry], out: &mut TlsSection) {
    for e in settings {
        let name = format!("tls.{}", e.key);
        let v = &e.value;
        match e.key.as_str() {
            "http" => out.http = r.boolean(&name, v),
            "rpc" => out.rpc = r.boolean(&name, v),
            "ca_file" => out.ca_file = r.string(&name, v).map(PathBuf::from),
            "cert_file" => out.cert_file = r.string(&name, v).map(PathBuf::from),
            "key_file" => out.key_file = r.string(&name, v).map(PathBuf::from),
            "verify_https_client" => out.verify_https_client = r.boolean(&name, v),
            "verify_server_hostname" => out.verify_server_hostname = r.boolean(&name, v),
            _ => r.unknown(&TLS, e),
        }
    }
}

impl TlsSection {
    /// The three files, once `http` or `rpc` is on; an error naming what is missing.
    pub fn files(&self) -> anyhow::Result<Option<(PathBuf, PathBuf, PathBuf)>> {
        if !self.http && !self.rpc {
            return Ok(None);
        }
        match (&self.ca_file, &self.cert_file, &self.key_file) {
            (Some(ca), Some(cert), Some(key)) => Ok(Some((ca.clone(), cert.clone(), key.clone()))),
            _ => anyhow::bail!(
                "tls: `http` or `rpc` is on, so `ca_file`, `cert_file` and `key_file` must all be set (make them with `nctl tls ca create` and `nctl tls cert create`)"
            ),
        }
    }

    /// What the HTTP API serves with (`tls.http`), requiring client certificates with
    /// `verify_https_client`.
    pub fn api(&self) -> anyhow::Result<Option<nomos_tls::ServerTls>> {
        let Some((ca, cert, key)) = self.files()?.filter(|_| self.http) else {
            return Ok(None);
        };
        Ok(Some(nomos_tls::ServerTls {
            cert_file: cert,
            key_file: key,
            client_ca: self.verify_https_client.then_some(ca),
        }))
    }

    /// What an agent's endpoint serves with: always requiring a certificate signed by the CA.
    pub fn agent(&self) -> anyhow::Result<Option<nomos_tls::ServerTls>> {
        Ok(self.files()?.map(|(ca, cert, key)| nomos_tls::ServerTls {
            cert_file: cert,
            key_file: key,
            client_ca: Some(ca),
        }))
    }

    /// How a server calls agents: trusting the CA, presenting its certificate, checking
    /// `client.<region>.nomad` with `verify_server_hostname`.
    pub fn to_agents(&self, region: &str) -> anyhow::Result<Option<nomos_tls::ClientTls>> {
        Ok(self.files()?.map(|(ca, cert, key)| nomos_tls::ClientTls {
            ca_file: Some(ca),
            cert_file: Some(cert),
            key_file: Some(key),
            peer_name: if self.verify_server_hostname {
                nomos_tls::PeerName::Fixed(format!("client.{region}.nomad"))
            } else {
                nomos_tls::PeerName::ChainOnly
            },
        }))
    }

    /// How an agent calls the servers' API (for its tasks' Variables): over HTTPS once
    /// `http` is on, trusting the CA, presenting the node's certificate, checking
    /// `server.<region>.nomad` with `verify_server_hostname`.
    pub fn to_servers(&self, region: &str) -> anyhow::Result<Option<nomos_tls::ClientTls>> {
        Ok(self
            .files()?
            .filter(|_| self.http)
            .map(|(ca, cert, key)| nomos_tls::ClientTls {
                ca_file: Some(ca),
                cert_file: Some(cert),
                key_file: Some(key),
                peer_name: if self.verify_server_hostname {
                    nomos_tls::PeerName::Fixed(format!("server.{region}.nomad"))
                } else {
                    nomos_tls::PeerName::ChainOnly
                },
            }))
    }
}
