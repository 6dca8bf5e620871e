//! `nctl quota apply FILE | list | status NAME | delete NAME`: Nomad's `nomad quota` verbs over
//! `/v1/quota...`. `apply` reads Nomad's quota specification in HCL, or the API's JSON shape
//! (`-json`, or a file ending in `.json`).

use std::path::{Path, PathBuf};

use nomos_api::namespace::hcl::parse_quota_spec;
use nomos_api::namespace::{QuotaSpec, QuotaUsage, GLOBAL_REGION};
use serde_json::Value;

use super::client::{escape, Client};
use super::output;
use super::Global;

#[derive(Debug, clap::Subcommand)]
pub enum QuotaCommand {
    /// Create or update a quota from a specification file (`-` reads standard input).
    Apply {
        file: PathBuf,
        /// The file is JSON in the API's shape (also assumed for a `.json` file).
        #[arg(long)]
        json: bool,
    },
    /// List quota specifications.
    List,
    /// Show a quota's limits and what its namespaces use now.
    Status { name: String },
    /// Delete a quota (refused while a namespace names it).
    Delete { name: String },
}

pub async fn run(g: &Global, cmd: QuotaCommand) -> anyhow::Result<i32> {
    let client = Client::new(g);
    match cmd {
        QuotaCommand::Apply { file, json } => {
            let spec = read_spec(&file, json)?;
            let _: Value = client
                .post(&format!("/v1/quota/{}", escape(&spec.name)), &spec)
                .await?;
            println!("Successfully applied quota specification {:?}!", spec.name);
        }
        QuotaCommand::List => {
            let all: Vec<QuotaSpec> = client.get("/v1/quotas").await?;
            let mut t = output::table(&["Name", "Description"]);
            for q in all {
                t.add_row(vec![q.name, q.description]);
            }
            output::print_table(&t);
        }
        QuotaCommand::Status { name } => {
            let q: QuotaSpec = client.get(&format!("/v1/quota/{}", escape(&name))).await?;
            output::print_kv(&[("Name", q.name.clone()), ("Description", q.description)]);
            println!("\nQuota Limits");
            print_usage(&client, &name).await?;
        }
        QuotaCommand::Delete { name } => {
            let _: Value = client
                .delete(&format!("/v1/quota/{}", escape(&name)))
                .await?;
            println!("Successfully deleted quota {name:?}!");
        }
    }
    Ok(0)
}

/// Reads a quota specification: HCL with positioned errors, or JSON in the API's shape.
pub fn read_spec(file: &Path, json: bool) -> anyhow::Result<QuotaSpec> {
    let source = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?
    };
    let shown = file.display().to_string();
    if json || shown.ends_with(".json") {
        return serde_json::from_str(&source)
            .map_err(|e| anyhow::anyhow!("{shown}:{}:{}: {e}", e.line(), e.column()));
    }
    parse_quota_spec(&shown, &source).map_err(|diags| {
        let lines: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
        anyhow::anyhow!("{}", lines.join("\n"))
    })
}

/// One limit as `used / limit` (`inf` when unlimited, `none` when disallowed).
fn cell(used: i64, limit: i64) -> String {
    match limit {
        0 => format!("{used} / inf"),
        l if l < 0 => format!("{used} / none"),
        l => format!("{used} / {l}"),
    }
}

/// Prints the quota's global limit next to its usage.
pub async fn print_usage(client: &Client, name: &str) -> anyhow::Result<()> {
    let q: QuotaSpec = client.get(&format!("/v1/quota/{}", escape(name))).await?;
    let u: QuotaUsage = client
        .get(&format!("/v1/quota/usage/{}", escape(name)))
        .await?;
    let limit = q.global_limit().copied().unwrap_or_default();
    let used = u
        .used
        .get(GLOBAL_REGION)
        .map(|l| l.region_limit)
        .unwrap_or_default();
    let mut t = output::table(&["Region", "CPU Usage", "Memory Usage", "Allocations"]);
    t.add_row(vec![
        GLOBAL_REGION.to_string(),
        cell(used.cpu, limit.cpu),
        cell(used.memory_mb, limit.memory_mb),
        cell(used.allocations, limit.allocations),
    ]);
    output::print_table(&t);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_show_unlimited_and_disallowed() {
        assert_eq!(cell(5, 0), "5 / inf");
        assert_eq!(cell(0, -1), "0 / none");
        assert_eq!(cell(2600, 2500), "2600 / 2500");
    }

    #[test]
    fn a_spec_file_reads_as_hcl_or_json_with_positions() {
        let dir = tempfile::tempdir().unwrap();
        let hcl = dir.path().join("q.hcl");
        std::fs::write(
            &hcl,
            "name = \"q\"\nlimit {\n  region = \"global\"\n  region_limit {\n    cpu = 100\n  }\n}\n",
        )
        .unwrap();
        assert_eq!(
            read_spec(&hcl, false).unwrap().global_limit().unwrap().cpu,
            100
        );
        let json = dir.path().join("q.json");
        std::fs::write(&json, "{\"Name\": \"q\",\n \"Limits\": 3}").unwrap();
        let e = read_spec(&json, false).unwrap_err().to_string();
        assert!(e.contains("q.json:2:"), "{e}");
        std::fs::write(&hcl, "name = \"q\"\nbogus = 1\n").unwrap();
        let e = read_spec(&hcl, false).unwrap_err().to_string();
        assert!(e.contains("q.hcl:2:1"), "{e}");
    }
}
