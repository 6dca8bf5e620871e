//! `nctl alloc status|stop ID` and `nctl alloc restart ID [TASK]`: one allocation by unique ID
//! prefix.

use nomos_server::views::AllocView;

use super::client::{escape, Client};
use super::get::enum_str;
use super::output::{self, age, print_kv, Format};
use super::Global;

#[derive(Debug, clap::Subcommand)]
pub enum AllocCommand {
    /// Show an allocation, its tasks and their recent events.
    Status {
        id: String,
        #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Stop an allocation (the scheduler replaces it if the job still wants it).
    Stop { id: String },
    /// Restart an allocation's running tasks in place (only TASK when given).
    Restart {
        id: String,
        /// The task to restart (default: every running task of the allocation).
        task: Option<String>,
    },
}

pub async fn run(g: &Global, cmd: AllocCommand) -> anyhow::Result<i32> {
    let client = Client::new(g);
    match cmd {
        AllocCommand::Status { id, output } => {
            let a: AllocView = client
                .get(&format!("/v1/allocation/{}", escape(&id)))
                .await?;
            if matches!(output, Format::Json | Format::Yaml) {
                output::print_data(&a, output)?;
                return Ok(0);
            }
            print_alloc(&a);
        }
        AllocCommand::Stop { id } => {
            let a: AllocView = client
                .post(
                    &format!("/v1/allocation/{}/stop", escape(&id)),
                    &serde_json::json!({}),
                )
                .await?;
            println!("allocation {} marked to stop", a.allocation.id);
        }
        AllocCommand::Restart { id, task } => {
            let a: AllocView = client
                .post(&restart_path(&id, task.as_deref()), &serde_json::json!({}))
                .await?;
            match task {
                Some(t) => println!("allocation {}: task {t:?} restarting", a.allocation.id),
                None => println!("allocation {} restarting", a.allocation.id),
            }
        }
    }
    Ok(0)
}

/// `POST /v1/allocation/{id}/restart[?task=NAME]`.
fn restart_path(id: &str, task: Option<&str>) -> String {
    let mut path = format!("/v1/allocation/{}/restart", escape(id));
    if let Some(t) = task {
        path.push_str(&format!("?task={}", escape(t)));
    }
    path
}

fn print_alloc(a: &AllocView) {
    let al = &a.allocation;
    let st = a.status.clone().unwrap_or_default();
    let ports: Vec<String> = al
        .ports
        .iter()
        .map(|p| format!("{}={}", p.label, p.value))
        .collect();
    print_kv(&[
        ("ID", al.id.clone()),
        ("Name", al.name.clone()),
        ("Node", al.node.clone()),
        ("Job ID", al.job_id.clone()),
        ("Job Version", al.job_version.to_string()),
        ("Task Group", al.task_group.clone()),
        ("Desired Status", enum_str(&al.desired_status)),
        ("Desired Description", al.desired_description.clone()),
        ("Client Status", enum_str(&st.client_status)),
        ("Client Description", st.client_description.clone()),
        (
            "Deployment Health",
            match st.healthy {
                Some(true) => "healthy".into(),
                Some(false) => "unhealthy".into(),
                None => "-".into(),
            },
        ),
        ("Deployment ID", al.deployment_id.clone()),
        ("Ports", ports.join(", ")),
        ("Created", age(al.created_at_ms)),
    ]);
    for (name, ts) in &st.task_states {
        println!("\nTask \"{name}\" is \"{}\"", enum_str(&ts.state));
        print_kv(&[
            ("Restarts", ts.restarts.to_string()),
            (
                "Exit Code",
                ts.exit_code
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "-".into()),
            ),
            ("Started", age(ts.started_at_ms)),
        ]);
        if !ts.events.is_empty() {
            println!("\nRecent Events:");
            let mut t = output::table(&["Age", "Type", "Description"]);
            for e in ts.events.iter().rev().take(10) {
                t.add_row(vec![
                    age(e.time_ms),
                    e.event_type.clone(),
                    e.message.clone(),
                ]);
            }
            output::print_table(&t);
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cmd::{Cli, Command};

    fn parse(args: &[&str]) -> AllocCommand {
        let cli = Cli::try_parse_from(args).expect("parses");
        match cli.command {
            Command::Alloc(c) => c,
            other => panic!("not an alloc command: {other:?}"),
        }
    }

    #[test]
    fn restart_takes_an_optional_task() {
        match parse(&["nctl", "alloc", "restart", "ab12"]) {
            AllocCommand::Restart { id, task } => {
                assert_eq!(id, "ab12");
                assert_eq!(task, None);
            }
            other => panic!("{other:?}"),
        }
        match parse(&["nctl", "alloc", "restart", "ab12", "web"]) {
            AllocCommand::Restart { id, task } => {
                assert_eq!(id, "ab12");
                assert_eq!(task.as_deref(), Some("web"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn restart_path_carries_the_task() {
        assert_eq!(restart_path("ab12", None), "/v1/allocation/ab12/restart");
        assert_eq!(
            restart_path("ab12", Some("web")),
            "/v1/allocation/ab12/restart?task=web"
        );
        assert_eq!(
            restart_path("ab12", Some("a b")),
            "/v1/allocation/ab12/restart?task=a%20b"
        );
    }
}
