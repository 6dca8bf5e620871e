//! Certificates that reload without a restart, as Nomad's agents reload theirs on SIGHUP.
//!
//! Every listener serves through a [`ReloadingCert`] (a rustls certificate resolver holding
//! the current certificate and key). [`reload_all`] reads the files of every live one again:
//! new handshakes use the new pair, connections already open keep theirs. A pair that no longer
//! reads or does not match keeps the previous one serving, and the error is reported, so a
//! half-copied renewal never takes a listener down.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, Weak};

use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;

use crate::{pem, TlsError};

/// The reloading certificates of this process (weak: a dropped listener drops out).
static LIVE: Mutex<Vec<Weak<ReloadingCert>>> = Mutex::new(Vec::new());

/// A certificate and key read from files, read again by [`ReloadingCert::reload`].
#[derive(Debug)]
pub struct ReloadingCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadingCert {
    /// Reads the pair (an error names the file and what is wrong) and registers it for
    /// [`reload_all`].
    pub fn open(cert_file: PathBuf, key_file: PathBuf) -> Result<Arc<Self>, TlsError> {
        let current = read_pair(&cert_file, &key_file)?;
        let cert = Arc::new(ReloadingCert {
            cert_file,
            key_file,
            current: RwLock::new(Arc::new(current)),
        });
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|w| w.strong_count() > 0);
        live.push(Arc::downgrade(&cert));
        Ok(cert)
    }

    /// Reads the files again; on an error the previous pair stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = read_pair(&self.cert_file, &self.key_file)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
        Ok(())
    }

    /// The certificate file this serves.
    pub fn cert_file(&self) -> &Path {
        &self.cert_file
    }

    /// The DER of the certificate served now (its first, end-entity certificate).
    pub fn current_der(&self) -> Vec<u8> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        current.cert.first().map(|c| c.to_vec()).unwrap_or_default()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

fn read_pair(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, TlsError> {
    let certs = pem::certs(cert_file)?;
    let key = pem::private_key(key_file)?;
    let provider = tokio_rustls::rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(certs, key, &provider).map_err(|e| {
        TlsError::Config(format!(
            "certificate {} with key {}: {e}",
            cert_file.display(),
            key_file.display()
        ))
    })
}

/// Reloads every live certificate of this process; returns each one's file and outcome.
pub fn reload_all() -> Vec<(PathBuf, Result<(), TlsError>)> {
    let live: Vec<Arc<ReloadingCert>> = {
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|w| w.strong_count() > 0);
        live.iter().filter_map(Weak::upgrade).collect()
    };
    live.iter()
        .map(|c| (c.cert_file.clone(), c.reload()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{ca, cert, write_new, CertRequest, Role};

    fn pair(
        dir: &std::path::Path,
        ca_pair: &crate::generate::Pair,
        stem: &str,
    ) -> (PathBuf, PathBuf) {
        let made = cert(ca_pair, &CertRequest::new(Role::Server)).unwrap();
        let (c, k) = (
            dir.join(format!("{stem}.pem")),
            dir.join(format!("{stem}-key.pem")),
        );
        write_new(&made, &c, &k).unwrap();
        (c, k)
    }

    #[test]
    fn a_reload_serves_the_new_pair_and_a_broken_one_keeps_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let authority = ca(30).unwrap();
        let (c, k) = pair(dir.path(), &authority, "one");
        let served = ReloadingCert::open(c.clone(), k.clone()).unwrap();
        let first = served.current_der();

        // A renewal written over the same files is served after the reload.
        let (c2, k2) = pair(dir.path(), &authority, "two");
        std::fs::rename(&c2, &c).unwrap();
        std::fs::rename(&k2, &k).unwrap();
        let results = reload_all();
        assert!(
            results.iter().any(|(f, r)| *f == c && r.is_ok()),
            "{results:?}"
        );
        let second = served.current_der();
        assert_ne!(first, second);

        // A half-written file is refused and the previous pair keeps serving.
        std::fs::write(&c, b"-----BEGIN CERTIFICATE-----\ngarbage").unwrap();
        let e = served.reload().unwrap_err();
        assert!(e.to_string().contains("one.pem"), "{e}");
        assert_eq!(served.current_der(), second);

        // A key that does not match the certificate is refused too.
        let (c3, _k3) = pair(dir.path(), &authority, "three");
        std::fs::copy(&c3, &c).unwrap();
        assert!(served.reload().is_err());
        assert_eq!(served.current_der(), second);
    }

    #[test]
    fn dropped_listeners_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let authority = ca(30).unwrap();
        let (c, k) = pair(dir.path(), &authority, "gone");
        drop(ReloadingCert::open(c.clone(), k).unwrap());
        assert!(reload_all().iter().all(|(f, _)| *f != c));
    }
}
