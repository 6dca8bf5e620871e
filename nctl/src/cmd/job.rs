//! `nctl job history JOB`, `nctl job revert JOB VERSION`, `nctl job scale JOB GROUP COUNT` and
//! `nctl job periodic force JOB`, over Nomad's job endpoints.

use nomos_server::nomad::job_versions::{RevertRequest, ScaleRequest};
use nomos_server::nomad::job_writes::RegisterResponse;
use serde_json::Value;

use super::client::Client;
use super::output::{self, Format};
use super::Global;

#[derive(Debug, clap::Subcommand)]
pub enum JobCommand {
    /// List a job's accepted versions.
    History {
        job: String,
        #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Submit an earlier version of a job again.
    Revert { job: String, version: u64 },
    /// Set a task group's count.
    Scale {
        job: String,
        group: String,
        count: u32,
    },
    /// Same as `nctl status JOB`.
    Status(super::status::StatusArgs),
    /// Periodic jobs.
    #[command(subcommand)]
    Periodic(PeriodicCommand),
}

#[derive(Debug, clap::Subcommand)]
pub enum PeriodicCommand {
    /// Launch a child of a periodic job now, outside its schedule.
    Force { job: String },
}

/// One row of `job history`: version, stable, groups (`name×count`) and modify index.
fn history_row(v: &Value) -> Vec<String> {
    let groups: Vec<String> = v["TaskGroups"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| format!("{}×{}", g["Name"].as_str().unwrap_or_default(), g["Count"]))
        .collect();
    vec![
        v["Version"].to_string(),
        v["Stable"].as_bool().unwrap_or(false).to_string(),
        groups.join(", "),
        v["JobModifyIndex"].to_string(),
    ]
}

async fn history(client: &Client, job: &str, out: Format) -> anyhow::Result<()> {
    let answer: Value = client.get(&client.job_path(job, "/versions")).await?;
    let versions = answer["Versions"].as_array().cloned().unwrap_or_default();
    if matches!(out, Format::Json | Format::Yaml) {
        return output::print_data(&versions, out);
    }
    if versions.is_empty() {
        println!("No versions recorded yet");
        return Ok(());
    }
    let mut t = output::table(&["Version", "Stable", "Groups", "Modify Index"]);
    for v in &versions {
        t.add_row(history_row(v));
    }
    output::print_table(&t);
    Ok(())
}

async fn revert(client: &Client, job: &str, version: u64) -> anyhow::Result<()> {
    let body = RevertRequest {
        job_id: String::new(),
        job_version: version,
        ..RevertRequest::default()
    };
    let r: RegisterResponse = client.post(&client.job_path(job, "/revert"), &body).await?;
    if r.outcome == "unchanged" {
        println!("job \"{}\" already matches version {version}", r.job_id);
        return Ok(());
    }
    println!(
        "job \"{}\" reverted to version {version} (modify index {})",
        r.job_id, r.job_modify_index
    );
    for c in &r.changes {
        println!("  {c}");
    }
    Ok(())
}

async fn scale(client: &Client, job: &str, group: &str, count: u32) -> anyhow::Result<()> {
    let body = ScaleRequest {
        count: Some(i64::from(count)),
        target: [("Group".to_string(), group.to_string())]
            .into_iter()
            .collect(),
        ..ScaleRequest::default()
    };
    let r: RegisterResponse = client.post(&client.job_path(job, "/scale"), &body).await?;
    if r.outcome == "unchanged" {
        println!(
            "job \"{}\" group \"{group}\" already has count {count}",
            r.job_id
        );
    } else {
        println!(
            "job \"{}\" group \"{group}\" scaled to {count} (modify index {})",
            r.job_id, r.job_modify_index
        );
    }
    Ok(())
}

pub async fn run(g: &Global, cmd: JobCommand) -> anyhow::Result<i32> {
    let client = Client::new(g);
    match cmd {
        JobCommand::History { job, output } => history(&client, &job, output).await?,
        JobCommand::Revert { job, version } => revert(&client, &job, version).await?,
        JobCommand::Scale { job, group, count } => scale(&client, &job, &group, count).await?,
        JobCommand::Status(args) => return super::status::run(g, args).await,
        JobCommand::Periodic(PeriodicCommand::Force { job }) => {
            let r: Value = client
                .post(
                    &client.job_path(&job, "/periodic/force"),
                    &serde_json::json!({}),
                )
                .await?;
            let child = r["ChildJobID"].as_str().unwrap_or_default();
            println!("launched periodic child \"{child}\"");
        }
    }
    Ok(0)
}
