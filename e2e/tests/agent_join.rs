//! A second node joins `nctl dev` through the store's etcd-protocol endpoint: `nctl agent`
//! registers, and an allocation constrained to it runs there.

use std::time::Duration;

use common::*;

mod common;

const PINNED: &str = r#"job "pinned" {
  datacenters = ["*"]

  constraint {
    attribute = "${node.unique.name}"
    value     = "node-2"
  }

  group "main" {
    count = 1

    task "sleep" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "while true; do sleep 1; done"]
      }
      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
"#;

#[test]
fn a_second_agent_joins_over_the_store_endpoint_and_runs_an_allocation() {
    let c = Cluster::start("join");
    let _agent = c.start_agent("node-2");
    c.wait_nodes_ready(&["node-2"]);
    let file = c.write_file("pinned.hcl", PINNED);
    c.ok(&["apply", "-f", &file]);
    c.wait_for(
        "the pinned allocation to run on node-2",
        Duration::from_secs(90),
        |c| {
            let running = c.running("pinned");
            let on_2 = running.len() == 1 && running[0]["NodeName"] == "node-2";
            (on_2, format!("{running:?}"))
        },
    );
    let id = c.running("pinned")[0]["ID"].as_str().unwrap().to_string();
    assert!(
        !pids_of_alloc(&id).is_empty(),
        "node-2's agent started the task"
    );
    c.ok(&["stop", "pinned"]);
    c.wait_for("the pinned task to stop", Duration::from_secs(60), |_| {
        let p = pids_of_alloc(&id);
        (p.is_empty(), format!("{p:?}"))
    });
}

#[test]
fn an_agent_offers_raw_exec_only_when_told_to() {
    let c = Cluster::start("noraw");
    let _agent = c.start_agent_without_raw_exec("node-2");
    c.wait_nodes_ready(&["node-2"]);
    let node = c.json(&["node", "status", "node-2", "-o", "json"]);
    let drivers = node["node"]["Drivers"]
        .as_object()
        .unwrap_or_else(|| panic!("no drivers in {node}"));
    assert!(
        !drivers.contains_key("raw_exec") && !drivers.is_empty(),
        "raw_exec is not offered, other drivers are: {node}"
    );
    let file = c.write_file("pinned.hcl", PINNED);
    c.ok(&["apply", "-f", &file]);
    c.wait_for(
        "the placement failure to name the missing driver",
        Duration::from_secs(60),
        |c| {
            let status = c.json(&["status", "pinned", "-o", "json"]);
            let failures = &status["job"]["NomosStatus"]["PlacementFailures"]["main"];
            let why = failures.as_str().unwrap_or_default().to_string();
            (why.contains("raw_exec"), status.to_string())
        },
    );
    assert!(c.running("pinned").is_empty(), "nothing runs on node-2");
    c.ok(&["stop", "pinned", "--purge"]);
}
