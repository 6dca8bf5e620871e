//! `nctl job history JOB`, `nctl job revert JOB VERSION` and `nctl job periodic force JOB`.

use nomos_server::views::{
    ApplyOutcome, ApplyResult, JobVersionView, PeriodicForceResponse, RevertRequest,
};

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

pub async fn run(g: &Global, cmd: JobCommand) -> anyhow::Result<i32> {
    let client = Client::new(g);
    match cmd {
        JobCommand::History { job, output } => {
            let versions: Vec<JobVersionView> =
                client.get(&client.job_path(&job, "/versions")).await?;
            if matches!(output, Format::Json | Format::Yaml) {
                output::print_data(&versions, output)?;
                return Ok(0);
            }
            if versions.is_empty() {
                println!("No versions recorded yet");
                return Ok(0);
            }
            let mut t = output::table(&["Version", "Stable", "Groups", "Modify Index"]);
            for v in versions.iter().rev() {
                let groups = v
                    .job
                    .as_ref()
                    .map(|j| {
                        j.groups
                            .iter()
                            .map(|g| format!("{}×{}", g.name, g.count))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default();
                t.add_row(vec![
                    v.version.to_string(),
                    v.stable.to_string(),
                    groups,
                    v.modify_index.to_string(),
                ]);
            }
            output::print_table(&t);
        }
        JobCommand::Revert { job, version } => {
            let r: ApplyResult = client
                .post(
                    &client.job_path(&job, "/revert"),
                    &RevertRequest {
                        version,
                        check_index: None,
                    },
                )
                .await?;
            match r.outcome {
                ApplyOutcome::Unchanged => {
                    println!("job \"{}\" already matches version {version}", r.id)
                }
                _ => {
                    println!(
                        "job \"{}\" reverted to version {version} (modify index {})",
                        r.id, r.modify_index
                    );
                    for c in &r.changes {
                        println!("  {c}");
                    }
                }
            }
        }
        JobCommand::Status(args) => return super::status::run(g, args).await,
        JobCommand::Periodic(PeriodicCommand::Force { job }) => {
            let r: PeriodicForceResponse = client
                .post(
                    &client.job_path(&job, "/periodic/force"),
                    &serde_json::json!({}),
                )
                .await?;
            println!("launched periodic child \"{}\"", r.child);
        }
    }
    Ok(0)
}
