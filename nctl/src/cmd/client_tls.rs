//! TLS for `nctl`'s HTTP calls: the CLI's flags and environment (`--ca-cert` / `NOMOS_CACERT`,
//! `--client-cert` / `NOMOS_CLIENT_CERT`, `--client-key` / `NOMOS_CLIENT_KEY`, each also read
//! under Nomad's `NOMAD_*` name), reqwest clients over [`nomos_tls`] configs, and error
//! messages that say what went wrong in a handshake and what to set.

use std::path::PathBuf;

use nomos_tls::{ClientTls, PeerName};

/// The CLI's TLS options (global: every client verb takes them).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// PEM file of the CA that signed the server's certificate (also NOMAD_CACERT).
    #[arg(long, global = true, env = "NOMOS_CACERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Client certificate to present, for servers with `verify_https_client` (also
    /// NOMAD_CLIENT_CERT).
    #[arg(long, global = true, env = "NOMOS_CLIENT_CERT", value_name = "FILE")]
    pub client_cert: Option<PathBuf>,
    /// The client certificate's key (also NOMAD_CLIENT_KEY).
    #[arg(long, global = true, env = "NOMOS_CLIENT_KEY", value_name = "FILE")]
    pub client_key: Option<PathBuf>,
}

fn nomad_env(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

impl TlsArgs {
    /// The options with Nomad's variables filling what neither a flag nor `NOMOS_*` set.
    pub fn client_tls(&self) -> ClientTls {
        ClientTls {
            ca_file: self.ca_cert.clone().or_else(|| nomad_env("NOMAD_CACERT")),
            cert_file: self
                .client_cert
                .clone()
                .or_else(|| nomad_env("NOMAD_CLIENT_CERT")),
            key_file: self
                .client_key
                .clone()
                .or_else(|| nomad_env("NOMAD_CLIENT_KEY")),
            peer_name: PeerName::Url,
        }
    }

    /// The CLI's HTTP client: reqwest's defaults unless a TLS option is set.
    pub fn http_client(&self) -> anyhow::Result<reqwest::Client> {
        let tls = self.client_tls();
        if tls == ClientTls::default() {
            return Ok(reqwest::Client::new());
        }
        http_client(&tls).map_err(|e| {
            anyhow::anyhow!(
                "TLS setup (--ca-cert/NOMOS_CACERT, --client-cert/NOMOS_CLIENT_CERT, --client-key/NOMOS_CLIENT_KEY): {e}"
            )
        })
    }
}

/// A reqwest client connecting with `tls`.
pub fn http_client(tls: &ClientTls) -> anyhow::Result<reqwest::Client> {
    let config = nomos_tls::client_config(tls)?;
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .build()?)
}

/// A failed request, with every cause (reqwest hides the TLS one in its source chain) and a
/// hint for the usual TLS mistakes.
pub fn describe_send_error(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    let hint = if text.contains("InvalidContentType") || text.contains("corrupt message") {
        "\n(the server does not answer TLS: use an http:// address, or turn on `tls { http = true }` on the server)"
    } else if text.contains("CertificateRequired") || text.contains("certificate required") {
        "\n(the server requires a client certificate: set NOMOS_CLIENT_CERT and NOMOS_CLIENT_KEY, or --client-cert and --client-key)"
    } else if closed_after_handshake(e, &text) {
        // TLS 1.3 refuses a client certificate after the handshake: the alert naming why
        // arrives with the first read, which hyper reports only as a closed connection.
        "\n(the server closed the connection right after the TLS handshake: it most likely requires a client certificate signed by its CA (`verify_https_client`): set NOMOS_CLIENT_CERT and NOMOS_CLIENT_KEY, or --client-cert and --client-key, to one made by `nctl tls cert create -cli`)"
    } else if text.contains("not valid for name") {
        "\n(the server's certificate does not name the host in the address: use a name it holds, e.g. localhost, or make its certificate with -additional-dnsname / -additional-ipaddress)"
    } else if text.contains("UnknownIssuer")
        || text.contains("unknown issuer")
        || text.contains("BadSignature")
    {
        "\n(the server's certificate is not signed by a CA this client trusts: set NOMOS_CACERT or --ca-cert to the cluster's CA)"
    } else {
        ""
    };
    format!("{text}{hint}")
}

/// Whether an `https://` request failed because the connection closed before the request
/// could go out, which is how a refused client certificate shows.
fn closed_after_handshake(e: &reqwest::Error, text: &str) -> bool {
    e.url().is_some_and(|u| u.scheme() == "https")
        && (text.contains("connection was not ready")
            || text.contains("connection closed before message completed"))
}
