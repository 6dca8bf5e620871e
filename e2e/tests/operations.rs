//! Day-two operations through the real CLI: job history and revert, stopping one allocation
//! (it is replaced), and node eligibility (an ineligible node gets no new placements).

use std::time::Duration;

use common::*;

mod common;

fn sleeper(id: &str, count: u32, marker: &str) -> String {
    format!(
        r#"job "{id}" {{
  datacenters = ["*"]

  group "main" {{
    count = {count}

    update {{
      max_parallel     = 1
      min_healthy_time = "1s"
    }}

    task "sleep" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sh"
        args    = ["-c", "echo {marker}; exec /bin/sleep 100000"]
      }}
      resources {{
        cpu    = 20
        memory = 16
      }}
    }}
  }}
}}
"#
    )
}

fn running_versions(c: &Cluster, job: &str) -> Vec<u64> {
    let mut v: Vec<u64> = c
        .running(job)
        .iter()
        .filter_map(|a| a["JobVersion"].as_u64())
        .collect();
    v.sort_unstable();
    v
}

#[test]
fn history_revert_alloc_stop_and_eligibility() {
    let c = Cluster::start("ops");
    let file = c.write_file("ops.hcl", &sleeper("ops", 2, "first"));
    c.ok(&["apply", "-f", &file, "--wait", "--timeout", "120"]);
    let file = c.write_file("ops.hcl", &sleeper("ops", 2, "second"));
    c.ok(&["apply", "-f", &file, "--wait", "--timeout", "120"]);
    assert_eq!(running_versions(&c, "ops"), vec![1, 1]);

    let history = c.ok(&["job", "history", "ops"]);
    let versions: Vec<&str> = history
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(versions, ["1", "0"], "{history}");

    let out = c.ok(&["job", "revert", "ops", "0"]);
    assert!(out.contains("reverted to version 0"), "{out}");
    c.wait_for(
        "the reverted version to run",
        Duration::from_secs(120),
        |c| {
            let running = c.running("ops");
            let firsts = running
                .iter()
                .filter(|a| {
                    let id = a["ID"].as_str().unwrap_or("");
                    c.ok(&["logs", &id[..8]]).starts_with("first")
                })
                .count();
            let done = running.len() == 2 && firsts == 2;
            (
                done,
                format!("{} running, {firsts} printing `first`", running.len()),
            )
        },
    );

    // Stopping one allocation: the controller places a replacement.
    let victim = c.running("ops")[0]["ID"].as_str().unwrap().to_string();
    c.ok(&["alloc", "stop", &victim[..8]]);
    c.wait_for(
        "a replacement for the stopped allocation",
        Duration::from_secs(60),
        |c| {
            let running = c.running("ops");
            let replaced = running.len() == 2 && running.iter().all(|a| a["ID"] != victim.as_str());
            (replaced, format!("{running:?}"))
        },
    );
    c.wait_for(
        "the stopped allocation's process to end",
        Duration::from_secs(30),
        |_| {
            let p = pids_of_alloc(&victim);
            (p.is_empty(), format!("{p:?}"))
        },
    );

    // An ineligible node gets nothing new: the plan says so, and a new job stays unplaced.
    c.ok(&["node", "eligibility", &c.node, "--disable"]);
    let other = c.write_file("other.hcl", &sleeper("other", 1, "x"));
    let plan = c.nctl(&["plan", "-f", &other]);
    assert_eq!(plan.status.code(), Some(1), "a new job is a change");
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(text.contains("(1 cannot be placed;"), "{text}");
    assert!(text.contains("failed to place all allocations"), "{text}");
    c.ok(&["apply", "-f", &other]);
    c.wait_for(
        "the controller to report why it cannot place",
        Duration::from_secs(60),
        |c| {
            let st = c.json(&["status", "other", "-o", "json"]);
            let failures = &st["job"]["NomosStatus"]["PlacementFailures"];
            (
                failures.as_object().is_some_and(|f| !f.is_empty()),
                st.to_string(),
            )
        },
    );
    assert!(
        c.allocs("other").is_empty(),
        "nothing is placed on an ineligible node"
    );
    c.ok(&["node", "eligibility", &c.node, "--enable"]);
    c.wait_for(
        "the job to be placed once the node is eligible",
        Duration::from_secs(60),
        |c| {
            let running = c.running("other");
            (running.len() == 1, format!("{running:?}"))
        },
    );
}
