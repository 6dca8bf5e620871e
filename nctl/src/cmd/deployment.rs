//! `nctl deployment list|status|promote|fail|pause|resume`: Nomad's `nomad deployment` verbs.
//! IDs are taken by unique prefix (resolved with a read, as the writes name the full ID in
//! `DeploymentID`), and deployment IDs always print in full. The API answers in Nomad's
//! shape ([`DeploymentOut`]); the tables read it as Nomos's own ([`to_view`]). The server refuses what Nomad refuses (a deployment that is no longer active, a group
//! without canaries, canaries not all healthy) and its message is printed as the error.

use nomos_api::{Deployment, DeploymentGroup};
use nomos_server::nomad::deployments::{
    DeploymentOut, DeploymentUpdateResponse, FailRequest, PauseRequest, PromoteRequest,
};
use nomos_server::views::DeploymentView;

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

/// `/v1/deployment/<verb>/<id>` (Nomad's paths for the writes and the allocations).
fn path(verb: &str, id: &str) -> String {
    format!("/v1/deployment/{verb}/{}", escape(id))
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
            let d = get(&client, &id).await?;
            if matches!(output, Format::Json | Format::Yaml) {
                output::print_data(&d, output)?;
            } else {
                print_status(&to_view(&d).deployment);
            }
        }
        DeploymentCommand::Promote { id, groups } => {
            let d = get(&client, &id).await?;
            let req = PromoteRequest {
                deployment_id: d.id.clone(),
                all: groups.is_empty(),
                groups: (!groups.is_empty()).then_some(groups),
            };
            let _: DeploymentUpdateResponse = client.post(&path("promote", &d.id), &req).await?;
            let after = get(&client, &d.id).await?;
            let promoted: Vec<&str> = after
                .task_groups
                .iter()
                .filter(|(_, g)| g.promoted)
                .map(|(name, _)| name.as_str())
                .collect();
            println!(
                "deployment {} promoted (groups: {})",
                d.id,
                promoted.join(", ")
            );
        }
        DeploymentCommand::Fail { id } => {
            let d = get(&client, &id).await?;
            let _: DeploymentUpdateResponse = client
                .post(
                    &path("fail", &d.id),
                    &FailRequest {
                        deployment_id: d.id.clone(),
                    },
                )
                .await?;
            println!("deployment {} marked as failed", d.id);
        }
        DeploymentCommand::Pause { id } => {
            let d = pause(&client, &id, true).await?;
            println!("deployment {d} paused");
        }
        DeploymentCommand::Resume { id } => {
            let d = pause(&client, &id, false).await?;
            println!("deployment {d} resumed");
        }
    }
    Ok(0)
}

/// `GET /v1/deployment/<id>` (an ID or a unique prefix).
async fn get(client: &Client, id: &str) -> anyhow::Result<DeploymentOut> {
    client.get(&format!("/v1/deployment/{}", escape(id))).await
}

/// `GET /v1/deployments` in the client's namespace, or `GET /v1/job/<job>/deployments`.
pub async fn list(client: &Client, job: Option<&str>) -> anyhow::Result<Vec<DeploymentOut>> {
    match job {
        Some(j) => client.get(&client.job_path(j, "/deployments")).await,
        None => {
            let path = format!("/v1/deployments?namespace={}", escape(&client.namespace));
            let mut deps: Vec<DeploymentOut> = client.get(&path).await?;
            deps.sort_by_key(|d| std::cmp::Reverse(d.create_index));
            Ok(deps)
        }
    }
}

/// A job's deployments, newest first, as `nctl status` and `nctl apply --wait` read them.
pub async fn job_deployments(client: &Client, job: &str) -> anyhow::Result<Vec<DeploymentView>> {
    let deps: Vec<DeploymentOut> = client.get(&client.job_path(job, "/deployments")).await?;
    Ok(deps.iter().map(to_view).collect())
}

/// Pauses or resumes; returns the deployment's full ID.
async fn pause(client: &Client, id: &str, pause: bool) -> anyhow::Result<String> {
    let d = get(client, id).await?;
    let req = PauseRequest {
        deployment_id: d.id.clone(),
        pause,
    };
    let _: DeploymentUpdateResponse = client.post(&path("pause", &d.id), &req).await?;
    Ok(d.id)
}

/// A deployment in Nomad's shape as Nomos's own, for the tables.
pub fn to_view(d: &DeploymentOut) -> DeploymentView {
    let status =
        serde_json::from_value(serde_json::Value::String(d.status.clone())).unwrap_or_default();
    let groups = d
        .task_groups
        .iter()
        .map(|(name, g)| {
            let group = DeploymentGroup {
                desired_total: g.desired_total,
                desired_canaries: g.desired_canaries,
                placed_canaries: g.placed_canaries.clone(),
                promoted: g.promoted,
                auto_revert: g.auto_revert,
                auto_promote: g.auto_promote,
                progress_deadline_ms: g.progress_deadline / 1_000_000,
                placed: g.placed_allocs,
                healthy: g.healthy_allocs,
                unhealthy: g.unhealthy_allocs,
                require_progress_by_ms: g.require_progress_by / 1_000_000,
            };
            (name.clone(), group)
        })
        .collect();
    DeploymentView {
        deployment: Deployment {
            id: d.id.clone(),
            namespace: d.namespace.clone(),
            job_id: d.job_id.clone(),
            job_version: d.job_version,
            status,
            status_description: d.status_description.clone(),
            groups,
            created_at_ms: d.create_time / 1_000_000,
            modified_at_ms: d.modify_time / 1_000_000,
            ..Default::default()
        },
        modify_index: d.modify_index,
    }
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
pub fn print_list(deps: &[DeploymentOut], wide: bool) {
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
    let views: Vec<DeploymentView> = deps.iter().map(to_view).collect();
    for row in list_rows(&views) {
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
