//! TLS for the tests: certificates made with `nctl tls` under Nomad's file names, Nomad's `tls`
//! block over them, and an HTTPS GET that reports why a handshake failed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Cluster;

/// A CA and `-server`, `-client` and `-cli` certificates made with `nctl tls` in the cluster's
/// directory.
pub fn make_certs(c: &Cluster) {
    c.ok(&["tls", "ca", "create"]);
    for role in ["-server", "-client", "-cli"] {
        c.ok(&["tls", "cert", "create", role]);
    }
}

/// `dir/name.pem`.
pub fn pem(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.pem"))
}

/// A `tls` block serving with the `role` certificate made by [`make_certs`]: HTTPS on the API
/// requiring a client certificate, mutual TLS between servers and agents.
pub fn tls_block(dir: &Path, role: &str) -> String {
    format!(
        r#"
tls {{
  http                = true
  rpc                 = true
  ca_file             = "{ca}"
  cert_file           = "{cert}"
  key_file            = "{key}"
  verify_https_client = true
}}
"#,
        ca = pem(dir, "nomad-agent-ca").display(),
        cert = pem(dir, &format!("global-{role}-nomad")).display(),
        key = pem(dir, &format!("global-{role}-nomad-key")).display(),
    )
}

/// `NOMOS_CACERT`, `NOMOS_CLIENT_CERT` and `NOMOS_CLIENT_KEY` for `nctl` holding the `-cli`
/// certificate made by [`make_certs`] in `dir`.
pub fn cli_env(dir: &Path) -> Vec<(String, String)> {
    [
        ("NOMOS_CACERT", pem(dir, "nomad-agent-ca")),
        ("NOMOS_CLIENT_CERT", pem(dir, "global-cli-nomad")),
        ("NOMOS_CLIENT_KEY", pem(dir, "global-cli-nomad-key")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.display().to_string()))
    .collect()
}

/// A GET of `url` with a client trusting `ca` (the chain only, as servers check agents) and
/// presenting `cert` when given: the status, or the error with its causes.
pub fn https_get(url: &str, ca: PathBuf, cert: Option<(PathBuf, PathBuf)>) -> Result<u16, String> {
    let (cert_file, key_file) = cert.unzip();
    let tls = nomos_tls::ClientTls {
        ca_file: Some(ca),
        cert_file,
        key_file,
        peer_name: nomos_tls::PeerName::ChainOnly,
    };
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(nomos_tls::client_config(&tls).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        match client.get(url).send().await {
            Ok(resp) => Ok(resp.status().as_u16()),
            Err(e) => Err(format!("{e:?}")),
        }
    })
}
