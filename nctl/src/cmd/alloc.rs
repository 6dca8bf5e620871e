//! `nctl alloc status|stop ID`, `nctl alloc restart ID [TASK]` and `nctl alloc signal ID
//! SIGNAL [TASK]`: one allocation by unique ID prefix, through Nomad's allocation API;
//! `nctl alloc exec` is [`super::alloc_exec`]'s.

use nomos_server::nomad::alloc_writes::{AllocStopResponse, RestartRequest, SignalRequest};
use nomos_server::nomad::allocs::{AllocDetail, TaskStateView};

use super::client::{escape, Client};
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
    /// Send a signal (SIGHUP, USR1, 9, ...) to an allocation's running tasks (only TASK when
    /// given).
    Signal {
        id: String,
        signal: String,
        task: Option<String>,
    },
    /// Run a command inside a running task (`-i`: pass stdin, on by default; `-t`: a
    /// pseudo-terminal, by default when stdin is a terminal); exits with the command's code.
    Exec(super::alloc_exec::ExecArgs),
}

pub async fn run(g: &Global, cmd: AllocCommand) -> anyhow::Result<i32> {
    let client = Client::new(g);
    match cmd {
        AllocCommand::Exec(args) => return super::alloc_exec::run(g, args).await,
        AllocCommand::Status { id, output } => {
            let a = get(&client, &id).await?;
            if matches!(output, Format::Json | Format::Yaml) {
                output::print_data(&a, output)?;
                return Ok(0);
            }
            print_alloc(&a);
        }
        AllocCommand::Stop { id } => {
            let id = get(&client, &id).await?.stub.id;
            let _: AllocStopResponse = client
                .post(
                    &format!("/v1/allocation/{}/stop", escape(&id)),
                    &serde_json::json!({}),
                )
                .await?;
            println!("allocation {id} marked to stop");
        }
        AllocCommand::Restart { id, task } => {
            let id = get(&client, &id).await?.stub.id;
            let req = RestartRequest {
                task_name: task.clone().unwrap_or_default(),
                all_tasks: false,
            };
            let _: serde_json::Value = client.post(&restart_path(&id), &req).await?;
            match task {
                Some(t) => println!("allocation {id}: task {t:?} restarting"),
                None => println!("allocation {id} restarting"),
            }
        }
        AllocCommand::Signal { id, signal, task } => {
            let id = get(&client, &id).await?.stub.id;
            let req = SignalRequest {
                signal: signal.clone(),
                task: task.unwrap_or_default(),
            };
            let path = format!("/v1/client/allocation/{}/signal", escape(&id));
            let _: serde_json::Value = client.post(&path, &req).await?;
            println!("allocation {id}: sent {signal}");
        }
    }
    Ok(0)
}

/// One allocation by ID or unique prefix.
async fn get(client: &Client, id: &str) -> anyhow::Result<AllocDetail> {
    client.get(&format!("/v1/allocation/{}", escape(id))).await
}

/// `POST /v1/client/allocation/{id}/restart` (Nomad's path).
fn restart_path(id: &str) -> String {
    format!("/v1/client/allocation/{}/restart", escape(id))
}

/// Unix nanoseconds as the milliseconds [`age`] takes.
fn ms(ns: i64) -> i64 {
    ns / 1_000_000
}

fn print_alloc(a: &AllocDetail) {
    let s = &a.stub;
    let ports: Vec<String> = s
        .allocated_resources
        .iter()
        .flat_map(|r| &r.shared.ports)
        .map(|p| format!("{}={}", p.label, p.value))
        .collect();
    print_kv(&[
        ("ID", s.id.clone()),
        ("Name", s.name.clone()),
        ("Node", s.node_name.clone()),
        ("Job ID", s.job_id.clone()),
        ("Job Version", s.job_version.to_string()),
        ("Task Group", s.task_group.clone()),
        ("Desired Status", s.desired_status.clone()),
        ("Desired Description", s.desired_description.clone()),
        ("Client Status", s.client_status.clone()),
        ("Client Description", s.client_description.clone()),
        (
            "Deployment Health",
            match s.healthy() {
                Some(true) => "healthy".into(),
                Some(false) => "unhealthy".into(),
                None => "-".into(),
            },
        ),
        ("Deployment ID", a.deployment_id.clone()),
        ("Ports", ports.join(", ")),
        ("Created", age(ms(s.create_time))),
    ]);
    for (name, ts) in &s.task_states {
        print_task(name, ts);
    }
}

fn print_task(name: &str, ts: &TaskStateView) {
    println!("\nTask \"{name}\" is \"{}\"", ts.state);
    let exit_code = ts
        .events
        .iter()
        .rev()
        .find_map(|e| e.details.get("exit_code").cloned())
        .unwrap_or_else(|| "-".into());
    print_kv(&[
        ("Restarts", ts.restarts.to_string()),
        ("Exit Code", exit_code),
        ("Started", age(ms(ts.started_at))),
    ]);
    if !ts.events.is_empty() {
        println!("\nRecent Events:");
        let mut t = output::table(&["Age", "Type", "Description"]);
        for e in ts.events.iter().rev().take(10) {
            t.add_row(vec![
                age(ms(e.time)),
                e.event_type.clone(),
                e.display_message.clone(),
            ]);
        }
        output::print_table(&t);
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
    fn restart_goes_to_nomads_client_path() {
        assert_eq!(restart_path("ab12"), "/v1/client/allocation/ab12/restart");
        assert_eq!(restart_path("a b"), "/v1/client/allocation/a%20b/restart");
    }
}
