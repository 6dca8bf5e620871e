//! Certificates as `nomad tls` makes them: a self-signed agent CA, and server, client and CLI
//! certificates signed by it, named after their role in a region
//! (`server.global.nomad`, `client.global.nomad`, `cli.global.nomad`).
//!
//! The pure functions ([`ca`], [`cert`]) return PEM text; [`write_new`] puts files in place
//! without overwriting any, keys readable by their owner only.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

use crate::TlsError;

/// The CA's common name. Every CA made here has this subject: certificates name their issuer by
/// it, so [`cert`] can rebuild the issuer from the CA's key alone.
pub const CA_COMMON_NAME: &str = "Nomos Agent CA";

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A server: serves the HTTP API, calls agents.
    Server,
    /// An agent: serves its HTTP endpoint (logs, restarts, metrics) to servers.
    Client,
    /// An operator's `nctl`: only presents itself as a client.
    Cli,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Client => "client",
            Role::Cli => "cli",
        }
    }
}

/// A certificate to make.
#[derive(Debug, Clone)]
pub struct CertRequest {
    pub role: Role,
    /// `global` unless told otherwise.
    pub region: String,
    /// `nomad`, as in Nomad, so Nomad's names (`server.global.nomad`) work unchanged.
    pub domain: String,
    pub days: u32,
    pub extra_dns: Vec<String>,
    pub extra_ips: Vec<IpAddr>,
}

impl CertRequest {
    pub fn new(role: Role) -> Self {
        CertRequest {
            role,
            region: "global".into(),
            domain: "nomad".into(),
            days: 365,
            extra_dns: vec![],
            extra_ips: vec![],
        }
    }

    /// `<role>.<region>.<domain>`, the name the certificate is issued to.
    pub fn role_name(&self) -> String {
        format!("{}.{}.{}", self.role.as_str(), self.region, self.domain)
    }

    /// `<region>-<role>-<domain>`: the file names' stem (`global-server-nomad.pem`).
    pub fn file_stem(&self) -> String {
        format!("{}-{}-{}", self.region, self.role.as_str(), self.domain)
    }
}

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct Pair {
    pub cert_pem: String,
    pub key_pem: String,
}

fn gen_err(what: &str, e: impl std::fmt::Display) -> TlsError {
    TlsError::Generate {
        what: what.into(),
        reason: e.to_string(),
    }
}

/// Validity from yesterday (clock skew between machines) to `days` from today.
fn validity(params: &mut CertificateParams, days: u32) -> Result<(), TlsError> {
    let now = time::OffsetDateTime::now_utc();
    let from = now - time::Duration::days(1);
    let until = now + time::Duration::days(days.into());
    params.not_before = from;
    params.not_after = until;
    Ok(())
}

fn ca_params(days: u32) -> Result<CertificateParams, TlsError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_COMMON_NAME);
    dn.push(DnType::OrganizationName, "Nomos");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, days)?;
    Ok(params)
}

/// A new self-signed CA valid for `days` (Nomad: 5 years).
pub fn ca(days: u32) -> Result<Pair, TlsError> {
    let key = KeyPair::generate().map_err(|e| gen_err("the CA key", e))?;
    let cert = ca_params(days)?
        .self_signed(&key)
        .map_err(|e| gen_err("the CA certificate", e))?;
    Ok(Pair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A certificate for `req`, signed by the CA `ca` (as [`ca`] made it). Its names: the role
/// name, `localhost` and the extra names; its addresses: 127.0.0.1 and the extra ones.
/// Servers' and agents' certificates serve and call (server and client authentication), a
/// CLI's only calls.
pub fn cert(ca: &Pair, req: &CertRequest) -> Result<Pair, TlsError> {
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(|e| gen_err("reading the CA key", e))?;
    check_ca_matches(ca, &ca_key)?;
    let issuer = ca_params(1)?
        .self_signed(&ca_key)
        .map_err(|e| gen_err("the CA certificate", e))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, req.role_name());
    params.distinguished_name = dn;
    let mut names = vec![req.role_name(), "localhost".to_string()];
    names.extend(req.extra_dns.iter().cloned());
    for name in names {
        let ia5 = name
            .clone()
            .try_into()
            .map_err(|e| gen_err(&format!("DNS name {name:?}"), e))?;
        params.subject_alt_names.push(SanType::DnsName(ia5));
    }
    params
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    for ip in &req.extra_ips {
        params.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = match req.role {
        Role::Server | Role::Client => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        Role::Cli => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, req.days)?;
    let key = KeyPair::generate().map_err(|e| gen_err("the key", e))?;
    let cert = params
        .signed_by(&key, &issuer, &ca_key)
        .map_err(|e| gen_err("the certificate", e))?;
    Ok(Pair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Refuses a CA key that is not the CA certificate's, or a CA not made by `nctl tls ca create`.
fn check_ca_matches(ca: &Pair, key: &KeyPair) -> Result<(), TlsError> {
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::CertificateDer::from_pem_slice(ca.cert_pem.as_bytes())
        .map_err(|e| gen_err("reading the CA certificate", e))?;
    let contains = |needle: &[u8]| der.windows(needle.len()).any(|w| w == needle);
    if !contains(key.public_key_raw()) {
        return Err(gen_err(
            "a certificate",
            "the CA key does not belong to the CA certificate",
        ));
    }
    if !contains(CA_COMMON_NAME.as_bytes()) {
        return Err(gen_err(
            "a certificate",
            format!("the CA certificate was not made by `nctl tls ca create` (its subject is not {CA_COMMON_NAME:?})"),
        ));
    }
    Ok(())
}

/// Writes `pair` to `cert_path` and `key_path` (mode 0600), refusing if either exists.
pub fn write_new(pair: &Pair, cert_path: &Path, key_path: &Path) -> Result<(), TlsError> {
    for path in [cert_path, key_path] {
        if path.exists() {
            return Err(TlsError::Exists(path.to_path_buf()));
        }
    }
    write_file(key_path, &pair.key_pem, 0o600)?;
    write_file(cert_path, &pair.cert_pem, 0o644)
}

fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), TlsError> {
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| TlsError::WriteFile {
        path: PathBuf::from(path),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                TlsError::Exists(path.to_path_buf())
            } else {
                err(e)
            }
        })?;
    file.write_all(text.as_bytes()).map_err(err)
}
