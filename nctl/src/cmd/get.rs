//! `nctl get jobs|allocs|nodes|deployments [-o wide|json|yaml] [--watch]`.

use std::time::Duration;

use nomos_server::nomad::allocs::AllocStub;
use nomos_server::nomad::job_reads::JobStub;
use nomos_server::nomad::nodes::NodeStub;

use super::client::Client;
use super::output::{self, age, short, Format};
use super::Global;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    #[value(alias = "job")]
    Jobs,
    #[value(alias = "alloc", alias = "allocations", alias = "allocation")]
    Allocs,
    #[value(alias = "node")]
    Nodes,
    #[value(alias = "deployment", alias = "deploy")]
    Deployments,
}

#[derive(Debug, clap::Args)]
pub struct GetArgs {
    pub kind: Kind,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// Only this job's allocations or deployments.
    #[arg(long)]
    pub job: Option<String>,
    /// Only this node's allocations.
    #[arg(long)]
    pub node: Option<String>,
    /// Print again every 2 seconds.
    #[arg(short = 'w', long)]
    pub watch: bool,
}

pub async fn run(g: &Global, args: GetArgs) -> anyhow::Result<i32> {
    let client = Client::new(g);
    let clear_screen =
        crate::console::stdout_is_terminal() && matches!(args.output, Format::Table | Format::Wide);
    for round in 0u64.. {
        if args.watch && clear_screen {
            print!("\x1b[2J\x1b[H");
        } else if round > 0 {
            // Into a pipe or a file, each listing follows the last after a blank line.
            println!();
        }
        once(&client, &args).await?;
        if !args.watch {
            return Ok(0);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Ok(0)
}

/// A job's status as the list shows it: `invalid` while its spec is not a valid job, and
/// marked `(stopped)` when it is stopped but not yet dead.
pub fn shown_status(j: &JobStub) -> String {
    if j.invalid_spec.is_some() {
        "invalid".to_string()
    } else if j.stop && j.status != "dead" {
        format!("{} (stopped)", j.status)
    } else {
        j.status.clone()
    }
}

async fn once(client: &Client, args: &GetArgs) -> anyhow::Result<()> {
    let wide = args.output == Format::Wide;
    match args.kind {
        Kind::Jobs => {
            let ns = if client.namespace == "*" {
                "*".to_string()
            } else {
                client.namespace.clone()
            };
            let raw: Vec<serde_json::Value> = client
                .get(&format!(
                    "/v1/jobs?namespace={}",
                    super::client::escape(&ns)
                ))
                .await?;
            if matches!(args.output, Format::Json | Format::Yaml) {
                return output::print_data(&raw, args.output);
            }
            let jobs: Vec<JobStub> = raw
                .into_iter()
                .map(serde_json::from_value)
                .collect::<Result<_, _>>()?;
            let mut header = vec!["ID", "Type", "Priority", "Status", "Running"];
            if wide {
                header.extend(["Namespace", "Version", "Modify Index"]);
            }
            let mut t = if wide {
                output::wide_table(&header)
            } else {
                output::table(&header)
            };
            for j in &jobs {
                let mut row = vec![
                    j.id.clone(),
                    j.job_type.clone(),
                    j.priority.to_string(),
                    shown_status(j),
                    j.running().to_string(),
                ];
                if wide {
                    row.extend([
                        j.namespace.clone(),
                        j.version.to_string(),
                        j.job_modify_index.to_string(),
                    ]);
                }
                t.add_row(row);
            }
            if jobs.is_empty() {
                println!("No jobs");
            } else {
                output::print_table(&t);
            }
        }
        Kind::Allocs => {
            let mut q = vec![
                format!("namespace={}", super::client::escape(&client.namespace)),
                "resources=true".to_string(),
            ];
            if let Some(j) = &args.job {
                q.push(format!("job={}", super::client::escape(j)));
            }
            if let Some(n) = &args.node {
                q.push(format!("node={}", super::client::escape(n)));
            }
            let allocs: Vec<AllocStub> = client
                .get(&format!("/v1/allocations?{}", q.join("&")))
                .await?;
            if matches!(args.output, Format::Json | Format::Yaml) {
                return output::print_data(&allocs, args.output);
            }
            let cols = AllocColumns {
                job: true,
                namespace: client.namespace == "*",
                wide,
            };
            print_allocs(&allocs, cols);
        }
        Kind::Nodes => {
            let nodes: Vec<NodeStub> = client.get("/v1/nodes").await?;
            if matches!(args.output, Format::Json | Format::Yaml) {
                return output::print_data(&nodes, args.output);
            }
            print_nodes(&nodes, wide);
        }
        Kind::Deployments => {
            let deps = super::deployment::list(client, args.job.as_deref()).await?;
            if matches!(args.output, Format::Json | Format::Yaml) {
                return output::print_data(&deps, args.output);
            }
            super::deployment::print_list(&deps, wide);
        }
    }
    Ok(())
}

/// Which columns an allocation table shows besides ID, node, group, version, desired and
/// client status and age.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllocColumns {
    /// The job's ID (`get allocs`, `node status`; always with `wide`).
    pub job: bool,
    /// The namespace (`get allocs -n '*'`, `node status`).
    pub namespace: bool,
    /// Full IDs, the job and the ports.
    pub wide: bool,
}

/// The allocation table used by `get allocs`, `status` and `node status`.
pub fn print_allocs(allocs: &[AllocStub], cols: AllocColumns) {
    if allocs.is_empty() {
        println!("No allocations");
        return;
    }
    let (header, rows) = alloc_rows(allocs, cols);
    let mut t = if cols.wide {
        output::wide_table(&header)
    } else {
        output::table(&header)
    };
    for row in rows {
        t.add_row(row);
    }
    output::print_table(&t);
}

/// The header and rows of [`print_allocs`], newest first.
fn alloc_rows(allocs: &[AllocStub], cols: AllocColumns) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let job = cols.job || cols.wide;
    let mut header = vec!["ID"];
    header.extend(cols.namespace.then_some("Namespace"));
    header.extend(job.then_some("Job"));
    header.extend(["Node", "Task Group"]);
    // The version only in the wide table when the job takes its place in 80 columns.
    let version = cols.wide || !job;
    header.extend(version.then_some("Version"));
    header.extend(["Desired", "Status", "Created"]);
    header.extend(cols.wide.then_some("Ports"));
    let mut sorted: Vec<&AllocStub> = allocs.iter().collect();
    sorted.sort_by_key(|a| std::cmp::Reverse(a.create_time));
    let rows = sorted
        .into_iter()
        .map(|a| {
            let mut row = vec![if cols.wide {
                a.id.clone()
            } else {
                short(&a.id)
            }];
            row.extend(cols.namespace.then(|| a.namespace.clone()));
            row.extend(job.then(|| a.job_id.clone()));
            row.extend([a.node_name.clone(), a.task_group.clone()]);
            row.extend(version.then(|| a.job_version.to_string()));
            row.extend([
                a.desired_status.clone(),
                a.client_status.clone(),
                age(a.create_time / 1_000_000),
            ]);
            if cols.wide {
                let ports: Vec<String> = a
                    .allocated_resources
                    .iter()
                    .flat_map(|r| &r.shared.ports)
                    .map(|p| format!("{}={}", p.label, p.value))
                    .collect();
                row.push(ports.join(","));
            }
            row
        })
        .collect();
    (header, rows)
}

/// The node table of `get nodes` and `node status`.
pub fn print_nodes(nodes: &[NodeStub], wide: bool) {
    if nodes.is_empty() {
        println!("No nodes");
        return;
    }
    let mut header = vec![
        "ID",
        "DC",
        "Name",
        "Class",
        "Drain",
        "Eligibility",
        "Status",
    ];
    if wide {
        header.extend(["Address", "Allocs"]);
    }
    let mut t = if wide {
        output::wide_table(&header)
    } else {
        output::table(&header)
    };
    for n in nodes {
        let mut row = vec![
            short(&n.id),
            n.datacenter.clone(),
            n.name.clone(),
            if n.node_class.is_empty() {
                "<none>".into()
            } else {
                n.node_class.clone()
            },
            n.drain.to_string(),
            n.scheduling_eligibility.clone(),
            n.status.clone(),
        ];
        if wide {
            row.extend([n.address.clone(), n.running_allocs.to_string()]);
        }
        t.add_row(row);
    }
    output::print_table(&t);
}

/// A serde enum as its lowercase string.
pub fn enum_str<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stub(id: &str, ns: &str, job: &str, created: i64) -> AllocStub {
        AllocStub {
            id: id.into(),
            namespace: ns.into(),
            job_id: job.into(),
            node_name: "n1".into(),
            task_group: "g".into(),
            desired_status: "run".into(),
            client_status: "running".into(),
            create_time: created,
            ..Default::default()
        }
    }

    #[test]
    fn the_alloc_table_names_the_job_and_the_namespace_when_asked() {
        let allocs = [
            stub("aaaaaaaa-1", "default", "web", 1),
            stub("bbbbbbbb-2", "team", "api", 2),
        ];
        let cols = |job, namespace| AllocColumns {
            job,
            namespace,
            wide: false,
        };
        let (header, rows) = alloc_rows(&allocs, cols(true, false));
        assert_eq!(header[..3], ["ID", "Job", "Node"]);
        assert_eq!(rows[0][..3], ["bbbbbbbb", "api", "n1"], "newest first");
        let (header, rows) = alloc_rows(&allocs, cols(true, true));
        assert_eq!(header[..4], ["ID", "Namespace", "Job", "Node"]);
        assert_eq!(rows[1][..3], ["aaaaaaaa", "default", "web"]);
        assert!(
            !header.contains(&"Version"),
            "the job takes its place: {header:?}"
        );
        let (header, _) = alloc_rows(&allocs, cols(false, false));
        assert_eq!(header[..4], ["ID", "Node", "Task Group", "Version"]);
        let wide = AllocColumns {
            wide: true,
            ..cols(true, false)
        };
        let (header, _) = alloc_rows(&allocs, wide);
        assert_eq!(header[..5], ["ID", "Job", "Node", "Task Group", "Version"]);
    }
}
