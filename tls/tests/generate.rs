//! `nctl tls`'s certificates: they chain to their CA, carry Nomad's names, and are usable only
//! in their role.

use std::sync::Arc;

use nomos_tls::generate::{self, CertRequest, Role};
use nomos_tls::rustls::client::danger::ServerCertVerifier;
use nomos_tls::rustls::client::WebPkiServerVerifier;
use nomos_tls::rustls::crypto::ring;
use nomos_tls::rustls::server::WebPkiClientVerifier;
use nomos_tls::rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

fn roots(ca: &generate::Pair) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots.add(der(&ca.cert_pem)).unwrap();
    Arc::new(roots)
}

fn server_check(ca: &generate::Pair, cert: &generate::Pair, name: &str) -> Result<(), String> {
    let verifier =
        WebPkiServerVerifier::builder_with_provider(roots(ca), Arc::new(ring::default_provider()))
            .build()
            .unwrap();
    verifier
        .verify_server_cert(
            &der(&cert.cert_pem),
            &[],
            &ServerName::try_from(name.to_string()).unwrap(),
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn client_check(ca: &generate::Pair, cert: &generate::Pair) -> Result<(), String> {
    let verifier =
        WebPkiClientVerifier::builder_with_provider(roots(ca), Arc::new(ring::default_provider()))
            .build()
            .unwrap();
    verifier
        .verify_client_cert(&der(&cert.cert_pem), &[], UnixTime::now())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn a_server_certificate_chains_to_its_ca_under_nomads_names() {
    let ca = generate::ca(1825).unwrap();
    let server = generate::cert(&ca, &CertRequest::new(Role::Server)).unwrap();
    for name in ["server.global.nomad", "localhost", "127.0.0.1"] {
        server_check(&ca, &server, name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let err = server_check(&ca, &server, "client.global.nomad").unwrap_err();
    assert!(err.contains("not valid for name"), "{err}");
    client_check(&ca, &server).unwrap();
}

#[test]
fn a_client_certificate_is_named_after_its_region_and_extra_names() {
    let ca = generate::ca(1825).unwrap();
    let mut req = CertRequest::new(Role::Client);
    req.region = "eu".into();
    req.extra_dns = vec!["node1.example.com".into()];
    req.extra_ips = vec!["192.0.2.7".parse().unwrap()];
    let client = generate::cert(&ca, &req).unwrap();
    for name in [
        "client.eu.nomad",
        "localhost",
        "127.0.0.1",
        "node1.example.com",
        "192.0.2.7",
    ] {
        server_check(&ca, &client, name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert!(server_check(&ca, &client, "server.eu.nomad").is_err());
    client_check(&ca, &client).unwrap();
    assert_eq!(req.file_stem(), "eu-client-nomad");
}

#[test]
fn a_cli_certificate_is_refused_as_a_server_certificate() {
    let ca = generate::ca(1825).unwrap();
    let cli = generate::cert(&ca, &CertRequest::new(Role::Cli)).unwrap();
    client_check(&ca, &cli).unwrap();
    let err = server_check(&ca, &cli, "localhost").unwrap_err();
    assert!(
        err.contains("extended key usage for server authentication"),
        "{err}"
    );
}

#[test]
fn a_certificate_of_another_ca_is_refused() {
    let ca = generate::ca(1825).unwrap();
    let other = generate::ca(1825).unwrap();
    let client = generate::cert(&other, &CertRequest::new(Role::Client)).unwrap();
    assert!(client_check(&ca, &client).is_err());
    assert!(server_check(&ca, &client, "localhost").is_err());
}

#[test]
fn a_ca_key_of_another_ca_is_refused_with_a_clear_error() {
    let ca = generate::ca(1825).unwrap();
    let other = generate::ca(1825).unwrap();
    let mixed = generate::Pair {
        cert_pem: ca.cert_pem.clone(),
        key_pem: other.key_pem,
    };
    let err = generate::cert(&mixed, &CertRequest::new(Role::Server))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("does not belong to the CA certificate"),
        "{err}"
    );
}

#[test]
fn written_files_are_never_overwritten_and_keys_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let ca = generate::ca(10).unwrap();
    let (cert, key) = (dir.path().join("ca.pem"), dir.path().join("ca-key.pem"));
    generate::write_new(&ca, &cert, &key).unwrap();
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let again = generate::ca(10).unwrap();
    let err = generate::write_new(&again, &cert, &key)
        .unwrap_err()
        .to_string();
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read_to_string(&cert).unwrap(), ca.cert_pem);
}
