//! `nctl namespace apply | list | status | delete`: Nomad's `nomad namespace` verbs over
//! `/v1/namespace...`.

use nomos_api::namespace::Namespace;
use serde_json::Value;

use super::client::{escape, ApiError, Client};
use super::output::{self, print_kv};
use super::Global;

#[derive(Debug, clap::Subcommand)]
pub enum NamespaceCommand {
    /// Create or update a namespace (what is not given keeps its current value).
    Apply {
        name: String,
        #[arg(long)]
        description: Option<String>,
        /// The quota specification limiting the namespace (`""` detaches it).
        #[arg(long)]
        quota: Option<String>,
        /// Metadata as KEY=VALUE (repeatable); replaces the namespace's metadata.
        #[arg(long = "meta", value_name = "KEY=VALUE")]
        meta: Vec<String>,
    },
    /// List the namespaces this token can see.
    List,
    /// Show a namespace, and its quota's usage when it has one.
    Status { name: String },
    /// Delete a namespace (refused while it holds jobs, and for `default`).
    Delete { name: String },
}

pub async fn run(g: &Global, cmd: NamespaceCommand) -> anyhow::Result<i32> {
    let client = Client::new(g);
    match cmd {
        NamespaceCommand::Apply {
            name,
            description,
            quota,
            meta,
        } => apply(&client, name, description, quota, meta).await?,
        NamespaceCommand::List => {
            let all: Vec<Namespace> = client.get("/v1/namespaces").await?;
            let mut t = output::table(&["Name", "Description", "Quota"]);
            for ns in all {
                t.add_row(vec![ns.name, ns.description, ns.quota]);
            }
            output::print_table(&t);
        }
        NamespaceCommand::Status { name } => status(&client, &name).await?,
        NamespaceCommand::Delete { name } => {
            let _: Value = client
                .delete(&format!("/v1/namespace/{}", escape(&name)))
                .await?;
            println!("Successfully deleted namespace {name:?}!");
        }
    }
    Ok(0)
}

/// `--meta KEY=VALUE` flags as a map (a namespace's meta, a dispatch's); an empty key is
/// refused.
pub(super) fn parse_meta<M: FromIterator<(String, String)>>(meta: &[String]) -> anyhow::Result<M> {
    meta.iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(anyhow::anyhow!("--meta {kv:?}: expected KEY=VALUE")),
        })
        .collect()
}

async fn apply(
    client: &Client,
    name: String,
    description: Option<String>,
    quota: Option<String>,
    meta: Vec<String>,
) -> anyhow::Result<()> {
    let path = format!("/v1/namespace/{}", escape(&name));
    // Nomad's `namespace apply` updates only the flags given.
    let mut ns = match client.get::<Namespace>(&path).await {
        Ok(existing) => existing,
        Err(e)
            if e.downcast_ref::<ApiError>()
                .is_some_and(|a| a.status == 404) =>
        {
            Namespace {
                name: name.clone(),
                ..Default::default()
            }
        }
        Err(e) => return Err(e),
    };
    if let Some(d) = description {
        ns.description = d;
    }
    if let Some(q) = quota {
        ns.quota = q;
    }
    if !meta.is_empty() {
        ns.meta = parse_meta(&meta)?;
    }
    let _: Value = client.post(&path, &ns).await?;
    println!("Successfully applied namespace {name:?}!");
    Ok(())
}

async fn status(client: &Client, name: &str) -> anyhow::Result<()> {
    let ns: Namespace = client
        .get(&format!("/v1/namespace/{}", escape(name)))
        .await?;
    let quota = if ns.quota.is_empty() {
        "<none>".to_string()
    } else {
        ns.quota.clone()
    };
    print_kv(&[
        ("Name", ns.name.clone()),
        ("Description", ns.description.clone()),
        ("Quota", quota),
    ]);
    if !ns.meta.is_empty() {
        println!("\nMetadata");
        let pairs: Vec<(&str, String)> = ns
            .meta
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        print_kv(&pairs);
    }
    if !ns.quota.is_empty() {
        println!("\nQuota Limits");
        super::quota::print_usage(client, &ns.quota).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn meta_flags_need_an_equals_sign() {
        let m: BTreeMap<String, String> = parse_meta(&["a=1".into(), "b=x=y".into()]).unwrap();
        assert_eq!(m["b"], "x=y");
        for bad in ["novalue", "=value"] {
            let e = parse_meta::<BTreeMap<String, String>>(&[bad.into()]).unwrap_err();
            assert!(e.to_string().contains("KEY=VALUE"), "{bad}: {e}");
        }
    }
}
