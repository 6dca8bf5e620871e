//! `nctl node status [NODE]`, `nctl node drain NODE`, `nctl node eligibility NODE`,
//! `nctl node purge NODE`.

use std::time::{Duration, Instant};

use nomos_server::nomad::allocs::{AllocDetail, AllocStub};
use nomos_server::nomad::evals::NodeEvaluateResponse;
use nomos_server::nomad::nodes::{
    DrainRequest, DrainSpecRequest, EligibilityRequest, NodeDetail, NodeStub, NodeUpdateResponse,
};

use super::client::{escape, ApiError, Client};
use super::get::{print_allocs, print_nodes};
use super::output::{self, print_kv, Format};
use super::Global;

#[derive(Debug, clap::Subcommand)]
pub enum NodeCommand {
    /// List nodes, or show one with its allocations.
    Status {
        node: Option<String>,
        #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Drain a node: mark it ineligible and move its allocations elsewhere.
    Drain {
        node: String,
        /// Stop what remains after this long: a duration ("30s", "1h30m") or seconds.
        #[arg(long, default_value = "1h", value_parser = parse_deadline_secs)]
        deadline: u64,
        /// Let the allocations move off without a deadline.
        #[arg(long, conflicts_with = "deadline")]
        no_deadline: bool,
        /// Leave system jobs running.
        #[arg(long)]
        ignore_system: bool,
        /// Cancel a drain in progress; the node becomes eligible again.
        #[arg(long)]
        disable: bool,
        /// With --disable: leave the node ineligible.
        #[arg(long, requires = "disable")]
        keep_ineligible: bool,
        /// Wait until no allocation runs on the node.
        #[arg(long)]
        wait: bool,
    },
    /// Toggle whether new allocations may be placed on a node.
    Eligibility {
        node: String,
        #[arg(long, conflicts_with = "disable", required_unless_present = "disable")]
        enable: bool,
        #[arg(long)]
        disable: bool,
    },
    /// Forget a node (Nomad's `node purge`): its allocations are lost and placed elsewhere; a
    /// node whose agent still runs registers again.
    Purge { node: String },
    /// One-time tokens agents join a server on etcd with (`join-token create`).
    #[command(subcommand)]
    JoinToken(super::join::JoinTokenCommand),
}

pub async fn run(g: &Global, cmd: NodeCommand) -> anyhow::Result<i32> {
    let client = Client::new(g);
    match cmd {
        NodeCommand::JoinToken(cmd) => return super::join::run_token(g, cmd).await,
        NodeCommand::Status { node: None, output } => {
            let nodes: Vec<NodeStub> = client.get("/v1/nodes").await?;
            if matches!(output, Format::Json | Format::Yaml) {
                output::print_data(&nodes, output)?;
            } else {
                print_nodes(&nodes, output == Format::Wide);
            }
        }
        NodeCommand::Status {
            node: Some(name),
            output,
        } => return node_status(&client, &name, output).await,
        NodeCommand::Drain {
            node,
            deadline,
            no_deadline,
            ignore_system,
            disable,
            keep_ineligible,
            wait,
        } => {
            let req = DrainRequest {
                drain_spec: (!disable).then_some(DrainSpecRequest {
                    deadline: if no_deadline {
                        0
                    } else {
                        // At least a second: 0 would mean no deadline.
                        (deadline.max(1) as i64).saturating_mul(1_000_000_000)
                    },
                    ignore_system_jobs: ignore_system,
                }),
                mark_eligible: disable && !keep_ineligible,
                ..Default::default()
            };
            let resp: NodeUpdateResponse = client
                .post(&format!("/v1/node/{}/drain", escape(&node)), &req)
                .await?;
            let n = resp.node;
            if disable {
                println!("node {}: drain cancelled", n.name);
                return Ok(0);
            }
            println!("node {}: drain started", n.name);
            if wait {
                return follow_drain(&client, &n.name).await;
            }
        }
        NodeCommand::Purge { node } => {
            let resp: NodeEvaluateResponse = client
                .post(
                    &format!("/v1/node/{}/purge", escape(&node)),
                    &serde_json::json!({}),
                )
                .await?;
            let evals = resp.eval_ids.unwrap_or_default();
            println!("node {node}: purged");
            for id in evals {
                println!("evaluation {id} created");
            }
        }
        NodeCommand::Eligibility {
            node,
            enable,
            disable,
        } => {
            let eligible = enable && !disable;
            let req = EligibilityRequest {
                eligibility: if eligible { "eligible" } else { "ineligible" }.into(),
                ..Default::default()
            };
            let resp: NodeUpdateResponse = client
                .post(&format!("/v1/node/{}/eligibility", escape(&node)), &req)
                .await?;
            println!(
                "node {}: {}",
                resp.node.name, resp.node.scheduling_eligibility
            );
        }
    }
    Ok(0)
}

/// `nctl node status NODE`: the node, its drain progress and its allocations.
async fn node_status(client: &Client, name: &str, output: Format) -> anyhow::Result<i32> {
    let n: NodeDetail = client.get(&format!("/v1/node/{}", escape(name))).await?;
    let allocs: Vec<AllocDetail> = client
        .get(&format!("/v1/node/{}/allocations", escape(&n.id)))
        .await?;
    if matches!(output, Format::Json | Format::Yaml) {
        output::print_data(
            &serde_json::json!({"node": n, "allocations": allocs}),
            output,
        )?;
        return Ok(0);
    }
    let drivers: Vec<String> = n
        .drivers
        .iter()
        .filter(|(_, d)| d.detected && d.healthy)
        .map(|(k, _)| k.clone())
        .collect();
    let r = &n.node_resources;
    print_kv(&[
        ("ID", n.id.clone()),
        ("Name", n.name.clone()),
        ("Class", n.node_class.clone()),
        ("DC", n.datacenter.clone()),
        ("Drain", n.drain.to_string()),
        ("Eligibility", n.scheduling_eligibility.clone()),
        ("Status", n.status.clone()),
        ("Address", n.address.clone()),
        ("Drivers", drivers.join(",")),
        (
            "Resources",
            format!(
                "{} MHz, {} cores, {} MiB memory",
                r.cpu.cpu_shares, r.cpu.total_cpu_cores, r.memory.memory_mb
            ),
        ),
    ]);
    if let Some(d) = &n.drain_report {
        println!("\nDrain");
        print_kv(&[
            ("State", d.state.to_string()),
            ("Remaining", d.remaining.to_string()),
            ("Migrating", d.migrating.to_string()),
        ]);
        for why in &d.nowhere_to_go {
            println!("Nowhere to go: {why}");
        }
    }
    println!("\nAllocations");
    let stubs: Vec<AllocStub> = allocs.into_iter().map(|a| a.stub).collect();
    print_allocs(&stubs, false);
    Ok(0)
}

/// `--deadline`: a Go-style duration as Nomad takes it ("1h", "90s"), or a number of seconds.
fn parse_deadline_secs(s: &str) -> Result<u64, String> {
    if let Ok(secs) = s.trim().parse::<u64>() {
        return Ok(secs);
    }
    let ns = nomos_api::duration::parse_duration(s)?;
    Ok(ns.div_ceil(1_000_000_000))
}

/// How long `--wait` keeps retrying while the server cannot be reached.
const SERVER_GONE_AFTER: Duration = Duration::from_secs(120);

/// `nctl node drain --wait`: follows the drain loop's report (`/nomos/drainstatus/<node>`) for
/// the drain just started, printing each change, until it is complete (exit 0) or someone
/// cancels it (exit 1). Allocations with nowhere to go are printed with the reason, and the wait
/// goes on, as the drain does.
async fn follow_drain(client: &Client, node: &str) -> anyhow::Result<i32> {
    let mut last = String::new();
    let mut unreachable_since: Option<Instant> = None;
    loop {
        let v: NodeDetail = match client.get(&format!("/v1/node/{}", escape(node))).await {
            Ok(v) => {
                unreachable_since = None;
                v
            }
            // The server restarting (or a load balancer switching servers) does not end the
            // wait: the drain goes on without us watching. Give up after two minutes.
            Err(e) if e.downcast_ref::<ApiError>().is_none() => {
                let since = *unreachable_since.get_or_insert_with(|| {
                    eprintln!("node {node}: server unreachable, retrying: {e}");
                    Instant::now()
                });
                if since.elapsed() > SERVER_GONE_AFTER {
                    return Err(e);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let Some(started) = v.drain_strategy.as_ref().map(|d| d.started_at) else {
            println!("node {node}: drain cancelled");
            return Ok(1);
        };
        if let Some(s) = v.drain_report.as_ref().filter(|s| s.started_at == started) {
            let mut line = format!(
                "node {node}: {}: {} allocation(s) remaining, {} migrating",
                s.state, s.remaining, s.migrating
            );
            for why in &s.nowhere_to_go {
                line.push_str(&format!("\n  nowhere to go: {why}"));
            }
            if line != last {
                println!("{line}");
                last = line;
            }
            if s.state == nomos_api::DrainState::Complete.as_str() {
                println!("node {node}: drain complete");
                return Ok(0);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::parse_deadline_secs;

    #[test]
    fn deadlines_take_durations_or_seconds() {
        let cases = [
            ("1h", Ok(3600)),
            ("90", Ok(90)),
            ("1m30s", Ok(90)),
            ("1500ms", Ok(2)),
            ("0", Ok(0)),
        ];
        for (input, want) in cases {
            assert_eq!(parse_deadline_secs(input), want, "{input}");
        }
        assert!(parse_deadline_secs("soon").is_err());
    }
}
