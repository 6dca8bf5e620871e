//! `nctl acl bootstrap | token ... | policy ... | role ...`: Nomad's `nomad acl` verbs over
//! `/v1/acl/...`. Secrets print only where Nomad prints them (bootstrap, create, info, self).

use std::path::PathBuf;

use nomos_api::acl::{AclPolicy, AclRole, AclToken, TokenType};
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
    /// Role commands: create, list, info, update, delete.
    #[command(subcommand)]
    Role(RoleCommand),
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
        /// Link the token to the role with this name (repeatable).
        #[arg(long = "role-name", value_name = "NAME")]
        role_names: Vec<String>,
        /// Link the token to the role with this ID (repeatable).
        #[arg(long = "role-id", value_name = "ID")]
        role_ids: Vec<String>,
        /// Time to live, such as "10m" or "1h" (1m to 24h); without it the token never expires.
        #[arg(long)]
        ttl: Option<String>,
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
pub enum RoleCommand {
    /// Create a role: a name and the policies (--policy, repeatable) its tokens get.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long = "policy", value_name = "NAME", required = true)]
        policies: Vec<String>,
    },
    /// List roles.
    List,
    /// Show a role by ID (or by name with --by-name).
    Info {
        id: String,
        #[arg(long = "by-name")]
        by_name: bool,
    },
    /// Change a role: the fields given replace the role's (the others stay, unless --no-merge).
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long = "policy", value_name = "NAME")]
        policies: Vec<String>,
        /// Replace every field with what is given, instead of keeping the ones not given.
        #[arg(long = "no-merge")]
        no_merge: bool,
    },
    /// Delete a role by ID; its tokens lose its policies at once.
    Delete { id: String },
}

#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Create or replace a policy from an HCL rules file (`-` reads standard input).
    Apply {
        name: String,
        file: PathBuf,
        #[arg(long, default_value = "")]
        description: String,
        /// Attach the policy to this job's workload identities (in `--namespace`), as
        /// `nomad acl policy apply -job` does.
        #[arg(long)]
        job: Option<String>,
        /// Only to this task group of the job (needs `--job`).
        #[arg(long, requires = "job")]
        group: Option<String>,
        /// Only to this task of the group (needs `--group`).
        #[arg(long, requires = "group")]
        task: Option<String>,
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
        AclCommand::Role(cmd) => role(&client, cmd).await?,
    }
    Ok(0)
}

async fn token(client: &Client, cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create {
            name,
            token_type,
            policies,
            role_names,
            role_ids,
            ttl,
            global,
        } => {
            let roles: Vec<Value> = role_ids
                .iter()
                .map(|id| json!({"ID": id}))
                .chain(role_names.iter().map(|n| json!({"Name": n})))
                .collect();
            let mut body = json!({"Name": name, "Type": token_type, "Policies": policies,
                                  "Roles": roles, "Global": global});
            if let Some(ttl) = ttl {
                body["ExpirationTTL"] = Value::String(ttl);
            }
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
            job,
            group,
            task,
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
            let mut body = json!({"Name": name, "Description": description, "Rules": rules});
            if let Some(job) = job {
                body["JobACL"] = json!({
                    "Namespace": client.namespace,
                    "JobID": job,
                    "Group": group.unwrap_or_default(),
                    "Task": task.unwrap_or_default(),
                });
            }
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
            let job = p.job_acl.as_ref().map_or_else(
                || "<none>".to_string(),
                |j| {
                    let parts = [&j.namespace, &j.job_id, &j.group, &j.task];
                    let named: Vec<&str> = parts
                        .iter()
                        .map(|s| s.as_str())
                        .filter(|s| !s.is_empty())
                        .collect();
                    named.join("/")
                },
            );
            print_kv(&[
                ("Name", p.name),
                ("Description", p.description),
                ("Job ACL", job),
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

async fn role(client: &Client, cmd: RoleCommand) -> anyhow::Result<()> {
    match cmd {
        RoleCommand::Create {
            name,
            description,
            policies,
        } => {
            let body = role_body(&name, &description, &policies);
            let r: AclRole = client.post("/v1/acl/role", &body).await?;
            print_role(&r);
        }
        RoleCommand::List => {
            let all: Vec<AclRole> = client.get("/v1/acl/roles").await?;
            let mut t = output::table(&["ID", "Name", "Description", "Policies"]);
            for r in all {
                let policies = policy_names(&r).join(",");
                t.add_row(vec![r.id, r.name, r.description, policies]);
            }
            output::print_table(&t);
        }
        RoleCommand::Info { id, by_name } => {
            let path = if by_name {
                format!("/v1/acl/role/name/{}", escape(&id))
            } else {
                format!("/v1/acl/role/{}", escape(&id))
            };
            let r: AclRole = client.get(&path).await?;
            print_role(&r);
        }
        RoleCommand::Update {
            id,
            name,
            description,
            policies,
            no_merge,
        } => {
            let path = format!("/v1/acl/role/{}", escape(&id));
            let current = if no_merge {
                AclRole::default()
            } else {
                client.get::<AclRole>(&path).await?
            };
            let policies = if policies.is_empty() {
                policy_names(&current)
            } else {
                policies
            };
            let name = name.unwrap_or(current.name);
            let description = description.unwrap_or(current.description);
            let mut body = role_body(&name, &description, &policies);
            body["ID"] = Value::String(id);
            let r: AclRole = client.post(&path, &body).await?;
            print_role(&r);
        }
        RoleCommand::Delete { id } => {
            let _: Value = client
                .delete(&format!("/v1/acl/role/{}", escape(&id)))
                .await?;
            println!("ACL role {id} successfully deleted");
        }
    }
    Ok(())
}

fn role_body(name: &str, description: &str, policies: &[String]) -> Value {
    let links: Vec<Value> = policies.iter().map(|p| json!({"Name": p})).collect();
    json!({"Name": name, "Description": description, "Policies": links})
}

fn policy_names(r: &AclRole) -> Vec<String> {
    r.policies.iter().map(|p| p.name.clone()).collect()
}

fn print_role(r: &AclRole) {
    let description = if r.description.is_empty() {
        "<none>".to_string()
    } else {
        r.description.clone()
    };
    print_kv(&[
        ("ID", r.id.clone()),
        ("Name", r.name.clone()),
        ("Description", description),
        ("Policies", policy_names(r).join(",")),
        ("Create Index", r.create_index.to_string()),
        ("Modify Index", r.modify_index.to_string()),
    ]);
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
        (
            "Roles",
            t.roles
                .iter()
                .map(|r| format!("{} ({})", r.name, r.id))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("Create Time", t.create_time.clone()),
        (
            "Expiry Time",
            t.expiration_time.clone().unwrap_or_else(|| "<none>".into()),
        ),
        ("Create Index", t.create_index.to_string()),
        ("Modify Index", t.modify_index.to_string()),
    ]);
}
