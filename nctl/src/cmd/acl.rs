//! `nctl acl bootstrap | token ... | policy ...`: Nomad's `nomad acl` verbs over
//! `/v1/acl/...`. Secrets print only where Nomad prints them (bootstrap, create, info, self).

use std::path::PathBuf;

use nomos_api::acl::{AclPolicy, AclToken, TokenType};
use serde_json::{json, Value};

use super::client::{escape, Client};
use super::output::{self, print_kv};
use super::Global;

#[derive(Debug, clap::Subcommand)]
pub enum AclCommand {
    /// Create the first management token (once per cluster) and print it.
    Bootstrap,
    /// Token commands: create, list, info, delete, self.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Policy commands: apply, list, info, delete.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create a token: `client` with --policy (repeatable), or `management`.
    Create {
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long = "type", value_parser = ["client", "management"], default_value = "client")]
        token_type: String,
        #[arg(long = "policy", value_name = "NAME")]
        policies: Vec<String>,
        #[arg(long)]
        global: bool,
    },
    /// List tokens (without secrets).
    List,
    /// Show a token by accessor ID.
    Info { accessor: String },
    /// Delete a token by accessor ID; its secret stops working at once.
    Delete { accessor: String },
    /// Show the token this command runs with (NOMOS_TOKEN).
    #[command(name = "self")]
    Self_,
}

#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Create or replace a policy from an HCL rules file (`-` reads standard input).
    Apply {
        name: String,
        file: PathBuf,
        #[arg(long, default_value = "")]
        description: String,
    },
    List,
    Info {
        name: String,
    },
    Delete {
        name: String,
    },
}

pub async fn run(g: &Global, cmd: AclCommand) -> anyhow::Result<i32> {
    let client = Client::new(g);
    match cmd {
        AclCommand::Bootstrap => {
            let t: AclToken = client.post("/v1/acl/bootstrap", &json!({})).await?;
            print_token(&t);
        }
        AclCommand::Token(cmd) => token(&client, cmd).await?,
        AclCommand::Policy(cmd) => policy(&client, cmd).await?,
    }
    Ok(0)
}

async fn token(client: &Client, cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create {
            name,
            token_type,
            policies,
            global,
        } => {
            let body =
                json!({"Name": name, "Type": token_type, "Policies": policies, "Global": global});
            let t: AclToken = client.post("/v1/acl/token", &body).await?;
            print_token(&t);
        }
        TokenCommand::List => {
            let all: Vec<AclToken> = client.get("/v1/acl/tokens").await?;
            let mut t = output::table(&["Name", "Type", "Global", "Accessor ID", "Policies"]);
            for s in all {
                t.add_row(vec![
                    s.name,
                    type_name(s.token_type).into(),
                    s.global.to_string(),
                    s.accessor_id,
                    s.policies.join(","),
                ]);
            }
            output::print_table(&t);
        }
        TokenCommand::Info { accessor } => {
            let t: AclToken = client
                .get(&format!("/v1/acl/token/{}", escape(&accessor)))
                .await?;
            print_token(&t);
        }
        TokenCommand::Delete { accessor } => {
            let _: Value = client
                .delete(&format!("/v1/acl/token/{}", escape(&accessor)))
                .await?;
            println!("Token {accessor} successfully deleted");
        }
        TokenCommand::Self_ => {
            let t: AclToken = client.get("/v1/acl/token/self").await?;
            print_token(&t);
        }
    }
    Ok(())
}

async fn policy(client: &Client, cmd: PolicyCommand) -> anyhow::Result<()> {
    match cmd {
        PolicyCommand::Apply {
            name,
            file,
            description,
        } => {
            let rules = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&file)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?
            };
            // Checked here first, so errors name the file and its lines.
            let shown = file.display().to_string();
            if let Err(diags) = nomos_api::acl::parse_policy(&shown, &rules) {
                let lines: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
                anyhow::bail!("{}", lines.join("\n"));
            }
            let body = json!({"Name": name, "Description": description, "Rules": rules});
            let _: Value = client
                .post(&format!("/v1/acl/policy/{}", escape(&name)), &body)
                .await?;
            println!("Successfully wrote {name:?} ACL policy!");
        }
        PolicyCommand::List => {
            let all: Vec<AclPolicy> = client.get("/v1/acl/policies").await?;
            let mut t = output::table(&["Name", "Description"]);
            for p in all {
                t.add_row(vec![p.name, p.description]);
            }
            output::print_table(&t);
        }
        PolicyCommand::Info { name } => {
            let p: AclPolicy = client
                .get(&format!("/v1/acl/policy/{}", escape(&name)))
                .await?;
            print_kv(&[
                ("Name", p.name),
                ("Description", p.description),
                ("CreateIndex", p.create_index.to_string()),
                ("ModifyIndex", p.modify_index.to_string()),
            ]);
            println!("\nRules\n\n{}", p.rules.trim_end());
        }
        PolicyCommand::Delete { name } => {
            let _: Value = client
                .delete(&format!("/v1/acl/policy/{}", escape(&name)))
                .await?;
            println!("Successfully deleted {name:?} ACL policy!");
        }
    }
    Ok(())
}

fn type_name(t: TokenType) -> &'static str {
    match t {
        TokenType::Client => "client",
        TokenType::Management => "management",
    }
}

fn print_token(t: &AclToken) {
    print_kv(&[
        ("Accessor ID", t.accessor_id.clone()),
        ("Secret ID", t.secret_id.clone()),
        ("Name", t.name.clone()),
        ("Type", type_name(t.token_type).into()),
        ("Global", t.global.to_string()),
        ("Policies", t.policies.join(", ")),
        ("Create Time", t.create_time.clone()),
        ("Create Index", t.create_index.to_string()),
        ("Modify Index", t.modify_index.to_string()),
    ]);
}
