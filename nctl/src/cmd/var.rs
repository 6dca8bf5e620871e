//! `nctl var put | get | list | purge`: Nomad's `nomad var` verbs over `/v1/var/:path` and
//! `/v1/vars`, in the namespace of `--namespace`.
//!
//! Items come as `key=value` arguments (`key=@file` reads the value from a file, `key=-` from
//! standard input) or as `@file.json`: a variable as `nctl var get -out json` prints it (whose
//! `ModifyIndex` then guards the write, as Nomad's CLI does, unless `-force`) or a plain JSON
//! object of items.

use std::path::Path;

use nomos_api::variables::{validate_path, Items, Variable, VariableMetadata, MAX_ITEMS_BYTES};
use reqwest::Method;
use serde_json::{json, Value};

use super::client::{escape, Client};
use super::output::{self, print_kv};
use super::Global;

/// Largest file read for items or a value (the server refuses more than 64 KiB of items).
const MAX_FILE_BYTES: u64 = 2 * MAX_ITEMS_BYTES as u64;

#[derive(Debug, clap::Subcommand)]
pub enum VarCommand {
    /// Create or update a variable: `PATH k=v ...`, `k=@file`, or `@spec.json`.
    Put {
        /// Write even if the variable changed since it was read (ignore a file's ModifyIndex).
        #[arg(long)]
        force: bool,
        /// Write only if the variable's ModifyIndex is N (0: only if it does not exist).
        #[arg(long = "check-index", value_name = "N")]
        check_index: Option<u64>,
        /// Print the written variable as JSON.
        #[arg(long, value_parser = ["json", "table"], default_value = "table")]
        out: String,
        path: String,
        /// `key=value`, `key=@file`, `key=-` (standard input), or `@file.json`.
        items: Vec<String>,
    },
    /// Show a variable's items (`-item KEY`: only that value).
    Get {
        #[arg(long, value_name = "KEY")]
        item: Option<String>,
        #[arg(long, value_parser = ["json", "table"], default_value = "table")]
        out: String,
        path: String,
    },
    /// List the variables under a path prefix (metadata only).
    List {
        #[arg(long, value_parser = ["json", "table"], default_value = "table")]
        out: String,
        #[arg(default_value = "")]
        prefix: String,
    },
    /// Delete a variable.
    Purge {
        /// Delete only if the variable's ModifyIndex is N.
        #[arg(long = "check-index", value_name = "N")]
        check_index: Option<u64>,
        path: String,
    },
}

pub async fn run(g: &Global, cmd: VarCommand) -> anyhow::Result<i32> {
    let client = Client::new(g);
    match cmd {
        VarCommand::Put {
            force,
            check_index,
            out,
            path,
            items,
        } => put(&client, &path, &items, force, check_index, &out).await,
        VarCommand::Get { item, out, path } => get(&client, &path, item.as_deref(), &out).await,
        VarCommand::List { out, prefix } => list(&client, &prefix, &out).await,
        VarCommand::Purge { check_index, path } => purge(&client, &path, check_index).await,
    }
}

/// `/v1/var/<path>?namespace=<ns>` with each segment escaped.
fn var_url(client: &Client, path: &str, extra: &str) -> String {
    let escaped: Vec<String> = path.split('/').map(escape).collect();
    format!(
        "/v1/var/{}?namespace={}{extra}",
        escaped.join("/"),
        escape(&client.namespace)
    )
}

fn check_path(path: &str) -> anyhow::Result<()> {
    validate_path(path).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Reads a file (or standard input for `-`), at most [`MAX_FILE_BYTES`].
fn read_input(source: &str) -> anyhow::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    if source == "-" {
        std::io::stdin()
            .take(MAX_FILE_BYTES + 1)
            .read_to_string(&mut text)?;
    } else {
        std::fs::File::open(Path::new(source))
            .map_err(|e| anyhow::anyhow!("cannot read {source}: {e}"))?
            .take(MAX_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| anyhow::anyhow!("cannot read {source}: {e}"))?;
    }
    if text.len() as u64 > MAX_FILE_BYTES {
        anyhow::bail!("{source} is larger than {MAX_FILE_BYTES} bytes");
    }
    Ok(text)
}

/// The items the arguments name, and the check index a spec file carries.
pub fn parse_items(
    args: &[String],
    read: impl Fn(&str) -> anyhow::Result<String>,
) -> anyhow::Result<(Items, Option<u64>)> {
    let mut items = Items::new();
    let mut index = None;
    for arg in args {
        if let Some(file) = arg.strip_prefix('@') {
            let text = read(file)?;
            let value: Value = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{file}: not JSON: {e}"))?;
            let (from_file, file_index) = items_of_spec(file, value)?;
            items.extend(from_file);
            index = index.or(file_index);
            continue;
        }
        let Some((key, value)) = arg.split_once('=') else {
            anyhow::bail!("{arg:?}: expected key=value, key=@file or @file.json");
        };
        if key.is_empty() {
            anyhow::bail!("{arg:?}: an item's key may not be empty");
        }
        let value = match value {
            "-" => read("-")?,
            v => match v.strip_prefix('@') {
                Some(file) => read(file)?,
                None => v.to_string(),
            },
        };
        items.insert(key.to_string(), value);
    }
    Ok((items, index))
}

/// A JSON spec: a variable (`{"Items": {...}, "ModifyIndex": N}`) or an object of items.
fn items_of_spec(file: &str, value: Value) -> anyhow::Result<(Items, Option<u64>)> {
    let Value::Object(mut map) = value else {
        anyhow::bail!(
            "{file}: expected a JSON object (a variable, or items as \"key\": \"value\")"
        );
    };
    let index = map.get("ModifyIndex").and_then(Value::as_u64);
    let items = match map.remove("Items") {
        Some(items) => items,
        None => Value::Object(map),
    };
    let items: Items = serde_json::from_value(items)
        .map_err(|e| anyhow::anyhow!("{file}: items must be strings: {e}"))?;
    Ok((items, index))
}

async fn put(
    client: &Client,
    path: &str,
    args: &[String],
    force: bool,
    check_index: Option<u64>,
    out: &str,
) -> anyhow::Result<i32> {
    check_path(path)?;
    let (items, file_index) = parse_items(args, read_input)?;
    if items.is_empty() {
        anyhow::bail!("no items: give key=value arguments or @file.json");
    }
    let cas = match (force, check_index) {
        (true, Some(_)) => anyhow::bail!("give -force or -check-index, not both"),
        (true, None) => None,
        (false, Some(n)) => Some(n),
        (false, None) => file_index,
    };
    let extra = cas.map(|n| format!("&cas={n}")).unwrap_or_default();
    let body = json!({"Namespace": client.namespace, "Path": path, "Items": items});
    let (status, text) = client
        .raw(Method::PUT, &var_url(client, path, &extra), Some(&body))
        .await?;
    let written: Variable = answer(status, &text, cas)?;
    if out == "json" {
        output::print_data(&written, output::Format::Json)?;
    } else {
        let verb = if written.meta.create_index == written.meta.modify_index {
            "Created"
        } else {
            "Updated"
        };
        println!(
            "{verb} variable {path:?} with modify index {}",
            written.meta.modify_index
        );
    }
    Ok(0)
}

/// Decodes a 2xx answer; explains a 409 (a check-index that no longer holds, or a lock).
fn answer<T: serde::de::DeserializeOwned>(
    status: u16,
    text: &str,
    cas: Option<u64>,
) -> anyhow::Result<T> {
    if (200..300).contains(&status) {
        return serde_json::from_str(text)
            .map_err(|e| anyhow::anyhow!("unexpected answer from the server: {e}"));
    }
    if status == 409 {
        if let Ok(current) = serde_json::from_str::<Variable>(text) {
            return Err(conflict_error(&current.meta, cas));
        }
    }
    Err(super::client::ApiError::new(status, text).into())
}

fn conflict_error(current: &VariableMetadata, cas: Option<u64>) -> anyhow::Error {
    match cas {
        Some(n) if i64::try_from(n).ok() != Some(current.modify_index) => anyhow::anyhow!(
            "Check-Index Conflict\n\nYour provided check-index ({n}) does not match the server-side index ({}).\n\
             If you are sure you want to perform this operation, add the -force flag or -check-index={} flag to your command.",
            current.modify_index,
            current.modify_index
        ),
        _ => anyhow::anyhow!(
            "variable {:?} is locked by another holder (modify index {}); retry once its lock is released",
            current.path,
            current.modify_index
        ),
    }
}

async fn get(client: &Client, path: &str, item: Option<&str>, out: &str) -> anyhow::Result<i32> {
    check_path(path)?;
    let v: Variable = client.get(&var_url(client, path, "")).await?;
    let items = v.items.clone().unwrap_or_default();
    if let Some(key) = item {
        let Some(value) = items.get(key) else {
            anyhow::bail!("variable {path:?} has no item {key:?}");
        };
        println!("{value}");
        return Ok(0);
    }
    if out == "json" {
        output::print_data(&v, output::Format::Json)?;
        return Ok(0);
    }
    print_meta(&v.meta);
    println!("\nItems");
    let width = items.keys().map(String::len).max().unwrap_or(0);
    for (k, value) in &items {
        println!("{k:<width$} = {value}");
    }
    Ok(0)
}

fn print_meta(m: &VariableMetadata) {
    print_kv(&[
        ("Namespace", m.namespace.clone()),
        ("Path", m.path.clone()),
        ("Create Time", output::utc(m.create_time / 1_000_000)),
        ("Check Index", m.modify_index.to_string()),
    ]);
}

async fn list(client: &Client, prefix: &str, out: &str) -> anyhow::Result<i32> {
    let url = format!(
        "/v1/vars?namespace={}&prefix={}",
        escape(&client.namespace),
        escape(prefix)
    );
    let all: Vec<VariableMetadata> = client.get(&url).await?;
    if out == "json" {
        output::print_data(&all, output::Format::Json)?;
        return Ok(0);
    }
    if all.is_empty() {
        println!("No matching variables found");
        return Ok(0);
    }
    let mut t = output::table(&["Namespace", "Path", "Last Updated"]);
    for m in all {
        t.add_row(vec![
            m.namespace,
            m.path,
            output::utc(m.modify_time / 1_000_000),
        ]);
    }
    output::print_table(&t);
    Ok(0)
}

async fn purge(client: &Client, path: &str, check_index: Option<u64>) -> anyhow::Result<i32> {
    check_path(path)?;
    let extra = check_index.map(|n| format!("&cas={n}")).unwrap_or_default();
    let (status, text) = client
        .raw(Method::DELETE, &var_url(client, path, &extra), None)
        .await?;
    let _: Value = answer(status, &text, check_index)?;
    println!("Successfully purged variable {path:?}!");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(name: &str) -> anyhow::Result<String> {
        match name {
            "spec.json" => Ok(r#"{"Path":"a","Items":{"user":"me"},"ModifyIndex":7}"#.into()),
            "plain.json" => Ok(r#"{"k":"v"}"#.into()),
            "bad.json" => Ok(r#"{"k":1}"#.into()),
            "value.txt" => Ok("from a file".into()),
            other => anyhow::bail!("cannot read {other}"),
        }
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn items_come_from_pairs_files_and_specs() {
        let (items, index) = parse_items(
            &args(&["a=1", "b=x=y", "c=@value.txt", "@plain.json"]),
            files,
        )
        .unwrap();
        assert_eq!(items["a"], "1");
        assert_eq!(items["b"], "x=y");
        assert_eq!(items["c"], "from a file");
        assert_eq!(items["k"], "v");
        assert_eq!(index, None);
        let (items, index) = parse_items(&args(&["@spec.json"]), files).unwrap();
        assert_eq!(items["user"], "me");
        assert_eq!(index, Some(7));
    }

    #[test]
    fn bad_items_are_refused_with_the_argument() {
        for (a, want) in [
            ("novalue", "expected key=value"),
            ("=v", "key may not be empty"),
            ("@bad.json", "items must be strings"),
            ("@missing.json", "cannot read missing.json"),
            ("k=@missing.txt", "cannot read missing.txt"),
        ] {
            let e = parse_items(&args(&[a]), files).unwrap_err().to_string();
            assert!(e.contains(want), "{a}: {e}");
        }
    }

    #[test]
    fn a_conflict_explains_the_check_index_or_the_lock() {
        let text = r#"{"Namespace":"default","Path":"a","CreateIndex":3,"ModifyIndex":9}"#;
        let e = answer::<Value>(409, text, Some(4)).unwrap_err().to_string();
        assert!(
            e.contains("check-index (4) does not match the server-side index (9)"),
            "{e}"
        );
        let e = answer::<Value>(409, text, None).unwrap_err().to_string();
        assert!(e.contains("locked"), "{e}");
        let e = answer::<Value>(403, "Permission denied", None)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "Permission denied");
    }
}
