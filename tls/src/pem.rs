//! Reading PEM files: certificate chains, private keys and CA bundles. Every error names the
//! file and says what was expected in it.

use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::RootCertStore;

use crate::TlsError;

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::ReadFile {
        path: path.to_path_buf(),
        source,
    })
}

fn bad(path: &Path, expected: &'static str, found: impl std::fmt::Display) -> TlsError {
    TlsError::BadPem {
        path: path.to_path_buf(),
        expected,
        found: found.to_string(),
    }
}

/// The certificates in a PEM file (a leaf first, then any intermediates); at least one.
pub fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    const EXPECTED: &str = "PEM certificates (-----BEGIN CERTIFICATE-----)";
    let certs = CertificateDer::pem_slice_iter(&read(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(path, EXPECTED, e))?;
    if certs.is_empty() {
        return Err(bad(path, EXPECTED, "no certificate"));
    }
    Ok(certs)
}

/// The private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(&read(path)?).map_err(|e| {
        bad(
            path,
            "a PEM private key (-----BEGIN PRIVATE KEY-----)",
            match e {
                rustls_pki_types::pem::Error::NoItemsFound => "no private key".to_string(),
                e => e.to_string(),
            },
        )
    })
}

/// A root store holding every certificate of a CA bundle.
pub fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certs(path)? {
        roots
            .add(cert)
            .map_err(|e| bad(path, "CA certificates", e))?;
    }
    Ok(roots)
}
