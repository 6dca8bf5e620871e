//! HTTPS on the API (`tls { http = true }`): clients trusting the cluster's CA are served,
//! others fail the handshake; with `verify_https_client` only callers presenting a certificate
//! signed by that CA (a server's, an agent's or an operator's `-cli` one) get in.

mod common;

use std::path::{Path, PathBuf};

use common::TestServer;
use nomos_server::ServerConfig;
use nomos_tls::generate::{self, CertRequest, Role};
use nomos_tls::{ClientTls, PeerName, ServerTls};

/// A CA and its server, client and CLI certificates, written to a temp dir as `nctl tls` would.
struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    fn new() -> Certs {
        let dir = tempfile::tempdir().unwrap();
        let ca = generate::ca(30).unwrap();
        generate::write_new(
            &ca,
            &dir.path().join("ca.pem"),
            &dir.path().join("ca-key.pem"),
        )
        .unwrap();
        for role in [Role::Server, Role::Client, Role::Cli] {
            let pair = generate::cert(&ca, &CertRequest::new(role)).unwrap();
            let (cert, key) = Certs::files(dir.path(), role);
            generate::write_new(&pair, &cert, &key).unwrap();
        }
        Certs { dir }
    }

    fn files(dir: &Path, role: Role) -> (PathBuf, PathBuf) {
        (
            dir.join(format!("{}.pem", role.as_str())),
            dir.join(format!("{}-key.pem", role.as_str())),
        )
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// What a server serves the API with, requiring client certificates when `verify_clients`.
    fn server_tls(&self, verify_clients: bool) -> ServerTls {
        let (cert_file, key_file) = Certs::files(self.dir.path(), Role::Server);
        ServerTls {
            cert_file,
            key_file,
            client_ca: verify_clients.then(|| self.ca()),
        }
    }

    /// A client trusting this CA, presenting the certificate of `role` when given.
    fn client(&self, role: Option<Role>) -> reqwest::Client {
        let (cert_file, key_file) = match role {
            Some(role) => {
                let (cert, key) = Certs::files(self.dir.path(), role);
                (Some(cert), Some(key))
            }
            None => (None, None),
        };
        client(&ClientTls {
            ca_file: Some(self.ca()),
            cert_file,
            key_file,
            peer_name: PeerName::Url,
        })
    }
}

fn client(tls: &ClientTls) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(nomos_tls::client_config(tls).unwrap())
        .build()
        .unwrap()
}

async fn start_https(tls: ServerTls) -> (TestServer, String) {
    let config = ServerConfig {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        tls: Some(tls),
        ..ServerConfig::default()
    };
    let srv = TestServer::start_with_config(|s| s, config).await;
    // The certificates name `localhost` and 127.0.0.1; `base` is `http://127.0.0.1:PORT`.
    let url = srv.base.replacen("http://", "https://", 1) + "/v1/jobs";
    (srv, url)
}

/// The status of a GET, or the error with its causes (its `Debug` form shows the TLS one).
async fn get(client: &reqwest::Client, url: &str) -> Result<u16, String> {
    match client.get(url).send().await {
        Ok(resp) => Ok(resp.status().as_u16()),
        Err(e) => Err(format!("{e:?}")),
    }
}

#[tokio::test]
async fn the_api_over_https_answers_a_client_trusting_the_ca() {
    let certs = Certs::new();
    let (srv, url) = start_https(certs.server_tls(false)).await;
    assert_eq!(get(&certs.client(None), &url).await, Ok(200));
    // Plain HTTP on the HTTPS port gets nothing useful.
    let plain = srv.url("/v1/jobs");
    assert!(
        !matches!(get(&reqwest::Client::new(), &plain).await, Ok(200)),
        "plain HTTP is not served on the HTTPS port"
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_client_not_trusting_the_ca_fails_the_handshake() {
    let certs = Certs::new();
    let other = Certs::new();
    let (srv, url) = start_https(certs.server_tls(false)).await;
    let err = get(&other.client(None), &url).await.unwrap_err();
    // Every `nctl tls` CA has the same subject, so webpki finds "the" issuer by name and then
    // the signature does not match; a CA of another subject gives UnknownIssuer.
    assert!(
        err.contains("BadSignature") || err.contains("UnknownIssuer"),
        "{err}"
    );
    // The public web's roots do not hold the cluster's CA either.
    let web = client(&ClientTls::default());
    assert!(get(&web, &url).await.is_err());
    srv.stop().await;
}

#[tokio::test]
async fn with_verify_https_client_a_client_without_a_certificate_is_refused() {
    let certs = Certs::new();
    let (srv, url) = start_https(certs.server_tls(true)).await;
    let refused = get(&certs.client(None), &url).await;
    assert!(refused.is_err(), "{refused:?}");
    srv.stop().await;
}

#[tokio::test]
async fn with_verify_https_client_client_and_cli_certificates_of_the_ca_get_in() {
    let certs = Certs::new();
    let (srv, url) = start_https(certs.server_tls(true)).await;
    for role in [Role::Client, Role::Cli, Role::Server] {
        assert_eq!(
            get(&certs.client(Some(role)), &url).await,
            Ok(200),
            "a {} certificate",
            role.as_str()
        );
    }
    srv.stop().await;
}

#[tokio::test]
async fn with_verify_https_client_a_certificate_of_another_ca_is_refused() {
    let certs = Certs::new();
    let other = Certs::new();
    let (srv, url) = start_https(certs.server_tls(true)).await;
    // Trusts the server (this CA) but presents a CLI certificate signed by another CA.
    let (cert, key) = Certs::files(other.dir.path(), Role::Cli);
    let stranger = client(&ClientTls {
        ca_file: Some(certs.ca()),
        cert_file: Some(cert),
        key_file: Some(key),
        peer_name: PeerName::Url,
    });
    let refused = get(&stranger, &url).await;
    assert!(refused.is_err(), "{refused:?}");
    srv.stop().await;
}
