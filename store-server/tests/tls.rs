//! TLS: the server with a certificate (and optionally requiring client certificates), reached by
//! the `etcd-client` crate and by the real `etcdctl` over `https://`.

mod support;

use std::path::Path;
use std::sync::Arc;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use nomos_store::EmbeddedStore;
use nomos_store_server::{StoreServer, StoreServerConfig, StoreServerError, StoreServerTls};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use support::{etcdctl, TestServer};

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files in `dir`.
fn write_certs(dir: &Path) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca, &ca_key)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client = CertificateParams::new(vec!["client".to_string()])
        .unwrap()
        .signed_by(&client_key, &ca, &ca_key)
        .unwrap();
    for (name, pem) in [
        ("ca.pem", ca.pem()),
        ("server.pem", server.pem()),
        ("server-key.pem", server_key.serialize_pem()),
        ("client.pem", client.pem()),
        ("client-key.pem", client_key.serialize_pem()),
    ] {
        std::fs::write(dir.join(name), pem).unwrap();
    }
}

fn tls_config(dir: &Path, require_client_cert: bool) -> StoreServerConfig {
    let mut config = StoreServerConfig::new("127.0.0.1:0".parse().unwrap());
    config.tls = Some(StoreServerTls {
        cert: dir.join("server.pem"),
        key: dir.join("server-key.pem"),
        client_ca: require_client_cert.then(|| dir.join("ca.pem")),
    });
    config
}

fn ca(dir: &Path) -> Certificate {
    Certificate::from_pem(std::fs::read(dir.join("ca.pem")).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_reach_the_server_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    write_certs(dir.path());
    let server = TestServer::start_with(
        tls_config(dir.path(), false),
        Arc::new(EmbeddedStore::in_memory()),
    )
    .await;
    assert!(
        server.endpoint.starts_with("https://127.0.0.1:"),
        "{}",
        server.endpoint
    );

    let options = ConnectOptions::new().with_tls(TlsOptions::new().ca_certificate(ca(dir.path())));
    let mut client = Client::connect([server.endpoint.as_str()], Some(options))
        .await
        .unwrap();
    client.put("secure", "yes", None).await.unwrap();
    let got = client.get("secure", None).await.unwrap();
    assert_eq!(got.kvs()[0].value(), b"yes");

    let cacert = format!("--cacert={}", dir.path().join("ca.pem").display());
    let out = etcdctl(&server.endpoint, &[&cacert, "get", "secure"], None).await;
    assert_eq!(
        (out.ok, out.stdout.as_str()),
        (true, "secure\nyes\n"),
        "{}",
        out.stderr
    );
    let out = etcdctl(&server.endpoint, &[&cacert, "endpoint", "status"], None).await;
    assert!(
        out.ok && out.stdout.contains(", true, false, "),
        "endpoint status over TLS: {out:?}"
    );
    // Without trusting the CA, etcdctl refuses the server.
    let out = etcdctl(&server.endpoint, &["get", "secure"], None).await;
    assert!(!out.ok, "an untrusted certificate was accepted: {out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_ca_makes_client_certificates_mandatory() {
    let dir = tempfile::tempdir().unwrap();
    write_certs(dir.path());
    let server = TestServer::start_with(
        tls_config(dir.path(), true),
        Arc::new(EmbeddedStore::in_memory()),
    )
    .await;
    let p = |name: &str| dir.path().join(name).display().to_string();

    let without = etcdctl(
        &server.endpoint,
        &[&format!("--cacert={}", p("ca.pem")), "put", "k", "v"],
        None,
    )
    .await;
    assert!(
        !without.ok,
        "a client without a certificate got in: {without:?}"
    );
    let with = etcdctl(
        &server.endpoint,
        &[
            &format!("--cacert={}", p("ca.pem")),
            &format!("--cert={}", p("client.pem")),
            &format!("--key={}", p("client-key.pem")),
            "put",
            "k",
            "v",
        ],
        None,
    )
    .await;
    assert_eq!(
        (with.ok, with.stdout.as_str()),
        (true, "OK\n"),
        "{}",
        with.stderr
    );

    let identity = Identity::from_pem(
        std::fs::read(p("client.pem")).unwrap(),
        std::fs::read(p("client-key.pem")).unwrap(),
    );
    let options = ConnectOptions::new().with_tls(
        TlsOptions::new()
            .ca_certificate(ca(dir.path()))
            .identity(identity),
    );
    let mut client = Client::connect([server.endpoint.as_str()], Some(options))
        .await
        .unwrap();
    assert_eq!(client.get("k", None).await.unwrap().kvs()[0].value(), b"v");
}

#[tokio::test]
async fn missing_or_bad_tls_files_are_reported_by_name() {
    let dir = tempfile::tempdir().unwrap();
    match StoreServer::bind(tls_config(dir.path(), false)).await {
        Err(StoreServerError::TlsFile { path, .. }) => {
            assert_eq!(path, dir.path().join("server.pem"))
        }
        Err(other) => panic!("expected a missing-file error, got {other}"),
        Ok(_) => panic!("bound without a certificate"),
    }
    std::fs::write(dir.path().join("server.pem"), "not a certificate").unwrap();
    std::fs::write(dir.path().join("server-key.pem"), "not a key").unwrap();
    match StoreServer::bind(tls_config(dir.path(), false)).await {
        Err(StoreServerError::TlsConfig(msg)) => assert!(msg.contains("server.pem"), "{msg}"),
        Err(other) => panic!("expected a TLS configuration error, got {other}"),
        Ok(_) => panic!("bound with a bogus certificate"),
    }
}
