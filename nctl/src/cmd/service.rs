//! `nctl service list | info | delete`: Nomad's `nomad service` verbs over the service
//! catalogue (`/v1/services`, `/v1/service/{name}`), with each instance's health.

use serde_json::Value;

use super::client::{escape, Client};
use super::output;
use super::Global;
use nomos_server::services::{NamespaceServices, RegistrationView};

#[derive(Debug, clap::Subcommand)]
pub enum ServiceCommand {
    /// List the services registered in the namespace (`-n '*'`: every namespace).
    List,
    /// Show a service's instances: where each one is, its allocation and its health.
    Info {
        name: String,
        /// Only instances that pass this filter (Nomad's expressions, e.g. `Tags contains "v1"`).
        #[arg(long)]
        filter: Option<String>,
        /// Print the instances as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove one registration (it comes back while its allocation runs).
    Delete { name: String, id: String },
}

pub async fn run(g: &Global, cmd: ServiceCommand) -> anyhow::Result<i32> {
    let client = Client::new(g);
    let ns = escape(&g.namespace);
    match cmd {
        ServiceCommand::List => {
            let all: Vec<NamespaceServices> =
                client.get(&format!("/v1/services?namespace={ns}")).await?;
            let mut t = output::table(&["Service Name", "Namespace", "Tags"]);
            for n in all {
                for s in n.services {
                    t.add_row(vec![
                        s.service_name,
                        n.namespace.clone(),
                        format!("[{}]", s.tags.join(",")),
                    ]);
                }
            }
            output::print_table(&t);
        }
        ServiceCommand::Info { name, filter, json } => {
            let mut path = format!("/v1/service/{}?namespace={ns}", escape(&name));
            if let Some(f) = filter {
                path.push_str(&format!("&filter={}", escape(&f)));
            }
            let instances: Vec<RegistrationView> = client.get(&path).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&instances)?);
                return Ok(0);
            }
            if instances.is_empty() {
                println!(
                    "No instances of service {name:?} in namespace {:?}",
                    g.namespace
                );
                return Ok(0);
            }
            let mut t =
                output::table(&["Job ID", "Address", "Tags", "Node ID", "Alloc ID", "Health"]);
            for r in instances {
                t.add_row(vec![
                    r.job_id.clone(),
                    format!("{}:{}", r.address, r.port),
                    format!("[{}]", r.tags.join(",")),
                    output::short(&r.node_id),
                    output::short(&r.alloc_id),
                    health(&r),
                ]);
            }
            output::print_table(&t);
        }
        ServiceCommand::Delete { name, id } => {
            let _: Value = client
                .delete(&format!(
                    "/v1/service/{}/{}?namespace={ns}",
                    escape(&name),
                    escape(&id)
                ))
                .await?;
            println!("Successfully deleted service registration {id:?}");
        }
    }
    Ok(0)
}

/// `passing`, or the worst status and the checks that do not pass, as `critical (web.alive)`.
fn health(r: &RegistrationView) -> String {
    if r.healthy {
        return "passing".into();
    }
    let failing: Vec<&str> = r
        .checks
        .iter()
        .filter(|(_, s)| s.as_str() != "passing")
        .map(|(n, _)| n.as_str())
        .collect();
    let worst = nomos_api::service::worst_check_status(r.checks.values().map(String::as_str));
    format!("{worst} ({})", failing.join(", "))
}
