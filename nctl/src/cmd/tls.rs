//! `nctl tls`: a CA and certificates for mutual TLS, as `nomad tls` makes them, written to
//! the working directory under Nomad's file names (`nomad-agent-ca.pem`,
//! `global-server-nomad.pem`, ...). Nothing is overwritten; keys are readable by their owner only.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use nomos_tls::generate::{self, CertRequest, Role};

#[derive(Debug, clap::Subcommand)]
pub enum TlsCommand {
    /// Certificate authority commands.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Certificate commands.
    #[command(subcommand)]
    Cert(CertCommand),
}

#[derive(Debug, clap::Subcommand)]
pub enum CaCommand {
    /// Create a self-signed CA: <domain>-agent-ca.pem and <domain>-agent-ca-key.pem.
    Create(CaCreateArgs),
}

#[derive(Debug, clap::Subcommand)]
pub enum CertCommand {
    /// Create a certificate signed by the CA: <region>-<server|client|cli>-<domain>.pem and
    /// its -key.pem.
    Create(CertCreateArgs),
}

#[derive(Debug, clap::Args)]
pub struct CaCreateArgs {
    /// The cluster's domain (names the files).
    #[arg(long, default_value = "nomad")]
    pub domain: String,
    /// Days the CA is valid for.
    #[arg(long, default_value_t = 1825)]
    pub days: u32,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("role").required(true).args(["server", "client", "cli"])))]
pub struct CertCreateArgs {
    /// A server certificate (`server.<region>.<domain>`): serves the API and calls agents.
    #[arg(long)]
    pub server: bool,
    /// An agent certificate (`client.<region>.<domain>`): serves the agent's endpoint.
    #[arg(long)]
    pub client: bool,
    /// A CLI certificate (`cli.<region>.<domain>`): for operators' `nctl`.
    #[arg(long)]
    pub cli: bool,
    #[arg(long, default_value = "global")]
    pub region: String,
    #[arg(long, default_value = "nomad")]
    pub domain: String,
    /// Days the certificate is valid for.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// The CA certificate (default <domain>-agent-ca.pem).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// The CA key (default <domain>-agent-ca-key.pem).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Another DNS name for the certificate (repeatable); `localhost` is always in it.
    #[arg(long = "additional-dnsname", value_name = "NAME")]
    pub additional_dnsname: Vec<String>,
    /// Another IP address for the certificate (repeatable); 127.0.0.1 is always in it.
    #[arg(long = "additional-ipaddress", value_name = "IP")]
    pub additional_ipaddress: Vec<IpAddr>,
}

/// Runs a `tls` command in the working directory.
pub fn run(cmd: TlsCommand) -> anyhow::Result<i32> {
    match cmd {
        TlsCommand::Ca(CaCommand::Create(args)) => ca_create(&args, Path::new(".")),
        TlsCommand::Cert(CertCommand::Create(args)) => cert_create(&args, Path::new(".")),
    }
}

fn ca_create(args: &CaCreateArgs, dir: &Path) -> anyhow::Result<i32> {
    let cert = dir.join(format!("{}-agent-ca.pem", args.domain));
    let key = dir.join(format!("{}-agent-ca-key.pem", args.domain));
    generate::write_new(&generate::ca(args.days)?, &cert, &key)?;
    println!("==> CA certificate saved to: {}", cert.display());
    println!("==> CA certificate key saved to: {}", key.display());
    Ok(0)
}

fn cert_create(args: &CertCreateArgs, dir: &Path) -> anyhow::Result<i32> {
    let role = if args.server {
        Role::Server
    } else if args.client {
        Role::Client
    } else {
        Role::Cli
    };
    let ca_cert = args
        .ca
        .clone()
        .unwrap_or_else(|| dir.join(format!("{}-agent-ca.pem", args.domain)));
    let ca_key = args
        .key
        .clone()
        .unwrap_or_else(|| dir.join(format!("{}-agent-ca-key.pem", args.domain)));
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!(
                "cannot read {}: {e} (make a CA first with `nctl tls ca create`, or name it with --ca and --key)",
                path.display()
            )
        })
    };
    let ca = generate::Pair {
        cert_pem: read(&ca_cert)?,
        key_pem: read(&ca_key)?,
    };
    let req = CertRequest {
        region: args.region.clone(),
        domain: args.domain.clone(),
        days: args.days,
        extra_dns: args.additional_dnsname.clone(),
        extra_ips: args.additional_ipaddress.clone(),
        ..CertRequest::new(role)
    };
    let pair = generate::cert(&ca, &req)?;
    let cert = dir.join(format!("{}.pem", req.file_stem()));
    let key = dir.join(format!("{}-key.pem", req.file_stem()));
    generate::write_new(&pair, &cert, &key)?;
    if role == Role::Server {
        println!("==> WARNING: a server certificate lets its holder act as a server: keep it on server machines only.");
    }
    println!(
        "==> Using CA file {} and CA key {}",
        ca_cert.display(),
        ca_key.display()
    );
    println!("==> Certificate saved to: {}", cert.display());
    println!("==> Certificate key saved to: {}", key.display());
    Ok(0)
}
