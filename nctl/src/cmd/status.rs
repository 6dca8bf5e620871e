//! `nctl status JOB`: the job as Nomad's `job status` shows it: details, per-group summary
//! (queued/starting/running/failed/complete/lost), the latest deployment (its full ID, status,
//! per-group progress and what waits for promotion) and the allocations. When the stored spec
//! is not a valid job, the server answers with the latest accepted version (what runs), and the
//! spec's errors are shown above everything else.

use indexmap::IndexMap;
use nomos_api::{GroupSummary, JobStatus, PeriodicStatus};
use nomos_server::nomad::allocs::AllocStub;
use nomos_server::nomad::job_reads::JobStub;
use nomos_server::views::{DeploymentView, JobDetail};

use super::client::Client;
use super::get::{enum_str, print_allocs, AllocColumns};
use super::output::{self, print_kv, when, Format};
use super::Global;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Job ID (or unique prefix); without it, lists the jobs.
    pub job: Option<String>,
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

pub async fn run(g: &Global, args: StatusArgs) -> anyhow::Result<i32> {
    let Some(id) = args.job else {
        let get = super::get::GetArgs {
            kind: super::get::Kind::Jobs,
            output: args.output,
            job: None,
            node: None,
            watch: false,
        };
        return super::get::run(g, get).await;
    };
    let client = Client::new(g);
    let raw: serde_json::Value = client.get(&client.job_path(&id, "")).await?;
    let detail = JobDetail::from_nomad(&raw).map_err(anyhow::Error::msg)?;
    let id = detail.job.id.clone();
    let allocs: Vec<AllocStub> = client.get(&client.job_path(&id, "/allocations")).await?;
    let deployments = super::deployment::job_deployments(&client, &id).await?;
    if matches!(args.output, Format::Json | Format::Yaml) {
        let all =
            serde_json::json!({"job": raw, "allocations": allocs, "deployments": deployments});
        output::print_data(&all, args.output)?;
        return Ok(0);
    }
    let status = detail.status.clone().unwrap_or_default();
    print_details(&detail, &status);
    print_spec_errors(&detail);
    if let Some(p) = &status.periodic {
        print_periodic(&client, &id, p).await?;
    }
    print_summary(&detail, &status, &allocs);
    if !status.placement_failures.is_empty() {
        println!("\nPlacement Failure");
        for (g, why) in &status.placement_failures {
            println!("Task Group {g:?}: {why}");
        }
    }
    if let Some(d) = latest_deployment(&status.latest_deployment, &deployments) {
        println!("\nLatest Deployment");
        print_kv(&[
            ("ID", d.id.clone()),
            ("Status", d.status.to_string()),
            ("Description", d.status_description.clone()),
        ]);
        super::deployment::print_groups(d);
    }
    println!("\nAllocations");
    print_allocs(&allocs, AllocColumns::default());
    Ok(0)
}

/// The job's details, its status marked `(stopped)` when the job is stopped but not yet dead.
fn print_details(detail: &JobDetail, status: &JobStatus) {
    let job = &detail.job;
    let shown_status = if status.status.is_empty() {
        if job.stop {
            "dead (stopped)".to_string()
        } else {
            "pending".to_string()
        }
    } else if job.stop && status.status != "dead" {
        format!("{} (stopped)", status.status)
    } else {
        status.status.clone()
    };
    print_kv(&[
        ("ID", job.id.clone()),
        ("Name", job.name.clone()),
        ("Type", enum_str(&job.job_type)),
        ("Priority", job.priority.to_string()),
        ("Datacenters", job.datacenters.join(",")),
        ("Namespace", job.namespace.clone()),
        ("Status", shown_status),
        ("Version", status.version.to_string()),
        ("Modify Index", detail.modify_index.to_string()),
    ]);
}

/// A periodic job's launch times and its children, newest first.
async fn print_periodic(client: &Client, id: &str, p: &PeriodicStatus) -> anyhow::Result<()> {
    println!("\nPeriodic");
    print_kv(&[
        ("Next Launch", when(p.next_launch_ms)),
        ("Last Launch", when(p.last_launch_ms)),
        ("Last Success", when(p.last_success_ms)),
        ("Last Failure", when(p.last_failure_ms)),
        ("Skipped Overlaps", p.skipped_overlaps.to_string()),
    ]);
    let prefix = format!("{id}-periodic-");
    let jobs: Vec<JobStub> = client
        .get(&format!(
            "/v1/jobs?namespace={}&prefix={}",
            super::client::escape(&client.namespace),
            super::client::escape(&prefix)
        ))
        .await?;
    let mut children: Vec<&JobStub> = jobs.iter().collect();
    children.sort_by(|a, b| b.id.cmp(&a.id));
    println!("\nChildren");
    if children.is_empty() {
        println!("No children launched yet");
    } else {
        let mut t = output::table(&["ID", "Status"]);
        for c in children {
            t.add_row(vec![c.id.clone(), c.status.clone()]);
        }
        output::print_table(&t);
    }
    Ok(())
}

/// Counts per group: the controllers' summary, else counted from the allocations.
fn print_summary(detail: &JobDetail, status: &JobStatus, allocs: &[AllocStub]) {
    println!("\nSummary");
    let summary = if status.summary.is_empty() {
        summarize(detail, allocs)
    } else {
        status.summary.clone()
    };
    let mut t = output::table(&[
        "Task Group",
        "Queued",
        "Starting",
        "Running",
        "Failed",
        "Complete",
        "Lost",
    ]);
    for (g, s) in &summary {
        t.add_row(vec![
            g.clone(),
            s.queued.to_string(),
            s.starting.to_string(),
            s.running.to_string(),
            s.failed.to_string(),
            s.complete.to_string(),
            s.lost.to_string(),
        ]);
    }
    output::print_table(&t);
}

/// The deployment the job status names as its latest, else the newest one.
fn latest_deployment<'a>(
    named: &str,
    deployments: &'a [DeploymentView],
) -> Option<&'a nomos_api::Deployment> {
    deployments
        .iter()
        .find(|d| !named.is_empty() && d.deployment.id == named)
        .or_else(|| deployments.first())
        .map(|d| &d.deployment)
}

/// Why the stored spec was not accepted, and which version runs instead.
fn print_spec_errors(detail: &JobDetail) {
    let errors = detail.spec_errors();
    if errors.is_empty() {
        return;
    }
    println!("\nSpec Errors");
    match detail.invalid_spec.as_ref().map(|i| i.running_version) {
        Some(Some(v)) => println!(
            "The stored spec is not a valid job: version {v}, the last accepted one, keeps \
             running and is shown here."
        ),
        Some(None) => println!(
            "The stored spec is not a valid job, and no version of it was ever accepted: \
             nothing runs."
        ),
        None => println!("The stored spec was not accepted; the last good version keeps running."),
    }
    for e in errors {
        println!("  {e}");
    }
}

/// The per-group summary from the allocations, when the controller has not written one.
pub fn summarize(detail: &JobDetail, allocs: &[AllocStub]) -> IndexMap<String, GroupSummary> {
    let mut out: IndexMap<String, GroupSummary> = detail
        .job
        .groups
        .iter()
        .map(|g| (g.name.clone(), GroupSummary::default()))
        .collect();
    for a in allocs {
        let s = out.entry(a.task_group.clone()).or_default();
        match a.client_status.as_str() {
            "pending" if a.desired_status == "run" => s.starting += 1,
            "running" => s.running += 1,
            "complete" => s.complete += 1,
            "failed" => s.failed += 1,
            "lost" => s.lost += 1,
            "unknown" => s.unknown += 1,
            _ => {}
        }
    }
    out
}
