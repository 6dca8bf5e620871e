//! `nctl deployment list|status|promote|fail|pause|resume`: Nomad's `nomad deployment` verbs.
//! IDs are taken by unique prefix, and deployment IDs (`<job>-v<version>`) always print in
//! full. The server refuses what Nomad refuses (a deployment that is no longer active, a group
//! without canaries, canaries not all healthy) and its message is printed as the error.

use nomos_api::Deployment;
use nomos_server::views::{DeploymentView, PauseRequest, PromoteRequest};

use super::client::{escape, Client};
use super::output::{self, print_kv, utc, Format};
use super::Global;

#[derive(Debug, clap::Subcommand)]
pub enum DeploymentCommand {
    /// List deployments, newest first.
    List {
        /// Only this job's deployments.
        #[arg(long)]
        job: Option<String>,
        #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Show a deployment: its status and, per task group, canaries, placements and health.
    Status {
        /// Deployment ID (or unique prefix).
        id: String,
        #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Promote a deployment's canaries: every group that has some, or only each --group.
    Promote {
        /// Deployment ID (or unique prefix).
        id: String,
        /// Promote only this group's canaries (repeatable).
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
    },
    /// Mark a running or paused deployment failed (with auto_revert, the job rolls back).
    Fail {
        /// Deployment ID (or unique prefix).
        id: String,
    },
    /// Pause a running deployment: no rollout moves until it is resumed.
    Pause {
        /// Deployment ID (or unique prefix).
        id: String,
    },
    /// Resume a paused deployment.
    Resume {
        /// Deployment ID (or unique prefix).
        id: String,
    },
}

fn path(id: &str, rest: &str) -> String {
    format!("/v1/deployment/{}{rest}", escape(id))
}

pub async fn run(g: &Global, cmd: DeploymentCommand) -> anyhow::Result<i32> {
    let client = Client::new(g);
    match cmd {
        DeploymentCommand::List { job, output } => {
            let deps = list(&client, job.as_deref()).await?;
            if matches!(output, Format::Json | Format::Yaml) {
                output::print_data(&deps, output)?;
            } else {
                print_list(&deps, output == Format::Wide);
            }
        }
        DeploymentCommand::Status { id, output } => {
            let d: DeploymentView = client.get(&path(&id, "")).await?;
            if matches!(output, Format::Json | Format::Yaml) {
                output::print_data(&d, output)?;
            } else {
                print_status(&d.deployment);
            }
        }
        DeploymentCommand::Promote { id, groups } => {
            let d: DeploymentView = client
                .post(
                    &path(&id, "/promote"),
                    &PromoteRequest {
                        groups,
                        ..Default::default()
                    },
                )
                .await?;
            let promoted: Vec<&str> = d
                .deployment
                .groups
                .iter()
                .filter(|(_, g)| g.promoted)
                .map(|(name, _)| name.as_str())
                .collect();
            println!(
                "deployment {} promoted (groups: {})",
                d.deployment.id,
                promoted.join(", ")
            );
        }
        DeploymentCommand::Fail { id } => {
            let d: DeploymentView = client
                .post(&path(&id, "/fail"), &serde_json::json!({}))
                .await?;
            println!("deployment {} marked as failed", d.deployment.id);
        }
        DeploymentCommand::Pause { id } => {
            let d = pause(&client, &id, true).await?;
            println!("deployment {} paused", d.deployment.id);
        }
        DeploymentCommand::Resume { id } => {
            let d = pause(&client, &id, false).await?;
            println!("deployment {} resumed", d.deployment.id);
        }
    }
    Ok(0)
}

/// `GET /v1/deployments[?job=]`.
pub async fn list(client: &Client, job: Option<&str>) -> anyhow::Result<Vec<DeploymentView>> {
    let path = match job {
        Some(j) => format!("/v1/deployments?job={}", escape(j)),
        None => "/v1/deployments".to_string(),
    };
    client.get(&path).await
}

async fn pause(client: &Client, id: &str, pause: bool) -> anyhow::Result<DeploymentView> {
    client
        .post(
            &path(id, "/pause"),
            &PauseRequest {
                pause,
                deployment_id: None,
            },
        )
        .await
}

/// The rows of a deployment listing: ID (in full), Job ID, Job Version, Status, Description.
pub fn list_rows(deps: &[DeploymentView]) -> Vec<Vec<String>> {
    deps.iter()
        .map(|v| {
            let d = &v.deployment;
            vec![
                d.id.clone(),
                d.job_id.clone(),
                d.job_version.to_string(),
                d.status.to_string(),
                d.status_description.clone(),
            ]
        })
        .collect()
}

/// The deployment table of `deployment list` and `get deployments`.
pub fn print_list(deps: &[DeploymentView], wide: bool) {
    if deps.is_empty() {
        println!("No deployments");
        return;
    }
    let header = ["ID", "Job ID", "Job Version", "Status", "Description"];
    let mut t = if wide {
        output::wide_table(&header)
    } else {
        output::table(&header)
    };
    for row in list_rows(deps) {
        t.add_row(row);
    }
    output::print_table(&t);
}

/// `nctl deployment status`: details, the groups and what waits for promotion.
fn print_status(d: &Deployment) {
    print_kv(&[
        ("ID", d.id.clone()),
        ("Job ID", d.job_id.clone()),
        ("Job Version", d.job_version.to_string()),
        ("Status", d.status.to_string()),
        ("Description", d.status_description.clone()),
    ]);
    print_groups_table(d);
    println!("\nProgress");
    let mut t = output::table(&["Task Group", "Auto Revert", "Progress Deadline"]);
    for (name, g) in &d.groups {
        t.add_row(vec![
            name.clone(),
            g.auto_revert.to_string(),
            utc(g.require_progress_by_ms),
        ]);
    }
    output::print_table(&t);
    print_promotion(d);
}

/// The rows of the "Deployed" table: Task Group, Promoted, Desired, Canaries (placed/desired),
/// Placed, Healthy, Unhealthy.
pub fn group_rows(d: &Deployment) -> Vec<Vec<String>> {
    d.groups
        .iter()
        .map(|(name, g)| {
            vec![
                name.clone(),
                if g.desired_canaries > 0 {
                    g.promoted.to_string()
                } else {
                    "-".into()
                },
                g.desired_total.to_string(),
                format!("{}/{}", g.placed_canaries.len(), g.desired_canaries),
                g.placed.to_string(),
                g.healthy.to_string(),
                g.unhealthy.to_string(),
            ]
        })
        .collect()
}

/// Lines saying which groups wait for promotion and the exact command that promotes them;
/// none when no group waits.
pub fn promotion_lines(d: &Deployment) -> Vec<String> {
    if !d.is_active() {
        return vec![];
    }
    let waiting: Vec<String> = d
        .groups
        .iter()
        .filter(|(_, g)| g.waits_for_promotion())
        .map(|(name, _)| format!("{name:?}"))
        .collect();
    if waiting.is_empty() {
        return vec![];
    }
    vec![
        format!(
            "Task group(s) {} waiting for promotion: their canaries are healthy.",
            waiting.join(", ")
        ),
        format!("To promote: nctl deployment promote {}", d.id),
    ]
}

/// The "Deployed" section of `status JOB`: the groups' table, then what waits for promotion.
pub fn print_groups(d: &Deployment) {
    print_groups_table(d);
    print_promotion(d);
}

fn print_groups_table(d: &Deployment) {
    println!("\nDeployed");
    let mut t = output::table(&[
        "Task Group",
        "Promoted",
        "Desired",
        "Canaries",
        "Placed",
        "Healthy",
        "Unhealthy",
    ]);
    for row in group_rows(d) {
        t.add_row(row);
    }
    output::print_table(&t);
}

fn print_promotion(d: &Deployment) {
    let lines = promotion_lines(d);
    if !lines.is_empty() {
        println!();
        for line in lines {
            println!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use nomos_api::deployment_status as ds;
    use nomos_api::DeploymentGroup;

    use super::*;

    fn deployment(id: &str, canary: DeploymentGroup) -> Deployment {
        let mut d = Deployment {
            id: id.into(),
            job_id: "gitops".into(),
            job_version: 12,
            status: ds::RUNNING,
            status_description: ds::DESC_NEEDS_PROMOTION.into(),
            ..Default::default()
        };
        d.groups.insert("web".into(), canary);
        d.groups.insert(
            "db".into(),
            DeploymentGroup {
                desired_total: 1,
                placed: 1,
                healthy: 1,
                ..Default::default()
            },
        );
        d
    }

    fn healthy_canary() -> DeploymentGroup {
        DeploymentGroup {
            desired_total: 3,
            desired_canaries: 1,
            placed_canaries: vec!["c1".into()],
            placed: 1,
            healthy: 1,
            ..Default::default()
        }
    }

    #[test]
    fn deployment_ids_are_never_cut() {
        let d = DeploymentView {
            deployment: deployment("gitops-v12", healthy_canary()),
            modify_index: 1,
        };
        let rows = list_rows(&[d]);
        assert_eq!(rows[0][0], "gitops-v12");
        assert_eq!(rows[0][1..3], ["gitops".to_string(), "12".to_string()]);
        let lines = promotion_lines(&deployment("gitops-v12", healthy_canary()));
        assert_eq!(lines[1], "To promote: nctl deployment promote gitops-v12");
    }

    #[test]
    fn groups_show_canaries_as_placed_of_desired_and_promotion_only_where_canaries_are() {
        let rows = group_rows(&deployment("gitops-v12", healthy_canary()));
        assert_eq!(rows[0], ["web", "false", "3", "1/1", "1", "1", "0"]);
        assert_eq!(rows[1], ["db", "-", "1", "0/0", "1", "1", "0"]);
    }

    #[test]
    fn only_groups_waiting_for_promotion_are_named() {
        let waiting = promotion_lines(&deployment("w-v1", healthy_canary()));
        assert_eq!(waiting.len(), 2, "{waiting:?}");
        assert!(waiting[0].contains("\"web\"") && !waiting[0].contains("db"));
        let cases = [
            (
                "canary not healthy",
                DeploymentGroup {
                    healthy: 0,
                    ..healthy_canary()
                },
            ),
            (
                "canary not placed",
                DeploymentGroup {
                    placed_canaries: vec![],
                    ..healthy_canary()
                },
            ),
            (
                "already promoted",
                DeploymentGroup {
                    promoted: true,
                    ..healthy_canary()
                },
            ),
            (
                "promoted automatically",
                DeploymentGroup {
                    auto_promote: true,
                    ..healthy_canary()
                },
            ),
        ];
        for (case, g) in cases {
            assert!(promotion_lines(&deployment("w-v1", g)).is_empty(), "{case}");
        }
        let mut failed = deployment("w-v1", healthy_canary());
        failed.status = ds::FAILED;
        assert!(
            promotion_lines(&failed).is_empty(),
            "a failed deployment waits for nothing"
        );
    }
}
