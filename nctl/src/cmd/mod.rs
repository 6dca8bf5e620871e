//! The command line: one file per verb. Client verbs talk to a server over HTTP ([`client`]);
//! `dev`, `server` and `agent` run the long-lived parts in this process.

pub mod acl;
pub mod agent;
pub mod alloc;
pub mod alloc_exec;
pub mod apply;
pub mod client;
pub mod client_tls;
pub mod completion;
pub mod config;
pub mod deployment;
pub mod dev;
pub mod exposure;
pub mod fmt;
pub mod get;
pub mod job;
pub mod jobvars;
pub mod join;
pub mod keyring;
pub mod logs;
pub mod namespace;
pub mod node;
pub mod node_flags;
pub mod operator;
pub mod output;
pub mod quota;
pub mod runtime;
pub mod server;
pub mod service;
pub mod snapshot;
pub mod status;
pub mod stop;
pub mod tls;
pub mod validate;
pub mod var;

use clap::{Args, Parser, Subcommand};

/// The server address when neither `--address` nor `NOMOS_ADDR` is given.
pub const DEFAULT_ADDR: &str = "http://127.0.0.1:4747";

#[derive(Debug, Parser)]
#[command(
    name = "nctl",
    version,
    about = "Nomos: a Nomad-style workload orchestrator"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every client verb understands.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// The server's HTTP address (NOMAD_ADDR is read when NOMOS_ADDR is not set).
    #[arg(long, global = true, env = "NOMOS_ADDR", default_value_t = default_address())]
    pub address: String,
    /// The namespace of jobs.
    #[arg(
        long,
        short = 'n',
        global = true,
        env = "NOMOS_NAMESPACE",
        default_value = "default"
    )]
    pub namespace: String,
    #[command(flatten)]
    pub tls: client_tls::TlsArgs,
    /// The ACL token's secret ID, sent as `X-Nomad-Token` (NOMAD_TOKEN is read when
    /// NOMOS_TOKEN is not set).
    #[arg(long, global = true, env = "NOMOS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl Global {
    /// The token to send: `--token` / `NOMOS_TOKEN`, else `NOMAD_TOKEN`.
    pub fn token(&self) -> Option<String> {
        self.token
            .clone()
            .or_else(|| std::env::var("NOMAD_TOKEN").ok())
            .filter(|t| !t.is_empty())
    }
}

/// `NOMAD_ADDR` for users migrating from Nomad, else [`DEFAULT_ADDR`].
fn default_address() -> String {
    std::env::var("NOMAD_ADDR")
        .ok()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| DEFAULT_ADDR.to_string())
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check job files; print warnings, or FILE:LINE:COL errors and exit 1.
    Validate(validate::ValidateArgs),
    /// Lay out HCL job files canonically, keeping comments (--check: only report).
    Fmt(fmt::FmtArgs),
    /// Submit job files (HCL, YAML or JSON) and print what changed.
    Apply(apply::ApplyArgs),
    /// Show what applying a job file would change (exit 0: no allocation placed, stopped or
    /// replaced; 1: some would be; 255: error).
    Plan(apply::PlanArgs),
    /// List jobs, allocations, nodes or deployments.
    Get(get::GetArgs),
    /// Show a job: type, status, per-group summary, latest deployment and allocations.
    Status(status::StatusArgs),
    /// Stop a job (its allocations stop); --purge removes it.
    Stop(stop::StopArgs),
    /// Print (or follow) a task's output.
    Logs(logs::LogsArgs),
    /// Allocation commands.
    #[command(subcommand)]
    Alloc(alloc::AllocCommand),
    /// Node commands.
    #[command(subcommand)]
    Node(node::NodeCommand),
    /// Job commands (history, revert).
    #[command(subcommand)]
    Job(job::JobCommand),
    /// Deployment commands: list, status, promote, fail, pause, resume.
    #[command(subcommand)]
    Deployment(deployment::DeploymentCommand),
    /// ACL bootstrap, tokens and policies.
    #[command(subcommand)]
    Acl(acl::AclCommand),
    /// Namespaces: apply, list, status, delete.
    #[command(subcommand)]
    Namespace(namespace::NamespaceCommand),
    /// Quota specifications (CPU, memory, allocations per namespace): apply, list, status,
    /// delete.
    #[command(subcommand)]
    Quota(quota::QuotaCommand),
    /// The service catalogue: list services, show a service's instances and their health.
    #[command(subcommand)]
    Service(service::ServiceCommand),
    /// Variables: put, get, list, purge (encrypted at rest).
    #[command(subcommand)]
    Var(var::VarCommand),
    /// Cluster-wide operations (`system gc`).
    #[command(subcommand)]
    System(SystemCommand),
    /// Operator commands (`operator root keyring list|rotate|remove`, `operator snapshot
    /// save|inspect|restore`).
    #[command(subcommand)]
    Operator(operator::OperatorCommand),
    /// Print a shell completion script.
    Completion(completion::CompletionArgs),
    /// Run a whole cluster in this process: store, API, controllers and a local agent.
    Dev(dev::DevArgs),
    /// Run the API and the controllers against etcd or an embedded store.
    Server(server::ServerArgs),
    /// Run a node agent against the store.
    Agent(agent::AgentArgs),
    /// Make a CA and certificates for TLS (`tls ca create`, `tls cert create`).
    #[command(subcommand)]
    Tls(tls::TlsCommand),
}

#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Collect finished allocations, stopped jobs and old versions now.
    Gc,
}

/// Runs a parsed command line and returns the exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    let g = cli.global;
    if !matches!(
        cli.command,
        Command::Dev(_) | Command::Server(_) | Command::Agent(_)
    ) {
        // Short-lived client verbs end quietly when their output pipe closes (`nctl get allocs
        // | head`). SIGPIPE stays ignored: a socket whose peer went away is an error to report.
        crate::console::end_quietly_on_closed_pipe();
    }
    match cli.command {
        Command::Validate(args) => validate::run(&g, args),
        Command::Fmt(args) => fmt::run(args),
        Command::Completion(args) => completion::run(args),
        Command::Tls(cmd) => tls::run(cmd),
        command => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(run_async(g, command))
        }
    }
}

async fn run_async(g: Global, command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Apply(args) => apply::apply(&g, args).await,
        Command::Plan(args) => apply::plan(&g, args).await,
        Command::Get(args) => get::run(&g, args).await,
        Command::Status(args) => status::run(&g, args).await,
        Command::Stop(args) => stop::run(&g, args).await,
        Command::Logs(args) => logs::run(&g, args).await,
        Command::Alloc(cmd) => alloc::run(&g, cmd).await,
        Command::Node(cmd) => node::run(&g, cmd).await,
        Command::Job(cmd) => job::run(&g, cmd).await,
        Command::Deployment(cmd) => deployment::run(&g, cmd).await,
        Command::Acl(cmd) => acl::run(&g, cmd).await,
        Command::Var(cmd) => var::run(&g, cmd).await,
        Command::Service(cmd) => service::run(&g, cmd).await,
        Command::Namespace(cmd) => namespace::run(&g, cmd).await,
        Command::Quota(cmd) => quota::run(&g, cmd).await,
        Command::Operator(cmd) => operator::run(&g, cmd).await,
        Command::System(SystemCommand::Gc) => {
            let client = client::Client::new(&g);
            let r: nomos_server::views::GcResponse =
                client.post("/v1/system/gc", &serde_json::json!({})).await?;
            println!("collected {} object(s)", r.collected);
            Ok(0)
        }
        Command::Dev(args) => dev::run(args).await,
        Command::Server(args) => server::run(args).await,
        Command::Agent(args) => agent::run(args, &g).await,
        Command::Validate(_) | Command::Fmt(_) | Command::Completion(_) | Command::Tls(_) => {
            unreachable_sync()
        }
    }
}

fn unreachable_sync() -> anyhow::Result<i32> {
    anyhow::bail!("this command runs without a runtime")
}
