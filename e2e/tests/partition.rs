//! A real network partition: an agent runs in its own network namespace (its own host, joined
//! to the server by a veth link) and the test takes the link down. A short cut changes nothing;
//! a cut past `lost_after` gets the allocation replaced on the other node while the original
//! keeps running behind the partition; when the link comes back the original is kept and the
//! replacement stops, without a restart.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

mod common;

use common::*;

const JOB: &str = r#"job "cut" {
  datacenters = ["*"]

  group "g" {
    count = 1

    affinity {
      attribute = "${node.unique.name}"
      value     = "behind"
      weight    = 100
    }

    disconnect {
      lost_after = "8s"
    }

    task "sleep" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "while true; do sleep 1; done"]
      }
      resources {
        cpu    = 10
        memory = 10
      }
    }
  }
}
"#;

fn node_of(a: &Value) -> &str {
    a["NodeName"].as_str().unwrap_or_default()
}

fn ids(allocs: &[Value]) -> BTreeSet<String> {
    allocs
        .iter()
        .map(|a| a["ID"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The allocation's shell (its long-lived process; the `sleep 1` it loops over comes and goes).
fn shell_pid(alloc_id: &str) -> Option<i32> {
    pids_of_alloc(alloc_id).into_iter().find(|p| {
        std::fs::read_to_string(format!("/proc/{p}/cmdline"))
            .is_ok_and(|c| c.starts_with("/bin/sh"))
    })
}

#[test]
fn a_partitioned_node_keeps_its_allocation_through_a_blip_and_gets_it_back_after_lost_after() {
    let c = Cluster::start_server("partition");
    let ns = Netns::create(1);
    let _inside = c.start_agent_in(&ns, "behind", &["--heartbeat-ttl", "2"]);
    let _outside = c.start_agent_with("outside", &["--heartbeat-ttl", "2"]);
    c.wait_nodes_ready(&["behind", "outside"]);
    let file = c.write_file("cut.hcl", JOB);
    c.ok(&["apply", "-f", &file, "--wait", "--timeout", "60"]);
    let first = c.running("cut");
    assert_eq!(first.len(), 1);
    assert_eq!(node_of(&first[0]), "behind", "placed behind the link");
    let original = ids(&first).into_iter().next().unwrap();
    let pid = shell_pid(&original).expect("the original's shell runs");

    // A 4s cut: past the 2s lease, so the node is disconnected, but short of lost_after.
    ns.cut();
    c.wait_for(
        "the cut-off node to be disconnected",
        Duration::from_secs(10),
        |c| c.node_has_status("behind", "disconnected"),
    );
    std::thread::sleep(Duration::from_secs(2));
    ns.heal();
    c.wait_for(
        "the original reported running again",
        Duration::from_secs(30),
        |c| {
            let r = c.running("cut");
            (
                ids(&r) == BTreeSet::from([original.clone()]),
                format!("{r:?}"),
            )
        },
    );
    assert_eq!(c.allocs("cut").len(), 1, "nothing was placed for a blip");
    assert_eq!(shell_pid(&original), Some(pid), "and nothing restarted");

    // A cut past lost_after: the allocation is replaced outside; the original runs on behind
    // the partition.
    ns.cut();
    c.wait_for(
        "a replacement running outside",
        Duration::from_secs(60),
        |c| {
            let r = c.running("cut");
            (r.iter().any(|a| node_of(a) == "outside"), format!("{r:?}"))
        },
    );
    assert_eq!(shell_pid(&original), Some(pid), "the original runs on");
    ns.heal();
    c.wait_for(
        "the original kept and the replacement stopped",
        Duration::from_secs(60),
        |c| {
            let all = c.allocs("cut");
            let kept = c.running("cut");
            let replacement_stopped = all
                .iter()
                .filter(|a| node_of(a) == "outside")
                .all(|a| a["DesiredStatus"] == "stop");
            (
                ids(&kept) == BTreeSet::from([original.clone()]) && replacement_stopped,
                format!("{all:?}"),
            )
        },
    );
    assert_eq!(
        shell_pid(&original),
        Some(pid),
        "the original never restarted"
    );
    let restarts = &c.running("cut")[0]["TaskStates"]["sleep"]["Restarts"];
    assert_eq!(restarts, 0);
}
