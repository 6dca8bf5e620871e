//! `nctl node status [NODE]`, `nctl node drain NODE`, `nctl node eligibility NODE`,
//! `nctl node purge NODE`.

use std::time::{Duration, Instant};

use nomos_server::nomad::allocs::{AllocDetail, AllocStub};
use nomos_server::nomad::evals::NodeEvaluateResponse;
use nomos_server::nomad::nodes::{
    DrainRequest, DrainSpecRequest, EligibilityRequest, NodeDetail, NodeStub, NodeUpdateResponse,
};

use super::client::{escape, ApiError, Client};
use super::get::{print_allocs, print_nodes, AllocColumns};
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
    Drain(DrainArgs),
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
        NodeCommand::Drain(args) => return drain(&client, args).await,
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

/// `nctl node drain`'s flags, also in Nomad's single-dash spelling (`-enable`, `-disable`,
/// `-deadline`, `-force`, `-ignore-system`, `-yes`, `-detach`, `-monitor`).
#[derive(Debug, Clone, clap::Args)]
pub struct DrainArgs {
    pub node: String,
    /// Start a drain (what `node drain NODE` does without --disable or --monitor).
    #[arg(long, conflicts_with_all = ["disable", "monitor"])]
    pub enable: bool,
    /// Stop what remains after this long: a duration ("30s", "1h30m") or seconds.
    #[arg(long, default_value = "1h", value_parser = parse_deadline_secs)]
    pub deadline: u64,
    /// Let the allocations move off without a deadline.
    #[arg(long, conflicts_with_all = ["deadline", "force"])]
    pub no_deadline: bool,
    /// Stop every allocation on the node now, without waiting for migrations.
    #[arg(long, conflicts_with = "deadline")]
    pub force: bool,
    /// Leave system jobs running.
    #[arg(long)]
    pub ignore_system: bool,
    /// Cancel a drain in progress; the node becomes eligible again.
    #[arg(long, conflicts_with = "monitor")]
    pub disable: bool,
    /// With --disable: leave the node ineligible.
    #[arg(long, requires = "disable")]
    pub keep_ineligible: bool,
    /// Wait until no allocation runs on the node.
    #[arg(long, conflicts_with = "detach")]
    pub wait: bool,
    /// Follow a drain already under way (as --wait), changing nothing.
    #[arg(long, conflicts_with = "detach")]
    pub monitor: bool,
    /// Return once the drain is requested (the default; Nomad's spelling).
    #[arg(long)]
    pub detach: bool,
    /// Accepted for Nomad's scripts: nctl never asks for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// The drain request `args` ask for; `None` with `--monitor`, which changes nothing.
fn drain_request(args: &DrainArgs) -> Option<DrainRequest> {
    if args.monitor {
        return None;
    }
    let deadline = if args.force {
        // Nomad's forced drain: a negative deadline stops everything now.
        -1
    } else if args.no_deadline {
        0
    } else {
        // At least a second: 0 would mean no deadline.
        (args.deadline.max(1) as i64).saturating_mul(1_000_000_000)
    };
    Some(DrainRequest {
        drain_spec: (!args.disable).then_some(DrainSpecRequest {
            deadline,
            ignore_system_jobs: args.ignore_system,
        }),
        mark_eligible: args.disable && !args.keep_ineligible,
        ..Default::default()
    })
}

/// `nctl node drain`: starts, cancels or (`--monitor`) follows a node's drain.
async fn drain(client: &Client, args: DrainArgs) -> anyhow::Result<i32> {
    let Some(req) = drain_request(&args) else {
        return follow_drain(client, &args.node, args.ignore_system).await;
    };
    let resp: NodeUpdateResponse = client
        .post(&format!("/v1/node/{}/drain", escape(&args.node)), &req)
        .await?;
    let n = resp.node;
    if args.disable {
        println!("node {}: drain cancelled", n.name);
        return Ok(0);
    }
    println!("node {}: drain started", n.name);
    if args.wait {
        return follow_drain(client, &n.name, args.ignore_system).await;
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
    print_host_volumes(&n);
    println!("\nAllocations");
    let stubs: Vec<AllocStub> = allocs.into_iter().map(|a| a.stub).collect();
    let cols = AllocColumns {
        job: true,
        ..AllocColumns::default()
    };
    print_allocs(&stubs, cols);
    Ok(0)
}

/// The node's host volumes, one row each, when it has any.
fn print_host_volumes(n: &NodeDetail) {
    if n.host_volumes.is_empty() {
        return;
    }
    println!("\nHost Volumes");
    let mut t = output::table(&["Name", "ReadOnly", "Source"]);
    for v in n.host_volumes.values() {
        t.add_row(vec![
            v.name.clone(),
            v.read_only.to_string(),
            v.path.clone(),
        ]);
    }
    output::print_table(&t);
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
/// the drain just started, printing each change, until it is complete and every allocation on
/// the node has stopped (exit 0; as Nomad's monitor, which ends on "all allocations on node
/// have stopped": a drain is complete once each allocation is told to stop, before its tasks
/// have ended), or someone cancels it (exit 1). Allocations with nowhere to go are printed with
/// the reason, and the wait goes on, as the drain does. With `--ignore-system`, system jobs'
/// allocations are left running and not waited for.
async fn follow_drain(client: &Client, node: &str, ignore_system: bool) -> anyhow::Result<i32> {
    let mut last = String::new();
    let mut server = Retrying::default();
    let complete = nomos_api::DrainState::Complete.as_str();
    loop {
        let Some(v) = server
            .get::<NodeDetail>(client, &format!("/v1/node/{}", escape(node)), node)
            .await?
        else {
            continue;
        };
        let Some(started) = v.drain_strategy.as_ref().map(|d| d.started_at) else {
            // No drain: cancelled, or completed (and cleared) between two looks.
            if v.drain_report.as_ref().is_some_and(|s| s.state == complete) {
                println!("node {node}: drain complete");
                return wait_allocs_stopped(client, &v.id, node, ignore_system, &mut server).await;
            }
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
            if s.state == complete {
                println!("node {node}: drain complete");
                return wait_allocs_stopped(client, &v.id, node, ignore_system, &mut server).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until no allocation on the node is still running (or pending), printing how many
/// remain as that changes.
async fn wait_allocs_stopped(
    client: &Client,
    node_id: &str,
    node: &str,
    ignore_system: bool,
    server: &mut Retrying,
) -> anyhow::Result<i32> {
    let path = format!("/v1/node/{}/allocations", escape(node_id));
    let mut last = usize::MAX;
    loop {
        let Some(allocs) = server.get::<Vec<AllocDetail>>(client, &path, node).await? else {
            continue;
        };
        let stubs: Vec<&AllocStub> = allocs.iter().map(|a| &a.stub).collect();
        let left = still_running(&stubs, ignore_system);
        if left.is_empty() {
            println!("node {node}: all allocations on node have stopped");
            return Ok(0);
        }
        if left.len() != last {
            last = left.len();
            let names: Vec<&str> = left.iter().map(|a| a.name.as_str()).collect();
            println!(
                "node {node}: waiting for {} allocation(s) to stop: {}",
                left.len(),
                names.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The allocations the wait still waits for: those whose tasks have not ended (client status
/// `pending`, `running` or `unknown`), less system jobs' when they are left running.
fn still_running<'a>(allocs: &[&'a AllocStub], ignore_system: bool) -> Vec<&'a AllocStub> {
    allocs
        .iter()
        .copied()
        .filter(|a| !matches!(a.client_status.as_str(), "complete" | "failed" | "lost"))
        .filter(|a| !(ignore_system && a.job_type == "system"))
        .collect()
}

/// A server that may be briefly unreachable (restarting, or a load balancer switching
/// servers) while `--wait` watches: the drain goes on without us, so the wait retries for up
/// to [`SERVER_GONE_AFTER`] before it gives up.
#[derive(Default)]
struct Retrying {
    unreachable_since: Option<Instant>,
}

impl Retrying {
    /// `GET path`; `None` (after a pause) while the server cannot be reached.
    async fn get<T: serde::de::DeserializeOwned>(
        &mut self,
        client: &Client,
        path: &str,
        node: &str,
    ) -> anyhow::Result<Option<T>> {
        match client.get(path).await {
            Ok(v) => {
                self.unreachable_since = None;
                Ok(Some(v))
            }
            Err(e) if e.downcast_ref::<ApiError>().is_none() => {
                let since = *self.unreachable_since.get_or_insert_with(|| {
                    eprintln!("node {node}: server unreachable, retrying: {e}");
                    Instant::now()
                });
                if since.elapsed() > SERVER_GONE_AFTER {
                    return Err(e);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stub(name: &str, job_type: &str, client_status: &str) -> AllocStub {
        AllocStub {
            name: name.into(),
            job_type: job_type.into(),
            client_status: client_status.into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_wait_ends_only_when_every_allocation_on_the_node_has_stopped() {
        let allocs = [
            stub("web.g[0]", "service", "complete"),
            stub("batch.g[0]", "batch", "failed"),
            stub("old.g[0]", "service", "lost"),
            stub("last.g[0]", "service", "running"),
            stub("new.g[0]", "service", "pending"),
            stub("agent.g[0]", "system", "running"),
        ];
        let refs: Vec<&AllocStub> = allocs.iter().collect();
        let names = |ignore| -> Vec<String> {
            still_running(&refs, ignore)
                .iter()
                .map(|a| a.name.clone())
                .collect()
        };
        assert_eq!(names(false), ["last.g[0]", "new.g[0]", "agent.g[0]"]);
        assert_eq!(
            names(true),
            ["last.g[0]", "new.g[0]"],
            "system jobs are left running"
        );
        let done = [stub("web.g[0]", "service", "complete")];
        let refs: Vec<&AllocStub> = done.iter().collect();
        assert!(still_running(&refs, false).is_empty());
    }

    /// Parses a command line as `main` does, Nomad's single-dash flags included.
    fn parse_drain(line: &str) -> Result<DrainArgs, String> {
        use clap::Parser;
        let argv = line.split_whitespace().map(std::ffi::OsString::from);
        let argv = crate::args::nomad_style(argv, crate::args::SINGLE_DASH_LONGS);
        match crate::cmd::Cli::try_parse_from(argv).map_err(|e| e.to_string())? {
            crate::cmd::Cli {
                command: crate::cmd::Command::Node(NodeCommand::Drain(args)),
                ..
            } => Ok(args),
            other => panic!("not a drain: {other:?}"),
        }
    }

    fn request(line: &str) -> Option<DrainRequest> {
        drain_request(&parse_drain(line).unwrap_or_else(|e| panic!("{line}: {e}")))
    }

    #[test]
    fn drain_takes_nomads_single_dash_flags() {
        let spec = |line: &str| request(line).and_then(|r| r.drain_spec);
        let started = spec("nctl node drain -enable n1").expect("a drain");
        assert_eq!(started.deadline, 3_600_000_000_000, "Nomad's default hour");
        assert!(!started.ignore_system_jobs);
        let with = spec("nctl node drain -enable -deadline 30m -ignore-system -yes n1").unwrap();
        assert_eq!(with.deadline, 1_800_000_000_000);
        assert!(with.ignore_system_jobs);
        assert_eq!(
            spec("nctl node drain -enable -force n1").unwrap().deadline,
            -1
        );
        assert_eq!(spec("nctl node drain -no-deadline n1").unwrap().deadline, 0);
        assert!(
            parse_drain("nctl node drain -enable -detach n1")
                .unwrap()
                .detach
        );

        let cancel = request("nctl node drain -disable -yes n1").unwrap();
        assert!(cancel.drain_spec.is_none());
        assert!(cancel.mark_eligible);
        let keep = request("nctl node drain -disable -keep-ineligible n1").unwrap();
        assert!(!keep.mark_eligible);

        assert!(
            request("nctl node drain -monitor n1").is_none(),
            "changes nothing"
        );
        assert!(
            request("nctl node drain --enable n1").is_some(),
            "two dashes too"
        );
    }

    #[test]
    fn drain_refuses_opposite_flags_and_never_suggests_the_opposite() {
        for line in [
            "nctl node drain -enable -disable n1",
            "nctl node drain -monitor -disable n1",
            "nctl node drain -force -deadline 1m n1",
            "nctl node drain -wait -detach n1",
        ] {
            assert!(parse_drain(line).is_err(), "{line}");
        }
        let err = parse_drain("nctl node drain --enabel n1").unwrap_err();
        assert!(!err.contains("--disable"), "{err}");
        let err = parse_drain("nctl node drain --disabel n1").unwrap_err();
        assert!(!err.contains("'--enable'"), "{err}");
    }

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
